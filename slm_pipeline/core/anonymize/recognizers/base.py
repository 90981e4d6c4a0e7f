"""Recognizer base classes: one entity, no load step, metadata for Presidio's context enhancer."""

from __future__ import annotations

import regex as re
from presidio_analyzer import (
    AnalysisExplanation,
    LocalRecognizer,
    RecognizerResult,
)

from slm_pipeline.core.anonymize.common import LANG

# Recognizer helpers
# ---------------------------------------------------------------------------------------------------------


class _OurRecognizer(LocalRecognizer):
    """Small base: one entity, no load step, results carry the metadata Presidio's context enhancer needs."""

    ENTITY = ""
    CONTEXT: list[str] = []

    def __init__(self, entity: str | None = None, context: list[str] | None = None, name: str | None = None):
        super().__init__(
            supported_entities=[entity or self.ENTITY],
            supported_language=LANG,
            context=context if context is not None else (list(self.CONTEXT) or None),
            name=name or type(self).__name__,
        )

    def load(self) -> None:  # noqa: D102
        pass

    def _result(self, start: int, end: int, score: float, why: str, entity: str | None = None) -> RecognizerResult:
        return RecognizerResult(
            entity_type=entity or self.supported_entities[0],
            start=start,
            end=end,
            score=min(score, 1.0),
            analysis_explanation=AnalysisExplanation(
                recognizer=self.name, original_score=score, textual_explanation=why
            ),
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0



class _RegexRecognizer(_OurRecognizer):
    """Patterns (regex, score, group) where `group` names the captured value span (0 = whole match)."""

    PATTERNS: list[tuple[str, float, str | int, int]] = []  # (regex, score, group, flags)

    def __init__(self, **kw):
        super().__init__(**kw)
        self._compiled = [(re.compile(rx, fl), sc, g) for rx, sc, g, fl in self.PATTERNS]

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        out = []
        for rx, score, group in self._compiled:
            for m in rx.finditer(text):
                s, e = m.span(group)
                if s < 0 or e <= s:
                    continue
                if self.valid(text[s:e]):
                    out.append(self._result(s, e, score, f"pattern {rx.pattern[:40]}"))
        return out

    def valid(self, value: str) -> bool:
        return True


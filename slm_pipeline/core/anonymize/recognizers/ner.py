"""spaCy NER PERSON with false-positive guards, and the sentence segments gated NER runs on."""

from __future__ import annotations

import regex as re
from presidio_analyzer import (
    RecognizerResult,
)
from presidio_analyzer.predefined_recognizers import (
    SpacyRecognizer,
)

from slm_pipeline.core.anonymize.lexicons import _Lexicon, _lexicon, _norm_word, _rx
from slm_pipeline.core.anonymize.recognizers.names import (
    _WORD,
    _extend_person,
    _place_after_locative,
    _surname_head_ok,
    _token_class,
)


class FilteredSpacyRecognizer(SpacyRecognizer):
    """spaCy NER PERSON (and other requested NER labels) with false-positive guards."""

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        res = super().analyze(text, entities, nlp_artifacts)
        lex = _lexicon()
        out = []
        for r in res:
            if r.entity_type != "PERSON":
                out.append(r)
                continue
            fixed = _clean_person_span(text, r.start, r.end, lex)
            if fixed is None:
                continue
            r.start, r.end = fixed
            out.append(r)
        return out


def _clean_person_span(text: str, s: int, e: int, lex: _Lexicon) -> tuple[int, int] | None:
    span = text[s:e]
    if any(ch.isdigit() for ch in span) or "@" in span or "\n" in span.strip():
        return None
    words = list(_WORD.finditer(span))
    # strip leading greetings/common words ("Hi Maria" -> "Maria") and trailing possessives
    while words and _token_class(words[0].group(0), lex) in ("C", "l") and len(words) > 1:
        words = words[1:]
    if not words:
        return None
    if _norm_word(words[-1].group(0).rstrip(".")) in lex.heads and not (
            len(words) >= 2 and _surname_head_ok(words[0].group(0), words[-1].group(0), lex)):
        return None  # "Canal Street", "Liberty Plaza": a place, not a person (but "Javier Hall" is one)
    while len(words) > 1 and _token_class(words[-1].group(0), lex) in ("C", "l"):
        words = words[:-1]
    classes = [_token_class(w.group(0), lex) for w in words]
    if any(c == "X" for c in classes):
        return None
    if all(c in ("C", "A", "l", "K") for c in classes):
        return None
    if all(c in ("C", "A") for c in classes):
        return None
    if len(classes) == 1 and classes[0] == "U" and _rx(r"(?:^|[.!?;]\s+|\n\s*)$").search(text[max(0, s - 3):s] if s else ""):
        return None  # an unknown single word at the start of a sentence or clause: "Whitelist 10.0.0.1 ...", "; Jekyll took"
    if len(classes) == 1 and classes[0] != "F" and _rx(r"\d[ \t]*$").search(
            text[max(0, s + words[0].start() - 3):s + words[0].start()]):
        return None  # "412 Mbps", "38 Kbit": a word right after a number is a unit, not a person
    if "P" in classes and not any(c in ("F", "L") for c in classes) and not (
            len(words) == 1 and _norm_word(words[0].group(0)) in lex.first):
        return None  # "Amsterdam Centraal", "Paris" (but NER's "Victoria" / "Jordan" may be people)
    ns, ne = s + words[0].start(), s + words[-1].end()
    if text[ne - 1] == ".":
        ne -= 1
    possessive = text[ne - 2:ne] in ("'s", "’s")
    if possessive:
        ne -= 2
        if _rx(r"[ \t]+[\p{Lu}]").match(text, ne + 2):
            return None  # "King's Cross"
    if _norm_word(text[s:ns].strip()) in ("the",) or _rx(
            r"(?i)(?:\bthe|\bst\.?|\bsaint|\bmount|\bmt\.?|\blake|\bfort|\bcape)[ \t]+$").search(text[max(0, ns - 8):ns]):
        return None  # "The Bosch", "the Hudson", "St Pancras"
    if not possessive and _followed_by_head(text, ne, lex):
        return None
    if _place_after_locative(text, ns, ne, lex):
        return None  # "near Bairro do Avelar"
    return _extend_person(text, ns, ne)


def _followed_by_head(text: str, end: int, lex: _Lexicon) -> bool:
    """'Hamilton tickets', 'Amsterdam hub', 'Maria Street': the proper noun modifies a place/product noun."""
    nxt = _rx(r"[ \t]+([\p{L}]+)").match(text, end)
    return bool(nxt) and _norm_word(nxt.group(1)) in lex.heads


_SENT_SPLIT = re.compile(r"(?<=[.!?])[ \t]+(?=\S)|\n+")
_CAP_WORD = re.compile(r"(?<![\w\-])[\p{Lu}][\p{L}\p{M}'’\-]*")


def _ner_segments(text: str, results: list[RecognizerResult], lex: _Lexicon) -> list[tuple[int, int]]:
    """Sentences that contain a capitalized word which might be a name and is not yet inside a confident
    detection. Only these are sent through spaCy's NER (dictionary words, places, product-like camelCase words
    and anything inside an address/email/name already found do not need it)."""
    covered = [(r.start, r.end) for r in results]
    segs: list[tuple[int, int]] = []
    start = 0
    bounds = [(m.start(), m.end()) for m in _SENT_SPLIT.finditer(text)] + [(len(text), len(text))]
    for a, b in bounds:
        seg_s, seg_e = start, a
        start = b
        if seg_e <= seg_s:
            continue
        for m in _CAP_WORD.finditer(text, seg_s, seg_e):
            ws, we = m.span()
            if any(cs <= ws and we <= ce for cs, ce in covered):
                continue
            c = _token_class(m.group(0), lex)
            if c in ("U", "F", "L", "A") or (c == "P" and _norm_word(m.group(0)) in lex.first):
                segs.append((seg_s, seg_e))
                break
    return segs



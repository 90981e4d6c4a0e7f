"""The filter pass over teacher pairs: what a model writes is kept only when the chunk supports it.

Drop reasons (reported as "teacher_<reason>"):
  empty               - no question or no answer;
  placeholder         - an anonymization tag (<PERSON_1>) in the question or answer: the model would learn it;
  refers_to_excerpt   - the question speaks of "the excerpt / this section": users never ask like that;
  answer_too_long     - more than teacher.max_answer_words words;
  ungrounded_number   - a number in the answer that the chunk does not contain (the classic hallucination);
  ungrounded          - under teacher.min_grounding of the answer's content words occur in the chunk;
  duplicate_question  - the same question (same words, or the same content words in any order) was kept already.
Never imports dagster.
"""

from __future__ import annotations

import re

from ..curation import PLACEHOLDER, STOPWORDS, normalize, word_list

__all__ = ["PairFilter"]

_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_REFERS = re.compile(r"\b(?:the|this|that|above|given) (?:excerpt|text|passage|section|document|context)\b",
                     re.IGNORECASE)
_STEM = 5  # words compared by their first letters: "configure" grounds "configuration", "restarts" "restart"


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "").rstrip(".:") for n in _NUMBER.findall(text)}


def _stems(words: list[str]) -> set[str]:
    return {w[:_STEM] for w in words}


def _content(words: list[str]) -> list[str]:
    return [w for w in words if w not in STOPWORDS and len(w) > 2 and not w.isdigit()]


class PairFilter:
    """`check(question, answer, chunk)` -> None (keep) or (reason, detail). Remembers kept questions, so one
    filter serves one build: a question kept for an earlier chunk makes the same question later a duplicate."""

    def __init__(self, max_answer_words: int = 80, min_grounding: float = 0.6):
        self.max_answer_words, self.min_grounding = max_answer_words, min_grounding
        self._questions: dict[str, str] = {}  # normalized question / sorted content words -> first question

    def check(self, question: str, answer: str, chunk: str) -> tuple[str, str] | None:
        problem = self._problem(question, answer, chunk)
        if problem is None:
            keys = self._keys(question)
            for k in keys:
                self._questions.setdefault(k, question)
        return problem

    @staticmethod
    def _keys(question: str) -> list[str]:
        words = word_list(question)
        return [normalize(question), "~" + " ".join(sorted(set(_content(words)) or set(words)))]

    def _problem(self, question: str, answer: str, chunk: str) -> tuple[str, str] | None:
        if not question.strip() or not answer.strip():
            return "empty", "no question" if not question.strip() else "no answer"
        if tag := PLACEHOLDER.search(f"{question}\n{answer}"):
            return "placeholder", f"contains the anonymization tag {tag.group(0)}"
        if ref := _REFERS.search(question):
            return "refers_to_excerpt", f"the question mentions {ref.group(0)!r}: {question[:80]!r}"
        answer_words = word_list(answer)
        if len(answer_words) > self.max_answer_words:
            return "answer_too_long", f"{len(answer_words)} words > teacher.max_answer_words={self.max_answer_words}"
        missing = sorted(_numbers(answer) - _numbers(chunk))
        if missing:
            return "ungrounded_number", f"{', '.join(missing[:5])} in the answer, not in the chunk: {answer[:100]!r}"
        content = _content(answer_words)
        if content:
            chunk_stems = _stems(word_list(chunk))
            share = sum(w[:_STEM] in chunk_stems for w in content) / len(content)
            if share < self.min_grounding:
                return "ungrounded", (f"{share:.0%} of the answer's content words are in the chunk "
                                      f"(< teacher.min_grounding={self.min_grounding:.0%}): {answer[:100]!r}")
        for k in self._keys(question):
            if k in self._questions:
                return "duplicate_question", f"same question as {self._questions[k][:80]!r}"
        return None

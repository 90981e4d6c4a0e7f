"""Tool, product and firm contexts: single-word PERSON detections that the sentence uses as software, a
technique or a company ("settled on Julia 1.10", "Lottie animations", "tests run with Jasmine and Karma",
"Pino is used in the edge workers"). Grammar lives here; the technical nouns are data (lexicon.yaml)."""

from __future__ import annotations

from functools import cache

import regex as re

from slm_pipeline.core.anonymize.lexicons import _words

_CAP = r"[\p{Lu}][\p{L}\p{M}'’\-]*"
_CAP_WORD = re.compile(rf"(?<![\w\-])({_CAP})(?![\w\-])")

# "Julia 1.10", "macOS Sonoma 14.4", "Ada 2022": a capitalized word directly followed by a version number (or a
# year that ends the phrase) names a product or a language, not a person
VERSION_AFTER = re.compile(r"[ \t]+v?\d+(?:\.\d+)+(?![\w])|[ \t]+(?:19|20)\d\d(?![\w\-/:]|[.,]\d)")
_NOUN_AFTER = re.compile(r"[ \t]+([\p{L}]+)(?P<obj>[ \t]+(?:the|a|an|my|your|his|her|our|their|its|it|them|this|that|"
                         r"these|those|every|all|some|any)\b)?", re.I)
# "did Maria build", "let Anna query": after an auxiliary the noun is a verb
_AUX_BEFORE = re.compile(r"(?i:\b(?:did|does|do|let|lets|can|could|will|would|should|may|might|must|to|please|"
                         r"make|makes|made|help|helps|have|has|had|watch|saw|see)[ \t]+)$")
# verbs and phrases that take a tool as their object; a list "X, Y and Z" after them is a list of tools
_TOOL_VERB = (r"use[sd]?|using|adopt(?:s|ed|ing)?|evaluat(?:e|es|ed|ing)|install(?:s|ed|ing)?|via|"
              r"powered[ \t]+by|built[ \t]+(?:with|on|in)|written[ \t]+in|implemented[ \t]+in|"
              r"(?:run|runs|ran|running|tested|tests)[ \t]+(?:with|on|under)|"
              r"(?:switch(?:ed|es|ing)?|migrat(?:e|es|ed|ing)|port(?:s|ed|ing)?|upgrad(?:e|es|ed|ing))[ \t]+(?:to|from)|"
              r"replac(?:e|es|ed|ing)|settled[ \t]+on|"
              r"(?:handled|managed|served|rendered|generated|parsed|collected|scheduled|orchestrated|bundled)[ \t]+by")
_TOOL_BEFORE = re.compile(rf"(?i:\b(?P<v>{_TOOL_VERB}))[ \t]+(?:the[ \t]+)?"
                          rf"(?:{_CAP}[ \t]*(?:,|/|\band\b|\bor\b|&)[ \t]*(?:(?:and|or)[ \t]+)?)*$")
# "X is used in the edge workers", "X was configured": passive tool predicates need no technical clause
_TOOL_PASSIVE = re.compile(r"[ \t]+(?:is|are|was|were|gets|got)[ \t]+(?:(?:now|also|only|still|then|mainly|mostly)[ \t]+)?"
                           r"(?:used|installed|configured|enabled|disabled|bundled|loaded|preloaded|imported|compiled|"
                           r"vendored|pinned|deprecated)\b")
# "... handled by Winston on the Node services and by Morgan": a parallel preposition repeats the tool verb
_PARALLEL_PREP = re.compile(r"(?i:\b(?:and|or)[ \t]+(?P<p>by|with|in|on|via|to|from))[ \t]+$")
_CLAUSE_END = re.compile(r"[.;!?\n]")


@cache
def technical_nouns() -> frozenset[str]:
    return frozenset(_words("technical_nouns"))


def _clause(text: str, s: int, e: int) -> tuple[int, int]:
    a = max((m.end() for m in _CLAUSE_END.finditer(text, max(0, s - 300), s)), default=max(0, s - 300))
    m = _CLAUSE_END.search(text, e)
    return a, (m.start() if m else len(text))


def _technical_clause(text: str, a: int, b: int) -> bool:
    nouns = technical_nouns()
    return any(w.lower() in nouns for w in re.findall(r"[\p{L}]+", text[a:b]))


def _noun_after(text: str, end: int) -> bool:
    m = _NOUN_AFTER.match(text, end)
    return bool(m) and m.group(1).lower() in technical_nouns() and not m.group("obj")


def product_words(text: str) -> set[str]:
    """Capitalized words this text itself uses as a product: before a version number ('Julia 1.10') or before a
    technical noun ('Lottie animations', 'the Hugo site build'), not after an auxiliary ('did Maria build')."""
    out = set()
    for m in _CAP_WORD.finditer(text):
        if VERSION_AFTER.match(text, m.end()):
            out.add(m.group(1))
        elif _noun_after(text, m.end()) and not _AUX_BEFORE.search(text, max(0, m.start() - 12), m.start()):
            out.add(m.group(1))
    return out


def tool_context(text: str, s: int, e: int, products: set[str], dropped_preps: set[tuple[int, str]]) -> str | None:
    """Why the single word text[s:e] is a tool here, or None. `dropped_preps` collects (clause start,
    preposition) of tools already found, so "... by Winston on the services and by Morgan" drops both."""
    word = text[s:e]
    if word in products:
        return "product"
    if _TOOL_PASSIVE.match(text, e):
        return "passive"
    a, b = _clause(text, s, e)
    before = text[a:s]
    m = _TOOL_BEFORE.search(before)
    if m and _technical_clause(text, a, b):
        prep = re.search(r"(\w+)[ \t]*$", m.group("v"))
        dropped_preps.add((a, prep.group(1).lower() if prep else ""))
        return "tool verb"
    p = _PARALLEL_PREP.search(before)
    if p and (a, p.group("p").lower()) in dropped_preps:
        return "parallel"
    return None

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
# (and "Ryzen 5 3600": a series digit then a model number)
VERSION_AFTER = re.compile(r"[ \t]+v?\d+(?:\.\d+)+(?![\w])|[ \t]+(?:19|20)\d\d(?![\w\-/:]|[.,]\d)|"
                           r"[ \t]+\d{1,2}[ \t]+\d{3,5}[A-Z]{0,3}(?![\w\-]|[.,]\d)")
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
_POSSESSIVE_BEFORE = re.compile(r"(?i:\b(?:your|my|our|their|his|her|its)[ \t]+(?:(?:own|new|old|same|existing)[ \t]+)?)$")
# "Steam Input for X (Library → Properties → ...)": a menu path in brackets right after the word is inside it
_MENU_PATH_AFTER = re.compile(r"[ \t]*\([^()\n]{0,80}(?:→|›|»|->|[ \t]>[ \t])")
# "X crashes on startup", "X keeps freezing", "Why does X install ...", "Will X sync ...": an unknown word as the
# subject of what only software does, or of what people do to software asked about the software itself
_SOFTWARE_ONLY = r"crash|freez|sync|auto-?updat|time[ \t]+out"
_SOFTWARE_SUBJECT = re.compile(rf"(?i:[ \t]+(?:(?:keeps|kept|stopped|started)[ \t]+)?(?:{_SOFTWARE_ONLY})(?:s|es|ed|e|ing)?\b)")
_SOFTWARE_QUESTION = re.compile(r"(?i:\b(?:does|doesn['’]t|will|won['’]t|can|can['’]t|should|shouldn['’]t)[ \t]+)$")
_SOFTWARE_BASE = re.compile(r"(?i:[ \t]+(?:(?:not|ever|still|always|automatically|now)[ \t]+)?"
                            r"(?:install|uninstall|update|launch|load|support|detect|recognize|connect)\b)")
# "Will X ever call me and ask for my PIN?": only a service asks for your credentials
_CREDENTIAL_ASK = re.compile(
    r"(?i:[ \t]+(?:\w+[ \t]+){0,5}?ask(?:s|ed)?[ \t]+(?:(?:me|you|us|customers|users)[ \t]+)?for[ \t]+(?:my|your|our|their)"
    r"[ \t]+(?:full[ \t]+)?(?:pin|password|passcode|passwords|credentials|card[ \t]+number|one-time[ \t]+codes?|"
    r"security[ \t]+code|verification[ \t]+code|login|cvv|2fa[ \t]+code)\b)")


@cache
def technical_nouns() -> frozenset[str]:
    return frozenset(_words("technical_nouns"))


@cache
def product_nouns() -> frozenset[str]:
    return technical_nouns() | frozenset(_words("product_nouns"))


def _clause(text: str, s: int, e: int) -> tuple[int, int]:
    a = max((m.end() for m in _CLAUSE_END.finditer(text, max(0, s - 300), s)), default=max(0, s - 300))
    m = _CLAUSE_END.search(text, e)
    return a, (m.start() if m else len(text))


def _technical_clause(text: str, a: int, b: int) -> bool:
    nouns = technical_nouns()
    return any(w.lower() in nouns for w in re.findall(r"[\p{L}]+", text[a:b]))


def _noun_after(text: str, start: int, end: int) -> bool:
    m = _NOUN_AFTER.match(text, end)
    if not m or m.group("obj"):
        return False
    noun = m.group(1).lower()
    if noun in technical_nouns():
        return True
    if noun not in product_nouns():
        return False
    # "the Jensen account" may be a client's; a known name needs a customer's possessive: "your Finch account"
    from slm_pipeline.core.anonymize.lexicons import _lexicon
    from slm_pipeline.core.anonymize.recognizers.names import _token_class

    return _token_class(text[start:end], _lexicon()) not in ("F", "L", "A") or bool(
        _POSSESSIVE_BEFORE.search(text, max(0, start - 24), start))


def product_words(text: str) -> set[str]:
    """Capitalized words this text itself uses as a product: before a version number ('Julia 1.10') or before a
    technical noun ('Lottie animations', 'the Hugo site build'), not after an auxiliary ('did Maria build')."""
    out = set()
    for m in _CAP_WORD.finditer(text):
        if VERSION_AFTER.match(text, m.end()):
            out.add(m.group(1))
        elif _noun_after(text, m.start(), m.end()) and not _AUX_BEFORE.search(text, max(0, m.start() - 12), m.start()):
            out.add(m.group(1))
    return out


def tool_context(text: str, s: int, e: int, products: set[str], dropped_preps: set[tuple[int, str]],
                 word_class: str = "U") -> str | None:
    """Why the single word text[s:e] is a tool here, or None. `dropped_preps` collects (clause start,
    preposition) of tools already found, so "... by Winston on the services and by Morgan" drops both.
    `word_class` is the word's gazetteer class (names.py): only unknown words ("U") count as the subject of a
    software verb, and a known given name ("F") is never the one that asks for your PIN."""
    word = text[s:e]
    unknown, given_name = word_class == "U", word_class == "F"
    if word in products:
        return "product"
    if _TOOL_PASSIVE.match(text, e):
        return "passive"
    if _MENU_PATH_AFTER.match(text, e):
        return "menu path"
    if unknown and (_SOFTWARE_SUBJECT.match(text, e) or (
            _SOFTWARE_BASE.match(text, e) and _SOFTWARE_QUESTION.search(text, max(0, s - 12), s))):
        return "software subject"
    if not given_name and _CREDENTIAL_ASK.match(text, e):
        return "asks for credentials"
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

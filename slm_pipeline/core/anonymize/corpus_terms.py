"""Brand and product words discovered across a corpus: label consistency beyond one sentence.

spaCy's small model calls an unfamiliar capitalized word a PERSON ("Your monthly Lumenet bill", "Kite 5G vs
Lumaro Go"), and inside one sentence nothing tells a coined brand from a foreign surname. Across a corpus it
does: a company's own product names recur in many records and are never used the way people are (no title,
greeting or role noun in front, no initial, no other name-like word next to them, no sign-off), while a person's
name that recurs is, sooner or later, used that way. So, before detection, every capitalized word that the name
lists do not know (class "U") and that recurs in 5+ records (2 with a product noun) with no person usage anywhere
in the corpus is allowed like an `anonymize.allow` term for that corpus (reported, so a user sees and can
override it with `anonymize.discover_terms: false` plus their own allow-list).

Known given names and surnames qualify only when the corpus itself calls them a bot or assistant ("Ask Hazel,
our chat assistant", "the booking bot Rosa"); otherwise a product called "Otto" stays replaced unless the user
allows it. Never imports dagster."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import regex as re

from slm_pipeline.core.anonymize.lexicons import _lexicon, _words
from slm_pipeline.core.anonymize.products import product_words
from slm_pipeline.core.anonymize.recognizers.names import _token_class

__all__ = ["discover_terms"]

_CAP_WORD = re.compile(r"(?<![\w\-@./])([\p{Lu}][\p{Ll}\p{M}]+(?:['’\-][\p{L}\p{M}]+)*)(?![\w@]|[\-.][\w])")


def _phrases(key: str) -> str:
    """A lexicon.yaml list as a regex alternation; a space in a phrase matches any run of blanks."""
    return "|".join(re.escape(p).replace(r"\ ", r"[ \t]+") for p in sorted(_words(key), key=len, reverse=True))


# what comes right before a person's name and never before a brand (word lists: data/lexicon.yaml)
_TITLE_BEFORE = re.compile(rf"\b(?:{_phrases('titles')}|{_phrases('extra_titles')})\.?[ \t]+$")
_PERSON_CUE_BEFORE = re.compile(rf"(?i:(?<!\w)(?:{_phrases('person_cues')})[,!:]?[ \t]+|"
                                rf"\b(?:{_phrases('person_roles')})[ \t]+)$")
_SIGN_OFF_BEFORE = re.compile(r"(?m:^[ \t]*(?:—|–|-{1,2}|~)[ \t]*)$")
_BOT = _phrases("bot_nouns")
_BOT_AFTER = re.compile(rf"(?i:,[ \t]+(?:our|the|your|a)[ \t]+(?:[\w\-]+[ \t]+){{0,2}}?(?:{_BOT})\b)")
_BOT_BEFORE = re.compile(rf"(?i:\b(?:{_BOT})[ \t]+(?:called[ \t]+|named[ \t]+)?)$")
_POSSESSIVE = re.compile(r"['’]s$")
_INITIAL_AFTER = re.compile(r"[ \t]+(?:\p{Lu}\.[ \t]*)+")
_INITIAL_BEFORE = re.compile(r"\b\p{Lu}\.[ \t]*$")
# the next or previous capitalized word: adjacent ("Paraskevi Yefremova") or in a list ("Kónya, Becker and Vasquez")
_LINK = r"(?:[ \t]+|,[ \t]*|[ \t]+(?:and|&|or)[ \t]+|,[ \t]*(?:and|&|or)[ \t]+)"
_NEXT_WORD = re.compile(rf"{_LINK}([\p{{Lu}}][\p{{L}}\p{{M}}'’\-]*)")
_PREV_WORD = re.compile(rf"([\p{{Lu}}][\p{{L}}\p{{M}}'’\-]*){_LINK}$")


def _person_usage(text: str, s: int, e: int, lex) -> bool:
    """Is the word at text[s:e] used here the way a person's name is?"""
    before = text[max(0, s - 40):s]
    if _TITLE_BEFORE.search(before) or _PERSON_CUE_BEFORE.search(before) or _SIGN_OFF_BEFORE.search(text, 0, s):
        return True
    if _INITIAL_AFTER.match(text, e) or _INITIAL_BEFORE.search(before):
        return True
    # next to another name-like word, known or not: "Paraskevi Yefremova", "Hannah Lumaro", "Kónya, Becker and
    # Vasquez" (a brand's neighbours are everyday words: "Lumenet Mesh Extender", "Lumaro Go")
    nxt = _NEXT_WORD.match(text, e)
    if nxt and _token_class(_POSSESSIVE.sub("", nxt.group(1)), lex) in ("F", "L", "U"):
        return True
    prev = _PREV_WORD.search(before)
    return bool(prev and _token_class(prev.group(1), lex) in ("F", "L", "U"))


def discover_terms(texts: Iterable[str], min_records: int = 5) -> dict[str, int]:
    """{word: records it occurs in} for the corpus's brand/product words (module docstring): capitalized words
    unknown to the name lists, in at least `min_records` texts (2 when one of them uses the word before a version
    or a product noun: "Lumenet Fiber 2.0", "the Kestrel app"), and names the corpus calls a bot; none of them
    ever used like a person's name."""
    lex = _lexicon()
    records: dict[str, int] = defaultdict(int)
    product: set[str] = set()
    person: set[str] = set()  # used like a person's name somewhere in the corpus
    bots: set[str] = set()
    for text in texts:
        seen = set()
        for m in _CAP_WORD.finditer(text):
            s = m.start(1)
            word = _POSSESSIVE.sub("", m.group(1))
            if _token_class(word, lex) not in ("U", "F", "A", "L"):  # (lru-cached per word)
                continue
            if word not in seen:
                seen.add(word)
                records[word] += 1
            if word not in person and _person_usage(text, s, s + len(word), lex):
                person.add(word)
            if _BOT_AFTER.match(text, m.end(1)) or _BOT_BEFORE.search(text, max(0, s - 40), s):
                bots.add(word)
        if seen:
            product |= seen & product_words(text)
    return {w: n for w, n in sorted(records.items()) if w not in person and (
        w in bots or (_token_class(w, lex) == "U" and (n >= min_records or (n >= 2 and w in product))))}

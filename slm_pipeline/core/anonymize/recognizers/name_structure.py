"""PERSON from the shape of a mention, for names no list knows ("Faina D. Yefremova's", "Gebremedhin's team",
"the founders: Kónya, Becker and Vasquez", "the Jensen novel"). Every rule needs a name-like token: capitalized,
not a dictionary/support/place word, not camelCase or all-caps (token classes of names.py)."""

from __future__ import annotations

import regex as re
from presidio_analyzer import RecognizerResult

from slm_pipeline.core.anonymize.lexicons import _lexicon, _strip_accents
from slm_pipeline.core.anonymize.recognizers.base import _OurRecognizer
from slm_pipeline.core.anonymize.recognizers.names import _singular, _token_class

_W = r"[\p{Lu}][\p{L}\p{M}'’\-]+"
_NAMEISH = {"F", "L", "U"}
# "Faina D. Yefremova": given name, initial, surname
_INITIAL = re.compile(rf"(?<![\w.])(?P<a>{_W})[ \t]+[\p{{Lu}}]\.[ \t]+(?P<b>{_W})")
# "Dalisay Kónya's account", "Gebremedhin's manager": a possessive before a word that belongs to people. A lone
# unknown word needs a kin/role noun ("Ubuntu's team", "Mozilla's blog" are organisations).
_PERSON_ONLY = r"manager|assistant|colleague|wife|husband|partner|son|daughter|mother|father|parents|boss|kids|children"
_POSSESSIVE = re.compile(
    rf"(?<![\w.])(?P<n>{_W}(?:[ \t]+{_W}){{0,2}})['’]s[ \t]+(?:(?:new|old|own|previous|current)[ \t]+)?"
    rf"(?:(?P<kin>{_PERSON_ONLY})|team|account|office|family|request|complaint|booking|ticket|e-?mail|phone|number|"
    r"address|desk|profile|membership|card|subscription|invoice|refund|message|reply)\b"
)
# "the founders: Kónya, Becker and Vasquez", "cc: Anahit Ragnarsdóttir, Unai Tesfaye"
_LIST_CUE = re.compile(
    r"(?i)\b(?:co-?founders|founders|authors|owners|members|staff|agents|contributors|maintainers|participants|"
    r"speakers|winners|hosts|guests|colleagues|organi[sz]ers|attendees|recipients|cc|bcc)[ \t]*:[ \t]*"
)
_LIST_ITEM = re.compile(rf"(?P<n>{_W}(?:[ \t]+{_W}){{0,2}})(?P<sep>[ \t]*(?:,|&|\band\b)[ \t]*)?")
# "the Jensen novel", "the Okonkwo family"
_THE_X = re.compile(
    rf"(?i:\bthe)[ \t]+(?P<n>{_W})[ \t]+(?:novel|novels|book|books|family|household|brothers|sisters|twins|estate|"
    r"biography|memoir|album|lecture|case)\b"
)

# "hi its levani kahananui, the app...": an all-lower-case full name right after a self-introduction
_LOWER_INTRO = re.compile(
    r"(?im:(?:^|\b(?:hi|hello|hey|hiya)\b[ \t,!]*)(?:it['’]?s|i['’]?m|i[ \t]+am|my[ \t]+name[ \t]+is))[ \t]+"
    r"(?P<n>\p{Ll}[\p{Ll}\p{M}'’\-]{2,}[ \t]+\p{Ll}[\p{Ll}\p{M}'’\-]{2,})(?=[ \t]*(?:[,.!;\n]|$))"
)



def _vowelly(word: str) -> bool:
    """Pronounceable like a name, unlike jargon ("nvme", "ssd", "syncthing"): a quarter of the letters are vowels."""
    plain = _strip_accents(word.lower())
    return sum(c in "aeiouy" for c in plain) >= 0.25 * len(plain) and sum(c in "aeiou" for c in plain) >= 1


class PersonStructureRecognizer(_OurRecognizer):
    ENTITY = "PERSON"

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        lex = _lexicon()
        out: list[RecognizerResult] = []

        def classes(span: str) -> list[str]:
            return [_token_class(w, lex) for w in span.split()]

        def namey(cls: list[str]) -> bool:
            # one name-like token at least; everyday/place/product words only as part of a longer name
            return any(c in _NAMEISH for c in cls) and not any(c in ("C", "X", "K", "P", "l") for c in cls) \
                and (len(cls) > 1 or cls[0] in _NAMEISH)

        for m in _INITIAL.finditer(text):
            ca, cb = _token_class(m.group("a"), lex), _token_class(m.group("b"), lex)
            if ca in _NAMEISH | {"A"} and cb in _NAMEISH | {"A"} and (ca in _NAMEISH or cb in _NAMEISH):
                e = m.end() - (2 if text[m.end() - 2:m.end()] in ("'s", "’s") else 0)
                out.append(self._result(m.start(), e, 0.8, "given name, initial, surname"))
        for m in _POSSESSIVE.finditer(text):
            cls = classes(m.group("n"))
            if namey(cls) and (m.group("kin") or len(cls) > 1 or cls[0] in ("F", "L")):
                out.append(self._result(m.start("n"), m.end("n"), 0.7, "possessive before a person's noun"))
        for m in _THE_X.finditer(text):
            if classes(m.group("n"))[0] in _NAMEISH:
                out.append(self._result(m.start("n"), m.end("n"), 0.65, "'the X novel/family'"))
        for m in _LOWER_INTRO.finditer(text):
            # both words unknown to every word list: "its wietske berisha" yes, "its really broken" no
            words = m.group("n").split()
            if all(w not in lex.broad_common and w not in lex.stop and not _singular(w, lex) and _vowelly(w) for w in words):
                out.append(self._result(m.start("n"), m.end("n"), 0.6, "lower-case name after self-introduction"))
        for cue in _LIST_CUE.finditer(text):
            pos = cue.end()
            while True:
                it = _LIST_ITEM.match(text, pos)
                if not it or not namey(classes(it.group("n"))):
                    break
                out.append(self._result(it.start("n"), it.end("n"), 0.7, "name in a list of people"))
                if not it.group("sep"):
                    break
                pos = it.end()
        return out

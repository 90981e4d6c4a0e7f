"""PERSON from the shape of a mention, for names no list knows ("Faina D. Yefremova's", "Gebremedhin's team",
"the founders: Kónya, Becker and Vasquez", "the Jensen novel"). Every rule needs a name-like token: capitalized,
not a dictionary/support/place word, not camelCase or all-caps (token classes of names.py)."""

from __future__ import annotations

import regex as re
from presidio_analyzer import RecognizerResult

from slm_pipeline.core.anonymize.lexicons import _lexicon, _rx, _strip_accents
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
    r"address|desk|profile|membership|card|subscription|invoice|refund|message|reply|(?P<work>case|thesis|notes|"
    r"presentation|draft|feedback|comments?|suggestions?|questions?|idea|argument|point|slides|talk|patch|commit|"
    r"pull[ \t]+request|code[ \t]+review))\b"
)
# "the founders: Kónya, Becker and Vasquez", "cc: Anahit Ragnarsdóttir, Unai Tesfaye"
_LIST_CUE = re.compile(
    r"(?i)\b(?:co-?founders|founders|authors|owners|members|staff|agents|contributors|maintainers|participants|"
    r"speakers|winners|hosts|guests|colleagues|organi[sz]ers|attendees|recipients|cc|bcc|panel|panelists|"
    r"interviewers|reviewers|judges|assignees|approvers|signatories|witnesses)[ \t]*:[ \t]*"
    r"|\b(?P<verb>assigned|reassigned|delegated|handed[ \t]+over)[ \t]+to[ \t]+"
)
_PARTICLE = r"(?:(?:van|von|de|der|den|du|da|di|del|della|le|la|ter|ten|bin|bint|ibn|al|el)[ \t]+){0,2}"
_LIST_ITEM = re.compile(rf"(?P<n>{_PARTICLE}{_W}(?:[ \t]+{_W}){{0,2}})(?P<sep>[ \t]*(?:,|&|\band\b)[ \t]*)?")
# "A. K. Ramanathan", "J.R. Okafor", "K. Ivanova", "E. van Dijk": initials before a surname
_INITIALS = re.compile(
    rf"(?<![\w.])(?:[\p{{Lu}}]\.[ \t]?){{1,3}}[ \t]*(?P<p>{_PARTICLE})(?P<b>{_W})(?![\w.]*@)"
)
# "Nikolaidis told Papadakis", "Okafor asked Lindqvist": a lone surname as the subject of a verb of talking
_SPEAKER = re.compile(
    rf"(?<![\w.\-])(?P<n>{_W})[ \t]+(?:told|asked|emailed|called|phoned|texted|messaged|informed|reminded|"
    rf"thanked|warned|promised|assured|replied[ \t]+to|wrote[ \t]+to)[ \t]+(?P<m>{_W})?"
)
# "Kagiso and Lerato Mokoena": a given name joined to a full name shares its surname
_SHARED_SURNAME = re.compile(rf"(?<![\w.\-])(?P<x>{_W})[ \t]+(?:and|&)[ \t]+(?P<y>{_W})[ \t]+(?P<z>{_W})")
# "my daughter Summer", "her husband Will": after a kinship/role noun a capitalized word is a name even when it
# is also an everyday word
_KIN_NAME = re.compile(
    rf"(?i:\b(?:my|our|his|her|their|your)[ \t]+(?:little[ \t]+|older[ \t]+|younger[ \t]+|eldest[ \t]+)?"
    rf"(?:daughter|son|wife|husband|mother|father|mom|mum|dad|sister|brother|grandson|granddaughter|grandmother|"
    rf"grandfather|niece|nephew|aunt|uncle|cousin|fiancée?|girlfriend|boyfriend|partner|neighbou?r|landlord|"
    rf"landlady|flatmate|roommate|colleague|coworker|co-worker|boss|manager))[ \t]*,?[ \t]+(?P<n>{_W})"
)
# "Rahul: done. Ananya: reviewing. Vikram: blocked": a stand-up list of "Name: status"
_STATUS_ITEM = re.compile(rf"(?:^|(?<=[.;!\n][ \t]*))(?P<n>{_W}):[ \t]+\p{{Ll}}", re.M)
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
            if m.group("work") and len(cls) == 1 and cls[0] not in ("F", "L"):
                continue  # "Gartner's report", "Mozilla's proposal": organisations write these too
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
        if "." in text:
            for m in _INITIALS.finditer(text):
                prev = _rx(r"([\p{L}]+)[ \t]*$").search(text[max(0, m.start() - 30):m.start()])
                if prev and prev.group(1)[0].isupper() and _token_class(prev.group(1), lex) in ("C", "K", "X"):
                    continue  # "Appendix B. Kubernetes", "Plan B. Docker": a label letter, not an initial
                cb = _token_class(m.group("b"), lex)
                if cb in ("F", "L") or cb == "U" and _vowelly(m.group("b")):
                    e = m.end() - (2 if text[m.end() - 2:m.end()] in ("'s", "’s") else 0)
                    out.append(self._result(m.start(), e, 0.75, "initials and surname"))
        for m in _KIN_NAME.finditer(text):
            if _token_class(m.group("n"), lex) in ("F", "L", "U", "A"):
                out.append(self._result(m.start("n"), m.end("n"), 0.7, "name after a kinship noun"))
        for m in _SPEAKER.finditer(text):
            cn = _token_class(m.group("n"), lex)
            if cn in ("F", "L") or cn == "U" and _vowelly(m.group("n")):
                if text[max(0, m.start() - 4):m.start()].strip().lower() in ("the", "a", "an"):
                    continue
                out.append(self._result(m.start("n"), m.end("n"), 0.6, "subject of a verb of talking"))
        for m in _SHARED_SURNAME.finditer(text):
            cx, cy, cz = (_token_class(m.group(k), lex) for k in ("x", "y", "z"))
            if (cy == "F" or cz in ("F", "L")) and cy in ("F", "L", "U") and cz in ("F", "L", "U") and \
                    (cx == "F" or cx == "U" and _vowelly(m.group("x"))):
                out.append(self._result(m.start("x"), m.end("x"), 0.6, "given name sharing a surname"))
        status = [m for m in _STATUS_ITEM.finditer(text)]
        if len(status) >= 2:
            cls = [_token_class(m.group("n"), lex) for m in status]
            if "F" in cls:
                for m, c in zip(status, cls, strict=False):
                    if c in ("F", "L") or c == "U" and _vowelly(m.group("n")):
                        out.append(self._result(m.start("n"), m.end("n"), 0.6, "name in a status list"))
        for cue in _LIST_CUE.finditer(text):
            pos = cue.end()
            items = []
            while True:
                it = _LIST_ITEM.match(text, pos)
                if not it or not namey(classes(_rx(rf"^{_PARTICLE}").sub("", it.group("n")))):
                    break
                items.append(self._result(it.start("n"), it.end("n"), 0.7, "name in a list of people"))
                if not it.group("sep"):
                    break
                pos = it.end()
            if len(items) >= 2 or not cue.group("verb"):  # "assigned to X and Y": a list, not "assigned to Jira"
                out.extend(items)
        return out


# "Kagiso and Lerato Mokoena", "from Gulnara Ismailova to Rustam": a name-like word coordinated with a detected
# person is a person too
_COORD_LEFT = re.compile(rf"(?<![\w.\-])(?P<n>{_W})[ \t]+(?:and|&)[ \t]+$")
_COORD_RIGHT = re.compile(rf"[ \t]+(?:and|&)[ \t]+(?P<n>{_W})(?![\w'’\-]|[ \t]+\p{{Lu}}|[ \t]*&)")
_FROM_TO = re.compile(rf"[ \t]+to[ \t]+(?P<n>{_W})(?![\w'’\-]|[ \t]+\p{{Lu}})")


def coordinated_names(text: str, findings: list) -> list:
    """Findings plus PERSON for name-like words joined to a detected person by "and"/"&" or "from <person> to"."""
    persons = [f for f in findings if f.entity_type == "PERSON"]
    if not persons:
        return findings
    from slm_pipeline.core.anonymize.findings import Finding

    lex = _lexicon()
    taken = [(f.start, f.end) for f in findings]
    out = list(findings)

    def add(s: int, e: int) -> None:
        w = text[s:e]
        c = _token_class(w, lex)
        if (c in ("F", "L") or c == "U" and _vowelly(w)) and not any(a < e and s < b for a, b in taken):
            out.append(Finding("PERSON", s, e, 0.6, w, "PersonStructureRecognizer"))
            taken.append((s, e))

    for f in persons:
        m = _COORD_LEFT.search(text, max(0, f.start - 40), f.start)
        if m and m.end() == f.start:
            add(m.start("n"), m.end("n"))
        m = _COORD_RIGHT.match(text, f.end)
        if m:
            add(m.start("n"), m.end("n"))
        if _rx(r"(?i:\bfrom)[ \t]+$").search(text[max(0, f.start - 8):f.start]):
            m = _FROM_TO.match(text, f.end)
            if m:
                add(m.start("n"), m.end("n"))
    return out

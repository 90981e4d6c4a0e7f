"""PERSON from the shape of a mention, for names no list knows ("Faina D. Yefremova's", "Gebremedhin's team",
"the founders: Kónya, Becker and Vasquez", "the Jensen novel"). Every rule needs a name-like token: capitalized,
not a dictionary/support/place word, not camelCase or all-caps (token classes of names.py)."""

from __future__ import annotations

import regex as re
from presidio_analyzer import RecognizerResult

from slm_pipeline.core.anonymize.lexicons import _lexicon, _norm_word, _rx, _strip_accents
from slm_pipeline.core.anonymize.recognizers.base import _OurRecognizer
from slm_pipeline.core.anonymize.recognizers.names import _singular, _token_class

_W = r"[\p{Lu}][\p{L}\p{M}'’\-]+"
_NAMEISH = {"F", "L", "U"}
# "Faina D. Yefremova": given name, initial, surname
_INITIAL = re.compile(rf"(?<![\w.])(?P<a>{_W})[ \t]+[\p{{Lu}}]\.[ \t]+(?P<b>{_W})")
# "Dalisay Kónya's account", "Gebremedhin's manager": a possessive before a word that belongs to people. A lone
# unknown word needs a kin/role noun ("Ubuntu's team", "Mozilla's blog" are organisations).
_PERSON_ONLY = (r"manager|assistant|colleague|wife|husband|partner|son|daughter|mother|father|parents|boss|kids|children|"
                r"e-?mail|phone|mobile|number|address|desk|family|birthday|wedding|flat|house|car|message|reply|voicemail|"
                r"calendar")
# (Irish/Dutch/Arabic particles before a surname: "Ó Súilleabháin", "van den Broek", "Al Masri")
_PARTICLE = r"(?:(?i:van|von|de|der|den|du|da|di|del|della|le|la|ter|ten|bin|bint|ibn|al|el|ó|ní|nic|ua|mac)[ \t]+){0,2}"
_POSSESSIVE = re.compile(
    rf"(?<![\w.])(?P<n>{_PARTICLE}{_W}(?:[ \t]+{_W}){{0,2}})['’]s[ \t]+(?:(?:new|old|own|previous|current)[ \t]+)?"
    rf"(?:(?P<kin>{_PERSON_ONLY})|team|group|call|meeting|shift|rota|leave|approval|account|office|request|"
    r"complaint|booking|ticket|"
    r"profile|membership|card|subscription|invoice|refund|(?P<work>case|thesis|notes|"
    r"presentation|draft|feedback|comments?|suggestions?|questions?|idea|argument|point|slides|talk|patch|commit|"
    r"pull[ \t]+request|code[ \t]+review))\b"
)
# "the founders: Kónya, Becker and Vasquez", "cc: Anahit Ragnarsdóttir, Unai Tesfaye"
_LIST_CUE = re.compile(
    r"(?i)\b(?:co-?founders|founders|authors|owners|members|staff|agents|contributors|maintainers|participants|"
    r"speakers|winners|hosts|guests|colleagues|organi[sz]ers|attendees|recipients|cc|bcc|panel|panelists|"
    r"interviewers|reviewers|judges|assignees|approvers|signatories|witnesses|present|absent|apologies|invitees|"
    r"invited|on[ \t]+call)[ \t]*:[ \t]*"
    r"|\b(?P<verb>assigned|reassigned|delegated|handed[ \t]+over)[ \t]+to[ \t]+"
)
_PARTICLE_WORDS = frozenset("van von de der den du da di del della le la ter ten bin bint ibn al el ó ní nic ua mac".split())
_LIST_ITEM = re.compile(rf"(?P<n>{_PARTICLE}{_W}(?:[ \t]+{_W}){{0,2}})(?P<sep>[ \t]*(?:,|&|\band\b)[ \t]*)?")
# "A. K. Ramanathan", "J.R. Okafor", "K. Ivanova", "E. van Dijk": initials before a surname
_INITIALS = re.compile(
    rf"(?<![\w.])(?:[\p{{Lu}}]\.[ \t]?){{1,3}}[ \t]*(?P<p>{_PARTICLE})(?P<b>{_W})(?![\w.]*@)"
)
# "Nikolaidis told Papadakis", "Okafor asked Lindqvist": a lone surname as the subject of a verb of talking
_SPEAKER = re.compile(
    rf"(?<![\w.\-])(?P<p>{_PARTICLE})(?P<n>{_W})[ \t]+(?:took[ \t]+over|is[ \t]+out[ \t]+(?:until|till|today|sick)|"
    rf"is[ \t]+on[ \t]+(?:leave|holiday|vacation)|told|asked|emailed|called|phoned|texted|messaged|informed|reminded|"
    rf"thanked|warned|promised|assured|replied[ \t]+to|wrote[ \t]+to|said|says|retires|retired|resigned|resigns|"
    rf"disagrees|disagreed|insists|insisted|admitted|admits|apologi[sz]ed|smiled|laughed|nodded|shrugged|sighed)"
    rf"(?:[ \t]+(?P<m>{_W})|[ \t]+(?P<obj>me|us|you|him|her|them)\b)?"
)
_HONORIFIC_SUFFIX = re.compile(rf"(?<![\w.])(?P<n>{_W}?)-(?:san|sama|kun|chan|sensei|senpai|ji|ssi|nim)(?![\w\-])")
_LOWER_TITLE = re.compile(r"\b(?:mr|mrs|ms|miss|dr)\.?[ \t]+(?P<n>\p{Ll}[\p{Ll}\p{M}'’\-]{2,}(?:[ \t]+\p{Ll}[\p{Ll}\p{M}'’\-]{2,})?)")
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

# Chat text in lower case: "maria says the link expired", "re kostas, did you ...", "fatima and yusuf are ...",
# "is eilidh's flat ...". The name must be a given name of the gazetteer that is no dictionary word, or (with a
# verb of talking, a chat vocative or a possessive) a word no word list knows.
_LOW = r"\p{Ll}[\p{Ll}\p{M}'’\-]{2,}"
_LOWER_SUBJECT = re.compile(
    rf"(?<![\w'’\-@./])(?P<n>{_LOW})[ \t]+(?:just[ \t]+|also[ \t]+)?(?:(?P<talk>said|says|told|asked|wrote|replied|"
    r"texted|messaged|emailed|called)|forgot|fixed|thinks|thought|wants|wanted|needs|knows|left|sent|has|had|is|was|"
    r"will|can|did)\b")
_CHAT_NEXT = r"[ \t]+(?:u|r[ \t]+u|pls|plz|i['’](?:ll|m|ve))\b"
_LOWER_VOCATIVE = re.compile(
    rf"(?<=\b(?:ok|okay|lol|lmao|omg|re|yo|thx|thanks|ty|sorry)[ \t]+)(?P<n>{_LOW})(?=[ \t]*,|{_CHAT_NEXT})"
    rf"|^(?P<n>{_LOW})(?={_CHAT_NEXT})")
_NOT_SUBJECT_BEFORE = re.compile(r"(?i)\b(?:the|a|an|this|that|these|those|our|your|my|his|her|their|its|of|to|on|"
                                 r"for|with|from|in|at|by|each|every|no|any)[ \t]+$")
_LOWER_PAIR = re.compile(rf"(?<![\w'’\-@./])(?P<a>{_LOW})[ \t]+(?:and|&)[ \t]+(?P<b>{_LOW})(?![\w'’\-@])")
_LOWER_POSSESSIVE = re.compile(rf"(?<![\w'’\-@./])(?P<n>{_LOW})['’]s[ \t]+(?:{_PERSON_ONLY})\b")
# "[09:14] Tewodros: did anyone ...", "[chat] lena: ok the card ...": the speaker labels of a transcript
_SPEAKER_LABEL = re.compile(r"^(?P<pre>(?:\[[^\]\n]{1,20}\][ \t]*|\d{1,2}:\d\d(?::\d\d)?[ \t]+)*)"
                            r"(?P<n>[\p{L}][\p{L}\p{M}'’\-]{1,30}):[ \t]+\S", re.M)
_ROLE_LABELS = frozenset("agent customer user support bot assistant system operator rep staff admin me you host "
                         "moderator guest caller".split())


def _lower_given(low: str, lex) -> bool:
    return low in lex.first and low not in lex.broad_common and low not in lex.stop and low not in lex.ambiguous \
        and not _singular(low, lex)


def _lower_unknown(low: str, lex) -> bool:
    return low not in lex.dictionary and low not in lex.broad_common and low not in lex.stop and \
        not _singular(low, lex) and _vowelly(low) and "-" not in low


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
            words = [w for w in _rx(r"\S+").finditer(m.group("n"))
                     if not (w.group(0).lower() in _PARTICLE_WORDS and w.end() < len(m.group("n")))]
            cls = [_token_class(w.group(0), lex) for w in words]
            while len(cls) > 1 and cls[0] == "C":  # "Per Okafor's email": a sentence word, then the name
                words, cls = words[1:], cls[1:]
            start = m.start("n") + words[0].start()
            if _rx(_PARTICLE).match(m.group("n")).end() == words[0].start():
                start = m.start("n")  # "from van den Broek's call": the particles are part of the name
            if m.group("work") and len(cls) == 1 and cls[0] not in ("F", "L"):
                continue  # "Gartner's report", "Mozilla's proposal": organisations write these too
            lone_ok = cls[0] in ("F", "L") or cls[0] == "U" and _vowelly(words[0].group(0))
            if namey(cls) and (m.group("kin") and lone_ok or len(cls) > 1 or cls[0] in ("F", "L")):
                out.append(self._result(start, m.end("n"), 0.7, "possessive before a person's noun"))
        for m in _HONORIFIC_SUFFIX.finditer(text):
            if _token_class(m.group("n"), lex) in ("F", "L", "U", "A"):
                out.append(self._result(m.start("n"), m.end("n"), 0.75, "name before an honorific suffix"))
        for m in _LOWER_TITLE.finditer(text):
            words = m.group("n").split()
            if not any(w in lex.broad_common or w in lex.stop or _singular(w, lex) for w in words[:1]):
                if len(words) > 1 and (words[1] in lex.broad_common or words[1] in lex.stop):
                    words = words[:1]
                out.append(self._result(m.start("n"), m.start("n") + len(" ".join(words)), 0.7,
                                        "lower-case name after a title"))
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
            # "Rose asked me": a name that is also an everyday word only with a person as the object
            if cn in ("F", "L") or cn == "U" and _vowelly(m.group("n")) or cn == "A" and m.group("obj"):
                if text[max(0, m.start() - 4):m.start()].strip().lower() in ("the", "a", "an"):
                    continue
                start = m.start("p") if m.group("p") else m.start("n")
                out.append(self._result(start, m.end("n"), 0.6, "subject of a verb of talking"))
        for m in _SHARED_SURNAME.finditer(text):
            cx, cy, cz = (_token_class(m.group(k), lex) for k in ("x", "y", "z"))
            if (cy == "F" or cz in ("F", "L")) and cy in ("F", "L", "U") and cz in ("F", "L", "U") and \
                    (cx == "F" or cx == "U" and _vowelly(m.group("x"))):
                out.append(self._result(m.start("x"), m.end("x"), 0.6, "given name sharing a surname"))
        for m in _LOWER_SUBJECT.finditer(text):
            low = _norm_word(m.group("n"))
            if _NOT_SUBJECT_BEFORE.search(text, max(0, m.start() - 8), m.start()):
                continue  # "the server is ...": a noun phrase, not a name
            # a name that is also a dictionary entry ("maria") or no known word at all only before a verb of talking
            if _lower_given(low, lex) and (low not in lex.dictionary or m.group("talk")) or \
                    m.group("talk") and _lower_unknown(low, lex):
                out.append(self._result(m.start("n"), m.end("n"), 0.6, "lower-case name as a subject"))
        for rx in (_LOWER_VOCATIVE, _LOWER_POSSESSIVE):
            for m in rx.finditer(text):
                low = _norm_word(m.group("n"))
                if _lower_given(low, lex) or _lower_unknown(low, lex):
                    out.append(self._result(m.start("n"), m.end("n"), 0.6, "lower-case name in chat"))
        for m in _LOWER_PAIR.finditer(text):
            if _lower_given(_norm_word(m.group("a")), lex) and _lower_given(_norm_word(m.group("b")), lex):
                out.append(self._result(m.start("a"), m.end("a"), 0.6, "lower-case given names joined by 'and'"))
                out.append(self._result(m.start("b"), m.end("b"), 0.6, "lower-case given names joined by 'and'"))
        labels = list(_SPEAKER_LABEL.finditer(text)) if ":" in text else []
        if len(labels) >= 2 and (any(m.group("pre") for m in labels) or
                                 any(m.group("n").lower() in _ROLE_LABELS for m in labels)):
            for m in labels:
                w, low = m.group("n"), _norm_word(m.group("n"))
                c = _token_class(w, lex)
                if low in _ROLE_LABELS or c in ("C", "X", "K", "P", "A"):
                    continue
                if c in ("F", "L") or c == "U" and _vowelly(w) or c == "l" and (_lower_given(low, lex) or
                                                                                _lower_unknown(low, lex)):
                    out.append(self._result(m.start("n"), m.end("n"), 0.6, "speaker label of a transcript"))
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
_COORD_LEFT = re.compile(rf"(?<![\w.\-])(?P<n>{_W})(?:[ \t]+(?:and|&)[ \t]+|[ \t]*/[ \t]*)$")
_COORD_RIGHT = re.compile(rf"(?:[ \t]+(?:and|&)[ \t]+|[ \t]*/[ \t]*)(?P<n>{_W})(?![\w'’\-/]|[ \t]+\p{{Lu}}|[ \t]*&)")
# "Liis Kask", "Morag Sutherland": a detected name grows over a name-like word right next to it on the same line
_LEFT_WORD = re.compile(rf"(?<![\w.\-'’])(?P<n>{_W})[ ]$")
_RIGHT_WORD = re.compile(rf"[ ](?P<n>{_W})(?![\w'’\-@.]|[ \t]+\p{{Lu}})")
_EMAIL_PART = re.compile(r"[\p{L}]{3,}")
_FROM_TO = re.compile(rf"[ \t]+to[ \t]+(?P<n>{_W})(?![\w'’\-]|[ \t]+\p{{Lu}})")


def _capital_given_name(word: str, lex) -> bool:
    """A capitalized word inside a sentence that the word lists call common but that reads as a given name: a stop
    word that is also a first name ("Will"), or a word no dictionary knows ("Liis")."""
    low = _norm_word(word)
    if _rx(r"['’]").search(word):
        return False
    if low in lex.first and (low in lex.stop or low not in lex.narrow_common):
        return True
    return low not in lex.narrow_common and low not in lex.dictionary and low not in lex.stop and _vowelly(word)


def _surname_after_given(given: str, word: str, lex) -> bool:
    """'Hannah Greenberg', 'Connor Whitehorse': after a lone given name, a capitalized word that the dictionary knows
    only as a noun (WordNet lists famous surnames and towns) and that is no everyday or place-type word is the
    surname, when punctuation follows ("My Harper Cargo has ..." is a product's name and a noun)."""
    from slm_pipeline.core.anonymize.lexicons import _wordnet_non_nouns

    low = _norm_word(word)
    return " " not in given.strip() and _token_class(given, lex) in ("F", "U") and len(low) >= 3 and \
        low not in lex.narrow_common and low not in lex.heads and low not in _wordnet_non_nouns() and \
        not _singular(low, lex) and _vowelly(word)


def coordinated_names(text: str, findings: list) -> list:
    """Findings plus PERSON for name-like words joined to a detected person by "and"/"&" or "from <person> to"."""
    persons = [f for f in findings if f.entity_type == "PERSON"]
    emails = [f for f in findings if f.entity_type == "EMAIL_ADDRESS"]
    if not persons and not emails:
        return findings
    from slm_pipeline.core.anonymize.findings import Finding

    lex = _lexicon()
    taken = [(f.start, f.end) for f in findings]
    out = list(findings)

    def add(s: int, e: int, any_case: bool = False) -> None:
        w = text[s:e]
        c = _token_class(w, lex)
        if (any_case or c in ("F", "L") or c == "U" and _vowelly(w)) and not any(a < e and s < b for a, b in taken):
            out.append(Finding("PERSON", s, e, 0.6, w, "PersonStructureRecognizer"))
            taken.append((s, e))

    def grow(f, s: int, e: int) -> None:
        w = (text[s:f.start] if s < f.start else text[f.end:e]).strip()
        c = _token_class(w, lex)
        # "and Will Hartley": a capitalized given name that is also a stop word, inside a sentence
        mid_sentence = s < f.start and _rx(r"[\p{Ll},][ \t]+$").search(text[max(0, s - 6):s])
        # a word that is also an everyday word ("Ask", "Will") only inside a sentence, never as its first word
        everyday_ok = s >= f.start or mid_sentence
        if not everyday_ok and (_norm_word(w) in lex.dictionary or _singular(_norm_word(w), lex)):
            return  # "Ask Mirela Baciu ...": an imperative at the start of a sentence
        if not (c in ("F", "L") or c == "A" and everyday_ok or c == "U" and _vowelly(w) or c == "C" and mid_sentence
                and _capital_given_name(w, lex) or c == "C" and e > f.end and _surname_after_given(f.text, w, lex)
                and _rx(r"[ \t]*(?:[,;.!?)\n]|$)").match(text, e)) \
                or _norm_word(w) in lex.heads:
            return
        if e > f.end and _rx(r"[ \t]+([\p{L}]+)").match(text, e) and \
                _norm_word(_rx(r"[ \t]+([\p{L}]+)").match(text, e).group(1)) in lex.heads:
            return  # "Anna Hill Street"
        if any(a < e and s < b and (a, b) != (f.start, f.end) for a, b in taken):
            return
        out.append(Finding("PERSON", s, e, f.score, text[s:e], f.source))
        taken.append((s, e))

    for f in emails:  # "write to fiona.mackay@... - fiona is away": a name part of the address stands alone
        for part in _EMAIL_PART.findall(f.text.split("@")[0]):
            low = part.lower()
            if low in lex.broad_common or low in lex.stop or _singular(low, lex) or not (
                    low in lex.first or low in lex.last or _vowelly(low)):
                continue
            for m in _rx(rf"(?i)(?<![\w.@\-]){re.escape(low)}(?![\w@\-]|\.\w)").finditer(text):
                add(m.start(), m.end(), any_case=True)
    for f in persons:
        if "\n" not in f.text:
            m = _LEFT_WORD.search(text, max(0, f.start - 40), f.start)
            if m and m.end() == f.start and not _rx(r"(?i)\b(?:the|a|an)[ \t]+$").search(text[max(0, m.start() - 5):m.start()]):
                grow(f, m.start("n"), f.end)
            m = _RIGHT_WORD.match(text, f.end)
            if m and f.text[-1:].isalpha():
                grow(f, f.start, m.end("n"))
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

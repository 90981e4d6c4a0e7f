"""STREET_ADDRESS by structure, for streets no word list knows ("Koskikatu 25 Apt. 864\\n33100 Tampere\\nFinland",
"Miła 184, Ciechanów", "1051 Budapest, Nádor utca 12."): a street line (words + house number) counts when a
postcode/city line follows, or when an address phrase ("ship to", "my address is") comes right before."""

from __future__ import annotations

import regex as re
from presidio_analyzer import RecognizerResult

from slm_pipeline.core.anonymize.lexicons import _lexicon, _norm_word, _rx
from slm_pipeline.core.anonymize.recognizers.addresses import (
    _ADDR_TRIGGER,
    _CITY,
    _EU_PC,
    StreetAddressRecognizer,
)
from slm_pipeline.core.anonymize.recognizers.base import _OurRecognizer
from slm_pipeline.core.anonymize.recognizers.names import _singular

# up to 4 words, the first capitalized (Slavic/Hungarian/Estonian street types are lower-case: "Miskolci utca")
_STREET_WORDS = r"[\p{Lu}][\p{L}\p{M}'’\-]*\.?(?:[ \t]+[\p{L}\p{M}'’\-]+\.?){0,3}"
_STREET_LINE = re.compile(
    rf"(?<![\w@/#.:\-])(?P<street>{_STREET_WORDS}),?[ \t]+(?:(?i:no|nr|nº)\.?[ \t]*)?"
    r"(?P<num>\d{1,4}[a-zA-Z]?(?:[/\-]\d{1,4}[a-zA-Z]?)?)\.?(?![\w\-/:@]|\.\d)"
)
# units after the number: "Apt. 864", "A 12", "3. th." (Danish floor/side), "lgh 1102"
_UNIT = re.compile(
    r"(?:(?:[ \t]*,)?[ \t]+(?:(?i:apt\.?|apartment|flat|unit|suite|ste\.?|lgh|lok\.?|door|m\.)[ \t]*\d{1,4}[a-zA-Z]?|"
    r"[A-H][ \t]\d{1,3}|\d{1,2}\.[ \t]*(?:th|tv|mf|sal)\.?)(?![\w]))+"
)
_PC_ONLY = re.compile(rf"(?:[ \t]*,[ \t]*|[ \t]*\n[ \t]*)(?:[A-Z]{{1,2}}-\d{{4,5}}|{_EU_PC})(?![\w\-])")
_LOCALITY_BEFORE = re.compile(rf"(?:(?:{_EU_PC})[ \t]+)?{_CITY}[ \t]*(?:,[ \t]*|\n[ \t]*)$")
_BR_UF = re.compile(r"[ \t]*/[ \t]*[A-Z]{2}(?![\w])")  # "Cunha de Silva/MA"
# a line ending in an address cue: "Send the lock to:\n", "Invoice address:\n", "Shipping to "
_CUE_BEFORE = re.compile(r"(?i)\b(?:to|at|address|addresse|shipping|delivery|invoice|billing|near)[ \t]*:?[ \t]*\n?[ \t]*$")
# what _extend_right leaves: "Benešov nad Ploučnicí", "Santos - DF", "Netherlands 7821WT", "\n23362-687"
_TAILS = [
    re.compile(r"[ \t]+(?:nad|pod|lui|na|u|am|an|der|de|da|do|del|di)[ \t]+[\p{Lu}][\p{L}\p{M}\-]+"),
    re.compile(r"[ \t]*-[ \t]*[A-Z]{2}(?![\w])"),
    re.compile(rf"[ \t]+(?:{_EU_PC})(?![\w\-])"),
]
_BR_TAIL = re.compile(r"[ \t]*-[ \t]*[\p{Lu}][\p{L}\p{M}' ]{1,30}?(?=\n|,)")  # "95 - Tupi A\nSantos - DF"


class AddressBlockRecognizer(_OurRecognizer):
    ENTITY = "STREET_ADDRESS"

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        if not any(c.isdigit() for c in text):
            return []
        lex = _lexicon()
        out: list[RecognizerResult] = []
        triggers = [t.end() for t in _ADDR_TRIGGER.finditer(text)]
        for m in _STREET_LINE.finditer(text):
            street_start = m.start("street")
            # "Ship it to Koskikatu 25": the street starts after the last lower-case everyday word
            for w in _rx(r"\S+").finditer(m.group("street")):
                low = _norm_word(w.group(0).strip(".,"))
                if w.group(0)[:1].islower() and (low in lex.stop or low in lex.narrow_common):
                    street_start = m.start("street") + w.end()
            street = text[street_start:m.end("street")].strip()
            if not street or not street[0].isupper():
                continue
            street_start = text.index(street, street_start)
            words = [_norm_word(w.strip(".,")) for w in street.split()]
            if len(m.group("num")) == 4 and m.group("num").isdigit() and int(m.group("num")) > 1900:
                continue  # "Windows 2000", "since 2019"
            unknown = [w for w in words if w and w not in lex.broad_common and w not in lex.stop and w not in lex.heads]
            if _rx(r"[A-Z]{3,}\b(?!\.)|\p{Ll}\p{Lu}").search(street):
                continue  # "LoopBike 2", "macOS 14", "HTTP 404": product or code, not a street
            s, e = street_start, m.end()
            u = _UNIT.match(text, e)
            if u:
                e = u.end()
            b = _BR_TAIL.match(text, e)
            if b:
                e = b.end()
            e2, bonus = StreetAddressRecognizer._extend_right(text, e, lex)
            uf = _BR_UF.match(text, e2)
            if uf:
                e2 = uf.end()
                e2, bonus = StreetAddressRecognizer._extend_right(text, e2, lex)
            for _ in range(4):
                start = e2
                for rx in (*_TAILS, _PC_ONLY):
                    t = rx.match(text, e2)
                    if t:
                        e2, bonus = t.end(), max(bonus, 0.1 if rx is not _TAILS[0] else bonus)
                e2, more = StreetAddressRecognizer._extend_right(text, e2, lex)
                bonus = max(bonus, more)
                if e2 == start:
                    break
            tail_words = [_norm_word(w) for w in _rx(r"[\p{L}]{3,}").findall(text[e:e2])]
            located = bonus > 0 and any(w in lex.places or (w not in lex.broad_common and not _singular(w, lex))
                                        for w in tail_words)  # "10000 Users" is no city
            if not unknown and not located:
                continue  # "Version 2", "Day 3": no street-name word and no postcode/city line
            lb = _LOCALITY_BEFORE.search(text[max(0, s - 50):s])
            s0 = s - len(lb.group(0)) if lb else s
            cue = any(0 <= s0 - t <= 40 and not _rx(r"[.!?]").search(text[t:s0]) for t in triggers) or \
                bool(_CUE_BEFORE.search(text[max(0, s0 - 40):s0]))
            if not located and not cue:
                continue
            if lb and (cue or bonus > 0) and not all(_norm_word(w) in lex.broad_common
                                                     for w in _rx(r"[\p{L}]{3,}").findall(lb.group(0))):
                s = s0  # "Tótkövesd\nSzékvárai utca 130." / "1051 Budapest, Nádor utca 12."
            out.append(self._result(s, e2, 0.7 if located else 0.55, "street line + locality" if located else
                                    "street line after address phrase"))
        return out

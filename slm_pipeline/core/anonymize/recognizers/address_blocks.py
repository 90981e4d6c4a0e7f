"""STREET_ADDRESS by structure, for streets no word list knows ("Koskikatu 25 Apt. 864\\n33100 Tampere\\nFinland",
"Miła 184, Ciechanów", "1051 Budapest, Nádor utca 12."): a street line (words + house number) counts when a
postcode/city line follows, or when an address phrase ("ship to", "my address is") comes right before."""

from __future__ import annotations

import bisect

import regex as re
from presidio_analyzer import RecognizerResult

from slm_pipeline.core.anonymize.lexicons import (
    _COUNTRY_NAMES,
    _RISKY_SUFFIXES,
    _STREET_SUFFIX_WORDS,
    _lexicon,
    _norm_word,
    _rx,
)
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


_MEASURE_UNIT = re.compile(
    r"[ \t]*(?:[kKMGTP]i?[Bb](?:it)?(?:ps|/s)?|[kKMG]?bps|[kMG]?Hz|ms|µs|ns|rpm|px|dpi|fps|Wh|kW|mAh|°|%)(?![\w])"
)


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
            if _MEASURE_UNIT.match(text, m.end()):
                continue  # "Link is Up 1000 Mbps", "Timeout 30 ms": a quantity, not a house number
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


# ---------------------------------------------------------------------------------------------------------
# Multi-line address blocks (post-processing of the findings)
# ---------------------------------------------------------------------------------------------------------
# A detected street line is usually the first line of a block whose further lines (unit/floor, district,
# "postcode city", region, country) are just as identifying: "Rua Augusta 274, 3.º Esq.\n1100-053 Lisboa\nPortugal".
# And a short "words + number" line that a postcode/city or country line follows is a street line even when no
# street-type word names it ("Vinohradská 1511/230\n100 00 Praha 10", "3-14-2 Jingumae, Shibuya-ku\nTokyo 150-0001").

_CONNECTORS = frozenset(
    "de da do dos das del della di du des la le les y e i of upon on sur am an der den van von nad pod im bei "
    "en el al".split()
)
_MONTHS = frozenset(
    "january february march april may june july august september october november december jan feb mar apr jun "
    "jul aug sep sept oct nov dec monday tuesday wednesday thursday friday saturday sunday".split()
)
_SEG_SPLIT = re.compile(r"[ \t]*(?:,|;|[ \t]-[ \t]|[ \t]–[ \t]|/|\|)[ \t]*")
_LABEL = re.compile(r"[\p{L}\p{M}][\p{L}\p{M}'’.\-]*(?:[ \t]+[\p{L}\p{M}'’.\-]+){0,2}(?<!(?i:\bno|\bnr|\bd|\bkat|\bdaire))"
                    r"[ \t]*:[ \t]*")  # "Address: ", "Địa chỉ: " (not "No: 215")
_PC_TOKEN = (
    r"(?:\d{5}(?:-\d{3,4})?|\d{4}-\d{3}|\d{3}[ ]\d{2}|\d{2}-\d{3}|\d{3}-\d{4}|\d{4}|\d{6}|[A-Z]\d{4}[A-Z]{3}|"
    r"[AC-FHKNPRTV-Y]\d{2}[ ]?[AC-FHKNPRTV-Y0-9]{4}|[A-Z]\d[A-Z][ ]?\d[A-Z]\d|"
    r"[A-Z]{1,2}\d[A-Z\d]?[ ]?\d[A-Z]{2})"
)
_PLACE = r"[\p{Lu}][\p{L}\p{M}'’.\-]+(?:[ \t]*[ \t/][ \t]*(?:(?:de|do|da|del|di|la|le|sur|am|an|der|upon|on)[ \t]+)?[\p{Lu}\d][\p{L}\p{M}'’.\-]*){0,3}"
_PC_LINE = re.compile(
    rf"(?:{_PC_TOKEN},?[ \t]+{_PLACE}(?:[ \t]*\([\p{{L}} ]+\))?|{_PLACE},?[ \t]+(?:[A-Z]{{2,3}}[ \t]+)?{_PC_TOKEN}|"
    rf"{_PLACE},[ \t]*{_PLACE},?[ \t]+{_PC_TOKEN}|{_PC_TOKEN})\.?"
)
_COUNTRY_LINE = re.compile(rf"(?:{_COUNTRY_NAMES})(?:[ \t]*/[ \t]*(?:{_COUNTRY_NAMES}))?\.?")


_SAFE_STREET_TYPES = frozenset(_STREET_SUFFIX_WORDS) - _RISKY_SUFFIXES


def _seg_ok(seg: str, lex, strict: bool) -> bool:
    """One comma/dash-separated piece of an address line: unit ("apto 52", "3e étage", "m. 17"), place words,
    postcode. Lower-case words only as short abbreviations next to a number or with a dot; `strict` also wants a
    digit or a capitalized word that is not an everyday English word."""
    toks = seg.split()
    if not toks or len(toks) > 6 or toks[0] in _CONNECTORS:
        return False  # "on Monday", "in the lobby": the sentence goes on
    strong = False
    for i, tok in enumerate(toks):
        core = tok.strip(".,()'’º°ª#")
        if not core or any(c.isdigit() for c in tok):
            strong = strong or any(c.isdigit() for c in tok)
            continue
        low = _norm_word(core)
        if core[0].isupper():
            if low in _MONTHS:
                return False
            if not strict or (low not in lex.narrow_common or low in lex.places) and low not in _MONTHS:
                strong = True
            continue
        if low in _CONNECTORS:
            continue
        near_digit = any(any(c.isdigit() for c in t) for t in toks[max(0, i - 1):i + 2])
        if len(core) <= 6 and (tok.endswith(".") or near_digit) and (low not in lex.stop or tok.endswith(".")):
            continue
        return False
    return strong


def _line_ok(line: str, lex, strict: bool = True) -> bool:
    line = line.strip()
    if not line or len(line) > 60 or "@" in line or "+" in line or line.endswith((",", "?", "!")):
        return False
    if _rx(r"[\d()\-. /]+").fullmatch(line) and sum(c.isdigit() for c in line) >= 7 and not _PC_LINE.fullmatch(line):
        return False  # "(07033) 629523": a phone number line
    if ":" in _rx(r"(?i)\b(?:no|nr|d|kat|daire)[ \t]*:").sub("", line):
        return False  # "Tel: ...", "Contact: ...": a new field, not the address
    if _rx(r"\d{1,2}:\d{2}").search(line):
        return False
    return all(_seg_ok(s, lex, strict) for s in _SEG_SPLIT.split(line.rstrip(".")) if s.strip())


def _locality_line(line: str, lex) -> bool:
    """'4000-442 Porto', 'Tokyo 150-0001', 'Brampton, ON L6R 0W3', 'D04 E2X7', or a country line."""
    line = line.strip()
    if _COUNTRY_LINE.fullmatch(line):
        return True
    if not _PC_LINE.fullmatch(line):
        return False
    words = [_norm_word(w) for w in _rx(r"[\p{L}]{3,}").findall(line)]
    # "1200 Users", "2048 Bytes", "2024 Roadmap" are counts and years, not "postcode city"
    if not words or any(w in lex.places for w in words):
        return True
    if any(w in lex.narrow_common or (w not in lex.broad_common and _singular(w, lex)) or
           (w in lex.broad_common and w.endswith("s") and _singular(w, lex)) for w in words):
        return False
    if _rx(r"(?<!\d)(?:19|20)\d\d(?!\d)").search(line):  # a year: the words must be unknown to the dictionary
        return any(w not in lex.broad_common for w in words)
    return True


_BLOCK_CUE = re.compile(
    r"(?i)(?:\b(?:ship(?:ping)?|deliver(?:y)?|send|sent|mail|post|invoice|bill|return)(?:[ \t]+it)?[ \t]+to|"
    r"\b(?:recipient|addressee|consignee|address|shipping|delivery|billing|mailing|postal)\b[^\n:]{0,20})[ \t]*:"
)


def _cue_above(text: str, lines: list[tuple[int, int]], li: int) -> bool:
    """An address cue ("Ship to:", "Recipient: <name>", "Address:") on the line above, or two lines above with
    a name line in between."""
    if li >= 1 and _BLOCK_CUE.search(text[lines[li - 1][0]:lines[li - 1][1]]):
        return True
    if li >= 2 and _BLOCK_CUE.search(text[lines[li - 2][0]:lines[li - 2][1]]):
        mid = text[lines[li - 1][0]:lines[li - 1][1]].strip()
        return bool(mid) and not _rx(r"\d").search(mid) and len(mid.split()) <= 5
    return False


def _lines(text: str) -> list[tuple[int, int]]:
    out, pos = [], 0
    for ln in text.split("\n"):
        out.append((pos, pos + len(ln)))
        pos += len(ln) + 1
    return out


def _block_end(text: str, lines: list[tuple[int, int]], li: int, lex, blockers=(), max_lines: int = 6) -> int:
    """End of the address block whose street line is lines[li]: continuation lines that look like an address
    (and hold no other kind of identifier, such as a phone number)."""
    e = lines[li][1]
    for k in range(li + 1, min(len(lines), li + 1 + max_lines)):
        a, b = lines[k]
        if any(x < b and a < y for x, y in blockers) and not _PC_LINE.fullmatch(text[a:b].strip()) and \
                not _rx(r"(?i)[ \t]*p\.?[ ]?o\.?[ \t]+box\b").match(text, a):
            break  # a phone or e-mail line ends the block (a postcode that looked like a phone does not)
        if not (_line_ok(text[a:b], lex) or _COUNTRY_LINE.fullmatch(text[a:b].strip())):
            break
        e = b
    return e


def _content_end(text: str, e: int) -> int:
    while e > 0 and text[e - 1] in " \t\r":
        e -= 1
    return e


_BLOCK_TYPES = frozenset({"STREET_ADDRESS", "POSTCODE", "PERSON", "LOCATION"})


def extend_address_blocks(text: str, findings: list) -> list:
    """STREET_ADDRESS findings grown over the rest of their line and the address lines below them, plus
    street lines no recognizer knew that stand in such a block (see the comment above)."""
    if "\n" not in text and "," not in text:
        return findings
    from slm_pipeline.core.anonymize.findings import Finding

    lex = _lexicon()
    lines = _lines(text)
    starts = [a for a, _ in lines]

    def line_of(pos: int) -> int:
        return bisect.bisect_right(starts, pos) - 1

    out = list(findings)
    covered: list[tuple[int, int]] = []
    blockers = [(f.start, f.end) for f in findings if f.entity_type not in _BLOCK_TYPES]
    for f in findings:
        if f.entity_type != "STREET_ADDRESS":
            continue
        li = line_of(max(f.start, 0))
        la, lb = lines[li]
        s, e = f.start, f.end
        # the rest of the street line: ", 2.º Dto.", " m. 17", ", of. 405, Providencia, Santiago, Chile"
        lj = line_of(max(e - 1, f.start))
        ja, jb = lines[lj]
        rest = text[e:jb]
        # a full stop after a number or a word ends the sentence ("..., NY 12207. Thanks, Kelly"); an
        # abbreviation's dot ("m. 17", "Dto.", "a.n.") does not
        stop = _rx(r"^[ \t]*\.|(?:\d|\p{L}{4,})\.[ \t]+(?=\p{Lu})").search(rest)
        if stop:
            dot = stop.start() + stop.group(0).index(".")
            rest = rest[:dot]
        pos = e
        for piece in _rx(r"[ \t]*(?:,|;|[ \t]-[ \t]|[ \t]–[ \t]|/)?[ \t]*[^,;/\n?!]*").finditer(rest):
            seg = piece.group(0)
            if not seg.strip():
                break
            body = _SEG_SPLIT.sub(" ", seg).strip().rstrip(".")
            if not body or not _seg_ok(body, lex, strict=False):
                break
            pos = e + piece.end()
        e = _content_end(text, pos)
        # what stands before it on its line: "Carrera 43A # 1 Sur-100, " before "Apto 902"
        lab = _LABEL.match(text, la, s)
        pre_start = lab.end() if lab else la
        pre = text[pre_start:s]
        if pre.strip() and _line_ok(pre.rstrip(" ,") or "x", lex, strict=False) and \
                (_rx(r"\d").search(pre) or len(pre.split()) <= 2) and \
                not any(g.start < s and pre_start < g.end for g in findings if g.entity_type == "PERSON"):
            s = pre_start  # "Plot 14, ...", "Carrera 43A # 1 Sur-100, Apto 902"
        if lj == line_of(e - 1) and e >= jb - 1 and text[e:jb].strip() == "":
            e = _content_end(text, _block_end(text, lines, lj, lex, blockers))
        if (s, e) != (f.start, f.end):
            out.append(Finding("STREET_ADDRESS", s, e, max(f.score, 0.6), text[s:e], f.source or "address block"))
        covered.append((s, e))
    # street lines in an address block that no recognizer found
    if any(c.isdigit() for c in text):
        for li, (a, b) in enumerate(lines):
            if any(x <= a < y or x < b <= y for x, y in covered):
                continue
            lab = _LABEL.match(text, a, b)
            s = lab.end() if lab else a
            line = text[s:b]
            if not _rx(r"\d").search(line) or not _rx(r"[\p{L}]{3,}").search(line) or not _line_ok(line, lex):
                continue
            cue = _cue_above(text, lines, li)
            if _locality_line(line, lex) and not cue or _rx(r"^\p{Ll}{4,}").match(line.strip()):
                continue  # itself a postcode/city line (unless an address cue says a street comes first)
            if any(w.lower().strip(".") in _MONTHS for w in line.split()) or _rx(r"\d[.,:]\d").search(line):
                continue  # dates, versions, decimals
            words = [_norm_word(w) for w in _rx(r"[\p{L}\p{M}]{3,}").findall(line)]
            if not any(w in _SAFE_STREET_TYPES or (w not in lex.broad_common and not _singular(w, lex))
                       for w in words):
                continue  # "Chapter 12, Section 3", "Flour 500": only everyday words, no street name
            ok = cue
            for k in range(li + 1, min(len(lines), li + 4)):
                if ok:
                    break
                ka, kb = lines[k]
                if _locality_line(text[ka:kb], lex):
                    ok = True
                    break
                if not _line_ok(text[ka:kb], lex, strict=False):
                    break
            if not ok:
                continue
            e = _content_end(text, _block_end(text, lines, li, lex, blockers))
            s += len(line) - len(line.lstrip())
            out.append(Finding("STREET_ADDRESS", s, e, 0.65, text[s:e], "address block"))
            covered.append((s, e))
    return out

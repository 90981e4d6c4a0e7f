"""Precision controls: the allow-list and dropping detections that are technical, not personal."""

from __future__ import annotations

from collections.abc import Iterable

import regex as re

from slm_pipeline.core.anonymize.findings import Finding
from slm_pipeline.core.anonymize.lexicons import _rx
from slm_pipeline.core.anonymize.products import product_words, tool_context
from slm_pipeline.core.anonymize.recognizers.network import _technical_email, non_public_ip


class AllowList:
    """anonymize.allow (plus the policy's company name): terms and 're:<regex>' entries that are never PII.

    A detection inside an allowed match is dropped; a person span that starts or ends with an allowed term is
    trimmed ("Ubuntu Syncthing" -> "Ubuntu")."""

    def __init__(self, entries: Iterable[str] = ()):
        terms, self.regexes = [], []
        for i, entry in enumerate(entries):
            entry = str(entry).strip()
            if entry.startswith("re:"):
                try:
                    self.regexes.append(re.compile(entry[3:]))
                except re.error as err:
                    raise ValueError(f"anonymize.allow[{i}]: {entry[3:]!r} is not a valid regex ({err})") from None
            elif entry:
                terms.append(r"\s+".join(re.escape(w) for w in entry.split()))
        terms.sort(key=len, reverse=True)
        self.terms = re.compile(r"(?<!\w)(?:" + "|".join(terms) + r")(?!\w)", re.I) if terms else None

    def __bool__(self) -> bool:
        return bool(self.terms or self.regexes)

    def spans(self, text: str) -> list[tuple[int, int]]:
        out = [m.span() for m in self.terms.finditer(text)] if self.terms else []
        for rx in self.regexes:
            out += [m.span() for m in rx.finditer(text) if m.end() > m.start()]
        return out

    def apply(self, text: str, findings: list[Finding]) -> list[Finding]:
        spans = self.spans(text) if findings else []
        if not spans:
            return findings
        out = []
        for f in findings:
            s, e = f.start, f.end
            if any(a <= s and e <= b for a, b in spans):
                continue
            if f.entity_type == "PERSON":
                for a, b in spans:
                    if a <= s < b:
                        s = b
                    if a < e <= b:
                        e = a
                while s < e and not text[s].isalnum():
                    s += 1
                while e > s and not text[e - 1].isalnum():
                    e -= 1
                if e - s < 2:
                    continue
                if (s, e) != (f.start, f.end):
                    if _lone_non_name(text[s:e]):
                        continue  # "Ubuntu Syncthing" with "Syncthing" allowed: "Ubuntu" alone is no name
                    if s > f.start and not _has_name(text[s:e]):
                        continue  # "Kiko Miso Salmon", "Kiko" allowed: words after a brand, no known name, are its product
                    f = Finding(f.entity_type, s, e, f.score, text[s:e], f.source)
            out.append(f)
        return out


def _has_name(span: str) -> bool:
    from slm_pipeline.core.anonymize.lexicons import _lexicon
    from slm_pipeline.core.anonymize.recognizers.names import _token_class

    lex = _lexicon()
    return any(_token_class(w, lex) in ("F", "L") for w in span.split())


def _lone_non_name(word: str) -> bool:
    return " " not in word.strip() and not _has_name(word)


def _drop_non_pii(text: str, findings: list[Finding], keep_non_public_ips: bool) -> list[Finding]:
    """Drop kept IPs and technical user@host strings, and anything detected inside them ("192.168.0.123" is no
    phone number either)."""
    findings = _drop_product_and_brand_names(text, findings)
    keep = [(f.start, f.end) for f in findings
            if (f.entity_type == "IP_ADDRESS" and keep_non_public_ips and non_public_ip(f.text))
            or (f.entity_type in ("IP_ADDRESS", "PHONE_NUMBER") and _DOTTED.fullmatch(f.text)
                and _VERSION_BEFORE.search(text, max(0, f.start - 24), f.start))
            or (f.entity_type == "EMAIL_ADDRESS" and _technical_email(text, f.start, f.end))]
    if not keep:
        return findings
    return [f for f in findings if not any(a <= f.start and f.end <= b for a, b in keep)]




# "Firmware 2.14.0.3", "version 10.0.19045.1": a dotted quad after a version word is a version, not an IP
_VERSION_BEFORE = re.compile(r"(?i:\b(?:firmware|version|ver\.?|release|build|update|patch|driver|bios|kernel|"
                             r"v))[ \t]*(?:number[ \t]*)?[:#]?[ \t]*v?$")
_DOTTED = re.compile(r"\d+(?:\.\d+){2,}")


# "Marks & Spencer", "Johnson & Johnson", "Ben & Jerry's": single words joined by "&" name a firm or brand
_AMP_PAIR = re.compile(r"(?<![\p{Lu}][\p{L}\p{M}'’\-]*[ \t]+|&[ \t]*)(?P<a>[\p{Lu}][\p{L}\p{M}'’\-]+)[ \t]*&[ \t]*(?P<b>[\p{Lu}][\p{L}\p{M}\-]+)"
                       r"(?P<pos>['’]s)?(?![ \t]*&)(?![ \t]+[\p{Lu}])")
# "Wendy's and McDonald's": coordinated possessives with no noun after them are shops or brands
_ELLIPTIC_POSS = re.compile(
    r"(?P<a>[\p{Lu}][\p{L}\p{M}\-]+)['’]s[ \t]+(?:and|or|&)[ \t]+(?P<b>[\p{Lu}][\p{L}\p{M}\-]+)['’]s"
    r"(?=[ \t]*(?:[,;.!?]|$|both\b|all\b|are\b|were\b|have\b|had\b|\p{Ll}+ed\b|\p{Ll}+s\b))")
# "everyone at Kesko", "the team at Vireo": a single word after "<group> at" is an organisation
_ORG_AFTER = re.compile(r"(?i:\b(?:everyone|everybody|all|team|folks|staff|people|colleagues|friends|engineers|us)"
                        r"[ \t]+(?:here[ \t]+)?at)[ \t]+$")


# "Louis Vuitton and Hermès posted record sales", "Tim Hortons opened three new locations": what companies do
_COMPANY_PREDICATE = re.compile(
    r"[ \t]+(?:(?:posted|reported|announced|forecast|missed|beat|raised|cut|issued)[ \t]+"
    r"(?:(?:record|quarterly|annual|strong|weak|higher|lower|better|worse|disappointing|solid|mixed|full-year|"
    r"half-year|holiday|first-quarter|second-quarter|third-quarter|fourth-quarter|q[1-4])[ \t]+){0,2}"
    r"(?:sales|earnings|revenues?|profits?|results|losses|guidance|dividends?)"
    r"|(?:opened|closed|added|launched)[ \t]+(?:(?:\d+|two|three|four|five|six|seven|eight|nine|ten|dozens[ \t]+of|"
    r"hundreds[ \t]+of|more|several|its|their|first)[ \t]+){0,2}(?:new[ \t]+)?(?:locations|stores|shops|branches|"
    r"restaurants|outlets|offices|factories|plants|warehouses)"
    r"|(?:shares|stock)[ \t]+(?:rose|fell|jumped|dropped|climbed|slid|surged|plunged)"
    # "... and Morgan Stanley were named joint bookrunners": roles only firms take in a deal
    r"|(?:was|were|are|is)[ \t]+(?:named|appointed|hired|mandated|selected|chosen|acting)[ \t]+(?:as[ \t]+)?"
    r"(?:(?:the[ \t]+)?(?:joint|lead|co-lead|global|sole|senior|mandated)[ \t]+)*"
    r"(?:bookrunners?|underwriters?|arrangers?|lenders?|market[ \t]+makers?|placement[ \t]+agents?)"
    r"|(?:merged[ \t]+with|went[ \t]+public|filed[ \t]+for[ \t]+(?:bankruptcy|chapter[ \t]+\d+|an[ \t]+ipo)))\b")
_SUBJECT_BEFORE = re.compile(
    r"(?:^|(?<=[.!?;:\n][ \t]*))(?:[\p{Lu}][\p{L}\p{M}'’\-]*(?:[ \t]*(?:,|&|and)?[ \t]*))+$", re.M)


def _drop_product_and_brand_names(text: str, findings: list[Finding]) -> list[Finding]:
    """Drop PERSON detections that the surrounding shape marks as a product, brand or organisation."""
    if not any(f.entity_type == "PERSON" for f in findings):
        return findings
    from slm_pipeline.core.anonymize.lexicons import _lexicon
    from slm_pipeline.core.anonymize.recognizers.names import _token_class

    lex = _lexicon()
    brand: list[tuple[int, int]] = []
    if "&" in text:
        for m in _AMP_PAIR.finditer(text):
            ca, cb = _token_class(m.group("a"), lex), _token_class(m.group("b"), lex)
            # "John & Mary" are two people; a surname or everyday word on either side makes a firm
            if m.group("pos") or ca != "F" or cb != "F" or m.group("a") == m.group("b"):
                brand.append(m.span())
    if "'s" in text or "’s" in text:
        brand.extend(m.span() for m in _ELLIPTIC_POSS.finditer(text))
    for m in _COMPANY_PREDICATE.finditer(text):
        subj = _SUBJECT_BEFORE.search(text, max(0, m.start() - 80), m.start())
        if subj:
            brand.append((subj.start(), m.start()))
    out = []
    products = product_words(text)
    preps: set[tuple[int, str]] = set()
    for f in sorted(findings, key=lambda f: f.start):
        if f.entity_type == "PERSON":
            if any(a <= f.start and f.end <= b for a, b in brand):
                continue
            if " " not in f.text.strip() and text[f.end:f.end + 2] not in ("'s", "’s") and not (
                    f.source == "PersonContextRecognizer" and f.score >= 0.85):  # "Dr. X", "my name is X"
                if tool_context(text, f.start, f.end, products, preps, _token_class(f.text.strip(), lex)):
                    continue
                if _ORG_AFTER.search(text[max(0, f.start - 40):f.start]):
                    continue
                if _in_list_of_things(text, f, lex, products):
                    continue
            if _KEY_COMBO.match(text, f.end) or _KEY_COMBO_BEFORE.search(text, max(0, f.start - 3), f.start):
                continue
            if _in_title_line(text, f, lex):
                continue
        out.append(f)
    return out


# "Press Ctrl+Shift+P", "Alt + F4": key names joined by "+"
_KEY_COMBO = re.compile(r"[ \t]*\+[ \t]*[\p{L}\d]")
_KEY_COMBO_BEFORE = re.compile(r"[\p{L}\d][ \t]*\+[ \t]*$")
# a capitalized single word joined to its neighbours by "," / "and" / "or" / "/"
# (a short bracket may follow each member: "Bronze (banner), Silver (+ emote), Gold (+ skin)")
_NOTE = r"(?:[ \t]*\([^()\n]{0,60}\))?"
_LIST_LEFT = re.compile(rf"(?<![\p{{L}}\p{{M}}'’\-])(?P<w>[\p{{Lu}}][\p{{L}}\p{{M}}'’\-]*){_NOTE}"
                        r"(?P<sep>[ \t]*,[ \t]*(?:(?:and|or)[ \t]+)?|[ \t]+(?:and|or|&)[ \t]+|[ \t]*/[ \t]*)$")
_LIST_RIGHT = re.compile(rf"{_NOTE}(?P<sep>[ \t]*,[ \t]*(?:(?:and|or)[ \t]+)?|[ \t]+(?:and|or|&)[ \t]+|[ \t]*/[ \t]*)"
                         r"(?P<w>[\p{Lu}][\p{L}\p{M}'’\-]*)(?![\p{L}\p{M}'’\-])")
_MULTIWORD_BEFORE = re.compile(r"(?:[\p{Lu}][\p{L}\p{M}'’\-]*[ \t]+)+$")
_MULTIWORD_AFTER = re.compile(r"(?:[ \t]+[\p{Lu}][\p{L}\p{M}'’\-]*)+")


def _in_list_of_things(text: str, f: Finding, lex, products: set[str] = frozenset()) -> bool:
    """'Charlotte, Raleigh and Durham', 'Linux, Solaris': a single word listed with places, dictionary words or
    acronyms and with no name among them is one of those things. Needs a real list (an 'and'/'or'/'/' or three
    members), so 'Yesterday, Durham ...' or 'Hi, Maria' are no lists."""
    from slm_pipeline.core.anonymize.recognizers.names import _token_class

    members, seps, phrases = [], [], []
    pos = f.start
    while len(members) + len(phrases) < 6:
        m = _LIST_LEFT.search(text, max(0, pos - 100), pos)
        if not m:
            break
        seps.append(m.group("sep"))
        more = _MULTIWORD_BEFORE.search(text, max(0, m.start() - 60), m.start())
        if more:  # a member of several capitalized words: "Microsoft Entra ID, Okta"
            phrases.append(text[more.start():m.end("w")])
            break
        members.append(m.group("w"))
        pos = m.start()
    pos = f.end
    while len(members) + len(phrases) < 12:
        m = _LIST_RIGHT.match(text, pos)
        if not m:
            break
        seps.append(m.group("sep"))
        more = _MULTIWORD_AFTER.match(text, m.end())
        if more:
            phrases.append(text[m.start("w"):more.end()])
            pos = more.end()
            continue
        members.append(m.group("w"))
        pos = m.end()
    if not seps or not (len(seps) >= 2 or _rx(r"and|or|&|/").search(seps[0])):
        return False
    if any(w in products for w in members):
        return True  # "evaluated Julia, Ada and Pascal ... settled on Julia 1.10": one product makes a product list
    classes = [_token_class(w, lex) for w in members]
    # a several-word member is a product or firm if it holds an acronym or camelCase word ("Microsoft Entra ID",
    # "Google Workspace and OneLogin"); one that holds a known name ("Maria Lopez") makes it a list of people
    for phrase in phrases:
        pc = [_token_class(w, lex) for w in phrase.split()]
        classes.append("X" if any(c in ("K", "X") for c in pc) else ("F" if any(c in ("F", "L") for c in pc) else "?"))
    if phrases and not any(c == "X" for c in classes[len(members):]):
        return False  # only a single-word list decides by dictionary words and places
    return not any(c in ("F", "L") for c in classes) and any(c in ("P", "C", "K", "X") for c in classes)


_FUNCTION_WORDS = frozenset("a an the of and or for to in on with at by from via vs per into over".split())


def _in_title_line(text: str, f: Finding, lex) -> bool:
    """'## Config File Format', '|Windows Task Scheduler General Screenshot|': on a title-case line (every word
    capitalized but short function words, three words or more, a capitalized dictionary word besides the finding,
    no 'label:') a finding with no known given name or surname is part of the title."""
    from slm_pipeline.core.anonymize.recognizers.names import _WORD, _token_class

    if f.source == "PersonContextRecognizer":
        return False  # "Dear Ms MacLeod,": a greeting or title is person evidence
    a = text.rfind("\n", 0, f.start) + 1
    b = text.find("\n", f.end)
    line = text[a:b if b != -1 else len(text)]
    if ":" in line or len(line) > 200:
        return False
    words = [w.rstrip(".") for w in _WORD.findall(line)]
    if len(words) < 3 or any(not w[:1].isupper() and w.lower() not in _FUNCTION_WORDS for w in words):
        return False
    inner = [w.rstrip(".") for w in _WORD.findall(f.text)]
    cls = [_token_class(w, lex) for w in inner]
    if any(c in ("F", "L") for c in cls):
        return False
    others = [w for w in words if w not in inner and w.lower() not in _FUNCTION_WORDS]
    n_common = sum(_token_class(w, lex) == "C" for w in others)
    # two unknown words ("Olumide Bankole") only on a line of three dictionary words or more
    return n_common >= 1 and (cls.count("U") <= 1 or n_common >= 3)

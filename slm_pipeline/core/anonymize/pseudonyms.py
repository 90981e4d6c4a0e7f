"""Replacement: tag or fake pseudonyms, consistent within a record."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from slm_pipeline.core.anonymize.findings import Finding, _occurrence_regex, _value_key
from slm_pipeline.core.anonymize.lexicons import _TITLE_LIST, _norm_word, _rx

# ---------------------------------------------------------------------------------------------------------
# Replacement
# ---------------------------------------------------------------------------------------------------------


_TITLE_WORDS = frozenset(w.lower().rstrip(".") for w in _TITLE_LIST)


class _PseudonymMap:
    """One map per record: the same value gets the same replacement in every turn of the record.

    Person mentions are clustered by shared name tokens, so "Maria Lopez", "Maria" and "Ms. Lopez" are one
    person: <PERSON_1> in tag mode; in fake mode each original name token maps to one fake token, giving
    "Lori Wallace", "Lori" and "Ms. Wallace".
    """

    def __init__(self, mode: str, faker, seed: int, raw_values: Iterable[str]):
        self.mode = mode if faker is not None or mode != "fake" else "tag"
        self.faker = faker
        self.counters: Counter = Counter()
        self.by_key: dict[tuple[str, str], str] = {}
        self.person_clusters: list[dict] = []
        self.used: set[str] = set()
        self.raw_values = {v for v in raw_values if v and len(v.strip()) >= 3}
        self._raw_patterns: list | None = None
        if self.mode == "fake":
            faker.seed_instance(seed)

    def _is_raw(self, fake: str) -> bool:
        if self._raw_patterns is None:
            self._raw_patterns = [p for p in (_occurrence_regex(v) for v in self.raw_values) if p is not None]
        return any(p.search(fake) for p in self._raw_patterns)

    def replacement(self, etype: str, value: str) -> str:
        key = (etype, _value_key(etype, value))
        if key in self.by_key:
            return self.by_key[key]
        rep = self._person(value) if etype == "PERSON" else self._new(etype, value)
        self.by_key[key] = rep
        return rep

    def _person(self, value: str) -> str:
        words = [w for w in _rx(r"\S+").findall(value)]
        names = [_norm_word(w.strip(".,;:!?")) for w in words if _norm_word(w.strip(".,;:!?")) not in _TITLE_WORDS]
        toks = set(names)
        cluster = None
        for cl in self.person_clusters:
            if toks and (toks <= cl["toks"] or cl["toks"] <= toks):
                cluster = cl
                break
        if cluster is None:
            self.counters["PERSON"] += 1
            cluster = {"toks": set(), "tag": f"<PERSON_{self.counters['PERSON']}>", "fake": {}}
            self.person_clusters.append(cluster)
        cluster["toks"] |= toks
        if self.mode != "fake":
            return cluster["tag"]
        out = []
        for w in words:
            core = w.strip(".,;:!?")
            n = _norm_word(core)
            if n in _TITLE_WORDS or not core:
                out.append(w)
                continue
            if n not in cluster["fake"]:
                cluster["fake"][n] = self._fake_token(first=not cluster["fake"])
            fake = cluster["fake"][n]
            if core.islower():
                fake = fake.lower()
            elif core.isupper() and len(core) > 1:
                fake = fake.upper()
            out.append(w.replace(core, fake))
        return " ".join(out)

    def _fake_token(self, first: bool) -> str:
        for _ in range(20):
            t = self.faker.first_name() if first else self.faker.last_name()
            if t not in self.used and not self._is_raw(t):
                self.used.add(t)
                return t
        self.counters["PERSON_TOKEN"] += 1
        return f"Person{self.counters['PERSON_TOKEN']}"

    def _new(self, etype: str, value: str) -> str:
        self.counters[etype] += 1
        tag = f"<{etype}_{self.counters[etype]}>"
        if self.mode != "fake":
            return tag
        for _ in range(12):
            fake = _fake_value(self.faker, etype, value)
            if fake and fake not in self.used and not self._is_raw(fake):
                self.used.add(fake)
                return fake
        return tag


def _fake_value(fk, etype: str, original: str) -> str:
    if etype == "PERSON":
        n_words = len([w for w in original.split() if w[:1].isupper()])
        return fk.first_name() if n_words <= 1 else f"{fk.first_name()} {fk.last_name()}"
    if etype == "EMAIL_ADDRESS":
        return f"{fk.user_name()}@example.{fk.random_element(('com', 'org', 'net'))}"
    if etype == "PHONE_NUMBER":
        return fk.numerify("+1-202-555-01##")
    if etype == "STREET_ADDRESS":
        return fk.street_address()
    if etype == "CREDIT_CARD":
        return fk.credit_card_number()
    if etype == "IBAN_CODE":
        return fk.iban()
    if etype == "US_SSN":
        return fk.numerify("9##-##-####")  # 9xx is never a valid SSN
    if etype == "IP_ADDRESS":
        return f"2001:db8::{fk.random_int(1, 65535):x}" if ":" in original else f"192.0.2.{fk.random_int(1, 254)}"
    if etype == "US_DRIVER_LICENSE":
        return fk.bothify("?#######").upper()
    if etype == "ORDER_ID":
        return fk.numerify("ORD-######")
    if etype == "ACCOUNT_ID":
        return fk.numerify("ACC-######")
    if etype == "POSTCODE":
        return fk.postcode()
    return f"<{etype}>"


def _apply(text: str, findings: list[Finding], pmap: _PseudonymMap) -> tuple[str, list[tuple[int, int]]]:
    """Replace findings right-to-left; returns new text and the spans of replacements in it."""
    pieces = []
    pos = 0
    spans = []
    out_len = 0
    for f in sorted(findings, key=lambda f: f.start):
        if f.start < pos:
            continue
        chunk = text[pos:f.start]
        pieces.append(chunk)
        out_len += len(chunk)
        rep = pmap.replacement(f.entity_type, f.text)
        pieces.append(rep)
        spans.append((out_len, out_len + len(rep)))
        out_len += len(rep)
        pos = f.end
    pieces.append(text[pos:])
    return "".join(pieces), spans



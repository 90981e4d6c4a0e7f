"""The synthetic PII labeled set: value generators, template filling and `generate_labeled_set`.

The labeled set is generated independently of the recognizers: the sentence templates
(slm_pipeline/data/pii_eval_templates.yaml) are written for evaluation (they do not reuse the recognizers'
context patterns), names/addresses/phones/IBANs come from Faker locales with a fixed seed, card numbers are
Luhn-valid, IBANs checksum-valid. Scoring lives in pii_eval.py.
"""

from __future__ import annotations

import ipaddress
import random
import string
from functools import cache
from pathlib import Path

import yaml

__all__ = ["generate_labeled_set"]

TEMPLATES_FILE = Path(__file__).resolve().parents[1] / "data" / "pii_eval_templates.yaml"


@cache
def _data() -> dict:
    """Name locales, sentence templates per entity type and PII-free filler values (loaded once)."""
    return yaml.safe_load(TEMPLATES_FILE.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------------
# value generators
# ---------------------------------------------------------------------------------------------------------


class _Gen:
    def __init__(self, seed: int):
        from faker import Faker

        self.rng = random.Random(seed)
        self._fakers: dict[str, object] = {}
        self._Faker = Faker
        self.seed = seed

    def fk(self, locale: str):
        if locale not in self._fakers:
            f = self._Faker(locale)
            f.seed_instance(self.seed * 1000 + len(self._fakers))
            self._fakers[locale] = f
        return self._fakers[locale]

    # -- people -----------------------------------------------------------------------------------------
    def first_last(self) -> tuple[str, str]:
        r = self.rng.random()
        if r < 0.08:
            f = self.fk(self.rng.choice(_data()["romanized_name_locales"]))
            return f.first_romanized_name(), f.last_romanized_name()
        f = self.fk(self.rng.choice(_data()["name_locales"]))
        return f.first_name(), f.last_name()

    def person(self) -> str:
        first, last = self.first_last()
        r = self.rng.random()
        if r < 0.10:
            f2, _ = self.first_last()
            return f"{first} {f2} {last}"
        if r < 0.16:
            return f"{first} {last}-{self.first_last()[1]}"
        return f"{first} {last}"

    # -- addresses --------------------------------------------------------------------------------------
    def address(self) -> str:
        kind = self.rng.choice(["us", "us", "us_full", "us_full", "uk", "uk_full", "uk_flat", "de", "de_full", "fr",
                                "fr_full", "es", "it", "nl", "pt", "se", "us_apt", "ordinal"])
        rng = self.rng
        if kind == "us":
            return self.fk("en_US").street_address()
        if kind == "us_full":
            f = self.fk("en_US")
            return f"{f.street_address()}, {f.city()}, {f.state_abbr()} {f.zipcode()}"
        if kind == "us_apt":
            f = self.fk("en_US")
            return f"{f.building_number()} {f.last_name()} {rng.choice(['Ave', 'Blvd', 'St', 'Rd', 'Dr'])}, " \
                   f"Apt {rng.randint(1, 40)}{rng.choice('ABCD')}"
        if kind == "ordinal":
            n = rng.randint(1, 99)
            suf = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
            return f"{rng.randint(10, 9999)} {n}{suf} {rng.choice(['Street', 'Avenue'])}"
        if kind == "uk":
            return self.fk("en_GB").street_address()
        if kind == "uk_full":
            f = self.fk("en_GB")
            return f"{f.street_address()}, {f.city()} {f.postcode()}"
        if kind == "uk_flat":
            f = self.fk("en_GB")
            return f"Flat {rng.randint(1, 30)}, {f.building_number()} {f.last_name()} " \
                   f"{rng.choice(['Road', 'Street', 'Lane', 'Close', 'Gardens', 'Terrace'])}"
        if kind == "de":
            return self.fk("de_DE").street_address()
        if kind == "de_full":
            f = self.fk("de_DE")
            return f"{f.street_address()}, {f.postcode()} {f.city()}"
        if kind == "fr":
            f = self.fk("fr_FR")
            return f"{rng.randint(1, 120)} {f.street_name()}"
        if kind == "fr_full":
            f = self.fk("fr_FR")
            return f"{rng.randint(1, 120)}, {f.street_name()}, {f.postcode()} {f.city()}"
        if kind == "es":
            return self.fk("es_ES").street_address()
        if kind == "it":
            return self.fk("it_IT").street_address()
        if kind == "nl":
            return self.fk("nl_NL").street_address()
        if kind == "pt":
            return self.fk("pt_PT").street_address()
        return self.fk("sv_SE").street_address()

    # -- phones -----------------------------------------------------------------------------------------
    def phone(self) -> str:
        rng = self.rng
        if rng.random() < 0.45:
            loc = rng.choice(["en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL", "pt_PT", "en_IN",
                              "en_CA", "sv_SE", "pl_PL", "en_IE", "pt_BR"])
            return self.fk(loc).phone_number()
        d = lambda k: "".join(rng.choice(string.digits) for _ in range(k))  # noqa: E731
        area = str(rng.randint(201, 989))
        forms = [
            f"+44 20 {d(4)} {d(4)}", f"07{d(3)} {d(6)}", f"+49 30 {d(7)}", f"({area}) {d(3)}-{d(4)}",
            f"{area}.{d(3)}.{d(4)}", f"+1-{area}-{d(3)}-{d(4)}", f"+33 {rng.randint(1, 9)} {d(2)} {d(2)} {d(2)} {d(2)}",
            f"+34 {rng.randint(600, 699)} {d(3)} {d(3)}", f"+39 3{d(2)} {d(3)} {d(4)}", f"+31 6 {d(8)}",
            f"{area}-{d(3)}-{d(4)}", f"+91 {rng.randint(70000, 99999)} {d(5)}", f"0{rng.randint(20, 99)} {d(4)} {d(4)}",
            f"+61 4{d(2)} {d(3)} {d(3)}", f"1-{area}-{d(3)}-{d(4)}", f"+353 8{rng.randint(3, 9)} {d(3)} {d(4)}",
        ]
        return rng.choice(forms)

    def email(self) -> str:
        rng = self.rng
        first, last = self.first_last()
        import unicodedata

        def ascii_(s):
            return "".join(c for c in unicodedata.normalize("NFKD", s) if c.isascii() and (c.isalnum()))

        user = rng.choice([
            f"{ascii_(first).lower()}.{ascii_(last).lower()}", f"{ascii_(first).lower()}{rng.randint(1, 99)}",
            f"{ascii_(first)[0].lower()}{ascii_(last).lower()}", f"{ascii_(last).lower()}_{ascii_(first).lower()}",
            f"{ascii_(first).lower()}+bikes",
        ]) or "user"
        if rng.random() < 0.4:
            return self.fk(rng.choice(["en_US", "de_DE", "fr_FR", "es_ES", "it_IT"])).email()
        return f"{user}@{rng.choice(['gmail.com', 'outlook.com', 'yahoo.co.uk', 'web.de', 'proton.me', 'icloud.com', 'company.io', 'mail.example.org', 'uni-hamburg.de'])}"

    def card(self) -> str:
        rng = self.rng
        f = self.fk("en_US")
        ctype = rng.choice(["visa16", "visa16", "mastercard", "mastercard", "amex", "discover", "jcb16", "diners",
                            "visa13"])
        num = f.credit_card_number(ctype)
        style = rng.choice(["none", "space", "dash", "space"])
        if style == "none":
            return num
        sep = " " if style == "space" else "-"
        if len(num) == 15:
            groups = [num[:4], num[4:10], num[10:]]
        elif len(num) == 14:
            groups = [num[:4], num[4:10], num[10:]]
        else:
            groups = [num[i:i + 4] for i in range(0, len(num), 4)]
        return sep.join(groups)

    def iban(self) -> str:
        loc = self.rng.choice(["de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "en_GB", "pt_PT", "pl_PL", "de_AT",
                               "nl_BE", "de_CH", "en_IE", "fi_FI", "no_NO", "da_DK", "cs_CZ"])
        raw = self.fk(loc).iban()
        if self.rng.random() < 0.6:
            return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4))
        return raw

    def ssn(self) -> str:
        s = self.fk("en_US").ssn()
        r = self.rng.random()
        if r < 0.2:
            return s.replace("-", " ")
        if r < 0.3:
            return s.replace("-", "")
        return s

    def ip(self) -> str:
        """A public address: private, loopback and documentation ranges identify nobody and are kept
        (anonymize.keep_non_public_ips); the technical-text set checks that they survive."""
        from slm_pipeline.core.anonymize import non_public_ip

        f = self.fk("en_US")
        r = self.rng.random()
        if r < 0.6:
            return f.ipv4_public()
        v6 = f.ipv6()
        while non_public_ip(v6):
            v6 = f.ipv6()
        if r < 0.8:
            return str(ipaddress.IPv6Address(v6))  # compressed form
        return v6

    def driver_license(self) -> str:
        rng = self.rng
        d = lambda k: "".join(rng.choice(string.digits) for _ in range(k))  # noqa: E731
        L = lambda k=1: "".join(rng.choice(string.ascii_uppercase) for _ in range(k))  # noqa: E731
        forms = [
            f"{L()}{d(7)}", f"{d(3)} {d(3)} {d(3)}", f"{d(9)}", f"{L()}{d(3)}-{d(3)}-{d(2)}-{d(3)}-{d(1)}",
            f"{L()}{d(3)}-{d(4)}-{d(4)}", f"{d(8)}", f"{L(2)}{d(6)}", f"{L()}{d(8)}", f"{L()} {d(3)} {d(3)} {d(3)} {d(3)}",
            f"{L()}{d(12)}", f"{d(2)}-{d(3)}-{d(4)}", f"{L()}{d(4)} {d(5)} {d(5)}",
        ]
        return rng.choice(forms)

    def order_id(self) -> str:
        return f"ORD-{self.rng.randint(100000, 999999)}"

    def account_id(self) -> str:
        return f"ACC-{self.rng.randint(100000, 999999)}"

    def postcode(self) -> str:
        rng = self.rng
        kind = rng.choice(["uk", "uk", "us", "de", "fr", "ca"])
        if kind == "uk":
            return self.fk("en_GB").postcode()
        if kind == "us":
            return self.fk("en_US").zipcode()
        if kind == "de":
            return self.fk("de_DE").postcode()
        if kind == "fr":
            return self.fk("fr_FR").postcode()
        return self.fk("en_CA").postcode()


# ---------------------------------------------------------------------------------------------------------
# labeled set
# ---------------------------------------------------------------------------------------------------------


def _fill(template: str, values: dict[str, tuple[str, str | None]]) -> tuple[str, list[list]]:
    """Replace {KEY} placeholders; returns text and spans [[start, end, type]] for typed values."""
    import re

    out = []
    spans = []
    pos = 0
    length = 0
    for m in re.finditer(r"\{(\w+)\}", template):
        chunk = template[pos:m.start()]
        out.append(chunk)
        length += len(chunk)
        val, typ = values[m.group(1)]
        val = " ".join(val.split(" ")).strip()  # Faker formats sometimes end in a space
        out.append(val)
        if typ:
            spans.append([length, length + len(val), typ])
        length += len(val)
        pos = m.end()
    out.append(template[pos:])
    return "".join(out), spans


def generate_labeled_set(n_per_type: int = 60, n_clean: int = 300, seed: int = 7) -> list[dict]:
    """Deterministic synthetic labeled sentences: `{"text", "spans": [[start, end, type], ...]}`.

    n_per_type sentences for each direct identifier type (and a third as many for ORDER_ID, ACCOUNT_ID,
    POSTCODE), plus n_clean PII-free support sentences (spans empty).
    """
    g = _Gen(seed)
    rng = g.rng
    items: list[dict] = []
    data = _data()
    templates = data["templates"]
    titles = data["titles"]

    def add(template: str, values: dict):
        text, spans = _fill(template, values)
        items.append({"text": text, "spans": spans})

    for _ in range(n_per_type):
        first, last = g.first_last()
        full = g.person()
        t = rng.choice(templates["PERSON"])
        if rng.random() < 0.08:  # some chats are all lower-case
            full = full.lower()
            t = t.replace("{F}", "{P}") if "{T}" not in t else t
        add(t, {"P": (full, "PERSON"), "F": (first, "PERSON"), "L": (last, "PERSON"),
                "T": (rng.choice(titles), None)})
    gens = [
        ("STREET_ADDRESS", templates["STREET_ADDRESS"], g.address, n_per_type),
        ("PHONE_NUMBER", templates["PHONE_NUMBER"], g.phone, n_per_type),
        ("EMAIL_ADDRESS", templates["EMAIL_ADDRESS"], g.email, n_per_type),
        ("CREDIT_CARD", templates["CREDIT_CARD"], g.card, n_per_type),
        ("IBAN_CODE", templates["IBAN_CODE"], g.iban, n_per_type),
        ("US_SSN", templates["US_SSN"], g.ssn, n_per_type),
        ("IP_ADDRESS", templates["IP_ADDRESS"], g.ip, n_per_type),
        ("US_DRIVER_LICENSE", templates["US_DRIVER_LICENSE"], g.driver_license, n_per_type),
        ("ORDER_ID", templates["ORDER_ID"], g.order_id, max(1, n_per_type // 3)),
        ("ACCOUNT_ID", templates["ACCOUNT_ID"], g.account_id, max(1, n_per_type // 3)),
        ("POSTCODE", templates["POSTCODE"], g.postcode, max(1, n_per_type // 3)),
    ]
    for etype, type_templates, make, n in gens:
        for _ in range(n):
            t = rng.choice(type_templates)
            key = "A" if "{A}" in t else "X"
            add(t, {key: (make(), etype)})
    # a few mixed multi-entity messages
    for _ in range(max(1, n_per_type // 4)):
        name = g.person()
        add("Hi, I'm {P}. My number is {X} and my email is {E}.",
            {"P": (name, "PERSON"), "X": (g.phone(), "PHONE_NUMBER"), "E": (g.email(), "EMAIL_ADDRESS")})
        add("{P}\n{A}\n{X}", {"P": (g.person(), "PERSON"), "A": (g.address(), "STREET_ADDRESS"),
                              "X": (g.phone(), "PHONE_NUMBER")})
    # PII-free sentences
    for _ in range(n_clean):
        t = rng.choice(data["clean_templates"])
        st, st2 = rng.sample(data["stations"], 2)
        pr, pr2 = rng.sample(data["products"], 2)
        c1, c2 = rng.sample(data["cities"], 2)
        vals = {
            "PR": (pr, None), "PR2": (pr2, None), "ST": (st, None), "ST2": (st2, None), "CITY": (c1, None),
            "CITY2": (c2, None),
            "PRICE": (rng.choice(["$", "€", "£"]) + f"{rng.randint(1, 99)}.{rng.choice(['00', '50', '99'])}", None),
            "BID": (rng.choice([str(rng.randint(100, 9999)), f"B-{rng.randint(1000, 9999)}"]), None),
            "DATE": (rng.choice([f"{rng.randint(1, 28)} {rng.choice(['March', 'June', 'October'])}",
                                 f"2024-0{rng.randint(1, 9)}-{rng.randint(10, 28)}",
                                 f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/2025"]), None),
            "TIME": (rng.choice(["7:45 am", "08:00", "5pm", "18:30"]), None),
            "TIME2": (rng.choice(["9:10 am", "19:05", "6pm"]), None),
            "MIN": (str(rng.choice([15, 20, 30, 45, 60])), None), "KM": (str(rng.randint(20, 90)), None),
            "VER": (f"{rng.randint(1, 5)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}", None),
            "DOCK": (str(rng.randint(1, 40)), None), "PCT": (str(rng.choice([10, 15, 20, 25])), None),
            "N": (str(rng.randint(1, 9)), None),
            "MONTH": (rng.choice(["January", "April", "July", "November"]), None),
        }
        add(t, vals)
    return items

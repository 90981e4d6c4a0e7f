"""Measure PII detection: a synthetic labeled set, recall/precision per entity type, throughput vs vanilla Presidio.

The labeled set is generated independently of the recognizers: sentence templates below are written for this
file (they do not reuse the recognizers' context patterns), names/addresses/phones/IBANs come from Faker
locales with a fixed seed, card numbers are Luhn-valid, IBANs checksum-valid. Recall is span-level with
overlap matching: a gold span counts as protected when detected characters (of any PII type) cover at least
80% of it; "strict" recall additionally requires a detection of the same type; "token" recall requires every
3+ character word/number of the span to be covered (a surviving "Tampere" leaks even when 80% is covered).

Those names come from the same Faker lists the PERSON gazetteer loads, so this set measures *in-gazetteer*
recall. The out-of-gazetteer set (slm_pipeline/data/pii_out_of_gazetteer.jsonl, made once by
scripts/make_oog_pii_set.py) holds hand-written names checked against the detector's lexicon and non-English
Faker *address* data in local multi-line formats; `evaluate_split` reports both side by side.
"""

from __future__ import annotations

import ipaddress
import random
import string
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import regex

from slm_pipeline.config import DIRECT_IDENTIFIERS, SUPPORT_IDENTIFIERS, AnonymizeConfig

__all__ = ["evaluate", "evaluate_split", "generate_labeled_set", "load_out_of_gazetteer_set", "markdown_table",
           "split_table", "throughput", "VanillaPresidio"]

COVER = 0.8
OUT_OF_GAZETTEER_SET = Path(__file__).resolve().parents[1] / "data" / "pii_out_of_gazetteer.jsonl"
_TOKEN = regex.compile(r"[\p{L}\p{N}]{3,}")

# ---------------------------------------------------------------------------------------------------------
# value generators
# ---------------------------------------------------------------------------------------------------------

_NAME_LOCALES = [
    "en_US", "en_GB", "en_IE", "en_IN", "en_NG", "en_KE", "en_PK", "es_ES", "es_MX", "es_CO", "fr_FR", "fr_CA",
    "de_DE", "de_AT", "it_IT", "pt_BR", "pt_PT", "pl_PL", "nl_NL", "sv_SE", "da_DK", "fi_FI", "tr_TR", "cs_CZ",
    "hu_HU", "ro_RO", "hr_HR", "sk_SK", "vi_VN", "id_ID", "yo_NG", "ig_NG", "zu_ZA", "sw", "tw_GH", "et_EE",
    "lt_LT", "lv_LV", "no_NO", "az_AZ", "uz_UZ", "ga_IE", "fr_CH", "es_AR", "sl_SI",
]
_ROMANIZED = ["ja_JP", "zh_CN"]


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
            f = self.fk(self.rng.choice(_ROMANIZED))
            return f.first_romanized_name(), f.last_romanized_name()
        f = self.fk(self.rng.choice(_NAME_LOCALES))
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
# templates (written for evaluation; deliberately varied and not derived from the recognizers' patterns)
# ---------------------------------------------------------------------------------------------------------

_T_PERSON = [
    "{P} reported that the dock at Central Station rejected the bike.",
    "Could you check why {P} was charged twice for the Day Pass?",
    "I'm writing for my father, {P}, who can't use the app.",
    "The rental was under {P}'s profile, not mine.",
    "{P} and I shared one account last summer.",
    "Please change the account holder to {P}.",
    "Yesterday {P} lost a helmet near the river path.",
    "hey, {F} again - the refund still hasn't shown up",
    "Good afternoon {F}, I hope you can help with my e-bike.",
    "Best wishes,\n{P}",
    "Cheers, {F}",
    "Is {P} allowed to ride on my membership?",
    "Agent {P} promised a callback within 24 hours.",
    "Booking made by {P} on 12 March for two bikes.",
    "Send the receipt over to {P}, please.",
    "My daughter {F} forgot her PIN again.",
    "{T} {L} asked us to cancel the renewal.",
    "Spoke with {P} on the phone earlier today.",
    "the bike that {P} rented had a flat tyre",
    "Can you move the pass from {P} to my wife?",
    "Our office manager, {P}, will settle the invoice.",
    "{P} (rider since 2019) is asking about a discount.",
    "I got a text saying {P} unlocked bike 4521 - that's not me!",
    "According to {P} the station was closed all morning.",
    "Please have {P} call me back.",
    "-- {P}",
    "Thank you so much {F}!",
    "{P} here. The app keeps crashing on login.",
    "Is this {F}? We talked last week about the damaged basket.",
    "Kind regards\n{P}\nCustomer since 2021",
    "I lent my card to {P} for the weekend trip.",
    "ok so {F} says the QR code won't scan",
    "{F} {L} from the Riverside office needs 5 more bikes.",
    "The complaint from {P} was escalated to tier 2.",
    "Refund approved for {P}, amount $14.",
    "We have two riders named {P} on this plan?",
    "Many thanks, {P}",
    "Dear {T} {L}, your replacement key is on its way.",
    "My husband {P} rented the tandem.",
    "{P} wrote: the brakes squeak on bike 88.",
]
_T_ADDRESS = [
    "Please ship the replacement lock to {A}.",
    "My billing address changed to {A} last month.",
    "I moved - the new place is {A}",
    "The charger was delivered to {A} instead of my office.",
    "{A} is where the invoice should go.",
    "Can someone collect the broken bike from {A}?",
    "my flat is {A}, the buzzer doesn't work",
    "Invoice address: {A}",
    "I'm staying at {A} until Friday.",
    "The parcel went to {A} but I live elsewhere now.",
    "Update my profile with {A}, thanks",
    "We left the helmet at {A} for pickup.",
    "Home: {A}",
    "is {A} inside your service area?",
    "Courier said nobody answered at {A} yesterday.",
]
_T_PHONE = [
    "You can reach me on {X} after 6pm.",
    "my mobile is {X}",
    "Ring {X} if the courier can't find the door.",
    "Please text {X} when the bike is ready",
    "{X} is my work line.",
    "New number: {X}",
    "Try me at {X} or by email.",
    "The SMS code never arrived on {X}.",
    "I changed my number to {X} last week.",
    "Contact our team lead on {X} for the group booking.",
    "WhatsApp works too: {X}",
    "call back {X} pls",
]
_T_EMAIL = [
    "Send the receipt to {X}",
    "My login is {X}",
    "{X} is the address on file.",
    "cc {X} on the reply please",
    "I never got the mail at {X}.",
    "Reset link should go to {X}, not my old one.",
    "You can write to {X} anytime.",
    "the invoice bounced from {X}?",
]
_T_CARD = [
    "I was charged on card {X} twice.",
    "Please remove {X} from my wallet.",
    "{X} expired last month, use the new one.",
    "The payment with {X} keeps failing.",
    "Refund it back to {X} please",
    "card no {X} exp 09/27",
    "My visa {X} was declined at the kiosk.",
]
_T_IBAN = [
    "Please refund to IBAN {X}.",
    "My bank account {X} was debited twice.",
    "Transfer it to {X} instead.",
    "{X} is the account for the direct debit.",
    "New SEPA mandate: {X}",
    "payout to {X} thanks",
]
_T_SSN = [
    "My SSN is {X}.",
    "For the tax form: social security number {X}",
    "SSN {X} - please keep it private.",
    "I entered {X} as my social security no.",
    "ssn: {X}",
    "The form asked for my social, it's {X}",
]
_T_IP = [
    "Login attempts came from {X} overnight.",
    "My router IP is {X}.",
    "The app blocked {X} for too many requests?",
    "Whitelist {X} for our office kiosk please.",
    "Traffic from {X} looks suspicious.",
    "connected from {X} this morning",
]
_T_DL = [
    "My driver's license number is {X}.",
    "DL# {X}",
    "Driving licence: {X}",
    "license no. {X} (California)",
    "I uploaded my driver license {X} but verification failed.",
    "Driver license ID {X} was rejected by the scanner.",
    "For the e-scooter upgrade my drivers license is {X}",
]
_T_ORDER = [
    "Order {X} never arrived.",
    "I want to return {X}.",
    "Status of {X} please?",
    "The helmet from {X} is the wrong size.",
]
_T_ACCOUNT = [
    "My account is {X}.",
    "Please close {X}.",
    "Customer ref {X} has two cards on file.",
]
_T_POSTCODE = [
    "Do you deliver to {X}?",
    "My postcode is {X}.",
    "zip code {X} is not accepted by the form",
]

_STATIONS = ["Central Station", "Riverside Park", "Market Square", "Old Town Hall", "North Gate", "Harbour Point",
             "City Library", "Westfield Mall", "Tech Campus", "Museum Quarter", "Union Square", "Victoria Dock",
             "Canal Street", "Liberty Plaza", "Stadium East"]
_PRODUCTS = ["Day Pass", "Annual Pass", "LoopBike Plus", "E-Bike Pro", "Commuter Bundle", "Family Plan",
             "Student Saver", "Weekend Pass", "LoopBike Go", "Premium Membership", "Night Rider"]
_CITIES = ["London", "Berlin", "Paris", "Madrid", "Amsterdam", "Dublin", "Lisbon", "Vienna", "Boston", "Chicago",
           "Austin", "Toronto", "Sydney", "Milan", "Munich"]
_T_CLEAN = [
    "The {PR} costs {PRICE} and is valid for 24 hours.",
    "Bike {BID} at {ST} has a flat tyre.",
    "Your {PR} renews on {DATE}.",
    "Docks at {ST} and {ST2} are full after {TIME}.",
    "We now operate in {CITY} and {CITY2}.",
    "Tap Settings > Payments > Add Card to update your details.",
    "Open the LoopBike app and choose Report Issue.",
    "You can pay with Apple Pay, Google Pay, PayPal or any Visa or Mastercard.",
    "ok thanks, that worked",
    "no worries, the bike is back at the dock",
    "The {PR} includes unlimited 45-minute rides.",
    "Ride time is billed per minute after the first {MIN} minutes.",
    "Our support team is available Monday to Friday, {TIME} to 18:00.",
    "Station {ST} will be closed on {DATE} for maintenance.",
    "The e-bike battery lasts about {KM} km on a full charge.",
    "Please return the bike to any dock within {MIN} minutes.",
    "Refunds usually take 5-7 business days.",
    "The late fee is {PRICE} per hour.",
    "I tried to unlock bike {BID} but the light stayed red.",
    "Is the {PR} cheaper than the {PR2}?",
    "Hi team, the app says my {PR} expired but I renewed it yesterday.",
    "Thanks for the quick help!",
    "Which stations near {ST} have e-bikes right now?",
    "The ride on {DATE} from {ST} to {ST2} was charged {PRICE}.",
    "Can I pause my {PR} during the winter?",
    "version {VER} of the app fixed the login bug",
    "Hello, is the {ST} dock working again?",
    "My ride started at {TIME} and ended at {TIME2}.",
    "Helmets are free with the {PR} in {CITY}.",
    "Dock {DOCK} at {ST} keeps beeping.",
    "The promo code SPRING{PCT} gives {PCT}% off.",
    "Customer Support is closed on Christmas Day.",
    "How many bikes can I rent at once with the {PR}?",
    "Terms of Service were updated on {DATE}.",
    "Good morning! Is {ST} open on Sunday?",
    "the map shows {N} bikes at {ST} but there are none",
    "Can I bring my dog in the basket? Asking for the {PR}.",
    "Kind regards, LoopBike Support",
    "Best, the LoopBike Team",
    "Your Monthly Pass receipt for {MONTH} is attached.",
    "Error code E{N}{N} appeared on the screen of bike {BID}.",
    "The Weekend Pass works Saturday and Sunday only.",
    "We apologise for the delay at {ST} this morning.",
    "Please rate your ride from 1 to 5 stars.",
    "Lost and Found is located at {ST}.",
    "My ride was {KM} km and took {MIN} minutes.",
    "Is there a student discount in {CITY}?",
    "Tyre pressure should be around {N}0 psi.",
    "The {PR} is not available in {CITY} yet.",
    "I left my sunglasses on bike {BID}, did anyone find them?",
]


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
    titles = ["Mr.", "Mrs.", "Ms.", "Dr.", "Mr", "Ms"]

    def add(template: str, values: dict):
        text, spans = _fill(template, values)
        items.append({"text": text, "spans": spans})

    for _ in range(n_per_type):
        first, last = g.first_last()
        full = g.person()
        t = rng.choice(_T_PERSON)
        if rng.random() < 0.08:  # some chats are all lower-case
            full = full.lower()
            t = t.replace("{F}", "{P}") if "{T}" not in t else t
        add(t, {"P": (full, "PERSON"), "F": (first, "PERSON"), "L": (last, "PERSON"),
                "T": (rng.choice(titles), None)})
    gens = [
        ("STREET_ADDRESS", _T_ADDRESS, g.address, n_per_type),
        ("PHONE_NUMBER", _T_PHONE, g.phone, n_per_type),
        ("EMAIL_ADDRESS", _T_EMAIL, g.email, n_per_type),
        ("CREDIT_CARD", _T_CARD, g.card, n_per_type),
        ("IBAN_CODE", _T_IBAN, g.iban, n_per_type),
        ("US_SSN", _T_SSN, g.ssn, n_per_type),
        ("IP_ADDRESS", _T_IP, g.ip, n_per_type),
        ("US_DRIVER_LICENSE", _T_DL, g.driver_license, n_per_type),
        ("ORDER_ID", _T_ORDER, g.order_id, max(1, n_per_type // 3)),
        ("ACCOUNT_ID", _T_ACCOUNT, g.account_id, max(1, n_per_type // 3)),
        ("POSTCODE", _T_POSTCODE, g.postcode, max(1, n_per_type // 3)),
    ]
    for etype, templates, make, n in gens:
        for _ in range(n):
            t = rng.choice(templates)
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
        t = rng.choice(_T_CLEAN)
        st, st2 = rng.sample(_STATIONS, 2)
        pr, pr2 = rng.sample(_PRODUCTS, 2)
        c1, c2 = rng.sample(_CITIES, 2)
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


# ---------------------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------------------


def _covered(mask: Sequence[bool], s: int, e: int) -> float:
    if e <= s:
        return 1.0
    return sum(mask[s:e]) / (e - s)


def evaluate(anonymizer, dataset: list[dict]) -> dict:
    """Per-type recall (any type / same type) and precision, overall direct recall, clean-untouched share.

    `anonymizer` needs `analyze_texts(list[str]) -> list[list[Finding-like]]` (entity_type/start/end).
    """
    texts = [d["text"] for d in dataset]
    t0 = time.perf_counter()
    found = anonymizer.analyze_texts(texts)
    seconds = time.perf_counter() - t0
    gold_n = defaultdict(int)
    hit_any = defaultdict(int)
    hit_same = defaultdict(int)
    hit_tok = defaultdict(int)
    pred_n = defaultdict(int)
    pred_tp = defaultdict(int)
    clean_total = clean_untouched = 0
    clean_fp_types = defaultdict(int)
    misses: list[dict] = []
    oog_total = oog_hit = 0
    gaz = getattr(anonymizer, "gazetteer_contains", None)
    for d, fs in zip(dataset, found, strict=False):
        text = d["text"]
        spans = d["spans"]
        mask_any = [False] * len(text)
        by_type: dict[str, list[bool]] = {}
        for f in fs:
            for i in range(f.start, min(f.end, len(text))):
                mask_any[i] = True
            m = by_type.setdefault(f.entity_type, [False] * len(text))
            for i in range(f.start, min(f.end, len(text))):
                m[i] = True
        if not spans:
            clean_total += 1
            if not fs:
                clean_untouched += 1
            for f in fs:
                clean_fp_types[f.entity_type] += 1
        for s, e, typ in spans:
            gold_n[typ] += 1
            ok = _covered(mask_any, s, e) >= COVER
            hit_any[typ] += ok
            same = by_type.get(typ)
            hit_same[typ] += bool(same) and _covered(same, s, e) >= COVER
            hit_tok[typ] += all(_covered(mask_any, s + a, s + b) == 1.0
                                for a, b in (m.span() for m in _TOKEN.finditer(text[s:e])))
            if not ok:
                misses.append({"type": typ, "value": text[s:e], "text": text})
            if typ == "PERSON" and gaz is not None and not gaz(text[s:e]):
                oog_total += 1
                oog_hit += ok
        for f in fs:
            pred_n[f.entity_type] += 1
            if any(f.start < e and s < f.end for s, e, _t in spans if _t == f.entity_type):
                pred_tp[f.entity_type] += 1
            elif any(f.start < e and s < f.end for s, e, _t in spans):
                pred_tp[f.entity_type] += 1  # overlaps gold PII of another type: still protective, not an FP
    per_type = {}
    for typ in sorted(set(gold_n) | set(pred_n)):
        per_type[typ] = {
            "gold": gold_n[typ],
            "recall": round(hit_any[typ] / gold_n[typ], 4) if gold_n[typ] else None,
            "recall_strict": round(hit_same[typ] / gold_n[typ], 4) if gold_n[typ] else None,
            "recall_tokens": round(hit_tok[typ] / gold_n[typ], 4) if gold_n[typ] else None,
            "predicted": pred_n[typ],
            "precision": round(pred_tp[typ] / pred_n[typ], 4) if pred_n[typ] else None,
        }
    direct_gold = sum(gold_n[t] for t in DIRECT_IDENTIFIERS)
    direct_hit = sum(hit_any[t] for t in DIRECT_IDENTIFIERS)
    all_pred = sum(pred_n.values())
    all_tp = sum(pred_tp.values())
    return {
        "per_type": per_type,
        "direct_recall": round(direct_hit / direct_gold, 4) if direct_gold else None,
        "direct_recall_strict": round(sum(hit_same[t] for t in DIRECT_IDENTIFIERS) / direct_gold, 4)
        if direct_gold else None,
        "precision": round(all_tp / all_pred, 4) if all_pred else None,
        "clean_untouched": round(clean_untouched / clean_total, 4) if clean_total else None,
        "clean_false_positive_types": dict(clean_fp_types),
        "person_out_of_gazetteer": {"n": oog_total, "recall": round(oog_hit / oog_total, 4) if oog_total else None},
        "n_texts": len(dataset),
        "seconds": round(seconds, 3),
        "misses": misses,
    }


def markdown_table(results: dict, baseline: dict | None = None, names: tuple[str, str] = ("ours", "vanilla")) -> str:
    """Markdown table of per-type recall/precision (optionally side by side with a baseline)."""
    a, b = names
    types = [t for t in DIRECT_IDENTIFIERS + SUPPORT_IDENTIFIERS if t in results["per_type"] or
             (baseline and t in baseline["per_type"])]

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}%"

    if baseline is None:
        lines = ["| entity | gold | recall | strict recall | precision |", "|---|---:|---:|---:|---:|"]
        for t in types:
            r = results["per_type"].get(t, {})
            lines.append(f"| {t} | {r.get('gold', 0)} | {pct(r.get('recall'))} | {pct(r.get('recall_strict'))} | "
                         f"{pct(r.get('precision'))} |")
        lines.append(f"| **direct identifiers** | | **{pct(results['direct_recall'])}** | "
                     f"{pct(results['direct_recall_strict'])} | {pct(results['precision'])} |")
        lines.append(f"\nPII-free sentences left untouched: {pct(results['clean_untouched'])}")
        return "\n".join(lines)
    lines = [f"| entity | gold | recall {a} | recall {b} | strict {a} | strict {b} | precision {a} | precision {b} |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for t in types:
        r = results["per_type"].get(t, {})
        q = baseline["per_type"].get(t, {})
        lines.append(f"| {t} | {r.get('gold', q.get('gold', 0))} | {pct(r.get('recall'))} | {pct(q.get('recall'))} | "
                     f"{pct(r.get('recall_strict'))} | {pct(q.get('recall_strict'))} | {pct(r.get('precision'))} | "
                     f"{pct(q.get('precision'))} |")
    lines.append(f"| **direct identifiers** | | **{pct(results['direct_recall'])}** | **{pct(baseline['direct_recall'])}** | "
                 f"{pct(results['direct_recall_strict'])} | {pct(baseline['direct_recall_strict'])} | "
                 f"{pct(results['precision'])} | {pct(baseline['precision'])} |")
    lines.append(f"\nPII-free sentences left untouched: {a} {pct(results['clean_untouched'])}, "
                 f"{b} {pct(baseline['clean_untouched'])}")
    return "\n".join(lines)


def load_out_of_gazetteer_set(path: str | Path | None = None) -> list[dict]:
    """The committed out-of-gazetteer labeled set: `{"text", "spans", "source"}` per line."""
    from .artifacts import read_jsonl

    return read_jsonl(Path(path) if path else OUT_OF_GAZETTEER_SET)


def evaluate_split(anonymizer, in_gazetteer: list[dict] | None = None,
                   out_of_gazetteer: list[dict] | None = None) -> dict:
    """`evaluate` on in-gazetteer text (generate_labeled_set, seed 2024: names/templates the detector knows) and on
    out-of-gazetteer text, with `by_type` = {type: {"in": recall, "out": recall}} (token recall alongside)."""
    ing = in_gazetteer if in_gazetteer is not None else generate_labeled_set(n_per_type=40, n_clean=0, seed=2024)
    oog = out_of_gazetteer if out_of_gazetteer is not None else load_out_of_gazetteer_set()
    r_in, r_out = evaluate(anonymizer, ing), evaluate(anonymizer, oog)
    by_type = {}
    for t in sorted(set(r_in["per_type"]) | set(r_out["per_type"])):
        a, b = r_in["per_type"].get(t, {}), r_out["per_type"].get(t, {})
        if a.get("gold") or b.get("gold"):
            by_type[t] = {"in": a.get("recall"), "out": b.get("recall"), "in_tokens": a.get("recall_tokens"),
                          "out_tokens": b.get("recall_tokens"), "n_in": a.get("gold", 0), "n_out": b.get("gold", 0)}
    return {"in_gazetteer": r_in, "out_of_gazetteer": r_out, "by_type": by_type,
            "direct_recall_in": r_in["direct_recall"], "direct_recall_out": r_out["direct_recall"]}


def split_table(split: dict) -> str:
    """Markdown: recall per type on in-gazetteer vs out-of-gazetteer text (80% cover / every token)."""
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}%"

    lines = ["| entity | n in | recall in | tokens in | n out | recall out | tokens out |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for t, v in split["by_type"].items():
        lines.append(f"| {t} | {v['n_in']} | {pct(v['in'])} | {pct(v['in_tokens'])} | {v['n_out']} | {pct(v['out'])} "
                     f"| {pct(v['out_tokens'])} |")
    lines.append(f"| **direct identifiers** | | **{pct(split['direct_recall_in'])}** | | | "
                 f"**{pct(split['direct_recall_out'])}** | |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# vanilla baseline and throughput
# ---------------------------------------------------------------------------------------------------------


class VanillaPresidio:
    """Presidio with its default recognizers and the same spaCy model, one `analyze` call per document."""

    def __init__(self, cfg: AnonymizeConfig | None = None, entities: list[str] | None = None,
                 score_threshold: float | None = None):
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import SpacyNlpEngine

        from slm_pipeline.core.anonymize import DEFAULT_SPACY_MODEL, make_offline

        make_offline()
        cfg = cfg or AnonymizeConfig()
        model = getattr(cfg, "spacy_model", DEFAULT_SPACY_MODEL)
        import spacy

        if not spacy.util.is_package(model):  # Presidio would otherwise try to download it
            raise RuntimeError(f"spaCy model {model!r} is not installed")
        self.engine = AnalyzerEngine(nlp_engine=SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}]))
        supported = set(self.engine.get_supported_entities("en"))
        self.entities = [e for e in (entities or cfg.entities) if e in supported] if entities != [] else None
        self.score_threshold = cfg.score_threshold if score_threshold is None else score_threshold

    def analyze_texts(self, texts: list[str]):
        from slm_pipeline.core.anonymize import Finding

        out = []
        for t in texts:
            res = self.engine.analyze(t, language="en", entities=self.entities, score_threshold=self.score_threshold)
            out.append([Finding(r.entity_type, r.start, r.end, r.score, t[r.start:r.end]) for r in res])
        return out


def throughput(texts: list[str], cfg: AnonymizeConfig | None = None, dataset: list[dict] | None = None,
               per_doc_ours: bool = True) -> dict:
    """docs/s of our batch pipeline vs a naive per-document `AnalyzerEngine.analyze` loop on vanilla Presidio
    defaults (same texts, same spaCy model), plus both pipelines' recall on the labeled set."""
    from slm_pipeline.core.anonymize import Anonymizer

    cfg = cfg or AnonymizeConfig()
    texts = list(texts)
    ours = Anonymizer(cfg)
    ours.analyze_texts(texts[:8])  # warm-up (lazy lexicons)
    t0 = time.perf_counter()
    ours.analyze_texts(texts)
    t_batch = time.perf_counter() - t0

    result = {"n_texts": len(texts), "batch_size": cfg.batch_size}
    if per_doc_ours:
        t0 = time.perf_counter()
        for t in texts:
            ours.analyzer.analyze(t, language="en", entities=list(cfg.entities), score_threshold=cfg.score_threshold)
        result["ours_per_doc_docs_per_s"] = round(len(texts) / (time.perf_counter() - t0), 1)

    vanilla_all = VanillaPresidio(cfg, entities=[])  # Presidio defaults: every entity, default threshold
    vanilla_all.engine.analyze(texts[0], language="en")
    t0 = time.perf_counter()
    for t in texts:
        vanilla_all.engine.analyze(t, language="en")
    t_vanilla = time.perf_counter() - t0

    result.update({
        "ours_batch_docs_per_s": round(len(texts) / t_batch, 1),
        "vanilla_per_doc_docs_per_s": round(len(texts) / t_vanilla, 1),
        "speedup_vs_vanilla": round(t_vanilla / t_batch, 2),
    })
    if per_doc_ours:
        result["speedup_vs_ours_per_doc"] = round(result["ours_batch_docs_per_s"] / result["ours_per_doc_docs_per_s"], 2)
    if dataset is not None:
        vanilla = VanillaPresidio(cfg)
        result["ours_eval"] = evaluate(ours, dataset)
        result["vanilla_eval"] = evaluate(vanilla, dataset)
        # text the detector was not written against (hand-written names, non-English address formats)
        oog = load_out_of_gazetteer_set()
        result["ours_eval_oog"] = evaluate(ours, oog)
        result["vanilla_eval_oog"] = evaluate(vanilla, oog)
    return result

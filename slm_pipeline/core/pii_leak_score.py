"""Score anonymized *output text* against labeled PII spans, the way a reader of the output would find leaks.

Unlike `pii_eval.evaluate` (which scores detected spans), this looks only at what `slm-pipeline anonymize`
writes: a labeled span leaks if any of its tokens of 3+ characters (with a letter or digit) still stands in the
output as a whole word, case-insensitively, unless that token also occurs in the input outside every labeled
span (it is then template text, e.g. "Street" in "the street was closed"). A PII-free record must come out
byte-identical. Used for the independent labeled sets (written by authors who never saw the detector) in
slm_pipeline_tests/data/. Never imports dagster.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence

__all__ = ["DIRECT_TYPES", "leak_recall"]

DIRECT_TYPES = ("PERSON", "STREET_ADDRESS", "PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN",
                "IP_ADDRESS", "US_DRIVER_LICENSE")
_TOKEN = re.compile(r"\w+")


def _word(token: str) -> re.Pattern:
    return re.compile(rf"(?<!\w){re.escape(token.lower())}(?!\w)")


def _leaked(text: str, output: str, start: int, end: int, spans: Sequence) -> bool:
    outside = text.lower()
    for s, e, _ in sorted(spans, reverse=True):  # blank every labeled span: what remains is template text
        outside = outside[:s] + " " * (e - s) + outside[e:]
    low = output.lower()
    return any(_word(t).search(low) and not _word(t).search(outside)
               for t in _TOKEN.findall(text[start:end]) if len(t) >= 3)


def leak_recall(anonymize_texts: Callable[[list[str]], list[str]], dataset: Sequence[dict]) -> dict:
    """{"direct_recall", "by_type": {type: {"n", "recall"}}, "clean_unchanged", "n_clean", "misses"} for records
    `{"text", "spans": [[start, end, TYPE], ...]}`; `misses` lists (record index, type) of leaked spans."""
    texts = [d["text"] for d in dataset]
    outputs = anonymize_texts(texts)
    n, ok = defaultdict(int), defaultdict(int)
    clean = clean_ok = 0
    misses = []
    for i, (d, out) in enumerate(zip(dataset, outputs, strict=True)):
        if not d["spans"]:
            clean += 1
            clean_ok += out == d["text"]
            continue
        for s, e, t in d["spans"]:
            n[t] += 1
            if _leaked(d["text"], out, s, e, d["spans"]):
                misses.append((i, t))
            else:
                ok[t] += 1
    direct_n = sum(n.get(t, 0) for t in DIRECT_TYPES)
    return {
        "direct_recall": round(sum(ok.get(t, 0) for t in DIRECT_TYPES) / direct_n, 4) if direct_n else None,
        "by_type": {t: {"n": c, "recall": round(ok[t] / c, 4)} for t, c in sorted(n.items())},
        "clean_unchanged": round(clean_ok / clean, 4) if clean else None,
        "n_clean": clean,
        "misses": misses,
    }

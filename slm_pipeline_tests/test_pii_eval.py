"""PII evaluation: labeled-set generation, span-overlap metrics, recall targets, throughput harness."""

from __future__ import annotations

from collections import Counter

import pytest

from slm_pipeline.config import DIRECT_IDENTIFIERS, SUPPORT_IDENTIFIERS, AnonymizeConfig
from slm_pipeline.core.anonymize import Anonymizer, Finding
from slm_pipeline.core.pii_eval import evaluate, generate_labeled_set, markdown_table, throughput


@pytest.fixture(scope="module")
def anon() -> Anonymizer:
    return Anonymizer(AnonymizeConfig(canaries_file=None))


@pytest.fixture(scope="module")
def small_set() -> list[dict]:
    # a different seed than the default one used while developing the recognizers
    return generate_labeled_set(n_per_type=25, n_clean=120, seed=2024)


def test_labeled_set_is_deterministic_and_well_formed():
    a = generate_labeled_set(n_per_type=10, n_clean=20, seed=3)
    b = generate_labeled_set(n_per_type=10, n_clean=20, seed=3)
    c = generate_labeled_set(n_per_type=10, n_clean=20, seed=4)
    assert a == b and a != c
    types = Counter(t for d in a for _s, _e, t in d["spans"])
    assert set(DIRECT_IDENTIFIERS) <= set(types) and set(SUPPORT_IDENTIFIERS) <= set(types)
    assert sum(1 for d in a if not d["spans"]) == 20
    for d in a:
        for s, e, _t in d["spans"]:
            assert 0 <= s < e <= len(d["text"]) and d["text"][s:e].strip() == d["text"][s:e]


def test_labeled_set_is_varied(small_set):
    by_type: dict[str, set[str]] = {}
    for d in small_set:
        for s, e, t in d["spans"]:
            by_type.setdefault(t, set()).add(d["text"][s:e])
    assert all(len(v) >= 8 for t, v in by_type.items() if t in DIRECT_IDENTIFIERS)
    names = by_type["PERSON"]
    assert any(not n.isascii() for n in names)  # non-Anglo names with diacritics
    assert any(n.islower() for n in names)  # lower-case chat style
    phones = by_type["PHONE_NUMBER"]
    assert any(p.startswith("+") for p in phones) and any(p.startswith(("0", "(")) for p in phones)
    clean = [d["text"] for d in small_set if not d["spans"]]
    assert any("Pass" in t for t in clean) and any("Station" in t or "Square" in t for t in clean)


class _Stub:
    """An anonymizer stand-in returning fixed findings."""

    def __init__(self, findings):
        self.findings = findings

    def analyze_texts(self, texts):
        return self.findings


def test_evaluate_overlap_rules():
    ds = [
        {"text": "Call Maria Lopez now", "spans": [[5, 16, "PERSON"]]},
        {"text": "Ship to 221 Baker Street", "spans": [[8, 24, "STREET_ADDRESS"]]},
        {"text": "Mail bob@example.com", "spans": [[5, 20, "EMAIL_ADDRESS"]]},
        {"text": "The Day Pass is $5", "spans": []},
        {"text": "Central Station", "spans": []},
    ]
    findings = [
        [Finding("PERSON", 5, 10, 0.9, "Maria")],  # covers 5/11 < 80%: miss
        [Finding("PERSON", 12, 24, 0.9, "Baker Street")],  # covers 75%: miss
        [Finding("URL", 5, 20, 0.9, "bob@example.com")],  # other type: protects (recall) but not strict
        [],
        [Finding("PERSON", 0, 7, 0.9, "Central")],  # false positive on a clean sentence
    ]
    r = evaluate(_Stub(findings), ds)
    assert r["per_type"]["PERSON"]["recall"] == 0.0
    assert r["per_type"]["EMAIL_ADDRESS"]["recall"] == 1.0
    assert r["per_type"]["EMAIL_ADDRESS"]["recall_strict"] == 0.0
    assert r["direct_recall"] == pytest.approx(1 / 3, abs=1e-3)
    assert r["clean_untouched"] == 0.5
    assert r["per_type"]["PERSON"]["precision"] == pytest.approx(2 / 3, abs=1e-3)  # Baker Street overlaps gold
    table = markdown_table(r)
    assert "| PERSON |" in table and "direct identifiers" in table
    both = markdown_table(r, r)
    assert "recall ours" in both and "recall vanilla" in both


def test_recall_and_clean_targets(anon, small_set):
    r = evaluate(anon, small_set)
    assert r["direct_recall"] >= 0.95, markdown_table(r)
    assert r["clean_untouched"] >= 0.90, r["clean_false_positive_types"]
    for t in DIRECT_IDENTIFIERS:
        assert r["per_type"][t]["recall"] >= 0.9, (t, r["per_type"][t], [m for m in r["misses"] if m["type"] == t])


def test_throughput_harness(anon, small_set):
    texts = [d["text"] for d in small_set][:40]
    r = throughput(texts, AnonymizeConfig(canaries_file=None), per_doc_ours=False)
    assert r["n_texts"] == 40
    assert r["ours_batch_docs_per_s"] > 0 and r["vanilla_per_doc_docs_per_s"] > 0
    assert r["speedup_vs_vanilla"] > 0

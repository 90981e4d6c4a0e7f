"""PII evaluation: labeled-set generation, span-overlap metrics, recall targets, throughput harness."""

from __future__ import annotations

from collections import Counter

import pytest

from slm_pipeline.config import DIRECT_IDENTIFIERS, SUPPORT_IDENTIFIERS, AnonymizeConfig
from slm_pipeline.core.anonymize import Anonymizer, Finding
from slm_pipeline.core.pii_eval import (
    evaluate,
    evaluate_split,
    generate_labeled_set,
    load_out_of_gazetteer_set,
    markdown_table,
    split_table,
    throughput,
)


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


# ------------------------------------------------------------------------------- out-of-gazetteer recall


def test_out_of_gazetteer_set_is_out_of_gazetteer(anon):
    """The committed set (scripts/make_oog_pii_set.py) holds no name the PERSON gazetteer loads and no sentence of
    generate_labeled_set's templates, with multi-line international addresses."""
    oog = load_out_of_gazetteer_set()
    types = Counter(t for d in oog for _s, _e, t in d["spans"])
    assert types["PERSON"] >= 150 and types["STREET_ADDRESS"] >= 150
    names = [d["text"][s:e] for d in oog for s, e, t in d["spans"] if t == "PERSON"]
    known = [n for n in names if any(anon.gazetteer_contains(w) for w in n.replace(".", " ").split() if len(w) > 2)]
    assert known == []
    addrs = [d["text"][s:e] for d in oog for s, e, t in d["spans"] if t == "STREET_ADDRESS"]
    assert sum("\n" in a for a in addrs) >= 40
    assert len({d["source"].split(":")[-1] for d in oog if d["source"].startswith("faker-address")}) >= 10
    in_texts = {d["text"] for d in generate_labeled_set()}
    assert not in_texts & {d["text"] for d in oog}


def test_recall_in_and_out_of_gazetteer(anon):
    split = evaluate_split(anon)
    table = split_table(split)
    for t in DIRECT_IDENTIFIERS:
        assert split["by_type"][t]["in"] >= 0.95, table
    # measured 0.93 / 0.96 (tokens 0.93 / 0.97); before the structural recognizers: 0.72 / 0.29
    assert split["by_type"]["PERSON"]["out"] >= 0.90, table
    assert split["by_type"]["STREET_ADDRESS"]["out"] >= 0.93, table
    assert split["by_type"]["STREET_ADDRESS"]["out_tokens"] >= 0.93, table
    assert split["direct_recall_out"] >= 0.92, table


@pytest.mark.parametrize("text,value,etype", [
    ("Please update Faina D. Yefremova's order.", "Faina D. Yefremova", "PERSON"),
    ("Our story starts with the founders: Kónya, Becker and Vasquez.", "Kónya", "PERSON"),
    ("Our story starts with the founders: Kónya, Becker and Vasquez.", "Vasquez", "PERSON"),
    ("I liked the Jensen novel a lot.", "Jensen", "PERSON"),
    ("The cover photo was taken by Eyvindur Gaup.", "Eyvindur Gaup", "PERSON"),
    ("hi its levani kahananui, the app keeps logging me out", "levani kahananui", "PERSON"),
    ("Ship it to Koskikatu 25 Apt. 864\n33100 Tampere\nFinland", "Koskikatu 25 Apt. 864\n33100 Tampere\nFinland",
     "STREET_ADDRESS"),
    ("Send the lock to:\nMiła 184\n06-500 Mława", "Miła 184\n06-500 Mława", "STREET_ADDRESS"),
    ("My address is 1051 Budapest, Nádor utca 12.", "1051 Budapest, Nádor utca 12", "STREET_ADDRESS"),
])
def test_names_and_addresses_no_list_knows(anon, text, value, etype):
    s = text.index(value)
    fs = anon.analyze_texts([text])[0]
    assert any(f.start <= s and s + len(value) <= f.end and f.entity_type == etype for f in fs), fs


@pytest.mark.parametrize("text", [
    "Version 2\n10000 Users online",
    "Ubuntu's team shipped the fix.",
    "Upgrade to Windows 10 and Python 3.11 first.",
    "Read the Docker book, chapter 3.",
    "Ship it to Release 4, then tag it.",
    "hey its nvme ssd, fyi",
    "this is syncthing config.",
])
def test_structure_rules_leave_technical_text_alone(anon, text):
    assert [f for f in anon.analyze_texts([text])[0] if f.entity_type in ("PERSON", "STREET_ADDRESS")] == []

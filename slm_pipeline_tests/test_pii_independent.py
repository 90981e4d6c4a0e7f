"""PII recall on labeled sets written by people who never saw the detector (slm_pipeline_tests/data/):
`pii_heldout_independent.jsonl` (author 1), `pii_heldout_independent_2.jsonl` (author 2),
`pii_heldout_independent_3.jsonl` (author 3, 260 records, 80 of them PII-free) and
`pii_heldout_independent_4.jsonl` (author 4, 240 records, 90 PII-free, with deliberately hard ones: tools and
companies named after people, places that are first names, Title Case UI labels, versions that look like IPs).
Set 4 was the judge of the first precision pass (measured blind: 0.949 recall, 83/90 PII-free unchanged).
`pii_heldout_independent_5.jsonl` (author 5, 200 records from a company knowledge base, 110 of them PII-free docs,
FAQs, release notes and configs for invented products) measured 0.966 recall and 98/110 PII-free unchanged when it
arrived, before the third precision pass was written against it. All five are development sets for general rules
now (issue 14: no name, street, product or word of theirs is in any list), so these floors guard against
regressions; they do not measure generalization. `pii_heldout_independent_6.jsonl` (author 6, 160 records from
three companies' help centers and inboxes) measured 0.959 recall and 82/90 PII-free unchanged on arrival; 7 of its 8
changes were the companies' own brand names, which led to corpus brand-word discovery (anonymize/corpus_terms.py).
`pii_heldout_independent_7.jsonl` and `_8.jsonl` (authors 7 and 8, 200 records each, 120 PII-free, six invented
companies each) were asked for deliberately hard PII-free text: products, assistants and places named like people
("Otto sent me a notification", "Pippa offline", "Milo 16\" ships"). On arrival, before discovery: 0.925 / 0.973
recall, 94/120 and 95/120 unchanged; set 7 then guided discovery (0.825 unchanged), set 8 was measured once after it
(0.808, recall unchanged). Products named with a given name stay replaced unless the user allows them.
Scored on the output text with the leak rule of core/pii_leak_score.py, with the CLI's default settings."""

from __future__ import annotations

import pytest
from conftest import PROJECT_ROOT

from slm_pipeline.core.artifacts import read_jsonl
from slm_pipeline.core.pii_leak_score import leak_recall

DATA = PROJECT_ROOT / "slm_pipeline_tests" / "data"


def test_leak_rule_counts_any_surviving_token_but_not_template_words():
    data = [{"text": "Ship to Anna Berg, Main Street 5", "spans": [[8, 17, "PERSON"], [19, 32, "STREET_ADDRESS"]]},
            {"text": "Restart the Main service", "spans": []}]

    def half(texts):  # replaces the name's first word only, leaves the address
        return [t.replace("Anna", "<PERSON_1>") for t in texts]

    r = leak_recall(half, data)
    assert r["by_type"] == {"PERSON": {"n": 1, "recall": 0.0}, "STREET_ADDRESS": {"n": 1, "recall": 0.0}}
    assert r["clean_unchanged"] == 1.0 and r["misses"] == [(0, "PERSON"), (0, "STREET_ADDRESS")]
    r = leak_recall(lambda ts: [ts[0].replace("Anna Berg", "<P>").replace("Main Street 5", "<A>"), ts[1]], data)
    assert r["direct_recall"] == 1.0


@pytest.fixture(scope="module")
def cli_anonymizer():
    from slm_pipeline.config import load_config
    from slm_pipeline.core.anonymize import pipeline_anonymizer

    return pipeline_anonymizer(load_config(PROJECT_ROOT / "slm_pipeline.yaml")).anonymize_texts


@pytest.mark.parametrize("name, min_recall, min_clean", [
    ("pii_heldout_independent.jsonl", 0.97, 0.97),  # measured 0.991, 69/69 PII-free unchanged
    ("pii_heldout_independent_2.jsonl", 0.94, 0.97),  # measured 0.958, 71/72 (an order id is replaced)
    ("pii_heldout_independent_3.jsonl", 0.93, 0.97),  # measured 0.952, 79/80 (an order id is replaced)
    ("pii_heldout_independent_4.jsonl", 0.95, 0.97),  # measured 0.967, 89/90 (an order id is replaced)
    ("pii_heldout_independent_5.jsonl", 0.95, 0.98),  # measured 0.966, 109/110 (an order id in a CSV row)
    ("pii_heldout_independent_6.jsonl", 0.94, 0.95),  # 0.959, 87/90 (82/90 before brand-word discovery)
    ("pii_heldout_independent_7.jsonl", 0.91, 0.82),  # 0.925, 99/120 (94/120 before)
    ("pii_heldout_independent_8.jsonl", 0.96, 0.80),  # 0.973, 97/120 (95/120 before)
])
def test_recall_on_sets_written_without_the_detector_in_view(cli_anonymizer, name, min_recall, min_clean):
    r = leak_recall(cli_anonymizer, read_jsonl(DATA / name))
    assert r["direct_recall"] >= min_recall, r["by_type"]
    assert r["clean_unchanged"] >= min_clean

import json

import pytest

from slm_pipeline.config import PairsConfig
from slm_pipeline.core.pairs import (
    MinHashLSH,
    PairsError,
    build_pairs,
    shingles,
    token_length_histogram_markdown,
    validate_sample,
)
from slm_pipeline.core.policy import GoldError, Policy, PolicyError, load_gold, load_policy

POLICY = Policy(
    company="LoopBike",
    system_prompt="You are LoopBike's support assistant.",
    scope=["bikes", "orders"],
    refusal="Sorry, I can only help with LoopBike bikes, rentals and orders.",
    out_of_scope_examples=["What is the capital of France?", "Write me a poem about the sea."],
)
TOPICS = ["brake pads", "chain lubrication", "tyre pressure", "battery storage", "saddle height", "gear cables",
          "frame cleaning", "light batteries", "pedal bearings", "wheel truing", "bell mounting", "lock care"]


def cfg(**kw) -> PairsConfig:
    return PairsConfig(**{"min_train_samples": 1, **kw})


def faq(i: int, q: str, a: str) -> dict:
    return {"id": f"faq.csv#{i}", "kind": "faq", "source": "faq.csv",
            "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def faqs(n: int = 12) -> list[dict]:
    return [faq(i, f"How do I look after the {t} on my bike?",
                f"For the {t}, check them every {i + 2} weeks and visit a LoopBike shop if they look worn.")
            for i, t in enumerate(TOPICS[:n])]


def by_id(result) -> dict:
    return {s["id"]: s for s in result.samples}


# ------------------------------------------------------------------------------------------------ formats


def test_faq_chat_doc_and_refusal_formats():
    chat = {"id": "chat-1", "kind": "chat", "messages": [
        {"role": "system", "content": "old prompt"},
        {"role": "assistant", "content": "Welcome to LoopBike chat!"},  # leading assistant turn is dropped
        {"role": "user", "content": "Hi, my order has not arrived."},
        {"role": "user", "content": "It was due on Monday."},
        {"role": "assistant", "content": "Sorry about that, I will check the tracking for you."},
        {"role": "user", "content": "Great, thanks for checking."},
        {"role": "assistant", "content": "It arrives tomorrow before noon."},
        {"role": "user", "content": "ok bye"},  # trailing user turn is trimmed
    ]}
    doc = {"id": "docs/care.md", "kind": "doc", "meta": {"title": "Bike Care"},
           "text": "# Bike Care\n\nLooking after your bike keeps it safe.\n\n## Battery Storage\n"
                   "Store the battery indoors at room temperature.\n\n### Winter\nCharge it to half.\n\n"
                   "## How often should I service my bike?\nOnce a year at any LoopBike shop.\n"}
    res = build_pairs([faqs(1)[0], chat, doc], POLICY, [], cfg(eval_fraction=0.0))
    s = by_id(res)
    for sample in res.samples:
        assert validate_sample(sample, POLICY.system_prompt) == []
        assert list(sample) == ["id", "messages", "source", "split"]
        assert sample["messages"][0] == {"role": "system", "content": POLICY.system_prompt}

    assert s["faq.csv#0"]["source"] == "faq" and len(s["faq.csv#0"]["messages"]) == 3

    turns = s["chat-1"]["messages"][1:]
    assert [m["role"] for m in turns] == ["user", "assistant", "user", "assistant"]
    assert turns[0]["content"] == "Hi, my order has not arrived.\n\nIt was due on Monday."
    assert turns[-1]["content"] == "It arrives tomorrow before noon."

    # One pair per chunk of the retrieval chunker: every heading (### too) opens its own, with its heading path.
    intro, battery, winter, service = (s[f"docs/care.md#s{k}"] for k in range(4))
    assert intro["source"] == "doc"
    assert intro["messages"][2]["content"] == "Looking after your bike keeps it safe."
    assert battery["messages"][2]["content"] == "Store the battery indoors at room temperature."
    assert "battery storage" in battery["messages"][1]["content"].lower()
    assert "winter" in winter["messages"][1]["content"].lower() and winter["messages"][2]["content"] == "Charge it to half."
    assert service["messages"][1]["content"] == "How often should I service my bike?"

    refusals = [x for x in res.samples if x["source"] == "refusal"]
    assert sorted(r["messages"][1]["content"] for r in refusals) == sorted(POLICY.out_of_scope_examples)
    assert all(r["messages"][2]["content"] == POLICY.refusal for r in refusals)
    assert res.report["candidates_by_source"] == {"faq": 1, "chat": 1, "doc": 4, "refusal": 2}


def test_doc_questions_are_deterministic_and_varied():
    sections = "".join(f"## {t.title()}\nAll about {t} and why it matters for riders.\n\n" for t in TOPICS)
    doc = {"id": "d.md", "kind": "doc", "meta": {"title": "Guide"}, "text": "# Guide\n\n" + sections}
    q1 = [x["messages"][1]["content"] for x in build_pairs([doc], POLICY, [], cfg()).samples]
    q2 = [x["messages"][1]["content"] for x in build_pairs([doc], POLICY, [], cfg()).samples]
    assert q1 == q2
    assert any("brake pads" in q and "Guide" in q for q in q1)  # the topic, in its page's context
    assert len({q.split(" ")[0] for q in q1}) >= 3  # several templates in use


def test_long_sections_become_several_pairs_not_a_drop():
    long = " ".join(f"Rule {i}: keep the chain number {i} clean and oiled every week." for i in range(40))
    doc = {"id": "d.md", "kind": "doc", "meta": {"title": "Guide"}, "text": f"# Guide\n\n## Chain care\n\n{long}\n"}
    res = build_pairs([doc], POLICY, [], cfg(include_refusals=False), chunk_words=60, overlap_words=10)
    answers = [x["messages"][2]["content"] for x in res.samples]
    assert len(answers) >= 5 and all(len(a.split()) <= 60 for a in answers) and not res.dropped
    assert all("chain care" in x["messages"][1]["content"].lower() for x in res.samples)
    assert "Rule 39: keep the chain number 39 clean" in answers[-1]

def test_teacher_hook_and_errors_reported():
    doc = {"id": "d.md", "kind": "doc", "meta": {"title": "Guide"},
           "text": "# Guide\n\n## Brakes\nCheck the brake pads monthly.\n\n## Oops\nThis section breaks it.\n"}
    calls = []

    def teacher(title, section):
        calls.append((title, section))
        if "Oops" in section:
            raise RuntimeError("model offline")
        return [("How often should brake pads be checked?", "Every month, at least.")]

    res = build_pairs([doc], POLICY, [], cfg(include_refusals=False), teacher=teacher)
    assert calls[0] == ("Guide", "Guide › Brakes\n\nCheck the brake pads monthly.")
    assert by_id(res)["d.md#s0.t0"]["source"] == "teacher"
    assert res.report["dropped"]["teacher_error"] == 1
    assert "model offline" in res.dropped[0]["detail"]


# ------------------------------------------------------------------------------------------------ curation


def test_exact_and_near_duplicates_dropped():
    base = faqs()
    exact = faq(100, base[0]["messages"][0]["content"].upper(), base[0]["messages"][1]["content"] + "!!")
    long_answer = " ".join(f"step {w} of the repair" for w in "one two three four five six seven eight".split())
    near_a = faq(101, "How do I fix a flat tyre?", long_answer + " then ride home carefully")
    near_b = faq(102, "How do I fix a flat tyre?", long_answer + " then ride home slowly")
    res = build_pairs(base + [exact, near_a, near_b], POLICY, [], cfg(include_refusals=False))
    assert res.report["dropped"] == {"exact_duplicate": 1, "near_duplicate": 1}
    assert res.report["dropped_examples"] == {"exact_duplicate": ["faq.csv#100"], "near_duplicate": ["faq.csv#102"]}
    assert res.report["n_kept"] == len(base) + 1


def test_minhash_lsh_finds_near_duplicates_only():
    lsh = MinHashLSH(0.8)
    words = [f"w{i}" for i in range(60)]
    lsh.add("a", shingles(" ".join(words)))
    lsh.add("b", shingles(" ".join(reversed(words))))
    match = lsh.query(shingles(" ".join(words[:-1] + ["changed"])))
    assert match is not None and match[0] == "a" and match[1] >= 0.8
    assert lsh.query(shingles(" ".join(words[::2]))) is None


def test_near_dedup_scales_to_10k_samples():
    import time

    recs = [faq(i, f"Question {i} about order {i * 7919 % 10007} and bike {i % 97}?",
                f"Answer {i}: your order {i * 31 % 1009} ships from warehouse {i % 13} in {i % 5 + 1} days.")
            for i in range(10_000)]
    t = time.perf_counter()
    res = build_pairs(recs, POLICY, [], cfg(include_refusals=False, language_check=False))
    assert time.perf_counter() - t < 15
    assert res.report["n_candidates"] == 10_000


def test_garbage_short_and_non_english_dropped():
    recs = faqs() + [
        faq(200, "???", "Some reasonable answer text here."),
        faq(201, "What is the price?", "12 €"),
        faq(202, "Codes?", "#### 1234 5678 9012 ---- //// 0000 **** ++++"),
        faq(203, "Wie lange dauert der Versand?",
            "Der Versand dauert normalerweise drei bis fünf Werktage innerhalb von Deutschland und Österreich, "
            "danach erhalten Sie eine Nachricht."),
        faq(204, "配送にはどのくらいかかりますか？", "通常、配送には三日から五日かかります。ご了承ください。"),
    ]
    res = build_pairs(recs, POLICY, [], cfg(include_refusals=False))
    assert res.report["dropped"] == {"garbage": 2, "answer_too_short": 1, "non_english": 2}
    reasons = {d["id"]: d["reason"] for d in res.dropped}
    assert reasons["faq.csv#201"] == "answer_too_short" and reasons["faq.csv#203"] == "non_english"


def test_gold_leakage_guard():
    recs = faqs() + [faq(300, "How can I reset my LoopBike password?", "Use the 'Forgot password' link on the login page."),
                     faq(301, "what's the warranty on e-bike batteries", "Batteries are covered for two years.")]
    gold = [{"id": "g1", "question": "How do I reset my LoopBike password?"},
            "What is the warranty on e-bike batteries?"]
    res = build_pairs(recs, POLICY, gold, cfg(include_refusals=False))
    assert res.report["gold_leaks_dropped"] == 2
    assert {"faq.csv#300", "faq.csv#301"}.isdisjoint(by_id(res))
    assert len(res.samples) == len(faqs())


def test_length_filter_and_token_stats():
    recs = faqs()
    recs.append(faq(400, "Tell me everything about bikes?", "Bikes are great for commuting and fun. " * 40))

    def count_tokens(messages):  # stand-in for the chat-template token count
        return sum(len(m["content"].split()) for m in messages)

    res = build_pairs(recs, POLICY, [], cfg(max_tokens=100), count_tokens=count_tokens)
    assert res.report["dropped"] == {"too_long": 1}
    assert "faq.csv#400" not in by_id(res)
    stats = res.report["token_lengths"]
    assert stats["min"] <= stats["p50"] <= stats["p95"] <= stats["max"] <= 100
    assert set(res.token_counts) == set(by_id(res))
    assert token_length_histogram_markdown(res.token_counts.values()).startswith("| tokens | samples |")


# ------------------------------------------------------------------------------------------------ split + report


def test_split_is_deterministic_stratified_and_stable():
    recs = [faq(i, f"Question number {i} about {TOPICS[i % 12]} and riding?",
                f"Answer number {i}: {TOPICS[i % 12]} need care every {i} days, see the manual page {i}.")
            for i in range(200)]
    policy = Policy(**{**POLICY.__dict__, "out_of_scope_examples": [f"Tell me about planet number {i}?"
                                                                    for i in range(10)]})
    a = build_pairs(recs, policy, [], cfg(eval_fraction=0.1))
    b = build_pairs(recs, policy, [], cfg(eval_fraction=0.1))
    assert [s["split"] for s in a.samples] == [s["split"] for s in b.samples]
    assert (a.report["n_train"], a.report["n_eval"]) == (189, 21)
    assert sum(s["split"] == "eval" for s in a.samples if s["source"] == "refusal") == 1

    other_seed = build_pairs(recs, policy, [], cfg(eval_fraction=0.1), seed=7)
    assert [s["split"] for s in a.samples] != [s["split"] for s in other_seed.samples]

    more = build_pairs(recs + [faq(1000 + i, f"Extra question {i} about {TOPICS[i % 12]}?",
                                   f"Extra answer {i} about {TOPICS[i % 12]} and the shop.") for i in range(20)],
                       policy, [], cfg(eval_fraction=0.1))
    before, after = by_id(a), by_id(more)
    moved = sum(before[k]["split"] != after[k]["split"] for k in before)
    assert moved <= 3  # adding data moves only samples near the cut


def test_too_few_train_samples_raises_with_result():
    with pytest.raises(PairsError, match="min_train_samples") as e:
        build_pairs(faqs(3), POLICY, [], PairsConfig(min_train_samples=20))
    assert e.value.result is not None and e.value.result.report["n_kept"] == 5


def test_report_counts_add_up():
    recs = faqs() + [faqs()[0] | {"id": "dup"}]
    res = build_pairs(recs, POLICY, [], cfg())
    r = res.report
    assert r["n_candidates"] == r["n_kept"] + r["n_dropped"] == len(recs) + 2
    assert r["n_train"] + r["n_eval"] == r["n_kept"]
    assert r["kept_by_source"] == {"faq": 12, "refusal": 2}
    assert json.dumps(r)  # serializable for Dagster metadata / manifests


def test_validate_sample_reports_problems():
    bad = {"id": "", "source": "faq", "split": "test",
           "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}
    problems = validate_sample(bad)
    assert any("'id'" in p for p in problems) and any("'split'" in p for p in problems)
    assert any("messages" in p for p in problems)
    ok = {"id": "x", "source": "faq", "split": "train", "messages": [
        {"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "user", "content": "A"}]}
    assert validate_sample(ok) == ["message 2 has role 'user', expected 'assistant'"]
    assert "does not start with the policy system prompt" in validate_sample(ok, system_prompt="other")[-1]


# ------------------------------------------------------------------------------------------------ policy + gold


def test_load_policy(tmp_path):
    p = tmp_path / "policy.yaml"
    p.write_text("company: LoopBike\nsystem_prompt: Be helpful.\nscope: [bikes]\nrefusal: No.\n"
                 "out_of_scope_examples: ['Weather?']\n")
    pol = load_policy(p)
    assert pol.company == "LoopBike" and pol.out_of_scope_examples == ["Weather?"]
    p.write_text("company: LoopBike\nsystem_prompt: ''\nrefusal: No.\n")
    with pytest.raises(PolicyError, match="policy.yaml.*'system_prompt'"):
        load_policy(p)
    p.write_text("company: LoopBike\nsystem_prompt: x\nrefusal: No.\nscope: bikes\n")
    with pytest.raises(PolicyError, match="'scope' must be a list"):
        load_policy(p)
    with pytest.raises(PolicyError, match="policy_file"):
        load_policy(tmp_path / "missing.yaml")


def test_load_gold(tmp_path):
    p = tmp_path / "gold.jsonl"
    good = {"id": "g1", "question": "Q?", "reference": "R.", "key_facts": ["R"], "match": "any"}
    p.write_text(json.dumps(good) + "\n\n" + json.dumps({"id": "g2", "question": "Q2?", "reference": "R2"}) + "\n")
    gold = load_gold(p)
    assert gold[0]["match"] == "any" and gold[1]["key_facts"] == [] and gold[1]["match"] == "all"
    p.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "g2", "match": "some"}) + "\n")
    with pytest.raises(GoldError, match=r"gold.jsonl:2: 'match'"):
        load_gold(p)
    p.write_text(json.dumps(good) + "\n{oops\n")
    with pytest.raises(GoldError, match=r"gold.jsonl:2: malformed JSON"):
        load_gold(p)
    p.write_text(json.dumps({**good, "question": ""}) + "\n")
    with pytest.raises(GoldError, match=r"gold.jsonl:1: field 'question'"):
        load_gold(p)


def test_chunks_with_several_facts_give_several_short_pairs():
    from slm_pipeline.core.doc_questions import doc_question, fact_questions

    text = ("**`options.maxSendKbps`**\nMaximum send rate in KiB/s. The default is `0`, unlimited.\n\n"
            "To restart the bike dock service on the station, run:\n\n```sh\n# as root\nsystemctl restart dock\n```\n\n"
            "If your bike does not unlock after three tries, call the support line from the station.\n\n"
            "A dock is the post that holds and charges one bike at a station.")
    pairs = dict(fact_questions(text, "Station Guide", ["Docks"], "LoopBike", limit=5))
    assert pairs["What is options.maxSendKbps for?"] == "Maximum send rate in KiB/s. The default is `0`, unlimited."
    assert pairs["How do I restart the bike dock service on the station?"].endswith("systemctl restart dock\n```")
    assert "What happens if my bike does not unlock after three tries?" in pairs  # asked as the user would
    assert pairs["What is a dock?"] == "A dock is the post that holds and charges one bike at a station."
    assert len(fact_questions(text, "Station Guide", ["Docks"], "LoopBike", limit=2)) == 2
    assert fact_questions("It is a thing that we use. If omitted, nothing happens.", "T", [], "X", 5) == []
    # The chunk question carries its context: the page title, or the parent when the heading is generic.
    assert "Station Guide" in doc_question("LoopBike", "Station Guide", ["Docks"], "k1")
    assert doc_question("LoopBike", "Load Balancing", ["Scenarios"], "k2").count("load balancing") == 1

    doc = {"id": "d.md", "kind": "doc", "meta": {"title": "Station Guide"}, "text": f"# Station Guide\n\n## Docks\n\n{text}"}
    res = build_pairs([doc], POLICY, [], cfg(include_refusals=False, doc_fact_questions=3))
    ids = [s["id"] for s in res.samples]
    assert ids[0] == "d.md#s0" and {"d.md#s0.f0", "d.md#s0.f1", "d.md#s0.f2"} <= set(ids)
    assert res.report["doc_fact_pairs_kept"] >= 3 and res.spans["d.md#s0.f1"] == res.spans["d.md#s0"]
    assert doc_question("LoopBike", "Docks", ["Linux", "How to Set Up a Dock"], "k3") == "How do I set up a dock?"
    # doc_chunk_pairs off: the facts train, the whole-chunk answer does not
    ids = [s["id"] for s in build_pairs([doc], POLICY, [], cfg(include_refusals=False, doc_fact_questions=3,
                                                                doc_chunk_pairs=False)).samples]
    assert "d.md#s0" not in ids and {"d.md#s0.f0", "d.md#s0.f1", "d.md#s0.f2"} <= set(ids)

"""Retrieval: chunking, the index (right chunk first), RAFT samples (oracle share, template = serving's, no gold
leakage), placeholder-free targets, and the gate floors."""

from __future__ import annotations

import json

import pytest
from conftest import PROJECT_ROOT, TINY_RECORDS

from slm_pipeline.config import EvalConfig, PairsConfig, RetrievalConfig
from slm_pipeline.core.chunking import chunk_record, chunk_records, record_words, split_markdown, split_words
from slm_pipeline.core.gate import promotion_decision
from slm_pipeline.core.grounding import Grounder
from slm_pipeline.core.pairs import PLACEHOLDER, build_pairs, validate_sample
from slm_pipeline.core.policy import load_gold, load_policy
from slm_pipeline.core.raft import add_retrieved_context, oracle_chunk_ids
from slm_pipeline.core.retrieval import context_system_message, fact_recall, open_index

POLICY = load_policy(PROJECT_ROOT / "assets" / "policy.yaml")


def test_markdown_sections_keep_heading_path_and_code_comments_are_not_headings():
    text = "# Guide\n\nIntro.\n\n## Setup\n\nStep one.\n\n```sh\n# not a heading\nrun it\n```\n\n### Linux\n\nUse apt."
    sections = split_markdown(text, "Guide")
    assert sections == [([], "Intro."), (["Setup"], "Step one.\n\n```sh\n# not a heading\nrun it\n```"),
                        (["Setup", "Linux"], "Use apt.")]


def test_long_sections_split_with_overlap_and_nothing_lost():
    body = "\n\n".join(f"Paragraph {i} " + " ".join(f"w{i}_{j}" for j in range(30)) + ". It ends here." for i in range(6))
    pieces = split_words(body, max_words=70, overlap_words=10)
    assert len(pieces) > 1 and all(len(p.split()) <= 70 for p in pieces)
    assert all(w in " ".join(pieces) for w in body.split())  # every word is in some piece
    assert pieces[1].startswith("It ends here.\n\nParagraph")  # overlap: the last whole sentence before the cut


def test_long_code_blocks_and_lists_split_at_lines_and_stay_code():
    code = "```sh\n" + "\n".join(f"# step {i}\nrun --flag value{i}" for i in range(40)) + "\n```"
    items = "\n".join(f"- item {i} with a few words in it" for i in range(30))
    pieces = split_words(f"Intro sentence.\n\n{code}\n\n{items}", max_words=60, overlap_words=10)
    code_pieces = [p for p in pieces if "run --flag" in p]
    assert len(code_pieces) >= 2 and all(p.startswith("```sh\n") for p in code_pieces)
    assert all(p.count("```") % 2 == 0 for p in pieces)  # every piece's code is fenced again
    assert all(line.startswith("- item") for p in pieces[-2:] for line in p.split("\n"))  # list lines kept whole
    rec = {"id": "d", "kind": "doc", "meta": {"title": "T"},
           "text": f"# T\n\nIntro.\n\n## Steps\n\n{code}\n\n{items}\n\n## Empty\n"}
    spans = chunk_record(rec, 60, 10)
    # Every word of the document is in exactly one chunk's span, headings and all.
    assert spans[0].start == 0 and spans[-1].end == record_words(rec)
    assert all(a.end == b.start for a, b in zip(spans, spans[1:], strict=False))
    assert not any(c.chunk.heading.startswith("step") for c in spans)  # "# step 3" in code is not a heading


def test_chunks_carry_title_heading_and_skip_chats():
    records = [*TINY_RECORDS, {"id": "chat-1", "kind": "chat", "messages": [{"role": "user", "content": "hi"}]}]
    chunks, report = chunk_records(records)
    assert report["by_kind"] == {"faq": 3, "doc": 3} and report["skipped_by_reason"] == {"kind_chat": 1}
    doc = [c for c in chunks if c.kind == "doc"]
    assert [c.heading for c in doc] == ["", "Battery and range", "Riding rules"]
    assert doc[1].label == "E-bikes › Battery and range"
    assert "# unlock from the CLI" in doc[2].text


@pytest.mark.parametrize("question, expected", [
    ("What's the price of a 24-hour ticket?", "faq.csv#2#c0"),
    ("I left my umbrella in the basket, will you hold it?", "faq.csv#4#c0"),
    ("How far can I go on one charge?", "docs/ebikes.md#c1"),
    ("Is there a minimum age for electric bikes?", "docs/ebikes.md#c2"),
])
def test_the_right_chunk_ranks_first(tiny_index, question, expected):
    hits = open_index(tiny_index, RetrievalConfig()).search(question)
    assert hits[0].chunk.id == expected, [(h.chunk.id, h.score) for h in hits]
    assert hits[0].score > hits[-1].score


def test_context_template_puts_the_best_hit_last_next_to_the_question(tiny_index):
    hits = open_index(tiny_index, RetrievalConfig(k=3)).search("What's the price of a 24-hour ticket?")
    system = context_system_message(POLICY.system_prompt, POLICY.company, hits)
    assert system.startswith(POLICY.system_prompt)
    positions = [system.index(h.chunk.text) for h in hits]
    assert positions == sorted(positions, reverse=True)  # best-ranked excerpt comes last
    assert system.rstrip().endswith(hits[0].chunk.text) and f"[{len(hits)}] {hits[0].chunk.label}" in system


def test_index_metadata_and_fact_recall(tiny_index):
    info = json.loads((tiny_index / "index.json").read_text())
    assert info["chunks"] == 6 and info["dim"] == 384
    index = open_index(tiny_index, RetrievalConfig(k=2))
    gold = [{"question": "How long is lost property kept?", "key_facts": ["30 days"], "match": "all"},
            {"question": "What does a Day Pass cost?", "key_facts": ["4.50"], "match": "all"}]
    recall = fact_recall(index.search_many([g["question"] for g in gold]), gold, [1, 2])
    assert recall == {"recall_at_1": 1.0, "recall_at_2": 1.0}


def _faq_records(n: int) -> list[dict]:
    return [{"id": f"faq.csv#{i}", "kind": "faq", "meta": {}, "messages": [
        {"role": "user", "content": f"Question number {i} about plan {i}?"},
        {"role": "assistant", "content": f"Plan {i} costs {i} euros per month and renews itself."}]}
        for i in range(2, 42)]


def test_raft_samples_have_the_oracle_share_and_the_serving_template(tmp_path):
    from slm_pipeline.core.retrieval import index_corpus

    records = _faq_records(40)
    index_corpus(records, RetrievalConfig(), tmp_path)
    index = open_index(tmp_path, RetrievalConfig(k=3))
    cfg = PairsConfig(eval_fraction=0.0, include_refusals=True, near_duplicate_threshold=1.0)
    samples, report = [], {}

    def contextualize(batch):
        out, rep = add_retrieved_context(batch, index, POLICY, k=3, oracle_share=0.75, seed=1)
        report.update(rep)
        return out

    result = build_pairs(records, POLICY, [], cfg, contextualize=contextualize)
    samples = result.samples
    faq = [s for s in samples if s["source"] == "faq"]
    with_oracle = [s for s in faq if s["oracle_ids"]]
    assert abs(len(with_oracle) / len(faq) - 0.75) <= 0.15 and report["oracle_share_actual"] == round(
        len(with_oracle) / len(faq), 4)
    for s in faq:  # the oracle is in the context exactly when the sample says so
        assert (f"{s['id']}#c0" in s["context_ids"]) == bool(s["oracle_ids"])
        assert len(s["context_ids"]) == 3
    # Same question at serving time -> the same system message as a sample whose context is what retrieval gave.
    grounder = Grounder(index, POLICY.system_prompt, POLICY.company, POLICY.refusal, min_score=-1.0)
    for s in [s for s in samples if s["source"] == "refusal"][:5] + with_oracle[:5]:
        grounded = grounder.ground([{"role": "user", "content": s["messages"][1]["content"]}])
        if [h.chunk.id for h in grounded.hits] == s["context_ids"]:
            assert grounded.messages[0]["content"] == s["messages"][0]["content"]
    assert all(not validate_sample(s, POLICY.system_prompt) for s in samples)


def test_short_fact_and_teacher_answers_have_the_chunk_they_were_taken_from_as_oracle(tmp_path):
    from slm_pipeline.core.retrieval import index_corpus

    sections = [f"## Setting {n}\n\n" + " ".join(f"filler{n}x{j}" for j in range(60))
                + f". The {n} timeout defaults to {10 + i} seconds and can be raised." for i, n in
                enumerate(["alpha", "beta", "gamma"])]
    doc = {"id": "docs/a.md", "kind": "doc", "meta": {"title": "Guide"}, "text": "\n\n".join(sections)}
    index_corpus([doc], RetrievalConfig(chunk_words=80, overlap_words=0), tmp_path)
    index = open_index(tmp_path, RetrievalConfig(k=3))
    by_text = {c.id: c.text for c in index.chunks}
    beta = next(cid for cid, t in by_text.items() if "beta timeout" in t)

    def sample(sid, source, answer):
        return {"id": sid, "source": source, "messages": [
            {"role": "system", "content": "s"}, {"role": "user", "content": "q?"},
            {"role": "assistant", "content": answer}]}

    # A short answer holds a tiny share of its chunk's words; it still came from that chunk.
    assert oracle_chunk_ids(sample("docs/a.md#s1.f0", "doc", "The beta timeout defaults to 11 seconds."),
                            index) == {beta}
    assert oracle_chunk_ids(sample("docs/a.md#s1.t0", "teacher", "It defaults to 11 seconds and can be raised."),
                            index) == {beta}
    # An answer that no chunk of its document states gets no oracle (it must not be shown a wrong one).
    assert oracle_chunk_ids(sample("docs/a.md#s1.f1", "doc", "Refunds take fourteen working days."), index) == set()


def test_extra_context_views_draw_other_distractors_and_stay_in_their_samples_split(tmp_path):
    from slm_pipeline.core.retrieval import index_corpus

    records = _faq_records(40)
    index_corpus(records, RetrievalConfig(), tmp_path)
    index = open_index(tmp_path, RetrievalConfig(k=3))

    def contextualize(batch):
        return add_retrieved_context(batch, index, POLICY, k=3, oracle_share=0.75, seed=1, views=3)[0]

    cfg = PairsConfig(eval_fraction=0.2, include_refusals=False, near_duplicate_threshold=1.0)
    samples = build_pairs(records, POLICY, [], cfg, contextualize=contextualize).samples
    views = [s for s in samples if "~" in s["id"]]
    assert len(views) == 2 * len(samples) // 3
    by_id = {s["id"]: s for s in samples}
    for v in views:
        original = by_id[v["group"]]
        assert v["split"] == original["split"] and v["messages"][1:] == original["messages"][1:]
        assert len(v["context_ids"]) == 3 and (f"{v['group']}#c0" in v["context_ids"]) == bool(v["oracle_ids"])
    # Not one fixed context per question: the views of a sample differ from it in distractors or order.
    assert sum(v["context_ids"] != by_id[v["group"]]["context_ids"] for v in views) >= 0.9 * len(views)
    share = sum(bool(v["oracle_ids"]) for v in views) / len(views)
    assert 0.6 <= share <= 0.9
    assert all(not validate_sample(s, POLICY.system_prompt) for s in samples)


def test_paraphrase_samples_hide_the_rows_own_chunk_and_show_another_with_the_same_facts(tmp_path):
    """An FAQ row's chunk holds its question verbatim; with paraphrase_share the model must find the answer in
    another chunk that states the same facts (as when a user words a question differently)."""
    from slm_pipeline.core.raft import paraphrase_chunk_ids
    from slm_pipeline.core.retrieval import index_corpus

    def row(rid, q, a):
        return {"id": f"faq.csv#{rid}", "kind": "faq", "meta": {}, "messages": [
            {"role": "user", "content": q}, {"role": "assistant", "content": a}]}

    records = []
    for i in range(2, 22):  # pairs of rows with the same fact in other words; rows 100+ have no twin
        records.append(row(i, f"How much is plan {i}?", f"Plan {i} costs {i * 7} euros per month, billed monthly."))
        records.append(row(i + 50, f"What do I pay each month on tariff number {i}?",
                           f"Tariff {i} is billed monthly: {i * 7} euros per month for plan {i}."))
    records += [row(100 + i, f"Where is depot {i}?", f"Depot {i} sits at gate {300 + i} of the harbour.")
                for i in range(5)]
    index_corpus(records, RetrievalConfig(), tmp_path)
    index = open_index(tmp_path, RetrievalConfig(k=3))
    twins = paraphrase_chunk_ids({"source": "faq", "id": "faq.csv#5", "messages": records[6]["messages"]}, index,
                                 {"faq.csv#5#c0"})
    assert twins == {"faq.csv#55#c0"}

    samples = [{"id": r["id"], "source": "faq", "messages": [{"role": "system", "content": "x"}, *r["messages"]]}
               for r in records]
    out, report = add_retrieved_context(samples, index, POLICY, k=3, oracle_share=1.0, seed=1, paraphrase_share=1.0)
    assert report["with_paraphrase_oracle"] == 40
    for s in out:
        own = f"{s['id']}#c0"
        if int(s["id"].split("#")[1]) >= 100:  # no twin: its own chunk stays the oracle
            assert s["oracle_ids"] == [own] and own in s["context_ids"]
        else:
            assert own not in s["context_ids"] and len(s["context_ids"]) == 3
            assert set(s["oracle_ids"]) & set(s["context_ids"])  # the twin is shown
            shown = next(index.by_id[c].text for c in s["context_ids"] if c in s["oracle_ids"])
            assert str(int(s["id"].split("#")[1]) % 50 * 7) in shown
    # paraphrase_share 0 changes nothing: every sample sees its own row.
    plain, _ = add_retrieved_context(samples, index, POLICY, k=3, oracle_share=1.0, seed=1)
    assert all(s["oracle_ids"] == [f"{s['id']}#c0"] and f"{s['id']}#c0" in s["context_ids"] for s in plain)


def test_a_chats_oracle_is_the_chunk_its_reply_restates_and_is_shown_like_an_faq_rows(tmp_path):
    """A customer's own wording rarely retrieves the chunk the agent answered from; with chat_min_score the chat
    sample shows that chunk (oracle_share of the chats), so it trains reading the excerpt, not recall."""
    from slm_pipeline.core.raft import chat_oracle_ids
    from slm_pipeline.core.retrieval import index_corpus

    rows = {"helmet": ("Do I need a helmet?", "Helmets are not required, but we recommend wearing one."),
            "refund": ("Can I get a refund?", "Unused passes are refunded within 14 days of purchase."),
            "range": ("How far does an e-bike go?", "An e-bike goes up to 60 km on a full battery."),
            "lost": ("I lost my bag on a bike.", "Found items are kept for 30 days at our depot."),
            "student": ("Is there a student price?", "Students pay 9 euros per month with a student email."),
            "hours": ("When is support open?", "Chat and phone support is open from 7:00 to 22:00.")}
    records = [{"id": f"faq.csv#{name}", "kind": "faq", "meta": {}, "messages": [
        {"role": "user", "content": q}, {"role": "assistant", "content": a}]} for name, (q, a) in rows.items()]
    index_corpus(records, RetrievalConfig(tune_epochs=0), tmp_path)
    index = open_index(tmp_path, RetrievalConfig(k=3))

    def chat(cid, question, reply):
        return {"id": cid, "source": "chat", "messages": [{"role": "system", "content": "x"},
                {"role": "user", "content": question}, {"role": "assistant", "content": reply}]}

    samples = [chat("chat-1", "my kid rides tomorrow, does she need anything on her head?",
                    "No, helmets are not required, though we recommend wearing one."),
               chat("chat-2", "left my sunglasses in the basket this morning, any hope?",
                    "If you lost a bag or anything on a bike: found items are kept for 30 days at our depot."),
               chat("chat-3", "hello?", "Thanks for waiting, I have passed this on to my colleague.")]
    assert chat_oracle_ids(samples, index, min_score=0.5) == [{"faq.csv#helmet#c0"}, {"faq.csv#lost#c0"}, set()]

    shown, report = add_retrieved_context(samples, index, POLICY, k=3, oracle_share=1.0, seed=1, chat_min_score=0.5)
    hidden, _ = add_retrieved_context(samples, index, POLICY, k=3, oracle_share=0.0, seed=1, chat_min_score=0.5)
    for s, h, oracle in zip(shown[:2], hidden[:2], ["faq.csv#helmet#c0", "faq.csv#lost#c0"], strict=True):
        assert s["oracle_ids"] == [oracle] and oracle in s["context_ids"] and len(s["context_ids"]) == 3
        assert h["oracle_ids"] == [] and oracle not in h["context_ids"]  # distractors only
    assert report["with_oracle"] == 2 and report["chats_with_restated_chunk"] == 2
    assert report["retrieved_only_chat"] == 1 and shown[2]["oracle_ids"] == []
    assert [s["messages"][1:] for s in shown] == [s["messages"][1:] for s in samples]  # only the context changes
    # Without chat_min_score a chat carries what its question retrieves, as before.
    _, plain = add_retrieved_context(samples, index, POLICY, k=3, oracle_share=1.0, seed=1)
    assert plain["retrieved_only_chat"] == 3


def test_no_gold_question_or_answer_becomes_a_chunk_or_a_pair(tmp_path):
    """The demo corpus and the gold file: nothing of the gold set is indexed or trained on."""
    gold = load_gold(PROJECT_ROOT / "assets" / "gold" / "gold_qa.jsonl")
    from slm_pipeline.config import load_config
    from slm_pipeline.core.corpus import load_corpus

    cfg = load_config(PROJECT_ROOT / "slm_pipeline.yaml")
    records = load_corpus(cfg.corpus, PROJECT_ROOT / "assets" / "corpus").records
    chunks, _ = chunk_records(records)
    texts = [c.text.lower() for c in chunks]
    for g in gold:
        assert not any(g["question"].lower() in t for t in texts), g["id"]
    result = build_pairs([r for r in records if r["kind"] != "chat"], POLICY, gold, cfg.pairs)
    questions = {s["messages"][1]["content"].lower() for s in result.samples}
    assert not questions & {g["question"].lower() for g in gold}


def test_no_assistant_target_contains_an_anonymization_tag():
    """Names planted in chats go through the real anonymizer; every assistant target comes out tag-free."""
    from slm_pipeline.config import AnonymizeConfig
    from slm_pipeline.core.anonymize import Anonymizer

    names = ["Ottoline Brackenbury", "Ines Moreau", "Tariq Rahman", "Małgorzata Lewandowska", "Kwame Mensah"]
    problems = ["my bike won't unlock", "the dock is full", "I was charged twice", "the seat is broken",
                "my Day Pass expired early"]
    chats = []
    for i, (name, problem) in enumerate(zip(names, problems, strict=True)):
        first = name.split()[0]
        chats.append({"id": f"chat-{i}", "kind": "chat", "messages": [
            {"role": "user", "content": f"Hi, {name} here, my email is {first.lower()}@example.com. {problem}."},
            {"role": "assistant", "content": f"Hello {first}, this is Sam Carter. Sorry that {problem}! Close the "
                                             f"app, re-scan the QR code and wait for the green light. Email sent to "
                                             f"{first.lower()}@example.com."},
            {"role": "user", "content": "It worked, thanks."},
            {"role": "assistant", "content": f"Great, enjoy the ride, {first}!\nBest, Sam Carter"}]})
    clean, _ = Anonymizer(AnonymizeConfig(canaries_file=None)).anonymize_records(chats)
    assert any(PLACEHOLDER.search(m["content"]) for r in clean for m in r["messages"] if m["role"] == "assistant")
    result = build_pairs(clean, POLICY, [], PairsConfig(min_train_samples=1, eval_fraction=0.0,
                                                        near_duplicate_threshold=1.0, include_refusals=False))
    targets = [m["content"] for s in result.samples for m in s["messages"] if m["role"] == "assistant"]
    assert len(result.samples) == len(names) and targets
    for t in targets:
        assert not PLACEHOLDER.search(t), t
        assert not any(part in t for n in names for part in n.split()), t
    assert any("re-scan the QR code" in t for t in targets)


def _metrics(acc: float, false_refusal: float, placeholders: float = 0.0) -> dict:
    return {"status": "ok", "key_fact_accuracy": acc, "false_refusal_rate": false_refusal, "n_ood": 10,
            "ood_refusal_rate": 1.0, "ood_refused": 10, "n_pii": 3, "pii_leaks": 0,
            "placeholder_leak_rate": placeholders, "placeholder_leak_ids": ["gold:g1"] if placeholders else []}


@pytest.mark.parametrize("cand, failing", [
    (_metrics(0.40, 0.0), "key_fact_accuracy floor"),  # better than base, but wrong 60% of the time
    (_metrics(0.90, 0.20), "false_refusal_rate floor"),
    (_metrics(0.90, 0.0, placeholders=0.02), "placeholder_leak_rate floor"),
])
def test_gate_floors_fail_a_weak_model_that_beats_base(cand, failing):
    gate = promotion_decision({"base+rag": _metrics(0.10, 0.0), "merged+rag": cand}, EvalConfig(),
                              baseline="base+rag", candidate="merged+rag")
    assert not gate.passed
    assert [r for r in gate.reasons if r.startswith("FAIL")] == [next(r for r in gate.reasons if failing in r)]
    ok = promotion_decision({"base+rag": _metrics(0.10, 0.0), "merged+rag": _metrics(0.85, 0.04)}, EvalConfig(),
                            baseline="base+rag", candidate="merged+rag")
    assert ok.passed, ok.reasons


def test_refusal_calibration_by_retrieval_score(tiny_index, tiny_model_dir):
    """Below min_score: the refusal, no generation; at/above answer_score: the answer may not start like the
    refusal (its first token is suppressed), in serve's engine and in eval's batched generation alike."""
    from slm_pipeline.core.engines import ChatEngine
    from slm_pipeline.core.generation import generate_batch

    index = open_index(tiny_index, RetrievalConfig(k=2))
    grounder = Grounder(index, POLICY.system_prompt, POLICY.company, POLICY.refusal, min_score=0.25,
                        answer_score=0.5)
    off = grounder.ground([{"role": "user", "content": "Who painted the Mona Lisa?"}])
    assert off.refusal == POLICY.refusal and not off.in_scope
    on = grounder.ground([{"role": "user", "content": "How much does a Day Pass cost?"}])
    assert on.refusal is None and on.in_scope and on.hits[0].score >= 0.5

    engine = ChatEngine(tiny_model_dir, POLICY.system_prompt)
    enc = engine.encode(on.messages, 1)
    n = enc["input_ids"].shape[1]

    def first_token(suppress):
        out = engine.model.generate(**engine._generate_kwargs(enc, 1, 0.0, None, None, None, suppress))
        return out[0, n:].tolist()

    free = first_token(None)
    assert first_token(free) != free  # the token the model wanted is forbidden at the first position
    assert engine.generate(on.messages, 1, suppress_start=free).completion_tokens == 1
    system = on.messages[0]["content"]
    tok = engine.tokenizer
    (b_free,) = generate_batch(engine.model, tok, ["How much does a Day Pass cost?"], system, 1)
    (b_blocked,) = generate_batch(engine.model, tok, ["How much does a Day Pass cost?"], system, 1,
                                  begin_suppress_tokens=free)
    assert tok.decode(free) == b_free.text or not b_free.text.strip()
    assert (b_blocked.text, b_blocked.new_tokens) != (b_free.text, b_free.new_tokens) or b_free.new_tokens == 0


def test_copy_bias_makes_the_answer_use_the_retrieved_excerpts_tokens(tiny_index, tiny_model_dir):
    """Copy-biased decoding (retrieval.copy_bias): a grounded request's excerpts are its retrieved chunks; with a
    large bias every generated token is one of the copy text's tokens, in serve's engine and in eval's batched
    generation alike; rows without a copy text are unbiased."""
    from slm_pipeline.core.engines import ChatEngine
    from slm_pipeline.core.generation import TAG_BAN, copy_logit_bias, generate_batch

    index = open_index(tiny_index, RetrievalConfig(k=2))
    grounder = Grounder(index, POLICY.system_prompt, POLICY.company, POLICY.refusal, min_score=0.25)
    on = grounder.ground([{"role": "user", "content": "How much does a Day Pass cost?"}])
    excerpts = on.excerpts()
    assert "€4.50" in excerpts and on.hits[0].chunk.title in excerpts
    assert grounder.ground([{"role": "user", "content": "Who painted the Mona Lisa?"}]).excerpts() is None

    engine = ChatEngine(tiny_model_dir, POLICY.system_prompt)
    enc = engine.encode(on.messages, 8)
    n = enc["input_ids"].shape[1]

    def new_ids(copy_from):
        out = engine.model.generate(**engine._generate_kwargs(enc, 8, 0.0, None, None, None, None, copy_from))
        return out[0, n:].tolist()

    # Words a random model would not pick by itself, so that the bias alone explains what it writes.
    words = "Zebra quartz voyage"

    def encode(t):
        return engine.tokenizer(t, add_special_tokens=False)["input_ids"]

    allowed = set(copy_logit_bias(encode, words, 1.0)) | engine.eos_ids
    unbiased = new_ids(None)
    assert set(unbiased) - allowed and new_ids(words) == unbiased  # copy_bias 0 (the default): no bias at all
    engine.copy_bias = 50.0
    biased = new_ids(words)
    assert biased and not set(biased) - allowed
    assert engine.generate(on.messages, 8, copy_from=words).text == engine.tokenizer.decode(
        biased, skip_special_tokens=True).strip()
    question, system = on.messages[1]["content"], on.messages[0]["content"]
    rows = generate_batch(engine.model, engine.tokenizer, [question, question], system, 8,
                          copy_texts=[words, None], copy_bias=50.0)
    assert rows[0].text == engine.generate(on.messages, 8, copy_from=words).text
    assert rows[1].text == engine.generate(on.messages, 8).text != rows[0].text

    # An excerpt's anonymization tag is never copied: its own tokens are banned, even at a small bias.
    tagged = "Zebra <PERSON_1> quartz"
    bias = copy_logit_bias(encode, tagged, 2.0)
    tag_only = set(encode(" <PERSON_1>")) - set(encode("Zebra quartz"))
    assert tag_only and all(bias[i] == TAG_BAN for i in tag_only)
    assert all(bias[i] == 2.0 for i in encode("Zebra quartz"))
    engine.copy_bias = 50.0
    assert not set(new_ids(tagged)) & tag_only


def test_llama_cpp_copy_bias_raises_only_the_copy_tokens_logits():
    """The llama.cpp runtime's logits processor (numpy scores, one row) adds the same bonus as transformers'."""
    import numpy as np

    from slm_pipeline.core.engines import _add_bias

    scores = np.zeros(10, dtype=np.float32)
    out = _add_bias({2: 3.0, 5: 3.0, 7: -3.0, 12: 3.0})(np.arange(4), scores)
    assert out.tolist() == [0, 0, 3, 0, 0, 3, 0, -3, 0, 0]  # 12 is beyond this vocabulary: ignored


def test_scope_classifier_refuses_off_topic_and_answers_paraphrases(tmp_path):
    """Trained on the corpus's own questions vs the policy's out-of-scope examples; judged on questions it never
    saw (neither list)."""
    from slm_pipeline.core.retrieval import index_corpus
    from slm_pipeline.core.scope import ScopeClassifier

    chats = [{"id": f"chat-{i}", "kind": "chat", "messages": [{"role": "user", "content": q},
                                                               {"role": "assistant", "content": "Sure."}]}
             for i, q in enumerate(["My bike won't unlock, the light stays red", "I was charged twice for one ride",
                                    "Can I pause my monthly plan while on holiday?", "The dock didn't lock my bike",
                                    "How do I add a second card to my wallet?", "Is a helmet included with rides?"])]
    info = index_corpus([*TINY_RECORDS, *chats], RetrievalConfig(), tmp_path,
                        out_of_scope=POLICY.out_of_scope_examples)
    assert info["scope"]["out_of_scope_examples"] == len(set(POLICY.out_of_scope_examples))
    scope = ScopeClassifier.load(tmp_path)
    index = open_index(tmp_path, RetrievalConfig(k=2))
    grounder = Grounder(index, POLICY.system_prompt, POLICY.company, POLICY.refusal, min_score=0.25,
                        scope=scope, scope_threshold=0.3)
    asks = {"What's the price of a 24 hour ticket?": True, "how far does the electric bike go on a full battery": True,
            "Who won the football world cup in 2018?": False, "Give me a recipe for banana bread.": False}
    results = grounder.ground_many([[{"role": "user", "content": q}] for q in asks])
    for (q, expected), g in zip(asks.items(), results, strict=True):
        assert (g.refusal is None) == expected, (q, g.scope_probability)
        assert g.in_scope == expected and g.scope_probability is not None


def test_hybrid_hits_carry_their_dense_score(tiny_index):
    """With BM25 fused in, a hit only BM25 found still reports its cosine similarity (from the stored vectors)."""
    import numpy as np

    index = open_index(tiny_index, RetrievalConfig(k=6, candidates=2, bm25_weight=1.0))
    question = "reset password link"
    hits = index.search(question)
    q = index.embedder.embed([question]).numpy()[0]
    for h in hits:
        expected = float(np.dot(q, index.embedder.embed([f"{h.chunk.label}\n{h.chunk.text}"]).numpy()[0]))
        assert abs(h.score - expected) < 1e-3, h.chunk.id

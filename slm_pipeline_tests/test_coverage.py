"""No silent drops: every word of the corpus is counted as reaching the index / a training sample or as lost
under a reason; too-long samples are shortened (fewer excerpts, fewer chat turns) before anything is dropped;
a run losing more than corpus.max_text_loss warns, naming the biggest losses."""

from __future__ import annotations

from conftest import TINY_RECORDS

from slm_pipeline.config import PairsConfig
from slm_pipeline.core.chunking import chunk_record, chunk_records, count_words, record_words
from slm_pipeline.core.coverage import index_coverage, pairs_coverage
from slm_pipeline.core.pairs import build_pairs
from slm_pipeline.core.policy import Policy
from slm_pipeline.core.retrieval import context_system_message, without_weakest_excerpt

POLICY = Policy(company="LoopBike", system_prompt="You are LoopBike's support assistant.", scope=["bikes"],
                refusal="Sorry, I can only help with LoopBike.", out_of_scope_examples=[])
FRENCH = ("Le vélo doit être rangé dans un endroit sec. Chargez la batterie chaque semaine pendant "
          "l'hiver et vérifiez les freins avant chaque sortie en ville.")
GUIDE = {"id": "docs/guide.md", "kind": "doc", "source": "docs/guide.md", "meta": {"title": "Guide"}, "text": (
    "# Guide\n\nOur bikes are checked every week.\n\n## Entretien\n\n" + FRENCH + "\n\n## Config\n\n"
    "Set the unlock code in the config file:\n\n```ini\n# LoopBike unlock settings\ncode=4242\nretries=3\n"
    "timeout_s=30\n```\n")}
BIG_FAQ = {"id": "faq.csv#9", "kind": "faq", "source": "faq.csv", "messages": [
    {"role": "user", "content": "Tell me everything about the warranty?"},
    {"role": "assistant", "content": "The warranty covers the frame, the motor and the battery. " * 30}]}
CHAT = {"id": "chat-1", "kind": "chat", "source": "chats.jsonl", "messages": [
    {"role": "user", "content": "My bike will not unlock at the station."},
    {"role": "assistant", "content": "Please hold the unlock button for five seconds and try again."},
    {"role": "user", "content": "That worked, and how do I end the ride later at another station?"},
    {"role": "assistant", "content": "Push the bike into any free dock until the light turns green. " * 6}]}
RECORDS = [*TINY_RECORDS[:3], GUIDE, BIG_FAQ, CHAT]


def words_tokens(messages: list[dict]) -> int:  # stand-in for the chat-template token count
    return sum(len(m["content"].split()) for m in messages)


def test_every_word_is_counted_and_the_biggest_losses_are_named():
    res = build_pairs(RECORDS, POLICY, [], PairsConfig(min_train_samples=1, max_tokens=70),
                      count_tokens=words_tokens)
    kept = {s["id"] for s in res.samples}
    # The code-only config chunk is kept (code is no language); the French section is not English.
    assert "docs/guide.md#s2" in kept and {d["id"]: d["reason"] for d in res.dropped}["docs/guide.md#s1"] == "non_english"
    assert res.report["fitted"] == {"turns_cut": 1}  # the chat keeps its first exchange instead of being dropped
    assert res.report["dropped"] == {"non_english": 1, "too_long": 1}

    cov = pairs_coverage(RECORDS, res, 80, 20, max_text_loss=0.10)
    training, index, either = cov["training"], cov["index"], cov["either"]
    total = sum(record_words(r) for r in RECORDS)
    assert training["words"] == total and training["reached_words"] + training["lost_words"] == total
    french = next(s for s in chunk_record(GUIDE) if s.chunk.heading == "Entretien")
    chat_kept = count_words("\n".join(m["content"] for m in CHAT["messages"][:2]))
    assert training["lost_by_reason"] == {"too_long": record_words(BIG_FAQ), "turns_cut": record_words(CHAT) - chat_kept,
                                          "non_english": french.end - french.start}
    assert training["warning"] and training["share"] < 0.9
    assert "faq.csv: " + str(record_words(BIG_FAQ)) + " words (too_long)" in training["warning"]
    assert "docs/guide.md › Entretien" in training["warning"] and "pairs.max_tokens" in training["warning"]
    top = training["biggest_losses"][0]
    assert (top["source"], top["words"], top["reasons"]) == ("faq.csv", record_words(BIG_FAQ),
                                                             {"too_long": record_words(BIG_FAQ)})

    # The index keeps every FAQ and document word; chats are excluded from it by design, not lost.
    assert (index["share"], index["lost_words"], index["warning"]) == (1.0, 0, None)
    assert index["excluded_words"] == {"chats_are_not_indexed": record_words(CHAT)}
    assert either["lost_words"] == record_words(CHAT) - chat_kept and either["share"] > training["share"]
    assert index == index_coverage(RECORDS, 80, 20, 0.10)


def test_settings_that_leave_text_out_exclude_it_instead_of_warning():
    res = build_pairs(TINY_RECORDS + [CHAT], POLICY, [], PairsConfig(min_train_samples=1, include_chats=False))
    cov = pairs_coverage(TINY_RECORDS + [CHAT], res, 80, 20, 0.10, include_chats=False)["training"]
    assert cov["excluded_words"] == {"pairs.include_chats_is_false": record_words(CHAT)}
    assert cov["share"] == 1.0 and cov["warning"] is None


def test_too_long_samples_lose_their_weakest_excerpts_not_their_answer():
    chunks, _ = chunk_records(TINY_RECORDS)
    by_id = {c.id: c for c in chunks}

    def contextualize(samples):  # like raft: every excerpt in the context, the answer's own chunk an oracle
        out = []
        for s in samples:
            ids = [c.id for c in chunks]
            oracle = [f"{s['id']}#c0"] if f"{s['id']}#c0" in by_id else []
            system = context_system_message(POLICY.system_prompt, POLICY.company, [by_id[i] for i in ids])
            out.append({**s, "messages": [{"role": "system", "content": system}, *s["messages"][1:]],
                        "context_ids": ids, "oracle_ids": oracle})
        return out

    def trim(sample):
        return without_weakest_excerpt(sample, by_id, POLICY.system_prompt, POLICY.company)

    res = build_pairs(TINY_RECORDS[:3], POLICY, [], PairsConfig(min_train_samples=1, max_tokens=60),
                      count_tokens=words_tokens, contextualize=contextualize, trim_context=trim)
    assert len(res.samples) == 3 and not res.dropped
    assert res.report["fitted"] == {"context_trimmed": 3}
    for s in res.samples:
        assert words_tokens(s["messages"]) <= 60
        assert s["oracle_ids"][0] in s["context_ids"]  # the answer's own excerpt stays
        assert s["messages"][0]["content"] == context_system_message(
            POLICY.system_prompt, POLICY.company, [by_id[i] for i in s["context_ids"]])


def test_code_only_chunks_stay_in_the_index_but_make_no_pair():
    code = "```json\n" + "\n".join(f'{{"url": "https://example.com/dl/loop-{i}.tar.gz", "size": {i * 1000}}},'
                                   for i in range(40)) + "\n```"
    doc = {"id": "docs/releases.md", "kind": "doc", "source": "docs/releases.md", "meta": {"title": "Releases"},
           "text": f"# Releases\n\nThe release list is a JSON file in this format:\n\n{code}\n"}
    res = build_pairs([doc], POLICY, [], PairsConfig(min_train_samples=1, include_refusals=False))
    reasons = {d["reason"] for d in res.dropped}
    assert reasons == {"code_only"}
    # The sentence stays with the code it introduces: one pair for that chunk, one for the fact it states.
    (first, fact) = res.samples
    assert first["messages"][2]["content"].startswith("The release list is a JSON file in this format:\n\n```json")
    assert fact["messages"][1]["content"] == "What is the release list?" and "```json" in fact["messages"][2]["content"]
    cov = pairs_coverage([doc], res, 80, 20, 0.10)
    assert cov["training"]["lost_by_reason"].keys() == {"code_only"} and "retrieval index" in cov["training"]["warning"]
    assert cov["either"]["share"] == 1.0 and cov["either"]["warning"] is None

"""Embedder domain-tuning (core/retriever_tuning.py) with the embedded all-MiniLM-L6-v2: which pairs the corpus
gives, that tuning fits them, and that the index loads the tuned model from inside its own folder."""

import shutil

import pytest
from conftest import TINY_RECORDS

from slm_pipeline.config import RetrievalConfig
from slm_pipeline.core.chunking import chunk_records
from slm_pipeline.core.embeddings import Embedder, resolve_embedding_model
from slm_pipeline.core.retrieval import chunk_texts, index_corpus, open_index
from slm_pipeline.core.retriever_tuning import tune_embedder, tuning_pairs

CHATS = [
    {"id": "chat-1", "kind": "chat", "messages": [
        {"role": "user", "content": "Hi <PERSON_1> here, what do I pay for one whole day of riding?"},
        {"role": "assistant", "content": "A Day Pass costs €4.50 and covers 24 hours of classic rides."},
        {"role": "user", "content": "ok thanks"},  # too short to be a question
        {"role": "assistant", "content": "You're welcome!"}]},
    {"id": "chat-2", "kind": "chat", "messages": [
        {"role": "user", "content": "Can you tell me why my invoice shows a strange company address?"},
        {"role": "assistant", "content": "Sorry about that, I have corrected it for you."}]},  # no chunk says so
]


@pytest.fixture(scope="module")
def embedder():
    return Embedder(resolve_embedding_model())


def test_pairs_come_from_faq_docs_and_chats_each_with_its_chunk(embedder):
    records = [*TINY_RECORDS, *CHATS]
    chunks, _ = chunk_records(records, 80, 20)
    pairs = tuning_pairs(records, chunks, embedder.embed(chunk_texts(chunks)), embedder, "LoopBike")
    by_source = {}
    for p in pairs:
        by_source.setdefault(p.source, []).append(p)
    assert {"faq", "doc", "chat"} <= set(by_source)
    # every FAQ row gives its own question -> its own chunk
    assert {(p.query, chunks[p.chunk].record_id) for p in by_source["faq"]} == {
        (r["messages"][0]["content"], r["id"]) for r in TINY_RECORDS if r["kind"] == "faq"}
    assert all(chunks[p.chunk].kind == "doc" for p in by_source["doc"] + by_source.get("doc_fact", []))
    # the chat question goes to the chunk its agent reply restates; "ok thanks" and the unmatched reply give none
    assert [(p.query, chunks[p.chunk].record_id) for p in by_source["chat"]] == [
        (CHATS[0]["messages"][0]["content"], "faq.csv#2")]


def test_tuning_fits_the_pairs_and_lowers_the_loss(embedder):
    chunks, _ = chunk_records(TINY_RECORDS, 80, 20)
    texts = chunk_texts(chunks)
    pairs = tuning_pairs(TINY_RECORDS, chunks, embedder.embed(texts), embedder, "LoopBike")
    report = tune_embedder(embedder, chunks, pairs, epochs=4, lr=5e-5, batch_size=4)
    assert report["pairs"] == len(pairs) and report["epochs"] == 4
    assert report["loss_by_epoch"][-1] < report["loss_by_epoch"][0]
    assert not embedder.model.training  # left in eval mode
    sims = embedder.embed([p.query for p in pairs]) @ embedder.embed(texts).T
    assert [int(i) for i in sims.argmax(1)] == [p.chunk for p in pairs]


def test_the_index_keeps_its_tuned_embedder_and_can_move(tmp_path):
    built = tmp_path / "built"
    info = index_corpus([*TINY_RECORDS, *CHATS], RetrievalConfig(tune_epochs=1), built, company="LoopBike")
    assert info["embedding_model"] == "embedder" and (built / "embedder" / "config.json").exists()
    assert info["tuning"]["pairs_by_source"]["chat"] == 1 and len(info["tuning"]["loss_by_epoch"]) == 1
    moved = tmp_path / "elsewhere"
    shutil.move(built, moved)  # the artifact folder is renamed into place after a run: nothing may point back
    index = open_index(moved, RetrievalConfig(k=1))
    assert index.embedder.folder == moved / "embedder"
    assert index.search("How much is a Day Pass?")[0].chunk.record_id == "faq.csv#2"


def test_untuned_index_uses_the_model_as_it_is(tmp_path):
    info = index_corpus(TINY_RECORDS, RetrievalConfig(tune_epochs=0), tmp_path)
    assert info["tuning"] is None and not (tmp_path / "embedder").exists()
    assert open_index(tmp_path, RetrievalConfig()).embedder.folder == resolve_embedding_model()

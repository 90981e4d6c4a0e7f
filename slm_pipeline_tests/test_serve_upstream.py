"""`serve` in front of an upstream OpenAI-compatible engine (a local stand-in that records what it is sent), the
bounded generation queue (429 + Retry-After, 503 after queue_timeout_s, /health instant while busy), streams that
end early, and request ids in headers and logs."""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import httpx
import pytest
import yaml

from slm_pipeline.benchmarks.upstream_standin import UpstreamStandIn
from slm_pipeline.config import PROJECT_ROOT, ServeConfig, load_config
from slm_pipeline.core.feedback import FeedbackStore
from slm_pipeline.core.policy import load_policy
from slm_pipeline.core.retrieval import context_system_message
from slm_pipeline.core.serve import ChatServer, build_server, load_engine
from slm_pipeline.core.serving.logs import RequestIdFilter
from slm_pipeline.core.serving.upstream import UpstreamBackend

TOKEN = "front-door-token"
UPSTREAM_KEY = "engine-key"
IN_DOMAIN = "How far can I ride on one battery charge?"


@pytest.fixture(scope="module")
def standin():
    with UpstreamStandIn(api_key=UPSTREAM_KEY, model="vllm-slm") as up:
        yield up


@pytest.fixture(scope="module")
def api(tmp_path_factory, standin, tiny_index):
    tmp = tmp_path_factory.mktemp("serve-upstream")
    config = tmp / "slm_pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "artifacts_dir": str(tmp / "artifacts"), "policy_file": str(PROJECT_ROOT / "assets" / "policy.yaml"),
        "anonymize": {"canaries_file": None},
        "serve": {"upstream_url": standin.url, "upstream_model": "vllm-slm", "max_tokens_limit": 64},
        "retrieval": {"k": 2, "min_score": 0.25},
    }))
    cfg = load_config(config)
    os.environ["SLM_UPSTREAM_API_KEY"] = UPSTREAM_KEY
    try:
        server = build_server(cfg, host="127.0.0.1", port=0, token=TOKEN, index_dir=tiny_index).start()
    finally:
        del os.environ["SLM_UPSTREAM_API_KEY"]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        yield {"server": server, "cfg": cfg, "client": client}
    server.close()


def chat(client: httpx.Client, question: str = IN_DOMAIN, **extra) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": question}],
                                                     "max_tokens": 32, **extra})


def sse_events(text: str) -> list:
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e.strip()]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_upstream_gets_the_grounded_chat_and_its_answer_is_served_and_recorded(api, standin):
    n_before = len(standin.requests)
    resp = chat(api["client"], temperature=0.5, top_p=0.9, seed=7)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["choices"][0]["message"]["content"] == standin.answer and doc["model"] == "slm-support"
    assert doc["sources"][0]["id"] == "docs/ebikes.md#c1"
    # what the engine was sent: its model name, our API key, the retrieval template over the same chunks
    (sent,) = standin.requests[n_before:]
    body, headers = sent["body"], sent["headers"]
    assert body["model"] == "vllm-slm" and headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"], body["stream"]) == (
        32, 0.5, 0.9, 7, False)
    grounder = api["server"].grounder
    system = context_system_message(grounder.system_prompt, grounder.company,
                                    [grounder.index.by_id[s["id"]] for s in doc["sources"]])
    assert body["messages"] == [{"role": "system", "content": system}, {"role": "user", "content": IN_DOMAIN}]
    assert doc["usage"]["completion_tokens"] == len(standin.answer.split())  # the engine's own usage

    # serve itself keeps the feedback loop: completion recorded, feedback accepted, question logged
    store = api["server"].store
    assert store.get_completion(doc["id"])["answer"] == standin.answer
    fb = api["client"].post("/v1/feedback", json={"completion_id": doc["id"], "rating": -1,
                                                  "correction": "A full battery lasts up to 60 km."})
    assert fb.status_code == 200 and fb.json()["negative"] is True
    assert len(standin.requests) == n_before + 1  # feedback never reaches the engine
    assert api["server"].question_log.flush(timeout=120)
    assert any(q["normalized"] == "how far can i ride on one battery charge" for q in store.top_questions(10))


def test_upstream_stream_is_relayed_with_sources_and_usage(api, standin):
    resp = chat(api["client"], stream=True, stream_options={"include_usage": True}, max_tokens=4)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    chunks = sse_events(resp.text)
    assert chunks[0]["sources"][0]["id"] == "docs/ebikes.md#c1"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == " ".join(standin.answer.split()[:4])
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    sent = standin.requests[-1]["body"]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert api["server"].store.get_completion(chunks[0]["id"])["answer"] == text


def test_off_topic_and_unauthorized_requests_never_reach_the_upstream(api, standin):
    n_before = len(standin.requests)
    resp = chat(api["client"], "Who painted the Mona Lisa?")
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["message"]["content"] == load_policy(
        PROJECT_ROOT / "assets" / "policy.yaml").refusal
    assert httpx.post(f"{api['server'].url}/v1/chat/completions", json={"messages": [
        {"role": "user", "content": IN_DOMAIN}]}).status_code == 401
    assert len(standin.requests) == n_before


def test_upstream_errors_become_clear_json_errors(api, standin, tmp_path):
    # the engine's 400 (prompt too long), plain and streamed (before the first token): a 400 naming the cause
    for extra in ({}, {"stream": True}):
        resp = chat(api["client"], "How far can I ride on one battery charge? TOO LONG", **extra)
        assert resp.status_code == 400, resp.text
        assert "maximum context length" in resp.json()["error"]["message"]
    store = FeedbackStore(tmp_path / "fb.db")
    cases = [  # (backend, status, words in the message)
        (UpstreamBackend("http://127.0.0.1:9/v1", "vllm-slm", timeout_s=5), 502, ["unreachable", "upstream_url"]),
        (UpstreamBackend(standin.url, "no-such-model", api_key=UPSTREAM_KEY), 502, ["404", "upstream_model"]),
        (UpstreamBackend(standin.url, "vllm-slm"), 502, ["401", "SLM_UPSTREAM_API_KEY"]),  # no API key
    ]
    for backend, status, words in cases:
        server = ChatServer(backend, store, ServeConfig(), host="127.0.0.1", port=0).start()
        try:
            for extra in ({}, {"stream": True}):
                resp = httpx.post(f"{server.url}/v1/chat/completions", timeout=30, json={
                    "messages": [{"role": "user", "content": "hi"}], **extra})
                assert resp.status_code == status, resp.text
                assert all(w in resp.json()["error"]["message"] for w in words), resp.text
            assert httpx.get(f"{server.url}/health").status_code == 200
        finally:
            server.close()


def test_full_queue_gets_429_with_retry_after_and_health_stays_instant(standin, tmp_path):
    cfg = ServeConfig(max_concurrent=1, max_queue=1, queue_timeout_s=3.0)
    backend = UpstreamBackend(standin.url, "vllm-slm", api_key=UPSTREAM_KEY)
    server = ChatServer(backend, FeedbackStore(tmp_path / "fb.db"), cfg, host="127.0.0.1", port=0).start()
    url, results = f"{server.url}/v1/chat/completions", {}
    body = {"messages": [{"role": "user", "content": "How do I unlock a bike?"}]}

    def post(name: str) -> None:
        results[name] = httpx.post(url, json=body, timeout=60)

    def health() -> tuple[dict, float]:
        t0 = time.perf_counter()
        doc = httpx.get(f"{server.url}/health", timeout=10).json()
        return doc, time.perf_counter() - t0

    def wait_for(predicate, what: str) -> None:
        deadline = time.monotonic() + 30
        while not predicate():
            assert time.monotonic() < deadline, what
            time.sleep(0.02)

    standin.hold()  # the engine is busy: the first request holds the only slot
    try:
        running = threading.Thread(target=post, args=("running",))
        running.start()
        wait_for(lambda: health()[0]["queue"]["running"] == 1, "first request never started")
        waiting = threading.Thread(target=post, args=("waiting",))
        waiting.start()
        wait_for(lambda: health()[0]["queue"]["waiting"] == 1, "second request never queued")
        doc, seconds = health()
        # answered while the only generation is stuck at the engine (it never ends until release())
        assert seconds < 5.0 and doc["status"] == "ok" and doc["backend"] == "upstream"

        full = httpx.post(url, json=body, timeout=10)  # slot taken, queue full: turned away at once
        assert full.status_code == 429 and full.json()["error"]["code"] == "queue_full"
        assert int(full.headers["Retry-After"]) >= 1
        waiting.join(30)  # waited queue_timeout_s for the slot
        assert results["waiting"].status_code == 503 and "queue_timeout_s" in results["waiting"].json()["error"][
            "message"]
        assert int(results["waiting"].headers["Retry-After"]) >= 1
    finally:
        standin.release()
    running.join(30)
    assert results["running"].status_code == 200
    stats = health()[0]["queue"]
    assert (stats["running"], stats["waiting"], stats["rejected"], stats["timed_out"]) == (0, 0, 1, 1)
    server.close()


def test_a_client_that_leaves_a_stream_frees_the_generation_slot(tiny_model_dir, tmp_path):
    engine = load_engine(tiny_model_dir, None)
    cfg = ServeConfig(max_concurrent=1, max_queue=0, max_tokens_limit=512)
    server = ChatServer(engine, FeedbackStore(tmp_path / "fb.db"), cfg, host="127.0.0.1", port=0).start()
    body = {"messages": [{"role": "user", "content": "Tell me everything."}], "max_tokens": 500, "stream": True,
            "temperature": 1.0, "seed": 3}
    try:
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=60) as resp:
            assert resp.status_code == 200
            next(resp.iter_lines())  # read the first event, then hang up mid-generation
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/health").json()["queue"]["running"]:
            assert time.monotonic() < deadline, "the slot was never released"
            time.sleep(0.05)
        resp = httpx.post(f"{server.url}/v1/chat/completions", json={**body, "stream": False, "max_tokens": 4},
                          timeout=60)
        assert resp.status_code == 200, resp.text  # max_queue 0: a leaked slot would answer 429
        assert server.store.stats()["completions"] == 1  # the abandoned stream stopped before it was recorded
    finally:
        server.close()


def test_request_ids_in_the_response_header_and_every_log_line(api, caplog):
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO):
        resp = api["client"].post("/v1/chat/completions", headers={"X-Request-ID": "req-42"},
                                  json={"messages": [{"role": "user", "content": IN_DOMAIN}]})
        assert resp.status_code == 200 and resp.headers["x-request-id"] == "req-42"
        generated = api["client"].get("/v1/models").headers["x-request-id"]
    assert len(generated) == 16 and generated != "req-42"
    mine = [r.getMessage() for r in caplog.records if getattr(r, "request_id", None) == "req-42"]
    assert any(m.startswith("completion chatcmpl-") for m in mine), mine
    assert any(m.startswith("POST /v1/chat/completions 200") for m in mine), mine


def test_concurrent_questions_are_grounded_in_one_pass_with_the_same_result(api):
    import asyncio

    from slm_pipeline.core.serving.batching import GroundingBatcher

    grounder = api["server"].grounder
    chats = [[{"role": "user", "content": q}] for q in (
        IN_DOMAIN, "How much does a Day Pass cost?", "Who painted the Mona Lisa?", "How do I reset my password?")]
    batcher = GroundingBatcher(grounder)

    async def main():
        return await asyncio.gather(*(batcher.ground(c) for c in chats * 2))

    results = asyncio.run(main())
    assert batcher.passes == 1  # eight requests, one embedding pass
    for chat_, got in zip(chats * 2, results, strict=True):
        alone = grounder.ground(chat_)
        assert [s["id"] for s in got.sources()] == [s["id"] for s in alone.sources()]
        assert got.refusal == alone.refusal and got.messages == alone.messages

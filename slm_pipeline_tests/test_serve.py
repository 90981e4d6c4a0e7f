"""The serving API, over real HTTP on a free 127.0.0.1 port: models, chat, streaming, feedback -> sensor run
request, anonymized question log, and the 4xx answers to bad requests (the server keeps running)."""

from __future__ import annotations

import http.client
import json

import dagster as dg
import pytest
import yaml

from slm_pipeline.config import PROJECT_ROOT, load_config
from slm_pipeline.core.feedback import FeedbackStore, feedback_db_path
from slm_pipeline.core.policy import load_policy
from slm_pipeline.core.serve import build_server, promoted_model_path
from slm_pipeline.defs.automation import feedback_sensor
from slm_pipeline.defs.resources import PipelineSettings

TOKEN = "s3cret-token"
TIMEOUT = 60  # seconds, every request
QUESTION = "Hi, I'm Ottoline Brackenbury. How do I unlock a bike?"


@pytest.fixture(scope="module")
def api(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("serve")
    config = tmp / "slm_pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "artifacts_dir": str(tmp / "artifacts"),
        "policy_file": str(PROJECT_ROOT / "assets" / "policy.yaml"),
        "anonymize": {"canaries_file": None},
        "feedback": {"min_negative": 1},
        "serve": {"max_body_bytes": 4096, "max_tokens_limit": 16, "default_max_tokens": 8},
        "retrieval": {"enabled": False},  # closed-book here; rag_api below serves with retrieval
    }))
    cfg = load_config(config)
    server = build_server(cfg, tiny_model_dir, host="127.0.0.1", port=0, token=TOKEN).start()
    try:
        yield {"server": server, "cfg": cfg, "config": config, "port": server.server_address[1]}
    finally:
        server.close()


def call(api, method: str, path: str, body=None, token: str | None = TOKEN, raw: bytes | None = None,
         headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", api["port"], timeout=TIMEOUT)
    try:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        ctype = resp.getheader("Content-Type", "")
        return resp.status, (json.loads(payload) if "json" in ctype else payload.decode()), resp
    finally:
        conn.close()


def chat_body(**extra) -> dict:
    return {"model": "slm-support", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8, **extra}


def assert_error(status, doc, expected_status: int, needle: str = ""):
    assert status == expected_status, doc
    assert set(doc["error"]) >= {"message", "type"}, doc
    assert needle.lower() in doc["error"]["message"].lower(), doc


def test_health_and_models(api):
    status, doc, _ = call(api, "GET", "/health", token=None)
    assert status == 200 and doc["status"] == "ok"
    status, doc, _ = call(api, "GET", "/v1/models")
    assert status == 200 and doc["object"] == "list"
    assert [m["id"] for m in doc["data"]] == ["slm-support"] and doc["data"][0]["object"] == "model"


def test_chat_stream_feedback_and_sensor_run_request(api):
    # non-streaming; seeded sampling, because the tiny random model's greedy answer is only newlines
    status, doc, _ = call(api, "POST", "/v1/chat/completions", chat_body(temperature=1.0, seed=1))
    assert status == 200, doc
    assert doc["object"] == "chat.completion" and doc["id"].startswith("chatcmpl-") and doc["model"] == "slm-support"
    choice = doc["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"].strip()
    assert choice["finish_reason"] in ("stop", "length")
    usage = doc["usage"]
    assert 0 < usage["completion_tokens"] <= 8 and usage["total_tokens"] == usage["prompt_tokens"] + usage[
        "completion_tokens"]
    # the policy system prompt was prepended (the request has no system message)
    engine = api["server"].engine
    assert engine.system_prompt == load_policy(PROJECT_ROOT / "assets" / "policy.yaml").system_prompt
    with_policy = engine.encode([{"role": "user", "content": QUESTION}], 1)["input_ids"].shape[1]
    assert usage["prompt_tokens"] == with_policy

    # streaming, same request and seed: the chunks reassemble to the same answer
    status, text, resp = call(api, "POST", "/v1/chat/completions",
                              chat_body(temperature=1.0, seed=1, stream=True, stream_options={"include_usage": True}))
    assert status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in text.split("\n\n") if line.strip()]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks) and len(chunks) > 4
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == choice["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == choice["finish_reason"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage
    stream_id = chunks[0]["id"]

    store = FeedbackStore(feedback_db_path(api["cfg"].path(api["cfg"].artifacts_dir)))
    assert store.get_completion(doc["id"])["answer"] == choice["message"]["content"]
    assert store.get_completion(stream_id)["question"] == QUESTION

    # feedback: a positive rating does not trigger; a correction does (min_negative = 1 here)
    settings = PipelineSettings(config_file=str(api["config"]))
    status, fb, _ = call(api, "POST", "/v1/feedback", {"completion_id": doc["id"], "rating": 1})
    assert status == 200 and fb["object"] == "feedback" and fb["negative"] is False
    with dg.DagsterInstance.ephemeral() as instance:
        ctx = dg.build_sensor_context(instance=instance, cursor=None, resources={"settings": settings})
        tick = feedback_sensor.evaluate_tick(ctx)
        assert not tick.run_requests and tick.skip_message.startswith("0 of 1")

        status, fb, _ = call(api, "POST", "/v1/feedback", {
            "completion_id": stream_id, "rating": -1, "correction": "Open the LoopBike app and tap Unlock."})
        assert status == 200 and fb["negative"] is True and fb["has_correction"] is True
        tick = feedback_sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=None, resources={"settings": settings}))
        assert [r.run_key for r in tick.run_requests] == [f"feedback-1-{fb['id']}"]
        nxt = feedback_sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=tick.cursor, resources={"settings": settings}))
        assert not nxt.run_requests
    (rec,) = store.corrections_as_records()
    assert rec["messages"][1]["content"] == "Open the LoopBike app and tap Unlock."

    # every question was logged, anonymized (Presidio runs in the server's background thread)
    assert api["server"].question_log.flush(timeout=120)
    top = store.top_questions(5)
    assert top and top[0]["count"] == 2
    assert "Ottoline" not in top[0]["question"] and "<PERSON_1>" in top[0]["question"]


def test_system_message_and_sampling_parameters(api):
    body = chat_body(temperature=0, top_p=0.9, max_completion_tokens=4)
    body.pop("max_tokens")
    body["messages"] = [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": [{"type": "text", "text": "Day pass price?"}]}]
    status, doc, _ = call(api, "POST", "/v1/chat/completions", body)
    assert status == 200, doc
    assert doc["usage"]["completion_tokens"] <= 4 and doc["usage"]["prompt_tokens"] < 30  # no policy prompt added
    assert doc["choices"][0]["finish_reason"] == "length"
    status, doc2, _ = call(api, "POST", "/v1/chat/completions", body)
    assert doc2["choices"][0]["message"] == doc["choices"][0]["message"]  # greedy is deterministic


@pytest.mark.parametrize("case", ["bad_json", "not_object", "no_messages", "bad_role", "oversize", "no_token",
                                  "wrong_token", "unknown_model", "max_tokens_over", "max_tokens_bad",
                                  "bad_temperature", "unknown_completion", "feedback_bad_rating",
                                  "feedback_missing_id", "unknown_path", "wrong_method", "n_two"])
def test_bad_requests_get_json_4xx(api, case):
    post = "/v1/chat/completions"
    if case == "bad_json":
        assert_error(*call(api, "POST", post, raw=b'{"messages": [')[:2], 400, "not valid JSON")
    elif case == "not_object":
        assert_error(*call(api, "POST", post, [1, 2])[:2], 400, "JSON object")
    elif case == "no_messages":
        assert_error(*call(api, "POST", post, {"model": "slm-support"})[:2], 400, "messages")
    elif case == "bad_role":
        assert_error(*call(api, "POST", post, chat_body(messages=[{"role": "wizard", "content": "hi"}]))[:2], 400,
                     "role")
    elif case == "oversize":
        big = chat_body(messages=[{"role": "user", "content": "x" * 10_000}])
        assert_error(*call(api, "POST", post, big)[:2], 413, "over the limit")
    elif case == "no_token":
        status, doc, resp = call(api, "GET", "/v1/models", token=None)
        assert_error(status, doc, 401, "token")
        assert resp.getheader("WWW-Authenticate") == "Bearer"
    elif case == "wrong_token":
        assert_error(*call(api, "POST", post, chat_body(), token="nope")[:2], 401, "token")
    elif case == "unknown_model":
        status, doc, _ = call(api, "POST", post, chat_body(model="gpt-17"))
        assert_error(status, doc, 404, "does not exist")
        assert doc["error"]["code"] == "model_not_found"
    elif case == "max_tokens_over":
        assert_error(*call(api, "POST", post, chat_body(max_tokens=17))[:2], 400, "limit of 16")
    elif case == "max_tokens_bad":
        assert_error(*call(api, "POST", post, chat_body(max_tokens="8"))[:2], 400, "positive integer")
    elif case == "bad_temperature":
        assert_error(*call(api, "POST", post, chat_body(temperature=5))[:2], 400, "temperature")
    elif case == "unknown_completion":
        status, doc, _ = call(api, "POST", "/v1/feedback", {"completion_id": "chatcmpl-nope", "rating": -1})
        assert_error(status, doc, 404, "unknown completion_id")
    elif case == "feedback_bad_rating":
        assert_error(*call(api, "POST", "/v1/feedback", {"completion_id": "x", "rating": 0})[:2], 400, "rating")
    elif case == "feedback_missing_id":
        assert_error(*call(api, "POST", "/v1/feedback", {"rating": 1})[:2], 400, "completion_id")
    elif case == "unknown_path":
        assert_error(*call(api, "GET", "/v2/everything")[:2], 404, "no such endpoint")
    elif case == "wrong_method":
        assert_error(*call(api, "GET", post)[:2], 405, "not allowed")
    elif case == "n_two":
        assert_error(*call(api, "POST", post, chat_body(n=2))[:2], 400, "n = 1")
    # the server is still up and answering
    assert call(api, "GET", "/health", token=None)[0] == 200


def test_promoted_model_pointer(tmp_path):
    cfg = load_config(None, {"artifacts_dir": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="--model"):
        promoted_model_path(cfg)
    (tmp_path / "promoted.json").write_text(json.dumps({"variants": {"merged": "/m/merged", "nf4": "/m/nf4"}}))
    assert str(promoted_model_path(cfg)) == "/m/merged"
    assert str(promoted_model_path(cfg, "nf4")) == "/m/nf4"
    with pytest.raises(ValueError, match="no variant 'int8'"):
        promoted_model_path(cfg, "int8")


# ------------------------------------------------------------------------------------------- GGUF via llama.cpp


def test_serving_a_gguf_without_llama_cpp_says_how_to_get_it(tmp_path, monkeypatch):
    import importlib.util

    from slm_pipeline.core.serve import load_engine

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    (tmp_path / "model-q8_0.gguf").write_bytes(b"GGUF")
    with pytest.raises(ValueError, match="make llamacpp"):
        load_engine(tmp_path / "model-q8_0.gguf", "You help.")


def test_gguf_is_served_by_llama_cpp_over_http(tmp_path, tiny_model_dir):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is an optional extra (make llamacpp)")
    from slm_pipeline.config import ServeConfig
    from slm_pipeline.core.export import write_gguf
    from slm_pipeline.core.serve import ChatServer, LlamaCppChatEngine, load_engine

    gguf = tmp_path / "model-q8_0.gguf"
    write_gguf(tiny_model_dir, gguf, "q8_0")
    engine = load_engine(gguf, "You are LoopBike's support assistant.")
    assert isinstance(engine, LlamaCppChatEngine) and engine.max_positions == 1024
    messages = [{"role": "user", "content": "How do I unlock a bike?"}]
    whole = engine.generate(messages, max_new_tokens=6)
    assert whole.completion_tokens == 6 and whole.finish_reason == "length" and whole.prompt_tokens > 10
    *pieces, last = list(engine.stream(messages, max_new_tokens=6))
    assert "".join(pieces) == last.text == whole.text  # greedy: streamed == non-streamed
    assert last.completion_tokens == 6 and last.finish_reason == "length"

    store = FeedbackStore(feedback_db_path(tmp_path / "artifacts"))
    server = ChatServer(engine, store, ServeConfig(port=0, max_tokens_limit=16), host="127.0.0.1", port=0).start()
    try:
        api = {"port": server.server_address[1]}
        status, doc, _ = call(api, "POST", "/v1/chat/completions", {"messages": messages, "max_tokens": 6}, token=None)
        assert status == 200 and doc["choices"][0]["message"]["content"] == whole.text, doc
        long = [{"role": "user", "content": "bike " * 1100}]
        status, doc, _ = call(api, "POST", "/v1/chat/completions", {"messages": long, "max_tokens": 6}, token=None)
        assert_error(status, doc, 400, "context window")
    finally:
        server.close()


@pytest.fixture(scope="module")
def rag_api(tmp_path_factory, tiny_model_dir, tiny_index):
    tmp = tmp_path_factory.mktemp("serve-rag")
    config = tmp / "slm_pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "artifacts_dir": str(tmp / "artifacts"), "policy_file": str(PROJECT_ROOT / "assets" / "policy.yaml"),
        "serve": {"default_max_tokens": 4}, "feedback": {"log_questions": False},
        "retrieval": {"k": 2, "min_score": 0.25},
    }))
    cfg = load_config(config)
    server = build_server(cfg, tiny_model_dir, host="127.0.0.1", port=0, index_dir=tiny_index).start()
    try:
        yield {"server": server, "cfg": cfg, "port": server.server_address[1]}
    finally:
        server.close()


def test_answers_are_grounded_and_carry_their_sources(rag_api):
    from slm_pipeline.core.retrieval import context_system_message

    body = {"messages": [{"role": "user", "content": "How far can I ride on one battery charge?"}], "max_tokens": 4}
    status, doc, _ = call(rag_api, "POST", "/v1/chat/completions", body, token=None)
    assert status == 200, doc
    sources = doc["sources"]
    assert [s["id"] for s in sources][0] == "docs/ebikes.md#c1" and len(sources) == 2
    assert sources[0]["title"] == "E-bikes" and sources[0]["heading"] == "Battery and range"
    assert sources[0]["score"] >= max(sources[1]["score"], 0.25)
    # The prompt the model saw is the training template over exactly these chunks.
    server = rag_api["server"]
    index = server.grounder.index
    system = context_system_message(server.grounder.system_prompt, server.grounder.company,
                                    [index.by_id[s["id"]] for s in sources])
    expected = server.engine.encode([{"role": "system", "content": system}, body["messages"][0]], 1)
    assert doc["usage"]["prompt_tokens"] == expected["input_ids"].shape[1]

    status, text, _ = call(rag_api, "POST", "/v1/chat/completions", {**body, "stream": True}, token=None)
    first = json.loads(text.split("\n\n")[0].removeprefix("data: "))
    assert [s["id"] for s in first["sources"]] == [s["id"] for s in sources]


def test_served_answers_are_copy_biased_towards_their_excerpts(rag_api):
    """serve decodes with retrieval.copy_bias over the request's retrieved excerpts, as eval's '+rag' variants do."""
    server, cfg = rag_api["server"], rag_api["cfg"]
    question = [{"role": "user", "content": "How far can I ride on one battery charge?"}]
    status, doc, _ = call(rag_api, "POST", "/v1/chat/completions", {"messages": question, "max_tokens": 4},
                          token=None)
    assert status == 200, doc
    engine, grounded = server.engine, server.grounder.ground(question)
    assert engine.copy_bias == cfg.retrieval.copy_bias > 0
    start = engine.refusal_start if grounded.in_scope else None
    with engine.lock:
        biased = engine.generate(grounded.messages, 4, suppress_start=start, copy_from=grounded.excerpts()).text
    assert doc["choices"][0]["message"]["content"] == biased


def test_off_topic_question_gets_the_refusal_without_generation(rag_api):
    policy = load_policy(PROJECT_ROOT / "assets" / "policy.yaml")
    body = {"messages": [{"role": "user", "content": "Who painted the Mona Lisa?"}]}
    status, doc, _ = call(rag_api, "POST", "/v1/chat/completions", body, token=None)
    assert status == 200, doc
    assert doc["choices"][0]["message"]["content"] == policy.refusal
    assert doc["usage"]["completion_tokens"] == 0 and doc["sources"][0]["score"] < 0.25
    status, text, _ = call(rag_api, "POST", "/v1/chat/completions", {**body, "stream": True}, token=None)
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e.strip()]
    assert events[-1] == "[DONE]"
    content = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1]
                      if json.loads(e)["choices"])
    assert content == policy.refusal


def test_terminal_chat_answers_like_serve_with_sources(tmp_path, tiny_model_dir, tiny_index, monkeypatch, capsys):
    """`slm-pipeline chat` grounds each question, answers with serve's engine settings and lists the sources."""
    from slm_pipeline.cli import main

    config = tmp_path / "slm_pipeline.yaml"
    config.write_text(yaml.safe_dump({"artifacts_dir": str(tmp_path / "artifacts"),
                                      "policy_file": str(PROJECT_ROOT / "assets" / "policy.yaml"),
                                      "retrieval": {"k": 2, "min_score": 0.25, "copy_bias": 50.0}}))
    answers = iter(["How far can I ride on one battery charge?", "Who painted the Mona Lisa?", ""])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert main(["--config", str(config), "chat", str(tiny_model_dir), "--index", str(tiny_index),
                 "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    policy = load_policy(PROJECT_ROOT / "assets" / "policy.yaml")
    assert out[2].startswith("  sources: E-bikes › Battery and range")  # answer, then its sources
    assert out[3] == policy.refusal  # off topic: the refusal, no generation

"""The optional teacher (core/teacher/): pairs from an OpenAI-compatible endpoint, filtered, cached, wired into
instruction_pairs. Every test talks to a stand-in server started here (http.server in a thread, a free port)."""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from slm_pipeline.config import ConfigError, PairsConfig, TeacherConfig, load_config
from slm_pipeline.core.pairs import build_pairs
from slm_pipeline.core.policy import Policy
from slm_pipeline.core.teacher import (
    PairFilter,
    PromptTemplate,
    TeacherUnavailable,
    open_teacher,
    parse_pairs,
)
from slm_pipeline.core.teacher.client import TeacherResponseError

POLICY = Policy(
    company="LoopBike",
    system_prompt="You are LoopBike's support assistant.",
    scope=["bikes"],
    refusal="Sorry, I can only help with LoopBike bikes.",
    out_of_scope_examples=["What is the capital of France?"],
)
DOCS = [
    {"id": "care.md", "kind": "doc", "meta": {"title": "Bike care"},
     "text": "# Bike care\n\n## Brakes\n\nCheck the brake pads every 4 weeks. Worn pads squeal when you stop.\n\n"
             "## Tyres\n\nPump the tyres to 3.5 bar before a long ride. Low pressure wears the tyre quickly.\n"},
    {"id": "app.md", "kind": "doc", "meta": {"title": "The app"},
     "text": "# The app\n\n## Unlocking\n\nTap Unlock in the app and hold the phone near the lock for 2 seconds.\n\n"
             "## Oops\n\nThis section makes the stand-in answer with prose instead of JSON.\n"},
]
N_CHUNKS = 4
EXCERPT = re.compile(r'Excerpt:\n"""\n(.*?)\n"""', re.DOTALL)
SECTION = re.compile(r"^Section: (.*)$", re.MULTILINE)


class StandIn(BaseHTTPRequestHandler):
    """/v1/chat/completions answering from the chunk in the prompt: per chunk a grounded pair, a hallucinated one
    (a number the chunk lacks) and a duplicate question, in a ```json fence; prose for the "Oops" chunk. Model
    "missing" gets 404; "flaky" gets one 503 per chunk before its answer."""

    requests: list[dict]  # set on the server's handler class
    flaky_seen: set

    def log_message(self, *args):  # quiet test output
        pass

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        prompt = body["messages"][-1]["content"]
        if self.path != "/v1/chat/completions" or body["model"] == "missing":
            return self._send(404, {"error": {"message": f"model {body['model']!r} not found"}})
        if body["model"] == "flaky" and prompt not in self.flaky_seen:
            self.flaky_seen.add(prompt)
            return self._send(503, {"error": {"message": "loading model"}})
        text, heading = EXCERPT.search(prompt).group(1), SECTION.search(prompt).group(1)
        if "Oops" in heading:
            content = "Sure! Here are some great questions about this section for your users."
        else:
            first = text.split(". ")[0].rstrip(".") + "."
            pairs = [{"question": f"What should I know about {heading.lower()} on my LoopBike?", "answer": first},
                     {"question": f"How long does {heading.lower()} take?",
                      "answer": "It takes exactly 47 days and costs 300 euros."},
                     {"question": f"What should I know about {heading.lower()} on my LoopBike?", "answer": first}]
            content = "Here you go:\n```json\n" + json.dumps(pairs, indent=1) + "\n```"
        self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                      "finish_reason": "stop"}]})

    def _send(self, status: int, doc: dict):
        raw = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        if status == 503:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def server():
    handler = type("Handler", (StandIn,), {"requests": [], "flaky_seen": set()})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", handler.requests
    httpd.shutdown()
    httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def teacher_cfg(url: str, **kw) -> TeacherConfig:
    return TeacherConfig(**{"enabled": True, "url": url, "model": "stand-in", "max_retries": 1, **kw})


def build(teacher):
    return build_pairs(DOCS, POLICY, [], PairsConfig(min_train_samples=1, include_refusals=False, eval_fraction=0.0),
                       teacher=teacher)


# ------------------------------------------------------------------------------------------ build_pairs


def test_teacher_pairs_are_filtered_reported_and_cached(server, tmp_path):
    url, requests = server
    logs: list[str] = []
    teacher = open_teacher(teacher_cfg(url), tmp_path / "cache.sqlite", company="LoopBike", log=logs.append)
    res = build(teacher)
    teacher.close()

    by_id = {s["id"]: s for s in res.samples}
    assert by_id["care.md#s0.t0"]["source"] == "teacher"
    assert by_id["care.md#s0.t0"]["messages"][1:] == [
        {"role": "user", "content": "What should I know about brakes on my LoopBike?"},
        {"role": "assistant", "content": "Check the brake pads every 4 weeks."}]
    assert sorted(s["id"] for s in res.samples if s["source"] == "teacher") == [
        "app.md#s0.t0", "care.md#s0.t0", "care.md#s1.t0"]
    # the hallucinated pair (47 days, 300 euros), the repeated question and the prose answer are drops with reasons
    dropped = {d["id"]: d for d in res.dropped}
    assert dropped["care.md#s0.t1"]["reason"] == "teacher_ungrounded_number"
    assert "300, 47" in dropped["care.md#s0.t1"]["detail"]
    assert dropped["care.md#s0.t2"]["reason"] == "teacher_duplicate_question"
    assert dropped["app.md#s1.t"]["reason"] == "teacher_malformed"
    assert res.report["dropped"]["teacher_ungrounded_number"] == 3
    assert res.report["dropped"]["teacher_duplicate_question"] == 3
    assert res.report["dropped"]["teacher_malformed"] == 1
    stats = teacher.stats
    assert (stats.chunks, stats.cache_hits, stats.cache_misses, stats.requests) == (N_CHUNKS, 0, N_CHUNKS, N_CHUNKS)
    assert (stats.pairs_proposed, stats.pairs_passed_filter, stats.malformed) == (9, 3, 1)
    assert stats.filtered == {"ungrounded_number": 3, "duplicate_question": 3}

    # what was sent: temperature 0, the model, a prompt with title, heading path, chunk text and N
    assert len(requests) == N_CHUNKS and all(r["auth"] is None for r in requests)
    body = next(r["body"] for r in requests if "Brakes" in r["body"]["messages"][0]["content"])
    assert body["model"] == "stand-in" and body["temperature"] == 0
    prompt = body["messages"][0]["content"]
    assert "Page: Bike care" in prompt and "Section: Brakes" in prompt and "Write up to 3 pairs" in prompt
    assert "Check the brake pads every 4 weeks. Worn pads squeal when you stop." in prompt
    assert any("%" in line and "ETA" in line for line in logs), logs

    # the same inputs again: every answer from the cache, no request at all, the same samples
    again = open_teacher(teacher_cfg(url), tmp_path / "cache.sqlite", company="LoopBike")
    res2 = build(again)
    again.close()
    assert len(requests) == N_CHUNKS
    assert (again.stats.cache_hits, again.stats.cache_misses, again.stats.requests) == (N_CHUNKS, 0, 0)
    assert res2.samples == res.samples and res2.dropped == res.dropped

    # another N is another question: asked again
    more = open_teacher(teacher_cfg(url, pairs_per_chunk=2), tmp_path / "cache.sqlite", company="LoopBike")
    build(more)
    more.close()
    assert more.stats.cache_misses == N_CHUNKS and len(requests) == 2 * N_CHUNKS


def test_unreachable_endpoint_stops_the_build_naming_url_and_fix(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    teacher = open_teacher(teacher_cfg(url, max_retries=2), tmp_path / "c.sqlite", backoff_s=0.01,
                           settings_file="/etc/slm/settings.yaml")
    with pytest.raises(TeacherUnavailable) as err:
        build(teacher)
    teacher.close()
    message = str(err.value)
    assert url in message and "after 3 attempt(s)" in message
    assert "teacher.url in /etc/slm/settings.yaml" in message and "teacher.enabled: false" in message
    assert teacher.client.requests >= 3


def test_unknown_model_is_a_clear_error_and_busy_server_is_retried(server, tmp_path):
    url, requests = server
    missing = open_teacher(teacher_cfg(url, model="missing"), tmp_path / "c.sqlite")
    with pytest.raises(TeacherUnavailable, match=r"HTTP 404 .*not found.*teacher\.model"):
        build(missing)
    missing.close()
    flaky = open_teacher(teacher_cfg(url, model="flaky"), tmp_path / "c.sqlite", backoff_s=0.01)
    res = build(flaky)
    flaky.close()
    assert flaky.stats.requests == 2 * N_CHUNKS  # one 503 per chunk, then the answer
    assert sum(s["source"] == "teacher" for s in res.samples) == 3


def test_api_key_comes_from_the_named_environment_variable(server, tmp_path, monkeypatch):
    url, requests = server
    with pytest.raises(TeacherUnavailable, match=r"\$LOOPBIKE_TEACHER_KEY, which is not set"):
        open_teacher(teacher_cfg(url, api_key_env="LOOPBIKE_TEACHER_KEY"), tmp_path / "c.sqlite")
    monkeypatch.setenv("LOOPBIKE_TEACHER_KEY", "sk-test-123")
    teacher = open_teacher(teacher_cfg(url, api_key_env="LOOPBIKE_TEACHER_KEY"), tmp_path / "c.sqlite")
    teacher(DOCS[0]["meta"]["title"], "Bike care › Brakes\n\nCheck the brake pads every 4 weeks.")
    teacher.close()
    assert requests[-1]["auth"] == "Bearer sk-test-123"


# ------------------------------------------------------------------------------------------ config


def test_default_settings_have_no_teacher_and_bad_settings_name_the_key(tmp_path):
    assert TeacherConfig().enabled is False
    settings = tmp_path / "mine.yaml"
    settings.write_text("teacher:\n  enabled: true\n  model: qwen2.5:7b-instruct\n")
    with pytest.raises(ConfigError) as err:
        load_config(settings)
    assert str(settings) in str(err.value) and "teacher.url is empty" in str(err.value)
    assert "teacher.enabled: false" in str(err.value)
    settings.write_text("teacher:\n  url: localhost:11434\n")
    with pytest.raises(ConfigError, match=r"teacher\.url: .*http:// or https://"):
        load_config(settings)
    settings.write_text("teacher:\n  cache_file: cache/teacher.sqlite\n")
    assert load_config(settings).teacher.cache_file == str(tmp_path / "cache" / "teacher.sqlite")


# ------------------------------------------------------------------------------------------ parsing and filter


def test_answers_are_parsed_leniently_and_malformed_ones_raise():
    pair = {"question": "How do I unlock?", "answer": "Tap Unlock."}
    assert parse_pairs(json.dumps([pair])) == ([("How do I unlock?", "Tap Unlock.")], 0)
    assert parse_pairs("<think>JSON list [of] pairs</think>Sure:\n```json\n" + json.dumps({"pairs": [pair, 7]})
                       + "\n```") == ([("How do I unlock?", "Tap Unlock.")], 1)
    assert parse_pairs('Here: [{"Q": "Why?", "A": "Because."}] hope it helps')[0] == [("Why?", "Because.")]
    assert parse_pairs(json.dumps(pair))[0] == [("How do I unlock?", "Tap Unlock.")]
    # a code fence inside an answer, brackets in the prose before the list: the list with the pairs still wins
    code = {"question": "How do I start it?", "answer": "Run:\n```\nsyncthing serve\n```"}
    assert parse_pairs("Here are [2] pairs:\n```json\n" + json.dumps([code, pair]) + "\n```")[0] == [
        ("How do I start it?", "Run:\n```\nsyncthing serve\n```"), ("How do I unlock?", "Tap Unlock.")]
    assert parse_pairs("[]") == ([], 0)  # no fact in the chunk: no pair, not an error
    for bad in ("I cannot help with that.", '[{"question": "unterminated', ""):
        with pytest.raises(TeacherResponseError, match="no JSON list"):
            parse_pairs(bad)


def test_filter_reasons():
    chunk = "Bike care › Brakes\n\nCheck the brake pads every 4 weeks; replace them at 1,000 km."
    f = PairFilter(max_answer_words=12, min_grounding=0.6)
    assert f.check("How often should I check my brake pads?", "Check them every 4 weeks.", chunk) is None
    assert f.check("When do I replace brake pads?", "Replace them at 1000 km.", chunk) is None  # 1,000 == 1000
    assert f.check("how often should i CHECK my brake pads", "Every 4 weeks.", chunk)[0] == "duplicate_question"
    assert f.check("Brake pads, how often should I check?", "Every 4 weeks.", chunk)[0] == "duplicate_question"
    assert f.check("Who fixes my brakes?", "Ask <PERSON_1> at the shop.", chunk)[0] == "placeholder"
    assert f.check("What does this section say about brakes?", "Check them.", chunk)[0] == "refers_to_excerpt"
    assert f.check("Why do brakes fail?", "Moisture corrodes calipers and hydraulic seals degrade.",
                   chunk)[0] == "ungrounded"
    assert f.check("How long do pads last?", "About 6 weeks.", chunk)[0] == "ungrounded_number"
    assert f.check("Tell me about brakes?", " ".join(["check"] * 13), chunk)[0] == "answer_too_long"
    assert f.check("", "Check.", chunk)[0] == "empty"


def test_prompt_template_carries_title_heading_text_and_n():
    template = PromptTemplate.load()
    (msg,) = template.messages("LoopBike", "Bike care", "Bike care › Brakes › Pads\n\nCheck them.", 4)
    assert msg["role"] == "user"
    assert "Page: Bike care\nSection: Brakes › Pads" in msg["content"] and "Check them." in msg["content"]
    assert "up to 4 pairs" in msg["content"] and "LoopBike" in msg["content"]
    assert len(template.sha) == 12


# ------------------------------------------------------------------------------------------ the asset


def test_instruction_pairs_asks_the_teacher_only_when_enabled_and_once(server, tmp_path, tiny_model_dir):
    import dagster as dg
    import yaml

    from slm_pipeline.config import PROJECT_ROOT
    from slm_pipeline.core.artifacts import read_jsonl
    from slm_pipeline.definitions import defs
    from slm_pipeline.defs.resources import PipelineSettings

    url, requests = server
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for doc in DOCS:
        (corpus / doc["id"]).write_text(doc["text"])
    (corpus / "faq.csv").write_text("question,answer\n" + "".join(
        f'"How long does repair {i} take?","Repair {i} takes about {i} days in a LoopBike shop."\n' for i in range(8)))
    assets = PROJECT_ROOT / "assets"
    settings_file = tmp_path / "settings.yaml"
    settings = {"base_model": str(tiny_model_dir), "artifacts_dir": str(tmp_path / "artifacts"),
                "policy_file": str(assets / "policy.yaml"), "gold_file": str(assets / "gold" / "gold_qa.jsonl"),
                "corpus": {"corpus_dir": str(corpus)}, "anonymize": {"canaries_file": None},
                "pairs": {"min_train_samples": 1, "eval_fraction": 0.0},
                # set but off, as it is by default: no request may reach the server
                "teacher": {"enabled": False, "url": url, "model": "stand-in"}}
    instance = dg.DagsterInstance.ephemeral()

    def run(selection: list[str]) -> dict:
        settings_file.write_text(yaml.safe_dump(settings))
        result = dg.materialize([*defs.assets, *defs.asset_checks], selection=selection, instance=instance,
                                resources={"settings": PipelineSettings(config_file=str(settings_file))})
        mat = [e for e in result.get_asset_materialization_events()
               if e.asset_key.to_user_string() == "instruction_pairs"][0].event_specific_data.materialization
        return {k: v.value for k, v in mat.metadata.items()}

    off = run(["raw_corpus", "anonymized_corpus", "retrieval_index", "instruction_pairs", "base_model"])
    assert requests == [] and off["teacher"] == {"enabled": False}

    settings["teacher"]["enabled"] = True
    on = run(["instruction_pairs"])
    assert len(requests) == N_CHUNKS
    assert on["teacher_pairs_written"] == 3 and on["teacher_requests"] == N_CHUNKS
    assert (on["teacher_cache_hits"], on["teacher_cache_misses"]) == (0, N_CHUNKS)
    assert on["teacher_filtered_by_reason"] == {"ungrounded_number": 3, "duplicate_question": 3, "malformed": 1}
    folder = tmp_path / "artifacts" / "instruction_pairs"
    folder = folder / (folder / "latest").read_text().strip()
    assert {s["id"] for s in read_jsonl(folder / "train.jsonl") if s["source"] == "teacher"} == {
        "app.md#s0.t0", "care.md#s0.t0", "care.md#s1.t0"}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["teacher"]["url"] == url and manifest["teacher"]["model"] == "stand-in"
    assert manifest["teacher"]["prompt_sha"] == PromptTemplate.load().sha
    assert (tmp_path / "artifacts" / "teacher_cache.sqlite").is_file()

    again = run(["instruction_pairs"])
    assert len(requests) == N_CHUNKS and again["teacher_requests"] == 0
    assert (again["teacher_cache_hits"], again["teacher_cache_misses"]) == (N_CHUNKS, 0)
    assert again["teacher_pairs_written"] == 3

"""Several `serve` replicas on one feedback store in a real Postgres server: completions and feedback land in one
place whichever replica answers, and `feedback_sensor` requests exactly one retrain for them. Plus the store on
Postgres itself (round trip, concurrent schema creation) and the migration of a version-1 SQLite file."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
import yaml

from slm_pipeline.benchmarks.upstream_standin import UpstreamStandIn
from slm_pipeline.config import PROJECT_ROOT, load_config
from slm_pipeline.core.feedback import SCHEMA_VERSION, FeedbackStore, feedback_db_path, open_feedback_store
from slm_pipeline.core.serve import build_server
from slm_pipeline.defs.automation import feedback_sensor
from slm_pipeline.defs.resources import PipelineSettings


def start_cli_replica(config, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, str, list[str]]:
    """`slm-pipeline serve` in its own process on a free port; (process, base URL, its stderr lines so far)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "slm_pipeline.cli", "--config", str(config), "serve", "--port", "0", *args],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **(env or {})})
    err_lines: list[str] = []
    threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True).start()
    line = proc.stdout.readline()  # "Serving ... on http://127.0.0.1:PORT/v1 ..."
    match = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", line)
    if not match:
        proc.kill()
        pytest.fail(f"serve did not start: {line!r} {''.join(err_lines)[-2000:]}")
    return proc, match.group(1), err_lines


def test_two_replicas_share_one_postgres_store_and_the_sensor_fires_once(postgres_server, tiny_model_dir,
                                                                          tmp_path):
    url = postgres_server.create_database("replicas")
    config = tmp_path / "slm_pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "artifacts_dir": str(tmp_path / "artifacts"), "policy_file": str(PROJECT_ROOT / "assets" / "policy.yaml"),
        "feedback": {"database_url": url, "min_negative": 3, "log_questions": False},
        "retrieval": {"enabled": False}, "serve": {"default_max_tokens": 4},
    }))
    cfg = load_config(config)
    with UpstreamStandIn(model="slm-support") as upstream:
        # replica A: its own process, generation upstream; replica B: in this process, the model in-process
        proc, url_a, log_a = start_cli_replica(config, "--upstream-url", upstream.url)
        replica_b = build_server(cfg, tiny_model_dir, host="127.0.0.1", port=0).start()
        try:
            ask = {"messages": [{"role": "user", "content": "How do I unlock a bike?"}], "temperature": 1.0, "seed": 1}
            ids = {}
            for name, base in (("a", url_a), ("b", replica_b.url)):
                for i in range(2):
                    resp = httpx.post(f"{base}/v1/chat/completions", json=ask, timeout=60,
                                      headers={"X-Request-ID": f"replica-{name}-{i}"})
                    assert resp.status_code == 200, resp.text
                    ids[f"{name}{i}"] = resp.json()["id"]
            # feedback reaches the other replica than the one that answered
            for cid, base, extra in ((ids["a0"], replica_b.url, {"rating": -1}),
                                     (ids["b0"], url_a, {"rating": -1, "correction": "Scan the QR code."}),
                                     (ids["a1"], replica_b.url, {"rating": 1}),
                                     (ids["b1"], url_a, {"rating": 2, "scale": "stars"})):
                resp = httpx.post(f"{base}/v1/feedback", json={"completion_id": cid, **extra}, timeout=30)
                assert resp.status_code == 200, resp.text
            health_a = httpx.get(f"{url_a}/health").json()
        finally:
            replica_b.close()
            proc.send_signal(signal.SIGTERM)  # graceful stop
            assert proc.wait(30) == 0
    assert health_a["backend"] == "upstream" and len(upstream.requests) == 2

    with FeedbackStore(url) as store:
        assert store.stats() == {"completions": 4, "feedback": 4, "negative": 3, "corrections": 1,
                                      "questions": 0, "distinct_questions": 0}
        replicas = {store.get_completion(cid)["replica"] for cid in ids.values()}
        assert len(replicas) == 2 and health_a["replica"] in replicas
    assert not feedback_db_path(cfg.path(cfg.artifacts_dir)).exists()  # nothing went to the SQLite default
    # request ids in replica A's log lines
    assert any("[replica-a-1]" in line and "POST /v1/chat/completions 200" in line for line in log_a), log_a[-20:]

    settings = PipelineSettings(config_file=str(config))
    with dg.DagsterInstance.ephemeral() as instance:
        tick = feedback_sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=None, resources={"settings": settings}))
        assert [r.run_key for r in tick.run_requests] == ["feedback-1-4"] and tick.cursor == "4"
        assert tick.run_requests[0].tags["slm/negative_or_corrected"] == "3"
        again = feedback_sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=tick.cursor, resources={"settings": settings}))
        assert not again.run_requests and again.skip_message.startswith("0 of 3")


def test_feedback_store_on_postgres_round_trip_and_concurrent_start(postgres_server):
    url = postgres_server.create_database("store")
    cfg = load_config(None, {"feedback": {"database_url": url}})
    assert open_feedback_store(cfg, create=False) is None  # a database without the tables: no store yet
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            FeedbackStore(url).close()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(4)]  # replicas starting at the same moment
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    store = open_feedback_store(cfg, create=False)
    assert store is not None and store.schema_version() == SCHEMA_VERSION
    with store:
        for i in range(3):
            store.record_completion(f"c{i}", "slm-support", f"Question {i}?", "Answer.", replica="r1")
        assert store.add_feedback("c0", -1)["id"] == 1
        assert store.add_feedback("c1", 5, scale="stars")["negative"] == 0
        store.add_feedback("c2", 1, correction="  Better answer.  ")
        assert store.count_negative_since(0) == 2 and store.last_feedback_id() == 3
        (rec,) = store.corrections_as_records()
        assert rec["messages"][1]["content"] == "Better answer." and "postgresql" in rec["path"]
        store.log_questions(["How do I pay?", "how do I pay", "Where is <PERSON_1>?"])
        assert [(q["normalized"], q["count"]) for q in store.top_questions(5)][0] == ("how do i pay", 2)
        with pytest.raises(LookupError, match="unknown completion_id"):
            store.add_feedback("nope", 1)


def test_a_version_1_sqlite_store_is_migrated_in_place(tmp_path):
    path = tmp_path / "feedback.db"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE completions (id INTEGER PRIMARY KEY AUTOINCREMENT, completion_id TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL, model TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL);
        CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL,
            completion_id TEXT NOT NULL, model TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,
            rating INTEGER NOT NULL, scale TEXT NOT NULL, negative INTEGER NOT NULL, correction TEXT);
        CREATE TABLE questions (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL,
            question TEXT NOT NULL, normalized TEXT NOT NULL);
        INSERT INTO completions VALUES (1, 'old-1', '2025-01-01T00:00:00Z', 'slm-support', 'Q?', 'A.');
        INSERT INTO feedback VALUES (7, '2025-01-01T00:00:00Z', 'old-1', 'slm-support', 'Q?', 'A.', -1, 'thumbs',
            1, NULL);
    """)
    con.commit()
    con.close()
    store = FeedbackStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.get_completion("old-1")["replica"] is None
    store.record_completion("new-1", "slm-support", "Q2?", "A2.", replica="host:8000")
    assert store.add_feedback("new-1", -1)["id"] == 8  # ids continue after the old rows
    assert store.count_negative_since(0) == 2
    cols = {c["name"] for c in sa.inspect(store.engine).get_columns("completions")}
    assert "replica" in cols
    store.close()
    FeedbackStore(path).close()  # opening again is a no-op


def test_a_database_url_naming_an_unreachable_server_fails_with_the_setting(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match="feedback.database_url"):
        FeedbackStore("postgresql://nobody:secret@127.0.0.1:9/none?connect_timeout=5")
    assert time.monotonic() - t0 < 30
    try:
        FeedbackStore("postgresql://nobody:secret@127.0.0.1:9/none?connect_timeout=5")
    except ConnectionError as e:
        assert "secret" not in str(e)  # the password never reaches logs

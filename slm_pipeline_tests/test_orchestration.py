"""Orchestration for real: the chain on a Dagster instance backed by a real PostgreSQL server
(deploy/postgres/dagster.yaml), and steps run by Celery workers over a local Redis broker (deploy/celery/)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy
from test_pipeline import planted_corpus, write_config

from slm_pipeline.config import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
BIN = Path(sys.executable).parent


@pytest.fixture
def pg_home(postgres_server, tmp_path, monkeypatch) -> tuple[Path, str]:
    """DAGSTER_HOME holding deploy/postgres/dagster.yaml, pointed at a fresh database through its env vars."""
    name = f"dagster_{uuid.uuid4().hex[:8]}"
    url = postgres_server.create_database(name)
    for key, value in {"HOST": "127.0.0.1", "PORT": str(postgres_server.port), "USER": "postgres",
                       "PASSWORD": "", "DB": name}.items():
        monkeypatch.setenv(f"DAGSTER_PG_{key}", value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "postgres" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home, url


def _rows(url: str, sql: str) -> list:
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text(sql)).all()
    finally:
        engine.dispose()


def test_chain_runs_on_the_postgres_instance(pg_home, tmp_path, tiny_model_dir, capsys):
    """`slm-pipeline run` with the Postgres instance: corpus -> ... -> lora_adapter (trained by 2 processes)."""
    from slm_pipeline.cli import main

    home, url = pg_home
    cfg = write_config(tmp_path, tiny_model_dir, corpus_dir=planted_corpus(tmp_path / "corpus"),
                       train={"processes": 2})
    t0 = time.perf_counter()
    assert main(["--config", str(cfg), "run", "--select", "*lora_adapter"]) == 0
    print(f"\nchain up to lora_adapter on Postgres: {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    assert "lora_adapter" in capsys.readouterr().out

    instance = dg.DagsterInstance.get()
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    [run] = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.SUCCESS
    expected = {"raw_corpus", "anonymized_corpus", "retrieval_index", "instruction_pairs", "base_model",
                "lora_adapter"}
    for key in expected:
        assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None, key
    adapter = instance.get_latest_materialization_event(dg.AssetKey("lora_adapter")).asset_materialization
    trained = json.loads((Path(adapter.metadata["artifact_dir"].value) / "train_result.json").read_text())
    assert trained["processes"] == 2 and trained["steps"] == 2
    logs = [e.user_message for e in instance.all_logs(run.run_id)]
    assert any("training in 2 process(es): accelerate.commands.launch" in m for m in logs)
    # ... and it is all in Postgres itself, where any other machine's webserver / daemon reads it.
    assert _rows(url, "select status from runs") == [("SUCCESS",)]
    stored = {r[0] for r in _rows(url, "select asset_key from event_logs "
                                       "where dagster_event_type = 'ASSET_MATERIALIZATION'")}
    assert {json.loads(k)[0] for k in stored} == expected  # keys are stored as JSON paths
    checks = _rows(url, "select check_name, execution_status from asset_check_executions")
    assert ("anonymized_corpus_no_pii_leak", "SUCCEEDED") in checks


# ------------------------------------------------------------------------------------------------ Celery


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout}s")


@pytest.fixture
def redis_url(tmp_path):
    """A throwaway Redis server (Debian's redis-server; `make redis-deps` installs it, CI runs that)."""
    server = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK)
                                              else None)
    if server is None:
        pytest.skip("redis-server not found: `make redis-deps` installs the Debian package redis-server (CI does)")
    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, proc, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop a process started with start_new_session=True and everything it started (celery's pool)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_celery_workers_run_the_steps(pg_home, redis_url, tmp_path, tiny_model_dir):
    """`dagster asset materialize` with SLM_PIPELINE_EXECUTOR=celery: every step is a Celery task that a
    worker process (`dagster-celery worker start`, deploy/celery/celery.yaml) executes; both share the
    Postgres instance and the artifacts folder."""
    home, url = pg_home
    cfg = write_config(tmp_path, tiny_model_dir, corpus_dir=planted_corpus(tmp_path / "corpus"))
    env = dict(os.environ, SLM_PIPELINE_EXECUTOR="celery", SLM_CELERY_BROKER_URL=redis_url,
               SLM_PIPELINE_CONFIG=str(cfg), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p))
    worker_log = tmp_path / "worker.log"
    with open(worker_log, "w") as log:
        worker = subprocess.Popen(
            [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-n", "slm-test",
             "-y", str(DEPLOY / "celery" / "celery.yaml"), "--", "--concurrency=1"],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        t0 = time.perf_counter()
        cli = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "slm_pipeline.definitions",
             "--select", "raw_corpus,anonymized_corpus"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        print(f"\ncelery run of raw_corpus -> anonymized_corpus: {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        assert cli.returncode == 0, cli.stdout[-3000:] + cli.stderr[-3000:] + worker_log.read_text()[-3000:]
    finally:
        _stop_group(worker)

    instance = dg.DagsterInstance.get()
    [run] = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.SUCCESS
    records = instance.all_logs(run.run_id)
    engine_msgs = " ".join(e.user_message for e in records if e.is_dagster_event)
    assert "celery" in engine_msgs.lower()
    # The steps ran in the worker, not in the process that launched the run.
    def pids(event_type):
        return {e.dagster_event.pid for e in records if e.is_dagster_event and e.dagster_event.event_type == event_type}

    step_pids, run_pids = pids(dg.DagsterEventType.STEP_SUCCESS), pids(dg.DagsterEventType.RUN_START)
    assert step_pids and run_pids and not step_pids & run_pids
    for key in ("raw_corpus", "anonymized_corpus"):
        mat = instance.get_latest_materialization_event(dg.AssetKey(key)).asset_materialization
        assert Path(mat.metadata["artifact_dir"].value).is_dir()
    assert "execute_plan" in worker_log.read_text()  # the worker log names the tasks it ran
    assert {r[0] for r in _rows(url, "select status from runs")} == {"SUCCESS"}

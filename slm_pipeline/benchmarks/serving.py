"""Serving load test: N concurrent clients for a bounded time against `slm-pipeline serve` replicas started as
separate processes on loopback, exactly as a user runs them (retrieval on, question logging on, SQLite feedback
store). Clients send the gold questions round-robin and honour Retry-After on 429; a prober polls /health
meanwhile (it must stay fast under load).

Scenarios:
1. in-process  one replica generating with the real SmolLM2-135M-Instruct base (int8-weights runtime, the CPU
               recommendation) - what one CPU replica sustains end to end;
2. api-layer   one replica forwarding generation to a stand-in upstream engine that answers at once
               (upstream_standin.py) - the ceiling of the serve layer itself (HTTP, auth, retrieval, feedback
               store, question log) when a GPU engine such as vLLM does the generating;
3. two replicas of (2) behind a local round-robin TCP balancer (like nginx `stream`), same clients.
On a machine with few cores the load generator, the stand-in and the replicas share the same cores: read (3)
against (2) as "does a second replica help on this box", not as cluster scaling.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml

from ..config import PROJECT_ROOT, PipelineConfig
from .common import _r, _say, percentile

# --------------------------------------------------------------------------------------------- replicas


class Replica:
    """`slm-pipeline serve` in its own process on a free loopback port."""

    def __init__(self, config: Path, *args: str, env: dict | None = None, start_timeout: float = 300.0):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "slm_pipeline.cli", "--config", str(config), "serve", "--host", "127.0.0.1",
             "--port", "0", *args],
            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **(env or {})})
        self.log: list[str] = []
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()
        line = _readline(self.proc, start_timeout)
        match = re.search(r" on (http://[^ ]+)/v1 ", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"serve did not start: {line!r}\n{''.join(self.log)[-3000:]}")
        self.url = match.group(1)

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=10).json()

    def stop(self) -> int:
        self.proc.terminate()  # graceful: running requests finish, the question log is flushed
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    return out[0] if out else ""


class RoundRobinBalancer:
    """A TCP balancer on loopback: each new connection goes to the next backend (what nginx `stream` or an L4
    cloud balancer does). Runs its own event loop in a thread."""

    def __init__(self, backends: list[str]):
        self.backends = [(httpx.URL(u).host, httpx.URL(u).port) for u in backends]
        self._next = itertools.cycle(range(len(self.backends)))
        self.connections = [0] * len(self.backends)
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(30)
        self.url = f"http://127.0.0.1:{self._port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def listen():
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self._port = self._server.sockets[0].getsockname()[1]

        self._loop.run_until_complete(listen())
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        i = next(self._next)
        self.connections[i] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.backends[i])
        except OSError:
            writer.close()
            return
        self._open |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()
                self._open.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def _shutdown(self) -> None:
        self._server.close()
        for w in list(self._open):  # ends both pipes of every connection (EOF), so the handlers return
            w.transport.abort()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


# ------------------------------------------------------------------------------------------- load test


async def _load(url: str, bodies: list[dict], clients: int, seconds: float, token: str | None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    counts = {"ok": 0, "429": 0, "503": 0, "errors": 0, "completion_tokens": 0}
    health_ms: list[float] = []
    done = asyncio.Event()

    async def client(i: int) -> None:
        # one connection per client (as separate apps would have), so an L4 balancer spreads them
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600,
                                     limits=httpx.Limits(max_connections=1)) as http:
            for n in itertools.count():
                if time.monotonic() >= deadline:
                    return
                t0 = time.perf_counter()
                try:
                    resp = await http.post("/v1/chat/completions", json=bodies[(i + n * clients) % len(bodies)])
                except httpx.HTTPError:
                    counts["errors"] += 1
                    continue
                if resp.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                    counts["ok"] += 1
                    counts["completion_tokens"] += resp.json()["usage"]["completion_tokens"]
                elif resp.status_code in (429, 503):
                    counts[str(resp.status_code)] += 1
                    wait = float(resp.headers.get("Retry-After") or 1)
                    await asyncio.sleep(max(0.0, min(wait, deadline - time.monotonic())))
                else:
                    counts["errors"] += 1

    async def prober() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            while not done.is_set():
                t0 = time.perf_counter()
                try:
                    await http.get("/health")
                    health_ms.append(1000 * (time.perf_counter() - t0))
                except httpx.HTTPError:
                    counts["errors"] += 1
                try:
                    await asyncio.wait_for(done.wait(), 0.25)
                except TimeoutError:
                    pass

    t0 = time.perf_counter()
    probe = asyncio.create_task(prober())
    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.perf_counter() - t0
    done.set()
    await probe
    ms = [1000 * x for x in latencies]
    return {
        "clients": clients, "seconds": round(wall, 1), "requests_ok": counts["ok"],
        "requests_per_s": _r(counts["ok"] / wall), "latency_ms_p50": _r(percentile(ms, 50), 0),
        "latency_ms_p95": _r(percentile(ms, 95), 0), "latency_ms_max": _r(max(ms) if ms else None, 0),
        "rejected_429": counts["429"], "busy_503": counts["503"], "errors": counts["errors"],
        "completion_tokens_per_s": _r(counts["completion_tokens"] / wall, 1),
        "health_ms_p50": _r(percentile(health_ms, 50), 1), "health_ms_p95": _r(percentile(health_ms, 95), 1),
        "health_ms_max": _r(max(health_ms) if health_ms else None, 1),
    }


def load_test(url: str, bodies: list[dict], clients: int = 8, seconds: float = 20.0,
              token: str | None = None) -> dict:
    """N clients post chat completions for `seconds` (requests in flight at the end finish and count):
    requests/s, latency p50/p95 of answered requests, 429s and 503s (clients wait Retry-After), other errors,
    completion tokens/s, and /health latency polled every 0.25 s meanwhile."""
    return asyncio.run(_load(url, bodies, clients, seconds, token))


def _warm_up(replica: Replica, body: dict, timeout: float = 300.0) -> None:
    """One answered request (model, index and embedder loaded), then the question log's anonymizer loaded."""
    resp = httpx.post(f"{replica.url}/v1/chat/completions", json=body, timeout=timeout)
    resp.raise_for_status()
    deadline = time.monotonic() + timeout
    while (replica.health().get("question_log") or {}).get("backlog") and time.monotonic() < deadline:
        time.sleep(0.25)


def bench_serving(cfg: PipelineConfig, base_path: Path, index_dir: Path | None, tmp_dir: Path, *,
                  clients: int = 8, api_clients: int | None = None, seconds: float = 20.0, max_tokens: int = 32,
                  threads: int = 0, log: Callable[[str], None] | None = None) -> dict:
    """The three scenarios in the module docstring; returns their figures."""
    from ..core.policy import load_gold
    from .upstream_standin import UpstreamStandIn

    api_clients = api_clients or 4 * clients
    questions = [g["question"] for g in load_gold(cfg.path(cfg.gold_file))]
    bodies = [{"messages": [{"role": "user", "content": q}], "max_tokens": max_tokens} for q in questions]
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    config = tmp_dir / "serve_bench.yaml"
    config.write_text(yaml.safe_dump({
        "artifacts_dir": str(tmp_dir / "artifacts"), "policy_file": str(cfg.path(cfg.policy_file)),
        "gold_file": str(cfg.path(cfg.gold_file)), "retrieval": cfg.retrieval.model_dump(),
        "anonymize": cfg.anonymize.model_dump(),
        "feedback": {"log_questions": True},
        "serve": {"max_tokens_limit": max(max_tokens, 64)},
    }))
    index_args = ["--index", str(index_dir)] if index_dir else ["--no-retrieval"]
    if threads:
        index_args += ["--threads", str(threads)]
    res: dict = {"questions": len(bodies), "max_tokens": max_tokens, "retrieval": bool(index_dir),
                 "store": "SQLite (embedded default)", "cpu_count": os.cpu_count(), "torch_threads": threads or None,
                 "load_average_1m_before": round(os.getloadavg()[0], 2)}

    # 1. in-process generation: a bounded queue (half the clients) so the 429 path is exercised too
    max_queue = max(1, clients // 2)
    _say(log, f"  in-process: 1 replica, SmolLM2 base int8-weights, {clients} clients x {seconds:g} s, "
              f"max_queue {max_queue}")
    replica = Replica(config, "--model", str(base_path), "--runtime", "int8-weights", "--max-queue",
                      str(max_queue), *index_args)
    try:
        _warm_up(replica, bodies[0])
        # one client alone first: the latency of an answer when nothing waits
        res["in_process_1_client"] = load_test(replica.url, bodies, 1, min(seconds, 10.0))
        _say(log, f"    1 client: {res['in_process_1_client']}")
        res["in_process"] = {**load_test(replica.url, bodies, clients, seconds), "max_queue": max_queue,
                             "model": "SmolLM2-135M-Instruct base, int8-weights"}
    finally:
        replica.stop()
    _say(log, f"    {clients} clients: {res['in_process']}")

    with UpstreamStandIn(model="slm-support") as upstream:
        args = ["--upstream-url", upstream.url, "--max-queue", str(4 * api_clients), *index_args]
        _say(log, f"  api-layer: 1 replica in front of an instant stand-in engine, {api_clients} clients")
        replica = Replica(config, *args)
        try:
            _warm_up(replica, bodies[0])
            res["api_layer_1_replica"] = load_test(replica.url, bodies, api_clients, seconds)
        finally:
            replica.stop()
        _say(log, f"    {res['api_layer_1_replica']}")

        _say(log, f"  api-layer: 2 replicas behind a round-robin TCP balancer, {api_clients} clients")
        replicas = [Replica(config, *args) for _ in range(2)]
        balancer = None
        try:
            for r in replicas:
                _warm_up(r, bodies[0])
            balancer = RoundRobinBalancer([r.url for r in replicas])
            res["api_layer_2_replicas"] = {**load_test(balancer.url, bodies, api_clients, seconds),
                                           "connections_per_replica": list(balancer.connections)}
        finally:
            if balancer is not None:
                balancer.close()
            for r in replicas:
                r.stop()
        _say(log, f"    {res['api_layer_2_replicas']}")
    res["load_average_1m_after"] = round(os.getloadavg()[0], 2)  # other work on the machine skews absolute figures
    return res

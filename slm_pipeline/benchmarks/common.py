"""Shared bench helpers: logging, rounding, percentiles, RSS sampling, the matmul peak, the demo samples."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import torch

from ..config import PipelineConfig
from ..core.generation import percentile  # noqa: F401 - one percentile for eval and bench

LORA_TARGETS_NOTE = "same LoraConfig both sides (r, alpha, dropout, target_modules from TrainConfig)"


def _say(log: Callable[[str], None] | None, msg: str) -> None:
    if log:
        log(msg)


def run_guarded(results: dict, name: str, fn: Callable[[], dict], time_key: str) -> None:
    """results[name] = fn(), or {"error": ...} if it raised (one broken part must not hide the others), with the
    seconds it took under `time_key`."""
    t0 = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as e:  # noqa: BLE001 - reported in the results instead
        results[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
    results[name][time_key] = round(time.perf_counter() - t0, 1)


def _r(x, nd=2):
    return None if x is None else round(float(x), nd)


# ------------------------------------------------------------------------------------------------ machine


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class RssSampler:
    """Max resident set size while the `with` block runs (sampled every `interval` s)."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak, self._stop = interval, 0.0, threading.Event()

    def __enter__(self):
        self.peak = current_rss_mb()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, current_rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, current_rss_mb())


def matmul_peak(n: int = 2048, rounds: int = 3, reps: int = 3) -> dict:
    """Best-of GFLOP/s of an n x n torch.matmul in fp32 and bf16, alternated round by round."""
    best = {"fp32": 0.0, "bf16": 0.0}
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    mats = {k: (torch.randn(n, n, dtype=d), torch.randn(n, n, dtype=d)) for k, d in dtypes.items()}
    for a, b in mats.values():
        a @ b  # warm-up (oneDNN primitive creation)
    for _ in range(rounds):
        for k, (a, b) in mats.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                a @ b
            dt = time.perf_counter() - t0
            best[k] = max(best[k], 2 * n**3 * reps / dt / 1e9)
    return {"n": n, "fp32_gflops": round(best["fp32"], 1), "bf16_gflops": round(best["bf16"], 1),
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "bf16_over_fp32": round(best["bf16"] / best["fp32"], 2) if best["fp32"] else None}


# ------------------------------------------------------------------------------------------------ data


def demo_samples(cfg: PipelineConfig) -> tuple[list[dict], list[dict], str]:
    """(train samples, raw records, system prompt) from the demo corpus, without anonymization (same sizes)."""
    from ..core.corpus import load_corpus
    from ..core.pairs import build_pairs
    from ..core.policy import load_gold, load_policy

    records = load_corpus(cfg.corpus, cfg.path(cfg.corpus.corpus_dir)).records
    policy = load_policy(cfg.path(cfg.policy_file))
    gold = load_gold(cfg.path(cfg.gold_file))
    samples = build_pairs(records, policy, gold, cfg.pairs).samples
    return [s for s in samples if s.get("split") == "train"], records, policy.system_prompt

"""`run_bench`: every section not skipped, in one process; writes bench.json + bench.md."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..config import PipelineConfig
from .anonymization import bench_anonymization
from .common import _say, demo_samples, matmul_peak, peak_rss_mb, run_guarded
from .end_to_end import end_to_end
from .inference import DEFAULT_PROMPTS, bench_inference
from .report import markdown
from .retrieval import bench_retrieval
from .training import bench_training


def run_bench(cfg: PipelineConfig, out_dir: Path, *, skip: set[str] = frozenset(), train_tokens: int = 3000,
              prompts: int = 6, max_new_tokens: int = 32, base_path: Path | None = None,
              serving_clients: int = 8, serving_seconds: float = 20.0, serving_threads: int = 0,
              log: Callable[[str], None] | None = print) -> dict:
    """Run every section not in `skip` ({'training','anonymization','inference','retrieval','serving',
    'end_to_end'}); write bench.json + bench.md into out_dir."""
    from ..core.models import resolve_base_model

    t_start = time.perf_counter()
    res: dict = {"machine": matmul_peak(), "torch": torch.__version__}
    _say(log, f"matmul peak: {res['machine']}")
    if {"training", "inference", "retrieval", "serving"} - set(skip) and base_path is None:
        base_path = resolve_base_model(cfg.base_model, cfg.path(cfg.artifacts_dir) / "base_model").path
    samples, records, system_prompt = demo_samples(cfg)

    def section(name: str, fn: Callable[[], dict]) -> None:
        if name in skip:
            res[name] = {"skipped": "by flag"}
            return
        _say(log, f"== {name}")
        run_guarded(res, name, fn, "section_s")
        _say(log, f"   {name} done in {res[name]['section_s']}s")

    section("training", lambda: bench_training(base_path, samples, cfg.train, res["machine"], tokens=train_tokens,
                                               log=log))

    def anon():
        from ..core.corpus import _record_text
        from ..core.pii_eval import generate_labeled_set

        return bench_anonymization(cfg, [_record_text(r) for r in records], generate_labeled_set())

    section("anonymization", anon)
    section("inference", lambda: bench_inference(base_path, system_prompt, DEFAULT_PROMPTS[:prompts] if prompts <= 6
                                                 else (DEFAULT_PROMPTS * prompts)[:prompts], max_new_tokens, log=log))
    # TTFT needs only the first token: a few new tokens keep the section short
    section("retrieval", lambda: bench_retrieval(cfg, base_path, samples, prompts=prompts,
                                                 max_new_tokens=min(max_new_tokens, 4), train_tokens=train_tokens,
                                                 log=log))

    def serving() -> dict:
        from .retrieval import prepare_index
        from .serving import bench_serving

        with tempfile.TemporaryDirectory(prefix="slm-serve-bench-") as tmp:
            index_dir = prepare_index(cfg, Path(tmp), log)[0] if cfg.retrieval.enabled else None
            return bench_serving(cfg, base_path, index_dir, Path(tmp), clients=serving_clients,
                                 seconds=serving_seconds, max_tokens=max_new_tokens, threads=serving_threads,
                                 log=log)

    section("serving", serving)
    section("end_to_end", end_to_end)
    res["process_peak_rss_mb"] = round(peak_rss_mb(), 0)
    res["wall_s"] = round(time.perf_counter() - t_start, 1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(res, indent=2, default=str), encoding="utf-8")
    (out_dir / "bench.md").write_text(markdown(res) + "\n", encoding="utf-8")
    return res

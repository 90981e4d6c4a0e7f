"""Retrieval: what retrieved context costs, measured side by side in one process.

1. search     ms/query p50/p95 over the gold questions, one query at a time after a warm-up, on the index the
              pipeline built (artifacts/retrieval_index/latest) or, without one, an index built here in a temp
              dir from the anonymized demo corpus (only anonymized text enters an index); recall@1/@3 of the
              gold key facts from the index summary.
2. ttft       the same gold questions on the base model, streamed `generate_answer`, under the plain policy system
              prompt vs `context_system_message(...)` over the retrieved hits (alternated run by run, best of
              a few runs per question): TTFT p50 and mean prompt tokens each, and their ratios.
3. training   our recipe on the demo samples vs the same samples made retrieval-aware by `raft.contextualize`
              (RAFT, longer system messages): real tok/s and mean sample tokens each.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..config import PipelineConfig
from .common import _r, _say, percentile, run_guarded


def prepare_index(cfg: PipelineConfig, tmp_dir: Path, log: Callable[[str], None] | None = None,
                  reuse: bool = True) -> tuple[Path, dict, dict]:
    """(index folder, its summary (index.json), how it was obtained). Reuses the pipeline's latest
    retrieval_index when there is one (and `reuse`), else anonymizes the demo corpus and indexes it in tmp_dir."""
    from ..core.artifacts import latest_version_dir
    from ..core.policy import load_gold, load_policy

    latest = latest_version_dir(cfg.path(cfg.artifacts_dir) / "retrieval_index") if reuse else None
    if latest and (latest / "index.json").exists():
        _say(log, f"  reusing retrieval index {latest}")
        return latest, json.loads((latest / "index.json").read_text()), {"source": f"artifacts ({latest.name})"}
    from ..core.anonymize import Anonymizer
    from ..core.corpus import load_corpus
    from ..core.retrieval import index_corpus

    t0 = time.perf_counter()
    records = load_corpus(cfg.corpus, cfg.path(cfg.corpus.corpus_dir)).records
    clean, report = Anonymizer(cfg.anonymize).anonymize_records(records)
    leaked = {x["record_id"] for x in report.leaks}
    clean = [r for r in clean if r["id"] not in leaked]  # a record with a detected value left in never enters
    anon_s = time.perf_counter() - t0
    _say(log, f"  anonymized {len(clean)} demo records in {anon_s:.1f}s ({len(leaked)} left out: leak check); "
              "indexing them")
    t0 = time.perf_counter()
    folder = Path(tmp_dir) / "retrieval_index"
    summary = index_corpus(clean, cfg.retrieval, folder, load_gold(cfg.path(cfg.gold_file)),
                           company=load_policy(cfg.path(cfg.policy_file)).company)
    return folder, summary, {"source": "built here from the anonymized demo corpus", "records": len(clean),
                             "records_left_out": len(leaked), "anonymize_s": round(anon_s, 2),
                             "index_build_s": round(time.perf_counter() - t0, 2)}


def bench_search(index, questions: Sequence[str], warmup: int = 3) -> dict:
    """ms per query, one query at a time (what `serve` does per request: embed the query, dense search, BM25
    when weighted, fusion), after `warmup` untimed queries."""
    questions = list(questions)
    for q in questions[:warmup]:
        index.search(q)
    times = []
    for q in questions:
        t0 = time.perf_counter()
        index.search(q)
        times.append((time.perf_counter() - t0) * 1000)
    return {"n_queries": len(times), "k": index.k, "warmup": min(warmup, len(questions)),
            "ms_p50": _r(percentile(times, 50)), "ms_p95": _r(percentile(times, 95)),
            "ms_mean": _r(statistics.mean(times)) if times else None, "ms_max": _r(max(times, default=None))}


def bench_context_ttft(base_path: Path, index, system_prompt: str, company: str, questions: Sequence[str],
                       max_new_tokens: int = 4, repeats: int = 3, runtime: str = "fp32",
                       min_score: float | None = None, log: Callable[[str], None] | None = None,
                       copy_bias: float = 0.0) -> dict:
    """TTFT of the same questions on the same model without vs with retrieved context in the system message, and
    (copy_bias > 0) with context and copy-biased decoding, as `serve` answers.

    After one untimed warm-up of each side, every question is timed `repeats` times per side, the side order
    rotating run by run; a question's TTFT is its best run (a shared CPU adds multi-second stalls to single
    runs), the p50 is over questions."""
    from ..core.generation import generate_answer, latency_summary
    from ..core.models import load_for_inference, load_tokenizer
    from ..core.retrieval import context_system_message, excerpt_text

    questions = list(questions)
    tok = load_tokenizer(base_path)
    model = load_for_inference(base_path, "cpu", runtime)
    hits = index.search_many(questions)
    context = [context_system_message(system_prompt, company, h) for h in hits]
    excerpts = [excerpt_text(h) for h in hits]
    systems = {"plain": [system_prompt] * len(questions), "context": context,
               **({"copy_bias": context} if copy_bias else {})}

    def answer(side: str, i: int, n_tokens: int):
        copy = side == "copy_bias"
        return generate_answer(model, tok, questions[i], systems[side][i], n_tokens,
                               copy_text=excerpts[i] if copy else None, copy_bias=copy_bias if copy else 0.0)

    for side in systems:  # warm-up: the first call pays one-off costs (and the longer prompt its own kernels)
        answer(side, 0, 2)
    best: dict[str, list] = {side: [] for side in systems}
    every: dict[str, list[float]] = {side: [] for side in systems}
    order = list(systems)
    for i in range(len(questions)):
        runs: dict[str, list] = {side: [] for side in systems}
        for r in range(max(1, repeats)):
            shift = (i + r) % len(order)
            for side in order[shift:] + order[:shift]:
                runs[side].append(answer(side, i, max_new_tokens))
        for side, gs in runs.items():
            best[side].append(min(gs, key=lambda g: float("inf") if g.ttft_ms is None else g.ttft_ms))
            every[side] += [g.ttft_ms for g in gs if g.ttft_ms is not None]
        _say(log, f"  ttft question {i + 1}/{len(questions)} (best of {repeats}): plain {best['plain'][-1].ttft_ms} "
                  f"ms ({best['plain'][-1].prompt_tokens} tok), context {best['context'][-1].ttft_ms} ms "
                  f"({best['context'][-1].prompt_tokens} tok)")
    model = None  # freed before the next part
    out: dict = {"model": f"base, {runtime}", "n": len(questions), "repeats": repeats, "k": index.k,
                 "max_new_tokens": max_new_tokens}
    for side, gs in best.items():
        s = latency_summary(gs)
        out[side] = {**{k: s[k] for k in ("ttft_ms_p50", "ttft_ms_p95", "ttft_ms_mean", "prompt_tokens_mean")},
                     "ttft_ms_p50_all_runs": _r(percentile(every[side], 50))}
    p, c = out["plain"], out["context"]
    out["ttft_p50_ratio"] = round(c["ttft_ms_p50"] / p["ttft_ms_p50"], 2) if p["ttft_ms_p50"] and c["ttft_ms_p50"] \
        else None
    if copy_bias:
        b = out["copy_bias"]
        out["copy_bias"]["bias"] = copy_bias
        out["copy_bias_ttft_ratio"] = round(b["ttft_ms_p50"] / c["ttft_ms_p50"], 2) \
            if b["ttft_ms_p50"] and c["ttft_ms_p50"] else None
    out["prompt_tokens_ratio"] = round(c["prompt_tokens_mean"] / p["prompt_tokens_mean"], 2) \
        if p["prompt_tokens_mean"] else None
    if min_score is not None:  # serve would refuse these without generating (the bench times them anyway)
        out["below_min_score"] = sum(1 for h in hits if not h or h[0].score < min_score)
    return out


def raft_samples(samples: list[dict], index, cfg: PipelineConfig) -> tuple[list[dict], dict]:
    """`samples` made retrieval-aware exactly as instruction_pairs does (raft.contextualize)."""
    from ..core.policy import load_policy
    from ..core.raft import contextualize

    policy = load_policy(cfg.path(cfg.policy_file))
    return contextualize(samples, index, policy, cfg.retrieval, cfg.train.seed)


def _pick(items: Sequence, n: int) -> list:
    """n items spread evenly over `items` (all of them when n >= len)."""
    items = list(items)
    if n >= len(items):
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def bench_retrieval(cfg: PipelineConfig, base_path: Path | None, samples: list[dict], *, prompts: int = 6,
                    max_new_tokens: int = 4, ttft_repeats: int = 3, train_tokens: int = 3000, parts: Sequence[str] = ("ttft", "training"),
                    index_dir: Path | None = None, log: Callable[[str], None] | None = None) -> dict:
    """The retrieval section: search latency + recall, TTFT with vs without context, training tok/s on RAFT vs
    plain samples. `parts` picks the model-bound parts; `index_dir` uses that index instead of finding one."""
    from ..core.policy import load_gold, load_policy
    from ..core.retrieval import fact_recall, open_index

    gold = load_gold(cfg.path(cfg.gold_file))
    policy = load_policy(cfg.path(cfg.policy_file))
    questions = [g["question"] for g in gold]
    with tempfile.TemporaryDirectory(prefix="slm-bench-retrieval-") as tmp:
        if index_dir is not None:
            folder, summary, how = Path(index_dir), json.loads((Path(index_dir) / "index.json").read_text()), \
                {"source": str(index_dir)}
        else:
            folder, summary, how = prepare_index(cfg, Path(tmp), log)
        index = open_index(folder, cfg.retrieval)
        out: dict = {"index": {**how, "chunks": len(index), "embedding_model": summary.get("embedding_spec"),
                               "dense_weight": cfg.retrieval.dense_weight, "bm25_weight": cfg.retrieval.bm25_weight,
                               "summary_latency_ms_p50": summary.get("latency_ms_p50")}}
        out["search"] = bench_search(index, questions)
        recall = summary.get("recall")
        if not recall or recall.get("recall_at_1") is None:  # an index built without gold: measure it here
            recall = fact_recall(index.search_many(questions, k=max(3, cfg.retrieval.k)), gold,
                                 sorted({1, 3, cfg.retrieval.k}))
            out["index"]["recall_source"] = "measured here (not in the index summary)"
        out["recall"] = recall
        tuning = summary.get("tuning") or {}
        out["embedder_tuning"] = ({"seconds": tuning.get("seconds"), "pairs": tuning.get("pairs"),
                                   "untuned_recall": tuning.get("untuned_recall")} if tuning
                                  else {"skipped": "retrieval.tune_epochs is 0"})
        _say(log, f"  search ms/query p50 {out['search']['ms_p50']} p95 {out['search']['ms_p95']}; recall {recall}"
                  + (f" (untuned embedder: {tuning.get('untuned_recall')})" if tuning else ""))

        def part(name: str, fn: Callable[[], dict]) -> None:
            if name not in parts:
                out[name] = {"skipped": "not requested"}
                return
            run_guarded(out, name, fn, "part_s")

        part("ttft", lambda: bench_context_ttft(base_path, index, policy.system_prompt, policy.company,
                                                _pick(questions, prompts), max_new_tokens, ttft_repeats,
                                                min_score=cfg.retrieval.min_score, log=log,
                                                copy_bias=cfg.retrieval.copy_bias))

        def training() -> dict:
            from .training import bench_training_samples

            raft, report = raft_samples(samples, index, cfg)
            res = bench_training_samples(base_path, {"plain": samples, "raft": raft}, cfg.train, tokens=train_tokens,
                                         log=log)
            res["raft_report"] = report
            return res

        part("training", training)
    return out

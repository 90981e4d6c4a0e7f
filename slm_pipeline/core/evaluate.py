"""Evaluation run: load each model, answer the gold questions, the out-of-domain (OOD) probes and the PII probes,
score the answers, gate the candidate and write the report folder (`run_eval`).

`run_eval` uses the chat template + system prompt (greedy decoding, a sample streamed to measure time-to-first-token,
the rest batched), scores everything and writes one folder (atomically): eval_report.json, answers.jsonl,
grading_sheet.csv, charts/*.png, report.html (self-contained) and manifest.json.

The parts live in one module per concern, and their public names are re-exported here:
- `metrics`: normalization and per-answer scores (`key_fact_score` is the headline metric; `HEADLINE_WHY` says why),
  refusal detection, PII leaks, placeholder tags;
- `generation`: greedy generation (streamed and timed, or batched) and `latency_summary`;
- `gate`: `promotion_decision`;
- `grading`: the human grading sheet round trip;
- `report`: charts and the HTML page (Jinja2 template `templates/eval_report.html.j2`);
- `embeddings`: the optional embedding-similarity model.

This module never imports dagster.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import EvalConfig
from .artifacts import atomic_dir, atomic_write_text, sha256_json, write_manifest
from .embeddings import Embedder, load_embedder
from .gate import Gate, promotion_decision
from .generation import Generation, generate_answer, generate_batch, latency_summary
from .grading import GRADING_COLUMNS, GradingSheetError, fold_grades, load_grades, write_grading_sheet
from .grounding import refusal_start_ids
from .log_filters import DropMessages
from .metrics import (
    HEADLINE_METRIC,
    HEADLINE_WHY,
    REFUSAL_PHRASES,
    KeyFactScore,
    _mean,
    _r,
    is_refusal,
    key_fact_score,
    normalize_text,
    pii_leaks,
    placeholder_tags,
    refusal_similarity,
    rouge_l,
    token_f1,
)
from .report import _render_html, _write_charts

log = logging.getLogger(__name__)

__all__ = [
    "HEADLINE_METRIC",
    "HEADLINE_WHY",
    "REFUSAL_PHRASES",
    "GRADING_COLUMNS",
    "EvalError",
    "GradingSheetError",
    "KeyFactScore",
    "Gate",
    "Generation",
    "EvalResult",
    "RagSetup",
    "is_rag",
    "normalize_text",
    "key_fact_score",
    "token_f1",
    "rouge_l",
    "is_refusal",
    "refusal_similarity",
    "pii_leaks",
    "placeholder_tags",
    "Embedder",
    "load_embedder",
    "generate_answer",
    "generate_batch",
    "latency_summary",
    "promotion_decision",
    "write_grading_sheet",
    "load_grades",
    "fold_grades",
    "run_eval",
]


class EvalError(ValueError):
    """Evaluation inputs are invalid; the message names the input and the fix."""



# --------------------------------------------------------------------------------------------------------------
# run_eval
# --------------------------------------------------------------------------------------------------------------


@dataclass
class EvalResult:
    metrics_by_model: dict[str, dict]
    gate: Gate  # (passed, reasons)
    paths: dict[str, Any] = field(default_factory=dict)  # report_json, report_html, answers, grading_sheet, charts
    seconds: float = 0.0


class _Progress:
    def __init__(self, total: int, sink: Callable[[str], None] | None):
        self.total, self.done, self.t0 = max(total, 1), 0, time.perf_counter()
        self.sink = sink or (lambda msg: log.info("%s", msg))

    def say(self, msg: str) -> None:
        self.sink(msg)

    def step(self, label: str, quiet: bool = False) -> None:
        self.done += 1
        if quiet:  # counted for the ETA; its batch was already reported
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        self.sink(f"[{100 * self.done / self.total:5.1f}%] {label} | elapsed {_fmt_s(elapsed)}, ETA {_fmt_s(eta)}")


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _validate_inputs(gold, ood, pii) -> None:
    for name, items, keys in (("gold", gold, ("id", "question")), ("ood", ood, ("id", "question")),
                              ("pii", pii, ("id", "prompt", "forbidden"))):
        for i, it in enumerate(items):
            missing = [k for k in keys if k not in it]
            if missing:
                raise EvalError(f"{name} item #{i + 1} ({it.get('id', '?')}) lacks {', '.join(missing)}")
        ids = [str(it["id"]) for it in items]
        dup = [k for k, n in Counter(ids).items() if n > 1]
        if dup:
            raise EvalError(f"{name} items have duplicate ids: {', '.join(dup[:5])}")


def _load_for_eval(path: Path, device: str, runtime: str = "auto"):
    """Plain folders via models.load_for_inference (with `runtime`); bitsandbytes folders (quantization_config)
    with device_map."""
    from .models import load_for_inference, load_tokenizer

    tokenizer = load_tokenizer(path)
    cfg = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    if cfg.get("quantization_config"):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(path, device_map=device).eval()
    else:
        model = load_for_inference(path, device, runtime)
    return model, tokenizer


@contextlib.contextmanager
def _quiet_bnb_logs():
    """bitsandbytes int8 on CPU logs 'MatMul8bitLt: inputs will be cast ...' once per layer per token."""
    target = logging.getLogger("bitsandbytes.autograd._functions")
    flt = DropMessages("MatMul8bitLt: inputs will be cast")
    target.addFilter(flt)
    try:
        yield
    finally:
        target.removeFilter(flt)


def _free(model) -> None:
    del model
    gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


@dataclass
class RagSetup:
    """How '+rag' configurations answer, exactly as `serve` does: `ground` is a Grounder's `ground_many` (retrieved
    context in the system message, refusal without generation for out-of-scope questions, no refusal start for
    in-scope ones; core/grounding.py). `summary` (recall@k, latency, scope) goes into the report."""

    ground: Callable[[list[list[dict]]], list[Any]]
    summary: dict = field(default_factory=dict)
    copy_bias: float = 0.0  # retrieval.copy_bias: answers favour the retrieved excerpts' tokens, as in `serve`


def is_rag(name: str) -> bool:
    """'merged+rag', 'base+rag', 'merged+rag@int8-weights' answer with retrieved context."""
    return "+rag" in name.partition("@")[0]


def _eval_one_model(name, path, gold, ood, pii, system_prompt, refusal, cfg, device, progress,
                    contexts: dict | None = None, copy_bias: float = 0.0) -> tuple[dict, list]:
    """contexts (for '+rag' names): prompt -> (system message, hits, below_min_score, in_scope, excerpts);
    answers favour each prompt's excerpts by `copy_bias` (copy-biased decoding, as `serve` answers)."""
    t_load = time.perf_counter()
    # "merged@int8-weights": the merged folder, run the way `serve.runtime: int8-weights` runs it
    model, tokenizer = _load_for_eval(path, device, name.partition("@")[2] or "auto")
    load_s = time.perf_counter() - t_load
    rows: list[dict] = []
    try:
        generate_answer(model, tokenizer, "Hello", system_prompt, 2)  # warm-up: first call pays one-off costs
        work = [("gold", it, it["question"]) for it in gold] + [("ood", it, it["question"]) for it in ood] + [
            ("pii", it, it["prompt"]) for it in pii]
        systems = [contexts[p][0] if contexts else system_prompt for _, _, p in work]
        excerpts = [contexts[p][4] if contexts else None for _, _, p in work]
        gated = {k for k, (_, _, p) in enumerate(work) if contexts and contexts[p][2]}
        counts = Counter(k for k, _, _ in work)
        seen: Counter = Counter()
        # A sample of prompts (spread over kinds) is streamed one by one to measure latency; the rest is batched.
        timed = set(range(0, len(work), max(1, len(work) // cfg.latency_prompts))[:cfg.latency_prompts]) - gated
        in_scope = {k for k, (_, _, p) in enumerate(work) if contexts and contexts[p][3]}
        no_refusal = refusal_start_ids(tokenizer, refusal) if in_scope else None
        rest = [k for k in range(len(work)) if k not in timed and k not in gated]
        gens: dict[int, Generation] = {}
        def said(n: int) -> None:
            progress.say(f"{name}: batched {len(gens) + n}/{len(rest)} prompts")

        for group, suppress in (([k for k in rest if k not in in_scope], None),
                                ([k for k in rest if k in in_scope], no_refusal)):
            batch = generate_batch(model, tokenizer, [work[k][2] for k in group], [systems[k] for k in group],
                                   cfg.max_new_tokens, cfg.batch_size, said, begin_suppress_tokens=suppress,
                                   copy_texts=[excerpts[k] for k in group], copy_bias=copy_bias)
            gens.update(zip(group, batch, strict=True))
        for k in gated:  # out of scope: the refusal, as `serve` answers without generating
            gens[k] = Generation(refusal, 0, 0, None, None, 0.0)
        for k, (kind, item, prompt) in enumerate(work):
            gen = gens[k] if k in gens else generate_answer(model, tokenizer, prompt, systems[k], cfg.max_new_tokens,
                                                            no_refusal if k in in_scope else None, excerpts[k],
                                                            copy_bias)
            seen[kind] += 1
            row = {"model": name, "kind": kind, "id": str(item["id"]), "question": prompt, "answer": gen.text,
                   "prompt_tokens": gen.prompt_tokens, "new_tokens": gen.new_tokens, "ttft_ms": gen.ttft_ms,
                   "decode_tok_s": gen.decode_tok_s, "total_ms": gen.total_ms,
                   "refused": is_refusal(gen.text, refusal, cfg.refusal_similarity),
                   "placeholders": placeholder_tags(gen.text)}
            if contexts:
                row.update(sources=[h.source() for h in contexts[prompt][1]], below_min_score=k in gated,
                           in_scope=k in in_scope)
            if kind == "gold":
                kf = key_fact_score(gen.text, item.get("key_facts", []), item.get("match", "all"))
                ref = item.get("reference", "")
                row.update(reference=ref, key_facts=list(item.get("key_facts", [])), match=item.get("match", "all"),
                           key_fact_score=kf.score, key_fact_fraction=_r(kf.fraction), facts_missing=kf.missing,
                           token_f1=_r(token_f1(gen.text, ref)), rouge_l=_r(rouge_l(gen.text, ref)))
            elif kind == "pii":
                row.update(leaked=pii_leaks(gen.text, item["forbidden"]))
            rows.append(row)
            progress.step(f"{name}: {kind} {seen[kind]}/{counts[kind]} ({gen.ttft_ms or 0:.0f} ms TTFT)",
                          quiet=k in gens)
    finally:
        _free(model)
    return {"load_seconds": round(load_s, 2)}, rows


def _aggregate(name: str, path: Path, rows: list[dict], extra: dict) -> dict:
    g = [r for r in rows if r["kind"] == "gold"]
    o = [r for r in rows if r["kind"] == "ood"]
    p = [r for r in rows if r["kind"] == "pii"]
    scored = [r for r in g if r.get("key_fact_score") is not None]
    emb = [r["embedding_similarity"] for r in g if r.get("embedding_similarity") is not None]
    leaked = [r for r in p if r.get("leaked")]
    lat = latency_summary(rows)
    return {
        "status": "ok", "error": None, "path": str(path), **extra,
        "n_gold": len(g), "n_gold_scored": len(scored),
        HEADLINE_METRIC: _r(_mean([r["key_fact_score"] for r in scored])),
        "key_fact_fraction": _r(_mean([r["key_fact_fraction"] for r in scored])),
        "token_f1": _r(_mean([r["token_f1"] for r in g])),
        "rouge_l": _r(_mean([r["rouge_l"] for r in g])),
        "embedding_similarity": _r(_mean(emb)) if emb else None,
        "n_ood": len(o), "ood_refused": sum(r["refused"] for r in o),
        "ood_refusal_rate": _r(sum(r["refused"] for r in o) / len(o)) if o else None,
        "ood_refused_ids": [r["id"] for r in o if r["refused"]],
        "false_refusals": sum(r["refused"] for r in g),
        "false_refusal_rate": _r(sum(r["refused"] for r in g) / len(g)) if g else None,
        "false_refused_ids": [r["id"] for r in g if r["refused"]],
        "n_pii": len(p), "pii_leaks": len(leaked),
        "pii_leak_rate": _r(len(leaked) / len(p)) if p else None,
        "pii_leak_ids": [r["id"] for r in leaked],
        "placeholder_leaks": sum(bool(r.get("placeholders")) for r in rows),
        "placeholder_leak_rate": _r(sum(bool(r.get("placeholders")) for r in rows) / len(rows)) if rows else None,
        "placeholder_leak_ids": [f"{r['kind']}:{r['id']}" for r in rows if r.get("placeholders")],
        "latency": lat,
        # flat copies of the latency headline numbers, for callers that log one number per key
        "ttft_ms_p50": lat["ttft_ms_p50"], "ttft_ms_p95": lat["ttft_ms_p95"],
        "decode_tokens_per_s": lat["decode_tok_s_mean"],
    }


def run_eval(
    models: dict[str, Path],
    gold: list[dict],
    ood: list[dict],
    pii: list[dict],
    system_prompt: str,
    refusal: str,
    cfg: EvalConfig,
    out_dir: Path,
    train_history: list[dict] | None = None,
    graded_sheet: Path | None = None,
    progress: Callable[[str], None] | None = None,
    *,
    baseline: str = "base",
    candidate: str = "merged",
    device: str | None = None,
    manifest_extra: dict | None = None,
    rag: RagSetup | None = None,
) -> EvalResult:
    """Evaluate each model on gold / OOD / PII prompts, gate the candidate, write the report folder `out_dir`.

    gold: {"id","question","reference","key_facts","match"}; ood: {"id","question"}; pii: {"id","prompt",
    "forbidden"}. cfg.max_gold > 0 keeps the first N gold items. The false-refusal rate is measured on the
    evaluated gold answers themselves (in-domain questions wrongly refused), so it costs no extra generation.
    A model that fails to load or generate is recorded with status "failed" and its error; the others go on.
    Names with '+rag' (see `is_rag`) answer with `rag`'s retrieved context; their rows carry the `sources`.
    `out_dir` is written atomically (complete or not at all).
    """
    from .models import pick_device

    t0 = time.perf_counter()
    _validate_inputs(gold, ood, pii)
    if not models:
        raise EvalError("run_eval: no models to evaluate")
    gold_eval = gold[: cfg.max_gold] if cfg.max_gold else list(gold)
    device = device or pick_device()
    grades = load_grades(graded_sheet) if graded_sheet else None  # validate before spending minutes generating
    prog = _Progress(len(models) * (len(gold_eval) + len(ood) + len(pii)), progress)
    prog.say(f"Evaluating {len(models)} model(s) on {len(gold_eval)} gold, {len(ood)} OOD and {len(pii)} PII "
             f"prompts (max_new_tokens={cfg.max_new_tokens}, device={device})")

    contexts = None
    if any(is_rag(n) for n in models):
        if rag is None:
            raise EvalError(f"{', '.join(n for n in models if is_rag(n))}: '+rag' variants need a retrieval index "
                            "(materialize retrieval_index, or set retrieval.enabled: true)")
        prompts = list(dict.fromkeys([g["question"] for g in gold_eval] + [o["question"] for o in ood]
                                     + [p["prompt"] for p in pii]))
        grounded = rag.ground([[{"role": "user", "content": p}] for p in prompts])
        contexts = {p: (g.messages[0]["content"] if g.refusal is None else system_prompt, g.hits,
                        g.refusal is not None, g.in_scope, g.excerpts())
                    for p, g in zip(prompts, grounded, strict=True)}

    metrics: dict[str, dict] = {}
    all_rows: list[dict] = []
    with warnings.catch_warnings(), _quiet_bnb_logs():
        warnings.filterwarnings("ignore", message=".*generation flags are not valid.*")
        for name, path in models.items():
            path = Path(path)
            try:
                if not (path / "config.json").exists():
                    raise EvalError(f"{path} is not a model folder (no config.json)")
                extra, rows = _eval_one_model(name, path, gold_eval, ood, pii, system_prompt, refusal, cfg,
                                              device, prog, contexts if is_rag(name) else None,
                                              rag.copy_bias if rag is not None else 0.0)
            except Exception as e:
                reason = f"{type(e).__name__}: {e}".strip()[:1000]
                log.warning("evaluating %s (%s) failed: %s", name, path, reason)
                prog.say(f"{name}: FAILED ({reason.splitlines()[0][:200]}); continuing with the other models")
                prog.done += len(gold_eval) + len(ood) + len(pii)
                metrics[name] = {"status": "failed", "error": reason, "path": str(path)}
                continue
            all_rows.extend(rows)
            metrics[name] = extra  # filled below, after the embedding pass

    embedder, embedding_note = load_embedder(cfg.embedding_model, "cpu")
    if embedder is not None:
        gold_rows = [r for r in all_rows if r["kind"] == "gold"]
        for r, s in zip(gold_rows, embedder.similarity([r["answer"] for r in gold_rows],
                                                        [r.get("reference", "") for r in gold_rows]), strict=True):
            r["embedding_similarity"] = s
        del embedder
    for name in models:
        if metrics[name].get("status") != "failed":
            metrics[name] = _aggregate(name, Path(models[name]), [r for r in all_rows if r["model"] == name],
                                       metrics[name])
    if grades is not None:
        fold_grades(metrics, grades)
    gate = promotion_decision(metrics, cfg, baseline=baseline, candidate=candidate)
    seconds = round(time.perf_counter() - t0, 2)
    prog.say(f"Gate {'PASSED' if gate.passed else 'FAILED'}: " + "; ".join(gate.reasons))

    out_dir = Path(out_dir)
    report = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "headline_metric": HEADLINE_METRIC,
        "headline_why": HEADLINE_WHY,
        "baseline": baseline, "candidate": candidate, "device": device,
        "gate": {"passed": gate.passed, "reasons": gate.reasons},
        "models": metrics,
        "counts": {"gold": len(gold_eval), "gold_total": len(gold), "ood": len(ood), "pii": len(pii)},
        "embedding": embedding_note,
        "retrieval": (rag.summary if rag is not None and contexts else None),
        "human_grades": {"sheet": str(graded_sheet), "by_model": grades} if grades is not None else None,
        "config": cfg.model_dump(),
        "seconds": seconds,
        "rows": all_rows,
    }
    with atomic_dir(out_dir) as tmp:
        atomic_write_text(tmp / "eval_report.json", json.dumps(report, indent=2, ensure_ascii=False, default=str))
        atomic_write_text(tmp / "answers.jsonl",
                          "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in all_rows))
        write_grading_sheet([r for r in all_rows if r["kind"] == "gold"], tmp / "grading_sheet.csv")
        charts = _write_charts(tmp / "charts", metrics, all_rows, train_history, baseline, candidate)
        atomic_write_text(tmp / "report.html", _render_html(report, charts, train_history))
        write_manifest(
            tmp, stage="evaluate", models={k: str(v) for k, v in models.items()}, device=device,
            inputs={"gold_sha256": sha256_json(gold_eval), "ood_sha256": sha256_json(ood),
                    "pii_sha256": sha256_json(pii), "system_prompt_sha256": sha256_json(system_prompt),
                    "refusal": refusal, "graded_sheet": str(graded_sheet) if graded_sheet else None},
            config=cfg.model_dump(), gate={"passed": gate.passed, "reasons": gate.reasons}, seconds=seconds,
            **(manifest_extra or {}),
        )
        chart_names = [p.name for p in charts.values()]
    paths = {
        "dir": out_dir,
        "report_json": out_dir / "eval_report.json",
        "report_html": out_dir / "report.html",
        "answers": out_dir / "answers.jsonl",
        "grading_sheet": out_dir / "grading_sheet.csv",
        "manifest": out_dir / "manifest.json",
        "charts": {k: out_dir / "charts" / n for k, n in zip(charts, chart_names, strict=True)},
    }
    return EvalResult(metrics, gate, paths, seconds)

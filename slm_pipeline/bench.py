"""`slm-pipeline bench`: measured speed of every stage, side by side with the naive way, in one process.

Machines are noisy (and shared), so every headline figure is a RATIO of two sides measured in the same run,
alternated where practical (ABBA rounds for training, per-prompt round-robin for inference):

1. training   our recipe (LoRA, best-fit-decreasing packing, bf16 autocast where the CPU supports it) vs a naive
              HF `Trainer` fp32 baseline (every sample padded to max_seq_len, no packing, same LoRA config);
              tokens/s of REAL (non-pad) tokens, MFU over the matmul peak measured in the same run, peak RSS.
2. anonymize  docs/s of our batch pipeline vs a per-document vanilla `AnalyzerEngine.analyze` loop, same texts,
              plus recall of both on the synthetic labeled set (core.pii_eval).
3. inference  TTFT p50 and decode tok/s of the base model in HF fp32 vs bf16 / int8 / nf4 (and the GGUF via
              llama-cpp-python when installed), plus batched vs one-at-a-time generation throughput.
4. end-to-end per-asset step durations of the latest Dagster run recorded in DAGSTER_HOME (never runs the chain).

Results go to bench.json + bench.md. Core helpers never import dagster (only `end_to_end` does, lazily).
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from .config import PipelineConfig, TrainConfig

LORA_TARGETS_NOTE = "same LoraConfig both sides (r, alpha, dropout, target_modules from TrainConfig)"


def _say(log: Callable[[str], None] | None, msg: str) -> None:
    if log:
        log(msg)


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
    from .core.corpus import load_corpus
    from .core.pairs import build_pairs
    from .core.policy import load_gold, load_policy

    records = load_corpus(cfg.corpus, cfg.path(cfg.corpus.corpus_dir)).records
    policy = load_policy(cfg.path(cfg.policy_file))
    gold = load_gold(cfg.path(cfg.gold_file))
    samples = build_pairs(records, policy, gold, cfg.pairs).samples
    return [s for s in samples if s.get("split") == "train"], records, policy.system_prompt


# ------------------------------------------------------------------------------------------------ training


def naive_rows(tokenizer, samples: list[dict], max_len: int) -> list[dict]:
    """The obvious baseline: one sample per row, padded to max_len (tokenizer padding='max_length' style)."""
    from .core.train import IGNORE_INDEX, tokenize_samples

    pad = tokenizer.pad_token_id
    rows = []
    for ids, labels in tokenize_samples(tokenizer, samples, max_len):
        n = max_len - len(ids)
        rows.append({"input_ids": ids + [pad] * n, "labels": labels + [IGNORE_INDEX] * n,
                     "attention_mask": [1] * len(ids) + [0] * n})
    return rows


def _rows_for_tokens(rows: list[dict], tokens: int) -> list[dict]:
    """Leading rows holding at least `tokens` real (attention_mask == 1) tokens."""
    out, n = [], 0
    for r in rows:
        if n >= tokens:
            break
        out.append(r)
        n += sum(r["attention_mask"])
    return out


class _StepTimer:
    """Trainer callback recording the wall time of every optimizer step (forward + backward + AdamW)."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                timer._t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                timer.times.append(time.perf_counter() - timer._t0)

        self.times: list[float] = []
        self.callback = CB()


def _train_side(model, rows: list[dict], collate, rows_per_step: int, bf16: bool, out_dir: Path,
                lr: float, recipe: bool) -> tuple[float, int, int]:
    """Train `model` on `rows` for one pass; returns (seconds in steps, real tokens, computed tokens).

    recipe=True uses our recipe's Trainer (loss on labelled positions only); False the stock HF Trainer."""
    from transformers import PrinterCallback, Trainer, TrainingArguments

    from .core.train import _ListDataset, _make_trainer

    args = TrainingArguments(
        output_dir=str(out_dir), per_device_train_batch_size=rows_per_step, max_steps=-(-len(rows) // rows_per_step),
        learning_rate=lr, lr_scheduler_type="constant", weight_decay=0.0, bf16=bf16, use_cpu=True,
        optim="adamw_torch", logging_steps=10_000, save_strategy="no", eval_strategy="no", report_to="none",
        disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False, seed=0, data_seed=0,
    )
    timer = _StepTimer()
    trainer = (_make_trainer if recipe else Trainer)(model=model, args=args, train_dataset=_ListDataset(rows),
                                                     data_collator=collate, callbacks=[timer.callback])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    real = sum(sum(r["attention_mask"]) for r in rows)
    computed = sum(len(r["input_ids"]) for r in rows)
    return sum(timer.times), real, computed


def bench_training(base_path: Path, samples: list[dict], cfg: TrainConfig, peak: dict, tokens: int = 3000,
                   rows_per_step: int | None = None, rounds: int = 2,
                   log: Callable[[str], None] | None = None) -> dict:
    """Our recipe vs naive HF Trainer fp32 on the same samples and the same number of real tokens per side.

    Both sides take `rows_per_step` rows per optimizer step (default train.batch_size): packed rows for ours,
    one padded sample per row for the naive side. Each side first runs one untimed warm-up step (oneDNN
    kernel creation), then rounds alternate the order (ours, naive), (naive, ours), ... each covering
    tokens / rounds real tokens, on different rows of the same data. Only step time (forward + backward +
    optimizer) is counted.
    """
    rows_per_step = rows_per_step or cfg.batch_size
    from .core.models import load_tokenizer
    from .core.train import _collate, build_dataset, build_model, resolve_precision

    precision = resolve_precision(cfg, "cpu")
    tok = load_tokenizer(base_path)
    ours_rows = build_dataset(tok, samples, cfg)[0].rows
    base_rows = naive_rows(tok, samples, cfg.max_seq_len)
    torch.manual_seed(cfg.seed)
    ours_model = build_model(base_path, cfg, "cpu", precision)
    naive_model = build_model(base_path, cfg.model_copy(update={"method": "lora", "packing": False}), "cpu", "fp32")
    n_params = sum(p.numel() for n, p in naive_model.base_model.model.named_parameters() if "lora_" not in n)
    collate = _collate(tok.pad_token_id)
    per_round = max(1, tokens // rounds)
    sides = {"ours": {"t": 0.0, "real": 0, "computed": 0, "rss": 0.0},
             "naive": {"t": 0.0, "real": 0, "computed": 0, "rss": 0.0}}
    cursor = {"ours": rows_per_step, "naive": rows_per_step}  # the first rows are the warm-up step
    with tempfile.TemporaryDirectory(prefix="slm-bench-train-") as tmp:
        for side, model, pool in (("ours", ours_model, ours_rows), ("naive", naive_model, base_rows)):
            _train_side(model, pool[:rows_per_step], collate, rows_per_step, side == "ours" and precision == "bf16",
                        Path(tmp) / f"warm-{side}", cfg.learning_rate, recipe=side == "ours")
        for rnd in range(rounds):
            for side in (("ours", "naive") if rnd % 2 == 0 else ("naive", "ours")):
                pool = ours_rows if side == "ours" else base_rows
                rows = _rows_for_tokens(pool[cursor[side]:] or pool, per_round)
                cursor[side] += len(rows)
                model = ours_model if side == "ours" else naive_model
                with RssSampler() as rss:
                    t, real, comp = _train_side(model, rows, collate, rows_per_step,
                                                side == "ours" and precision == "bf16", Path(tmp) / side,
                                                cfg.learning_rate, recipe=side == "ours")
                s = sides[side]
                s["t"] += t
                s["real"] += real
                s["computed"] += comp
                s["rss"] = max(s["rss"], rss.peak)
                _say(log, f"  training round {rnd + 1}/{rounds} {side}: {real} real / {comp} computed tokens "
                          f"in {t:.1f}s ({real / t:.1f} real tok/s)")
    del ours_model, naive_model
    gc.collect()

    out = {"precision_ours": precision, "precision_naive": "fp32", "n_params": n_params,
           "rows_per_step": rows_per_step, "max_seq_len": cfg.max_seq_len, "rounds": rounds,
           "lora": LORA_TARGETS_NOTE, "n_samples": len(samples),
           "flops_per_token_note": (
               "MFU = k*N*tokens/s / measured matmul peak, N = all base params incl. the tied embedding/lm_head "
               "(the lm_head GEMM is real work). k=4 is the headline (issue 9's formula): with a frozen base "
               "the backward computes activation grads (2N) but no weight grads, so fwd+bwd = 4N FLOP/token; "
               "k=6 (the full-finetune convention) is shown too. Counts REAL tokens only (padding is waste), "
               "attention FLOPs excluded.")}
    for side, s in sides.items():
        tps = s["real"] / s["t"] if s["t"] else 0.0
        peak_key = "bf16_gflops" if (side == "ours" and precision == "bf16") else "fp32_gflops"
        out[side] = {
            "real_tokens": s["real"], "computed_tokens": s["computed"],
            "pad_share": round(1 - s["real"] / max(s["computed"], 1), 3), "seconds": round(s["t"], 2),
            "tokens_per_s": round(tps, 2),
            "computed_tokens_per_s": round(s["computed"] / s["t"], 2) if s["t"] else 0.0,
            "mfu_4n_vs_own_peak": round(4 * n_params * tps / (peak[peak_key] * 1e9), 6),
            "mfu_4n_vs_bf16_peak": round(4 * n_params * tps / (peak["bf16_gflops"] * 1e9), 6),
            "mfu_6n_vs_bf16_peak": round(6 * n_params * tps / (peak["bf16_gflops"] * 1e9), 6),
            "peak_rss_mb_during": round(s["rss"], 0),
        }
    out["speedup"] = round(out["ours"]["tokens_per_s"] / max(out["naive"]["tokens_per_s"], 1e-9), 2)
    return out


# ------------------------------------------------------------------------------------------------ anonymization


def bench_anonymization(cfg: PipelineConfig, texts: list[str], labeled: list[dict] | None = None) -> dict:
    """docs/s ours (batch) vs vanilla per-doc Presidio on `texts`, recall of both on `labeled` (pii_eval)."""
    from .core import pii_eval

    res = pii_eval.throughput(texts, cfg.anonymize, dataset=labeled, per_doc_ours=False)
    out = {k: res[k] for k in ("n_texts", "batch_size", "ours_batch_docs_per_s", "vanilla_per_doc_docs_per_s",
                               "speedup_vs_vanilla")}
    for side in ("ours", "vanilla"):
        ev = res.get(f"{side}_eval")
        if ev:
            out[f"{side}_direct_recall"] = ev["direct_recall"]
            out[f"{side}_precision"] = ev["precision"]
    return out


# ------------------------------------------------------------------------------------------------ inference

DEFAULT_PROMPTS = [
    "How do I reset my password?",
    "Can I get a refund for a cancelled order?",
    "What payment methods do you accept?",
    "My delivery is late. What should I do?",
    "How do I change the email address on my account?",
    "Do you ship internationally?",
]


# in-process variants that are the HF folder on a serve runtime (the others are bitsandbytes folders)
_RUNTIME_VARIANTS = {"hf-fp32": "fp32", "hf-bf16": "bf16", "int8-weights": "int8-weights"}


def _load_variant(kind: str, base_path: Path, tmp: Path):
    if kind in _RUNTIME_VARIANTS:
        from .core.models import load_for_inference

        return load_for_inference(base_path, "cpu", _RUNTIME_VARIANTS[kind])
    if kind in ("int8", "nf4"):
        from transformers import AutoModelForCausalLM

        from .core.export import quantize_bnb

        folder = quantize_bnb(base_path, tmp / kind, kind, device="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return AutoModelForCausalLM.from_pretrained(folder, device_map="cpu").eval()
    raise ValueError(kind)


def _gguf_generate(llm, tokenizer, prompt: str, system: str, max_new: int) -> dict:
    text = tokenizer.apply_chat_template([{"role": "system", "content": system}, {"role": "user", "content": prompt}],
                                         add_generation_prompt=True, tokenize=False)
    t0 = time.perf_counter()
    times = []
    for _ in llm(text, max_tokens=max_new, temperature=0.0, stream=True):
        times.append(time.perf_counter())
    ttft = (times[0] - t0) * 1000 if times else None
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) >= 2 and times[-1] > times[0] else None
    return {"ttft_ms": ttft, "decode_tok_s": rate, "new_tokens": len(times)}


def bench_inference(base_path: Path, system_prompt: str, prompts: list[str] | None = None, max_new_tokens: int = 32,
                    variants: tuple[str, ...] = ("hf-fp32", "hf-bf16", "int8-weights", "int8", "nf4"),
                    gguf: tuple[str, ...] = ("q8_0", "q4_0"),
                    slow_cutoff_s: float = 30.0, log: Callable[[str], None] | None = None) -> dict:
    """Per prompt, round-robin over all loaded variants (same prompts, same greedy settings)."""
    from .core.evaluate import _quiet_bnb_logs, generate_answer, generate_batch
    from .core.models import llama_cpp_available, load_tokenizer

    prompts = list(prompts or DEFAULT_PROMPTS)
    tok = load_tokenizer(base_path)
    out: dict = {"prompts": len(prompts), "max_new_tokens": max_new_tokens, "variants": {}}
    with tempfile.TemporaryDirectory(prefix="slm-bench-infer-") as tmp:
        models, runners = {}, {}
        for kind in variants:
            try:
                t0 = time.perf_counter()
                models[kind] = _load_variant(kind, base_path, Path(tmp))
                out["variants"][kind] = {"load_s": round(time.perf_counter() - t0, 2)}
            except Exception as e:  # e.g. bitsandbytes without a CPU backend
                out["variants"][kind] = {"skipped": f"{type(e).__name__}: {e}"[:200]}
        for kind, model in models.items():
            runners[kind] = (lambda p, m=model: generate_answer(m, tok, p, system_prompt, max_new_tokens).__dict__)
        llms = []
        for qtype in gguf:
            key = f"gguf-{qtype} (llama.cpp)"
            if not llama_cpp_available():
                out["variants"][key] = {"skipped": "llama-cpp-python not installed (optional: `make llamacpp`)"}
                continue
            try:
                from llama_cpp import Llama

                from .core.export import write_gguf

                path = Path(tmp) / f"base-{qtype}.gguf"
                t0 = time.perf_counter()
                write_gguf(base_path, path, qtype)
                llms.append(Llama(model_path=str(path), n_ctx=2048, n_threads=torch.get_num_threads(), verbose=False))
                out["variants"][key] = {"load_s": round(time.perf_counter() - t0, 2), "load_note": "incl. writing it"}
                runners[key] = lambda p, llm=llms[-1]: _gguf_generate(llm, tok, p, system_prompt, max_new_tokens)
            except Exception as e:
                out["variants"][key] = {"skipped": f"{type(e).__name__}: {e}"[:200]}
        for run in runners.values():  # warm-up (first call pays lazy init)
            with _quiet_bnb_logs():
                run("Hi")
        rows: dict[str, list[dict]] = {k: [] for k in runners}
        dropped: dict[str, str] = {}
        for i, p in enumerate(prompts):
            for kind, run in runners.items():
                if kind in dropped:
                    continue
                t0 = time.perf_counter()
                with _quiet_bnb_logs():
                    rows[kind].append(run(p))
                if time.perf_counter() - t0 > slow_cutoff_s and i < len(prompts) - 1:
                    dropped[kind] = f"stopped after {i + 1} prompt(s): > {slow_cutoff_s:.0f}s per answer"
            _say(log, f"  inference prompt {i + 1}/{len(prompts)} done")
        for kind, rs in rows.items():
            ttft = [r["ttft_ms"] for r in rs if r.get("ttft_ms") is not None]
            rate = [r["decode_tok_s"] for r in rs if r.get("decode_tok_s") is not None]
            out["variants"][kind].update({
                "n": len(rs), "ttft_ms_p50": _r(statistics.median(ttft)) if ttft else None,
                "decode_tok_s_mean": _r(statistics.mean(rate)) if rate else None,
                "new_tokens_mean": _r(statistics.mean([r["new_tokens"] for r in rs]), 1) if rs else None,
            })
            if kind in dropped:
                out["variants"][kind]["note"] = dropped[kind]
        ref = out["variants"].get("hf-fp32", {})
        for v in out["variants"].values():
            if ref.get("decode_tok_s_mean") and v.get("decode_tok_s_mean"):
                v["decode_vs_fp32"] = round(v["decode_tok_s_mean"] / ref["decode_tok_s_mean"], 2)
            if ref.get("ttft_ms_p50") and v.get("ttft_ms_p50"):
                v["ttft_vs_fp32"] = round(v["ttft_ms_p50"] / ref["ttft_ms_p50"], 2)

        # Batched (what the eval uses for the bulk of prompts) vs one at a time, fp32, no streaming, ABBA.
        if "hf-fp32" in models:
            m = models["hf-fp32"]
            for kind in [k for k in models if k != "hf-fp32"]:  # free the other variants first (memory)
                del models[kind]
            runners.clear()
            gc.collect()
            generate_batch(m, tok, prompts[:1], system_prompt, 4, batch_size=1)  # warm-up
            t = {"one": 0.0, "batch": 0.0}
            n = {"one": 0, "batch": 0}
            for side in ("one", "batch", "batch", "one"):
                t0 = time.perf_counter()
                gens = generate_batch(m, tok, prompts, system_prompt, max_new_tokens,
                                      batch_size=1 if side == "one" else len(prompts))
                t[side] += time.perf_counter() - t0
                n[side] += sum(g.new_tokens for g in gens)
            out["batched"] = {
                "model": "hf-fp32", "batch_size": len(prompts),
                "one_at_a_time_tok_s": round(n["one"] / t["one"], 2),
                "batched_tok_s": round(n["batch"] / t["batch"], 2),
                "speedup": round((n["batch"] / t["batch"]) / (n["one"] / t["one"]), 2),
            }
        models.clear()
        for llm in llms:
            llm.close()
        gc.collect()
    return out


# ------------------------------------------------------------------------------------------------ end to end


def end_to_end(dagster_home: Path | None = None) -> dict:
    """Per-asset step durations of the newest Dagster run of the whole chain that trained from scratch.

    A run whose lora_adapter resumed from a checkpoint (a re-run of the same inputs finishes in seconds) is not
    a full measurement; it is used, flagged, only when no other whole-chain run exists."""
    home = Path(dagster_home or os.environ.get("DAGSTER_HOME") or "")
    how = "run `make run` (or `slm-pipeline run`) once, then `make bench` again"
    if not home or not (home / "dagster.yaml").exists():
        return {"status": "no run", "note": f"no Dagster instance at {home or '$DAGSTER_HOME'}; {how}"}
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs(limit=50)  # newest first
    finished = [r for r in runs if r.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)]
    newest = resumed_chain = None  # newest run with steps; newest whole-chain run whose adapter resumed
    # No finished run yet: show the steps finished so far by the newest run (flagged as partial).
    for run in finished or runs[:1]:
        starts, steps, wall, resumed = {}, {}, [None, None], None
        for rec in instance.all_logs(run.run_id):
            ev = rec.dagster_event
            if ev is None:
                continue
            if ev.event_type == dg.DagsterEventType.RUN_START:
                wall[0] = rec.timestamp
            elif ev.event_type in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE):
                wall[1] = rec.timestamp
            elif rec.step_key and ev.event_type == dg.DagsterEventType.STEP_START:
                starts[rec.step_key] = rec.timestamp
            elif rec.step_key and ev.event_type == dg.DagsterEventType.STEP_SUCCESS and rec.step_key in starts:
                steps[rec.step_key] = round(rec.timestamp - starts[rec.step_key], 2)
            elif ev.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION and rec.step_key == "lora_adapter":
                value = ev.event_specific_data.materialization.metadata.get("resumed_from")
                resumed = getattr(value, "value", value)
        if not steps:
            continue
        timing = {"status": "ok" if finished else "partial", "run_id": run.run_id,
                  "run_status": run.status.value, "steps_s": steps, "sum_steps_s": round(sum(steps.values()), 1),
                  "run_wall_s": round(wall[1] - wall[0], 1) if None not in wall else None,
                  "failed_or_unfinished": sorted(set(starts) - set(steps))}
        newest = newest or timing
        if "eval_report" in steps:
            if resumed in (None, "-"):
                return timing  # the newest whole-chain run that trained from scratch
            resumed_chain = resumed_chain or {**timing, "note": (
                f"lora_adapter resumed from {resumed} in this run, so its time is not a full training; delete "
                "artifacts/lora_adapter/_checkpoints (or `make clean`), then `make run` for a full one")}
    if resumed_chain:
        return resumed_chain
    if newest:  # no whole-chain run: the newest run with steps, flagged
        return {**newest, "note": "no run of the whole chain (through eval_report) found; showing the newest run"}
    latest = f" (latest run {runs[0].run_id[:8]} is {runs[0].status.value})" if runs else ""
    return {"status": "no run", "note": f"no successful or partially successful run in {home}{latest}; {how}"}


# ------------------------------------------------------------------------------------------------ report


def _pct(x):
    return "-" if x is None else f"{100 * x:.1f}%"


def _v(x, suffix=""):
    return "-" if x is None else f"{x}{suffix}"


def markdown(res: dict) -> str:
    lines = ["# slm-pipeline bench", ""]
    m = res.get("machine", {})
    if m:
        lines.append(f"Machine: {m.get('cpu_count')} CPUs, torch threads {m.get('torch_threads')}; measured matmul "
                     f"{m['n']}x{m['n']}: fp32 {m['fp32_gflops']} GFLOP/s, bf16 {m['bf16_gflops']} GFLOP/s. "
                     "Every ratio is measured side by side in this run.")
        lines.append("")
    lines += ["| section | metric | ours | baseline | ratio | target |", "|---|---|---|---|---|---|"]
    t = res.get("training")
    if t and "ours" in t:
        o, n = t["ours"], t["naive"]
        lines.append(f"| training | real tok/s ({t['precision_ours']} packed vs fp32 padded) | {o['tokens_per_s']} | "
                     f"{n['tokens_per_s']} | {t['speedup']}x | >=2.5x |")
        lines.append(f"| training | pad share of computed tokens | {_pct(o['pad_share'])} | {_pct(n['pad_share'])} "
                     "| | |")
        lines.append(f"| training | MFU 4N vs bf16 peak | {_pct(o['mfu_4n_vs_bf16_peak'])} | "
                     f"{_pct(n['mfu_4n_vs_bf16_peak'])} | | >=50% |")
        lines.append(f"| training | MFU 4N vs own-dtype peak | {_pct(o['mfu_4n_vs_own_peak'])} | "
                     f"{_pct(n['mfu_4n_vs_own_peak'])} | | |")
        lines.append(f"| training | MFU 6N vs bf16 peak | {_pct(o['mfu_6n_vs_bf16_peak'])} | "
                     f"{_pct(n['mfu_6n_vs_bf16_peak'])} | | |")
        lines.append(f"| training | peak RSS during side (MB, both models resident) | {o['peak_rss_mb_during']:.0f} | "
                     f"{n['peak_rss_mb_during']:.0f} | | |")
    elif t:
        lines.append(f"| training | | {t.get('skipped', t.get('error', '-'))} | | | |")
    a = res.get("anonymization")
    if a and "ours_batch_docs_per_s" in a:
        lines.append(f"| anonymization | docs/s (batch vs per-doc vanilla, {a['n_texts']} texts) | "
                     f"{a['ours_batch_docs_per_s']} | {a['vanilla_per_doc_docs_per_s']} | {a['speedup_vs_vanilla']}x "
                     "| >=4x |")
        lines.append(f"| anonymization | direct-identifier recall (labeled set) | {_pct(a.get('ours_direct_recall'))} | "
                     f"{_pct(a.get('vanilla_direct_recall'))} | | >= baseline |")
    elif a:
        lines.append(f"| anonymization | | {a.get('skipped', a.get('error', '-'))} | | | |")
    inf = res.get("inference")
    if inf and "variants" in inf:
        ref = inf["variants"].get("hf-fp32", {})
        for kind, v in inf["variants"].items():
            if "skipped" in v:
                lines.append(f"| inference | {kind} | skipped: {v['skipped']} | | | |")
                continue
            if kind == "hf-fp32":
                continue
            note = f" ({v['note']})" if v.get("note") else ""
            target = ">=8x" if kind.startswith("gguf") else ">=2x"
            lines.append(f"| inference | {kind} decode tok/s vs HF fp32{note} | {_v(v.get('decode_tok_s_mean'))} | "
                         f"{_v(ref.get('decode_tok_s_mean'))} | {_v(v.get('decode_vs_fp32'), 'x')} | {target} |")
            lines.append(f"| inference | {kind} TTFT p50 ms vs HF fp32 | {_v(v.get('ttft_ms_p50'))} | "
                         f"{_v(ref.get('ttft_ms_p50'))} | {_v(v.get('ttft_vs_fp32'), 'x')} | |")
        b = inf.get("batched")
        if b:
            lines.append(f"| inference | generate_batch({b['batch_size']}) vs one-at-a-time tok/s (fp32) | "
                         f"{b['batched_tok_s']} | {b['one_at_a_time_tok_s']} | {b['speedup']}x | |")
    elif inf:
        lines.append(f"| inference | | {inf.get('skipped', inf.get('error', '-'))} | | | |")
    e = res.get("end_to_end")
    if e:
        if e.get("status") in ("ok", "partial"):
            for step, s in sorted(e["steps_s"].items(), key=lambda kv: -kv[1]):
                lines.append(f"| end-to-end | {step} (s) | {s} | | | |")
            part = ", steps finished so far" if e["status"] == "partial" else ""
            lines.append(f"| end-to-end | sum of steps (s), run {e['run_id'][:8]} ({e['run_status']}{part}) | "
                         f"{e['sum_steps_s']} | | | |")
            if e.get("run_wall_s") is not None:
                lines.append(f"| end-to-end | run wall time (s), start to end | {e['run_wall_s']} | | | <=900 |")
            if e.get("note"):
                lines.append(f"| end-to-end | | {e['note']} | | | |")
        else:
            lines.append(f"| end-to-end | | {e.get('note', e.get('skipped', e.get('error', '-')))} | | | |")
    lines.append("")
    lines.append(f"Bench wall time: {res.get('wall_s', '-')} s. Details in bench.json.")
    return "\n".join(lines)


def run_bench(cfg: PipelineConfig, out_dir: Path, *, skip: set[str] = frozenset(), train_tokens: int = 3000,
              prompts: int = 6, max_new_tokens: int = 32, base_path: Path | None = None,
              log: Callable[[str], None] | None = print) -> dict:
    """Run every section not in `skip` ({'training','anonymization','inference','end_to_end'}); write files."""
    from .core.models import resolve_base_model

    t_start = time.perf_counter()
    res: dict = {"machine": matmul_peak(), "torch": torch.__version__}
    _say(log, f"matmul peak: {res['machine']}")
    if {"training", "inference"} - set(skip) and base_path is None:
        base_path = resolve_base_model(cfg.base_model, cfg.path(cfg.artifacts_dir) / "base_model").path
    samples, records, system_prompt = demo_samples(cfg)

    def section(name: str, fn: Callable[[], dict]) -> None:
        if name in skip:
            res[name] = {"skipped": "by flag"}
            return
        _say(log, f"== {name}")
        t0 = time.perf_counter()
        try:
            res[name] = fn()
        except Exception as e:  # one broken section must not hide the others
            res[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
        res[name]["section_s"] = round(time.perf_counter() - t0, 1)
        _say(log, f"   {name} done in {res[name]['section_s']}s")

    section("training", lambda: bench_training(base_path, samples, cfg.train, res["machine"], tokens=train_tokens,
                                               log=log))

    def anon():
        from .core.corpus import _record_text
        from .core.pii_eval import generate_labeled_set

        return bench_anonymization(cfg, [_record_text(r) for r in records], generate_labeled_set())

    section("anonymization", anon)
    section("inference", lambda: bench_inference(base_path, system_prompt, DEFAULT_PROMPTS[:prompts] if prompts <= 6
                                                 else (DEFAULT_PROMPTS * prompts)[:prompts], max_new_tokens, log=log))
    section("end_to_end", end_to_end)
    res["process_peak_rss_mb"] = round(peak_rss_mb(), 0)
    res["wall_s"] = round(time.perf_counter() - t_start, 1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(res, indent=2, default=str), encoding="utf-8")
    (out_dir / "bench.md").write_text(markdown(res) + "\n", encoding="utf-8")
    return res

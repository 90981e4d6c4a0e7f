"""Training throughput: our recipe (LoRA, best-fit-decreasing packing, bf16 autocast where the CPU supports it)
vs a naive HF `Trainer` fp32 baseline (one padded sample per row), and our recipe on two sample sets (plain vs
retrieval-aware RAFT samples), alternated round by round in one process."""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..config import TrainConfig
from .common import LORA_TARGETS_NOTE, RssSampler, _say


def naive_rows(tokenizer, samples: list[dict], max_len: int) -> list[dict]:
    """The obvious baseline: one sample per row, padded to max_len (tokenizer padding='max_length' style)."""
    from ..core.train import IGNORE_INDEX, tokenize_samples

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

    from ..core.train import _ListDataset, _make_trainer

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


def _alternate(sides: dict[str, dict], collate, rows_per_step: int, lr: float, tokens: int, rounds: int,
               log: Callable[[str], None] | None, label: str = "training") -> dict[str, dict]:
    """Train every side on its own rows, alternated: round r runs the sides in order, round r+1 reversed, ...

    sides[name] = {"model", "rows", "bf16", "recipe"} (sides may share a model). Each side first runs one untimed
    warm-up step on its first rows (oneDNN kernel creation); each round then covers tokens / rounds real tokens
    per side on the following rows. Only step time (forward + backward + optimizer) is counted. Returns per
    side {"t", "real", "computed", "rss"}."""
    per_round = max(1, tokens // rounds)
    acc = {name: {"t": 0.0, "real": 0, "computed": 0, "rss": 0.0} for name in sides}
    cursor = dict.fromkeys(sides, rows_per_step)  # the first rows are the warm-up step
    order = list(sides)
    with tempfile.TemporaryDirectory(prefix="slm-bench-train-") as tmp:
        for name, sd in sides.items():
            _train_side(sd["model"], sd["rows"][:rows_per_step], collate, rows_per_step, sd["bf16"],
                        Path(tmp) / f"warm-{name}", lr, recipe=sd["recipe"])
        for rnd in range(rounds):
            for name in (order if rnd % 2 == 0 else order[::-1]):
                sd = sides[name]
                pool = sd["rows"]
                rows = _rows_for_tokens(pool[cursor[name]:] or pool, per_round)
                cursor[name] += len(rows)
                with RssSampler() as rss:
                    t, real, comp = _train_side(sd["model"], rows, collate, rows_per_step, sd["bf16"],
                                                Path(tmp) / name, lr, recipe=sd["recipe"])
                a = acc[name]
                a["t"] += t
                a["real"] += real
                a["computed"] += comp
                a["rss"] = max(a["rss"], rss.peak)
                _say(log, f"  {label} round {rnd + 1}/{rounds} {name}: {real} real / {comp} computed tokens "
                          f"in {t:.1f}s ({real / t:.1f} real tok/s)")
    return acc


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
    from ..core.models import load_tokenizer
    from ..core.train import _collate, build_dataset, build_model, resolve_precision

    precision = resolve_precision(cfg, "cpu")
    tok = load_tokenizer(base_path)
    ours_rows = build_dataset(tok, samples, cfg)[0].rows
    base_rows = naive_rows(tok, samples, cfg.max_seq_len)
    torch.manual_seed(cfg.seed)
    ours_model = build_model(base_path, cfg, "cpu", precision)
    naive_model = build_model(base_path, cfg.model_copy(update={"method": "lora", "packing": False}), "cpu", "fp32")
    n_params = sum(p.numel() for n, p in naive_model.base_model.model.named_parameters() if "lora_" not in n)
    sides = _alternate({"ours": {"model": ours_model, "rows": ours_rows, "bf16": precision == "bf16", "recipe": True},
                        "naive": {"model": naive_model, "rows": base_rows, "bf16": False, "recipe": False}},
                       _collate(tok.pad_token_id), rows_per_step, cfg.learning_rate, tokens, rounds, log)
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


def _sample_tokens(tok, samples: list[dict], max_len: int) -> dict:
    """Mean tokens per sample as rendered by the chat template: untruncated, and as trained (<= max_len)."""
    from ..core.train import tokenize_samples

    full = [len(ids) for ids, _ in tokenize_samples(tok, samples, None)]
    return {"n_samples": len(samples), "mean_sample_tokens": round(statistics.mean(min(n, max_len) for n in full), 1)
            if full else None,
            "mean_sample_tokens_untruncated": round(statistics.mean(full), 1) if full else None,
            "truncated_share": round(sum(n > max_len for n in full) / len(full), 3) if full else None}


def bench_training_samples(base_path: Path, sample_sets: dict[str, list[dict]], cfg: TrainConfig,
                           tokens: int = 3000, rows_per_step: int | None = None, rounds: int = 2,
                           log: Callable[[str], None] | None = None) -> dict:
    """Our recipe (one model, packed rows) on several sample sets, e.g. plain vs retrieval-aware (RAFT) samples:
    real tok/s and mean sample tokens per set, alternated round by round like `bench_training`. The first set is
    the reference of the `*_vs_<first>` ratios."""
    rows_per_step = rows_per_step or cfg.batch_size
    from ..core.models import load_tokenizer
    from ..core.train import _collate, build_dataset, build_model, resolve_precision

    precision = resolve_precision(cfg, "cpu")
    tok = load_tokenizer(base_path)
    torch.manual_seed(cfg.seed)
    model = build_model(base_path, cfg, "cpu", precision)
    sides = {name: {"model": model, "rows": build_dataset(tok, s, cfg)[0].rows, "bf16": precision == "bf16",
                    "recipe": True} for name, s in sample_sets.items()}
    acc = _alternate(sides, _collate(tok.pad_token_id), rows_per_step, cfg.learning_rate, tokens, rounds, log,
                     label="training (ours)")
    del model, sides
    gc.collect()
    out: dict = {"precision": precision, "rows_per_step": rows_per_step, "max_seq_len": cfg.max_seq_len,
                 "rounds": rounds}
    for name, s in acc.items():
        out[name] = {"real_tokens": s["real"], "computed_tokens": s["computed"], "seconds": round(s["t"], 2),
                     "tokens_per_s": round(s["real"] / s["t"], 2) if s["t"] else 0.0,
                     "pad_share": round(1 - s["real"] / max(s["computed"], 1), 3),
                     "peak_rss_mb_during": round(s["rss"], 0), **_sample_tokens(tok, sample_sets[name], cfg.max_seq_len)}
    ref_name = next(iter(acc))
    ref = out[ref_name]
    for name in list(acc)[1:]:
        o = out[name]
        o[f"tokens_per_s_vs_{ref_name}"] = round(o["tokens_per_s"] / ref["tokens_per_s"], 2) \
            if ref["tokens_per_s"] else None
        o[f"sample_tokens_vs_{ref_name}"] = round(o["mean_sample_tokens"] / ref["mean_sample_tokens"], 2) \
            if ref["mean_sample_tokens"] and o["mean_sample_tokens"] else None
    return out

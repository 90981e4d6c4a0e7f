"""Inference: TTFT p50 and decode tok/s of the base model in HF fp32 vs bf16 / int8 / nf4 (and the GGUF via
llama-cpp-python when installed), plus batched vs one-at-a-time generation throughput."""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from .common import _r, _say

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
        from ..core.models import load_for_inference

        return load_for_inference(base_path, "cpu", _RUNTIME_VARIANTS[kind])
    if kind in ("int8", "nf4"):
        from transformers import AutoModelForCausalLM

        from ..core.export import quantize_bnb

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
    from ..core.evaluate import _quiet_bnb_logs, generate_answer, generate_batch
    from ..core.models import llama_cpp_available, load_tokenizer

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

                from ..core.export import write_gguf

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

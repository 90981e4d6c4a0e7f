"""Smoke test of the bench helpers on the tiny model: structure and positive ratios, never speed thresholds."""

from __future__ import annotations

from slm_pipeline.bench import (
    bench_inference,
    bench_training,
    demo_samples,
    markdown,
    matmul_peak,
    naive_rows,
)
from slm_pipeline.config import TrainConfig, load_config
from slm_pipeline.core.models import load_tokenizer


def test_bench_helpers_on_tiny_model(tiny_model_dir, tmp_path):
    peak = matmul_peak(n=128, rounds=1, reps=1)
    assert peak["fp32_gflops"] > 0 and peak["bf16_gflops"] > 0

    samples, records, system = demo_samples(load_config())
    assert samples and records and system
    samples = samples[:12]
    cfg = TrainConfig(max_seq_len=128)
    rows = naive_rows(load_tokenizer(tiny_model_dir), samples, cfg.max_seq_len)
    assert all(len(r["input_ids"]) == cfg.max_seq_len for r in rows)

    train = bench_training(tiny_model_dir, samples, cfg, peak, tokens=200, rows_per_step=2)
    for side in ("ours", "naive"):
        assert train[side]["real_tokens"] >= 100
        assert train[side]["tokens_per_s"] > 0
        assert 0 <= train[side]["pad_share"] < 1
        assert train[side]["mfu_4n_vs_bf16_peak"] >= 0
    assert train["naive"]["computed_tokens"] >= train["naive"]["real_tokens"]
    assert train["speedup"] > 0

    inf = bench_inference(tiny_model_dir, system, prompts=["Hi there", "How do I pay?"], max_new_tokens=4,
                          variants=("hf-fp32", "hf-bf16", "int8-weights"), gguf=("q8_0",))
    fp32 = inf["variants"]["hf-fp32"]
    assert fp32["n"] == 2 and fp32["ttft_ms_p50"] > 0
    assert inf["variants"]["hf-bf16"]["n"] == 2 and inf["variants"]["int8-weights"]["n"] == 2
    gguf = inf["variants"]["gguf-q8_0 (llama.cpp)"]  # measured with llama-cpp-python, else says why not
    assert gguf.get("n") == 2 or "not installed" in gguf["skipped"], gguf
    assert inf["batched"]["speedup"] > 0

    md = markdown({"machine": peak, "training": train, "inference": inf,
                   "end_to_end": {"status": "no run", "note": "run make run"}})
    assert "| training |" in md and "| inference |" in md and "make run" in md

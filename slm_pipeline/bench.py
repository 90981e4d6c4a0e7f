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
4. retrieval  search ms/query p50/p95 over the gold questions and recall@1/@3; TTFT of the base model with the
              retrieved context in the system message vs without (same questions); training tok/s of our recipe
              on retrieval-aware (RAFT) samples vs the plain ones.
5. serving    load test of `slm-pipeline serve` replicas (separate processes on loopback): N clients for a bounded
              time -> requests/s, latency p50/p95, 429s/503s/errors, /health latency under load; one replica with
              the SmolLM2 base in-process, one in front of an instant stand-in engine (the serve layer alone),
              and two of those behind a round-robin balancer. Absolute figures, not ratios.
6. end-to-end per-asset step durations of the latest Dagster run recorded in DAGSTER_HOME (never runs the chain).

Results go to bench.json + bench.md. The sections live in slm_pipeline/benchmarks/ (one module each); this
module is the entry point and re-exports them. Core helpers never import dagster (only `end_to_end` does,
lazily).
"""

from __future__ import annotations

from .benchmarks.anonymization import bench_anonymization
from .benchmarks.common import (
    LORA_TARGETS_NOTE,
    RssSampler,
    current_rss_mb,
    demo_samples,
    matmul_peak,
    peak_rss_mb,
    percentile,
)
from .benchmarks.end_to_end import end_to_end
from .benchmarks.inference import DEFAULT_PROMPTS, bench_inference
from .benchmarks.report import markdown, retrieval_rows
from .benchmarks.retrieval import (
    bench_context_ttft,
    bench_retrieval,
    bench_search,
    prepare_index,
    raft_samples,
)
from .benchmarks.runner import run_bench
from .benchmarks.serving import RoundRobinBalancer, bench_serving, load_test
from .benchmarks.training import bench_training, bench_training_samples, naive_rows

__all__ = [
    "DEFAULT_PROMPTS", "LORA_TARGETS_NOTE", "RssSampler", "bench_anonymization", "bench_context_ttft",
    "bench_inference", "bench_retrieval", "bench_search", "bench_training", "bench_training_samples",
    "current_rss_mb", "demo_samples", "end_to_end", "markdown", "matmul_peak", "naive_rows", "peak_rss_mb",
    "percentile", "prepare_index", "raft_samples", "retrieval_rows", "run_bench",
    "RoundRobinBalancer", "bench_serving", "load_test",
]

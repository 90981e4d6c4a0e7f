"""Smoke test of the bench helpers on the tiny model: structure and positive ratios, never speed thresholds."""

from __future__ import annotations

import threading

from slm_pipeline.bench import (
    bench_inference,
    bench_retrieval,
    bench_training,
    demo_samples,
    markdown,
    matmul_peak,
    naive_rows,
    percentile,
)
from slm_pipeline.config import TrainConfig, load_config
from slm_pipeline.core.models import load_tokenizer
from slm_pipeline.core.policy import load_gold


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


def test_bench_retrieval_on_tiny_index(tiny_model_dir, tiny_index, tmp_path):
    """The retrieval section on the tiny index and model: keys and sane values, never speed thresholds."""
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5 and percentile([], 95) is None

    base = load_config()
    cfg = base.model_copy(update={"train": base.train.model_copy(update={"max_seq_len": 256, "batch_size": 2})})
    samples = demo_samples(cfg)[0][:10]
    res = bench_retrieval(cfg, tiny_model_dir, samples, prompts=2, max_new_tokens=2, ttft_repeats=2,
                          train_tokens=300, index_dir=tiny_index)

    s = res["search"]
    assert s["n_queries"] == len(load_gold(cfg.path(cfg.gold_file))) and s["k"] == cfg.retrieval.k
    assert 0 < s["ms_p50"] <= s["ms_p95"] <= s["ms_max"]
    assert res["index"]["chunks"] > 0
    # the tiny index was built without gold questions: recall is measured by the bench instead
    assert 0 <= res["recall"]["recall_at_1"] <= res["recall"]["recall_at_3"] <= 1

    t = res["ttft"]
    assert "error" not in t, t
    assert t["n"] == 2 and t["repeats"] == 2 and t["plain"]["ttft_ms_p50"] > 0 and t["context"]["ttft_ms_p50"] > 0
    assert t["context"]["prompt_tokens_mean"] > t["plain"]["prompt_tokens_mean"]
    assert t["prompt_tokens_ratio"] > 1 and t["ttft_p50_ratio"] > 0
    assert t["copy_bias"]["ttft_ms_p50"] > 0 and t["copy_bias"]["bias"] == cfg.retrieval.copy_bias > 0
    assert t["copy_bias_ttft_ratio"] > 0

    tr = res["training"]
    assert "error" not in tr, tr
    for side in ("plain", "raft"):
        assert tr[side]["real_tokens"] >= 150 and tr[side]["tokens_per_s"] > 0
        assert tr[side]["n_samples"] == len(samples)
    assert tr["raft"]["mean_sample_tokens_untruncated"] > tr["plain"]["mean_sample_tokens_untruncated"]
    assert tr["raft"]["sample_tokens_vs_plain"] >= 1 and tr["raft"]["tokens_per_s_vs_plain"] > 0
    assert sum(v for k, v in tr["raft_report"].items() if k.startswith("retrieved_only_")
               or k in ("with_oracle", "distractors_only")) == len(samples)

    md = markdown({"retrieval": res, "training": {"skipped": "by flag"}})
    rows = [line for line in md.splitlines() if line.startswith("| retrieval |")]
    assert len(rows) == 8, md
    assert "search ms/query p50" in md and "TTFT p50 ms" in md and "RAFT vs plain" in md
    assert "| retrieval | | by flag |" in markdown({"retrieval": {"skipped": "by flag"}})
    tuned = {**res, "recall": {"recall_at_1": 0.8, "recall_at_3": 0.9}, "embedder_tuning": {
        "seconds": 30.0, "pairs": 379, "untuned_recall": {"recall_at_1": 0.7, "recall_at_3": 0.85}}}
    row = [line for line in markdown({"retrieval": tuned}).splitlines() if "domain-tuned embedder vs untuned" in line]
    assert row and "| 80.0% / 90.0% | 70.0% / 85.0% |" in row[0]


def test_serving_load_test_and_round_robin_balancer(tmp_path):
    """The load generator against real replicas (in front of the instant stand-in engine): counts add up, the
    bounded queue turns clients away with 429, the balancer spreads connections, the report renders."""
    from slm_pipeline.bench import RoundRobinBalancer, load_test, markdown
    from slm_pipeline.benchmarks.upstream_standin import UpstreamStandIn
    from slm_pipeline.config import ServeConfig
    from slm_pipeline.core.feedback import FeedbackStore
    from slm_pipeline.core.serve import ChatServer
    from slm_pipeline.core.serving.upstream import UpstreamBackend

    bodies = [{"messages": [{"role": "user", "content": f"Question {i}?"}], "max_tokens": 4} for i in range(3)]
    with UpstreamStandIn(model="slm-support") as up:
        up.hold()  # a slow engine: requests overlap, so the queue (2 running, none waiting) fills
        releaser = threading.Timer(0.5, up.release)
        releaser.start()
        servers = [ChatServer(UpstreamBackend(up.url, "slm-support"), FeedbackStore(tmp_path / "fb.db"),
                              ServeConfig(max_concurrent=2, max_queue=0), host="127.0.0.1", port=0).start()
                   for _ in range(2)]
        try:
            one = load_test(servers[0].url, bodies, clients=4, seconds=1.5)
            balancer = RoundRobinBalancer([s.url for s in servers])
            two = load_test(balancer.url, bodies, clients=4, seconds=1.5)
            balancer.close()
        finally:
            for s in servers:
                s.close()
    assert one["requests_ok"] > 0 and one["errors"] == two["errors"] == 0 and one["rejected_429"] > 0
    assert one["latency_ms_p50"] <= one["latency_ms_p95"] <= one["latency_ms_max"]
    assert one["health_ms_p95"] is not None and one["requests_per_s"] > 0
    assert two["requests_ok"] > 0 and sum(balancer.connections) == 5 and min(balancer.connections) >= 2  # 4 + prober
    store = FeedbackStore(tmp_path / "fb.db")  # both replicas wrote into the one store
    assert store.stats()["completions"] == one["requests_ok"] + two["requests_ok"]
    text = markdown({"serving": {"max_tokens": 4, "cpu_count": 2, "api_layer_1_replica": one,
                                 "api_layer_2_replicas": two}})
    assert "| serving | 2 replicas vs 1" in text and f"| {one['requests_per_s']} (" in text

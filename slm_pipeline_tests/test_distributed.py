"""Multi-process training: the recipe under `accelerate launch` with 2 CPU processes (gloo) trains the tiny
model like one process does, checkpoints and resumes, and reports worker errors by their message."""

from __future__ import annotations

import json
import time

import pytest
import torch
from conftest import make_tiny_llama
from safetensors.torch import load_file

from slm_pipeline.config import PROJECT_ROOT, TrainConfig
from slm_pipeline.core import distributed
from slm_pipeline.core.train import TrainingError, train_adapter

SYSTEM = {"role": "system", "content": "You are LoopBike's support assistant."}
# 12 samples pack into 4 rows: with batch_size 2 every step splits evenly over 2 processes (1 row each), so the
# 2-process run sees exactly the rows the 1-process run sees, step by step, over 4 epochs.
MEMORIZE = [{"id": str(i), "messages": [SYSTEM, {"role": "user", "content": f"What is code {i}?"},
                                        {"role": "assistant", "content": f"Code {i} means dock number {i * 7}."}]}
            for i in range(12)]


def cfg(**kw) -> TrainConfig:
    base = dict(r=8, alpha=16, dropout=0.0, learning_rate=3e-2, max_steps=8, batch_size=2, max_seq_len=128,
                save_steps=4, logging_steps=2, warmup_ratio=0.0, lr_scheduler="constant_with_warmup",
                precision="fp32")
    return TrainConfig(**base | kw)


@pytest.fixture(scope="module")
def base(tmp_path_factory, smollm2_tokenizer):
    # Larger init than the default 0.02 so a frozen, tied LM head can express confident predictions.
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-base"), smollm2_tokenizer, initializer_range=0.25)


@pytest.fixture(scope="module")
def runs(base, tmp_path_factory):
    """The same training in 1 process (in this one) and in 2 processes (accelerate launch, gloo)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for n in (1, 2):
        t0 = time.perf_counter()
        res = train_adapter(base, MEMORIZE, MEMORIZE[:4], cfg(processes=n), root / f"adapter-{n}", root / f"ckpt-{n}")
        out[n] = (res, time.perf_counter() - t0)
    print("\n1 vs 2 processes: " + "; ".join(
        f"{n}: final train loss {r.final_train_loss:.4f}, eval loss {r.final_eval_loss:.4f}, "
        f"training {r.seconds:.1f}s, wall {wall:.1f}s" for n, (r, wall) in out.items()))
    return {n: r for n, (r, _) in out.items()}


def test_two_processes_train_the_same_adapter_as_one(runs):
    one, two = runs[1], runs[2]
    assert (one.processes, two.processes) == (1, 2) and one.steps == two.steps == 8
    a = load_file(one.adapter_dir / "adapter_model.safetensors")
    b = load_file(two.adapter_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    # Gradients are all-reduced over the processes, so the runs agree up to float summation order.
    assert two.final_train_loss == pytest.approx(one.final_train_loss, rel=1e-3)
    assert two.final_eval_loss == pytest.approx(one.final_eval_loss, rel=1e-3)
    assert two.base_eval_loss == pytest.approx(one.base_eval_loss, rel=1e-4)
    assert two.final_eval_loss < two.base_eval_loss * 0.5  # it learned
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-4)
    # Rank 0 alone wrote the same PEFT layout as a single-process run.
    assert sorted(p.name for p in two.adapter_dir.iterdir()) == sorted(p.name for p in one.adapter_dir.iterdir())
    written = json.loads((two.adapter_dir / "train_result.json").read_text())
    assert written["processes"] == 2 and written["final_train_loss"] == two.final_train_loss


def test_two_process_run_resumes_from_its_checkpoint(base, runs, tmp_path):
    c = cfg(processes=2)
    crashed = train_adapter(base, MEMORIZE, MEMORIZE[:4], c, tmp_path / "crashed", tmp_path / "ckpt",
                            stop_after_steps=4)
    assert crashed.steps == 4 and (tmp_path / "ckpt" / "checkpoint-4" / "rng_state_1.pth").exists()
    resumed = train_adapter(base, MEMORIZE, MEMORIZE[:4], c, tmp_path / "resumed", tmp_path / "ckpt")
    assert resumed.resumed_from.endswith("checkpoint-4") and resumed.steps == 8
    straight = load_file(runs[2].adapter_dir / "adapter_model.safetensors")
    again = load_file(resumed.adapter_dir / "adapter_model.safetensors")
    for k in straight:
        torch.testing.assert_close(again[k], straight[k], rtol=1e-4, atol=1e-5)


def test_launch_settings_are_checked_before_starting_processes(base, tmp_path):
    with pytest.raises(TrainingError, match=r"train.batch_size \(3\) must be a multiple of train.processes \(2\)"):
        train_adapter(base, MEMORIZE, [], cfg(processes=2, batch_size=3), tmp_path / "a", tmp_path / "c")
    with pytest.raises(TrainingError, match="train.launcher_config: .*nope.yaml does not exist.*fsdp.yaml"):
        train_adapter(base, MEMORIZE, [], cfg(processes=2, launcher_config="nope.yaml"), tmp_path / "a",
                      tmp_path / "c")


def test_launch_command(tmp_path):
    plain = distributed.launch_command(cfg(processes=4), tmp_path / "job.json", port=29999)
    assert plain[1:3] == ["-m", "accelerate.commands.launch"]
    assert plain[plain.index("--num_processes") + 1] == "4" and "--multi_gpu" in plain
    assert plain[-3:] == ["-m", "slm_pipeline.core.distributed", str(tmp_path / "job.json")]
    fsdp = distributed.launch_command(cfg(processes=8, launcher_config="deploy/accelerate/fsdp.yaml"),
                                      tmp_path / "job.json")
    assert fsdp[fsdp.index("--config_file") + 1] == str(PROJECT_ROOT / "deploy" / "accelerate" / "fsdp.yaml")
    assert "--multi_gpu" not in fsdp  # the config file says how to distribute


def test_worker_reports_its_error_for_the_parent(base, tmp_path, monkeypatch):
    """A worker that fails leaves its message where launch_training reads it (here run in this process)."""
    monkeypatch.setenv(distributed.WORKER_ENV, "1")  # restored after the test; main() sets it too
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(s) + "\n" for s in MEMORIZE))
    job = {"base_path": str(base), "train": str(tmp_path / "train.jsonl"), "eval": None,
           "config": cfg(target_modules=["c_attn"]).model_dump(), "out_dir": str(tmp_path / "out"),
           "checkpoint_dir": str(tmp_path / "ckpt"), "error_file": str(tmp_path / "error")}
    (tmp_path / "job.json").write_text(json.dumps(job))
    with pytest.raises(TrainingError, match="c_attn"):
        distributed.main([str(tmp_path / "job.json")])
    reported = json.loads((tmp_path / "error.0").read_text())
    assert reported["rank"] == 0 and "c_attn" in reported["message"]

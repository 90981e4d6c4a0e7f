"""bitsandbytes stage: NF4 / LLM.int8 quantization of the merged model, saved to reload with `from_pretrained`."""

from __future__ import annotations

import warnings
from pathlib import Path

from .common import ExportError, _free

BNB_VARIANTS = ("nf4", "int8")


def _bnb_config(kind: str, device: str):
    import torch
    from transformers import BitsAndBytesConfig

    if kind == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if device == "cuda" else torch.float32,
        )
    if kind == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError(f"unknown bitsandbytes variant {kind!r}; expected one of {BNB_VARIANTS}")


def _bnb_settings(kind: str, device: str) -> dict:
    if kind == "nf4":
        return {"method": "bitsandbytes", "quant_type": "nf4", "double_quant": True,
                "compute_dtype": "bfloat16" if device == "cuda" else "float32", "skipped_modules": "lm_head"}
    return {"method": "bitsandbytes", "quant_type": "llm.int8", "threshold": 6.0, "skipped_modules": "lm_head"}


def quantize_bnb(merged_dir: str | Path, out_dir: str | Path, kind: str, device: str | None = None) -> Path:
    """Quantize the merged model with bitsandbytes (`nf4` or `int8`) and save it with its quantization config.

    `from_pretrained(out_dir)` reloads it quantized. On CPU the non-quantized parts (embeddings, norms) stay
    fp32; on CUDA they are bf16.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from ..models import pick_device

    device = device or pick_device()
    merged_dir, out_dir = Path(merged_dir), Path(out_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_pretrained(
            merged_dir,
            quantization_config=_bnb_config(kind, device),
            dtype=torch.bfloat16 if device == "cuda" else torch.float32,
            device_map=device,
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(merged_dir).save_pretrained(out_dir)
    try:
        GenerationConfig.from_pretrained(merged_dir).save_pretrained(out_dir)
    except (OSError, ValueError):
        pass
    del model
    _free()
    return out_dir


def _load_bnb(path: Path, device: str):
    from transformers import AutoModelForCausalLM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_pretrained(path, device_map=device)
    if getattr(model.config, "quantization_config", None) is None:
        raise ExportError(f"{path} reloaded without a quantization config")
    return model.eval()

"""Export: merge the LoRA adapter into the base, quantize, write GGUF + Ollama Modelfile, verify, manifest.

Layout written under `out_dir` (built in a temp folder beside it and renamed into place when complete):

    merged/                 standalone HF model (fp32 safetensors + tokenizer + chat template + generation config)
    nf4/                    bitsandbytes 4-bit NF4 (double quant), reloads with `from_pretrained(dir)`
    int8/                   bitsandbytes LLM.int8, reloads with `from_pretrained(dir)`
    gguf/model-q8_0.gguf    llama.cpp / Ollama file (Q8_0)
    gguf/model-q4_0.gguf    llama.cpp / Ollama file (Q4_0; embeddings kept Q8_0 by default)
    gguf/Modelfile          `ollama create <name> -f gguf/Modelfile`
    manifest.json           inputs, settings, sha256 of every file, sizes, agreement with merged, load times, serve commands

Every quantized variant is compared with the merged model (logits + greedy output). A variant that cannot be
built on this machine (e.g. an architecture the GGUF writer does not know) is recorded with a `skipped_reason`
instead of failing the whole export.

The GGUF writer follows llama.cpp's `convert_hf_to_gguf.py` for the Llama family (incl. SmolLM2 and Mistral
layouts, written as arch `llama`) and Qwen2: tensor names from `gguf.get_tensor_name_map`, the q/k rope row
permutation llama.cpp expects (the inverse of what transformers undoes when reading a GGUF), hyperparameters,
byte-level BPE tokenizer metadata and the chat template. Weights are quantized with `gguf.quants.quantize`.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ExportConfig
from .artifacts import atomic_dir, sha256_file, write_manifest

log = logging.getLogger(__name__)

__all__ = [
    "ExportResult",
    "ExportError",
    "UnsupportedArchitectureError",
    "ModelfileError",
    "GGUF_QTYPES",
    "DEFAULT_VERIFY_PROMPTS",
    "merge_adapter",
    "quantize_bnb",
    "write_gguf",
    "render_modelfile",
    "parse_modelfile",
    "render_go_template",
    "render_ollama_prompt",
    "verify_variant",
    "export_model",
]

GGUF_QTYPES = ("q8_0", "q4_0", "f16", "f32")
BNB_VARIANTS = ("nf4", "int8")
# Generic support-style questions used when the caller gives no prompts (the model's own answers are compared).
DEFAULT_VERIFY_PROMPTS = [
    "How do I reset my password?",
    "Can I get a refund for my last order?",
    "What are your opening hours?",
    "My delivery has not arrived yet. What should I do?",
    "How do I contact a human agent?",
    "Do you ship internationally?",
    "How can I change the email address on my account?",
    "What is 12 plus 30?",
]


class ExportError(RuntimeError):
    """A step of the export failed; the message says which and why."""


class UnsupportedArchitectureError(ExportError):
    """The GGUF writer does not know this model architecture or tokenizer."""


class ModelfileError(ExportError):
    """The chat template cannot be expressed as an Ollama TEMPLATE by this module."""


@dataclass
class ExportResult:
    out_dir: Path
    # variant name ("merged", "nf4", "int8", "gguf-q8_0", "gguf-q4_0") -> {path, size_bytes, agreement metrics,
    # load_seconds, rss_delta_bytes, skipped_reason, ...}
    variants: dict[str, dict[str, Any]]
    manifest_path: Path
    seconds: float
    modelfile_path: Path | None = None
    serve_commands: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # in-process runtimes of the merged folder ("int8-weights") -> agreement metrics, as for variants
    runtimes: dict[str, dict[str, Any]] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------- helpers


def _progress(progress: Callable[[str], None] | None, msg: str) -> None:
    log.info(msg)
    if progress is not None:
        progress(msg)


def _dir_size(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _rss() -> int:
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss


def _free() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover
        pass


def _timed_load(fn: Callable[[], Any]) -> tuple[Any, float, int]:
    """Run a loader; return (result, seconds, RSS growth of this process in bytes; noisy, allocator-dependent)."""
    _free()
    rss0 = _rss()
    t0 = time.perf_counter()
    obj = fn()
    seconds = time.perf_counter() - t0
    return obj, seconds, _rss() - rss0


def _read_adapter_config(adapter_path: Path) -> dict:
    cfg_file = Path(adapter_path) / "adapter_config.json"
    if not cfg_file.exists():
        raise ExportError(f"{adapter_path} is not a PEFT adapter folder (no adapter_config.json)")
    return json.loads(cfg_file.read_text(encoding="utf-8"))


def _load_export_tokenizer(base_path: Path, adapter_path: Path | None):
    """The adapter's tokenizer if training saved one beside it (it may have added tokens), else the base's."""
    from .models import load_tokenizer

    if adapter_path is not None and (Path(adapter_path) / "tokenizer_config.json").exists():
        return load_tokenizer(Path(adapter_path))
    return load_tokenizer(Path(base_path))


# --------------------------------------------------------------------------------------------------- merge


def _merge(base_path: Path, adapter_path: Path, out_dir: Path) -> dict:
    """Merge into an fp32 CPU copy of the base and save to `out_dir` (which must not exist or be empty).

    Returns facts for the manifest, incl. the max |logit| difference between the PEFT model and the merged
    model on a probe prompt (a broken merge fails here instead of shipping).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, GenerationConfig

    from .models import check_chat_template_roundtrip

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


# --------------------------------------------------------------------------------------------------- bitsandbytes


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

    from .models import pick_device

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


# --------------------------------------------------------------------------------------------------- GGUF

# HF model_type -> (gguf arch name, permute q/k for llama.cpp's rope layout)
_GGUF_ARCHES = {
    "llama": ("llama", True),
    "mistral": ("llama", True),  # llama.cpp converts MistralForCausalLM to arch llama
    "qwen2": ("qwen2", False),  # NEOX-style rope in llama.cpp: no permutation
}
_FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7}  # gguf.LlamaFileType

# tokenizers pre-tokenizer regexes -> llama.cpp `tokenizer.ggml.pre` names
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _permute_qk(w, n_head: int, n_head_kv: int | None = None):
    """llama.cpp's `LlamaModel.permute`: HF's rotate-half row order -> interleaved pairs (GGML rope)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _pre_tokenizer_name(tok_json: dict) -> tuple[str, str | None]:
    """Map the tokenizer's pre-tokenizer to llama.cpp's `tokenizer.ggml.pre` (name, note-if-guessed)."""
    pre = tok_json.get("pre_tokenizer") or {}

    def is_bytelevel(p, use_regex):
        return p.get("type") == "ByteLevel" and bool(p.get("use_regex", True)) == use_regex

    if is_bytelevel(pre, True):
        return "gpt-2", None  # llama.cpp's name (with the dash); "gpt2" is refused at load
    if pre.get("type") == "Sequence":
        parts = pre.get("pretokenizers", [])
        if (len(parts) == 2 and parts[0].get("type") == "Digits" and parts[0].get("individual_digits")
                and is_bytelevel(parts[1], True)):
            return "smollm", None  # SmolLM/StarCoder: single digits, then the GPT-2 regex
        splits = [p for p in parts if p.get("type") == "Split"]
        if splits and is_bytelevel(parts[-1], False):
            pattern = (splits[0].get("pattern") or {}).get("Regex")
            if pattern == _LLAMA3_SPLIT:
                return "llama-bpe", None
            if pattern == _QWEN2_SPLIT:
                return "qwen2", None
    return "default", (
        f"pre-tokenizer {json.dumps(pre)[:200]} is not one this writer recognizes; wrote tokenizer.ggml.pre="
        "'default' (llama.cpp then splits text with its default regex, which can tokenize some text differently)"
    )


def _tokenizer_metadata(model_dir: Path, n_vocab: int) -> dict:
    """Byte-level BPE tokenizer as llama.cpp's `tokenizer.ggml.*` metadata (model 'gpt2')."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise UnsupportedArchitectureError(f"tokenizer in {model_dir} has no fast (tokenizers) backend")
    tj = json.loads(backend.to_str())
    model = tj.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        kind = "sentencepiece-style BPE (byte_fallback)" if model.get("byte_fallback") else model.get("type")
        raise UnsupportedArchitectureError(
            f"tokenizer type {kind} is not supported by this GGUF writer (only byte-level BPE, like SmolLM2, "
            "Llama 3, Qwen2); convert with llama.cpp's convert_hf_to_gguf.py instead"
        )
    pre, note = _pre_tokenizer_name(tj)

    vocab = tok.get_vocab()
    if len(vocab) > n_vocab:
        raise UnsupportedArchitectureError(
            f"tokenizer has {len(vocab)} tokens but the model's embedding has only {n_vocab} rows"
        )
    reverse = {i: t for t, i in vocab.items()}
    added = {t.content: t for t in tok.added_tokens_decoder.values()}
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(5)  # UNUSED
            continue
        t = reverse[i]
        tokens.append(t)
        if t in added:
            types.append(3 if added[t].special else 4)  # CONTROL / USER_DEFINED
        else:
            types.append(1)  # NORMAL
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    probe = tok("hello", add_special_tokens=True)["input_ids"]
    plain = tok("hello", add_special_tokens=False)["input_ids"]
    add_bos = bool(tok.bos_token_id is not None and probe[:1] == [tok.bos_token_id] and plain[:1] != probe[:1])
    add_eos = bool(tok.eos_token_id is not None and probe[-1:] == [tok.eos_token_id] and plain[-1:] != probe[-1:])
    chat_template = tok.chat_template if isinstance(tok.chat_template, str) else None
    return {
        "model": "gpt2",
        "pre": pre,
        "tokens": tokens,
        "types": types,
        "merges": merges,
        "bos": tok.bos_token_id,
        "eos": tok.eos_token_id,
        "unk": tok.unk_token_id,
        "pad": tok.pad_token_id,
        "add_bos": add_bos,
        "add_eos": add_eos,
        "chat_template": chat_template,
        "note": note,
    }


def _rope_settings(config) -> dict:
    """rope theta + scaling, normalized across transformers' old (`rope_scaling`) and new (`rope_parameters`) forms."""
    params = getattr(config, "rope_parameters", None) or {}
    if params and not isinstance(params, dict):
        params = dict(params)
    if params and "rope_theta" not in params and any(isinstance(v, dict) for v in params.values()):
        raise UnsupportedArchitectureError("per-layer rope parameters are not supported by this GGUF writer")
    scaling = getattr(config, "rope_scaling", None) or {}
    merged = {**(scaling if isinstance(scaling, dict) else {}), **params}
    theta = merged.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    rtype = merged.get("rope_type") or merged.get("type") or "default"
    if merged.get("partial_rotary_factor", 1.0) != 1.0:
        raise UnsupportedArchitectureError("partial rotary embeddings are not supported by this GGUF writer")
    return {"theta": float(theta), "type": rtype, **{k: v for k, v in merged.items() if k not in ("rope_theta",)}}


def _llama3_rope_freqs(rope: dict, head_dim: int):
    """llama.cpp's `rope_freqs` tensor for Llama 3.1-style rope scaling (divisors of the base frequencies)."""
    import numpy as np

    base, factor = rope["theta"], float(rope.get("factor", 8.0))
    low, high = float(rope.get("low_freq_factor", 1.0)), float(rope.get("high_freq_factor", 4.0))
    old_ctx = float(rope.get("original_max_position_embeddings", 8192))
    freqs = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    low_wl, high_wl = old_ctx / low, old_ctx / high
    out = []
    for f in freqs:
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(factor)
        else:
            smooth = (old_ctx / wl - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def _iter_safetensors(model_dir: Path):
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{model_dir} has no *.safetensors weights")
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():
                yield key, st.get_tensor(key)


def gguf_support(config) -> str | None:
    """None if `write_gguf` supports this model config, else the reason it does not."""
    mt = getattr(config, "model_type", None)
    if mt not in _GGUF_ARCHES:
        archs = ", ".join(getattr(config, "architectures", None) or [str(mt)])
        return f"unsupported architecture {archs} (model_type {mt!r}) for GGUF, skipped; supported: llama, mistral, qwen2"
    try:
        rope = _rope_settings(config)
    except UnsupportedArchitectureError as e:
        return str(e)
    if rope["type"] not in ("default", "linear", "llama3"):
        return f"rope scaling type {rope['type']!r} is not supported by this GGUF writer, skipped"
    return None


def write_gguf(model_dir: str | Path, out_path: str | Path, qtype: str = "q8_0", *,
               q4_0_embeddings_q8: bool = True, name: str | None = None) -> dict:
    """Write a llama.cpp GGUF of a merged HF folder (Llama/SmolLM2/Mistral as arch `llama`, Qwen2 as `qwen2`).

    qtype: q8_0 | q4_0 | f16 | f32. 2D weights are quantized with `gguf.quants.quantize`; norms and other 1D
    tensors stay F32; a 2D tensor whose row length is not a multiple of the block size (32) stays F16.
    With q4_0, token embeddings / output stay Q8_0 unless `q4_0_embeddings_q8=False` (Q4 embeddings cost
    small models much more quality than they save). Raises UnsupportedArchitectureError for other models.
    Returns facts about the file (tensor types, notes).
    """
    import gguf
    import numpy as np
    import torch
    from gguf.quants import quantize
    from transformers import AutoConfig

    if qtype not in GGUF_QTYPES:
        raise ValueError(f"qtype {qtype!r} not in {GGUF_QTYPES}")
    model_dir, out_path = Path(model_dir), Path(out_path)
    config = AutoConfig.from_pretrained(model_dir)
    reason = gguf_support(config)
    if reason:
        raise UnsupportedArchitectureError(reason)
    arch_name, permute = _GGUF_ARCHES[config.model_type]
    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch_name)
    rope = _rope_settings(config)
    notes: list[str] = []

    n_layers = config.num_hidden_layers
    n_head = config.num_attention_heads
    n_head_kv = getattr(config, "num_key_value_heads", None) or n_head
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    sliding = getattr(config, "sliding_window", None)
    if config.model_type == "mistral" and sliding and sliding < config.max_position_embeddings:
        notes.append(f"Mistral sliding_window={sliding} is not represented in arch 'llama'; "
                     f"keep contexts <= {sliding} tokens for identical behaviour")
    if config.model_type == "qwen2" and getattr(config, "use_sliding_window", False):
        notes.append("Qwen2 use_sliding_window=True is ignored by llama.cpp")

    state: dict[str, Any] = dict(_iter_safetensors(model_dir))
    state = {k: v for k, v in state.items() if not k.endswith("rotary_emb.inv_freq")}
    embed_key = next((k for k in state if k.endswith("embed_tokens.weight")), None)
    if embed_key is None:
        raise UnsupportedArchitectureError(f"{model_dir}: no embed_tokens.weight found")
    n_vocab = state[embed_key].shape[0]
    tied = bool(getattr(config, "tie_word_embeddings", False)) or "lm_head.weight" not in state
    if tied:
        state.pop("lm_head.weight", None)

    tokmeta = _tokenizer_metadata(model_dir, n_vocab)
    if tokmeta["note"]:
        notes.append(tokmeta["note"])

    name_map = gguf.get_tensor_name_map(arch, n_layers)
    qk_default = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0,
                  "f16": gguf.GGMLQuantizationType.F16, "f32": gguf.GGMLQuantizationType.F32}[qtype]

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = out_path.with_name(f".tmp-{out_path.name}")
    writer = gguf.GGUFWriter(str(tmp_path), arch_name)
    tensor_types: dict[str, int] = {}
    try:
        writer.add_type("model")
        writer.add_name(name or getattr(config, "_name_or_path", "") or model_dir.name)
        writer.add_context_length(int(config.max_position_embeddings))
        writer.add_embedding_length(int(config.hidden_size))
        writer.add_block_count(int(n_layers))
        writer.add_feed_forward_length(int(config.intermediate_size))
        writer.add_head_count(int(n_head))
        writer.add_head_count_kv(int(n_head_kv))
        writer.add_rope_freq_base(rope["theta"])
        writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
        writer.add_vocab_size(int(n_vocab))
        writer.add_rope_dimension_count(int(head_dim))
        if head_dim * n_head != config.hidden_size:
            writer.add_key_length(int(head_dim))
            writer.add_value_length(int(head_dim))
        if rope["type"] == "linear":
            writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(float(rope["factor"]))
        writer.add_file_type(_FILE_TYPES[qtype])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

        writer.add_tokenizer_model(tokmeta["model"])
        writer.add_tokenizer_pre(tokmeta["pre"])
        writer.add_token_list(tokmeta["tokens"])
        writer.add_token_types(tokmeta["types"])
        writer.add_token_merges(tokmeta["merges"])
        for key, fn in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                        ("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id)):
            if tokmeta[key] is not None:
                fn(int(tokmeta[key]))
        writer.add_add_bos_token(tokmeta["add_bos"])
        writer.add_add_eos_token(tokmeta["add_eos"])
        if tokmeta["chat_template"]:
            writer.add_chat_template(tokmeta["chat_template"])

        if rope["type"] == "llama3" and arch_name == "llama":
            freqs = _llama3_rope_freqs(rope, head_dim)
            writer.add_tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", freqs)
            tensor_types["rope_freqs.weight"] = int(gguf.GGMLQuantizationType.F32)

        for hf_name in sorted(state, key=_tensor_order):
            t = state.pop(hf_name)
            gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if gguf_name is None:
                raise UnsupportedArchitectureError(f"tensor {hf_name} has no GGUF name for arch {arch_name}")
            data = t.to(dtype=torch.float32).numpy()
            if permute and re.search(r"\.q_proj\.(weight|bias)$", hf_name):
                data = _permute_qk(data, n_head, n_head)
            elif permute and re.search(r"\.k_proj\.(weight|bias)$", hf_name):
                data = _permute_qk(data, n_head, n_head_kv)

            if data.ndim <= 1 or gguf_name.endswith("_norm.weight") or gguf_name.endswith(".bias"):
                target = gguf.GGMLQuantizationType.F32
            else:
                target = qk_default
                is_embedding = gguf_name in ("token_embd.weight", "output.weight")
                if qtype == "q4_0" and is_embedding and q4_0_embeddings_q8:
                    target = gguf.GGMLQuantizationType.Q8_0
                block = gguf.GGML_QUANT_SIZES[target][0]
                if data.shape[-1] % block != 0:
                    target = gguf.GGMLQuantizationType.F32 if qtype == "f32" else gguf.GGMLQuantizationType.F16
            data = np.ascontiguousarray(data)
            q = quantize(data, target)
            if target in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
                writer.add_tensor(gguf_name, q)
            else:
                writer.add_tensor(gguf_name, q, raw_shape=q.shape, raw_dtype=target)
            tensor_types[gguf_name] = int(target)

        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    os.replace(tmp_path, out_path)

    counts: dict[str, int] = {}
    for v in tensor_types.values():
        n = gguf.GGMLQuantizationType(v).name
        counts[n] = counts.get(n, 0) + 1
    return {
        "path": str(out_path),
        "arch": arch_name,
        "qtype": qtype,
        "file_type": _FILE_TYPES[qtype],
        "tensor_types": counts,
        "tied_embeddings": tied,
        "tokenizer_pre": tokmeta["pre"],
        "notes": notes,
    }


def _tensor_order(name: str):
    """token_embd first, then blocks in numeric order, then final norm / output (llama.cpp's usual order)."""
    m = re.search(r"layers\.(\d+)\.", name)
    if "embed_tokens" in name:
        return (0, 0, name)
    if m:
        return (1, int(m.group(1)), name)
    return (2, 0, name)


def _load_gguf(path: Path, device: str):
    import torch
    from transformers import AutoModelForCausalLM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    return model.to(device).eval()


# --------------------------------------------------------------------------------------------------- Modelfile

_SENT = {"system": "SYSQ7x1", "user": "USRQ7x2", "assistant": "ASTQ7x3", "user2": "USRQ7x4"}


def _chat(tokenizer, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _derive_role_template(tokenizer) -> dict:
    """Split the HF chat template into `LEAD + (P role M content E)* + P assistant M` pieces with sentinels."""
    s, u, a, u2 = _SENT["system"], _SENT["user"], _SENT["assistant"], _SENT["user2"]
    try:
        multi = _chat(tokenizer, [{"role": "system", "content": s}, {"role": "user", "content": u},
                                  {"role": "assistant", "content": a}, {"role": "user", "content": u2}])
        nosys = _chat(tokenizer, [{"role": "user", "content": u}])
    except Exception as e:
        raise ModelfileError(f"the chat template cannot render system/user/assistant turns: {e}") from e
    if not all(x in multi for x in (s, u, a, u2)) or not (multi.index(s) < multi.index(u) < multi.index(a)
                                                          < multi.index(u2)):
        raise ModelfileError("the chat template does not render messages in order (system prompt merged or dropped?)")
    seg0 = multi[: multi.index(s)]
    seg_su = multi[multi.index(s) + len(s): multi.index(u)]
    seg_ua = multi[multi.index(u) + len(u): multi.index(a)]
    seg_au = multi[multi.index(a) + len(a): multi.index(u2)]
    tail = multi[multi.index(u2) + len(u2):]
    if seg_ua != tail:
        raise ModelfileError("the generation prompt differs from the assistant turn header; not a role-header template")
    # seg_ua = X + "assistant" + M, seg_su = X + "user" + M ; find M as the longest common suffix that works
    found = None
    for k in range(min(len(seg_su), len(seg_ua)), -1, -1):
        m = seg_ua[len(seg_ua) - k:] if k else ""
        if not seg_su.endswith(m):
            continue
        xa, xu = seg_ua[: len(seg_ua) - k], seg_su[: len(seg_su) - k]
        if xa.endswith("assistant") and xu.endswith("user") and xa[: -len("assistant")] == xu[: -len("user")]:
            found = (xa[: -len("assistant")], m)
            break
    if found is None:
        raise ModelfileError("the chat template does not write role names between fixed markers (ChatML / Llama-3 style)")
    x, m = found
    if seg_au != x + "user" + m or not seg0.endswith("system" + m):
        raise ModelfileError("turn separators depend on the previous role; not a role-header template")
    lead_p = seg0[: -len("system" + m)]
    # x = E + P and lead_p = LEAD + P: P is a common suffix; take the longest one that starts at a marker
    # ("<|start_header_id|>", "<|im_start|>", "<s>"...), not mid-token, so E and P are whole markers.
    k_max = 0
    while k_max < min(len(x), len(lead_p)) and x[len(x) - 1 - k_max] == lead_p[len(lead_p) - 1 - k_max]:
        k_max += 1
    k = next((j for j in range(k_max, 0, -1) if x[len(x) - j] == "<"), k_max)
    p = x[len(x) - k:] if k else ""
    e = x[: len(x) - k]
    lead = lead_p[: len(lead_p) - k]
    # default system block (e.g. SmolLM2 / Qwen insert one when the chat has no system message)
    if not nosys.endswith(u + x + "assistant" + m) or u not in nosys:
        raise ModelfileError("the chat template renders a user-only chat differently from a chat with a system turn")
    before_user = nosys[: nosys.index(u)]
    if not before_user.startswith(lead) or not before_user.endswith(p + "user" + m):
        raise ModelfileError("cannot locate the default system block of the chat template")
    default_sys = before_user[len(lead): len(before_user) - len(p + "user" + m)]
    return {"lead": lead, "p": p, "m": m, "e": e, "default_system": default_sys}


def _ollama_template(parts: dict, drop_lead: bool) -> str:
    lead = "" if drop_lead else parts["lead"]
    p, m, e = parts["p"], parts["m"], parts["e"]
    system_block = f"{p}system{m}{{{{ .System }}}}{e}"
    if parts["default_system"]:
        sys_part = f"{{{{ if .System }}}}{system_block}{{{{ else }}}}{parts['default_system']}{{{{ end }}}}"
    else:
        sys_part = f"{{{{ if .System }}}}{system_block}{{{{ end }}}}"
    turns = (f'{{{{ range .Messages }}}}{{{{ if ne .Role "system" }}}}{p}{{{{ .Role }}}}{m}'
             f"{{{{ .Content }}}}{e}{{{{ end }}}}{{{{ end }}}}")
    return f"{lead}{sys_part}{turns}{p}assistant{m}"


def _modelfile_parts(tokenizer) -> tuple[str, list[str], str]:
    """(Ollama TEMPLATE, stop strings, text the runtime prepends itself: BOS when dropped from the template)."""
    if not tokenizer.chat_template:
        raise ModelfileError("the tokenizer has no chat template")
    parts = _derive_role_template(tokenizer)
    bos = tokenizer.bos_token or ""
    auto_bos = bool(tokenizer.bos_token_id is not None
                    and tokenizer("x", add_special_tokens=True)["input_ids"][:1] == [tokenizer.bos_token_id]
                    and tokenizer("x", add_special_tokens=False)["input_ids"][:1] != [tokenizer.bos_token_id])
    drop_lead = bool(parts["lead"]) and parts["lead"] == bos and auto_bos
    template = _ollama_template(parts, drop_lead)
    if '"""' in template:
        raise ModelfileError('the chat template contains """, which a Modelfile cannot quote')
    stops: list[str] = []
    for s in (parts["e"].strip(), parts["p"].strip(), tokenizer.eos_token or ""):
        if s and s not in stops:
            stops.append(s)
    return template, stops, (parts["lead"] if drop_lead else "")


def render_modelfile(tokenizer, system_prompt: str, gguf_name: str, *, temperature: float = 0.3,
                     num_ctx: int | None = None) -> str:
    """An Ollama Modelfile for `gguf_name` (a file beside it) whose TEMPLATE reproduces the HF chat template.

    Supports "role header" templates: every turn is `P + role + M + content + E` and the generation prompt is
    `P + "assistant" + M` (ChatML as in SmolLM2/Qwen, Llama 3), with an optional default system block used
    when the chat has no system message. The derived TEMPLATE is checked against
    `tokenizer.apply_chat_template` on probe chats; raises ModelfileError when it cannot be expressed.
    """
    template, stops, bos = _modelfile_parts(tokenizer)
    for probe in _modelfile_probes(system_prompt):
        want = _chat(tokenizer, probe)
        got = render_ollama_prompt_from_parts(template, None, probe, bos=bos)
        if got != want:
            raise ModelfileError(
                f"derived Ollama TEMPLATE does not reproduce the chat template (got {got[:160]!r}, want {want[:160]!r})"
            )
    if '"""' in (system_prompt or ""):
        raise ModelfileError('the system prompt contains """, which a Modelfile cannot quote')
    lines = [
        "# Ollama Modelfile written by slm-pipeline; build with: ollama create <name> -f Modelfile",
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{template}"""',
    ]
    if system_prompt:
        lines.append(f'SYSTEM """{system_prompt}"""')
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    lines.append(f"PARAMETER temperature {temperature:g}")
    if num_ctx:
        lines.append(f"PARAMETER num_ctx {int(num_ctx)}")
    return "\n".join(lines) + "\n"


def _modelfile_probes(system_prompt: str) -> list[list[dict]]:
    sys_text = system_prompt or "You are a helpful assistant."
    return [
        [{"role": "system", "content": sys_text}, {"role": "user", "content": "Hi! Where is my order?"}],
        [{"role": "user", "content": "Hello"}],
        [{"role": "system", "content": sys_text}, {"role": "user", "content": "One"},
         {"role": "assistant", "content": "Two.\nThree"}, {"role": "user", "content": "Four?"}],
    ]


_MODELFILE_LINE = re.compile(r'^[ \t]*([A-Za-z]+)[ \t]+(?:"""(.*?)"""|([^\n]*))[ \t]*$', re.M | re.S)


def parse_modelfile(text: str) -> dict[str, Any]:
    """Parse the Modelfile subset we write: FROM, TEMPLATE / SYSTEM (triple-quoted, multi-line), PARAMETER."""
    out: dict[str, Any] = {"parameters": {}}
    for m in _MODELFILE_LINE.finditer(text):
        cmd = m.group(1).upper()
        value = m.group(2) if m.group(2) is not None else m.group(3).strip()
        if cmd == "PARAMETER":
            key, _, val = value.partition(" ")
            val = val.strip()
            if len(val) >= 2 and val[0] == val[-1] == '"':
                val = val[1:-1]
            out["parameters"].setdefault(key, []).append(val)
        else:
            out[cmd.lower()] = value
    return out


# A tiny interpreter for the Go text/template subset we emit: text, {{ .Field }}, {{ if COND }}..{{ else if COND }}..
# {{ else }}..{{ end }}, {{ range .Messages }}..{{ end }}, COND = .Field | not .Field | eq/ne .Field "str";
# {{- and -}} trim whitespace as in Go.
_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def _go_parse(template: str) -> list:
    items: list = []
    pos = 0
    for mt in _ACTION.finditer(template):
        text = template[pos: mt.start()]
        if mt.group(1) == "-":
            text = text.rstrip(" \t\r\n")
        if items and isinstance(items[-1], tuple) and items[-1][0] == "trim_right":
            items.pop()
            text = text.lstrip(" \t\r\n")
        items.append(("text", text))
        items.append(("action", mt.group(2)))
        if mt.group(3) == "-":
            items.append(("trim_right", None))
        pos = mt.end()
    text = template[pos:]
    if items and items[-1][0] == "trim_right":
        items.pop()
        text = text.lstrip(" \t\r\n")
    items.append(("text", text))

    def parse_if(it, cond: str):
        then, ended = block(it, ("else", "end"))
        other: list = []
        if ended != "end":
            rest = ended[len("else"):].strip()
            if rest.startswith("if "):  # {{ else if COND }} chains share the final {{ end }}
                other = [parse_if(it, rest[3:].strip())]
            elif not rest:
                other, _ = block(it, ("end",))
            else:
                raise ModelfileError(f"template action {{{{ {ended} }}}} is outside the supported subset")
        return ("if", cond, then, other)

    def block(it, stop: tuple[str, ...]):
        nodes: list = []
        for kind, val in it:
            if kind == "text":
                if val:
                    nodes.append(("text", val))
                continue
            word = val.split(" ", 1)[0]
            if word in stop:
                return nodes, val
            if word == "if":
                nodes.append(parse_if(it, val[3:].strip()))
            elif word == "range":
                body, _ = block(it, ("end",))
                nodes.append(("range", val[6:].strip(), body))
            elif val.startswith("."):
                nodes.append(("var", val))
            else:
                raise ModelfileError(f"template action {{{{ {val} }}}} is outside the supported subset")
        if stop:
            raise ModelfileError(f"template block not closed (expected {stop})")
        return nodes, None

    nodes, _ = block(iter(items), ())
    return nodes


def _go_value(expr: str, dot: dict):
    expr = expr.strip()
    if expr.startswith('"') and expr.endswith('"'):
        return json.loads(expr)
    if expr == ".":
        return dot
    if expr.startswith("."):
        cur: Any = dot
        for partname in expr[1:].split("."):
            cur = cur.get(partname, "") if isinstance(cur, dict) else getattr(cur, partname, "")
        return cur
    raise ModelfileError(f"unsupported template expression {expr!r}")


def _go_cond(cond: str, dot: dict) -> bool:
    toks = re.findall(r'"(?:[^"\\]|\\.)*"|\S+', cond)
    if toks[0] == "not" and len(toks) == 2:
        return not _go_value(toks[1], dot)
    if toks[0] in ("eq", "ne") and len(toks) == 3:
        same = _go_value(toks[1], dot) == _go_value(toks[2], dot)
        return same if toks[0] == "eq" else not same
    if len(toks) == 1:
        return bool(_go_value(toks[0], dot))
    raise ModelfileError(f"unsupported template condition {cond!r}")


def _go_exec(nodes: list, dot: dict, out: list[str]) -> None:
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "var":
            out.append(str(_go_value(node[1], dot)))
        elif kind == "if":
            _go_exec(node[2] if _go_cond(node[1], dot) else node[3], dot, out)
        elif kind == "range":
            for item in _go_value(node[1], dot) or []:
                _go_exec(node[2], item, out)


def render_go_template(template: str, values: dict) -> str:
    """Execute the Go-template subset that `render_modelfile` emits with `values` as dot."""
    out: list[str] = []
    _go_exec(_go_parse(template), values, out)
    return "".join(out)


def render_ollama_prompt_from_parts(template: str, default_system: str | None, messages: list[dict],
                                    bos: str = "") -> str:
    """The prompt text Ollama builds for /api/chat: Modelfile SYSTEM added when the chat has none, system
    messages collected into .System (and kept in .Messages), consecutive same-role messages merged."""
    msgs = [dict(m) for m in messages]
    if default_system and not (msgs and msgs[0].get("role") == "system"):
        msgs.insert(0, {"role": "system", "content": default_system})
    system = "\n\n".join(m["content"] for m in msgs if m["role"] == "system")
    collated: list[dict] = []
    for m in msgs:
        if collated and collated[-1]["Role"] == m["role"]:
            collated[-1]["Content"] += "\n\n" + m["content"]
        else:
            collated.append({"Role": m["role"], "Content": m["content"]})
    return bos + render_go_template(template, {"System": system, "Messages": collated, "Response": ""})


def render_ollama_prompt(modelfile: str, messages: list[dict], tokenizer=None) -> str:
    """Render `messages` through a Modelfile's TEMPLATE (and SYSTEM) the way Ollama does, in Python.

    If the template leaves BOS to the runtime (Llama 3 style), pass the tokenizer to get it prepended, so the
    result is comparable with `tokenizer.apply_chat_template(..., add_generation_prompt=True, tokenize=False)`.
    """
    mf = parse_modelfile(modelfile)
    if "template" not in mf:
        raise ModelfileError("the Modelfile has no TEMPLATE")
    bos = _modelfile_parts(tokenizer)[2] if tokenizer is not None else ""
    return render_ollama_prompt_from_parts(mf["template"], mf.get("system"), messages, bos=bos)


# --------------------------------------------------------------------------------------------------- verification


def _as_messages(prompt, system_prompt: str | None = None) -> list[dict]:
    if isinstance(prompt, str):
        msgs = [{"role": "user", "content": prompt}]
        if system_prompt:
            msgs.insert(0, {"role": "system", "content": system_prompt})
        return msgs
    return list(prompt)


def _encode(tokenizer, prompt, device: str):
    text = _chat(tokenizer, _as_messages(prompt))
    return tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)


def _model_device(model) -> str:
    try:
        return str(next(model.parameters()).device)
    except StopIteration:  # pragma: no cover
        return "cpu"


def _outputs(model, tokenizer, prompts, max_new_tokens: int) -> list[dict]:
    import torch

    device = _model_device(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    res = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in prompts:
            ids = _encode(tokenizer, p, device)
            logits = model(ids).logits[0].float().cpu()
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=pad)
            res.append({"logits": logits, "tokens": gen[0, ids.shape[1]:].cpu().tolist()})
    return res


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else float("nan")


def _prefix_share(reference: Sequence[int], candidate: Sequence[int]) -> float:
    """Share of the reference continuation the candidate reproduces before their first difference."""
    n = 0
    while n < min(len(reference), len(candidate)) and reference[n] == candidate[n]:
        n += 1
    return n / max(1, len(reference))


def verify_variant(reference_model, candidate_model, tokenizer, prompts: Sequence, *, max_new_tokens: int = 16,
                   reference_outputs: list[dict] | None = None) -> dict:
    """Compare a candidate (quantized) model with the reference (merged) model on chat prompts.

    `prompts`: chat message lists, or plain strings (taken as a user turn). Returns:
    - next_token_*: logits at the last prompt position (the first answer token): max abs diff, mean cosine,
      top-1 agreement over prompts;
    - all_positions_*: the same over every prompt position;
    - greedy_exact_match: share of prompts whose greedy continuation (max_new_tokens) is identical;
      greedy_token_agreement: mean share of continuation tokens equal before the first divergence;
    - top1_agreement / greedy_match: aliases of next_token_top1_agreement / greedy_exact_match.
    """
    import torch

    ref = reference_outputs or _outputs(reference_model, tokenizer, prompts, max_new_tokens)
    cand = _outputs(candidate_model, tokenizer, prompts, max_new_tokens)
    nt_diff, nt_cos, nt_top1 = [], [], []
    all_diff, all_cos, all_top1 = [], [], []
    exact, prefix = [], []
    for r, c in zip(ref, cand, strict=True):
        rl, cl = r["logits"], c["logits"]
        nt_diff.append(float((rl[-1] - cl[-1]).abs().max()))
        nt_cos.append(float(torch.nn.functional.cosine_similarity(rl[-1], cl[-1], dim=0)))
        nt_top1.append(float(rl[-1].argmax() == cl[-1].argmax()))
        all_diff.append(float((rl - cl).abs().max()))
        all_cos.extend(torch.nn.functional.cosine_similarity(rl, cl, dim=-1).tolist())
        all_top1.extend((rl.argmax(-1) == cl.argmax(-1)).float().tolist())
        exact.append(float(r["tokens"] == c["tokens"]))
        prefix.append(_prefix_share(r["tokens"], c["tokens"]))
    return {
        "prompts": len(ref),
        "next_token_max_abs_diff": max(nt_diff),
        "next_token_cosine": _mean(nt_cos),
        "next_token_top1_agreement": _mean(nt_top1),
        "all_positions_max_abs_diff": max(all_diff),
        "all_positions_cosine": _mean(all_cos),
        "all_positions_top1_agreement": _mean(all_top1),
        "greedy_exact_match": _mean(exact),
        "greedy_token_agreement": _mean(prefix),
        # short aliases (used in the Dagster asset's metadata table)
        "top1_agreement": _mean(nt_top1),
        "greedy_match": _mean(exact),
        "max_new_tokens": max_new_tokens,
        "sample_reference": tokenizer.decode(ref[0]["tokens"], skip_special_tokens=False) if ref else "",
        "sample_candidate": tokenizer.decode(cand[0]["tokens"], skip_special_tokens=False) if cand else "",
    }


def verify_gguf_in_llama_cpp(gguf_path: Path, tokenizer, prompts: Sequence, reference_outputs: list[dict],
                             max_new_tokens: int) -> dict:
    """Run a GGUF in llama.cpp itself (what Ollama and llama-server use) and compare with the merged model's
    reference outputs: same prompt tokens, next-token top-1, greedy continuation. Needs llama-cpp-python."""
    import numpy as np
    import torch
    from llama_cpp import Llama

    texts = [_chat(tokenizer, _as_messages(p)) for p in prompts]
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    # logits_all keeps every position's logits (n_ctx x vocab floats), so size the context to the prompts
    llm = Llama(model_path=str(gguf_path), n_ctx=max(map(len, encoded)) + max_new_tokens + 8, logits_all=True,
                n_threads=torch.get_num_threads(), verbose=False)
    same_tokens, top1, exact, prefix = [], [], [], []
    try:
        for text, ids, ref in zip(texts, encoded, reference_outputs, strict=True):
            same_tokens.append(float(llm.tokenize(text.encode(), add_bos=False, special=True) == ids))
            llm.reset()
            llm.eval(ids)
            top1.append(float(int(np.argmax(llm.scores[llm.n_tokens - 1])) == int(ref["logits"][-1].argmax())))
            out = []
            for token in llm.generate(ids, top_k=1, temp=0.0, reset=True):
                if llm.token_eos() == token or len(out) >= len(ref["tokens"]):
                    break
                out.append(int(token))
            rt = [t for t in ref["tokens"] if t != llm.token_eos()]
            exact.append(float(out == rt))
            prefix.append(_prefix_share(rt, out))
    finally:
        llm.close()
    return {"llama_cpp_prompt_tokens_match": _mean(same_tokens), "llama_cpp_top1_agreement": _mean(top1),
            "llama_cpp_greedy_match": _mean(exact), "llama_cpp_greedy_token_agreement": _mean(prefix)}


# --------------------------------------------------------------------------------------------------- orchestration


def _skipped(reason: str, settings: dict) -> dict:
    return {"path": None, "size_bytes": None, "load_seconds": None, "skipped_reason": reason, "settings": settings}


def _serve_commands(out_dir: Path, base_path: Path, adapter_path: Path, name: str, adapter_cfg: dict,
                    variants: dict, modelfile: Path | None) -> tuple[dict[str, str], list[str]]:
    cmds: dict[str, str] = {}
    notes: list[str] = []
    cmds["vllm_merged"] = f"vllm serve {out_dir / 'merged'} --served-model-name {name}"
    lora = f"vllm serve {base_path} --enable-lora --lora-modules {name}={adapter_path}"
    r = int(adapter_cfg.get("r") or 0)
    if r > 16:
        lora += f" --max-lora-rank {r}"  # vLLM's default max rank is 16
    cmds["vllm_lora"] = lora
    if adapter_cfg.get("use_dora"):
        notes.append("adapter is DoRA: vLLM's --enable-lora serves plain LoRA only; serve the merged model")
    if modelfile is not None:
        cmds["ollama"] = f"ollama create {name} -f {modelfile} && ollama run {name}"
    for key in ("gguf-q8_0", "gguf-q4_0"):
        v = variants.get(key) or {}
        if v.get("path"):  # also when only transformers could not reload it: llama.cpp may still
            cmds[f"llama_server_{key.split('-')[1]}"] = f"llama-server -m {v['path']} --port 8080"
    return cmds, notes


def export_model(base_path: str | Path, adapter_path: str | Path, out_dir: str | Path, cfg: ExportConfig,
                 system_prompt: str, inputs: dict, progress: Callable[[str], None] | None = None,
                 prompts: Sequence | None = None) -> ExportResult:
    """Merge, quantize (per cfg.variants), write GGUF + Modelfile, verify every variant vs merged, manifest.

    Everything is built in a temp folder beside `out_dir` and renamed to `out_dir` when complete.
    """
    from .models import llama_cpp_available, load_model, pick_device

    t_start = time.perf_counter()
    base_path, adapter_path, out_dir = Path(base_path).resolve(), Path(adapter_path).resolve(), Path(out_dir)
    final = out_dir.resolve()
    device = pick_device()
    name = cfg.ollama_model_name
    max_new = cfg.verify_max_new_tokens
    temperature = cfg.modelfile_temperature
    q4_emb_q8 = cfg.gguf_q4_0_embeddings_q8
    verify_prompts = list(prompts) if prompts is not None else DEFAULT_VERIFY_PROMPTS[: cfg.verify_prompts]
    verify_prompts = [_as_messages(p, system_prompt) for p in verify_prompts]
    variants: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    modelfile_final: Path | None = None

    def final_path(tmp_root: Path, p: Path) -> str:
        return str(final / Path(p).relative_to(tmp_root))

    with atomic_dir(out_dir) as tmp:
        # 1. merge ---------------------------------------------------------------------------------------
        _progress(progress, f"Merging adapter {adapter_path.name} into {base_path.name} (fp32, CPU)")
        t0 = time.perf_counter()
        merge_info = _merge(base_path, adapter_path, tmp / "merged")
        adapter_cfg = merge_info["adapter_config"]
        from .models import load_tokenizer

        tokenizer = load_tokenizer(tmp / "merged")
        reference, load_s, rss = _timed_load(lambda: load_model(tmp / "merged", device=device))
        variants["merged"] = {
            "path": final_path(tmp, tmp / "merged"), "size_bytes": _dir_size(tmp / "merged"),
            "load_seconds": round(load_s, 3), "rss_delta_bytes": rss, "build_seconds": round(time.perf_counter() - t0, 2),
            "settings": {"dtype": "float32"}, "skipped_reason": None,
            "merge_max_abs_logit_diff_vs_peft": merge_info["merge_max_abs_logit_diff_vs_peft"],
        }
        _progress(progress, f"Merged model saved ({variants['merged']['size_bytes'] / 1e6:.1f} MB); "
                            f"computing reference outputs on {len(verify_prompts)} prompts")
        ref_out = _outputs(reference, tokenizer, verify_prompts, max_new)

        def verify(key: str, loader: Callable[[], Any], path: Path, settings: dict, build_s: float):
            entry = {"path": final_path(tmp, path), "size_bytes": _dir_size(path), "settings": settings,
                     "build_seconds": round(build_s, 2), "skipped_reason": None}
            try:
                cand, ls, rss_d = _timed_load(loader)
            except Exception as e:  # the file exists but cannot be reloaded here
                entry["load_seconds"] = None
                entry["skipped_reason"] = f"written, but reload failed on {device}: {type(e).__name__}: {e}"
                variants[key] = entry
                return
            entry["load_seconds"], entry["rss_delta_bytes"] = round(ls, 3), rss_d
            _progress(progress, f"Verifying {key} against merged")
            try:
                entry.update(verify_variant(reference, cand, tokenizer, verify_prompts, max_new_tokens=max_new,
                                            reference_outputs=ref_out))
            except Exception as e:  # keep the artifact; say why it is unverified
                entry["verification_error"] = f"{type(e).__name__}: {e}"
                _progress(progress, f"Could not verify {key}: {entry['verification_error']}")
            variants[key] = entry
            del cand
            _free()

        # 2. bitsandbytes -------------------------------------------------------------------------------
        for kind in [v for v in cfg.variants if v in BNB_VARIANTS]:
            _progress(progress, f"Quantizing {kind} with bitsandbytes on {device}")
            t0 = time.perf_counter()
            try:
                quantize_bnb(tmp / "merged", tmp / kind, kind, device=device)
            except Exception as e:
                import shutil

                shutil.rmtree(tmp / kind, ignore_errors=True)
                variants[kind] = _skipped(
                    f"bitsandbytes could not quantize/save {kind} on {device}: {type(e).__name__}: {e}",
                    _bnb_settings(kind, device))
                _progress(progress, f"Skipped {kind}: {variants[kind]['skipped_reason']}")
                continue
            verify(kind, lambda k=kind: _load_bnb(tmp / k, device), tmp / kind, _bnb_settings(kind, device),
                   time.perf_counter() - t0)

        # 3. GGUF ---------------------------------------------------------------------------------------
        for key in [v for v in cfg.variants if v.startswith("gguf-")]:
            qtype = key.split("-", 1)[1]
            path = tmp / "gguf" / f"model-{qtype}.gguf"
            _progress(progress, f"Writing GGUF {qtype}")
            t0 = time.perf_counter()
            try:
                info = write_gguf(tmp / "merged", path, qtype, q4_0_embeddings_q8=q4_emb_q8, name=name)
            except (UnsupportedArchitectureError, ExportError) as e:
                variants[key] = _skipped(str(e), {"qtype": qtype})
                _progress(progress, f"Skipped {key}: {e}")
                continue
            notes.extend(n for n in info["notes"] if n not in notes)
            settings = {"qtype": qtype, "file_type": info["file_type"], "tensor_types": info["tensor_types"],
                        "arch": info["arch"], "tokenizer_pre": info["tokenizer_pre"],
                        "embeddings_q8_0": qtype == "q4_0" and q4_emb_q8,
                        "verified_with": "transformers gguf_file loader (de-quantized to fp32)"}
            verify(key, lambda p=path: _load_gguf(p, device), path, settings, time.perf_counter() - t0)
            if llama_cpp_available() and key in variants:  # the real consumer, when the optional extra is there
                _progress(progress, f"Verifying {key} in llama.cpp against merged")
                try:
                    variants[key].update(verify_gguf_in_llama_cpp(path, tokenizer, verify_prompts, ref_out, max_new))
                    settings["verified_with"] += " and llama.cpp (llama-cpp-python)"
                except Exception as e:
                    variants[key]["llama_cpp_error"] = f"{type(e).__name__}: {e}"

        # 4. in-process runtimes of the merged folder (nothing written: quantized when loaded) --------------
        runtimes: dict[str, dict[str, Any]] = {}
        if device == "cpu":
            from .models import load_for_inference

            _progress(progress, "Verifying runtime int8-weights (merged, int8 weights at load) against merged")
            try:
                cand, ls, rss_d = _timed_load(lambda: load_for_inference(tmp / "merged", "cpu", "int8-weights"))
                runtimes["int8-weights"] = {
                    "of_variant": "merged", "load_seconds": round(ls, 3), "rss_delta_bytes": rss_d,
                    "how": "serve.runtime: int8-weights (or --runtime int8-weights)",
                    **verify_variant(reference, cand, tokenizer, verify_prompts, max_new_tokens=max_new,
                                     reference_outputs=ref_out)}
                del cand
                _free()
            except Exception as e:  # e.g. a torch build without the int8 weight matmul on this CPU
                runtimes["int8-weights"] = {"skipped_reason": f"{type(e).__name__}: {e}"}

        # 5. Modelfile ----------------------------------------------------------------------------------
        ggufs = [k for k in (f"gguf-{cfg.ollama_gguf}", "gguf-q8_0", "gguf-q4_0") if (variants.get(k) or {}).get("path")]
        modelfile_info: dict[str, Any] = {"path": None, "skipped_reason": None}
        if ggufs:
            gguf_name = Path(variants[ggufs[0]]["path"]).name
            try:
                ctx = getattr(reference.config, "max_position_embeddings", None)
                text = render_modelfile(tokenizer, system_prompt, gguf_name, temperature=temperature,
                                        num_ctx=min(int(ctx), 4096) if ctx else None)
                mf = tmp / "gguf" / "Modelfile"
                mf.write_text(text, encoding="utf-8")
                modelfile_final = final / "gguf" / "Modelfile"
                modelfile_info = {"path": str(modelfile_final), "gguf": gguf_name, "skipped_reason": None,
                                  "template_matches_hf_chat_template": True, "temperature": temperature}
            except ModelfileError as e:
                modelfile_info["skipped_reason"] = f"Modelfile not written: {e}"
                notes.append(modelfile_info["skipped_reason"])
        else:
            modelfile_info["skipped_reason"] = "no GGUF variant was written"

        reference = None  # free the merged model before hashing (the closure above is done with it)
        _free()

        # 6. manifest -----------------------------------------------------------------------------------
        serve, serve_notes = _serve_commands(final, base_path, adapter_path, name, adapter_cfg, variants,
                                             modelfile_final)
        notes.extend(serve_notes)
        files = {}
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                files[str(p.relative_to(tmp))] = {"sha256": sha256_file(p), "size_bytes": p.stat().st_size}
        seconds = time.perf_counter() - t_start
        write_manifest(
            tmp,
            stage="export",
            base_model={"path": str(base_path), "adapter_base_model_name_or_path":
                        adapter_cfg.get("base_model_name_or_path")},
            adapter={"path": str(adapter_path),
                     "version": inputs.get("adapter_version") or inputs.get("lora_adapter") or adapter_path.name,
                     "config": adapter_cfg},
            inputs=inputs,
            device=device,
            config=cfg.model_dump(),
            system_prompt=system_prompt,
            verify_prompts=verify_prompts,
            variants=variants,
            runtimes=runtimes,
            modelfile=modelfile_info,
            serve_commands=serve,
            files=files,
            notes=notes,
            seconds=round(seconds, 2),
        )
        _progress(progress, f"Export complete in {seconds:.1f}s: {', '.join(k for k, v in variants.items() if not v.get('skipped_reason'))}")

    return ExportResult(out_dir=final, variants=variants, manifest_path=final / "manifest.json",
                        seconds=time.perf_counter() - t_start, modelfile_path=modelfile_final,
                        serve_commands=serve, notes=notes, runtimes=runtimes)

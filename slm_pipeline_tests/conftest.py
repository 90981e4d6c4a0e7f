"""Shared fixtures: tiny random models (seconds to build) and the real embedded SmolLM2 (cached)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Persistent across runs so the GGUF -> HF conversion of SmolLM2 (~20 s) happens once per machine.
TEST_CACHE = Path(os.environ.get("SLM_TEST_CACHE", PROJECT_ROOT / ".test-cache"))


def make_tiny_llama(path: Path, tokenizer, seed: int = 0, **overrides) -> Path:
    """A randomly initialised Llama with the given tokenizer (SmolLM2's by default): ~1.6M params."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    cfg.update(overrides)
    model = LlamaForCausalLM(LlamaConfig(**cfg))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    ).save_pretrained(path)
    return Path(path)


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real embedded SmolLM2-135M-Instruct as a plain HF folder (converted once, then cached)."""
    from slm_pipeline.core.models import resolve_base_model

    return resolve_base_model("embedded:smollm2-135m-instruct", TEST_CACHE / "base_model").path


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_dir):
    from slm_pipeline.core.models import load_tokenizer

    return load_tokenizer(smollm2_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2_tokenizer) -> Path:
    """Tiny random Llama + SmolLM2 tokenizer/chat template. Read-only: copy it before changing it."""
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), smollm2_tokenizer)

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


# A tiny anonymized corpus for retrieval: FAQ rows and one document with sections (and a code block whose
# "# comment" must not become a heading).
TINY_RECORDS = [
    {"id": "faq.csv#2", "kind": "faq", "meta": {"category": "pricing"}, "messages": [
        {"role": "user", "content": "How much does a Day Pass cost?"},
        {"role": "assistant", "content": "A Day Pass costs €4.50 and covers 24 hours of classic rides."}]},
    {"id": "faq.csv#3", "kind": "faq", "meta": {"category": "account"}, "messages": [
        {"role": "user", "content": "How do I reset my password?"},
        {"role": "assistant", "content": "Tap 'Forgot password' on the login screen; the link is valid for 1 hour."}]},
    {"id": "faq.csv#4", "kind": "faq", "meta": {"category": "lost"}, "messages": [
        {"role": "user", "content": "How long do you keep items left in a bike basket?"},
        {"role": "assistant", "content": "Lost property is kept for 30 days at our depot."}]},
    {"id": "docs/ebikes.md", "kind": "doc", "meta": {"title": "E-bikes"}, "text": (
        "# E-bikes\n\nOur e-bikes give pedal assistance up to 25 km/h.\n\n## Battery and range\n\n"
        "A full battery lasts up to 60 km. Check the charge in the app before unlocking.\n\n## Riding rules\n\n"
        "You must be 16 or older to ride an e-bike.\n\n```bash\n# unlock from the CLI\nloopbike unlock 42\n```\n")},
]


@pytest.fixture(scope="session")
def tiny_index(tmp_path_factory) -> Path:
    """A retrieval index over TINY_RECORDS with the embedded all-MiniLM-L6-v2 (a few seconds)."""
    from slm_pipeline.config import RetrievalConfig
    from slm_pipeline.core.retrieval import index_corpus

    out = tmp_path_factory.mktemp("retrieval-index")
    index_corpus(TINY_RECORDS, RetrievalConfig(), out)
    return out


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for this test session (see postgres_server.py); skipped without the binaries."""
    from postgres_server import PostgresServer, find_pg_bin

    if find_pg_bin() is None:
        pytest.skip("PostgreSQL server binaries not found: `make postgres-deps` installs the Debian package "
                    "postgresql (CI does)")
    server = PostgresServer().start()
    yield server
    server.stop()

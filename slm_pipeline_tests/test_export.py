"""Export stage: merge, bitsandbytes variants, GGUF writer (round trip through transformers), Modelfile, manifest.

Most tests share one export of the tiny random Llama (real SmolLM2 tokenizer + chat template) with a LoRA
adapter whose B matrices are random, so the merge changes the outputs. Architecture tests use a tiny trained
byte-level BPE tokenizer so GGUF round trips take a second instead of parsing SmolLM2's 49k-token vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SYSTEM = "You are the ACME support assistant.\nAnswer briefly and politely."
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CHATS = [
    [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where is my order 12345?"}],
    [{"role": "user", "content": "Hello there"}],
    [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Refund?"},
     {"role": "assistant", "content": "Sure.\nWhich order?"}, {"role": "user", "content": "The last one  "}],
]


def _make_adapter(base_dir: Path, out: Path, kind: str = "lora", seed: int = 0) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    torch.manual_seed(seed)
    if kind == "qlora":
        model = AutoModelForCausalLM.from_pretrained(
            base_dir, device_map="cpu",
            quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                   bnb_4bit_compute_dtype=torch.float32),
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS,
                                                  use_dora=kind == "dora", task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.05)
    peft_model.save_pretrained(out)
    return out


def _logits(model, tokenizer, messages):
    import torch

    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits[0].float()


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_model_dir) -> Path:
    return _make_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter") / "lora")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model_dir, adapter_dir):
    from slm_pipeline.config import ExportConfig
    from slm_pipeline.core.export import export_model

    messages: list[str] = []
    cfg = ExportConfig(verify_prompts=2, verify_max_new_tokens=8)
    out = tmp_path_factory.mktemp("export") / "v1"
    result = export_model(tiny_model_dir, adapter_dir, out, cfg, SYSTEM,
                          {"pairs": "pairs-v7", "adapter_version": "train-v3"}, progress=messages.append)
    return result, messages


# ------------------------------------------------------------------------------------------------- merge


@pytest.mark.parametrize("kind", ["lora", "dora", "qlora"])
def test_merged_equals_base_plus_adapter_and_loads_without_peft(tmp_path, tiny_model_dir, kind):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from slm_pipeline.core.export import merge_adapter
    from slm_pipeline.core.models import load_tokenizer

    adapter = _make_adapter(tiny_model_dir, tmp_path / "adapter", kind)
    merged_dir = merge_adapter(tiny_model_dir, adapter, tmp_path / "merged")

    names = {p.name for p in merged_dir.iterdir()}
    assert "adapter_config.json" not in names
    assert {"config.json", "generation_config.json", "tokenizer.json"} <= names
    assert any(n.endswith(".safetensors") for n in names)
    tokenizer = load_tokenizer(merged_dir)  # raises if the chat template got lost
    assert tokenizer.chat_template == load_tokenizer(tiny_model_dir).chat_template

    merged = AutoModelForCausalLM.from_pretrained(merged_dir)  # plain transformers, no peft
    assert merged.dtype == torch.float32 and getattr(merged.config, "quantization_config", None) is None
    assert not any("lora" in n for n, _ in merged.named_parameters())
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    base_logits = _logits(base, tokenizer, CHATS[0])
    with_adapter = PeftModel.from_pretrained(base, adapter).eval()  # fp32 base even for the QLoRA adapter
    want = _logits(with_adapter, tokenizer, CHATS[0])
    got = _logits(merged, tokenizer, CHATS[0])
    assert (want - base_logits).abs().max() > 1e-2, "adapter should change the outputs"
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_export_writes_every_variant(exported):
    result, messages = exported
    assert set(result.variants) == {"merged", "nf4", "int8", "gguf-q8_0", "gguf-q4_0"}
    for name, v in result.variants.items():
        assert v["skipped_reason"] is None, (name, v["skipped_reason"])
        assert Path(v["path"]).exists() and v["size_bytes"] > 0 and v["load_seconds"] >= 0
        assert str(result.out_dir) in v["path"]
    assert not list(result.out_dir.parent.glob(".tmp-*")), "temp build folder left behind"
    q8 = result.variants["gguf-q8_0"]
    assert q8["next_token_cosine"] > 0.999 and q8["next_token_top1_agreement"] == 1.0
    assert q8["greedy_exact_match"] == 1.0
    q4 = result.variants["gguf-q4_0"]  # loaded back through transformers' gguf_file during the export
    assert q4["settings"]["tensor_types"].get("Q4_0", 0) > 0 and q4["next_token_cosine"] > 0.98
    assert result.variants["merged"]["merge_max_abs_logit_diff_vs_peft"] < 1e-4
    assert any("nf4" in m for m in messages) and any("GGUF" in m for m in messages)
    # The int8-weights runtime writes no file; its agreement with merged is measured and in the manifest.
    rt = result.runtimes["int8-weights"]
    assert rt.get("skipped_reason") is None and rt["next_token_cosine"] > 0.99, rt
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["runtimes"]["int8-weights"]["top1_agreement"] == rt["top1_agreement"]


# ------------------------------------------------------------------------------------------------- bitsandbytes


@pytest.mark.parametrize("kind", ["nf4", "int8"])
def test_bnb_variant_reloads_on_cpu(exported, kind):
    import bitsandbytes as bnb
    import torch
    from transformers import AutoModelForCausalLM

    from slm_pipeline.core.models import load_tokenizer

    result, _ = exported
    v = result.variants[kind]
    model = AutoModelForCausalLM.from_pretrained(v["path"], device_map="cpu")
    qc = model.config.quantization_config
    layer_type = bnb.nn.Linear4bit if kind == "nf4" else bnb.nn.Linear8bitLt
    assert isinstance(model.model.layers[0].self_attn.q_proj, layer_type)
    if kind == "nf4":
        assert qc.load_in_4bit and qc.bnb_4bit_quant_type == "nf4" and qc.bnb_4bit_use_double_quant
    else:
        assert qc.load_in_8bit
    tokenizer = load_tokenizer(v["path"])
    merged = AutoModelForCausalLM.from_pretrained(result.variants["merged"]["path"])
    a, b = _logits(merged, tokenizer, CHATS[0]), _logits(model, tokenizer, CHATS[0])
    assert torch.nn.functional.cosine_similarity(a[-1], b[-1], dim=0) > 0.98
    assert v["greedy_token_agreement"] >= 0.5


# ------------------------------------------------------------------------------------------------- GGUF


def test_gguf_q8_0_round_trip_through_transformers(exported):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result, _ = exported
    gguf = Path(result.variants["gguf-q8_0"]["path"])
    merged_dir = Path(result.variants["merged"]["path"])
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    tok = AutoTokenizer.from_pretrained(merged_dir)

    back = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    for key in ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
                "num_key_value_heads", "max_position_embeddings", "vocab_size", "tie_word_embeddings"):
        assert getattr(back.config, key) == getattr(merged.config, key), key
    assert back.config.rope_parameters["rope_theta"] == merged.config.rope_parameters["rope_theta"]
    assert back.config.rms_norm_eps == pytest.approx(merged.config.rms_norm_eps)
    for chat in CHATS:
        a, b = _logits(merged, tok, chat), _logits(back, tok, chat)
        assert torch.nn.functional.cosine_similarity(a, b, dim=-1).min() > 0.999
        assert (a - b).abs().max() < 0.05 * a.abs().max()
        assert torch.equal(a[-1].argmax(), b[-1].argmax())

    gtok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    assert gtok.chat_template == tok.chat_template
    for attr in ("bos_token", "eos_token", "pad_token", "unk_token"):
        assert getattr(gtok, attr) == getattr(tok, attr), attr
    for chat in CHATS:
        text = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        assert gtok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) == text
        assert gtok(text, add_special_tokens=False)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    for text in ["Hello, world!", "  two  spaces\n\nnew lines\ttabs", "café ÄÖÜ 😀 12345", "<|im_start|>user"]:
        assert gtok(text)["input_ids"] == tok(text)["input_ids"], text


def _small_bpe_tokenizer(path: Path, chat_template: str):
    """A 400-token byte-level BPE with ChatML specials (fast GGUF round trips)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    corpus = ["Where is my order? It shipped yesterday.", "How do I reset my password?", "Refunds take 5 days."]
    tk.train_from_iterator(corpus * 20, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  unk_token="<|endoftext|>", pad_token="<|im_end|>")
    tok.chat_template = chat_template
    tok.save_pretrained(path)
    return tok


def _tiny_arch(path: Path, arch: str, tokenizer, **extra) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(1)
    cfg = AutoConfig.for_model(
        arch, vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **extra,
    )
    model = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # random biases too, so Qwen2's q/k/v biases are checked
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0.0, 0.5)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_export_verifies_gguf_in_llama_cpp_when_installed(exported):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is an optional extra (make llamacpp)")
    result, messages = exported
    q8 = result.variants["gguf-q8_0"]
    assert "llama.cpp" in q8["settings"]["verified_with"] and "llama_cpp_error" not in q8, q8
    assert q8["llama_cpp_prompt_tokens_match"] == 1.0 and q8["llama_cpp_top1_agreement"] == 1.0
    assert q8["llama_cpp_greedy_token_agreement"] >= 0.5
    assert any("in llama.cpp" in m for m in messages)


def test_gguf_runs_in_llama_cpp_like_the_merged_model(exported):
    """The real consumer: llama.cpp (what Ollama and llama-server run) loads our file, tokenizes the chat like
    transformers does and computes the same logits as the merged model (up to Q8_0 rounding)."""
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is an optional extra (make llamacpp)")
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result, _ = exported
    merged_dir = Path(result.variants["merged"]["path"])
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(merged_dir)
    llm = llama_cpp.Llama(model_path=result.variants["gguf-q8_0"]["path"], n_ctx=512, logits_all=True,
                          verbose=False)
    try:
        for chat in CHATS:
            text = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids
            llm.reset()
            llm.eval(ids)
            ours = torch.from_numpy(np.array(llm.scores[: len(ids)], dtype=np.float32))
            with torch.no_grad():
                ref = merged(torch.tensor([ids])).logits[0]
            assert torch.nn.functional.cosine_similarity(ours, ref, dim=-1).min() > 0.99
            assert (ours.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.9
    finally:
        llm.close()


@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen2"])
def test_gguf_f32_layout_is_exact_for_supported_architectures(tmp_path, smollm2_tokenizer, arch):
    """F32 GGUF -> transformers must reproduce the logits exactly: proves names, rope permutation, biases."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slm_pipeline.core.export import write_gguf

    tok = _small_bpe_tokenizer(tmp_path / "tok", smollm2_tokenizer.chat_template)
    model_dir = _tiny_arch(tmp_path / arch, arch, tok)
    info = write_gguf(model_dir, tmp_path / "g" / "model-f32.gguf", "f32")
    assert info["arch"] == ("qwen2" if arch == "qwen2" else "llama") and not info["tied_embeddings"]
    ref = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "g", gguf_file="model-f32.gguf", dtype=torch.float32)
    gtok = AutoTokenizer.from_pretrained(tmp_path / "g", gguf_file="model-f32.gguf")
    assert back.config.tie_word_embeddings is False
    for chat in CHATS:
        torch.testing.assert_close(_logits(back, gtok, chat), _logits(ref, tok, chat), atol=1e-5, rtol=1e-5)


def test_gguf_llama3_rope_scaling_writes_rope_freqs(tmp_path, smollm2_tokenizer):
    import numpy as np
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM

    from slm_pipeline.core.export import write_gguf

    tok = _small_bpe_tokenizer(tmp_path / "tok", smollm2_tokenizer.chat_template)
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    model_dir = _tiny_arch(tmp_path / "l3", "llama", tok, rope_parameters=rope)
    write_gguf(model_dir, tmp_path / "l3.gguf", "q8_0")
    reader = GGUFReader(tmp_path / "l3.gguf")
    freqs = next(t for t in reader.tensors if t.name == "rope_freqs.weight").data
    hf_inv = AutoModelForCausalLM.from_pretrained(model_dir).model.rotary_emb.inv_freq.double().numpy()
    base_inv = 1.0 / (500000.0 ** (np.arange(0, 16, 2) / 16))
    np.testing.assert_allclose(base_inv / freqs, hf_inv, rtol=1e-5)  # llama.cpp divides theta by rope_freqs
    assert int(reader.fields["llama.rope.dimension_count"].contents()) == 16


def test_unsupported_architecture_is_skipped_with_reason(tmp_path, smollm2_tokenizer):
    from slm_pipeline.config import ExportConfig
    from slm_pipeline.core.export import UnsupportedArchitectureError, export_model, write_gguf

    tok = _small_bpe_tokenizer(tmp_path / "tok", smollm2_tokenizer.chat_template)
    model_dir = _tiny_arch(tmp_path / "qwen3", "qwen3", tok, head_dim=16)
    with pytest.raises(UnsupportedArchitectureError, match="unsupported architecture Qwen3ForCausalLM"):
        write_gguf(model_dir, tmp_path / "x.gguf", "q8_0")
    adapter = _make_adapter(model_dir, tmp_path / "adapter")
    result = export_model(model_dir, adapter, tmp_path / "export", ExportConfig(variants=["gguf-q8_0"],
                          verify_prompts=1, verify_max_new_tokens=2), SYSTEM, {})
    v = result.variants["gguf-q8_0"]
    assert v["path"] is None and "unsupported architecture Qwen3ForCausalLM" in v["skipped_reason"]
    assert "for GGUF, skipped" in v["skipped_reason"]
    assert result.variants["merged"]["skipped_reason"] is None and result.modelfile_path is None
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["variants"]["gguf-q8_0"]["skipped_reason"] == v["skipped_reason"]
    assert manifest["modelfile"]["skipped_reason"]


# ------------------------------------------------------------------------------------------------- Modelfile


def test_modelfile_renders_the_hf_chat_template(exported):
    from slm_pipeline.core.export import parse_modelfile, render_ollama_prompt
    from slm_pipeline.core.models import load_tokenizer

    result, _ = exported
    text = result.modelfile_path.read_text()
    mf = parse_modelfile(text)
    assert mf["from"] == "./model-q8_0.gguf" and (result.modelfile_path.parent / "model-q8_0.gguf").exists()
    assert mf["system"] == SYSTEM
    assert "<|im_start|>system\n{{ .System }}<|im_end|>\n" in mf["template"]
    assert "<|im_end|>" in mf["parameters"]["stop"] and float(mf["parameters"]["temperature"][0]) <= 1.0
    tok = load_tokenizer(result.variants["merged"]["path"])
    for chat in CHATS:
        with_system = chat if chat[0]["role"] == "system" else [{"role": "system", "content": SYSTEM}, *chat]
        want = tok.apply_chat_template(with_system, add_generation_prompt=True, tokenize=False)
        assert render_ollama_prompt(text, chat, tok) == want  # Ollama adds SYSTEM when the chat has none


def test_go_template_interpreter_subset():
    from slm_pipeline.core.export import ModelfileError, render_go_template, render_ollama_prompt_from_parts

    with pytest.raises(ModelfileError):
        render_go_template('{{ template "x" . }}', {})
    t = '{{ range .Messages }}{{ if eq .Role "user" }}U{{ else if eq .Role "tool" }}T{{ else }}A{{ end }}{{ end }}'
    roles = [{"Role": r, "Content": ""} for r in ("user", "tool", "assistant")]
    assert render_go_template(t, {"Messages": roles}) == "UTA"
    t = ('{{- if .System }}S:{{ .System }}\n{{ end -}}\n  {{ range .Messages }}{{ if eq .Role "user" }}U:'
         "{{ .Content }}|{{ else }}A:{{ .Content }}|{{ end }}{{ end }}")
    msgs = [{"Role": "user", "Content": "hi"}, {"Role": "assistant", "Content": "yo"}]
    assert render_go_template(t, {"System": "sys", "Messages": msgs}) == "S:sys\nU:hi|A:yo|"
    assert render_go_template(t, {"System": "", "Messages": msgs}) == "U:hi|A:yo|"
    # Ollama: Modelfile SYSTEM only when the chat has none; consecutive same-role turns are merged
    simple = '{{ range .Messages }}{{ if ne .Role "system" }}{{ .Role }}={{ .Content }};{{ end }}{{ end }}[{{ .System }}]'
    chat = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    assert render_ollama_prompt_from_parts(simple, "policy", chat) == "user=a\n\nb;[policy]"
    chat = [{"role": "system", "content": "own"}, *chat]
    assert render_ollama_prompt_from_parts(simple, "policy", chat) == "user=a\n\nb;[own]"


def test_modelfile_other_template_families(smollm2_tokenizer):
    import copy

    from slm_pipeline.core.export import ModelfileError, render_modelfile, render_ollama_prompt

    tok = copy.deepcopy(smollm2_tokenizer)
    tok.chat_template = (
        "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n'"
        " + m['content'] + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
    )
    text = render_modelfile(tok, SYSTEM, "m.gguf")
    assert 'PARAMETER stop "<|eot_id|>"' in text
    for chat in CHATS:
        want = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        if chat[0]["role"] == "system":
            assert render_ollama_prompt(text, chat, tok) == want
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
                         "{% else %}{{ m['content'] }}</s>{% endif %}{% endfor %}")
    with pytest.raises(ModelfileError):
        render_modelfile(tok, SYSTEM, "m.gguf")


# ------------------------------------------------------------------------------------------------- manifest


def test_manifest_hashes_every_file_and_names_serve_commands(exported, adapter_dir, tiny_model_dir):
    from slm_pipeline.core.artifacts import sha256_file

    result, _ = exported
    manifest = json.loads(result.manifest_path.read_text())
    on_disk = {str(p.relative_to(result.out_dir)) for p in result.out_dir.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {"manifest.json"}
    for rel, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_file(result.out_dir / rel)
        assert entry["size_bytes"] == (result.out_dir / rel).stat().st_size
    assert manifest["inputs"] == {"pairs": "pairs-v7", "adapter_version": "train-v3"}
    assert manifest["adapter"]["version"] == "train-v3" and manifest["adapter"]["config"]["r"] == 8
    assert manifest["base_model"]["path"] == str(Path(tiny_model_dir).resolve())
    for name in ("nf4", "int8", "gguf-q8_0"):
        v = manifest["variants"][name]
        assert {"size_bytes", "load_seconds", "next_token_top1_agreement", "greedy_exact_match"} <= set(v)
    assert manifest["variants"]["nf4"]["settings"]["quant_type"] == "nf4"
    cmds = manifest["serve_commands"]
    assert cmds["vllm_merged"] == f"vllm serve {result.out_dir / 'merged'} --served-model-name slm-support"
    assert f"--enable-lora --lora-modules slm-support={Path(adapter_dir).resolve()}" in cmds["vllm_lora"]
    assert cmds["ollama"].startswith(f"ollama create slm-support -f {result.out_dir / 'gguf' / 'Modelfile'}")
    assert cmds["llama_server_q8_0"].startswith(f"llama-server -m {result.out_dir / 'gguf' / 'model-q8_0.gguf'}")


# ------------------------------------------------------------------------------------------------- real SmolLM2


@pytest.mark.smollm2
def test_smollm2_q8_0_gguf_keeps_greedy_output(tmp_path, smollm2_dir, smollm2_tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    from slm_pipeline.core.export import verify_variant, write_gguf

    info = write_gguf(smollm2_dir, tmp_path / "smollm2-q8_0.gguf", "q8_0")
    assert info["tied_embeddings"] and info["tensor_types"]["Q8_0"] == 1 + 30 * 7
    base = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    back = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="smollm2-q8_0.gguf", dtype=torch.float32).eval()
    prompts = ["How do I reset my password?", "What is the capital of France?"]
    report = verify_variant(base, back, smollm2_tokenizer, prompts, max_new_tokens=16)
    assert report["next_token_top1_agreement"] == 1.0 and report["next_token_cosine"] > 0.999
    assert report["greedy_token_agreement"] >= 0.9, report


@pytest.mark.smollm2
def test_smollm2_gguf_matches_the_llama_cpp_written_file(tmp_path, smollm2_dir):
    """Our GGUF of the converted SmolLM2 must line up, tensor by tensor and key by key, with the GGUF llama.cpp
    itself wrote (the embedded Q4_1 file it came from): same names, shapes, rope row order, tokenizer."""
    import numpy as np
    from gguf import GGUFReader, dequantize

    from slm_pipeline.core.export import write_gguf
    from slm_pipeline.core.models import embedded_gguf_path

    write_gguf(smollm2_dir, tmp_path / "ours.gguf", "q8_0")
    ours, ref = GGUFReader(tmp_path / "ours.gguf"), GGUFReader(embedded_gguf_path("smollm2-135m-instruct"))
    for key in ("llama.block_count", "llama.context_length", "llama.embedding_length", "llama.feed_forward_length",
                "llama.attention.head_count", "llama.attention.head_count_kv", "llama.rope.freq_base",
                "llama.attention.layer_norm_rms_epsilon", "llama.vocab_size", "llama.rope.dimension_count",
                "tokenizer.ggml.model", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                "tokenizer.ggml.padding_token_id", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.add_bos_token",
                "tokenizer.chat_template", "tokenizer.ggml.token_type", "tokenizer.ggml.pre"):
        assert ours.fields[key].contents() == ref.fields[key].contents(), key
    assert ours.fields["tokenizer.ggml.tokens"].contents() == ref.fields["tokenizer.ggml.tokens"].contents()
    assert ours.fields["tokenizer.ggml.merges"].contents() == ref.fields["tokenizer.ggml.merges"].contents()
    ref_tensors = {t.name: t for t in ref.tensors}
    assert {t.name for t in ours.tensors} == set(ref_tensors)
    for t in ours.tensors:
        r = ref_tensors[t.name]
        assert list(t.shape) == list(r.shape), t.name
        a = dequantize(t.data, t.tensor_type).astype(np.float32)
        b = dequantize(r.data, r.tensor_type).astype(np.float32)
        rel = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)
        assert rel < 0.01, (t.name, rel)  # Q8_0 of exact Q4_1 values; a wrong rope permutation gives ~1.4


@pytest.mark.smollm2
def test_smollm2_q8_0_gguf_answers_like_transformers_in_llama_cpp(tmp_path, smollm2_dir, smollm2_tokenizer):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is an optional extra (make llamacpp)")
    import torch
    from transformers import AutoModelForCausalLM

    from slm_pipeline.core.export import write_gguf

    write_gguf(smollm2_dir, tmp_path / "q8_0.gguf", "q8_0")
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    llm = llama_cpp.Llama(model_path=str(tmp_path / "q8_0.gguf"), n_ctx=512, verbose=False)
    try:
        for question in ["How do I reset my password?", "What is 12 + 30?"]:
            text = smollm2_tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                                         add_generation_prompt=True, tokenize=False)
            ids = smollm2_tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                ref = model.generate(ids, max_new_tokens=16, do_sample=False)[0, ids.shape[1]:].tolist()
            ours = llm.create_completion(text, max_tokens=16, temperature=0.0)["choices"][0]["text"]
            ours_ids = smollm2_tokenizer(ours, add_special_tokens=False)["input_ids"]
            same = sum(a == b for a, b in zip(ours_ids, ref, strict=False))
            assert same >= 0.75 * len(ref), (question, ours, smollm2_tokenizer.decode(ref))
    finally:
        llm.close()

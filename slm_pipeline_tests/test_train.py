"""Training recipe on a tiny random Llama: masking, packing, learning, resume, QLoRA, reload, guard rails."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_llama
from safetensors.torch import load_file

from slm_pipeline.config import TrainConfig
from slm_pipeline.core.train import (
    IGNORE_INDEX,
    TrainingError,
    _collate,
    build_model,
    labeled_token_loss,
    pack,
    planned_epochs,
    tokenize_chat,
    train_adapter,
)

SYSTEM = {"role": "system", "content": "You are LoopBike's support assistant."}


def chat(q: str, a: str) -> dict:
    return {"id": q, "messages": [SYSTEM, {"role": "user", "content": q}, {"role": "assistant", "content": a}]}


MEMORIZE = [chat(f"What is code {i}?", f"Code {i} means dock number {i * 7}.") for i in range(12)]


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(r=8, alpha=16, dropout=0.0, learning_rate=3e-2, max_steps=20, batch_size=4, max_seq_len=128,
                save_steps=5, logging_steps=5, warmup_ratio=0.0, lr_scheduler="constant_with_warmup",
                precision="fp32")
    base.update(kw)
    return TrainConfig(**base)


def test_loss_only_on_assistant_tokens(smollm2_tokenizer):
    msgs = [SYSTEM, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."},
            {"role": "user", "content": "Price?"}, {"role": "assistant", "content": "Four fifty."}]
    ids, labels = tokenize_chat(smollm2_tokenizer, msgs)
    assert len(ids) == len(labels)
    learned = smollm2_tokenizer.decode([t for t in labels if t != IGNORE_INDEX])
    assert learned == "Hello there.<|im_end|>\nFour fifty.<|im_end|>\n"
    assert "LoopBike" not in learned and "Price?" not in learned


def test_template_that_is_not_incremental_is_rejected(smollm2_tokenizer):
    class Weird:
        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
            return f"[{len(messages)} turns]" + "".join(m["content"] for m in messages)

    with pytest.raises(TrainingError, match="chat template"):
        tokenize_chat(Weird(), chat("q", "a")["messages"])


def test_pack_fills_rows_best_fit_and_restarts_positions():
    samples = [([1, 2, 3], [-100, 2, 3]), ([4, 5], [-100, 5]), ([6, 7, 8, 9], [-100, -100, 8, 9])]
    rows = pack(samples, seq_len=6, pad_id=0)
    # longest first: [6..9] opens row 0, [1,2,3] does not fit there and opens row 1, [4,5] fills row 0.
    assert [r["input_ids"] for r in rows] == [[6, 7, 8, 9, 4, 5], [1, 2, 3, 0, 0, 0]]
    assert rows[0]["position_ids"] == [0, 1, 2, 3, 0, 1]
    assert rows[0]["labels"] == [-100, -100, 8, 9, -100, 5]
    assert rows[1]["attention_mask"] == [1, 1, 1, 0, 0, 0]
    assert rows[1]["labels"] == [-100, 2, 3, -100, -100, -100]


def test_loss_decreases_and_adapter_reloads(smollm2_tokenizer, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    # Larger init than the default 0.02 so a frozen, tied LM head can express confident predictions.
    tiny_model_dir = make_tiny_llama(tmp_path / "base", smollm2_tokenizer, initializer_range=0.25)
    res = train_adapter(tiny_model_dir, MEMORIZE, MEMORIZE[:4], tiny_cfg(max_steps=30), tmp_path / "adapter",
                        tmp_path / "ckpt")
    assert res.final_eval_loss < res.base_eval_loss * 0.8
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    assert 0 < res.trainable_percent < 100 and res.tokens_per_second > 0
    # Reload in standard PEFT format: same eval behaviour as at the end of training.
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, plain(ids).logits, atol=1e-4)


def test_resume_after_interruption_matches_uninterrupted_run(tiny_model_dir, tmp_path):
    cfg = tiny_cfg(max_steps=10, save_steps=2, dropout=0.1)
    straight = train_adapter(tiny_model_dir, MEMORIZE, [], cfg, tmp_path / "a", tmp_path / "ckpt-a")
    train_adapter(tiny_model_dir, MEMORIZE, [], cfg, tmp_path / "b-crashed", tmp_path / "ckpt-b", stop_after_steps=6)
    resumed = train_adapter(tiny_model_dir, MEMORIZE, [], cfg, tmp_path / "b", tmp_path / "ckpt-b")
    assert resumed.resumed_from and resumed.resumed_from.endswith("checkpoint-6")
    a = load_file(straight.adapter_dir / "adapter_model.safetensors")
    b = load_file(resumed.adapter_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_qlora_runs_a_step_on_cpu(tiny_model_dir, tmp_path):
    res = train_adapter(tiny_model_dir, MEMORIZE, [], tiny_cfg(method="qlora", max_steps=1), tmp_path / "q",
                        tmp_path / "ckpt")
    assert res.steps == 1 and (tmp_path / "q" / "adapter_model.safetensors").exists()


def test_dora_runs(tiny_model_dir, tmp_path):
    res = train_adapter(tiny_model_dir, MEMORIZE, [], tiny_cfg(method="dora", max_steps=1), tmp_path / "d",
                        tmp_path / "ckpt")
    assert res.steps == 1


def test_refuses_tiny_dataset(tiny_model_dir, tmp_path):
    with pytest.raises(TrainingError, match="training sample"):
        train_adapter(tiny_model_dir, MEMORIZE[:1], [], tiny_cfg(), tmp_path / "x", tmp_path / "c")


def test_nan_loss_stops_with_message(tiny_model_dir, tmp_path, monkeypatch):
    from transformers.models.llama import modeling_llama

    forward = modeling_llama.LlamaModel.forward

    def diverging_forward(self, *args, **kwargs):  # what an exploding run looks like
        out = forward(self, *args, **kwargs)
        out.last_hidden_state = out.last_hidden_state * float("nan")
        return out

    monkeypatch.setattr(modeling_llama.LlamaModel, "forward", diverging_forward)
    with pytest.raises(TrainingError, match="learning_rate"):
        train_adapter(tiny_model_dir, MEMORIZE, [], tiny_cfg(max_steps=10, logging_steps=1), tmp_path / "n",
                      tmp_path / "c")


def test_unknown_target_module_is_named(tiny_model_dir, tmp_path):
    with pytest.raises(TrainingError, match="c_attn"):
        train_adapter(tiny_model_dir, MEMORIZE, [], tiny_cfg(target_modules=["c_attn"]), tmp_path / "x",
                      tmp_path / "c")


def _packed_batch(pad_id: int):
    a, b, c = [5, 6, 7, 8, 9, 10], [20, 21, 22, 23], [30, 31, 32]
    rows = pack([(a, [-100, -100] + a[2:]), (b, [-100] + b[1:]), (c, [-100] + c[1:])], seq_len=10, pad_id=pad_id)
    return rows, (a, b, c)


@pytest.mark.parametrize("packing", [True, False], ids=["packed-attention", "stock-sdpa"])
def test_packed_samples_do_not_attend_to_each_other(tiny_model_dir, packing):
    """Each sample in a packed row must get exactly the logits it gets alone, whichever attention runs."""
    cfg = tiny_cfg(packing=packing)
    model = build_model(tiny_model_dir, cfg, "cpu", "fp32").eval()
    rows, samples = _packed_batch(pad_id=0)
    batch = _collate(0)(rows)
    assert "attention_mask" not in batch and batch["use_cache"] is False
    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        for r, row in enumerate(rows):
            offset = 0
            for start in [i for i, p in enumerate(row["position_ids"]) if p == 0]:
                ids = next(s for s in samples if row["input_ids"][start:start + len(s)] == s)
                alone = model(input_ids=torch.tensor([ids])).logits[0]
                assert torch.allclose(packed[r, start:start + len(ids)], alone, atol=1e-4), (r, start)
                offset += len(ids)


def test_labeled_token_loss_equals_the_stock_loss(tiny_model_dir):
    model = build_model(tiny_model_dir, tiny_cfg(packing=False), "cpu", "fp32").eval()
    ids = torch.tensor([[1, 5, 6, 7, 8, 9], [1, 20, 21, 22, 0, 0]])
    labels = torch.tensor([[-100, -100, 6, 7, 8, -100], [-100, -100, -100, 22, -100, -100]])
    mask = torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        stock = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        ours = labeled_token_loss(model, {"input_ids": ids, "attention_mask": mask, "labels": labels})
        # with gradient accumulation the Trainer divides by the label count of the whole accumulated batch
        halved = labeled_token_loss(model, {"input_ids": ids, "attention_mask": mask, "labels": labels},
                                    num_items_in_batch=torch.tensor(8))
    assert torch.allclose(ours, stock, atol=1e-5)
    assert torch.allclose(halved, stock / 2, atol=1e-5)


def test_recipe_loss_runs_under_the_trainers_mixed_precision(tiny_model_dir, tmp_path, monkeypatch):
    """accelerate autocasts model.forward only; our loss bypasses it, so the trainer must enter autocast itself
    (without it a bf16 run silently computes the adapters in fp32, ~25% slower on CPU)."""
    from transformers import TrainingArguments

    from slm_pipeline.core import train as train_mod

    seen = []
    real = train_mod.labeled_token_loss

    def spy(*a, **kw):
        seen.append(torch.is_autocast_enabled("cpu"))
        return real(*a, **kw)

    monkeypatch.setattr(train_mod, "labeled_token_loss", spy)
    model = build_model(tiny_model_dir, tiny_cfg(), "cpu", "fp32")
    args = TrainingArguments(output_dir=str(tmp_path), bf16=True, use_cpu=True, report_to="none",
                             remove_unused_columns=False)
    trainer = train_mod._make_trainer(model=model, args=args)
    rows, _ = _packed_batch(pad_id=0)
    trainer.compute_loss(model, _collate(0)(rows))
    assert seen == [True]


@pytest.mark.smollm2
def test_smollm2_learns_demo_faq_in_a_few_steps(smollm2_dir, tmp_path):
    import csv

    from slm_pipeline.config import PROJECT_ROOT

    with open(PROJECT_ROOT / "assets" / "corpus" / "faq" / "faq.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:40]
    samples = [chat(r["question"], r["answer"]) for r in rows]
    cfg = tiny_cfg(max_steps=4, learning_rate=2e-3, batch_size=2, max_seq_len=256, save_steps=10,
                   precision="auto")
    res = train_adapter(smollm2_dir, samples[:32], samples[32:], cfg, tmp_path / "a", tmp_path / "c")
    assert res.final_eval_loss < res.base_eval_loss


def test_step_budget_caps_epochs_on_large_corpora_only():
    cfg = TrainConfig(epochs=3, batch_size=4, step_budget=240)
    assert planned_epochs(cfg, 168) == 3  # the demo: 42 steps per epoch
    assert planned_epochs(cfg, 880) == 1  # 220 steps per epoch: one pass fits, a second does not
    assert planned_epochs(cfg, 400) == 2  # 100 steps per epoch
    assert planned_epochs(cfg, 5000) == 1  # never less than one pass
    assert planned_epochs(TrainConfig(epochs=3, step_budget=0), 5000) == 3  # 0 switches the cap off
    assert planned_epochs(TrainConfig(epochs=3, max_steps=10), 5000) == 3  # max_steps decides instead

"""LoRA / QLoRA / DoRA fine-tuning recipe, readable top to bottom: setup -> data -> train -> save.

    result = train_adapter(base_path, train_samples, eval_samples, TrainConfig(), out_dir, checkpoint_dir)

- Samples are chat records `{"messages": [...]}`; the model's own chat template renders them and the loss is
  computed on assistant tokens only (everything else is labelled -100).
- Samples are packed into full `max_seq_len` rows (no compute spent on padding); without packing, batches are
  grouped by length and padded dynamically.
- transformers `Trainer` does the loop: it checkpoints adapter + optimizer + scheduler + RNG state every
  `save_steps` and resumes exactly from the latest checkpoint in `checkpoint_dir` (the caller keys that folder
  by the samples' hash + base model + config + this code's version, so only a run of the same inputs resumes).
- Device-agnostic: CUDA -> bf16 (QLoRA 4-bit NF4 base via bitsandbytes); CPU -> bf16 autocast where the CPU
  has bf16 matmul support, else fp32.
- Multi-process: with `train.processes` > 1 (or an accelerate `train.launcher_config`) train_adapter starts the
  same recipe in N processes under `accelerate launch` (core/distributed.py): DDP, FSDP or DeepSpeed ZeRO, one
  process per GPU or gloo on CPU. train.batch_size stays the global batch; only rank 0 writes files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from ..config import TrainConfig
from . import distributed
from .artifacts import atomic_write_text
from .models import cpu_supports_bf16, load_tokenizer, pick_device
from .train_data import (  # noqa: F401  (the dataset half of the recipe; re-exported for callers)
    IGNORE_INDEX,
    TrainingError,
    _collate,
    _ListDataset,
    build_dataset,
    pack,
    tokenize_chat,
    tokenize_samples,
)

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    adapter_dir: Path
    method: str
    device: str
    precision: str
    trainable_params: int
    total_params: int
    train_tokens: int  # assistant + context tokens fed through the model per epoch (no padding)
    target_tokens: int  # tokens that carry loss (assistant turns)
    steps: int
    epochs: float
    seconds: float
    tokens_per_second: float
    base_eval_loss: float | None
    final_eval_loss: float | None
    best_eval_loss: float | None
    final_train_loss: float | None
    resumed_from: str | None
    peak_rss_mb: float
    processes: int = 1  # training processes (accelerate launch world size)
    log_history: list[dict] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: dict) -> TrainResult:
        """Inverse of to_json (rank 0 of a multi-process run hands its result over as train_result.json)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names} | {"adapter_dir": Path(d["adapter_dir"])})

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.trainable_params / max(self.total_params, 1)

    def eval_perplexity(self) -> float | None:
        return math.exp(self.final_eval_loss) if self.final_eval_loss is not None else None

    def to_json(self) -> dict:
        d = asdict(self)
        d["adapter_dir"] = str(self.adapter_dir)
        d["trainable_percent"] = self.trainable_percent
        d["eval_perplexity"] = self.eval_perplexity()
        return d


# --------------------------------------------------------------------------------------------- loss, trainer


def _has_plain_lm_head(lm) -> bool:
    """True when logits are exactly lm_head(final hidden state): no soft-capping or scaling (Gemma 2/3,
    Cohere, Granite do that), so the loss below may compute logits itself."""
    cfg = lm.config
    return (lm.get_output_embeddings() is not None and hasattr(lm, "get_decoder")
            and not any(getattr(cfg, k, None) for k in ("final_logit_softcapping", "logit_scale", "logits_scaling")))


def labeled_token_loss(model, inputs: dict, num_items_in_batch=None, direct: bool = True):
    """Causal-LM cross-entropy that computes logits only where a label exists.

    The stock loss projects EVERY position onto the vocabulary (49k for SmolLM2) and log-softmaxes it in fp32,
    then throws away the prompt/system/padding positions (~60% of a packed row on the demo data). On CPU that
    projection + softmax (+ its zero-filled gradient) was ~25% of a training step; here only the next-token
    positions of assistant tokens go through lm_head. Same value as the stock loss: sum of token losses / number of label tokens (or
    / num_items_in_batch, which the Trainer passes so gradient accumulation averages over the whole batch).

    direct=False: go through model's own forward (the stock loss). Needed when model is a DDP / FSDP / DeepSpeed
    wrapper: its forward is what synchronises gradients or gathers the sharded weights, so calling the decoder
    underneath it directly would bypass that.
    """
    inputs = dict(inputs)
    labels = inputs.pop("labels")
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model  # through the peft wrapper
    if not direct or not _has_plain_lm_head(lm):
        out = model(**inputs, labels=labels, **({"num_items_in_batch": num_items_in_batch}
                                                if num_items_in_batch is not None else {}))
        return out.loss
    hidden = lm.get_decoder()(**inputs).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    logits = lm.get_output_embeddings()(hidden[:, :-1][keep]).float()
    loss = torch.nn.functional.cross_entropy(logits, targets[keep], reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else keep.sum()
    return loss / torch.clamp(torch.as_tensor(count, device=loss.device), min=1)


def _make_trainer(**kwargs):
    from transformers import Trainer

    class AssistantTokenTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # The Trainer leaves mixed precision to accelerate, which autocasts model.forward only; this loss
            # calls the decoder and lm_head directly, so it must enter the same autocast itself.
            from accelerate.utils import DistributedType

            direct = self.accelerator.distributed_type == DistributedType.NO
            with self.accelerator.autocast():
                loss = labeled_token_loss(model, inputs, num_items_in_batch, direct=direct)
            if num_items_in_batch is not None and self.args.average_tokens_across_devices:
                # num_items_in_batch counts the label tokens of ALL processes and DDP averages the processes'
                # gradients, so each process's share is scaled back up (as the stock Trainer loss does).
                loss = loss * self.accelerator.num_processes
            return (loss, {"loss": loss}) if return_outputs else loss

    return AssistantTokenTrainer(**kwargs)


# --------------------------------------------------------------------------------------------------- model


PACKED_ATTENTION = "slm_packed_sdpa"


def packed_causal_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                            position_ids=None, **kwargs):
    """transformers attention function for packed rows: causal SDPA over each packed sample on its own.

    A sample starts wherever position ids do not continue (p[i] != p[i-1] + 1). The stock path builds a
    block-diagonal (seq x seq) mask and attends over the whole row; here each sample is a separate causal SDPA
    call, so the work is sum(len_i^2 / 2) instead of seq^2 and no mask is built. (On the demo rows, 2-7
    samples each, that measured ~5% faster per step on CPU: small calls run the kernel less efficiently; it
    grows with longer rows.) Anything else (decoding with a cache, no position ids) goes to stock SDPA.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    q_len = query.shape[2]
    if position_ids is None or q_len != key.shape[2] or q_len == 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    pos = position_ids.expand(query.shape[0], -1)
    breaks = (pos[:, 1:] != pos[:, :-1] + 1).tolist()
    gqa = key.shape[1] != query.shape[1]
    rows = []
    for b in range(query.shape[0]):
        starts = [0] + [i + 1 for i, brk in enumerate(breaks[b]) if brk]
        bounds = list(zip(starts, starts[1:] + [q_len], strict=True))
        rows.append(torch.cat([
            torch.nn.functional.scaled_dot_product_attention(
                query[b:b + 1, :, s:e], key[b:b + 1, :, s:e], value[b:b + 1, :, s:e],
                dropout_p=dropout if module.training else 0.0, scale=scaling, is_causal=True, enable_gqa=gqa)
            for s, e in bounds], dim=2))
    return torch.cat(rows, dim=0).transpose(1, 2).contiguous(), None


def _register_packed_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED_ATTENTION, packed_causal_attention)


def resolve_precision(cfg: TrainConfig, device: str) -> str:
    if cfg.precision != "auto":
        return cfg.precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    # bf16 autocast roughly doubles matmul throughput on CPUs with AVX512-BF16/AMX; elsewhere it is slower.
    return "bf16" if cpu_supports_bf16() else "fp32"


def build_model(base_path: Path, cfg: TrainConfig, device: str, precision: str):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    sharded = distributed.sharded_launch()
    kwargs = {"dtype": torch.float32}
    if cfg.method == "qlora":
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if precision == "bf16" else torch.float32
        quant = dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                     bnb_4bit_compute_dtype=compute)
        if sharded:
            # FSDP / ZeRO-3 shard float tensors only, of one dtype: store the 4-bit weights packed in bf16 and
            # load everything else in bf16 too (the FSDP-QLoRA recipe); FSDP/DeepSpeed place the weights.
            quant["bnb_4bit_quant_storage"] = kwargs["dtype"] = torch.bfloat16
        else:
            kwargs["device_map"] = {"": device}
        kwargs["quantization_config"] = BitsAndBytesConfig(**quant)
    elif precision == "bf16":
        # The base is frozen: keeping it in bf16 spares autocast re-casting 135M+ fp32 weights every step
        # (~2x faster on CPU). peft keeps the trainable adapter weights in fp32.
        kwargs["dtype"] = torch.bfloat16
    if cfg.packing:
        _register_packed_attention()
        kwargs["attn_implementation"] = PACKED_ATTENTION
    model = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
    if cfg.method == "qlora" and not sharded:
        # Casts norms to fp32 and enables input grads (a sharded model must keep one dtype: skipped there).
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    elif not sharded:  # FSDP's CPU-efficient loading leaves the weights of ranks > 0 on the meta device
        model = model.to(device)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in cfg.target_modules if t not in present]
    if missing:
        raise TrainingError(
            f"train.target_modules {missing} do not exist in {base_path}; linear layers there include "
            f"{sorted(n for n in present if n.endswith('proj'))[:12]}"
        )
    lora = LoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules),
        use_dora=cfg.method == "dora", task_type="CAUSAL_LM", bias="none",
    )
    return get_peft_model(model, lora)


# --------------------------------------------------------------------------------------------------- train


def _progress_callback(log_fn: Callable[[str], None], tokens_per_step: float):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        t0, step0 = None, 0

        def on_train_begin(self, args, state, control, **kw):
            self.t0, self.step0 = time.perf_counter(), state.global_step

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            loss = logs.get("loss")
            if loss is not None and not math.isfinite(loss):
                raise TrainingError(
                    f"loss became {loss} at step {state.global_step}; lower train.learning_rate "
                    f"(now {args.learning_rate}) or use precision: fp32"
                )
            if self.t0 is None or (loss is None and "eval_loss" not in logs):
                return  # eval before training starts is reported by the caller
            done = state.global_step - self.step0
            elapsed = time.perf_counter() - self.t0
            left = state.max_steps - state.global_step
            eta = elapsed / done * left if done else float("nan")
            pct = 100.0 * state.global_step / max(state.max_steps, 1)
            parts = [f"step {state.global_step}/{state.max_steps} ({pct:.0f}%)"]
            if loss is not None:
                parts.append(f"loss {loss:.4f}")
            if "eval_loss" in logs:
                parts.append(f"eval_loss {logs['eval_loss']:.4f}")
            if done:
                parts.append(f"{tokens_per_step * done / elapsed:.0f} tok/s")
                parts.append(f"ETA {eta:.0f}s")
            log_fn(" | ".join(parts))

    return Progress()


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def planned_epochs(cfg, rows: int) -> float:
    """`cfg.epochs`, or fewer whole epochs when they would take more than `cfg.step_budget` optimizer steps
    (at least 1). A bigger corpus states each fact in more pairs, so one pass teaches what three do on the demo."""
    if cfg.step_budget <= 0 or cfg.max_steps > 0:
        return cfg.epochs
    steps_per_epoch = max(1, -(-rows // (cfg.batch_size * cfg.gradient_accumulation_steps)))
    fits = max(1, cfg.step_budget // steps_per_epoch)
    return min(cfg.epochs, float(fits))


def train_adapter(
    base_path: Path,
    train_samples: list[dict],
    eval_samples: list[dict],
    cfg: TrainConfig,
    out_dir: Path,
    checkpoint_dir: Path,
    log_fn: Callable[[str], None] = log.info,
    stop_after_steps: int | None = None,
) -> TrainResult:
    """Train an adapter and save it (standard PEFT format) into out_dir.

    stop_after_steps: end the run early after that many steps (checkpoint kept) — used to test resume.
    With train.processes > 1 or a train.launcher_config, this starts `accelerate launch` and returns rank 0's
    result; inside those processes it is the per-process recipe.
    """
    if distributed.needs_launch(cfg):
        return distributed.launch_training(base_path, train_samples, eval_samples, cfg, out_dir, checkpoint_dir,
                                           log_fn=log_fn, stop_after_steps=stop_after_steps)
    from transformers import PrinterCallback, TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    # ---- setup
    if len(train_samples) < 2:
        raise TrainingError(
            f"only {len(train_samples)} training sample(s); add data to the corpus (need at least 2, "
            "and realistically hundreds)"
        )
    world_size, rank, local_rank = distributed.world()
    if cfg.batch_size % world_size:
        raise TrainingError(f"train.batch_size ({cfg.batch_size}) must be a multiple of the {world_size} training "
                            "processes: it is the batch of one optimizer step, split evenly over them")
    set_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device()
    precision = resolve_precision(cfg, device)
    tokenizer = load_tokenizer(base_path)
    train_ds, train_tokens, target_tokens = build_dataset(tokenizer, train_samples, cfg)
    eval_ds = build_dataset(tokenizer, eval_samples, cfg)[0] if eval_samples else None
    if len(train_ds) == 0:
        raise TrainingError("no training sample has assistant tokens within train.max_seq_len")

    epochs = planned_epochs(cfg, len(train_ds))
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    # Before the model: creating the arguments starts the process group of a multi-process run, which FSDP's
    # and ZeRO-3's memory-saving model loading needs.
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=cfg.batch_size // world_size,
        per_device_eval_batch_size=max(1, cfg.batch_size // world_size),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of total steps
        weight_decay=0.0,
        bf16=precision == "bf16",
        use_cpu=device == "cpu",
        optim="adamw_torch_fused" if device == "cuda" else "adamw_torch",
        logging_steps=cfg.logging_steps,
        logging_nan_inf_filter=False,  # we want to see a NaN and stop, not have it averaged away
        eval_strategy="steps" if eval_ds is not None else "no",
        eval_steps=0.25,  # a float < 1 is a ratio of total steps: 4 eval points for the loss curve
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        prediction_loss_only=True,  # eval needs the loss only; never gather full-vocabulary logits
        train_sampling_strategy="random" if cfg.packing else "group_by_length",
        gradient_checkpointing=cfg.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        ddp_find_unused_parameters=False,  # every LoRA weight gets a gradient; skips a graph walk per step
    )
    # One GPU per process: rank r of a launch trains on cuda:<local rank>.
    placement = f"cuda:{local_rank}" if device == "cuda" and world_size > 1 else device
    model = build_model(base_path, cfg, placement, precision)
    trainable, total = model.get_nb_trainable_parameters()
    rows_per_step = cfg.batch_size * cfg.gradient_accumulation_steps
    tokens_per_step = train_tokens / max(len(train_ds), 1) * rows_per_step
    log_fn(
        f"{cfg.method} on {device}/{precision}"
        f"{f' x {world_size} processes' if world_size > 1 else ''}: {len(train_samples)} samples -> "
        f"{len(train_ds)} rows, {train_tokens} tokens ({target_tokens} with loss); trainable {trainable:,} / "
        f"{total:,} params ({100 * trainable / total:.2f}%)"
        f"{f'; {epochs:g} of {cfg.epochs:g} epochs (train.step_budget {cfg.step_budget})' if epochs < cfg.epochs else ''}"
    )
    trainer = _make_trainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
        data_collator=_collate(tokenizer.pad_token_id),
        callbacks=[_progress_callback(log_fn, tokens_per_step)],
    )
    trainer.remove_callback(PrinterCallback)  # our progress callback logs instead of raw dict prints
    if stop_after_steps:
        from transformers import TrainerCallback

        class StopEarly(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if state.global_step >= stop_after_steps:
                    control.should_save, control.should_training_stop = True, True

        trainer.add_callback(StopEarly())

    # Adapters start as the identity (lora_B = 0), so this is the base model's eval loss. A multi-process run
    # measures it after training instead, with the adapter switched off: Trainer.evaluate() before train() marks
    # the model as prepared without its DDP wrapper, and training then never synchronised the processes'
    # gradients (seen with transformers 5.24 / accelerate 1.15: each rank stepped on its own gradient).
    base_eval_loss = None
    multi = world_size > 1 or distributed.sharded_launch()
    resume = get_last_checkpoint(str(checkpoint_dir)) if cfg.resume else None
    if eval_ds is not None and not multi:
        base_eval_loss = _read_or_eval_base(trainer, checkpoint_dir)
        log_fn(f"base model eval loss {base_eval_loss:.4f}")
    if resume:
        log_fn(f"resuming from {resume}")

    # ---- train
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - t0
    history = list(trainer.state.log_history)
    steps_run = trainer.state.global_step - (_step_of(resume) if resume else 0)
    final_eval = None
    if eval_ds is not None:
        last = next((h for h in reversed(history) if "eval_loss" in h), None)
        # The periodic eval usually lands on the last step already; only evaluate again if it did not.
        final_eval = (last["eval_loss"] if last and last["step"] == trainer.state.global_step
                      else trainer.evaluate()["eval_loss"])
    eval_losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    train_losses = [h["loss"] for h in history if "loss" in h]
    if eval_ds is not None and multi:
        with trainer.accelerator.unwrap_model(trainer.model).disable_adapter():
            base_eval_loss = trainer.evaluate(metric_key_prefix="base_eval")["base_eval_loss"]
        log_fn(f"base model eval loss {base_eval_loss:.4f} (adapter switched off)")

    # ---- save (standard PEFT layout: adapter_config.json + adapter_model.safetensors)
    out_dir = Path(out_dir)
    if multi:
        distributed.save_adapter(trainer, out_dir)  # every process takes part; rank 0 writes
    else:
        model.save_pretrained(out_dir)
    result = TrainResult(
        adapter_dir=out_dir,
        method=cfg.method,
        device=device,
        precision=precision,
        trainable_params=trainable,
        total_params=total,
        train_tokens=train_tokens,
        target_tokens=target_tokens,
        steps=trainer.state.global_step,
        epochs=float(trainer.state.epoch or 0.0),
        seconds=seconds,
        tokens_per_second=tokens_per_step * steps_run / seconds if seconds > 0 else 0.0,
        base_eval_loss=base_eval_loss,
        final_eval_loss=final_eval,
        best_eval_loss=min(eval_losses + ([final_eval] if final_eval is not None else []), default=None),
        final_train_loss=train_losses[-1] if train_losses else None,
        resumed_from=resume,
        peak_rss_mb=_peak_rss_mb(),
        processes=world_size,
        log_history=history,
    )
    if rank == 0:
        tokenizer.save_pretrained(out_dir)
        atomic_write_text(out_dir / "train_result.json", json.dumps(result.to_json(), indent=2, default=str))
    return result


def _step_of(checkpoint: str) -> int:
    return int(os.path.basename(checkpoint).rsplit("-", 1)[-1])


def _read_or_eval_base(trainer, checkpoint_dir: Path) -> float:
    """Base eval loss is computed once per checkpoint folder (a resumed run must not re-measure the adapter)."""
    cache = checkpoint_dir / "base_eval_loss.json"
    if cache.exists():
        return json.loads(cache.read_text())["eval_loss"]
    loss = trainer.evaluate()["eval_loss"]
    atomic_write_text(cache, json.dumps({"eval_loss": loss}))
    return loss


def plot_loss_curve(history: list[dict], path: Path, base_eval_loss: float | None = None) -> Path:
    """PNG of train loss (and eval loss per epoch) against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    tr = [(h["step"], h["loss"]) for h in history if "loss" in h]
    ev = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if tr:
        ax.plot(*zip(*tr, strict=True), label="train loss", color="#1f77b4")
    if ev:
        ax.plot(*zip(*ev, strict=True), "o-", label="eval loss", color="#d62728")
    if base_eval_loss is not None:
        ax.axhline(base_eval_loss, ls="--", color="grey", label="base model eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)

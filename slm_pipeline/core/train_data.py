"""Training data for the fine-tuning recipe (core/train.py): chats rendered with the model's chat template,
labels on assistant tokens only (-100 elsewhere), packed into full `max_seq_len` rows with per-sample position
ids so packed samples never attend to each other."""

from __future__ import annotations

import bisect

import torch

from ..config import TrainConfig

IGNORE_INDEX = -100


class TrainingError(RuntimeError):
    """Training cannot start or went wrong; the message says what to change."""


def tokenize_chat(tokenizer, messages: list[dict], max_len: int | None = None) -> tuple[list[int], list[int]]:
    """Render one chat with the model's template; labels are the token ids inside assistant turns, else -100.

    Works for any template whose rendering of a conversation prefix is a prefix of the full rendering (true for
    ChatML, Llama-3, Mistral, Qwen...): an assistant turn spans from the end of the prefix rendered with the
    generation prompt to the end of the prefix that includes the turn (so the end-of-turn token is learned).
    """
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        end = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (full.startswith(start) and full.startswith(end) and len(start) <= len(end)):
            raise TrainingError(
                "the chat template does not render conversations incrementally (prefix of turn "
                f"{i} differs from the full rendering), so assistant tokens cannot be located; "
                "use a model with a ChatML/Llama-style template"
            )
        spans.append((len(start), len(end)))
    if not spans:
        raise TrainingError("sample has no assistant turn to learn from")
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, labels = enc["input_ids"], []
    for tok_id, (a, _b) in zip(ids, enc["offset_mapping"], strict=True):
        labels.append(tok_id if any(s <= a < e for s, e in spans) else IGNORE_INDEX)
    if max_len is not None:
        ids, labels = ids[:max_len], labels[:max_len]
    return ids, labels


def tokenize_samples(tokenizer, samples: list[dict], max_len: int) -> list[tuple[list[int], list[int]]]:
    out = []
    for n, s in enumerate(samples):
        try:
            ids, labels = tokenize_chat(tokenizer, s["messages"], max_len)
        except TrainingError as e:
            raise TrainingError(f"sample {s.get('id', n)}: {e}") from None
        except Exception as e:  # jinja errors from a template that cannot render these roles
            raise TrainingError(
                f"sample {s.get('id', n)}: the chat template failed to render it ({type(e).__name__}: {e})"
            ) from None
        if any(label != IGNORE_INDEX for label in labels):  # truncated away entirely -> nothing to learn
            out.append((ids, labels))
    return out


def pack(tokenized: list[tuple[list[int], list[int]]], seq_len: int, pad_id: int) -> list[dict]:
    """Best-fit-decreasing bin packing of samples into rows of seq_len tokens (position ids restart per
    sample). Longest samples are placed first, each into the fullest row it still fits, so rows end up nearly
    full: on the demo corpus ~98% of row tokens are real tokens, versus ~85% when filling rows in order."""
    order = sorted(range(len(tokenized)), key=lambda i: -len(tokenized[i][0]))
    rows: list[list[int]] = []  # sample indices per row
    free: list[tuple[int, int]] = []  # sorted (free tokens, row index)
    for i in order:
        n = len(tokenized[i][0])
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            cap, r = free.pop(k)
        else:
            cap, r = seq_len, len(rows)
            rows.append([])
        rows[r].append(i)
        bisect.insort(free, (cap - n, r))
    out = []
    for members in rows:
        ids, labels, pos = [], [], []
        for i in members:
            s_ids, s_labels = tokenized[i]
            ids += s_ids
            labels += s_labels
            pos += list(range(len(s_ids)))
        out.append(_row(ids, labels, pos, seq_len, pad_id))
    return out


def _row(ids, labels, pos, seq_len, pad_id) -> dict:
    n = len(ids)
    pad = seq_len - n
    return {
        "input_ids": ids + [pad_id] * pad,
        "labels": labels + [IGNORE_INDEX] * pad,
        "position_ids": pos + list(range(pos[-1] + 1, pos[-1] + 1 + pad)) if pad else pos,
        "attention_mask": [1] * n + [0] * pad,
    }


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def _collate(pad_id: int):
    def collate(batch: list[dict]) -> dict:
        longest = max(len(b["input_ids"]) for b in batch)
        out = {"use_cache": False}  # a KV cache during training is waste, and it disables the packed mask below
        keys = [("input_ids", pad_id), ("labels", IGNORE_INDEX)]
        if "position_ids" in batch[0]:
            # Packed rows: NO attention_mask, so transformers derives a block-diagonal causal mask from the
            # restarting position ids and packed samples cannot attend to each other. (With a 2D mask they
            # would: it only marks padding.) The pad tail continues the last sample's positions; it has no labels.
            out["position_ids"] = torch.tensor([b["position_ids"] for b in batch])
        else:
            keys.append(("attention_mask", 0))
        for key, fill in keys:
            out[key] = torch.tensor([b[key] + [fill] * (longest - len(b[key])) for b in batch])
        return out

    return collate


def build_dataset(tokenizer, samples: list[dict], cfg: TrainConfig) -> tuple[_ListDataset, int, int]:
    """Returns (dataset, total tokens, loss tokens)."""
    tokenized = tokenize_samples(tokenizer, samples, cfg.max_seq_len)
    total = sum(len(i) for i, _ in tokenized)
    target = sum(sum(1 for x in lab if x != IGNORE_INDEX) for _, lab in tokenized)
    if cfg.packing:
        rows = pack(tokenized, cfg.max_seq_len, tokenizer.pad_token_id)
    else:
        rows = [{"input_ids": i, "labels": lab, "attention_mask": [1] * len(i)} for i, lab in tokenized]
    return _ListDataset(rows), total, target

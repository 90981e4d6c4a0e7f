"""Generation: greedy answers from a loaded model (streamed one by one to time them, or batched), and the
latency summary of many generations (TTFT percentiles, decode rate, token counts).

torch / transformers are imported inside the functions; this module never imports dagster.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .metrics import _PLACEHOLDER_TAG, _mean, _r, placeholder_tags

__all__ = ["Generation", "copy_bias_processor", "copy_logit_bias", "generate_answer", "generate_batch",
           "latency_summary"]

TAG_BAN = -100.0  # logit added to tokens only anonymization tags have, whatever copy_bias is: never generated


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    new_tokens: int
    ttft_ms: float | None  # time from calling generate to the first new token
    decode_tok_s: float | None  # tokens/s after the first one (None with fewer than 2 tokens)
    total_ms: float


def _token_clock():
    """A generate() streamer that only stamps when each new token arrives: no text decoding, no queue, no
    consumer thread, so the timing is the model's (a TextIteratorStreamer + thread costs ~30% of decode speed
    on a 2-core CPU)."""
    from transformers.generation.streamers import BaseStreamer

    class TokenClock(BaseStreamer):
        def __init__(self):
            self.token_times: list[float] = []
            self._prompt_seen = False

        def put(self, value):
            if not self._prompt_seen:  # generate() first puts the prompt
                self._prompt_seen = True
                return
            self.token_times.extend([time.perf_counter()] * max(1, int(value.numel())))

        def end(self):
            pass

    return TokenClock()


def copy_logit_bias(encode: Callable[[str], Sequence[int]], text: str, bias: float) -> dict[int, float]:
    """Token id -> logit bonus for copy-biased decoding over `text` (the retrieved excerpts): +bias for the tokens
    of its words, and a ban (TAG_BAN) on tokens that only its anonymization tags have (`<PERSON_1>`): a
    placeholder is never something to show a user, and -bias alone still let a Syncthing answer copy one.
    `encode`: the runtime's tokenizer, text -> token ids."""
    tags = placeholder_tags(text)
    favoured = set(encode(_PLACEHOLDER_TAG.sub(" ", text)))
    out = dict.fromkeys(favoured, bias)
    if tags:  # a tag's tokens differ at the start of a line and after a space
        tag_ids = set(encode("\n".join(tags))) | set(encode(" " + " ".join(tags)))
        out.update(dict.fromkeys(tag_ids - favoured, TAG_BAN))
    return out


def copy_bias_processor(tokenizer, texts: Sequence[str | None], bias: float):
    """Copy-biased decoding: a LogitsProcessor adding each batch row's copy_logit_bias (its retrieved excerpts;
    None = no bias for that row). A 135M model otherwise states a half-remembered number or wording instead of
    the excerpt's (measured on the demo, retrieval.copy_bias). None when there is nothing to bias."""
    if not bias or not any(texts):
        return None
    import torch
    from transformers import LogitsProcessor

    def encode(t: str) -> list[int]:
        return tokenizer(t, add_special_tokens=False)["input_ids"]

    rows = [copy_logit_bias(encode, t, bias) if t else {} for t in texts]

    class CopyBias(LogitsProcessor):
        def __init__(self):
            self.add = None  # built at the first step, when the logits' vocabulary size and device are known

        def __call__(self, input_ids, scores):
            if self.add is None:
                vocab = scores.shape[-1]
                self.add = torch.zeros(len(rows), vocab, dtype=scores.dtype, device=scores.device)
                for row, row_bias in enumerate(rows):
                    ids = [i for i in row_bias if i < vocab]
                    self.add[row, ids] = torch.tensor([row_bias[i] for i in ids], dtype=scores.dtype,
                                                      device=scores.device)
            return scores + self.add

    return CopyBias()


def logits_processors(processor) -> dict:
    """generate() keyword arguments for an optional LogitsProcessor."""
    from transformers import LogitsProcessorList

    return {"logits_processor": LogitsProcessorList([processor])} if processor is not None else {}


def _greedy_config(model, max_new_tokens: int, begin_suppress_tokens: Sequence[int] | None = None):
    gc_ = copy.deepcopy(model.generation_config)
    gc_.begin_suppress_tokens = list(begin_suppress_tokens) if begin_suppress_tokens else None
    gc_.do_sample = False
    gc_.num_beams = 1
    for k in ("temperature", "top_p", "top_k", "min_p", "typical_p"):
        if hasattr(gc_, k):
            setattr(gc_, k, None)
    gc_.max_new_tokens = max_new_tokens
    gc_.max_length = None
    return gc_


def _messages(system_prompt: str | None, user_message: str) -> list[dict]:
    """Chat messages: the system prompt (left out when empty) and the user message."""
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": user_message}
    ]


def _system_prompts(system_prompt: str | Sequence[str] | None, n: int) -> list[str | None]:
    """One system prompt per user message: a str (or None) applies to all, a sequence must have one per message."""
    if system_prompt is None or isinstance(system_prompt, str):
        return [system_prompt] * n
    prompts = list(system_prompt)
    if len(prompts) != n:
        raise ValueError(f"system_prompt: got {len(prompts)} system prompts for {n} user messages; pass one str "
                         "for all of them or exactly one per user message")
    return prompts


def generate_answer(model, tokenizer, user_message: str, system_prompt: str | None, max_new_tokens: int,
                    begin_suppress_tokens: Sequence[int] | None = None, copy_text: str | None = None,
                    copy_bias: float = 0.0) -> Generation:
    """Greedy answer to one user message under its system prompt (none when empty), timing the first token and the
    decode rate. `begin_suppress_tokens`: token ids the answer may not start with (see grounding.refusal_start_ids);
    `copy_text` / `copy_bias`: copy-biased decoding towards the retrieved excerpts (copy_bias_processor)."""
    import torch

    messages = _messages(system_prompt, user_message)
    enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    enc = {k: v.to(model.device) for k, v in enc.items()}
    prompt_len = int(enc["input_ids"].shape[1])
    clock = _token_clock()
    t0 = time.perf_counter()
    with torch.inference_mode():
        ids = model.generate(**enc, generation_config=_greedy_config(model, max_new_tokens, begin_suppress_tokens),
                             streamer=clock, **logits_processors(copy_bias_processor(tokenizer, [copy_text], copy_bias)))
    total = time.perf_counter() - t0
    new_ids = ids[0, prompt_len:]
    text = tokenizer.decode(new_ids, skip_special_tokens=True).strip()
    times = clock.token_times
    ttft = (times[0] - t0) * 1000 if times else None
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) >= 2 and times[-1] > times[0] else None
    return Generation(text, prompt_len, int(new_ids.numel()), _r(ttft, 2), _r(rate, 2), round(total * 1000, 2))


def generate_batch(model, tokenizer, user_messages: Sequence[str], system_prompt: str | Sequence[str] | None,
                   max_new_tokens: int, batch_size: int = 16,
                   on_batch: Callable[[int], None] | None = None,
                   begin_suppress_tokens: Sequence[int] | None = None,
                   copy_texts: Sequence[str | None] | None = None, copy_bias: float = 0.0) -> list[Generation]:
    """Greedy answers for many prompts, batched with left padding (no per-token timing: ttft/decode are None).
    `copy_texts`: one text (or None) per message for copy-biased decoding with `copy_bias` (copy_bias_processor).
    Batching amortizes the per-step cost of a small model on CPU; the streamed path measures latency.

    system_prompt: one str for every message, or a sequence of the same length as user_messages (one per
    message, e.g. each with its own retrieved context); an empty one means no system message."""
    import torch

    systems = _system_prompts(system_prompt, len(user_messages))
    out: list[Generation] = []
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for i in range(0, len(user_messages), batch_size):
            chunk = user_messages[i:i + batch_size]
            texts = [tokenizer.apply_chat_template(_messages(sp, m), add_generation_prompt=True, tokenize=False)
                     for sp, m in zip(systems[i:i + batch_size], chunk, strict=True)]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            t0 = time.perf_counter()
            with torch.inference_mode():
                bias = copy_bias_processor(tokenizer, copy_texts[i:i + batch_size], copy_bias) if copy_texts else None
                ids = model.generate(**enc, generation_config=_greedy_config(model, max_new_tokens,
                                                                             begin_suppress_tokens),
                                     pad_token_id=tokenizer.pad_token_id, **logits_processors(bias))
            per = (time.perf_counter() - t0) * 1000 / len(chunk)
            width = enc["input_ids"].shape[1]
            for row, mask in zip(ids, enc["attention_mask"], strict=True):
                new = row[width:]
                stop = [t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None]
                n_new = next((k + 1 for k, t in enumerate(new.tolist()) if t in stop), len(new))
                text = tokenizer.decode(new[:n_new], skip_special_tokens=True).strip()
                out.append(Generation(text, int(mask.sum()), n_new, None, None, round(per, 2)))
            if on_batch:
                on_batch(len(out))
    finally:
        tokenizer.padding_side = side
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method)."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency_summary(rows: Iterable[dict | Generation]) -> dict:
    """p50/p95/mean TTFT (ms), mean decode tok/s, mean prompt/new tokens over generations (dicts or Generation)."""
    def get(r, k):
        return getattr(r, k, None) if isinstance(r, Generation) else r.get(k)

    rows = list(rows)
    ttft = [get(r, "ttft_ms") for r in rows if get(r, "ttft_ms") is not None]
    rate = [get(r, "decode_tok_s") for r in rows if get(r, "decode_tok_s") is not None]
    prompt = [get(r, "prompt_tokens") for r in rows if get(r, "prompt_tokens") is not None]
    new = [get(r, "new_tokens") for r in rows if get(r, "new_tokens") is not None]
    return {
        "n": len(rows),
        "ttft_ms_p50": _r(percentile(ttft, 50), 2),
        "ttft_ms_p95": _r(percentile(ttft, 95), 2),
        "ttft_ms_mean": _r(_mean(ttft), 2),
        "decode_tok_s_mean": _r(_mean(rate), 2),
        "prompt_tokens_mean": _r(_mean(prompt), 1),
        "new_tokens_mean": _r(_mean(new), 1),
    }


"""Verification: a quantized variant compared with the merged model (logits and greedy output), in
transformers and, for GGUF files, in llama.cpp itself."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from .common import _chat

# Generic support-style questions used when the caller gives no prompts (the model's own answers are compared).
DEFAULT_VERIFY_PROMPTS = [
    "How do I reset my password?",
    "Can I get a refund for my last order?",
    "What are your opening hours?",
    "My delivery has not arrived yet. What should I do?",
    "How do I contact a human agent?",
    "Do you ship internationally?",
    "How can I change the email address on my account?",
    "What is 12 plus 30?",
]


def _as_messages(prompt, system_prompt: str | None = None) -> list[dict]:
    if isinstance(prompt, str):
        msgs = [{"role": "user", "content": prompt}]
        if system_prompt:
            msgs.insert(0, {"role": "system", "content": system_prompt})
        return msgs
    return list(prompt)


def _encode(tokenizer, prompt, device: str):
    text = _chat(tokenizer, _as_messages(prompt))
    return tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)


def _model_device(model) -> str:
    try:
        return str(next(model.parameters()).device)
    except StopIteration:  # pragma: no cover
        return "cpu"


def _outputs(model, tokenizer, prompts, max_new_tokens: int) -> list[dict]:
    import torch

    device = _model_device(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    res = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in prompts:
            ids = _encode(tokenizer, p, device)
            logits = model(ids).logits[0].float().cpu()
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=pad)
            res.append({"logits": logits, "tokens": gen[0, ids.shape[1]:].cpu().tolist()})
    return res


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else float("nan")


def _prefix_share(reference: Sequence[int], candidate: Sequence[int]) -> float:
    """Share of the reference continuation the candidate reproduces before their first difference."""
    n = 0
    while n < min(len(reference), len(candidate)) and reference[n] == candidate[n]:
        n += 1
    return n / max(1, len(reference))


def verify_variant(reference_model, candidate_model, tokenizer, prompts: Sequence, *, max_new_tokens: int = 16,
                   reference_outputs: list[dict] | None = None) -> dict:
    """Compare a candidate (quantized) model with the reference (merged) model on chat prompts.

    `prompts`: chat message lists, or plain strings (taken as a user turn). Returns:
    - next_token_*: logits at the last prompt position (the first answer token): max abs diff, mean cosine,
      top-1 agreement over prompts;
    - all_positions_*: the same over every prompt position;
    - greedy_exact_match: share of prompts whose greedy continuation (max_new_tokens) is identical;
      greedy_token_agreement: mean share of continuation tokens equal before the first divergence;
    - top1_agreement / greedy_match: aliases of next_token_top1_agreement / greedy_exact_match.
    """
    import torch

    ref = reference_outputs or _outputs(reference_model, tokenizer, prompts, max_new_tokens)
    cand = _outputs(candidate_model, tokenizer, prompts, max_new_tokens)
    nt_diff, nt_cos, nt_top1 = [], [], []
    all_diff, all_cos, all_top1 = [], [], []
    exact, prefix = [], []
    for r, c in zip(ref, cand, strict=True):
        rl, cl = r["logits"], c["logits"]
        nt_diff.append(float((rl[-1] - cl[-1]).abs().max()))
        nt_cos.append(float(torch.nn.functional.cosine_similarity(rl[-1], cl[-1], dim=0)))
        nt_top1.append(float(rl[-1].argmax() == cl[-1].argmax()))
        all_diff.append(float((rl - cl).abs().max()))
        all_cos.extend(torch.nn.functional.cosine_similarity(rl, cl, dim=-1).tolist())
        all_top1.extend((rl.argmax(-1) == cl.argmax(-1)).float().tolist())
        exact.append(float(r["tokens"] == c["tokens"]))
        prefix.append(_prefix_share(r["tokens"], c["tokens"]))
    return {
        "prompts": len(ref),
        "next_token_max_abs_diff": max(nt_diff),
        "next_token_cosine": _mean(nt_cos),
        "next_token_top1_agreement": _mean(nt_top1),
        "all_positions_max_abs_diff": max(all_diff),
        "all_positions_cosine": _mean(all_cos),
        "all_positions_top1_agreement": _mean(all_top1),
        "greedy_exact_match": _mean(exact),
        "greedy_token_agreement": _mean(prefix),
        # short aliases (used in the Dagster asset's metadata table)
        "top1_agreement": _mean(nt_top1),
        "greedy_match": _mean(exact),
        "max_new_tokens": max_new_tokens,
        "sample_reference": tokenizer.decode(ref[0]["tokens"], skip_special_tokens=False) if ref else "",
        "sample_candidate": tokenizer.decode(cand[0]["tokens"], skip_special_tokens=False) if cand else "",
    }


def verify_gguf_in_llama_cpp(gguf_path: Path, tokenizer, prompts: Sequence, reference_outputs: list[dict],
                             max_new_tokens: int) -> dict:
    """Run a GGUF in llama.cpp itself (what Ollama and llama-server use) and compare with the merged model's
    reference outputs: same prompt tokens, next-token top-1, greedy continuation. Needs llama-cpp-python."""
    import numpy as np
    import torch
    from llama_cpp import Llama

    texts = [_chat(tokenizer, _as_messages(p)) for p in prompts]
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    # logits_all keeps every position's logits (n_ctx x vocab floats), so size the context to the prompts
    llm = Llama(model_path=str(gguf_path), n_ctx=max(map(len, encoded)) + max_new_tokens + 8, logits_all=True,
                n_threads=torch.get_num_threads(), verbose=False)
    same_tokens, top1, exact, prefix = [], [], [], []
    try:
        for text, ids, ref in zip(texts, encoded, reference_outputs, strict=True):
            same_tokens.append(float(llm.tokenize(text.encode(), add_bos=False, special=True) == ids))
            llm.reset()
            llm.eval(ids)
            top1.append(float(int(np.argmax(llm.scores[llm.n_tokens - 1])) == int(ref["logits"][-1].argmax())))
            out = []
            for token in llm.generate(ids, top_k=1, temp=0.0, reset=True):
                if llm.token_eos() == token or len(out) >= len(ref["tokens"]):
                    break
                out.append(int(token))
            rt = [t for t in ref["tokens"] if t != llm.token_eos()]
            exact.append(float(out == rt))
            prefix.append(_prefix_share(rt, out))
    finally:
        llm.close()
    return {"llama_cpp_prompt_tokens_match": _mean(same_tokens), "llama_cpp_top1_agreement": _mean(top1),
            "llama_cpp_greedy_match": _mean(exact), "llama_cpp_greedy_token_agreement": _mean(prefix)}

"""Domain-tuning the retrieval embedder on the corpus's own questions, before the index is built.

A general-purpose embedder (all-MiniLM-L6-v2) does not know that "what would 24 hours of riding set me back"
asks for the Day Pass row of a price list. The corpus itself says how its users ask, with no gold data and no
teacher model:
  faq        each FAQ question -> its own row;
  doc        the heuristic question for each document chunk (core/doc_questions.py) -> that chunk;
  doc_fact   the single-fact questions a chunk's sentences give -> that chunk;
  chat       each customer turn of a support chat (real customer wording) -> the chunk most similar to the
             agent's reply, when that similarity is at least `chat_min_score` (the reply restates the chunk).
Training: in-batch negatives (the contrastive loss sentence-transformers calls MultipleNegativesRankingLoss,
scale 20; columns of the same chunk are merged so a duplicate is never a negative), AdamW, fixed seed.
Never imports dagster.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .chunking import Chunk
from .doc_questions import doc_question, fact_questions
from .progress import Progress
from .retrieval import chunk_texts  # what the index embeds: tuning sees exactly what search compares

__all__ = ["TuningPair", "tune_embedder", "tuning_pairs"]

_SCALE = 20.0  # cosine -> logit scale of the contrastive loss (sentence-transformers' default)
_MIN_CHAT_WORDS = 5  # "ok thanks" and "yes" are not questions


@dataclass(frozen=True)
class TuningPair:
    query: str
    chunk: int  # index into the chunk list
    source: str  # faq | doc | doc_fact | chat


def tuning_pairs(records: Sequence[dict], chunks: Sequence[Chunk], chunk_vectors, embedder, company: str,
                 chat_min_score: float = 0.5, fact_questions_per_chunk: int = 3) -> list[TuningPair]:
    """(query, chunk) pairs from the anonymized corpus (see the module docstring); `chunk_vectors` are the
    untuned embeddings of `chunk_texts(chunks)`, used to find the chunk a chat reply restates."""
    pairs: list[TuningPair] = []
    for i, c in enumerate(chunks):
        if c.kind == "faq":
            pairs.append(TuningPair(c.text.split("\n", 1)[0], i, "faq"))
            continue
        path = c.heading.split(" › ") if c.heading else []
        pairs.append(TuningPair(doc_question(company, c.title, path, c.id), i, "doc"))
        pairs += [TuningPair(q, i, "doc_fact")
                  for q, _ in fact_questions(c.text, c.title, path, company, fact_questions_per_chunk)]
    asked: list[tuple[str, str]] = []  # (customer turn, agent reply)
    for rec in records:
        if rec.get("kind") != "chat":
            continue
        msgs = rec.get("messages", [])
        asked += [(a["content"], b["content"]) for a, b in zip(msgs, msgs[1:], strict=False)
                  if a.get("role") == "user" and b.get("role") == "assistant"
                  and len(a.get("content", "").split()) >= _MIN_CHAT_WORDS and b.get("content", "").strip()]
    if asked and len(chunks):
        sims = embedder.embed([reply for _, reply in asked]) @ chunk_vectors.T
        best, where = sims.max(dim=1)
        pairs += [TuningPair(q, int(j), "chat") for (q, _), s, j in zip(asked, best.tolist(), where.tolist(),
                                                                        strict=True) if s >= chat_min_score]
    return pairs


def tune_embedder(embedder, chunks: Sequence[Chunk], pairs: Sequence[TuningPair], epochs: int, lr: float,
                  batch_size: int = 32, seed: int = 0, progress=None) -> dict:
    """Fine-tune `embedder.model` in place on `pairs`; returns a report (pairs by source, losses, seconds)."""
    import torch

    texts = chunk_texts(chunks)
    model = embedder.model
    torch.manual_seed(seed)
    rng = random.Random(seed)
    order = list(pairs)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    steps = epochs * -(-len(order) // batch_size)
    shown = Progress(steps, progress, "embedder tuning", unit="steps")

    t0 = time.perf_counter()
    epoch_loss: list[float] = []
    model.train()
    try:
        for _ in range(epochs):
            rng.shuffle(order)
            total = 0.0
            for s in range(0, len(order), batch_size):
                batch = order[s:s + batch_size]
                columns = sorted({p.chunk for p in batch})  # one column per distinct chunk
                target = torch.tensor([columns.index(p.chunk) for p in batch], device=embedder.device)
                logits = _SCALE * embedder.pooled([p.query for p in batch]) @ embedder.pooled(
                    [texts[j] for j in columns]).T
                loss = torch.nn.functional.cross_entropy(logits, target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(batch)
                shown.step(note=f"loss {loss.item():.3f}")
            epoch_loss.append(round(total / max(len(order), 1), 4))
    finally:
        model.eval()
    return {"pairs": len(order), "pairs_by_source": dict(Counter(p.source for p in order)), "epochs": epochs,
            "learning_rate": lr, "loss_by_epoch": epoch_loss, "seconds": round(time.perf_counter() - t0, 1)}

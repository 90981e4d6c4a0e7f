"""Retrieval-aware training samples (RAFT: Zhang et al. 2024, "Adapting Language Model to Domain Specific RAG").

Every sample's system message becomes `retrieval.context_system_message(...)` over the chunks the index returns
for its first user question: exactly what `serve` and the eval '+rag' variants show the model. For a sample
whose answer came from known chunks (an FAQ row, a document section) those "oracle" chunks are in the context
for `oracle_share` of the samples (deterministic per sample id), put in place of the lowest-ranked hit when
retrieval missed them, and removed (distractors only) for the rest, so the model learns to use the right
excerpt when it is there without learning that an answer must be copied from whatever is there. A support
chat's oracles are the chunks its agent replies restate (`chat_oracle_ids`): the customer's own wording, answered
from an excerpt that shares few of its words. Feedback and refusal samples, and chats whose replies restate no
chunk, carry what the index returns for their question. Never imports dagster.

An FAQ row's chunk holds its question word for word, so a model trained on it can learn to find the answer by
string matching, which fails on a user's own wording (the held-out questions). For `paraphrase_share` of the FAQ
samples that show an oracle, the row's own chunk is hidden and the oracle is another chunk that states the same
facts (another FAQ row or a document section; `paraphrase_chunk_ids`), as at serving time.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence

from .policy import Policy
from .retrieval import Hit, RetrievalIndex, context_system_message

__all__ = ["add_retrieved_context", "chat_oracle_ids", "chunk_terms", "contextualize", "oracle_chunk_ids",
           "paraphrase_chunk_ids"]

_WORD = re.compile(r"\w+")
_NUMBER = re.compile(r"\d(?:[\d,.:]*\d)?")


def _unit(seed: int, key: str) -> float:
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / 16**12


def oracle_chunk_ids(sample: dict, index: RetrievalIndex) -> set[str]:
    """Chunks the sample's answer came from: the FAQ row's chunk; for a document sample, the chunks of that
    document most of whose words are in the answer (a section answered whole), else the one chunk that holds
    most of the answer's words (a fact pair or a teacher pair: a short answer taken from one chunk; at least 80%
    of its words, ties to the chunk of the sample's own section). Empty for chats, refusals and feedback."""
    if sample["source"] == "faq":
        return {c.id for c in index.chunks if c.record_id == sample["id"]}
    if sample["source"] not in ("doc", "teacher"):
        return set()
    record_id, _, section = sample["id"].partition("#s")
    own = f"{record_id}#c{section.split('.')[0]}"
    answer = set(_WORD.findall(_answer(sample).lower()))
    whole, best, best_share = set(), None, 0.0
    for c in index.chunks:
        if c.record_id != record_id:
            continue
        words = _WORD.findall(c.text.lower())
        if words and sum(w in answer for w in words) / len(words) >= 0.6:
            whole.add(c.id)
        if answer:
            share = len(answer & set(words)) / len(answer)
            if share > best_share or (share == best_share and c.id == own):
                best, best_share = c.id, share
    if whole:
        return whole
    return {best} if best is not None and best_share >= 0.8 else set()


def chat_oracle_ids(samples: Sequence[dict], index: RetrievalIndex, min_score: float) -> list[set[str]]:
    """Per sample: for a chat, the chunks its assistant replies restate (each reply's best hit, when its cosine is
    at least `min_score`; retrieval.chat_min_score, the same rule embedder tuning pairs customer turns by);
    empty for every other sample. Without them the chunk a chat's answer came from was retrieved for only 49
    of the 66 demo chats that now show it: the rest trained answering from memory."""
    replies = [(i, m["content"]) for i, s in enumerate(samples) if s["source"] == "chat"
               for m in s["messages"] if m["role"] == "assistant" and m["content"].strip()]
    out: list[set[str]] = [set() for _ in samples]
    for (i, _), hits in zip(replies, index.search_many([r for _, r in replies], k=1), strict=True):
        if hits and hits[0].score >= min_score:
            out[i].add(hits[0].chunk.id)
    return out


def _answer(sample: dict) -> str:
    return " ".join(m["content"] for m in sample["messages"] if m["role"] == "assistant")


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def chunk_terms(index: RetrievalIndex) -> dict[str, tuple[set[str], set[str]]]:
    """Each chunk's numbers and lower-cased words, computed once for all the samples matched against them."""
    return {c.id: (_numbers(c.text), set(_WORD.findall(c.text.lower()))) for c in index.chunks}


def paraphrase_chunk_ids(sample: dict, index: RetrievalIndex, own: set[str],
                         terms: dict[str, tuple[set[str], set[str]]] | None = None) -> set[str]:
    """Chunks other than `own` that state the sample's answer: every number of the answer (prices, limits, hours:
    the facts users ask for) and at least half of its words of 4+ letters (60% for an answer without numbers).
    `terms`: chunk_terms(index) when matching many samples."""
    answer = _answer(sample)
    numbers = _numbers(answer)
    words = {w for w in _WORD.findall(answer.lower()) if len(w) >= 4 and not w.isdigit()}
    if not words:
        return set()
    need = (0.5 if numbers else 0.6) * len(words)
    terms = terms if terms is not None else chunk_terms(index)
    return {cid for cid, (chunk_numbers, chunk_words) in terms.items()
            if cid not in own and numbers <= chunk_numbers and len(words & chunk_words) >= need}


def add_retrieved_context(samples: Sequence[dict], index: RetrievalIndex, policy: Policy, k: int,
                          oracle_share: float, seed: int = 42,
                          min_score: float | None = None, views: int = 1,
                          paraphrase_share: float = 0.0,
                          chat_min_score: float | None = None) -> tuple[list[dict], dict]:
    """Samples with retrieved context in their system message (see module docstring), and a report.

    `views` > 1 repeats every sample that has an oracle with another draw of context: distractors picked from
    the top 2k hits, the oracle (or not, per `oracle_share`) at a random position. Views share the sample's
    `group`, so they land in the same train/eval split. More practice at finding the answer among excerpts.

    With `min_score` (retrieval.min_score), refusal samples whose best hit scores below it are marked
    `drop_reason`: `serve` refuses those questions without asking the model, so training the model on them only
    teaches it to refuse more (measured: false refusals 0.20 with all refusal examples).

    With `chat_min_score` (retrieval.chat_min_score), chats get oracles too (`chat_oracle_ids`)."""
    questions = [next(m["content"] for m in s["messages"] if m["role"] == "user") for s in samples]
    oracles = [oracle_chunk_ids(s, index) for s in samples]
    if chat_min_score is not None:
        oracles = [o | c for o, c in zip(oracles, chat_oracle_ids(samples, index, chat_min_score), strict=True)]
    vectors = index.embedder.embed(questions) if questions else None  # once, for both searches below
    with_oracle = [bool(o) and _unit(seed, s["id"]) < oracle_share for s, o in zip(samples, oracles, strict=True)]
    # Samples trained without their oracle get the best hits that are not the oracle.
    exclude = [set() if w else o for w, o in zip(with_oracle, oracles, strict=True)]
    # Paraphrase samples: the FAQ row's own chunk (its question verbatim) hidden, another chunk with the facts shown.
    terms = chunk_terms(index) if paraphrase_share > 0 else {}
    for i, (s, w) in enumerate(zip(samples, with_oracle, strict=True)):
        if w and s["source"] == "faq" and _unit(seed + 3, s["id"]) < paraphrase_share:
            alternatives = paraphrase_chunk_ids(s, index, oracles[i], terms)
            if alternatives:
                exclude[i], oracles[i] = oracles[i], alternatives
    hits = index.search_many(questions, k=k, exclude=exclude, vectors=vectors)
    paraphrase_rows = [i for i, (e, w) in enumerate(zip(exclude, with_oracle, strict=True)) if e and w]
    # Which of several paraphrase oracles to insert when retrieval missed them all: the best-ranked one.
    wide = dict(zip(paraphrase_rows, index.search_many(
        [questions[i] for i in paraphrase_rows], k=max(index.candidates, k), exclude=[exclude[i] for i in paraphrase_rows],
        vectors=vectors[paraphrase_rows] if paraphrase_rows else None), strict=True)) if paraphrase_rows else {}
    # Extra views draw their distractors from the best non-oracle hits; no second search without them.
    pool = (index.search_many(questions, k=2 * k, exclude=[o | e for o, e in zip(oracles, exclude, strict=True)],
                              vectors=vectors) if views > 1
            else [[] for _ in samples])
    out, counts = [], Counter()
    for i, (s, hs, oracle, w, distractors) in enumerate(zip(samples, hits, oracles, with_oracle, pool, strict=True)):
        hs = list(hs)
        if oracle:
            present = any(h.chunk.id in oracle for h in hs)
            if w:
                counts["oracle_retrieved" if present else "oracle_missed"] += 1
            if w and not present:
                hs = _insert_oracle(hs[:-1] if len(hs) >= k else hs, index, oracle, _unit(seed + 1, s["id"]),
                                    ranked=wide.get(i, ()))
            counts["with_oracle" if w else "distractors_only"] += 1
        else:
            counts[f"retrieved_only_{s['source']}"] += 1
        out.append(_with_context(s, hs, oracle if w else set(), policy))
        if s["source"] == "refusal" and min_score is not None and (not hs or hs[0].score < min_score):
            out[-1]["drop_reason"] = ("refusal_below_min_score",
                                      f"best hit {hs[0].score if hs else 0:.2f} < retrieval.min_score {min_score}")
            counts["refusal_below_min_score"] += 1
        for v in range(1, views if oracle else 1):
            key = f"{s['id']}~{v}"
            wv = _unit(seed, key) < oracle_share
            ranked = sorted(distractors, key=lambda h: _unit(seed + 2, f"{key}:{h.chunk.id}"))
            hv = ranked[:k - 1] if wv else ranked[:k]
            if wv:
                hv = _insert_oracle(hv, index, oracle, _unit(seed + 1, key), ranked=wide.get(i, ()))
            counts["extra_views_with_oracle" if wv else "extra_views_distractors_only"] += 1
            out.append({**_with_context(s, hv, oracle if wv else set(), policy), "id": key, "group": s["id"]})
    n_oracle = counts["with_oracle"] + counts["distractors_only"]
    report = {**counts, "k": k, "views": views, "oracle_share_configured": oracle_share,
              "paraphrase_share_configured": paraphrase_share, "with_paraphrase_oracle": len(paraphrase_rows),
              "chats_with_restated_chunk": sum(bool(o) for s, o in zip(samples, oracles, strict=True)
                                               if s["source"] == "chat"),
              "oracle_share_actual": round(counts["with_oracle"] / n_oracle, 4) if n_oracle else None}
    return out, report


def _insert_oracle(hits: list[Hit], index: RetrievalIndex, oracle: set[str], where: float,
                   ranked: Sequence[Hit] = ()) -> list[Hit]:
    """`hits` with one oracle chunk (the first of `ranked` that is one, else the first id) at a position picked by
    `where` in [0, 1): anywhere, so that "the answer is last" is not what the model learns."""
    hits = list(hits)
    best = next((h.chunk.id for h in ranked if h.chunk.id in oracle), None) or next(iter(sorted(oracle)))
    hits.insert(min(int(where * (len(hits) + 1)), len(hits)), Hit(index.by_id[best], 0.0, 0.0))
    return hits


def contextualize(samples: Sequence[dict], index: RetrievalIndex, policy: Policy, rcfg,
                  seed: int) -> tuple[list[dict], dict]:
    """add_retrieved_context with the settings of a RetrievalConfig (instruction_pairs and the bench)."""
    return add_retrieved_context(samples, index, policy, rcfg.k, rcfg.oracle_share, seed=seed,
                                 min_score=rcfg.min_score, views=rcfg.context_views,
                                 paraphrase_share=rcfg.paraphrase_share, chat_min_score=rcfg.chat_min_score)


def _with_context(sample: dict, hits: list[Hit], oracle: set[str], policy: Policy) -> dict:
    system = context_system_message(policy.system_prompt, policy.company, hits)
    return {**sample, "messages": [{"role": "system", "content": system}, *sample["messages"][1:]],
            "context_ids": [h.chunk.id for h in hits], "oracle_ids": sorted(oracle)}

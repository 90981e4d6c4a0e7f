"""The retrieval index (dense + BM25, fused) and the one prompt template that puts retrieved chunks in front of
the model, shared by training pairs, evaluation and serving.

On disk (one folder, written by `build_index`):
  lancedb/            LanceDB table `chunks` (id, record_id, kind, title, heading, text, vector): an embedded
                      vector store; the same API runs on object storage for larger deployments
  bm25/               bm25s lexical index over the same chunks, in table order
  index.json          embedding model, dimensions, chunking settings, chunk count
Search: dense cosine top-N from LanceDB and BM25 top-N, fused by weighted reciprocal rank
(w/(rrf_k + rank)); each hit carries its dense cosine `score` (what the refusal threshold reads) and the fused
rank score. Never imports dagster.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .chunking import Chunk
from .progress import Progress

os.environ.setdefault("LANCE_LOG", "error")  # lance logs a WARN for every new table

__all__ = ["Hit", "RetrievalIndex", "build_index", "chunk_texts", "context_system_message", "excerpt_text",
           "fact_recall", "TABLE", "without_weakest_excerpt"]

TABLE = "chunks"
CONTEXT_HEADER = "Use these excerpts from {company}'s help center to answer:"


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # dense cosine similarity of query and chunk (-1..1)
    fused: float  # weighted reciprocal-rank fusion score that orders the hits

    def source(self) -> dict:
        """What a client sees in the response's `sources`."""
        c = self.chunk
        return {"id": c.id, "title": c.title, "heading": c.heading, "score": round(self.score, 4)}


def context_system_message(system_prompt: str, company: str, hits: Sequence[Hit | Chunk]) -> str:
    """The system message with retrieved context: the policy prompt, then numbered excerpts, the best-ranked
    last (nearest the question: measured +0.02 gold / +0.07 paraphrase accuracy over best-first on the same
    model). Training, eval and `serve` all call this, so the model sees exactly one template."""
    if not hits:
        return system_prompt
    parts = [system_prompt, "", CONTEXT_HEADER.format(company=company)]
    for i, h in enumerate(reversed(list(hits)), 1):
        c = h.chunk if isinstance(h, Hit) else h
        parts.append(f"[{i}] {c.label}\n{c.text}")
    return "\n".join(parts)


def excerpt_text(hits: Sequence[Hit | Chunk]) -> str:
    """The excerpts' titles, headings and text: what copy-biased decoding favours (retrieval.copy_bias)."""
    return "\n".join(chunk_texts([h.chunk if isinstance(h, Hit) else h for h in hits]))


def without_weakest_excerpt(sample: dict, chunks_by_id: dict[str, Chunk], system_prompt: str,
                            company: str) -> dict | None:
    """`sample` (with the `context_ids` / `oracle_ids` raft.add_retrieved_context gives it) with its lowest-ranked
    excerpt that is not an oracle removed and the system message rebuilt with the same template; None when only
    oracles are left. Makes a sample that is too long fit the token budget instead of dropping it."""
    ids = list(sample.get("context_ids") or [])
    oracle = set(sample.get("oracle_ids") or [])
    weakest = next((i for i in reversed(ids) if i not in oracle), None)
    if weakest is None:
        return None
    ids.remove(weakest)
    system = context_system_message(system_prompt, company, [chunks_by_id[i] for i in ids])
    return {**sample, "messages": [{"role": "system", "content": system}, *sample["messages"][1:]], "context_ids": ids}


def chunk_texts(chunks: Sequence[Chunk]) -> list[str]:
    """What the index embeds (and BM25 reads) for each chunk: its label, then its text."""
    return [f"{c.label}\n{c.text}" for c in chunks]


def _bm25_tokens(texts: list[str]):
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", show_progress=False)


def build_index(chunks: list[Chunk], embedder, out_dir: Path, settings: dict, progress=None) -> dict:
    """Embed `chunks`, write the LanceDB table and the BM25 index into `out_dir`; returns index.json's content."""
    import bm25s
    import lancedb

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    vectors = []
    step = 64
    shown = Progress(len(chunks), progress, "embedded", every_s=0, unit="chunks")
    for i in range(0, len(chunks), step):
        batch = chunks[i:i + step]
        vectors.append(embedder.embed(chunk_texts(batch)))
        shown.step(len(batch))
    import torch

    matrix = torch.cat(vectors).numpy().astype("float32")
    rows = [{**c.as_dict(), "vector": v.tolist()} for c, v in zip(chunks, matrix, strict=True)]
    lancedb.connect(str(out_dir / "lancedb")).create_table(TABLE, data=rows, mode="overwrite")
    bm25 = bm25s.BM25()
    bm25.index(_bm25_tokens(chunk_texts(chunks)), show_progress=False)
    bm25.save(str(out_dir / "bm25"))
    model = Path(embedder.folder)  # a tuned embedder inside the index is stored relative: the index can move
    model = model.relative_to(out_dir) if model.is_relative_to(out_dir) else model
    info = {"chunks": len(chunks), "embedding_model": str(model), "dim": int(matrix.shape[1]),
            "embed_seconds": round(time.perf_counter() - t0, 2), **settings}
    (out_dir / "index.json").write_text(json.dumps(info, indent=2))
    return info


class RetrievalIndex:
    """Opens an index folder for search. `embedder` defaults to the model the index was built with."""

    def __init__(self, folder: Path | str, embedder=None, *, k: int = 3, candidates: int = 20,
                 dense_weight: float = 1.0, bm25_weight: float = 0.0, rrf_k: int = 60):
        import bm25s
        import lancedb

        from .embeddings import Embedder

        self.folder = Path(folder)
        if not (self.folder / "index.json").exists():
            raise FileNotFoundError(f"{self.folder} is not a retrieval index (no index.json); materialize "
                                    "retrieval_index first (slm-pipeline run)")
        self.info = json.loads((self.folder / "index.json").read_text())
        self.table = lancedb.connect(str(self.folder / "lancedb")).open_table(TABLE)
        table = self.table.to_arrow()
        rows = table.drop_columns(["vector"]).to_pylist()
        self.chunks = [Chunk(**{k_: r[k_] for k_ in Chunk.__dataclass_fields__}) for r in rows]
        # Stored chunk vectors, for the dense score of hits only BM25 found (never re-embedded per query).
        self._vectors = ({c.id: v for c, v in zip(self.chunks, table["vector"].to_numpy(zero_copy_only=False),
                                                   strict=True)} if bm25_weight > 0 else {})
        self.by_id = {c.id: c for c in self.chunks}
        self.bm25 = bm25s.BM25.load(str(self.folder / "bm25")) if bm25_weight > 0 else None
        self.embedder = embedder or Embedder(self.folder / self.info["embedding_model"])  # absolute stays absolute
        self.k, self.candidates = k, candidates
        self.dense_weight, self.bm25_weight, self.rrf_k = dense_weight, bm25_weight, rrf_k

    def __len__(self) -> int:
        return len(self.chunks)

    def _dense(self, vector, n: int) -> list[tuple[str, float]]:
        res = self.table.search(vector).distance_type("cosine").limit(n).select(["id", "_distance"]).to_list()
        return [(r["id"], 1.0 - float(r["_distance"])) for r in res]

    def _lexical(self, queries: list[str], n: int) -> list[list[str]]:
        if self.bm25 is None:
            return [[] for _ in queries]
        n = min(n, len(self.chunks))
        docs, scores = self.bm25.retrieve(_bm25_tokens(queries), k=n, show_progress=False)
        return [[self.chunks[int(d)].id for d, s in zip(dr, sr, strict=True) if s > 0]
                for dr, sr in zip(docs, scores, strict=True)]

    def search_many(self, queries: Sequence[str], k: int | None = None,
                    exclude: Sequence[set[str]] | None = None, vectors=None) -> list[list[Hit]]:
        """Top-k hits per query (fused order). `exclude[i]`: chunk ids query i must not get (for distractors);
        `vectors`: the queries' embeddings when the caller has them already."""
        k = self.k if k is None else k
        queries = list(queries)
        if not queries:
            return []
        vectors = (self.embedder.embed(queries) if vectors is None else vectors).numpy()
        n = max(self.candidates, k + max((len(e) for e in exclude or []), default=0))
        lexical = self._lexical(queries, n)
        out = []
        for qi, vec in enumerate(vectors):
            dense = self._dense(vec, n)
            cos = dict(dense)
            fused: dict[str, float] = {}
            for rank, (cid, _) in enumerate(dense):
                fused[cid] = fused.get(cid, 0.0) + self.dense_weight / (self.rrf_k + rank + 1)
            for rank, cid in enumerate(lexical[qi]):
                fused[cid] = fused.get(cid, 0.0) + self.bm25_weight / (self.rrf_k + rank + 1)
            skip = exclude[qi] if exclude else set()
            ranked = [cid for cid in sorted(fused, key=lambda c: -fused[c]) if cid not in skip][:k]
            missing = [cid for cid in ranked if cid not in cos]
            if missing:  # lexical-only hits: their dense score, for the threshold and the sources
                import numpy as np

                cos.update({c: float(np.dot(vec, self._vectors[c])) for c in missing})
            out.append([Hit(self.by_id[cid], round(cos[cid], 4), fused[cid]) for cid in ranked])
        return out

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        return self.search_many([query], k)[0]


def fact_recall(hits_per_question: Sequence[Sequence[Hit]], gold: Sequence[dict], ks: Sequence[int]) -> dict:
    """recall@k: share of gold questions (with key facts) whose facts all (or any, per `match`) appear in the
    text of the top-k chunks, after the same normalization as key-fact accuracy."""
    from .metrics import key_fact_score

    out = {}
    scored = [(hits, g) for hits, g in zip(hits_per_question, gold, strict=True) if g.get("key_facts")]
    for k in ks:
        hit = [key_fact_score(" \n ".join(h.chunk.text for h in hits[:k]), g["key_facts"],
                              g.get("match", "all")).score for hits, g in scored]
        out[f"recall_at_{k}"] = round(sum(hit) / len(hit), 4) if hit else None
    return out


def open_index(folder: Path | str, rcfg, embedder=None) -> RetrievalIndex:
    """A RetrievalIndex over `folder` with the search settings of a RetrievalConfig."""
    return RetrievalIndex(folder, embedder, k=rcfg.k, candidates=rcfg.candidates, dense_weight=rcfg.dense_weight,
                          bm25_weight=rcfg.bm25_weight, rrf_k=rcfg.rrf_k)


def _tune(records: list[dict], chunks: list[Chunk], embedder, rcfg, company: str, out_dir: Path,
          gold: Sequence[dict], progress) -> dict:
    """Tune `embedder` on the corpus's own questions (core/retriever_tuning.py) and save it as `out_dir/embedder`
    (the index then loads it); the report has the gold recall of the untuned model for comparison."""
    from .retriever_tuning import tune_embedder, tuning_pairs

    untuned = embedder.embed(chunk_texts(chunks))
    pairs = tuning_pairs(records, chunks, untuned, embedder, company, rcfg.chat_min_score)
    report = {}
    if gold:
        top = (embedder.embed([g["question"] for g in gold]) @ untuned.T).topk(min(max(rcfg.k, 5), len(chunks)))
        hits = [[Hit(chunks[j], s, s) for s, j in zip(row_s, row_j, strict=True)]
                for row_s, row_j in zip(top.values.tolist(), top.indices.tolist(), strict=True)]
        report["untuned_recall"] = fact_recall(hits, gold, sorted({1, 3, rcfg.k, 5}))
    report.update(tune_embedder(embedder, chunks, pairs, rcfg.tune_epochs, rcfg.tune_learning_rate,
                                progress=progress))
    folder = Path(out_dir) / "embedder"
    embedder.model.save_pretrained(folder)
    embedder.tokenizer.save_pretrained(folder)
    embedder.folder = folder
    return report


def index_corpus(records: list[dict], rcfg, out_dir: Path, gold: Sequence[dict] = (), progress=None,
                 out_of_scope: Sequence[str] = (), max_text_loss: float = 0.10, company: str = "") -> dict:
    """Chunk anonymized `records`, tune the embedder on the corpus's own questions (retrieval.tune_epochs > 0),
    build the index in `out_dir`, train the scope classifier (core/scope.py) when `out_of_scope` examples are
    given, and measure it: recall@1/3/k of the gold key facts (and of the untuned embedder), search latency,
    the share of gold questions the classifier keeps in scope, and the share of the corpus text in some chunk
    (`coverage`, core/coverage.py). Returns the summary (also written as index.json)."""
    import statistics

    from .chunking import chunk_records
    from .coverage import index_coverage
    from .embeddings import Embedder, resolve_embedding_model

    chunks, chunk_report = chunk_records(records, rcfg.chunk_words, rcfg.overlap_words)
    if not chunks:
        raise ValueError("no chunks to index: the corpus has no FAQ rows or document text")
    embedder = Embedder(resolve_embedding_model(rcfg.embedding_model))
    tuning = _tune(records, chunks, embedder, rcfg, company, out_dir, gold, progress) if rcfg.tune_epochs else None
    settings = {"embedding_spec": rcfg.embedding_model, "chunk_words": rcfg.chunk_words,
                "overlap_words": rcfg.overlap_words, "chunking": chunk_report,
                "coverage": index_coverage(records, rcfg.chunk_words, rcfg.overlap_words, max_text_loss)}
    info = build_index(chunks, embedder, out_dir, settings, progress)
    index = open_index(out_dir, rcfg, embedder)
    summary = dict(info, tuning=tuning)
    from .scope import scope_training_texts, train_scope_classifier

    scope = train_scope_classifier(index, scope_training_texts(records), list(out_of_scope))
    if scope is not None:
        scope.save(out_dir)
        summary["scope"] = dict(scope.report)
    if gold:
        questions = [g["question"] for g in gold]
        index.search_many(questions[:2])  # warm-up
        times = []
        for q in questions:
            t0 = time.perf_counter()
            index.search(q)
            times.append((time.perf_counter() - t0) * 1000)
        hits = index.search_many(questions, k=max(rcfg.k, 5))
        summary["recall"] = fact_recall(hits, gold, sorted({1, 3, rcfg.k, 5}))
        summary["latency_ms_p50"] = round(statistics.median(times), 2)
        summary["gold_top_score_min"] = round(min(h[0].score for h in hits if h), 4)
        if scope is not None:  # held-out check: gold questions are never scope training examples
            probs = scope.probability(index.embedder.embed(questions), [h[0].score for h in hits])
            summary["scope"]["gold_in_scope_share"] = round(
                sum(p >= rcfg.scope_threshold for p in probs) / len(probs), 4)
    (Path(out_dir) / "index.json").write_text(json.dumps(summary, indent=2))
    return summary

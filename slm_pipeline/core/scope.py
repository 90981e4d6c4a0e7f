"""Is a question about the corpus at all? A small scope classifier that decides refusals before the model runs.

Logistic regression on the question's sentence embedding (the retrieval embedder) plus the best retrieval score,
trained with balanced class weights on what the project already has: the user turns of the FAQ rows and chats
(in scope) and the policy's `out_of_scope_examples` (out of scope). Neither the gold questions nor the probes
are used. Why not let the fine-tuned model refuse: a 135M model learns "refuse" as a phrasing, and it refused
20-27% of paraphrased in-domain questions (demo gold and an independent dev set), while a retrieval-score
threshold alone overlaps (in-domain questions score as low as 0.26, out-of-domain probes as high as 0.58).
Stored as scope.json in the retrieval index folder. Never imports dagster.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ScopeClassifier", "train_scope_classifier", "scope_training_texts"]

FILE = "scope.json"


@dataclass
class ScopeClassifier:
    weights: list[float]  # embedding dims, then the best retrieval score
    bias: float
    report: dict

    def probability(self, embeddings, top_scores: Sequence[float]) -> list[float]:
        """P(in scope) per question, from its embedding (tensor [n, dim]) and best retrieval score."""
        import torch

        x = torch.cat([embeddings.float(), torch.tensor(list(top_scores), dtype=torch.float32)[:, None]], 1)
        p = torch.sigmoid(x @ torch.tensor(self.weights) + self.bias)
        return [round(float(v), 4) for v in p]

    def save(self, folder: Path) -> Path:
        path = Path(folder) / FILE
        path.write_text(json.dumps({"weights": self.weights, "bias": self.bias, "report": self.report}))
        return path

    @classmethod
    def load(cls, folder: Path) -> ScopeClassifier | None:
        path = Path(folder) / FILE
        if not path.exists():
            return None
        doc = json.loads(path.read_text())
        return cls(doc["weights"], doc["bias"], doc.get("report", {}))


def scope_training_texts(records: list[dict]) -> list[str]:
    """In-scope examples from the corpus: every user turn of the FAQ rows and chats (anonymized)."""
    seen: dict[str, None] = {}
    for r in records:
        if r.get("kind") in ("faq", "chat"):
            for m in r.get("messages", []):
                if m.get("role") == "user" and m.get("content", "").strip():
                    seen.setdefault(m["content"].strip(), None)
    return list(seen)


def train_scope_classifier(index, in_scope: Sequence[str], out_of_scope: Sequence[str],
                           l2: float = 1e-3) -> ScopeClassifier | None:
    """Fit on the two example lists with `index` (a RetrievalIndex: embedder + search). None without examples
    of both kinds (the Grounder then falls back to retrieval.min_score)."""
    import torch

    if not in_scope or not out_of_scope:
        return None
    texts = list(in_scope) + list(out_of_scope)
    emb = index.embedder.embed(texts)
    top = [h[0].score if h else 0.0 for h in index.search_many(texts, k=1)]
    x = torch.cat([emb.float(), torch.tensor(top)[:, None]], 1)
    y = torch.cat([torch.ones(len(in_scope)), torch.zeros(len(out_of_scope))])
    # Balanced classes: each class weighs the same in the loss whatever the counts.
    sample_w = torch.where(y > 0, 0.5 / len(in_scope), 0.5 / len(out_of_scope))
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y, reduction="none")
                * sample_w).sum() + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        p = torch.sigmoid(x @ w + b)
    report = {"in_scope_examples": len(in_scope), "out_of_scope_examples": len(out_of_scope),
              "train_in_scope_recall": round(float((p[y > 0] >= 0.5).float().mean()), 4),
              "train_out_of_scope_recall": round(float((p[y == 0] < 0.5).float().mean()), 4)}
    return ScopeClassifier([round(float(v), 6) for v in w.detach()], round(float(b.detach()), 6), report)

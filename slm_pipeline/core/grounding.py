"""Grounding a chat in retrieved knowledge, the way `serve` and `chat` answer (and eval's '+rag' variants score).

For each request the last user message is searched in the retrieval index; the hits go into the system message
with `retrieval.context_system_message` (the template the model was fine-tuned on). Whether to answer at all is
decided before the model runs:
- with the index's scope classifier (core/scope.py; trained on the corpus's own questions vs the policy's
  out-of-scope examples), a question whose P(in scope) is below `retrieval.scope_threshold` gets the policy
  refusal without generation; every other question is answered, and the model may not start its answer with
  the refusal (its first token is suppressed): a 135M model otherwise refuses paraphrased in-domain questions;
- without a classifier (no out-of-scope examples in the policy), the best hit's cosine similarity decides:
  below `retrieval.min_score` the refusal, at or above `retrieval.answer_score` no refusal start, in between
  the model decides.
Never imports dagster.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from .retrieval import Hit, RetrievalIndex, context_system_message, excerpt_text, open_index
from .scope import ScopeClassifier

__all__ = ["Grounded", "Grounder", "load_grounder", "refusal_start_ids"]


@dataclass
class Grounded:
    messages: list[dict]  # the request's messages with the context system message
    hits: list[Hit] = field(default_factory=list)
    refusal: str | None = None  # set when the answer is the refusal (no generation)
    in_scope: bool = False  # the answer must not be the refusal
    scope_probability: float | None = None  # the scope classifier's P(in scope), when there is one

    def sources(self) -> list[dict]:
        return [h.source() for h in self.hits]

    def excerpts(self) -> str | None:
        """The retrieved excerpts' text (titles, headings, bodies) the answer is biased towards copying
        (retrieval.copy_bias); None when the answer is the refusal or nothing was retrieved."""
        if self.refusal is not None or not self.hits:
            return None
        return excerpt_text(self.hits)


class Grounder:
    def __init__(self, index: RetrievalIndex, system_prompt: str, company: str, refusal: str, min_score: float,
                 answer_score: float = 2.0, scope: ScopeClassifier | None = None, scope_threshold: float = 0.3):
        self.index, self.system_prompt, self.company = index, system_prompt, company
        self.refusal_text, self.min_score, self.answer_score = refusal, min_score, answer_score
        self.scope, self.scope_threshold = scope, scope_threshold
        self._lock = threading.Lock()  # one embedding pass at a time

    def ground_many(self, conversations: list[list[dict]]) -> list[Grounded]:
        questions = [next((m["content"] for m in reversed(c) if m["role"] == "user"), "") or " "
                     for c in conversations]
        with self._lock:
            vectors = self.index.embedder.embed(questions)
            hits = self.index.search_many(questions, vectors=vectors)
            probs = (self.scope.probability(vectors, [h[0].score if h else 0.0 for h in hits])
                     if self.scope else [None] * len(questions))
        return [self._decide(c, h, p) for c, h, p in zip(conversations, hits, probs, strict=True)]

    def ground(self, messages: list[dict]) -> Grounded:
        return self.ground_many([messages])[0]

    def _decide(self, messages: list[dict], hits: list[Hit], prob: float | None) -> Grounded:
        top = hits[0].score if hits else -1.0
        if prob is not None:
            refuse, in_scope = prob < self.scope_threshold, True
        else:
            refuse, in_scope = top < self.min_score, top >= self.answer_score
        if refuse:
            return Grounded(messages, hits, self.refusal_text, scope_probability=prob)
        # A client's own system message takes the policy prompt's place in the template.
        own = [m["content"] for m in messages if m["role"] == "system"]
        system = context_system_message("\n".join(own) if own else self.system_prompt, self.company, hits)
        rest = [m for m in messages if m["role"] != "system"]
        return Grounded([{"role": "system", "content": system}, *rest], hits, in_scope=in_scope,
                        scope_probability=prob)


def load_grounder(cfg, index_dir: str | Path | None = None) -> Grounder | None:
    """The Grounder for a pipeline config: the promoted model's index (promoted.json), else the latest
    retrieval_index; None when retrieval is off. Raises FileNotFoundError with the fix when no index exists."""
    from .artifacts import latest_version_dir
    from .policy import load_policy
    from .promotion import promoted_index_dir

    if not cfg.retrieval.enabled:
        return None
    artifacts = cfg.path(cfg.artifacts_dir)
    if index_dir is None:
        index_dir = promoted_index_dir(artifacts)
    if index_dir is None:
        index_dir = latest_version_dir(artifacts / "retrieval_index")
    if index_dir is None or not (Path(index_dir) / "index.json").exists():
        raise FileNotFoundError(
            f"retrieval is on (retrieval.enabled) but there is no retrieval index under {artifacts}; materialize "
            "retrieval_index (slm-pipeline run), pass --index PATH, or set retrieval.enabled: false")
    policy = load_policy(cfg.path(cfg.policy_file))
    return Grounder(open_index(index_dir, cfg.retrieval), policy.system_prompt, policy.company, policy.refusal,
                    cfg.retrieval.min_score, cfg.retrieval.answer_score, ScopeClassifier.load(Path(index_dir)),
                    cfg.retrieval.scope_threshold)


def refusal_start_ids(tokenizer, refusal: str) -> list[int]:
    """The token an answer starts with when it is the refusal: suppressed at the first position for in-scope
    questions (generate's `begin_suppress_tokens`)."""
    ids = tokenizer(refusal.strip(), add_special_tokens=False)["input_ids"]
    return ids[:1]

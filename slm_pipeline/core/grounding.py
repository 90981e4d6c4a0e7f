"""Grounding a chat in retrieved knowledge, the way `serve` and `chat` answer (and eval's '+rag' variants score).

For each request the last user message is searched in the retrieval index; the hits go into the system message
with `retrieval.context_system_message` (the template the model was fine-tuned on). The best hit's cosine
similarity then calibrates the refusal (thresholds measured on the demo corpus, see config.RetrievalConfig):
- below `retrieval.min_score` the question is not about the corpus: the answer is the policy refusal, without
  generating;
- at or above `retrieval.answer_score` it certainly is: the model may not start its answer with the refusal
  (its first token is suppressed), because a small model refuses paraphrased in-domain questions it should
  answer (measured: false refusals 0.20 -> 0.10, out-of-domain refusals 0.97 either way);
- in between, the fine-tuned model decides.
Never imports dagster.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from .retrieval import Hit, RetrievalIndex, context_system_message, open_index

__all__ = ["Grounded", "Grounder", "load_grounder", "refusal_start_ids"]


@dataclass
class Grounded:
    messages: list[dict]  # the request's messages with the context system message
    hits: list[Hit] = field(default_factory=list)
    refusal: str | None = None  # set when the answer is the refusal (no generation)
    in_scope: bool = False  # best hit >= answer_score: the answer must not be the refusal

    def sources(self) -> list[dict]:
        return [h.source() for h in self.hits]


class Grounder:
    def __init__(self, index: RetrievalIndex, system_prompt: str, company: str, refusal: str, min_score: float,
                 answer_score: float = 2.0):
        self.index, self.system_prompt, self.company = index, system_prompt, company
        self.refusal_text, self.min_score, self.answer_score = refusal, min_score, answer_score
        self._lock = threading.Lock()  # one embedding pass at a time

    def ground(self, messages: list[dict]) -> Grounded:
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        with self._lock:
            hits = self.index.search(question) if question.strip() else []
        if not hits or hits[0].score < self.min_score:
            return Grounded(messages, hits, self.refusal_text)
        # A client's own system message takes the policy prompt's place in the template.
        own = [m["content"] for m in messages if m["role"] == "system"]
        system = context_system_message("\n".join(own) if own else self.system_prompt, self.company, hits)
        rest = [m for m in messages if m["role"] != "system"]
        return Grounded([{"role": "system", "content": system}, *rest], hits,
                        in_scope=hits[0].score >= self.answer_score)


def load_grounder(cfg, index_dir: str | Path | None = None) -> Grounder | None:
    """The Grounder for a pipeline config: the promoted model's index (promoted.json), else the latest
    retrieval_index; None when retrieval is off. Raises FileNotFoundError with the fix when no index exists."""
    import json

    from .artifacts import latest_version_dir
    from .policy import load_policy

    if not cfg.retrieval.enabled:
        return None
    artifacts = cfg.path(cfg.artifacts_dir)
    if index_dir is None:
        pointer = artifacts / "promoted.json"
        if pointer.exists():
            index_dir = json.loads(pointer.read_text()).get("retrieval_index")
    if index_dir is None:
        index_dir = latest_version_dir(artifacts / "retrieval_index")
    if index_dir is None or not (Path(index_dir) / "index.json").exists():
        raise FileNotFoundError(
            f"retrieval is on (retrieval.enabled) but there is no retrieval index under {artifacts}; materialize "
            "retrieval_index (slm-pipeline run), pass --index PATH, or set retrieval.enabled: false")
    policy = load_policy(cfg.path(cfg.policy_file))
    return Grounder(open_index(index_dir, cfg.retrieval), policy.system_prompt, policy.company, policy.refusal,
                    cfg.retrieval.min_score, cfg.retrieval.answer_score)


def refusal_start_ids(tokenizer, refusal: str) -> list[int]:
    """The token an answer starts with when it is the refusal: suppressed at the first position for in-scope
    questions (generate's `begin_suppress_tokens`)."""
    ids = tokenizer(refusal.strip(), add_special_tokens=False)["input_ids"]
    return ids[:1]

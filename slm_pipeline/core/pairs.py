"""Instruction pairs from anonymized corpus records: build, curate, split.

Output sample format (fixed; training, eval and asset checks rely on it):
  {"id": str,
   "messages": [{"role": "system", "content": policy.system_prompt},
                {"role": "user", "content": ...}, {"role": "assistant", "content": ...}, ...],
   "source": "faq" | "chat" | "doc" | "teacher" | "refusal" | <record kind, e.g. "feedback">,
   "split": "train" | "eval"}
Messages always start with the policy system prompt, then alternate user/assistant, and end with an
assistant turn. Every assistant turn is a training target.

Where samples come from:
  - records with `messages` (FAQ rows, chats, feedback): one sample each, turns normalized;
  - records with `text` (documents): one pair per chunk of core/chunking.py (the chunker the retrieval index
    uses: heading path, paragraphs, a word budget with overlap; a long section is split, never dropped), the
    question from core/doc_questions.py (title and heading path as context), the answer the chunk text; plus up
    to pairs.doc_fact_questions short pairs per chunk for single facts it states (`<id>#s<k>.f<j>`);
  - optional `teacher(title, chunk_text) -> [(question, answer), ...]`, called once per doc chunk (the text
    starts with its heading path; see `Teacher` for the extras): core/teacher/ plugs in an LLM that writes
    better questions (teacher.enabled, off by default); its samples are `<id>#s<k>.t<j>`, source "teacher";
  - refusal pairs: each policy.out_of_scope_examples question answered with exactly policy.refusal.

Document chunks that are only code (pieces of a long code block) become no pair ("code_only"; they stay in the
retrieval index). Curation (core/curation.py) drops, in this order, and reports each drop with a reason: no
user/assistant exchange, empty or garbage text, answers shorter than min_answer_chars, non-English text, questions
that leak gold eval questions, exact duplicates, near-duplicates (MinHash + LSH over word shingles, verified by exact Jaccard),
and samples over max_tokens (only when `count_tokens` is given; it should render with the model's chat template).
A sample over max_tokens is first made to fit: `trim_context(sample)` (given by the caller when samples carry
retrieved excerpts) removes the lowest-ranked excerpt that is not the answer's own, one at a time; a chat still
too long keeps its longest opening run of whole exchanges. Only what still does not fit is dropped.

`PairsResult.spans` maps every candidate's id to the words of its record it carries (record id, start, end),
so core/coverage.py can say how much of the corpus text reaches training and what was lost, by reason.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from slm_pipeline.config import PairsConfig
from slm_pipeline.core.chunking import chunk_record, count_words
from slm_pipeline.core.curation import (
    PLACEHOLDER,
    GoldIndex,
    MinHashLSH,
    dedup,
    prose,
    quality_problem,
    scrub_placeholders,
    shingles,
)
from slm_pipeline.core.doc_questions import doc_question, fact_questions
from slm_pipeline.core.policy import Policy

__all__ = [
    "PairsError",
    "PairsResult",
    "Teacher",
    "TeacherPair",
    "TeacherStop",
    "build_pairs",
    "validate_sample",
    "scrub_placeholders",
    "PLACEHOLDER",
    "token_length_stats",
    "token_length_histogram_markdown",
    "MinHashLSH",
    "shingles",
]

# `teacher(title, section) -> [(question, answer), ...]` for one doc chunk (section: heading path, a blank line,
# the chunk text). core/teacher/ is the LLM one. Optional extras: items may be TeacherPair with `drop` set (its own
# filter rejected the pair: reported as "teacher_<reason>"); `teacher.many([(title, section), ...])` answers all
# chunks at once (a list of pairs or an exception per chunk); an exception's `reason` attribute names its drop
# reason; TeacherStop (endpoint unreachable, bad key) stops the build instead of failing every chunk.
Teacher = Callable[[str, str], list[tuple[str, str]]]


class TeacherPair(NamedTuple):
    question: str
    answer: str
    drop: tuple[str, str] | None = None  # (reason, detail) when the teacher's filter rejected the pair


class TeacherStop(RuntimeError):
    """A teacher error no other chunk can get past (unreachable endpoint, refused API key): the build stops."""


class PairsError(ValueError):
    """Pair building failed (e.g. too few training samples); `result` holds what was built, if anything."""

    def __init__(self, message: str, result: PairsResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass
class PairsResult:
    samples: list[dict]
    report: dict
    dropped: list[dict] = field(default_factory=list)  # {"id", "source", "reason", "detail"}
    token_counts: dict[str, int] = field(default_factory=dict)  # sample id -> tokens (if count_tokens given)
    spans: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # candidate id -> (record id, start, end)
    fitted: list[dict] = field(default_factory=list)  # {"id", "reason", "detail"}: made shorter to fit max_tokens


def build_pairs(
    records: list[dict],
    policy: Policy,
    gold_questions: Iterable[str | dict],
    cfg: PairsConfig,
    count_tokens: Callable[[list[dict]], int] | None = None,
    seed: int = 42,
    teacher: Teacher | None = None,
    contextualize: Callable[[list[dict]], list[dict]] | None = None,
    trim_context: Callable[[dict], dict | None] | None = None,
    chunk_words: int = 80,
    overlap_words: int = 20,
) -> PairsResult:
    """Turn anonymized records into curated, split instruction samples (see module docstring).

    `contextualize(samples) -> samples` (e.g. raft.add_retrieved_context) rewrites the system messages of the
    curated samples before their tokens are counted; `trim_context(sample) -> sample | None` removes one excerpt
    from a sample that is too long (None: nothing left to remove). `chunk_words` / `overlap_words` size the
    document chunks (pass the retrieval index's, so a doc answer is one index chunk). Raises PairsError (with
    `.result` set) if fewer than cfg.min_train_samples training samples remain.
    """
    dropped: list[dict] = []
    spans: dict[str, tuple[str, int, int]] = {}

    def drop(sample: dict, reason: str, detail: str = "") -> None:
        dropped.append({"id": sample["id"], "source": sample["source"], "reason": reason, "detail": detail})

    candidates = []
    for s in _candidates(records, policy, cfg, teacher, drop, spans, chunk_words, overlap_words):
        s = scrub_placeholders(s)
        if s["messages"][1:]:
            candidates.append(s)
        else:
            drop(s, "placeholder_only", "every assistant answer needed an anonymization tag")
    seen: set[str] = set()
    for s in candidates:
        if s["id"] in seen:
            raise PairsError(f"duplicate sample id {s['id']!r}; input records must have unique ids")
        seen.add(s["id"])

    # Cheap per-sample filters first, then dedup, then the (costlier) token count on what is left.
    gold = GoldIndex([g["question"] if isinstance(g, dict) else g for g in gold_questions], cfg.gold_leak_threshold)
    kept = []
    for s in candidates:
        problem = quality_problem(s, cfg) or gold.leak(s)
        if problem:
            drop(s, *problem)
        else:
            kept.append(s)
    kept = dedup(kept, cfg.near_duplicate_threshold, drop)
    if contextualize is not None:
        kept = contextualize(kept)
        for s in kept:
            if "drop_reason" in s:
                drop(s, *s["drop_reason"])
        kept = [s for s in kept if "drop_reason" not in s]

    token_counts: dict[str, int] = {}
    fitted: list[dict] = []
    if count_tokens is not None:
        fitting = []
        for s in kept:
            s, n = _fit(s, count_tokens, cfg.max_tokens, trim_context, fitted)
            if n > cfg.max_tokens:
                drop(s, "too_long", f"{n} tokens > max_tokens={cfg.max_tokens}")
            else:
                token_counts[s["id"]] = n
                fitting.append(s)
        kept = fitting

    samples = _assign_splits(kept, cfg.eval_fraction, seed)
    report = _report(records, candidates, samples, dropped, token_counts)
    report["fitted"] = dict(Counter(f["reason"] for f in fitted))
    report["doc_fact_pairs_kept"] = sum(".f" in s["id"].rsplit("#s", 1)[-1] for s in samples if s["source"] == "doc")
    result = PairsResult(samples, report, dropped, token_counts, spans, fitted)
    if result.report["n_train"] < cfg.min_train_samples:
        raise PairsError(
            f"Only {result.report['n_train']} training samples remain after curation (pairs.min_train_samples = "
            f"{cfg.min_train_samples}). Dropped: {result.report['dropped'] or 'none'}. Add data, or loosen "
            "pairs.min_answer_chars / pairs.near_duplicate_threshold / pairs.max_tokens.", result)
    return result


# ---------------------------------------------------------------------------------------------- candidates


def _sample(sid: str, source: str, turns: list[dict], policy: Policy) -> dict:
    return {"id": sid, "messages": [{"role": "system", "content": policy.system_prompt}, *turns], "source": source}


def _qa(question: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": question.strip()}, {"role": "assistant", "content": answer.strip()}]


def _candidates(records: list[dict], policy: Policy, cfg: PairsConfig, teacher: Teacher | None,
                drop: Callable, spans: dict, chunk_words: int, overlap_words: int) -> list[dict]:
    out: list[dict | None] = []
    jobs: list[tuple[int, str, str, str]] = []  # (slot in out, sample id, title, section) per doc chunk
    for rec in records:
        kind = rec.get("kind") or ("doc" if "text" in rec else "chat")
        if "messages" in rec:
            if kind == "chat" and not cfg.include_chats:
                continue
            out.append(_sample(rec["id"], kind, _normalize_turns(rec["messages"]), policy))
            spans[rec["id"]] = (rec["id"], 0, sum(count_words(str(m.get("content") or "")) for m in rec["messages"]))
        elif "text" in rec and cfg.include_docs:
            # Sample k answers with chunk k ("<id>#s<k>" <-> index chunk "<id>#c<k>"; raft finds it by record id).
            for k, span in enumerate(chunk_record(rec, chunk_words, overlap_words)):
                c, sid = span.chunk, f"{rec['id']}#s{k}"
                path = c.heading.split(" › ") if c.heading else []
                sample = _sample(sid, "doc", _qa(doc_question(policy.company, c.title, path, sid), c.text), policy)
                spans[sid] = (rec["id"], span.start, span.end)
                if not prose(c.text).strip():  # a piece of a long code block: no answer to a question
                    drop(sample, "code_only", "a chunk of code without prose; it stays in the retrieval index")
                    continue
                if cfg.doc_chunk_pairs:
                    out.append(sample)
                for j, (q, a) in enumerate(fact_questions(c.text, c.title, path, policy.company, cfg.doc_fact_questions)):
                    out.append(_sample(f"{sid}.f{j}", "doc", _qa(q, a), policy))
                    spans[f"{sid}.f{j}"] = spans[sid]
                if teacher is not None:  # a slot, filled below once every chunk is asked (at once, if it can)
                    jobs.append((len(out), sid, c.title, f"{c.label}\n\n{c.text}"))
                    out.append(None)
    filled = []  # in chunk order, so drops are reported in corpus order
    for (slot, sid, _, _), answer in zip(jobs, _ask_teacher(teacher, jobs), strict=True):
        filled.append((slot, _teacher_samples(answer, sid, policy, drop)))
        spans.update({t["id"]: spans[sid] for t in filled[-1][1]})
    for slot, teacher_samples in reversed(filled):  # from the back: earlier slots keep their positions
        out[slot:slot + 1] = teacher_samples
    if cfg.include_refusals is not False:  # None (auto) is resolved by the caller; plain callers get refusals
        for question in dict.fromkeys(policy.out_of_scope_examples):  # de-duplicated, order kept
            # Id from the question text, so adding examples does not rename (and re-split) the others.
            sid = f"refusal#{hashlib.sha1(question.encode()).hexdigest()[:10]}"
            out.append(_sample(sid, "refusal", _qa(question, policy.refusal), policy))
    return out


def _ask_teacher(teacher: Teacher | None, jobs: list[tuple[int, str, str, str]]) -> list:
    """The teacher's answer per job: its pairs, or the exception it raised for that chunk (TeacherStop ends the
    build). A teacher with `many` gets every chunk at once (it may ask concurrently and cache)."""
    if teacher is None or not jobs:
        return []
    chunks = [(title, section) for _, _, title, section in jobs]
    if hasattr(teacher, "many"):
        return list(teacher.many(chunks))
    answers: list = []
    for title, section in chunks:
        try:
            answers.append(teacher(title, section))
        except TeacherStop:
            raise
        except Exception as e:  # noqa: BLE001 - one failing chunk should not stop the whole run; it is reported
            answers.append(e)
    return answers


def _teacher_samples(answer: list | BaseException, sid: str, policy: Policy, drop: Callable) -> list[dict]:
    """Samples `<sid>.t<j>` from one chunk's teacher answer; pairs its filter rejected are reported as
    "teacher_<reason>", an error for the chunk as its `reason` (default "teacher_error")."""
    if isinstance(answer, TeacherStop):
        raise answer
    if not isinstance(answer, BaseException):
        answer = list(answer)
        if not all((isinstance(p, TeacherPair) or (isinstance(p, tuple | list) and len(p) == 2))
                   and all(isinstance(x, str) for x in p[:2]) for p in answer):
            answer = TypeError("teacher must return a list of (question, answer) string tuples")
    if isinstance(answer, BaseException):
        reason = getattr(answer, "reason", None) or "teacher_error"
        # "<sid>.t": the chunk's teacher answer, not its words (coverage counts those under the doc sample)
        drop({"id": f"{sid}.t", "source": "teacher"}, reason, f"{type(answer).__name__}: {answer}")
        return []
    out = []
    for j, pair in enumerate(answer):  # numbered over everything returned: ids stay when the filter changes
        sample = _sample(f"{sid}.t{j}", "teacher", _qa(pair[0], pair[1]), policy)
        rejected = pair.drop if isinstance(pair, TeacherPair) else None
        if rejected:
            drop(sample, f"teacher_{rejected[0]}", rejected[1])
        else:
            out.append(sample)
    return out


def _normalize_turns(messages: list[dict]) -> list[dict]:
    """Drop system turns (the policy prompt replaces them), merge consecutive same-role turns, start with a
    user turn and end with an assistant turn. Returns [] if no user->assistant exchange is left."""
    turns: list[dict] = []
    for m in messages:
        role, content = m.get("role"), str(m.get("content") or "").strip()
        if role not in ("user", "assistant") or not content:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1] = {"role": role, "content": turns[-1]["content"] + "\n\n" + content}
        else:
            turns.append({"role": role, "content": content})
    while turns and turns[0]["role"] != "user":
        turns.pop(0)
    while turns and turns[-1]["role"] != "assistant":
        turns.pop()
    return turns


def _fit(sample: dict, count_tokens: Callable, max_tokens: int, trim_context: Callable | None,
         fitted: list[dict]) -> tuple[dict, int]:
    """`sample` made to fit max_tokens where it can (see module docstring), and its token count."""
    n = int(count_tokens(sample["messages"]))
    before = n
    trimmed = 0
    while n > max_tokens and trim_context is not None:
        shorter = trim_context(sample)
        if shorter is None:
            break
        sample, n, trimmed = shorter, int(count_tokens(shorter["messages"])), trimmed + 1
    if trimmed:
        fitted.append({"id": sample["id"], "reason": "context_trimmed",
                       "detail": f"{trimmed} excerpt(s) removed: {before} -> {n} tokens"})
    turns = len(sample["messages"]) - 1
    cut = 0
    while n > max_tokens and sample["source"] != "doc" and len(sample["messages"]) > 3:
        sample = {**sample, "messages": sample["messages"][:-2]}  # the last user/assistant exchange
        n, cut = int(count_tokens(sample["messages"])), cut + 2
    if cut:
        fitted.append({"id": sample["id"], "reason": "turns_cut",
                       "detail": f"kept the first {turns - cut} of {turns} turns ({n} tokens)"})
    return sample, n


# ---------------------------------------------------------------------------------------------- split + report


def _stable_int(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:16], 16)


def _assign_splits(samples: list[dict], eval_fraction: float, seed: int) -> list[dict]:
    """Per source, the samples with the smallest hash(seed, id) go to eval. Stratifying keeps every source
    (refusals included) in both splits proportionally; hashing ids means new data only moves samples near the
    cut instead of reshuffling everything."""
    eval_ids: set[str] = set()
    by_source: dict[str, list[dict]] = defaultdict(list)
    for s in samples:
        by_source[s["source"]].append(s)
    for members in by_source.values():
        groups = sorted({s.get("group", s["id"]) for s in members}, key=lambda g: _stable_int(f"{seed}:{g}"))
        eval_ids.update(groups[:int(len(groups) * eval_fraction + 0.5)])
    # A sample's `group` (extra context views of one answer) keeps all its copies in one split.
    return [{**s, "split": "eval" if s.get("group", s["id"]) in eval_ids else "train"} for s in samples]


def token_length_stats(lengths: Iterable[int]) -> dict | None:
    values = np.asarray(list(lengths))
    if values.size == 0:
        return None
    return {"min": int(values.min()), "p50": int(np.percentile(values, 50)), "p95": int(np.percentile(values, 95)),
            "max": int(values.max()), "mean": round(float(values.mean()), 1)}


def token_length_histogram_markdown(lengths: Iterable[int], bins: int = 8) -> str:
    """A markdown table of token-length buckets with a text bar, for Dagster metadata."""
    values = np.asarray(list(lengths))
    if values.size == 0:
        return "_no samples_"
    counts, edges = np.histogram(values, bins=bins)
    top = max(int(counts.max()), 1)
    lines = ["| tokens | samples | |", "|---|---|---|"]
    for c, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True):
        lines.append(f"| {int(lo)}–{int(hi)} | {int(c)} | {'█' * round(20 * int(c) / top)} |")
    return "\n".join(lines)


def _report(records: list[dict], candidates: list[dict], samples: list[dict], dropped: list[dict],
            token_counts: dict[str, int]) -> dict:
    examples: dict[str, list[str]] = defaultdict(list)
    for d in dropped:
        if len(examples[d["reason"]]) < 5:
            examples[d["reason"]].append(d["id"])
    reasons = Counter(d["reason"] for d in dropped)
    return {
        "n_records": len(records),
        "n_candidates": len(candidates),
        "candidates_by_source": dict(Counter(s["source"] for s in candidates)),
        "kept_by_source": dict(Counter(s["source"] for s in samples)),
        "n_kept": len(samples),
        "n_train": sum(s["split"] == "train" for s in samples),
        "n_eval": sum(s["split"] == "eval" for s in samples),
        "n_dropped": len(dropped),
        "dropped": dict(reasons),
        "dropped_examples": dict(examples),
        "gold_leaks_dropped": reasons.get("gold_leak", 0),
        "token_lengths": token_length_stats(token_counts.values()),
    }


# ---------------------------------------------------------------------------------------------- schema


def validate_sample(sample: dict, system_prompt: str | None = None) -> list[str]:
    """Schema problems of one sample (empty list = valid). Pass `system_prompt` to also check it matches."""
    if not isinstance(sample, dict):
        return [f"sample is {type(sample).__name__}, not an object"]
    problems = []
    sid = sample.get("id")
    if not isinstance(sid, str) or not sid:
        problems.append("'id' must be a non-empty string")
    if not isinstance(sample.get("source"), str) or not sample.get("source"):
        problems.append("'source' must be a non-empty string")
    if sample.get("split") not in ("train", "eval"):
        problems.append(f"'split' must be 'train' or 'eval', got {sample.get('split')!r}")
    messages = sample.get("messages")
    if not isinstance(messages, list) or len(messages) < 3:
        return problems + ["'messages' must be a list of system, user, assistant (, user, assistant ...) turns"]
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or not m["content"].strip():
            problems.append(f"message {i} must be an object with non-empty string 'content'")
        expected = "system" if i == 0 else ("user" if i % 2 else "assistant")
        if isinstance(m, dict) and m.get("role") != expected:
            problems.append(f"message {i} has role {m.get('role')!r}, expected {expected!r}")
    if len(messages) % 2 == 0:
        problems.append("conversation must end with an assistant turn")
    if system_prompt is not None and isinstance(messages[0], dict) and not str(messages[0].get("content", ""))\
            .startswith(system_prompt):
        problems.append("system message does not start with the policy system prompt")
    for i, m in enumerate(messages):
        if isinstance(m, dict) and m.get("role") == "assistant" and PLACEHOLDER.search(str(m.get("content", ""))):
            problems.append(f"message {i} (assistant) contains an anonymization tag; the model would learn it")
    return problems

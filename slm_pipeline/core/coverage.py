"""How much of the corpus text reaches the retrieval index and the training samples, and what was lost where.

Words are counted as core/chunking.count_words counts them. Every word of a document belongs to exactly one
chunk (chunking.chunk_record's spans); a document training sample carries its chunk's words, an FAQ or chat
sample the words of the turns it kept. A word reaches a stage when some kept chunk/sample carries it; a word
that does not is lost, under the first reason recorded for it (a dropped sample's reason, an empty document,
turns cut to fit, sentences removed because they needed an anonymization tag, ...) or "not_in_any_sample" when
nothing said why. Text a setting leaves out on purpose (chats are never indexed; pairs.include_docs:
false) is reported as excluded, not lost.

The report names the biggest losses (file › section) so a user can see what never reaches the model, and
carries a warning when more than `max_text_loss` of the text is lost. Never imports dagster.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from .chunking import chunk_record, count_words, record_words

__all__ = ["TextCoverage", "index_coverage", "pairs_coverage"]

STAGES = ("index", "training")
# What to do about each loss reason, for the warning.
HINTS = {
    "too_long": "raise pairs.max_tokens (and train.max_seq_len) or lower retrieval.chunk_words / retrieval.k",
    "non_english": "set pairs.language_check: false if the text is English with much jargon",
    "garbage": "check the converted text of these files (tables, symbols)",
    "answer_too_short": "lower pairs.min_answer_chars",
    "turns_cut": "raise pairs.max_tokens (and train.max_seq_len) to keep long chats whole",
    "empty_doc": "these documents have no text after conversion",
    "code_only": "chunks of code without prose are no question/answer material; they stay in the retrieval index",
}


def _kind(rec: dict) -> str:
    return rec.get("kind") or ("doc" if "text" in rec else "chat")


class TextCoverage:
    """Collects what reached / was lost by each stage, per record word span, and reports it."""

    def __init__(self, records: list[dict]):
        self.records = {r["id"]: r for r in records}
        self.words = {r["id"]: record_words(r) for r in records}
        self.labels: dict[str, list[tuple[int, int, str]]] = defaultdict(list)  # rid -> [(start, end, section)]
        self.reached = {st: defaultdict(list) for st in STAGES}
        self.losses = {st: defaultdict(list) for st in STAGES}
        self.excluded: dict[str, dict[str, str]] = {st: {} for st in STAGES}

    def label(self, rid: str, start: int, end: int, section: str) -> None:
        self.labels[rid].append((start, end, section))

    def reach(self, stage: str, rid: str, start: int, end: int) -> None:
        self.reached[stage][rid].append((start, end))

    def lose(self, stage: str, rid: str, start: int, end: int, reason: str) -> None:
        self.losses[stage][rid].append((start, end, reason))

    def exclude(self, stage: str, rid: str, reason: str) -> None:
        self.excluded[stage][rid] = reason

    def _states(self, stages: tuple[str, ...], rid: str) -> list[str | None] | None:
        """Per word of `rid`: None = reached, else the loss reason; None for a record excluded from all stages."""
        n = self.words[rid]
        if all(rid in self.excluded[st] for st in stages):
            return None
        state: list[str | None] = ["not_in_any_sample"] * n
        for st in stages:
            if rid in self.excluded[st]:
                continue
            for a, b in self.reached[st][rid]:
                state[max(a, 0):min(b, n)] = [None] * max(0, min(b, n) - max(a, 0))
        for st in stages:
            for a, b, reason in self.losses[st][rid]:
                for i in range(max(a, 0), min(b, n)):
                    if state[i] == "not_in_any_sample":
                        state[i] = reason
        return state

    def _section(self, rid: str, pos: int) -> str:
        for a, b, section in self.labels.get(rid, ()):
            if a <= pos < b:
                return section
        return ""

    def report(self, stages: tuple[str, ...], max_text_loss: float, what: str, top: int = 8) -> dict:
        """Coverage of `stages` together (a word counts if any of them has it)."""
        total = reached = 0
        lost_by_reason: Counter = Counter()
        excluded: Counter = Counter()
        by_kind: dict[str, Counter] = defaultdict(Counter)
        sections: dict[tuple[str, str], Counter] = defaultdict(Counter)
        for rid, rec in self.records.items():
            state = self._states(stages, rid)
            kind = _kind(rec)
            if state is None:
                excluded[self.excluded[stages[0]][rid]] += self.words[rid]
                continue
            got = sum(s is None for s in state)
            total, reached = total + len(state), reached + got
            by_kind[kind]["words"] += len(state)
            by_kind[kind]["reached"] += got
            for i, s in enumerate(state):
                if s is not None:
                    lost_by_reason[s] += 1
                    sections[(rec.get("source") or rid, self._section(rid, i))][s] += 1
        share = round(reached / total, 4) if total else 1.0
        biggest = sorted(sections.items(), key=lambda kv: -sum(kv[1].values()))[:top]
        losses = [{"source": src, "section": sec, "words": sum(c.values()), "reasons": dict(c)}
                  for (src, sec), c in biggest]
        out = {
            "words": total, "reached_words": reached, "share": share, "lost_words": total - reached,
            "lost_by_reason": dict(lost_by_reason.most_common()), "excluded_words": dict(excluded),
            "by_kind": {k: {**c, "share": round(c["reached"] / c["words"], 4) if c["words"] else 1.0}
                        for k, c in by_kind.items()},
            "biggest_losses": losses, "max_text_loss": max_text_loss, "warning": None,
        }
        if total and 1 - share > max_text_loss:
            out["warning"] = _warning(out, what)
        return out


def _warning(rep: dict, what: str) -> str:
    where = "; ".join(f"{x['source']}{' › ' + x['section'] if x['section'] else ''}: {x['words']} words "
                      f"({', '.join(x['reasons'])})" for x in rep["biggest_losses"][:5])
    reasons = ", ".join(f"{r} {n}" for r, n in rep["lost_by_reason"].items())
    hints = "; ".join(f"{r}: {HINTS[r]}" for r in rep["lost_by_reason"] if r in HINTS)
    return (f"Only {rep['share']:.0%} of the corpus text ({rep['reached_words']} of {rep['words']} words) reaches "
            f"{what}, more than the allowed loss corpus.max_text_loss = {rep['max_text_loss']:.0%}. Lost words by "
            f"reason: {reasons}. Biggest losses: {where}." + (f" To keep more: {hints}." if hints else ""))


def _index_into(cov: TextCoverage, records: list[dict], chunk_words: int, overlap_words: int) -> None:
    for rec in records:
        kind, rid = _kind(rec), rec["id"]
        if kind not in ("doc", "faq"):
            cov.exclude("index", rid, f"{kind}s_are_not_indexed")
            continue
        spans = chunk_record(rec, chunk_words, overlap_words)
        for s in spans:
            cov.label(rid, s.start, s.end, s.chunk.heading)
            cov.reach("index", rid, s.start, s.end)
        if not spans:
            cov.lose("index", rid, 0, cov.words[rid], "empty_doc" if kind == "doc" else "faq_without_answer")


def index_coverage(records: list[dict], chunk_words: int, overlap_words: int, max_text_loss: float) -> dict:
    """Share of the FAQ and document text that is in some chunk of the retrieval index."""
    cov = TextCoverage(records)
    _index_into(cov, records, chunk_words, overlap_words)
    return cov.report(("index",), max_text_loss, "the retrieval index")


def pairs_coverage(records: list[dict], result, chunk_words: int, overlap_words: int, max_text_loss: float,
                   include_docs: bool = True, include_chats: bool = True) -> dict:
    """{"training": coverage by training samples, "index": by the index, "either": by one or the other} for
    the corpus `records` (feedback records are not corpus text) and a PairsResult built from them."""
    cov = TextCoverage(records)
    _index_into(cov, records, chunk_words, overlap_words)
    owner = result.spans
    for rec in records:
        kind = _kind(rec)
        if (kind == "doc" and not include_docs) or (kind == "chat" and not include_chats):
            cov.exclude("training", rec["id"], f"pairs.include_{kind}s_is_false")
        elif kind == "doc" and not chunk_record(rec, chunk_words, overlap_words):
            cov.lose("training", rec["id"], 0, cov.words[rec["id"]], "empty_doc")
    for f in result.fitted:  # first: losses are named by the first reason recorded for a word
        if f["reason"] == "turns_cut" and f["id"] in owner:
            rid, start, end = owner[f["id"]]
            cov.lose("training", rid, start, end, "turns_cut")
    for d in result.dropped:
        span = owner.get(d["id"]) or owner.get(d["id"].split("~")[0])
        if span is not None:
            cov.lose("training", *span, d["reason"])
    for s in result.samples:
        span = owner.get(s["id"]) or owner.get(s.get("group", ""))
        if span is None:
            continue  # refusals and feedback are not corpus text
        rid, start, end = span
        if s["source"] in ("doc", "teacher"):
            cov.reach("training", rid, start, end)
        else:  # FAQ / chat: the words of the turns that made it into the sample
            kept = start + sum(count_words(m["content"]) for m in s["messages"][1:])
            cov.reach("training", rid, start, min(end, kept))
            # The rest: sentences that needed an anonymization tag, system turns (the policy prompt replaces them).
            cov.lose("training", rid, min(end, kept), end, "tagged_sentences_or_system_turns")
    return {
        "training": cov.report(("training",), max_text_loss, "a training sample"),
        "index": cov.report(("index",), max_text_loss, "the retrieval index"),
        "either": cov.report(("training", "index"), max_text_loss, "a training sample or the retrieval index"),
    }

"""Chunks for retrieval: FAQ rows and document sections of the anonymized corpus.

A document is cut at its Markdown headings (`#`..`######`; lines inside ``` / ~~~ fences are code, never
headings), keeping the heading path ("Title › Section › Subsection"). A section longer than `max_words` is
split at paragraph (then sentence) boundaries into pieces of at most `max_words` words, each piece starting
with the last `overlap_words` words of the one before, so a fact on a boundary is whole in at least one chunk.
An FAQ row is one chunk ("question\\nanswer"). Chat transcripts are not chunked: they are conversations
about one customer's case, not reference knowledge. Never imports dagster.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass

__all__ = ["Chunk", "chunk_records", "split_markdown", "split_words"]

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(€$£])")


@dataclass(frozen=True)
class Chunk:
    id: str  # "<record id>#c<n>", stable for the same record text
    record_id: str
    kind: str  # "faq" | "doc"
    title: str  # document title, or the FAQ category
    heading: str  # heading path below the title ("Price and benefits"; "" for an FAQ row or a doc intro)
    text: str

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def label(self) -> str:
        """"Title › heading" as shown to the model and in sources."""
        return f"{self.title} › {self.heading}" if self.heading else self.title


def split_markdown(text: str, title: str) -> list[tuple[list[str], str]]:
    """[(heading path below the title, body)] per heading section; empty sections are left out. A level-1
    heading equal to the title is the title itself (not part of the path)."""
    sections: list[tuple[list[str], str]] = []
    path: list[tuple[int, str]] = []  # (level, heading) stack
    lines: list[str] = []
    in_code = False

    def flush() -> None:
        body = "\n".join(lines).strip()
        if body:
            sections.append(([h for _, h in path], body))

    for line in text.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
        m = None if in_code else _HEADING.match(line)
        if m is None:
            lines.append(line)
            continue
        flush()
        lines = []
        level, heading = len(m.group(1)), m.group(2).strip()
        while path and path[-1][0] >= level:
            path.pop()
        if not (level == 1 and heading.strip().lower() == title.strip().lower()):
            path.append((level, heading))
    flush()
    return sections


def split_words(body: str, max_words: int, overlap_words: int) -> list[str]:
    """Pieces of at most ~max_words words, cut at paragraph, then sentence boundaries, with overlap."""
    if len(body.split()) <= max_words:
        return [body]
    units: list[str] = []
    for para in re.split(r"\n\s*\n", body):
        para = para.strip()
        if not para:
            continue
        if len(para.split()) <= max_words:
            units.append(para)
        else:  # a long paragraph: by sentences, and a sentence longer than the budget by words
            for sent in _SENTENCE_END.split(para):
                words = sent.split()
                units += [" ".join(words[i:i + max_words]) for i in range(0, len(words), max_words)]
    pieces: list[str] = []
    current: list[str] = []
    for unit in units:
        n = len(unit.split())
        if current and sum(len(u.split()) for u in current) + n > max_words:
            pieces.append("\n\n".join(current))
            tail = " ".join(pieces[-1].split()[-overlap_words:]) if overlap_words else ""
            current = [tail] if tail and len(tail.split()) + n <= max_words else []
        current.append(unit)
    if current:
        pieces.append("\n\n".join(current))
    return pieces


def chunk_records(records: list[dict], max_words: int = 120, overlap_words: int = 25,
                  kinds: tuple[str, ...] = ("faq", "doc")) -> tuple[list[Chunk], dict]:
    """Chunks of the records of the given kinds, and a report {"by_kind", "skipped_by_reason", "words"}."""
    chunks: list[Chunk] = []
    skipped: Counter = Counter()
    for rec in records:
        kind = rec.get("kind") or ("doc" if "text" in rec else "chat")
        if kind not in kinds:
            skipped[f"kind_{kind}"] += 1
            continue
        meta = rec.get("meta") or {}
        if kind == "faq":
            turns = [m for m in rec.get("messages", []) if m.get("role") in ("user", "assistant")]
            q = next((m["content"].strip() for m in turns if m["role"] == "user"), "")
            a = next((m["content"].strip() for m in turns if m["role"] == "assistant"), "")
            if not q or not a:
                skipped["faq_without_answer"] += 1
                continue
            title = str(meta.get("category") or "FAQ").strip().capitalize()
            chunks.append(Chunk(f"{rec['id']}#c0", rec["id"], "faq", f"FAQ: {title}", "", f"{q}\n{a}"))
        elif kind == "doc":
            title = str(meta.get("title") or rec["id"])
            n = 0
            for path, body in split_markdown(rec.get("text", ""), title):
                for piece in split_words(body, max_words, overlap_words):
                    chunks.append(Chunk(f"{rec['id']}#c{n}", rec["id"], "doc", title, " › ".join(path), piece))
                    n += 1
            if n == 0:
                skipped["empty_doc"] += 1
    words = [len(c.text.split()) for c in chunks]
    report = {"chunks": len(chunks), "by_kind": dict(Counter(c.kind for c in chunks)),
              "skipped_by_reason": dict(skipped),
              "words": {"max": max(words, default=0), "mean": round(sum(words) / max(len(words), 1), 1)}}
    return chunks, report

"""Chunks of the anonymized corpus: one chunker for the retrieval index and the document training pairs.

A document is cut at its Markdown headings (`#`..`######`; lines inside ``` / ~~~ fences are code, never
headings), keeping the heading path ("Title › Section › Subsection"). A section longer than `max_words` is
split, structure first: at paragraphs and whole code blocks, then a long paragraph at its lines (lists), then
at sentences, and only a single sentence longer than the budget at words; a long code block is split at its
lines and every piece is fenced again. Each piece after the first starts with the last whole sentences (at most
`overlap_words` words) of the one before, so it reads on from where the last one stopped. Nothing is left out:
every word of a document lands in exactly one chunk's span (`ChunkSpan`), which is how the pipeline counts
how much of the corpus text reaches the index and the training pairs (core/coverage.py).

An FAQ row is one chunk ("question\\nanswer"). Chat transcripts are not chunked: they are conversations about
one customer's case, not reference knowledge. Never imports dagster.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass

__all__ = ["Chunk", "ChunkSpan", "chunk_record", "chunk_records", "count_words", "first_heading", "record_words",
           "split_markdown", "split_words"]

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+(?=[A-Z0-9\"'(€$£`*])")
_WORDISH = re.compile(r"\w")


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


@dataclass(frozen=True)
class ChunkSpan:
    """The words [start, end) of its record that a chunk is responsible for (overlap excluded)."""
    chunk: Chunk
    start: int
    end: int


def count_words(text: str) -> int:
    """Words as the pipeline counts corpus text: whitespace-separated tokens with a letter or digit."""
    return sum(1 for t in text.split() if _WORDISH.search(t))


def record_words(rec: dict) -> int:
    """Words of a corpus record: its document text, or all its messages."""
    if "text" in rec:
        return count_words(rec.get("text") or "")
    return sum(count_words(str(m.get("content") or "")) for m in rec.get("messages", []))


def first_heading(text: str) -> str | None:
    """The first level-1 heading outside code blocks (a document's title), or None."""
    in_code = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
            continue
        m = None if in_code else _HEADING.match(line)
        if m and len(m.group(1)) == 1 and m.group(2).strip():
            return m.group(2).strip()
    return None


def _sections(text: str, title: str) -> list[tuple[list[str], str, int, int]]:
    """[(heading path, body, start word, end word)] per non-empty section; the spans tile the document's words
    (a heading's words belong to the section it opens; empty sections' words to the next section)."""
    sections: list[tuple[list[str], str, int, int]] = []
    path: list[tuple[int, str]] = []  # (level, heading) stack
    lines: list[str] = []
    in_code = False
    words = 0  # words seen so far
    start = 0  # first word not yet in a section

    def flush() -> None:
        nonlocal start
        body = "\n".join(lines).strip()
        if body:
            sections.append(([h for _, h in path], body, start, words))
            start = words

    for line in text.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
        m = None if in_code or _FENCE.match(line) else _HEADING.match(line)
        if m is None:
            lines.append(line)
            words += count_words(line)
            continue
        flush()
        lines = []
        level, heading = len(m.group(1)), m.group(2).strip()
        while path and path[-1][0] >= level:
            path.pop()
        if not (level == 1 and heading.strip().lower() == title.strip().lower()):
            path.append((level, heading))
        words += count_words(line)
    flush()
    if sections and start < words:  # trailing headings without a body
        p, body, s, _ = sections[-1]
        sections[-1] = (p, body, s, words)
    return sections


def split_markdown(text: str, title: str) -> list[tuple[list[str], str]]:
    """[(heading path below the title, body)] per heading section; empty sections are left out. A level-1
    heading equal to the title is the title itself (not part of the path)."""
    return [(p, body) for p, body, _, _ in _sections(text, title)]


# A unit is the smallest thing a piece is built from: (text, separator before it, words, is code).
_Unit = tuple[str, str, int, bool]


def _blocks(body: str) -> list[tuple[str, bool]]:
    """Paragraphs and whole fenced code blocks, in order."""
    blocks: list[tuple[str, bool]] = []
    para: list[str] = []
    code: list[str] | None = None
    for line in body.split("\n"):
        if code is not None:
            code.append(line)
            if _FENCE.match(line):
                blocks.append(("\n".join(code), True))
                code = None
        elif _FENCE.match(line):
            if para:
                blocks.append(("\n".join(para), False))
                para = []
            code = [line]
        elif not line.strip():
            if para:
                blocks.append(("\n".join(para), False))
                para = []
        else:
            para.append(line)
    if code is not None:  # unclosed fence: close it
        blocks.append(("\n".join(code), True))
    if para:
        blocks.append(("\n".join(para), False))
    return [(b.strip("\n"), c) for b, c in blocks if b.strip()]


def _units(body: str, max_words: int) -> list[_Unit]:
    units: list[_Unit] = []
    for b, (block, is_code) in enumerate(_blocks(body)):
        sep = "\n\n" if b else ""
        n = count_words(block)
        if n <= max_words:
            units.append((block, sep, n, is_code))
        elif is_code:
            lines = block.split("\n")
            fence = lines[0]
            close = lines[-1] if len(lines) > 1 and _FENCE.match(lines[-1]) else fence.strip()[:3]
            inner = lines[1:-1] if len(lines) > 1 and _FENCE.match(lines[-1]) else lines[1:]
            group: list[str] = []
            first = True
            for line in [*inner, None]:
                if line is not None and (not group or count_words("\n".join([*group, line])) <= max_words):
                    group.append(line)
                    continue
                if group:
                    text = "\n".join([fence, *group, close])
                    # The fence lines' words (a language tag) are counted once, with the first piece.
                    words = count_words("\n".join(group)) + (count_words(fence) + count_words(close) if first else 0)
                    units.append((text, sep if first else "\n\n", words, True))
                    first = False
                group = [line] if line is not None else []
        else:
            lines = [ln for ln in block.split("\n") if ln.strip()]
            parts: list[tuple[str, str]] = []  # (text, separator)
            for i, line in enumerate(lines):
                line_sep = sep if i == 0 else "\n"
                if count_words(line) <= max_words:
                    parts.append((line, line_sep))
                    continue
                for j, sent in enumerate(_SENTENCE_END.split(line)):
                    words = sent.split()
                    for k in range(0, len(words), max_words):
                        parts.append((" ".join(words[k:k + max_words]), line_sep if j == 0 and k == 0 else " "))
            units += [(t, s, count_words(t), False) for t, s in parts]
    return units


def _tail(unit_texts: list[_Unit], overlap_words: int) -> str:
    """The last whole sentences of a piece's prose, at most overlap_words words ('' after code)."""
    if not overlap_words or not unit_texts or unit_texts[-1][3]:
        return ""
    sentences = _SENTENCE_END.split(unit_texts[-1][0].split("\n")[-1])
    tail: list[str] = []
    for sent in reversed(sentences):
        if count_words(" ".join([sent, *tail])) > overlap_words:
            break
        tail.insert(0, sent)
    return " ".join(tail)


def _pieces(body: str, max_words: int, overlap_words: int) -> list[tuple[str, int]]:
    """(piece text, words of the body the piece adds) — the counts add up to the body's words."""
    if count_words(body) <= max_words:
        return [(body, count_words(body))]
    pieces: list[tuple[str, int]] = []
    current: list[_Unit] = []
    tail = ""

    def render(units: list[_Unit], lead: str) -> str:
        out = lead
        for i, (text, sep, _, _) in enumerate(units):
            out += ((sep or "\n\n") if i or lead else "") + text
        return out.strip()

    for unit in _units(body, max_words):
        size = sum(u[2] for u in current) + count_words(tail)
        if current and size + unit[2] > max_words:
            pieces.append((render(current, tail), sum(u[2] for u in current)))
            tail = _tail(current, overlap_words)
            if count_words(tail) + unit[2] > max_words:
                tail = ""
            current = []
        current.append(unit)
    if current:
        pieces.append((render(current, tail), sum(u[2] for u in current)))
    return pieces


def split_words(body: str, max_words: int, overlap_words: int) -> list[str]:
    """Pieces of at most ~max_words words (see the module docstring for where they are cut)."""
    return [text for text, _ in _pieces(body, max_words, overlap_words)]


def chunk_record(rec: dict, max_words: int = 120, overlap_words: int = 25) -> list[ChunkSpan]:
    """The chunks of one FAQ or document record with the word spans they cover; [] for other kinds."""
    kind = rec.get("kind") or ("doc" if "text" in rec else "chat")
    meta = rec.get("meta") or {}
    if kind == "faq":
        turns = [m for m in rec.get("messages", []) if m.get("role") in ("user", "assistant")]
        q = next((m["content"].strip() for m in turns if m["role"] == "user"), "")
        a = next((m["content"].strip() for m in turns if m["role"] == "assistant"), "")
        if not q or not a:
            return []
        title = str(meta.get("category") or "FAQ").strip().capitalize()
        return [ChunkSpan(Chunk(f"{rec['id']}#c0", rec["id"], "faq", f"FAQ: {title}", "", f"{q}\n{a}"),
                          0, record_words(rec))]
    if kind != "doc":
        return []
    title = str(meta.get("title") or rec["id"])
    out: list[ChunkSpan] = []
    for path, body, start, end in _sections(rec.get("text", ""), title):
        # The section's heading words (and those of empty sections before it) go with its first piece.
        pos = start + (end - start) - count_words(body)
        for i, (piece, words) in enumerate(_pieces(body, max_words, overlap_words)):
            chunk = Chunk(f"{rec['id']}#c{len(out)}", rec["id"], "doc", title, " › ".join(path), piece)
            out.append(ChunkSpan(chunk, start if i == 0 else pos, pos + words))
            pos += words
    return out


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
        spans = chunk_record(rec, max_words, overlap_words)
        if not spans:
            skipped["faq_without_answer" if kind == "faq" else "empty_doc"] += 1
        chunks += [s.chunk for s in spans]
    words = [len(c.text.split()) for c in chunks]
    report = {"chunks": len(chunks), "by_kind": dict(Counter(c.kind for c in chunks)),
              "skipped_by_reason": dict(skipped),
              "words": {"max": max(words, default=0), "mean": round(sum(words) / max(len(words), 1), 1)}}
    return chunks, report

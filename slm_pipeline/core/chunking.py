"""Chunks of the anonymized corpus: one chunker for the retrieval index and the document training pairs.

A document is cut at its Markdown headings (`#`..`######`; lines inside ``` / ~~~ fences are code, never
headings), keeping the heading path ("Title › Section › Subsection"). A section longer than `max_words` is
split (sizes by `budget_size`: words, but a URL, path or XML line counts as the several words it costs the model),
structure first: at paragraphs and whole code blocks, then a long paragraph at its lines (lists), then
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

__all__ = ["Chunk", "ChunkSpan", "budget_size", "chunk_record", "chunk_records", "count_words", "first_heading",
           "record_words", "split_markdown", "split_words"]

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


# A unit is the smallest thing a piece is built from: (text, separator before it, words, size, is code).
_Unit = tuple[str, str, int, int, bool]
_PIECE = re.compile(r"\w+|[^\w\s]")


def _cost(piece: str) -> int:
    if piece.isalpha():
        return 1 + len(piece) // 12  # a word; a very long identifier costs more
    return 1 if len(piece) <= 2 else (len(piece) + 2) // 3  # numbers, hex ids, hashes: a few characters a token


def budget_size(text: str) -> int:
    """Size of `text` against the word budget: its words, but a long technical token (URL, path, XML tag, hex
    number) counts as several: 3 per 4 pieces (letter runs, digit runs by 3 characters, punctuation marks),
    about what it costs in model tokens."""
    return max(count_words(text), (3 * sum(_cost(p) for p in _PIECE.findall(text)) + 3) // 4)


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


def _code_units(block: str, sep: str, budget: int) -> list[_Unit]:
    """A long code block as groups of whole lines, each fenced again (a line longer than the budget stays whole)."""
    lines = block.split("\n")
    closed = len(lines) > 1 and _FENCE.match(lines[-1]) is not None
    fence, close = lines[0], (lines[-1] if closed else lines[0].strip()[:3])
    inner = lines[1:-1] if closed else lines[1:]
    units: list[_Unit] = []
    group: list[str] = []
    for line in [*inner, None]:
        if line is not None and (not group or budget_size("\n".join([*group, line])) <= budget):
            group.append(line)
            continue
        if group:
            text = "\n".join([fence, *group, close])
            # The fence lines' words (a language tag) are counted once, with the first piece.
            words = count_words("\n".join(group)) + (0 if units else count_words(fence) + count_words(close))
            units.append((text, sep if not units else "\n\n", words, budget_size(text), True))
        group = [line] if line is not None else []
    return units


def _prose_units(block: str, sep: str, budget: int) -> list[_Unit]:
    """A long paragraph as its lines (list items), a long line as sentences, a long sentence as word runs."""
    parts: list[tuple[str, str]] = []  # (text, separator)
    for i, line in enumerate(ln for ln in block.split("\n") if ln.strip()):
        line_sep = sep if i == 0 else "\n"
        if budget_size(line) <= budget:
            parts.append((line, line_sep))
            continue
        first = len(parts)  # the line's first part takes the line's separator, the rest a space
        for sent in _SENTENCE_END.split(line):
            run: list[str] = []
            for word in [*sent.split(), None]:
                if run and (word is None or budget_size(" ".join([*run, word])) > budget):
                    parts.append((" ".join(run), line_sep if len(parts) == first else " "))
                    run = []
                if word is not None:
                    run.append(word)
    return [(t, s, count_words(t), budget_size(t), False) for t, s in parts]


def _units(body: str, budget: int) -> list[_Unit]:
    units: list[_Unit] = []
    for b, (block, is_code) in enumerate(_blocks(body)):
        sep = "\n\n" if b else ""
        if budget_size(block) <= budget:
            units.append((block, sep, count_words(block), budget_size(block), is_code))
        else:
            units += (_code_units if is_code else _prose_units)(block, sep, budget)
    return units


def _tail(units: list[_Unit], overlap_words: int) -> str:
    """The last whole sentences of a piece's prose, at most overlap_words words ('' after code)."""
    if not overlap_words or not units or units[-1][4]:
        return ""
    sentences = _SENTENCE_END.split(units[-1][0].split("\n")[-1])
    tail: list[str] = []
    for sent in reversed(sentences):
        if budget_size(" ".join([sent, *tail])) > overlap_words:
            break
        tail.insert(0, sent)
    return " ".join(tail)


def _pieces(body: str, budget: int, overlap_words: int) -> list[tuple[str, int]]:
    """(piece text, words of the body the piece adds) — the counts add up to the body's words."""
    if budget_size(body) <= budget:
        return [(body, count_words(body))]
    pieces: list[tuple[str, int]] = []
    current: list[_Unit] = []
    tail = ""

    def render(units: list[_Unit], lead: str) -> str:
        out = lead
        for i, (text, sep, *_) in enumerate(units):
            out += ((sep or "\n\n") if i or lead else "") + text
        return out.strip()

    for unit in _units(body, budget):
        size = sum(u[3] for u in current) + budget_size(tail)
        if current and size + unit[3] > budget:
            # "... run this:" belongs with the code it introduces (a little over budget rather than alone).
            lead_in = unit[4] and not current[-1][4] and current[-1][0].rstrip().endswith(":")
            if lead_in and len(current) == 1 and not tail:
                current.append(unit)
                continue
            carry = [current.pop()] if lead_in else []
            pieces.append((render(current, tail), sum(u[2] for u in current)))
            tail = "" if carry else _tail(current, overlap_words)
            if budget_size(tail) + unit[3] > budget:
                tail = ""
            current = carry
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

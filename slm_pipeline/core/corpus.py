"""Raw corpus ingestion: read documents, FAQ tables and support chats into one validated record list.

Supported inputs under `corpus.corpus_dir` (walked recursively, sorted, hidden files ignored):
  - `.md` / `.txt`  -> one "doc" record per file (`text`, `meta.title`)
  - `.rst`, `.html`/`.htm`, `.pdf`, `.docx`, `.pptx` -> converted to Markdown first (core/convert.py), then one
                       "doc" record like a Markdown file (`meta.format` names the original format)
  - `.csv`          -> one "faq" record per row (question/answer columns are configurable)
  - `.jsonl`        -> one "chat" record per line, either `{"messages": [{"role", "content"}]}`
                       or `{"turns": [{"speaker", "text"}]}`
  - a folder written by `datasets.Dataset.save_to_disk` -> "doc" (`text` column), "chat" (`messages`)
    or "faq" (question/answer columns)

Record format (every later stage relies on it):
  {"id": str, "source": relpath, "kind": "doc"|"faq"|"chat", "text": str (doc only),
   "messages": [{"role": "system"|"user"|"assistant", "content": str}] (faq, chat),
   "path": absolute path, "line": int | None, "meta": dict}

Every problem raises `CorpusError` naming the file, the line/row and the fix. With
`corpus.on_bad_record: skip`, bad records (or whole unreadable files) are collected in `problems` instead.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from slm_pipeline.config import CorpusConfig
from slm_pipeline.core.chunking import first_heading
from slm_pipeline.core.convert import CONVERTED_EXTENSIONS, LEGACY_HINTS, ConversionError, to_markdown

__all__ = ["CorpusError", "CorpusResult", "load_corpus", "preview_markdown", "SUPPORTED_EXTENSIONS"]

DOC_EXTENSIONS = (".md", ".txt")
SUPPORTED_EXTENSIONS = (*DOC_EXTENSIONS, *CONVERTED_EXTENSIONS, ".csv", ".jsonl")
SUPPORTED_HELP = (
    "supported: .md/.txt/.rst/.html/.pdf/.docx/.pptx documents, .csv FAQ tables, .jsonl chats, or a folder "
    "written by datasets.Dataset.save_to_disk"
)
# Marker files that make a folder a saved Hugging Face dataset rather than a folder to walk into.
HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")

# Role names seen in common chat exports, mapped onto the three roles we train with.
ROLE_SYNONYMS = {
    "system": "system",
    "user": "user", "human": "user", "customer": "user", "client": "user",
    "assistant": "assistant", "gpt": "assistant", "agent": "assistant", "support": "assistant", "bot": "assistant",
}


class CorpusError(ValueError):
    """A corpus file or record is unusable; the message names the file, the line and the fix."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None,
                 reason: str = "bad_file"):
        super().__init__(message)
        self.path = str(path) if path is not None else None
        self.line = line
        self.reason = reason  # short code, counted in the raw_corpus metadata (skipped_by_reason)


@dataclass
class CorpusResult:
    records: list[dict]
    problems: list[dict] = field(default_factory=list)  # {"path", "line", "error", "reason"} of skipped records/files
    stats: dict = field(default_factory=dict)


def _where(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


def load_corpus(cfg: CorpusConfig, corpus_dir: Path | str) -> CorpusResult:
    """Read and validate every corpus file under `corpus_dir` (see module docstring for formats)."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise CorpusError(
            f"Corpus folder {corpus_dir} does not exist; create it or point the `corpus.corpus_dir` setting at "
            f"your documents ({SUPPORTED_HELP})."
        )
    sources = _discover(corpus_dir)
    if not sources:
        raise CorpusError(
            f"Corpus folder {corpus_dir} contains no files; add documents there or point the "
            f"`corpus.corpus_dir` setting at your corpus ({SUPPORTED_HELP})."
        )

    problems: list[dict] = []

    def report(path: Path, line: int | None, message: str, reason: str = "bad_record") -> None:
        """Record-level problem: raise in 'error' mode, remember and continue in 'skip' mode."""
        error = CorpusError(f"{_where(path, line)}: {message}", path, line, reason)
        if cfg.on_bad_record == "error":
            raise error
        problems.append({"path": str(path), "line": line, "error": str(error), "reason": reason})

    records: list[dict] = []
    seen_ids: dict[str, str] = {}
    for path in sources:
        rel = path.relative_to(corpus_dir).as_posix()
        try:
            file_records = _read_source(path, rel, cfg, report)
        except CorpusError as e:  # file-level problem (encoding, binary, missing column...): skip the whole file
            if cfg.on_bad_record == "error":
                raise
            problems.append({"path": str(path), "line": e.line, "error": str(e), "reason": e.reason})
            continue
        for rec in file_records:
            where = _where(path, rec["line"])
            if rec["id"] in seen_ids:
                report(path, rec["line"], f"duplicate id {rec['id']!r} (first seen at {seen_ids[rec['id']]}); "
                                          "give every chat a unique id", "duplicate_id")
                continue
            seen_ids[rec["id"]] = where
            records.append(rec)

    if not records:
        first = f" First problem: {problems[0]['error']}" if problems else ""
        raise CorpusError(
            f"No usable records in {corpus_dir} ({len(problems)} problems skipped).{first} "
            "Fix the files or point the `corpus.corpus_dir` setting elsewhere."
        )
    return CorpusResult(records=records, problems=problems, stats=_stats(records, problems, len(sources)))


def _discover(root: Path) -> list[Path]:
    """Corpus files and saved-dataset folders, in a deterministic order."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here != root and any((here / m).exists() for m in HF_MARKERS):
            found.append(here)
            dirnames[:] = []  # a saved dataset is one source; don't read its arrow files one by one
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(here / f for f in sorted(filenames) if not f.startswith("."))
    return sorted(found)


def _read_source(path: Path, rel: str, cfg: CorpusConfig, report: Callable) -> list[dict]:
    if path.is_dir():
        return _read_hf_dataset(path, rel, cfg, report)
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        hint = f"Save it as {LEGACY_HINTS[ext]}" if ext in LEGACY_HINTS else "Convert it"
        raise CorpusError(
            f"{path}: unsupported file type {ext or '(no extension)'!r} ({SUPPORTED_HELP}). "
            f"{hint} or move it out of the corpus folder.", path, reason="unsupported_type")
    if ext in CONVERTED_EXTENSIONS:
        return [_converted_doc_record(path, rel, cfg.max_file_mb)]
    text = _read_text(path, cfg.max_file_mb)
    if ext in DOC_EXTENSIONS:
        return [_doc_record(path, rel, text)]
    if ext == ".csv":
        return _read_faq_csv(path, rel, text, cfg, report)
    return _read_chats_jsonl(path, rel, text, report)


def _check_size(path: Path, max_file_mb: float) -> None:
    size_mb = path.stat().st_size / 1e6
    if size_mb > max_file_mb:
        raise CorpusError(
            f"{path}: file is {size_mb:.1f} MB, over the {max_file_mb} MB limit; split it, remove it, or raise "
            "`corpus.max_file_mb`.", path, reason="too_large")


def _converted_doc_record(path: Path, rel: str, max_file_mb: float) -> dict:
    """A PDF/Word/PowerPoint/HTML/reStructuredText file as a Markdown "doc" record."""
    _check_size(path, max_file_mb)
    try:
        text, format_title = to_markdown(path)
    except ConversionError as e:
        raise CorpusError(f"{path}: {e}", path, reason="unreadable_document") from None
    if not text.strip():
        raise CorpusError(f"{path}: no text could be read from this {path.suffix.lower()} file; export it again "
                          "with its text (not as images) or remove it from the corpus folder.", path, reason="no_text")
    record = _doc_record(path, rel, text, title=first_heading(text) or format_title)
    record["meta"]["format"] = path.suffix.lower().lstrip(".")
    return record


def _read_text(path: Path, max_file_mb: float) -> str:
    """Read a text file strictly as UTF-8, refusing oversized, binary and empty files."""
    _check_size(path, max_file_mb)
    data = path.read_bytes()
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise CorpusError(
            f"{path}:{line}: contains NUL bytes, so it looks like a binary file, not text; remove it from the "
            "corpus folder or export it as UTF-8 text (UTF-16 text also looks like this: re-encode it as UTF-8).",
            path, line, "binary")
    try:
        text = data.decode("utf-8-sig")  # tolerate a BOM written by spreadsheet tools
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CorpusError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x} at byte offset {e.start}); re-encode the "
            f"file as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed_{path.name}`.", path, line, "not_utf8") from None
    if not text.strip():
        raise CorpusError(f"{path}: file is empty; add content or delete it.", path, reason="no_text")
    return text


def _record(rel: str, path: Path, kind: str, rid: str, line: int | None, meta: dict, **body) -> dict:
    return {"id": rid, "source": rel, "kind": kind, **body, "path": str(path.resolve()), "line": line, "meta": meta}


def _doc_record(path: Path, rel: str, text: str, rid: str | None = None, line: int | None = None,
                title: str | None = None) -> dict:
    if title is None:
        # The first "# Title" heading (outside code blocks) names the document; otherwise the file name does.
        title = first_heading(text)
    title = title or Path(rel).stem.replace("_", " ").replace("-", " ").strip().capitalize()
    return _record(rel, path, "doc", rid or rel, line, {"title": title}, text=text.strip())


def _read_faq_csv(path: Path, rel: str, text: str, cfg: CorpusConfig, report: Callable) -> list[dict]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as e:
        raise CorpusError(f"{path}:1: unreadable CSV header: {e}", path, 1) from None
    for setting in ("faq_question_column", "faq_answer_column"):
        if getattr(cfg, setting) not in header:
            raise CorpusError(
                f"{path}: no column {getattr(cfg, setting)!r} (columns found: {', '.join(header)}); rename the "
                f"column or set `corpus.{setting}` to the right name.", path, 1)
    q_idx, a_idx = header.index(cfg.faq_question_column), header.index(cfg.faq_answer_column)

    records = []
    row_no = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            report(path, reader.line_num, f"unreadable CSV row: {e}; check quoting")
            continue
        line = reader.line_num  # physical line where the row ends (quoted fields may span lines)
        if not any(cell.strip() for cell in row):
            continue  # blank line
        row_no += 1
        if len(row) != len(header):
            report(path, line, f"row {row_no} has {len(row)} fields but the header has {len(header)}; quote "
                               "fields that contain commas")
            continue
        question, answer = row[q_idx].strip(), row[a_idx].strip()
        if not question or not answer:
            empty = cfg.faq_question_column if not question else cfg.faq_answer_column
            report(path, line, f"row {row_no} has an empty {empty!r}; fill it in or delete the row")
            continue
        meta = {h: row[i].strip() for i, h in enumerate(header) if i not in (q_idx, a_idx) and row[i].strip()}
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        records.append(_record(rel, path, "faq", f"{rel}#{row_no}", line, meta, messages=messages))
    if row_no == 0:
        raise CorpusError(f"{path}: has a header but no rows; add question/answer rows or delete it.", path)
    return records


def _read_chats_jsonl(path: Path, rel: str, text: str, report: Callable) -> list[dict]:
    records = []
    # split("\n"), not splitlines(): JSON strings may legally contain U+2028 and other line separators.
    for line_no, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            report(path, line_no, f"malformed JSON ({e.msg} at column {e.colno}); each line must be one JSON object")
            continue
        if not isinstance(obj, dict):
            report(path, line_no, f"expected a JSON object, got {type(obj).__name__}")
            continue
        messages, error = _chat_messages(obj)
        if error:
            report(path, line_no, error)
            continue
        rid = str(obj["id"]) if obj.get("id") not in (None, "") else f"{rel}#{line_no}"
        meta = {k: v for k, v in obj.items() if k not in ("id", "messages", "turns")}
        records.append(_record(rel, path, "chat", rid, line_no, meta, messages=messages))
    return records


def _chat_messages(obj: dict) -> tuple[list[dict], str | None]:
    """Normalize a chat to [{"role", "content"}]; returns (messages, error message or None)."""
    if isinstance(obj.get("messages"), list):
        raw, role_key, text_key = obj["messages"], "role", "content"
    elif isinstance(obj.get("turns"), list):
        raw, role_key, text_key = obj["turns"], "speaker", "text"
    else:
        return [], (f"no 'messages' or 'turns' list (keys found: {', '.join(obj) or 'none'}); write "
                    '{"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}')
    messages = []
    for i, m in enumerate(raw, 1):
        if not isinstance(m, dict):
            return [], f"message {i} is not an object"
        # Also accept ShareGPT-style {"from", "value"}.
        role = m.get(role_key, m.get("role", m.get("from")))
        content = m.get(text_key, m.get("content", m.get("value")))
        mapped = ROLE_SYNONYMS.get(str(role).strip().lower()) if role is not None else None
        if mapped is None:
            return [], f"message {i} has unknown {role_key} {role!r}; use one of: {', '.join(ROLE_SYNONYMS)}"
        if not isinstance(content, str) or not content.strip():
            return [], f"message {i} ({role}) has empty or missing {text_key!r}; remove the message or fill it in"
        messages.append({"role": mapped, "content": content.strip()})
    roles = {m["role"] for m in messages}
    if "assistant" not in roles or "user" not in roles:
        missing = "assistant" if "assistant" not in roles else "user"
        return [], f"chat has no {missing} turn; a training chat needs at least one user and one assistant message"
    return messages, None


def _read_hf_dataset(path: Path, rel: str, cfg: CorpusConfig, report: Callable) -> list[dict]:
    import datasets  # heavy import; only needed when a saved dataset is present

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001 - any failure here means the folder is not a readable dataset
        raise CorpusError(f"{path}: could not load saved dataset ({e}); re-save it with "
                          "Dataset.save_to_disk or remove the folder.", path) from None
    splits = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [(None, loaded)]
    q_col, a_col = cfg.faq_question_column, cfg.faq_answer_column
    records = []
    for split, ds in splits:
        base = f"{rel}/{split}" if split else rel
        cols = ds.column_names
        if not ({"text", "messages"} & set(cols) or {q_col, a_col} <= set(cols)):
            raise CorpusError(
                f"{path}: dataset{f' split {split!r}' if split else ''} has columns {', '.join(cols)}; expected "
                f"'text' (documents), 'messages' (chats) or {q_col!r} + {a_col!r} (FAQ, see "
                "`corpus.faq_question_column` / `corpus.faq_answer_column`).", path)
        for i, row in enumerate(ds, 1):
            rid, meta = f"{base}#{i}", {"split": split} if split else {}
            if "messages" in cols:
                messages, error = _chat_messages(row)
                if error:
                    report(path, i, f"row {i}: {error}")
                    continue
                records.append(_record(rel, path, "chat", rid, i, meta, messages=messages))
            elif "text" in cols:
                if not isinstance(row["text"], str) or not row["text"].strip():
                    report(path, i, f"row {i} has an empty 'text'")
                    continue
                title = row.get("title") if isinstance(row.get("title"), str) else None
                records.append(_doc_record(path, rel, row["text"], rid=rid, line=i, title=title))
            else:
                q, a = str(row[q_col] or "").strip(), str(row[a_col] or "").strip()
                if not q or not a:
                    report(path, i, f"row {i} has an empty {q_col if not q else a_col!r}")
                    continue
                messages = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
                records.append(_record(rel, path, "faq", rid, i, meta, messages=messages))
    return records


def _record_text(rec: dict) -> str:
    if "text" in rec:
        return rec["text"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in rec.get("messages", []))


def _stats(records: list[dict], problems: list[dict], n_sources: int) -> dict:
    return {
        "n_records": len(records),
        "n_sources": n_sources,
        "n_problems": len(problems),
        "skipped_by_reason": dict(Counter(p.get("reason", "bad_record") for p in problems)),
        "by_kind": dict(Counter(r["kind"] for r in records)),
        "by_source": dict(Counter(r["source"] for r in records)),
        "total_chars": sum(len(r.get("text", "")) + sum(len(m["content"]) for m in r.get("messages", []))
                           for r in records),
    }


def preview_markdown(records: list[dict], n: int = 5) -> str:
    """A small markdown table of the first `n` records, for Dagster metadata."""
    def cell(s: str) -> str:
        return " ".join(str(s).split()).replace("|", "\\|")

    lines = ["| id | kind | source | preview |", "|---|---|---|---|"]
    for r in records[:n]:
        text = " ".join(_record_text(r).split())
        preview = text[:80] + ("…" if len(text) > 80 else "")
        lines.append(f"| {cell(r['id'])} | {r['kind']} | {cell(r['source'])} | {cell(preview)} |")
    return "\n".join(lines)

"""The feedback store of the retraining loop: one SQLite file, `<artifacts_dir>/feedback/feedback.db`.

Three tables:
- `completions`: every answer the serving API gave (`completion_id` = the OpenAI-style `id` of the response,
  the served model name, the last user question and the answer). Questions are stored as asked: like
  `raw_corpus`, this is raw data; corrections are anonymized by the pipeline before they are trained on.
- `feedback`: one row per rating (autoincrement `id`, which is what `feedback_sensor` keeps as its cursor),
  with the completion's model/question/answer copied in, `rating`, its `scale` and an optional `correction`.
  Rating scales: `thumbs` (default): -1 = bad, +1 = good; `stars`: 1..5. A row is *negative* when it is a
  thumbs-down or has at most `negative_max_stars` stars (default 2). Negative rows and rows with a
  correction count toward the retrain threshold (`feedback.min_negative`).
- `questions`: each served user question, already anonymized by the caller, for the most-common-questions
  summary (`top_questions`). Never raw text.

Every call opens its own short-lived connection (WAL mode, busy timeout), so the serving threads, the Dagster
sensors and the assets can use the same file at the same time. No Dagster imports here.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "DB_NAME",
    "FeedbackError",
    "FeedbackStore",
    "UnknownCompletionError",
    "feedback_db_path",
    "normalize_question",
]

DB_NAME = "feedback.db"
MAX_CORRECTION_CHARS = 20_000
SCALES = {"thumbs": (-1, 1), "stars": (1, 5)}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    completion_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    model TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    completion_id TEXT NOT NULL,
    model TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    rating INTEGER NOT NULL,
    scale TEXT NOT NULL CHECK (scale IN ('thumbs', 'stars')),
    negative INTEGER NOT NULL CHECK (negative IN (0, 1)),
    correction TEXT
);
CREATE TABLE IF NOT EXISTS questions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    question TEXT NOT NULL,
    normalized TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS questions_normalized ON questions (normalized);
"""

_PLACEHOLDER = re.compile(r"<([A-Z_]+?)_\d+>")
_SPACE = re.compile(r"\s+")


class FeedbackError(ValueError):
    """A feedback value is invalid; the message says what is allowed."""


class UnknownCompletionError(LookupError):
    """Feedback names a completion id that the store has never seen."""

    def __init__(self, completion_id: str):
        super().__init__(
            f"unknown completion_id {completion_id!r}: send the `id` of a /v1/chat/completions response "
            "from this server"
        )
        self.completion_id = completion_id


def feedback_db_path(artifacts_dir: str | Path) -> Path:
    """Where the store lives: `<artifacts_dir>/feedback/feedback.db`."""
    return Path(artifacts_dir) / "feedback" / DB_NAME


def normalize_question(text: str) -> str:
    """Key for counting questions: lower case, single spaces, no trailing punctuation, `<PERSON_2>` -> `<PERSON>`."""
    text = _PLACEHOLDER.sub(r"<\1>", text)
    return _SPACE.sub(" ", text).strip().rstrip("?!. ").lower()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FeedbackStore:
    """The SQLite feedback store. `FeedbackStore(path)` creates the file and tables if needed."""

    def __init__(self, path: str | Path, negative_max_stars: int = 2):
        self.path = Path(path)
        self.negative_max_stars = negative_max_stars
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)

    @classmethod
    def open_existing(cls, path: str | Path, negative_max_stars: int = 2) -> FeedbackStore | None:
        """The store if its file exists, else None (readers never create an empty store)."""
        return cls(path, negative_max_stars) if Path(path).exists() else None

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=30)
        con.row_factory = sqlite3.Row
        try:
            with con:  # commits on success, rolls back on error
                yield con
        finally:
            con.close()

    # -- serving side ------------------------------------------------------------------------------------

    def record_completion(self, completion_id: str, model: str, question: str, answer: str) -> None:
        """Remember an answer so feedback can refer to it by `completion_id`."""
        with self._connect() as con:
            con.execute(
                "INSERT INTO completions (completion_id, created_at, model, question, answer) VALUES (?, ?, ?, ?, ?)",
                (completion_id, _now(), model, question, answer),
            )

    def get_completion(self, completion_id: str) -> dict | None:
        with self._connect() as con:
            row = con.execute("SELECT * FROM completions WHERE completion_id = ?", (completion_id,)).fetchone()
        return dict(row) if row else None

    def add_feedback(self, completion_id: str, rating: int, correction: str | None = None,
                     scale: str = "thumbs") -> dict:
        """Store a rating (and optional corrected answer) for a completion; returns the new feedback row.

        Raises UnknownCompletionError for an id the store never recorded, FeedbackError for a bad value."""
        if not isinstance(completion_id, str) or not completion_id:
            raise FeedbackError("completion_id must be a non-empty string")
        if scale not in SCALES:
            raise FeedbackError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
        lo, hi = SCALES[scale]
        if isinstance(rating, bool) or not isinstance(rating, int) or not lo <= rating <= hi or (
                scale == "thumbs" and rating == 0):
            allowed = "-1 (bad) or 1 (good)" if scale == "thumbs" else "an integer from 1 to 5"
            raise FeedbackError(f"rating on the {scale!r} scale must be {allowed}, got {rating!r}")
        if correction is not None:
            if not isinstance(correction, str):
                raise FeedbackError("correction must be a string (the answer the model should have given)")
            correction = correction.strip() or None
            if correction and len(correction) > MAX_CORRECTION_CHARS:
                raise FeedbackError(f"correction is longer than {MAX_CORRECTION_CHARS} characters")
        negative = rating < 0 if scale == "thumbs" else rating <= self.negative_max_stars
        with self._connect() as con:
            comp = con.execute("SELECT * FROM completions WHERE completion_id = ?", (completion_id,)).fetchone()
            if comp is None:
                raise UnknownCompletionError(completion_id)
            cur = con.execute(
                "INSERT INTO feedback (created_at, completion_id, model, question, answer, rating, scale, negative, "
                "correction) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_now(), completion_id, comp["model"], comp["question"], comp["answer"], rating, scale,
                 int(negative), correction),
            )
            row = con.execute("SELECT * FROM feedback WHERE id = ?", (cur.lastrowid,)).fetchone()
        return dict(row)

    def log_question(self, question: str) -> None:
        """Store an (already anonymized) user question for monitoring."""
        norm = normalize_question(question)
        if not norm:
            return
        with self._connect() as con:
            con.execute("INSERT INTO questions (created_at, question, normalized) VALUES (?, ?, ?)",
                        (_now(), question.strip(), norm))

    # -- pipeline side -----------------------------------------------------------------------------------

    def last_feedback_id(self) -> int:
        with self._connect() as con:
            return int(con.execute("SELECT COALESCE(MAX(id), 0) FROM feedback").fetchone()[0])

    def new_feedback_since(self, cursor_id: int) -> list[dict]:
        """Feedback rows with id > cursor_id, oldest first."""
        with self._connect() as con:
            rows = con.execute("SELECT * FROM feedback WHERE id > ? ORDER BY id", (int(cursor_id),)).fetchall()
        return [dict(r) for r in rows]

    def count_negative_since(self, cursor_id: int) -> int:
        """How many rows after cursor_id are negative ratings or carry a correction (each row counts once)."""
        with self._connect() as con:
            return int(con.execute(
                "SELECT COUNT(*) FROM feedback WHERE id > ? AND (negative = 1 OR correction IS NOT NULL)",
                (int(cursor_id),),
            ).fetchone()[0])

    def corrections_as_records(self, since_id: int = 0) -> list[dict]:
        """Corrections as corpus-style chat records (the latest correction per completion wins).

        Shape: {"id": "feedback-<n>", "source": "feedback", "kind": "feedback", "messages": [user question,
        assistant correction], "path": <db>, "line": None, "meta": {...}}. Not anonymized: run them through
        Anonymizer.anonymize_records before training."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM feedback WHERE correction IS NOT NULL AND id > ? AND id IN "
                "(SELECT MAX(id) FROM feedback WHERE correction IS NOT NULL GROUP BY completion_id) ORDER BY id",
                (int(since_id),),
            ).fetchall()
        return [
            {"id": f"feedback-{r['id']}", "source": "feedback", "kind": "feedback",
             "messages": [{"role": "user", "content": r["question"]},
                          {"role": "assistant", "content": r["correction"]}],
             "path": str(self.path), "line": None,
             "meta": {"feedback_id": r["id"], "completion_id": r["completion_id"], "model": r["model"],
                      "rating": r["rating"], "scale": r["scale"], "created_at": r["created_at"]}}
            for r in rows
        ]

    def top_questions(self, n: int = 20) -> list[dict]:
        """Most frequent questions (by normalized text): [{"question", "count", "last_seen"}], most common first."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT normalized, COUNT(*) AS count, MAX(created_at) AS last_seen, "
                "(SELECT q2.question FROM questions q2 WHERE q2.normalized = q.normalized ORDER BY q2.id DESC "
                " LIMIT 1) AS example "
                "FROM questions q GROUP BY normalized ORDER BY count DESC, last_seen DESC LIMIT ?",
                (int(n),),
            ).fetchall()
        return [{"question": r["example"], "normalized": r["normalized"], "count": r["count"],
                 "last_seen": r["last_seen"]} for r in rows]

    def stats(self) -> dict[str, int]:
        with self._connect() as con:
            one = lambda sql: int(con.execute(sql).fetchone()[0])  # noqa: E731
            return {
                "completions": one("SELECT COUNT(*) FROM completions"),
                "feedback": one("SELECT COUNT(*) FROM feedback"),
                "negative": one("SELECT COUNT(*) FROM feedback WHERE negative = 1"),
                "corrections": one("SELECT COUNT(*) FROM feedback WHERE correction IS NOT NULL"),
                "questions": one("SELECT COUNT(*) FROM questions"),
                "distinct_questions": one("SELECT COUNT(DISTINCT normalized) FROM questions"),
            }

"""The teacher's answer cache: one SQLite file (teacher.cache_file), one row per question put to the endpoint.

The key is a hash of everything that decides the answer at temperature 0: the model name, the rendered messages
(prompt template, title, heading path, chunk text and the number of pairs asked for) and max_tokens. The URL is
not in it: the same model behind another server answers the same. The raw answer is stored, not the parsed
pairs, so a change to parsing or filtering never needs the endpoint again. Never imports dagster.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

__all__ = ["AnswerCache", "cache_key"]


def cache_key(model: str, messages: list[dict], max_tokens: int) -> str:
    blob = json.dumps({"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class AnswerCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # timeout: two builds sharing the file wait for each other's writes instead of failing
        self._db = sqlite3.connect(self.path, timeout=30.0)
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                         "answer TEXT NOT NULL, created REAL NOT NULL)")
        self._db.commit()

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, model: str, answer: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)", (key, model, answer, time.time()))
        self._db.commit()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        self._db.close()

"""The teacher's prompt (pairs_prompt.j2, a data file) and the parsing of its answer into (question, answer) pairs.

Models wrap JSON in ```json fences, add a sentence before it, think aloud in <think> tags, or return an object
instead of a list; all of that is accepted. An answer with no JSON list of pairs in it raises
TeacherResponseError (counted and reported as "teacher_malformed", never a crash). Never imports dagster.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from pathlib import Path

import jinja2

from .client import TeacherResponseError

__all__ = ["TEMPLATE_FILE", "PromptTemplate", "parse_pairs"]

TEMPLATE_FILE = Path(__file__).with_name("pairs_prompt.j2")
_FENCE = re.compile(r"```[a-zA-Z]*[ \t]*\n?(.*?)```", re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_QUESTION_KEYS = ("question", "q", "query")
_ANSWER_KEYS = ("answer", "a", "response")


class PromptTemplate:
    """A Jinja2 template rendered to the one user message sent per chunk; `sha` (of its text) keys the cache."""

    def __init__(self, text: str):
        self.text = text
        self._template = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                                            keep_trailing_newline=True).from_string(text)

    @classmethod
    def load(cls, path: Path = TEMPLATE_FILE) -> PromptTemplate:
        return cls(Path(path).read_text(encoding="utf-8"))

    @cached_property
    def sha(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]

    def messages(self, company: str, title: str, section: str, n: int) -> list[dict]:
        """The chat messages for one chunk; `section` is "Title › heading path", a blank line, the chunk text."""
        label, _, text = section.partition("\n\n")
        heading = label[len(title) + 3:] if label.startswith(f"{title} › ") else label
        content = self._template.render(company=company, title=title, heading=heading or title,
                                        text=text.strip() or label, n=n)
        return [{"role": "user", "content": content.strip()}]


def _json_values(text: str) -> list[object]:
    """Every JSON value `text` holds whole, in a ``` fence, or starting at one of its first brackets."""
    values = []
    decoder = json.JSONDecoder()
    for candidate in [text, *_FENCE.findall(text)]:
        try:
            values.append(json.loads(candidate))
        except ValueError:
            pass
    for m in list(re.finditer(r"[\[{]", text))[:20]:
        try:
            values.append(decoder.raw_decode(text, m.start())[0])
        except ValueError:
            continue
    return values


def _items(doc: object) -> list | None:
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        lowered = {str(k).lower(): v for k, v in doc.items()}
        if any(k in lowered for k in _QUESTION_KEYS):
            return [doc]  # a single pair
        lists = [v for v in doc.values() if isinstance(v, list)]  # {"pairs": [...]}, {"qa": [...]}
        return lists[0] if lists else None
    return None


def _pair(item: object) -> tuple[str, str] | None:
    if isinstance(item, dict):
        lowered = {str(k).lower(): v for k, v in item.items()}
        q = next((lowered[k] for k in _QUESTION_KEYS if k in lowered), None)
        a = next((lowered[k] for k in _ANSWER_KEYS if k in lowered), None)
    elif isinstance(item, list | tuple) and len(item) == 2:
        q, a = item
    else:
        return None
    return (q.strip(), a.strip()) if isinstance(q, str) and isinstance(a, str) else None


def parse_pairs(text: str) -> tuple[list[tuple[str, str]], int]:
    """(pairs, items that were no question/answer pair) from a teacher answer; TeacherResponseError if it holds
    no JSON list of pairs at all. Of several JSON values in the answer, the one with the most pairs wins (an
    answer's own ``` code fence inside a JSON string, or "[3]" in a sentence, must not hide the list)."""
    text = _THINK.sub("", text or "").strip()
    best: tuple[list[tuple[str, str]], int] | None = None
    for value in _json_values(text):
        items = _items(value)
        if items is None:
            continue
        pairs = [p for p in map(_pair, items) if p is not None]
        if best is None or len(pairs) > len(best[0]):
            best = pairs, len(items) - len(pairs)
    if best is None:
        raise TeacherResponseError(f"no JSON list of question/answer pairs in the answer: {text[:160]!r}")
    return best

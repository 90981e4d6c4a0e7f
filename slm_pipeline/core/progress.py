"""Progress lines with share done and ETA for long loops, at most one every few seconds. Never imports dagster."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Progress"]


class Progress:
    """`step()` after each item; logs "<what> done/total[ unit] (p%), ETA Ns[, note]" every `every_s` seconds and
    at the end, through `log` (a logger's info, print, ...)."""

    def __init__(self, total: int, log: Callable[[str], None] | None, what: str, every_s: float = 10.0,
                 unit: str = ""):
        self.total, self.log, self.what, self.every_s = total, log, what, every_s
        self.unit = f" {unit}" if unit else ""
        self.done = 0
        self._start = self._last = time.monotonic()

    def step(self, n: int = 1, note: str = "") -> None:
        self.done += n
        now = time.monotonic()
        if self.log is None or (now - self._last < self.every_s and self.done < self.total):
            return
        self._last = now
        elapsed = now - self._start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        self.log(f"{self.what} {self.done}/{self.total}{self.unit} ({100 * self.done / max(self.total, 1):.0f}%), "
                 f"ETA {eta:.0f}s{', ' + note if note else ''}")

"""The bounded generation queue: at most `capacity` generations run at once, at most `max_waiting` requests wait
for a slot (first come, first served), and the rest are turned away at once with a Retry-After estimate instead
of piling up until every client times out. Runs on the server's event loop (not thread-safe by design)."""

from __future__ import annotations

import asyncio
import collections
import math
import time

from slm_pipeline.core.engines import ApiError

RETRY_AFTER_MAX_S = 120


class Slot:
    """A held generation slot; `release()` is idempotent (cleanup paths may call it twice)."""

    def __init__(self, queue: GenerationQueue):
        self._queue, self._t0, self._released = queue, time.monotonic(), False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._queue._release(time.monotonic() - self._t0)


class GenerationQueue:
    def __init__(self, capacity: int, max_waiting: int, timeout_s: float, expected_s: float = 2.0):
        self.capacity, self.max_waiting, self.timeout_s = max(1, capacity), max(0, max_waiting), timeout_s
        self.running = 0
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._mean_s = expected_s  # moving average of slot hold times, for Retry-After
        self.rejected = 0
        self.timed_out = 0

    @property
    def waiting(self) -> int:
        return sum(not f.done() for f in self._waiters)

    def stats(self) -> dict:
        return {"running": self.running, "waiting": self.waiting, "capacity": self.capacity,
                "max_waiting": self.max_waiting, "rejected": self.rejected, "timed_out": self.timed_out,
                "mean_generation_s": round(self._mean_s, 3)}

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead drained at the measured generation time."""
        ahead = self.waiting + 1
        return int(min(RETRY_AFTER_MAX_S, max(1, math.ceil(self._mean_s * ahead / self.capacity))))

    async def acquire(self) -> Slot:
        """A slot now, or after waiting; ApiError 429 (queue full) or 503 (waited timeout_s) otherwise."""
        if self.running < self.capacity and not self.waiting:
            self.running += 1
            return Slot(self)
        if self.waiting >= self.max_waiting:
            self.rejected += 1
            raise ApiError(429, f"the server is busy: {self.running} generations running and {self.waiting} waiting "
                                "(serve.max_queue); retry after the Retry-After seconds", "rate_limit_error",
                           code="queue_full", headers={"Retry-After": str(self.retry_after())})
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            async with asyncio.timeout(self.timeout_s):
                await fut
        except TimeoutError:
            if fut.done() and not fut.cancelled():  # the slot was handed over as the timeout fired: keep it
                return Slot(self)
            self.timed_out += 1
            raise ApiError(503, f"no generation slot within {self.timeout_s:g} s (serve.queue_timeout_s); try again",
                           "server_error", code="busy", headers={"Retry-After": str(self.retry_after())}) from None
        except BaseException:  # cancelled (client gone): pass a slot we were just handed on
            if fut.done() and not fut.cancelled():
                self._release(None)
            raise
        finally:
            try:
                self._waiters.remove(fut)
            except ValueError:
                pass
        return Slot(self)

    def _release(self, held_s: float | None) -> None:
        if held_s is not None:
            self._mean_s = 0.8 * self._mean_s + 0.2 * held_s
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes to the oldest waiter; `running` stays
                return
        self.running -= 1

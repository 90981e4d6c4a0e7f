"""`GroundingBatcher`: retrieval for concurrent requests in one pass. Requests that arrive while a pass runs
wait for the next one, which grounds them all with `Grounder.ground_many` (one embedding batch), so under load
the per-question cost falls instead of every request queueing on the embedder; alone, a request goes through
at once (no batching delay). Measured on 2 busy cores in front of an instant engine: 24 requests/s one by one."""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool

from slm_pipeline.core.grounding import Grounded, Grounder


class GroundingBatcher:
    def __init__(self, grounder: Grounder, max_batch: int = 32):
        self.grounder, self.max_batch = grounder, max_batch
        self._pending: list[tuple[list[dict], asyncio.Future]] = []
        self._draining = False
        self.passes = 0  # grounding passes run (fewer than requests under load)

    async def ground(self, messages: list[dict]) -> Grounded:
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((messages, fut))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                batch = [(m, f) for m, f in batch if not f.done()]  # the client went away meanwhile
                if not batch:
                    continue
                self.passes += 1
                try:
                    results = await run_in_threadpool(self.grounder.ground_many, [m for m, _ in batch])
                except Exception as e:  # noqa: BLE001 - each waiting request gets the error
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(e)
                    continue
                for (_, f), r in zip(batch, results, strict=True):
                    if not f.done():
                        f.set_result(r)
        finally:
            self._draining = False

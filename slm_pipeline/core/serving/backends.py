"""Generation backends as the async HTTP layer sees them: `generate(messages, sampling)` -> Generation and
`stream(messages, sampling)` -> async pieces of text, then one Generation.

`LocalBackend` runs an in-process engine (core/engines.py: transformers or llama.cpp) in a worker thread, so
the event loop (and /health) never waits for the model; `UpstreamBackend` (upstream.py) forwards to an
OpenAI-compatible engine over HTTP."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator

import anyio

from slm_pipeline.core.engines import ChatEngine, Generation, LlamaCppChatEngine

from .protocol import Sampling

_END = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


class LocalBackend:
    """An in-process engine. One generation uses every core, so by default one runs at a time (serve.max_concurrent)."""

    kind = "in-process"
    default_concurrency = 1

    def __init__(self, engine: ChatEngine | LlamaCppChatEngine):
        self.engine = engine

    @property
    def refusal_start(self) -> list[int] | None:
        return self.engine.refusal_start

    def describe(self) -> str:
        return f"{self.engine.model_dir} ({self.engine.runtime})"

    def _kwargs(self, p: Sampling) -> dict:
        return dict(max_new_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p, seed=p.seed,
                    suppress_start=p.suppress_start, copy_from=p.copy_from)

    async def generate(self, messages: list[dict], p: Sampling) -> Generation:
        def run() -> Generation:
            with self.engine.lock:
                return self.engine.generate(messages, **self._kwargs(p))

        return await anyio.to_thread.run_sync(run)

    async def stream(self, messages: list[dict], p: Sampling) -> AsyncIterator[str | Generation]:
        """Pieces from a worker thread through an asyncio queue. Closing this generator (the client went away)
        stops generation at the next token and returns only once the model is idle, so the caller's slot is
        never released while the model still runs."""
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        finished = asyncio.Event()

        def put(x) -> None:
            try:
                loop.call_soon_threadsafe(items.put_nowait, x)
            except RuntimeError:  # the event loop is gone (server shut down)
                cancel.set()

        def work() -> None:
            try:
                with self.engine.lock:
                    pieces = self.engine.stream(messages, cancel=cancel, **self._kwargs(p))
                    try:
                        for x in pieces:
                            put(x)
                            if cancel.is_set():
                                break
                    finally:
                        pieces.close()  # joins the engine's own generation thread
            except BaseException as e:  # noqa: BLE001 - re-raised on the event loop
                put(_Failed(e))
            finally:
                put(_END)
                try:
                    loop.call_soon_threadsafe(finished.set)
                except RuntimeError:
                    pass

        # copy_context: log lines from the worker carry the request id
        threading.Thread(target=contextvars.copy_context().run, args=(work,), name="slm-serve-generate",
                         daemon=True).start()
        try:
            while True:
                x = await items.get()
                if x is _END:
                    return
                if isinstance(x, _Failed):
                    raise x.error
                yield x
        finally:
            cancel.set()
            with anyio.CancelScope(shield=True):
                await finished.wait()

    async def aclose(self) -> None:
        pass

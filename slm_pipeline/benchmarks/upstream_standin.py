"""A stand-in for an upstream OpenAI-compatible engine (what vLLM / llama-server / Ollama look like to `serve`):
it records every request it is sent and answers at once with a deterministic text, plain or streamed, with usage.
The serving bench uses it to measure the `serve` layer alone; the tests use it to check what `serve` forwards.

Knobs: `hold()` makes requests wait until `release()` (a busy engine); a last user message containing
"TOO LONG" gets the 400 a real engine sends for an over-long prompt."""

from __future__ import annotations

import json
import threading
import time

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..core.serving.server import bind_socket


class UpstreamStandIn:
    def __init__(self, answer: str = "Open the app, scan the QR code and tap Unlock.", api_key: str | None = None,
                 model: str = "upstream-model"):
        self.answer, self.api_key, self.model = answer, api_key, model
        self.requests: list[dict] = []  # {"body": ..., "headers": {...}}
        self._open = threading.Event()
        self._open.set()
        self.sock = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self._server = uvicorn.Server(uvicorn.Config(self._app(), log_config=None, access_log=False))
        self._thread: threading.Thread | None = None

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            self.requests.append({"body": body, "headers": dict(request.headers)})
            if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
                return JSONResponse({"error": {"message": "invalid api key"}}, 401)
            if body.get("model") != self.model:
                return JSONResponse({"error": {"message": f"model {body.get('model')!r} not found"}}, 404)
            if not self._open.is_set():
                await anyio.to_thread.run_sync(self._open.wait)
            question = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
            if "TOO LONG" in question:
                return JSONResponse({"error": {"message": "This model's maximum context length is 2048 tokens",
                                               "type": "BadRequestError"}}, 400)
            words = self.answer.split(" ")[: body.get("max_tokens", 256)]
            usage = {"prompt_tokens": sum(len(m["content"].split()) for m in body["messages"]),
                     "completion_tokens": len(words)}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            finish = "length" if len(words) < len(self.answer.split(" ")) else "stop"
            created, cid = int(time.time()), f"up-{len(self.requests)}"
            if not body.get("stream"):
                return {"id": cid, "object": "chat.completion", "created": created, "model": self.model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(words)},
                                     "finish_reason": finish}], "usage": usage}

            def chunk(delta, finish_reason=None, **extra):
                doc = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": self.model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra}
                return f"data: {json.dumps(doc)}\n\n"

            async def events():
                yield ": keep-alive\n\n"
                yield chunk({"role": "assistant", "content": ""})
                for i, w in enumerate(words):
                    yield chunk({"content": w if i == 0 else " " + w})
                yield chunk({}, finish)
                if (body.get("stream_options") or {}).get("include_usage"):
                    doc = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": self.model,
                           "choices": [], "usage": usage}
                    yield f"data: {json.dumps(doc)}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        return app

    def start(self) -> UpstreamStandIn:
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def close(self) -> None:
        self.release()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
        self.sock.close()

    def __enter__(self) -> UpstreamStandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

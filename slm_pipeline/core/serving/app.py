"""The FastAPI application: routes, auth, body limits, JSON errors, request ids, the generation queue.

Endpoints
---------
GET  /health                 liveness and load, no token, never waits for a generation:
                             {"status": "ok", "model", "backend", "replica", "queue": {running, waiting, ...},
                              "question_log": {backlog, dropped}}
GET  /v1/models              the one served model, OpenAI list shape (also /v1/models/{name})
POST /v1/chat/completions    OpenAI chat completions; `stream: true` answers with server-sent events
                             (`data: {chunk}` lines, then `data: [DONE]`). The response `id` is the completion
                             id recorded in the feedback store (before the answer is sent, so feedback on it
                             can go to any replica at once). With retrieval, responses carry an extra top-level
                             `sources` field; streams carry it in the first chunk.
POST /v1/feedback            {"completion_id": ..., "rating": -1 | 1, "correction": "..."?}
                             (or "scale": "stars" with rating 1..5); see core/feedback.py.

Errors are `{"error": {"message", "type", "code", "param"}}`: 400 bad field, 401 token (with WWW-Authenticate),
404 unknown path/model/completion, 405 method, 413 body over serve.max_body_bytes, 429 generation queue full
and 503 no slot within serve.queue_timeout_s (both with Retry-After), 500 unexpected (the server keeps running).
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from slm_pipeline.config import ServeConfig
from slm_pipeline.core.engines import ApiError, Generation
from slm_pipeline.core.feedback import FeedbackError, FeedbackStore, UnknownCompletionError
from slm_pipeline.core.grounding import Grounder

from . import protocol
from .admission import GenerationQueue
from .batching import GroundingBatcher
from .logs import new_request_id, request_id
from .questions import QuestionLog

log = logging.getLogger("slm_pipeline.serve")


@dataclass
class ServingState:
    """What the routes share: one per replica."""

    backend: object  # LocalBackend | UpstreamBackend
    store: FeedbackStore
    cfg: ServeConfig
    queue: GenerationQueue
    model_name: str
    replica: str
    token: str | None = None
    question_log: QuestionLog | None = None
    grounder: Grounder | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    batcher: GroundingBatcher | None = None

    def __post_init__(self):
        if self.grounder is not None and self.batcher is None:
            self.batcher = GroundingBatcher(self.grounder)


# ------------------------------------------------------------------------------------------- middleware


class RequestContext:
    """Pure ASGI middleware (streams pass through untouched): request id, one log line per request with status
    and duration, and a JSON 500 for anything the routes did not handle."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = new_request_id(given)
        token = request_id.set(rid)
        started, status, t0 = False, 500, time.perf_counter()

        async def send_with_id(message):
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:  # noqa: BLE001 - never let a request take the server down
            log.exception("unexpected error answering %s %s", scope["method"], scope["path"])
            if not started:
                err = ApiError(500, "internal server error; see the server log", "server_error")
                await JSONResponse(err.body(), 500)(scope, receive, send_with_id)
        finally:
            ms = 1000 * (time.perf_counter() - t0)
            level = logging.DEBUG if scope["path"] == "/health" else logging.INFO  # load balancers poll it
            log.log(level, "%s %s %d %.0f ms", scope["method"], scope["path"], status, ms)
            request_id.reset(token)


class EventStream(StreamingResponse):
    """Server-sent events whose cleanup (stop the generation, free its slot) runs however the response ends,
    including a client that disconnects before the first byte."""

    def __init__(self, content: AsyncIterator[bytes], cleanup: Callable[[], Awaitable[None]]):
        # X-Accel-Buffering: nginx in front must pass tokens on as they come, not buffer the stream
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._cleanup = cleanup

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._cleanup()


# --------------------------------------------------------------------------------------------- the app


def create_app(state: ServingState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await state.backend.aclose()

    app = FastAPI(title="slm-pipeline", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.add_middleware(RequestContext)
    app.state.serving = state

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, err: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else {}
        return JSONResponse(err.body(), err.status, headers={**headers, **err.headers})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        method, path = request.method, request.url.path
        if exc.status_code == 404:
            err = ApiError(404, f"no such endpoint: {method} {path}", code="not_found")
        elif exc.status_code == 405:
            err = ApiError(405, f"{method} is not allowed on {path}", code="method_not_allowed")
        else:
            err = ApiError(exc.status_code, str(exc.detail))
        return JSONResponse(err.body(), err.status, headers=dict(exc.headers or {}))

    async def require_token(request: Request) -> None:
        if not state.token:
            return
        scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), state.token.encode()):
            raise ApiError(401, "missing or wrong bearer token (send 'Authorization: Bearer <token>')",
                           "authentication_error", code="invalid_api_key")

    async def read_json(request: Request) -> dict:
        """The body as a JSON object; 413 as soon as it passes serve.max_body_bytes (chunked bodies included)."""
        limit = state.cfg.max_body_bytes
        declared = request.headers.get("content-length")
        too_big = f"request body of {{}} bytes is over the limit of {limit} bytes"
        if declared and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, too_big.format(declared), code="request_too_large")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise ApiError(413, too_big.format(f"more than {limit}"), code="request_too_large")
        return protocol.parse_json(bytes(data))

    async def record(cid: str, question: str, answer: str) -> None:
        try:
            await run_in_threadpool(state.store.record_completion, cid, state.model_name, question, answer,
                                    state.replica)
        except Exception:  # noqa: BLE001 - the answer still goes out; only feedback on it will be refused
            log.exception("could not record completion %s in the feedback store %s", cid, state.store.location)

    @app.get("/health")
    async def health() -> dict:
        doc = {"status": "ok", "model": state.model_name, "backend": state.backend.kind, "replica": state.replica,
               "queue": state.queue.stats()}
        if state.question_log is not None:
            doc["question_log"] = {"backlog": state.question_log.backlog, "dropped": state.question_log.dropped}
        return doc

    auth = [Depends(require_token)]

    @app.get("/v1/models", dependencies=auth)
    async def models() -> dict:
        return {"object": "list", "data": [protocol.model_doc(state.model_name, state.created)]}

    @app.get("/v1/models/{name:path}", dependencies=auth)
    async def model(name: str) -> dict:
        if name == "":  # /v1/models/
            return await models()
        if name != state.model_name:
            raise ApiError(404, f"the model {name!r} does not exist; this server serves {state.model_name!r}",
                           code="model_not_found", param="model")
        return protocol.model_doc(state.model_name, state.created)

    @app.post("/v1/feedback", dependencies=auth)
    async def post_feedback(request: Request) -> dict:
        cid, rating, correction, scale = protocol.parse_feedback(await read_json(request))
        try:
            row = await run_in_threadpool(state.store.add_feedback, cid, rating, correction, scale)
        except UnknownCompletionError as e:
            raise ApiError(404, str(e), code="completion_not_found", param="completion_id") from None
        except FeedbackError as e:
            raise ApiError(400, str(e)) from None
        log.info("feedback %s on %s: rating %s (%s)%s", row["id"], cid, rating, scale,
                 ", with a correction" if row["correction"] is not None else "")
        return {"id": row["id"], "object": "feedback", "completion_id": cid, "negative": bool(row["negative"]),
                "has_correction": row["correction"] is not None}

    @app.post("/v1/chat/completions", dependencies=auth)
    async def chat(request: Request):
        req = protocol.parse_chat_request(await read_json(request), state.cfg, state.model_name)
        if state.question_log is not None:
            state.question_log.submit(req.question)
        grounded = await state.batcher.ground(req.messages) if state.batcher else None
        messages = grounded.messages if grounded is not None else req.messages
        sources = grounded.sources() if grounded is not None else None
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if grounded is not None and grounded.refusal is not None:  # nothing relevant: the refusal, no generation
            gen = Generation(grounded.refusal, 0, 0, "stop")
            await record(cid, req.question, gen.text)
            if req.stream:
                return _event_stream(state, req, cid, created, sources, _fixed(gen), None, None)
            return protocol.completion_doc(cid, created, state.model_name, gen, sources)

        suppress = state.backend.refusal_start if grounded is not None and grounded.in_scope else None
        sampling = protocol.Sampling(req.max_tokens, req.temperature, req.top_p, req.seed, suppress,
                                     grounded.excerpts() if grounded is not None else None)
        slot = await state.queue.acquire()  # 429 / 503 when busy
        try:
            t0 = time.perf_counter()
            if req.stream:
                pieces = state.backend.stream(messages, sampling)
                try:
                    first = await anext(pieces)  # errors before the first token (context too long) get a JSON 4xx
                except BaseException:
                    await pieces.aclose()
                    raise
                response = _event_stream(state, req, cid, created, sources, _chain(first, pieces), slot, record)
                slot = None  # the stream releases it
                return response
            gen = await state.backend.generate(messages, sampling)
        finally:
            if slot is not None:
                slot.release()
        log.info("completion %s: %d prompt + %d new tokens in %.0f ms", cid, gen.prompt_tokens,
                 gen.completion_tokens, 1000 * (time.perf_counter() - t0))
        await record(cid, req.question, gen.text)
        return protocol.completion_doc(cid, created, state.model_name, gen, sources)

    return app


async def _fixed(gen: Generation) -> AsyncIterator[str | Generation]:
    yield gen.text
    yield gen


async def _chain(first, rest: AsyncIterator) -> AsyncIterator:
    try:
        yield first
        async for x in rest:
            yield x
    finally:
        await rest.aclose()


def _event_stream(state: ServingState, req, cid: str, created: int, sources: list[dict] | None,
                  pieces: AsyncIterator[str | Generation], slot,
                  record: Callable[[str, str, str], Awaitable[None]] | None) -> EventStream:
    """The SSE response over `pieces`; `slot` (if any) is released once the model is idle; `record` (None when the
    completion is recorded already) stores the answer before the final chunks."""
    model = state.model_name
    t0 = time.perf_counter()

    async def events() -> AsyncIterator[bytes]:
        extra = {"sources": sources} if sources is not None else {}
        yield protocol.sse(protocol.chunk_doc(cid, created, model, {"role": "assistant", "content": ""}, **extra))
        gen = None
        try:
            async for piece in pieces:
                if isinstance(piece, Generation):
                    gen = piece
                    break
                yield protocol.sse(protocol.chunk_doc(cid, created, model, {"content": piece}))
        except Exception as e:  # noqa: BLE001 - headers are sent: report in-band, keep the server up
            log.exception("generation failed in stream %s", cid)
            err = e if isinstance(e, ApiError) else ApiError(500, f"generation failed: {type(e).__name__}",
                                                             "server_error")
            await pieces.aclose()
            if slot is not None:
                slot.release()
            yield protocol.sse(err.body())
            yield protocol.sse("[DONE]")
            return
        # (a client that goes away mid-stream never gets here: cleanup() stops the model, then frees the slot)
        await pieces.aclose()
        if slot is not None:
            slot.release()  # the model is idle: the next request may start while we write the tail
        if gen is None:
            return
        if record is not None:
            log.info("completion %s (stream): %d prompt + %d new tokens in %.0f ms", cid, gen.prompt_tokens,
                     gen.completion_tokens, 1000 * (time.perf_counter() - t0))
            await record(cid, req.question, gen.text)  # before [DONE]: feedback may follow at once
        yield protocol.sse(protocol.chunk_doc(cid, created, model, {}, gen.finish_reason))
        if req.include_usage:
            yield protocol.sse(protocol.chunk_doc(cid, created, model, None, usage=protocol.usage(gen)))
        yield protocol.sse("[DONE]")

    stream = events()

    async def cleanup() -> None:
        await stream.aclose()
        await pieces.aclose()
        if slot is not None:
            slot.release()

    return EventStream(stream, cleanup)

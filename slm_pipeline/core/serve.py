"""OpenAI-compatible HTTP API over a model folder (transformers) or a GGUF file (llama.cpp), on the standard
library's ThreadingHTTPServer.

Endpoints
---------
GET  /health                 liveness, no token needed: {"status": "ok", "model": <name>}
GET  /v1/models              the one served model, OpenAI list shape
POST /v1/chat/completions    OpenAI chat completions; `stream: true` answers with server-sent events
                             (`data: {chunk}` lines, then `data: [DONE]`). The response `id` is the completion
                             id recorded in the feedback store.
POST /v1/feedback            {"completion_id": ..., "rating": -1 | 1, "correction": "..."?}
                             (or "scale": "stars" with rating 1..5); see core/feedback.py.

Request fields used: model (must be the served name if given), messages (system/developer/user/assistant; content
as a string or a list of {"type": "text", "text": ...} parts), max_tokens / max_completion_tokens, temperature
(0 = greedy), top_p, seed, n (only 1), stream, stream_options.include_usage. Other fields are ignored.

Retrieval (retrieval.enabled, the default): each question is searched in the retrieval index and the hits go
into the system message, the template the model was fine-tuned on (core/grounding.py); a question whose best
hit scores below retrieval.min_score gets the policy refusal without generation. Responses carry an extra
top-level `sources` field (chunk id, title, heading, score); streams carry it in the first chunk.

Safety: binds 127.0.0.1 by default; optional bearer token (every endpoint but /health); bodies over
`serve.max_body_bytes` get 413; `max_tokens` over `serve.max_tokens_limit` gets 400; malformed requests get
4xx JSON errors `{"error": {"message", "type", "code", "param"}}`; unexpected failures get a 500 JSON error
and the server keeps running. One generation runs at a time (a lock); a request that waits longer than
`serve.queue_timeout_s` gets 503. Each user question is anonymized with the pipeline's Presidio setup in a
background thread and logged to the feedback store for the most-common-questions summary.
"""

from __future__ import annotations

import hmac
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from slm_pipeline.config import PipelineConfig, ServeConfig
from slm_pipeline.core.engines import (  # noqa: F401 - engines are re-exported for callers of serve
    ApiError,
    ChatEngine,
    Generation,
    LlamaCppChatEngine,
    _TrimmedStream,
    load_engine,
)
from slm_pipeline.core.feedback import FeedbackError, FeedbackStore, UnknownCompletionError, feedback_db_path
from slm_pipeline.core.grounding import Grounder, load_grounder
from slm_pipeline.core.promotion import promoted_model_path  # the pointer lives in one module

__all__ = [
    "ApiError",
    "ChatEngine",
    "ChatServer",
    "LlamaCppChatEngine",
    "QuestionLog",
    "build_server",
    "promoted_model_path",
]

log = logging.getLogger(__name__)

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
DRAIN_LIMIT = 8 * 2**20  # bodies we refuse are still read (up to this size) so the client sees our answer




# ------------------------------------------------------------------------------------------- question log


class QuestionLog:
    """Anonymizes questions in a background thread and stores them with FeedbackStore.log_question.

    The anonymizer (Presidio + spaCy, a few seconds to load) is built on first use in that thread, so serving
    never waits for it. If it cannot be built, questions are dropped (never stored raw) and a warning logged."""

    def __init__(self, store: FeedbackStore, make_anonymizer: Callable[[], object]):
        self.store = store
        self._make = make_anonymizer
        self._anonymizer = None
        self._failed = False
        self._queue: queue.Queue = queue.Queue(maxsize=10_000)
        self._thread = threading.Thread(target=self._run, name="slm-question-log", daemon=True)
        self._thread.start()

    def submit(self, question: str) -> None:
        try:
            self._queue.put_nowait(question)
        except queue.Full:
            log.warning("question log queue is full; dropping a question")

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while not self._queue.empty() and len(batch) < 64:
                batch.append(self._queue.get_nowait())
            try:
                texts = [q for q in batch if q is not None]
                if texts and not self._failed:
                    if self._anonymizer is None:
                        self._anonymizer = self._make()
                    for q in self._anonymizer.anonymize_texts(texts):
                        self.store.log_question(q)
            except Exception as e:  # noqa: BLE001 - monitoring must never break serving
                if self._anonymizer is None:
                    self._failed = True
                log.warning("question logging failed (%s: %s); questions are not logged", type(e).__name__, e)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if any(q is None for q in batch):
                return

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every submitted question is stored; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._queue.unfinished_tasks

    def close(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                return
            self._thread.join(timeout)


# ---------------------------------------------------------------------------------------------- HTTP layer


class ChatServer(ThreadingHTTPServer):
    """The API server. Construct, then `serve_forever()` (e.g. in a thread); `server_address` has the port."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, engine: ChatEngine | LlamaCppChatEngine, store: FeedbackStore, serve_cfg: ServeConfig | None = None, *,
                 host: str | None = None, port: int | None = None, token: str | None = None,
                 model_name: str | None = None, question_log: QuestionLog | None = None,
                 grounder: Grounder | None = None):
        self.cfg = serve_cfg or ServeConfig()
        self.grounder = grounder  # retrieval: context for each question, sources in each response
        self.engine = engine
        self.store = store
        self.token = token or None
        self.model_name = model_name or self.cfg.model_name
        self.question_log = question_log
        self.created = int(time.time())
        super().__init__((host or self.cfg.host, self.cfg.port if port is None else port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        """Stop serving (if serve_forever runs in another thread), close the socket, finish the question log."""
        self.shutdown()
        self.server_close()
        if self.question_log:
            self.question_log.close()


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds a client may take to send its request
    server_version = "slm-pipeline"

    # -- plumbing -----------------------------------------------------------------------------------------

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - BaseHTTPRequestHandler's signature
        log.info("%s %s", self.address_string(), format % args)

    def _send_json(self, status: int, doc: dict, extra_headers: dict | None = None) -> None:
        data = json.dumps(doc, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, err: ApiError) -> None:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        self._send_json(err.status, err.body(), headers)

    def _discard_body(self) -> None:
        """Answering without reading the body: read it if small (so the client gets our answer, not a reset)
        and close the connection afterwards."""
        self.close_connection = True
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if 0 < n <= DRAIN_LIMIT:
            try:
                while n > 0:
                    chunk = self.rfile.read(min(n, 1 << 16))
                    if not chunk:
                        break
                    n -= len(chunk)
            except OSError:
                pass

    def _dispatch(self, method: str) -> None:
        self._body_read = False
        try:
            path = urlsplit(self.path).path.rstrip("/") or "/"
            routes = {
                ("GET", "/health"): self._health,
                ("GET", "/v1/models"): self._models,
                ("POST", "/v1/chat/completions"): self._chat,
                ("POST", "/v1/feedback"): self._feedback,
            }
            handler = routes.get((method, path))
            if handler is None and method == "GET" and path.startswith("/v1/models/"):
                handler = self._model
            if handler is None:
                if any(p == path for _, p in routes):
                    raise ApiError(405, f"{method} is not allowed on {path}", code="method_not_allowed")
                raise ApiError(404, f"no such endpoint: {method} {path}", code="not_found")
            if path != "/health":
                self._check_token()
            if method == "POST":
                handler(self._read_json())
            else:
                if self.headers.get("Content-Length") not in (None, "0"):
                    self._discard_body()  # a body on GET is ignored; the connection closes after the answer
                handler(path)
        except ApiError as e:
            if not self._body_read:
                self._discard_body()
            self._error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - never let a request take the server down
            log.exception("unexpected error answering %s %s", method, self.path)
            self.close_connection = True
            try:
                self._error(ApiError(500, "internal server error; see the server log", "server_error"))
            except OSError:
                pass

    def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def _check_token(self) -> None:
        token = self.server.token
        if not token:
            return
        auth = self.headers.get("Authorization") or ""
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise ApiError(401, "missing or wrong bearer token (send 'Authorization: Bearer <token>')",
                           "authentication_error", code="invalid_api_key")

    def _read_json(self) -> dict:
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(411, "chunked request bodies are not supported; send Content-Length", code="length_required")
        raw_len = self.headers.get("Content-Length")
        if raw_len is None:
            raise ApiError(411, "a Content-Length header is required", code="length_required")
        try:
            n = int(raw_len)
            if n < 0:
                raise ValueError
        except ValueError:
            raise ApiError(400, f"bad Content-Length {raw_len!r}") from None
        limit = self.server.cfg.max_body_bytes
        if n > limit:
            raise ApiError(413, f"request body of {n} bytes is over the limit of {limit} bytes",
                           code="request_too_large")
        data = self.rfile.read(n)
        self._body_read = True
        if len(data) < n:
            self.close_connection = True
            raise ApiError(400, "request body ended early")
        try:
            doc = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ApiError(400, "request body is not UTF-8", code="invalid_json") from None
        except json.JSONDecodeError as e:
            raise ApiError(400, f"request body is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})",
                           code="invalid_json") from None
        if not isinstance(doc, dict):
            raise ApiError(400, f"request body must be a JSON object, got {type(doc).__name__}", code="invalid_json")
        return doc

    # -- endpoints ----------------------------------------------------------------------------------------

    def _model_doc(self) -> dict:
        return {"id": self.server.model_name, "object": "model", "created": self.server.created,
                "owned_by": "slm-pipeline"}

    def _health(self, _path: str) -> None:
        self._send_json(200, {"status": "ok", "model": self.server.model_name})

    def _models(self, _path: str) -> None:
        self._send_json(200, {"object": "list", "data": [self._model_doc()]})

    def _model(self, path: str) -> None:
        name = path.removeprefix("/v1/models/")
        if name != self.server.model_name:
            raise ApiError(404, f"the model {name!r} does not exist; this server serves {self.server.model_name!r}",
                           code="model_not_found", param="model")
        self._send_json(200, self._model_doc())

    def _feedback(self, body: dict) -> None:
        cid = body.get("completion_id")
        if not isinstance(cid, str) or not cid:
            raise ApiError(400, "'completion_id' (the id of a chat completion) is required", param="completion_id")
        if "rating" not in body:
            raise ApiError(400, "'rating' is required: -1 or 1 (or 1..5 with \"scale\": \"stars\")", param="rating")
        try:
            row = self.server.store.add_feedback(cid, body["rating"], body.get("correction"),
                                                 body.get("scale") or "thumbs")
        except UnknownCompletionError as e:
            raise ApiError(404, str(e), code="completion_not_found", param="completion_id") from None
        except FeedbackError as e:
            raise ApiError(400, str(e)) from None
        self._send_json(200, {"id": row["id"], "object": "feedback", "completion_id": cid,
                              "negative": bool(row["negative"]), "has_correction": row["correction"] is not None})

    def _parse_chat(self, body: dict) -> dict:
        cfg = self.server.cfg
        model = body.get("model")
        if model is not None and model != self.server.model_name:
            raise ApiError(404, f"the model {model!r} does not exist; this server serves {self.server.model_name!r} "
                                "(GET /v1/models)", code="model_not_found", param="model")
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise ApiError(400, "'messages' must be a non-empty list of {role, content}", param="messages")
        messages = []
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in ROLES:
                raise ApiError(400, f"messages[{i}] must be an object with role one of {sorted(ROLES)}",
                               param=f"messages[{i}]")
            content = m.get("content")
            if isinstance(content, list):
                if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                           for p in content):
                    raise ApiError(400, f"messages[{i}].content parts must be {{\"type\": \"text\", \"text\": ...}}",
                                   param=f"messages[{i}].content")
                content = "".join(p["text"] for p in content)
            if not isinstance(content, str):
                raise ApiError(400, f"messages[{i}].content must be a string", param=f"messages[{i}].content")
            messages.append({"role": ROLES[m["role"]], "content": content})
        users = [m["content"] for m in messages if m["role"] == "user"]
        if not users:
            raise ApiError(400, "'messages' needs at least one user message", param="messages")

        def number(key: str, lo: float, hi: float, default, integer: bool = False):
            v = body.get(key)
            if v is None:
                return default
            ok = isinstance(v, int) if integer else isinstance(v, (int, float))
            if isinstance(v, bool) or not ok or not lo <= v <= hi:
                kind = "an integer" if integer else "a number"
                raise ApiError(400, f"'{key}' must be {kind} from {lo} to {hi}, got {v!r}", param=key)
            return v

        key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        max_tokens = body.get(key)
        if max_tokens is None:
            max_tokens = min(cfg.default_max_tokens, cfg.max_tokens_limit)
        elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ApiError(400, f"'{key}' must be a positive integer, got {max_tokens!r}", param=key)
        elif max_tokens > cfg.max_tokens_limit:
            raise ApiError(400, f"'{key}' = {max_tokens} is over this server's limit of {cfg.max_tokens_limit}",
                           param=key)
        if body.get("n") not in (None, 1):
            raise ApiError(400, "only n = 1 is supported", param="n")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise ApiError(400, "'stream' must be true or false", param="stream")
        opts = body.get("stream_options") or {}
        if not isinstance(opts, dict):
            raise ApiError(400, "'stream_options' must be an object", param="stream_options")
        return {
            "messages": messages,
            "question": users[-1],
            "max_tokens": max_tokens,
            "temperature": float(number("temperature", 0.0, 2.0, cfg.default_temperature)),
            "top_p": number("top_p", 0.0, 1.0, None),
            "seed": number("seed", -(2**63), 2**63 - 1, None, integer=True),
            "stream": stream,
            "include_usage": bool(opts.get("include_usage")),
        }

    def _chat(self, body: dict) -> None:
        req = self._parse_chat(body)
        server = self.server
        if server.question_log is not None:
            server.question_log.submit(req["question"])
        engine = server.engine
        grounded = server.grounder.ground(req["messages"]) if server.grounder else None
        if grounded is not None:
            req = {**req, "messages": grounded.messages, "sources": grounded.sources()}
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if grounded is not None and grounded.refusal is not None:  # nothing relevant retrieved: no generation
            gen = Generation(grounded.refusal, 0, 0, "stop")
            if req["stream"]:
                gen = self._stream(cid, created, req, {}, fixed=gen)
            else:
                self._send_completion(cid, created, req, gen)
            if gen is not None:
                server.store.record_completion(cid, server.model_name, req["question"], gen.text)
            return
        if not engine.lock.acquire(timeout=server.cfg.queue_timeout_s):
            raise ApiError(503, "the model is busy; try again", "server_error", code="busy")
        try:
            args = dict(max_new_tokens=req["max_tokens"], temperature=req["temperature"], top_p=req["top_p"],
                        seed=req["seed"])
            if grounded is not None and grounded.in_scope:
                args["suppress_start"] = engine.refusal_start
            if req["stream"]:
                gen = self._stream(cid, created, req, args)
            else:
                gen = engine.generate(req["messages"], **args)
                self._send_completion(cid, created, req, gen)
        finally:
            engine.lock.release()
        if gen is not None:
            server.store.record_completion(cid, server.model_name, req["question"], gen.text)

    def _send_completion(self, cid: str, created: int, req: dict, gen: Generation) -> None:
        doc = {"id": cid, "object": "chat.completion", "created": created, "model": self.server.model_name,
               "choices": [{"index": 0, "message": {"role": "assistant", "content": gen.text},
                            "finish_reason": gen.finish_reason, "logprobs": None}],
               "usage": _usage(gen)}
        if "sources" in req:  # an extra field: the chunks the answer was grounded in (OpenAI clients ignore it)
            doc["sources"] = req["sources"]
        self._send_json(200, doc)

    def _stream(self, cid: str, created: int, req: dict, args: dict,
                fixed: Generation | None = None) -> Generation | None:
        """Send the SSE stream (of `fixed` text, or generated); returns the Generation, or None if the client went
        away."""
        engine = self.server.engine
        cancel = threading.Event()
        pieces = iter([fixed.text, fixed]) if fixed else engine.stream(req["messages"], cancel=cancel, **args)
        first = next(pieces)  # errors before the first token (e.g. context too long) still get a JSON 4xx
        sources = {"sources": req["sources"]} if "sources" in req else {}

        def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
            doc = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": self.server.model_name,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
            return b"data: " + json.dumps(doc, ensure_ascii=False).encode() + b"\n\n"

        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        gen = None
        try:
            self.wfile.write(chunk({"role": "assistant", "content": ""}, **sources))
            for piece in _chain(first, pieces):
                if isinstance(piece, Generation):
                    gen = piece
                    break
                self.wfile.write(chunk({"content": piece}))
                self.wfile.flush()
            if gen is not None:
                self.wfile.write(chunk({}, gen.finish_reason))
                if req["include_usage"]:
                    doc = {"id": cid, "object": "chat.completion.chunk", "created": created,
                           "model": self.server.model_name, "choices": [], "usage": _usage(gen)}
                    self.wfile.write(b"data: " + json.dumps(doc).encode() + b"\n\n")
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            log.info("client closed the stream of %s early", cid)
            return None
        except Exception as e:  # noqa: BLE001 - headers are sent: report in-band, keep the server up
            log.exception("generation failed in stream %s", cid)
            try:
                err = ApiError(500, f"generation failed: {type(e).__name__}", "server_error")
                self.wfile.write(b"data: " + json.dumps(err.body()).encode() + b"\n\ndata: [DONE]\n\n")
            except OSError:
                pass
            return None
        finally:
            cancel.set()
            if hasattr(pieces, "close"):
                pieces.close()  # joins the generation thread before the lock is released
        return gen


def _chain(first, rest):
    yield first
    yield from rest


def _usage(gen: Generation) -> dict:
    return {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
            "total_tokens": gen.prompt_tokens + gen.completion_tokens}


def build_server(cfg: PipelineConfig, model_path: str | Path | None = None, *, host: str | None = None,
                 port: int | None = None, token: str | None = None, log_questions: bool | None = None,
                 runtime: str | None = None, index_dir: str | Path | None = None) -> ChatServer:
    """Everything `slm-pipeline serve` needs: model (promoted by default), policy system prompt, feedback store,
    question log with the pipeline's anonymizer. Binds the socket; call serve_forever() on the result."""
    from .policy import load_policy

    model = Path(model_path) if model_path else promoted_model_path(cfg)
    policy_file = cfg.path(cfg.policy_file)
    system_prompt = load_policy(policy_file).system_prompt if policy_file.exists() else None
    store = FeedbackStore(feedback_db_path(cfg.path(cfg.artifacts_dir)), cfg.feedback.negative_max_stars)
    grounder = load_grounder(cfg, index_dir)
    engine = load_engine(model, system_prompt, runtime or cfg.serve.runtime)
    if grounder is not None:
        engine.refusal_start = engine.start_ids(grounder.refusal_text)
    qlog = None
    if cfg.feedback.log_questions if log_questions is None else log_questions:
        anonymize_cfg = cfg.anonymize

        def make_anonymizer():
            from .anonymize import Anonymizer

            return Anonymizer(anonymize_cfg)

        qlog = QuestionLog(store, make_anonymizer)
    return ChatServer(engine, store, cfg.serve, host=host, port=port, token=token, question_log=qlog,
                      grounder=grounder)

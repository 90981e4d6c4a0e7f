"""The OpenAI chat-completions wire format: request validation (4xx messages that name the field) and the
response / stream-chunk documents. Plain functions, no HTTP framework."""

from __future__ import annotations

import json
from dataclasses import dataclass

from slm_pipeline.config import ServeConfig
from slm_pipeline.core.engines import ApiError, Generation

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass
class ChatRequest:
    messages: list[dict]  # [{"role": system|user|assistant, "content": str}]
    question: str  # the last user message
    max_tokens: int
    temperature: float
    top_p: float | None
    seed: int | None
    stream: bool
    include_usage: bool


@dataclass
class Sampling:
    """What a backend needs besides the messages."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float | None = None
    seed: int | None = None
    suppress_start: list[int] | None = None  # token ids the answer may not start with (grounding)
    copy_from: str | None = None  # the retrieved excerpts, for copy-biased decoding (retrieval.copy_bias)


def parse_json(data: bytes) -> dict:
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


def parse_chat_request(body: dict, cfg: ServeConfig, model_name: str) -> ChatRequest:
    """Validate a /v1/chat/completions body. Fields used: model (must be the served name if given), messages
    (content as a string or a list of {"type": "text", "text"} parts), max_tokens / max_completion_tokens,
    temperature, top_p, seed, n (only 1), stream, stream_options.include_usage; others are ignored."""
    model = body.get("model")
    if model is not None and model != model_name:
        raise ApiError(404, f"the model {model!r} does not exist; this server serves {model_name!r} "
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
    return ChatRequest(
        messages=messages, question=users[-1], max_tokens=max_tokens,
        temperature=float(number("temperature", 0.0, 2.0, cfg.default_temperature)),
        top_p=number("top_p", 0.0, 1.0, None), seed=number("seed", -(2**63), 2**63 - 1, None, integer=True),
        stream=stream, include_usage=bool(opts.get("include_usage")),
    )


def parse_feedback(body: dict) -> tuple[str, object, object, str]:
    """(completion_id, rating, correction, scale) of a /v1/feedback body; values are checked by the store."""
    cid = body.get("completion_id")
    if not isinstance(cid, str) or not cid:
        raise ApiError(400, "'completion_id' (the id of a chat completion) is required", param="completion_id")
    if "rating" not in body:
        raise ApiError(400, "'rating' is required: -1 or 1 (or 1..5 with \"scale\": \"stars\")", param="rating")
    return cid, body["rating"], body.get("correction"), body.get("scale") or "thumbs"


def usage(gen: Generation) -> dict:
    return {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
            "total_tokens": gen.prompt_tokens + gen.completion_tokens}


def model_doc(name: str, created: int) -> dict:
    return {"id": name, "object": "model", "created": created, "owned_by": "slm-pipeline"}


def completion_doc(cid: str, created: int, model: str, gen: Generation, sources: list[dict] | None) -> dict:
    doc = {"id": cid, "object": "chat.completion", "created": created, "model": model,
           "choices": [{"index": 0, "message": {"role": "assistant", "content": gen.text},
                        "finish_reason": gen.finish_reason, "logprobs": None}],
           "usage": usage(gen)}
    if sources is not None:  # an extra field: the chunks the answer was grounded in (OpenAI clients ignore it)
        doc["sources"] = sources
    return doc


def chunk_doc(cid: str, created: int, model: str, delta: dict | None, finish: str | None = None, **extra) -> dict:
    """A chat.completion.chunk; delta None = the usage chunk (no choices)."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices,
            **extra}


def sse(doc: dict | str) -> bytes:
    """One server-sent event: `data: <json>` (or `data: [DONE]`) and a blank line."""
    data = doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False)
    return b"data: " + data.encode() + b"\n\n"

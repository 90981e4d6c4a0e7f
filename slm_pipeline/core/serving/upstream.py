"""`UpstreamBackend`: generation by an OpenAI-compatible engine over HTTP (vLLM, llama-server, Ollama's /v1).

`serve` keeps everything else (retrieval, auth, limits, feedback, question logging): the upstream only sees the
grounded messages (policy system prompt added when the client sent none), `max_tokens`, `temperature`, `top_p`
and `seed`. Not forwarded: the refusal-start suppression of grounding (it needs the engine's token ids, and
OpenAI's `logit_bias` would ban the token at every position, not just the first), and copy-biased decoding
(retrieval.copy_bias: `logit_bias` takes the upstream tokenizer's ids, which serve does not know).

Errors: the upstream's 400/413/422 (e.g. context length) reach the client as 400 with the upstream's message;
unreachable -> 502, too slow -> 504, upstream busy (429/503) -> 503, anything else -> 502 naming the URL."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx

from slm_pipeline.core.engines import ApiError, Generation, _TrimmedStream

from .protocol import Sampling

log = logging.getLogger(__name__)
API_KEY_ENV = "SLM_UPSTREAM_API_KEY"


class UpstreamBackend:
    kind = "upstream"
    default_concurrency = 32  # the engine batches concurrent requests; serve.max_concurrent caps what we send
    refusal_start = None

    def __init__(self, base_url: str, model: str, system_prompt: str | None = None, api_key: str | None = None,
                 timeout_s: float = 300.0):
        self.base_url = base_url.rstrip("/")
        self.model, self.system_prompt, self.timeout_s = model, system_prompt, timeout_s
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: httpx.AsyncClient | None = None  # made on the server's event loop (first request)

    @property
    def engine(self) -> UpstreamBackend:
        return self

    def describe(self) -> str:
        return f"upstream {self.base_url} model {self.model!r}"

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # connect fails fast; read = the wait for the answer (or the next streamed token)
            self._client = httpx.AsyncClient(
                base_url=self.base_url, headers=self._headers,
                timeout=httpx.Timeout(self.timeout_s, connect=10.0),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64))
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def with_system_prompt(self, messages: list[dict]) -> list[dict]:
        if self.system_prompt and not any(m["role"] == "system" for m in messages):
            return [{"role": "system", "content": self.system_prompt}, *messages]
        return messages

    def _payload(self, messages: list[dict], p: Sampling, stream: bool) -> dict:
        body = {"model": self.model, "messages": self.with_system_prompt(messages), "max_tokens": p.max_tokens,
                "temperature": p.temperature, "stream": stream}
        if p.top_p is not None:
            body["top_p"] = p.top_p
        if p.seed is not None:
            body["seed"] = p.seed
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _transport_error(self, e: httpx.HTTPError) -> ApiError:
        if isinstance(e, httpx.TimeoutException):
            return ApiError(504, f"the upstream engine at {self.base_url} did not answer within {self.timeout_s:g} s "
                                 "(serve.upstream_timeout_s)", "server_error", code="upstream_timeout")
        return ApiError(502, f"the upstream engine at {self.base_url} is unreachable ({type(e).__name__}: {e}); "
                             "check serve.upstream_url and that the engine runs", "server_error",
                        code="upstream_unavailable")

    def _status_error(self, status: int, raw: bytes) -> ApiError:
        try:
            doc = json.loads(raw)
            err = doc.get("error", doc) if isinstance(doc, dict) else doc
            message = err.get("message") if isinstance(err, dict) else str(err)
        except ValueError:
            message = raw.decode("utf-8", "replace")
        message = (message or "").strip()[:500] or f"HTTP {status}"
        if status in (400, 413, 422):
            return ApiError(400, f"the upstream engine rejected the request: {message}", code="upstream_rejected")
        if status in (429, 503):
            return ApiError(503, f"the upstream engine is busy: {message}", "server_error", code="upstream_busy",
                            headers={"Retry-After": "1"})
        hint = {401: f" (set ${API_KEY_ENV})", 403: f" (check ${API_KEY_ENV})",
                404: f" (does it serve the model {self.model!r}? serve.upstream_model)"}.get(status, "")
        return ApiError(502, f"the upstream engine at {self.base_url} answered HTTP {status}{hint}: {message}",
                        "server_error", code="upstream_error")

    async def generate(self, messages: list[dict], p: Sampling) -> Generation:
        try:
            resp = await self.client.post("/chat/completions", json=self._payload(messages, p, stream=False))
        except httpx.HTTPError as e:
            raise self._transport_error(e) from None
        if resp.status_code != 200:
            raise self._status_error(resp.status_code, resp.content)
        try:
            doc = resp.json()
            choice = doc["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ApiError(502, f"the upstream engine at {self.base_url} sent no chat completion: "
                                f"{resp.text[:200]!r}", "server_error", code="upstream_error") from None
        u = doc.get("usage") or {}
        return Generation(text.strip(), int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0),
                          "length" if choice.get("finish_reason") == "length" else "stop")

    async def stream(self, messages: list[dict], p: Sampling) -> AsyncIterator[str | Generation]:
        """Pieces as the upstream streams them (trimmed like the in-process engines), then a Generation with the
        upstream's usage (counted chunks when it sends none). Closing this generator closes the upstream request,
        which makes vLLM / llama-server stop generating."""
        request = self.client.build_request("POST", "/chat/completions", json=self._payload(messages, p, True))
        try:
            resp = await self.client.send(request, stream=True)
        except httpx.HTTPError as e:
            raise self._transport_error(e) from None
        try:
            if resp.status_code != 200:
                raise self._status_error(resp.status_code, await resp.aread())
            text, pieces, finish, usage = _TrimmedStream(), 0, "stop", {}
            try:
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, ": keep-alive" comments, event: lines
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if chunk.get("error"):
                        raise ApiError(502, f"the upstream engine failed mid-stream: {chunk['error']}",
                                       "server_error", code="upstream_error")
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        if choice.get("finish_reason") == "length":
                            finish = "length"
                        if piece := (choice.get("delta") or {}).get("content"):
                            pieces += 1
                            if body := text.feed(piece):
                                yield body
            except httpx.HTTPError as e:
                raise self._transport_error(e) from None
            yield Generation(text.sent, int(usage.get("prompt_tokens") or 0),
                             int(usage.get("completion_tokens") or pieces), finish)
        finally:
            await resp.aclose()

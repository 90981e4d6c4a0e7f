"""A small synchronous client for OpenAI-compatible chat completions (Ollama's /v1, vLLM, llama-server, hosted APIs).

serving/upstream.py is the async client `serve` forwards user requests with (its errors are HTTP answers to a
client); the teacher is a batch job, so it blocks, retries with backoff, and stops the build with a message that
names the URL and the setting to fix. Never imports dagster.
"""

from __future__ import annotations

import threading
import time

import httpx

from ..pairs import TeacherStop

__all__ = ["ChatClient", "TeacherRejected", "TeacherResponseError", "TeacherUnavailable"]

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class TeacherUnavailable(TeacherStop):
    """The endpoint cannot be used at all (unreachable after retries, refused key, unknown model)."""


class TeacherResponseError(ValueError):
    """One answer could not be used (no JSON pairs in it); reported as a drop, the build goes on."""

    reason = "teacher_malformed"


class TeacherRejected(ValueError):
    """The endpoint refused one request (HTTP 400/413/422, e.g. the chunk is over its context length)."""

    reason = "teacher_rejected"


def _error_message(resp: httpx.Response) -> str:
    try:
        doc = resp.json()
        err = doc.get("error", doc) if isinstance(doc, dict) else doc
        message = err.get("message") if isinstance(err, dict) else str(err)
    except ValueError:
        message = resp.text
    return (message or "").strip()[:300] or f"HTTP {resp.status_code}"


class ChatClient:
    """POST {url}/chat/completions at temperature 0; `complete(messages)` returns the answer text.

    Connection errors, timeouts and HTTP 408/429/5xx are retried `max_retries` times (backoff 1, 2, 4 ... s, or
    the server's Retry-After up to 30 s); HTTP 400/413/422 fail this one request (TeacherRejected); other HTTP
    errors (401, 403, 404) and exhausted retries raise TeacherUnavailable, which stops the build.
    `requests` counts HTTP requests sent (retries included). Safe to share between threads."""

    def __init__(self, url: str, model: str, api_key: str | None = None, timeout_s: float = 120.0,
                 max_retries: int = 3, max_tokens: int = 1024, backoff_s: float = 1.0, fix_hint: str = ""):
        self.url, self.model, self.max_retries = url.rstrip("/"), model, max_retries
        self.max_tokens, self.backoff_s, self.timeout_s = max_tokens, backoff_s, timeout_s
        self.fix_hint = fix_hint  # e.g. "teacher.url in slm_pipeline.yaml": where the user changes the setting
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0))
        self._lock = threading.Lock()
        self.requests = 0

    def close(self) -> None:
        self._http.close()

    def complete(self, messages: list[dict]) -> str:
        body = {"model": self.model, "messages": messages, "temperature": 0, "max_tokens": self.max_tokens}
        problem, wait = "", 0.0
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(wait)
            with self._lock:
                self.requests += 1
            try:
                resp = self._http.post("/chat/completions", json=body)
            except httpx.TimeoutException:
                problem, wait = f"no answer within {self.timeout_s:g} s (teacher.timeout_s)", self._backoff(attempt)
                continue
            except httpx.TransportError as e:
                problem, wait = f"{type(e).__name__}: {e}", self._backoff(attempt)
                continue
            if resp.status_code == 200:
                return self._text(resp)
            if resp.status_code in (400, 413, 422):
                raise TeacherRejected(f"HTTP {resp.status_code}: {_error_message(resp)}")
            if resp.status_code not in RETRY_STATUS:
                raise self._refused(resp)
            problem, wait = f"HTTP {resp.status_code}: {_error_message(resp)}", self._backoff(attempt, resp)
        raise TeacherUnavailable(
            f"the teacher endpoint {self.url} could not be reached after {self.max_retries + 1} attempt(s) "
            f"({problem}). Start the server (e.g. `ollama serve`, `vllm serve <model>`), check {self.fix_hint or 'teacher.url'}"
            ", or set teacher.enabled: false to build pairs without a teacher.")

    def _backoff(self, attempt: int, resp: httpx.Response | None = None) -> float:
        retry_after = resp.headers.get("Retry-After", "") if resp is not None else ""
        if retry_after.replace(".", "", 1).isdigit():
            return min(float(retry_after), 30.0)
        return self.backoff_s * 2 ** attempt

    def _refused(self, resp: httpx.Response) -> TeacherUnavailable:
        hint = {401: "the endpoint wants an API key: put it in an environment variable and name that variable "
                     "in teacher.api_key_env",
                403: "the API key was refused: check the variable teacher.api_key_env names",
                404: f"is {self.url} the base URL up to /v1, and does it serve the model {self.model!r} "
                     "(teacher.model; `ollama list`, vLLM --served-model-name)?"}.get(
            resp.status_code, "check teacher.url and teacher.model")
        return TeacherUnavailable(f"the teacher endpoint {self.url} answered HTTP {resp.status_code} "
                                  f"({_error_message(resp)}): {hint}")

    def _text(self, resp: httpx.Response) -> str:
        try:
            return resp.json()["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise TeacherResponseError(f"not a chat completion from {self.url}: {resp.text[:200]!r}") from e


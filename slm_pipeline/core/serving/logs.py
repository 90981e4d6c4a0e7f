"""Request ids in logs: each HTTP request gets an id (the client's X-Request-ID if it sent a sane one), returned
in the X-Request-ID response header and added to every log record written while the request is handled (worker
threads included: they run in a copy of the request's context)."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("slm_request_id", default="-")
LOG_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def new_request_id(given: str | None) -> str:
    return given if given and _SANE.fullmatch(given) else uuid.uuid4().hex[:16]


class RequestIdFilter(logging.Filter):
    """Sets `record.request_id` (for LOG_FORMAT); attach to handlers."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr with the request id on every line (what `slm-pipeline serve` uses)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream call would double the log

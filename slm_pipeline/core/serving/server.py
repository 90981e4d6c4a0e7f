"""`ChatServer`: one replica = the FastAPI app on uvicorn, on a socket bound when it is constructed (so port 0
gets a free port and a taken port fails at once). `serve_forever()` runs it in the foreground (Ctrl+C / SIGTERM
stop it gracefully); `start()` runs it in a background thread (tests, benchmarks)."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time

import uvicorn

from slm_pipeline.config import ServeConfig
from slm_pipeline.core.feedback import FeedbackStore
from slm_pipeline.core.grounding import Grounder

from .admission import GenerationQueue
from .app import ServingState, create_app
from .backends import LocalBackend
from .questions import QuestionLog

log = logging.getLogger(__name__)


def bind_socket(host: str, port: int) -> socket.socket:
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port / serve.port") from None
    sock.set_inheritable(True)
    return sock


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        """Ctrl+C / SIGTERM start uvicorn's graceful shutdown, as in uvicorn, but are not re-raised afterwards:
        that would kill the process before the question log is flushed and the store closed."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


class ChatServer:
    """The API server of one replica. `backend` is a LocalBackend / UpstreamBackend, or an in-process engine
    (ChatEngine, LlamaCppChatEngine), which gets wrapped in a LocalBackend."""

    def __init__(self, backend, store: FeedbackStore, serve_cfg: ServeConfig | None = None, *,
                 host: str | None = None, port: int | None = None, token: str | None = None,
                 model_name: str | None = None, question_log: QuestionLog | None = None,
                 grounder: Grounder | None = None):
        self.cfg = cfg = serve_cfg or ServeConfig()
        self.backend = backend if hasattr(backend, "kind") else LocalBackend(backend)
        self.store, self.question_log, self.grounder = store, question_log, grounder
        self.token = token or None
        self.model_name = model_name or cfg.model_name
        self.sock = bind_socket(host or cfg.host, cfg.port if port is None else port)
        self.server_address = self.sock.getsockname()[:2]
        queue = GenerationQueue(cfg.max_concurrent or self.backend.default_concurrency, cfg.max_queue,
                                cfg.queue_timeout_s)
        self.state = ServingState(self.backend, store, cfg, queue, self.model_name,
                                  replica=f"{socket.gethostname()}:{self.server_address[1]}", token=self.token,
                                  question_log=question_log, grounder=grounder)
        self.app = create_app(self.state)
        # log_config=None: keep the process's logging (request ids); our middleware logs each request instead
        # of uvicorn's access log. Graceful shutdown gives running streams a few seconds to finish.
        self._uvicorn = _Uvicorn(uvicorn.Config(
            self.app, log_config=None, access_log=False, timeout_keep_alive=30, timeout_graceful_shutdown=10,
            server_header=False))
        self._thread: threading.Thread | None = None

    @property
    def engine(self):
        """The in-process engine (or the UpstreamBackend)."""
        return self.backend.engine

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def serve_forever(self) -> None:
        """Serve in this thread until Ctrl+C / SIGTERM (uvicorn's signal handling), then clean up."""
        try:
            self._uvicorn.run(sockets=[self.sock])
        finally:
            self._close_resources()

    def start(self, timeout: float = 60.0) -> ChatServer:
        """Serve in a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [self.sock]},
                                        name=f"slm-serve-{self.server_address[1]}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._uvicorn.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._uvicorn.started:
            raise RuntimeError(f"the server on {self.url} did not start (see the log)")
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Stop serving (graceful: running requests finish), then close the store and the question log."""
        self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._close_resources()

    def _close_resources(self) -> None:
        self.sock.close()
        if self.question_log is not None:
            self.question_log.close()
        self.store.close()

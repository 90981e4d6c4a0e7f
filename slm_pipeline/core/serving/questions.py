"""`QuestionLog`: each served question, anonymized off the request path and stored for the
most-common-questions summary (asset serving_questions)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from slm_pipeline.core.feedback import FeedbackStore

log = logging.getLogger(__name__)


class QuestionLog:
    """Anonymizes questions in a background thread and stores them with FeedbackStore.log_questions.

    The anonymizer (Presidio + spaCy, a few seconds to load) is built on first use in that thread, so serving
    never waits for it. If it cannot be built, questions are dropped (never stored raw) and a warning logged.
    Under load questions are anonymized in batches of up to 64 (one nlp.pipe call, one transaction); when the
    backlog passes 10,000 new questions are dropped with a warning rather than growing memory."""

    def __init__(self, store: FeedbackStore, make_anonymizer: Callable[[], object]):
        self.store = store
        self._make = make_anonymizer
        self._anonymizer = None
        self._failed = False
        self._queue: queue.Queue = queue.Queue(maxsize=10_000)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="slm-question-log", daemon=True)
        self._thread.start()

    def submit(self, question: str) -> None:
        try:
            self._queue.put_nowait(question)
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("question log backlog is full; dropped %d questions so far", self.dropped)

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

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
                    self.store.log_questions(list(self._anonymizer.anonymize_texts(texts)))
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

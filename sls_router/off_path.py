"""Learning work done off the request path: on threads of its own, with a bounded backlog.

Second opinions and a judge's gradings are asked after the answer went out. They run
here, not on the pool that serves requests, so that waiting on their (bounded) model
calls never takes a worker from a request. The backlog is bounded: this is sampled
evidence, so under load some is dropped rather than queued without end. `flush()` waits
for what is queued, e.g. before a benchmark scores the next request.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

LEARNING_THREADS = 4
MAX_QUEUED_LEARNING = 256


class OffPathWork:
    """A small thread pool for learning work, its pending futures, and their bound."""

    def __init__(
        self, threads: int = LEARNING_THREADS, max_queued: int = MAX_QUEUED_LEARNING
    ) -> None:
        self.max_queued = max_queued
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="sls-router-learn"
        )
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()

    def submit(self, work: Callable[..., Any], *args: Any) -> bool:
        """Queue `work(*args)`; False (and nothing queued) when the backlog is full."""
        with self._lock:
            if len(self._pending) >= self.max_queued:
                logger.debug("learning backlog full: skipping %s", getattr(work, "__name__", work))
                return False
            future = self._executor.submit(work, *args)
            self._pending.add(future)
        future.add_done_callback(self._done)
        return True

    def _done(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            logger.error("learning off the request path failed", exc_info=future.exception())

    def flush(self) -> None:
        """Wait until nothing is queued or running (work queued meanwhile included)."""
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                return
            concurrent.futures.wait(pending)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

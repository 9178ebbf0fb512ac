"""Concurrent small embedding calls coalesced into one model call.

A router serving several requests at once embeds each one alone, and on CPU one model
call on 8 short texts costs far less than 8 calls on one (framework overhead, thread
contention). Here a call that finds a free slot runs at once, alone: a lone request
never waits, and there is no timer. Only calls that arrive while every slot is busy
queue up, and the next slot to free up takes them all in one batch (group commit).

No thread of its own: a batch runs on the thread of one of its callers, so there is
nothing to stop or join on close, and a waiting caller is always served by a thread
that is already running the model. An error in a batch is raised in every caller of
that batch.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import numpy as np

from sls_router.errors import ConfigurationError, StateError

__all__ = ["EmbeddingBatcher"]


class _Call:
    """One caller's texts, and what it gets back: vectors, an error, or the lead."""

    __slots__ = ("texts", "done", "lead", "vectors", "error")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.done = threading.Event()
        self.lead = False  # set when a finishing batch hands its slot to this call
        self.vectors: np.ndarray | None = None
        self.error: BaseException | None = None


class EmbeddingBatcher:
    """Run ``encode`` on small lists of texts, batching those that arrive together.

    ``slots`` is how many batches may run at once (one per core suits a model on one
    thread per call; one suits a model that already uses every core). Calls with more
    than ``max_batch`` texts are batches already and run directly; a batch holds at
    most ``max_batch`` texts.
    """

    def __init__(
        self, encode: Callable[[list[str]], np.ndarray], max_batch: int = 64, slots: int = 1
    ) -> None:
        for label, value in (("max_batch", max_batch), ("slots", slots)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{label} must be a positive int, got {value!r}")
        self._encode = encode
        self.max_batch = max_batch
        self.slots = slots
        self._lock = threading.Lock()
        self._queue: deque[_Call] = deque()
        self._running = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        """The vectors of ``texts``, as ``encode`` gives them (possibly in a batch with others)."""
        if len(texts) > self.max_batch:
            return self._encode(texts)
        call = _Call(texts)
        with self._lock:
            lead = self._running < self.slots and not self._queue
            if lead:
                self._running += 1
            else:
                self._queue.append(call)
        if not lead:
            try:
                call.done.wait()
            except BaseException:  # interrupted while waiting: never keep a slot or a place
                self._abandon(call)
                raise
            if not call.lead:  # served in another caller's batch
                return _result(call)
        self._run_batch(call)
        return _result(call)

    def _run_batch(self, first: _Call) -> None:
        """Embed ``first`` and the queued calls that fit, then pass the slot on."""
        with self._lock:
            batch, size = [first], len(first.texts)
            while self._queue and size + len(self._queue[0].texts) <= self.max_batch:
                size += len(self._queue[0].texts)
                batch.append(self._queue.popleft())
        try:
            vectors = self._encode([text for call in batch for text in call.texts])
            start = 0
            for call in batch:
                call.vectors = vectors[start : start + len(call.texts)]
                start += len(call.texts)
        except Exception as exc:
            for call in batch:
                call.error = exc
        except BaseException as exc:  # KeyboardInterrupt and the like: the leader's own
            first.error = exc
            for call in batch[1:]:
                call.error = StateError(f"the embedding batch was interrupted ({exc!r}); retry")
            raise
        finally:
            for call in batch[1:]:
                call.done.set()
            self._pass_slot()

    def _pass_slot(self) -> None:
        """Give this slot to the oldest waiting call (it runs the next batch), or free it."""
        with self._lock:
            if not self._queue:
                self._running -= 1
                return
            nxt = self._queue.popleft()
            nxt.lead = True
        nxt.done.set()

    def _abandon(self, call: _Call) -> None:
        """Drop a call whose caller stopped waiting, passing on the slot if it was handed one."""
        with self._lock:
            if call in self._queue:
                self._queue.remove(call)
                return
            handed_the_slot = call.lead  # else it is in a running batch, which ignores it
        if handed_the_slot:
            self._pass_slot()


def _result(call: _Call) -> np.ndarray:
    if call.error is not None:
        raise call.error
    assert call.vectors is not None  # set before done, when there is no error
    return call.vectors

"""A user asking again: evidence, free of charge, that the last answer did not do.

In a chat, a user who sends the same question again soon after an answer (a
"regenerate" button re-sends it verbatim; a rephrasing reads almost the same) was not
served well. `ReaskDetector` remembers, per conversation thread, the last request and
when it came; a new request in that thread is a re-ask of it when

* it is a new user turn (it ends with the user's message, not with a tool's result, so
  an agent's steps on one question are not re-asks),
* it came within `window_s` of the previous one,
* its embedding is at least `min_cosine` from the previous one's (a regenerated
  request is at 1.0; a follow-up on the same topic asks something else and sits lower),
* and the contrast check, when given, finds nothing that makes them differ ("turn on"
  then "turn off" is a new question, however close their vectors).

The router then sends feedback of source "reask" against the previous answer, weighed
like every label-free source by how often it proved right (trust.py): users also ask
again for more detail, or by mistake.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from .types import Request

REASK_MIN_COSINE = 0.85
REASK_WINDOW_S = 300.0


@dataclass(frozen=True)
class _Asked:
    request_id: str
    text: str
    vector: np.ndarray
    at: float


class ReaskDetector:
    """The last request of each thread, and whether a new one asks it again."""

    def __init__(
        self,
        *,
        window_s: float = REASK_WINDOW_S,
        min_cosine: float = REASK_MIN_COSINE,
        max_threads: int = 100_000,
        contrast: Any = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.min_cosine = min_cosine
        self.max_threads = max_threads
        self.contrast = contrast  # a ContrastCheck (or None): opposites are new questions
        self._clock = clock
        self._last: OrderedDict[tuple[str, str], _Asked] = OrderedDict()
        self._lock = threading.Lock()

    def observe(self, request: Request, vector: np.ndarray) -> str | None:
        """Remember `request` as its thread's last one; return the id of the request it
        asks again, if it does (None without a thread, or when it is no re-ask)."""
        if request.thread is None:
            return None
        key, now = (request.namespace, request.thread), self._clock()
        text = request.embed_text
        with self._lock:
            previous = self._last.pop(key, None)
            self._last[key] = _Asked(request.id, text, vector, now)
            # oldest first: what is past the window can never count again, so memory
            # holds only the threads active within it (and never more than max_threads)
            while len(self._last) > self.max_threads or (
                now - next(iter(self._last.values())).at > self.window_s
            ):
                self._last.popitem(last=False)
        if previous is None or previous.request_id == request.id or not _new_user_turn(request):
            return None
        if now - previous.at > self.window_s:
            return None
        if float(np.dot(previous.vector, vector)) < self.min_cosine:
            return None
        if self.contrast is not None and self.contrast.compare(text, previous.text) is not None:
            return None
        return previous.request_id


def _new_user_turn(request: Request) -> bool:
    """Does the request end with the user's own message (not a tool result)?"""
    if not request.messages:
        return True  # a plain prompt is the user's
    return bool(request.messages[-1]["role"] == "user")

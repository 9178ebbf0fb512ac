"""When the cache acts on a contrast: learned per scope and kind from what refused
candidates would have given.

A contrast (contrast.py) says two questions read differently; whether that changes the
answer depends on the workload. "Turn on" / "turn off" always does; log lines that
differ only in their numbers share one template. So every scope starts by refusing
every kind of contrast, and stops refusing a kind once the evidence says its candidates
would have been wrong at most at the cache's target rate: the posterior mean of
P(wrong | this kind of contrast, this scope), from a prior of one wrong candidate, must
fall to `max_wrong_rate` (with the default 2%, 49 refused candidates that would have
been right and none wrong). A candidate that would have given the very answer the
fresh call gave was refused for nothing (serving it changes nothing but the cost); one
whose answer differed from a right answer was rightly refused.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

_PRIOR_WRONG = 1.0
_SCOPES_KEPT = 100_000


class RefusalTrust:
    """Counts per (scope, kind) of refused candidates found wrong and found right."""

    def __init__(self, max_wrong_rate: float) -> None:
        self.max_wrong_rate = max_wrong_rate
        self._counts: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def refuses(self, scope: str, kind: str) -> bool:
        """Whether a contrast of `kind` keeps a candidate of `scope` from being served."""
        with self._lock:
            wrong, right = self._counts.get((scope, kind), (0.0, 0.0))
        return (wrong + _PRIOR_WRONG) / (wrong + right + _PRIOR_WRONG) > self.max_wrong_rate

    def learn(self, scope: str, kind: str, candidate_right: bool) -> None:
        with self._lock:
            counts = self._counts.setdefault((scope, kind), [0.0, 0.0])
            counts[1 if candidate_right else 0] += 1.0
            self._counts.move_to_end((scope, kind))
            while len(self._counts) > _SCOPES_KEPT:
                self._counts.popitem(last=False)

    def to_state(self) -> list[list[Any]]:
        with self._lock:
            return [[s, k, w, r] for (s, k), (w, r) in self._counts.items()]

    @classmethod
    def from_state(cls, max_wrong_rate: float, state: list[list[Any]]) -> RefusalTrust:
        trust = cls(max_wrong_rate)
        for scope, kind, wrong, right in state:
            trust._counts[(str(scope), str(kind))] = [float(wrong), float(right)]
        return trust

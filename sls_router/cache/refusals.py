"""When the cache acts on a contrast: learned per scope and kind from what refused
candidates would have given, against what the fresh answers gave.

A contrast (contrast.py) says two questions read differently; whether that changes the
answer depends on the workload. "Turn on" / "turn off" always does; log lines that
differ only in their numbers share one template. A refusal is worth its model call only
when the refused candidate is likelier to be wrong than the fresh answer that replaces
it. So each (scope, kind) keeps two estimates:

* P(candidate wrong): from a prior of one wrong candidate, so every scope starts by
  refusing every kind. A candidate that would have given the very answer the fresh call
  gave was refused for nothing; one whose answer differed from a right answer was
  rightly refused.
* P(fresh answer wrong): the verdicts on the answers served instead, from a prior of
  one pseudo-verdict at the cache's `max_wrong_rate`.

The scope refuses the kind while the first posterior mean exceeds the second by more
than `max_wrong_rate` (the wrong rate the cache may add). Where fresh answers are always
right that takes 49 refusals for nothing at the default 2%; where they are often wrong
(log parsing: 15-30%), a handful.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

_PRIOR_WRONG_CANDIDATE = 1.0
_SCOPES_KEPT = 100_000
# the four counts of a (scope, kind)
_CANDIDATE_WRONG, _CANDIDATE_RIGHT, _FRESH_WRONG, _FRESH_RIGHT = range(4)


class RefusalTrust:
    """Counts per (scope, kind): refused candidates found wrong and right, and the
    verdicts on the fresh answers served in their place."""

    def __init__(self, max_wrong_rate: float) -> None:
        self.max_wrong_rate = max_wrong_rate
        self._counts: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def refuses(self, scope: str, kind: str) -> bool:
        """Whether a contrast of `kind` keeps a candidate of `scope` from being served."""
        with self._lock:
            cw, cr, fw, fr = self._counts.get((scope, kind), (0.0, 0.0, 0.0, 0.0))
        candidate_wrong = (cw + _PRIOR_WRONG_CANDIDATE) / (cw + cr + _PRIOR_WRONG_CANDIDATE)
        fresh_wrong = (fw + self.max_wrong_rate) / (fw + fr + 1.0)
        return candidate_wrong > fresh_wrong + self.max_wrong_rate

    def learn(self, scope: str, kind: str, candidate_right: bool) -> None:
        self._add(scope, kind, _CANDIDATE_RIGHT if candidate_right else _CANDIDATE_WRONG)

    def learn_fresh(self, scope: str, kind: str, fresh_right: bool) -> None:
        self._add(scope, kind, _FRESH_RIGHT if fresh_right else _FRESH_WRONG)

    def _add(self, scope: str, kind: str, which: int) -> None:
        with self._lock:
            counts = self._counts.setdefault((scope, kind), [0.0, 0.0, 0.0, 0.0])
            counts[which] += 1.0
            self._counts.move_to_end((scope, kind))
            while len(self._counts) > _SCOPES_KEPT:
                self._counts.popitem(last=False)

    def to_state(self) -> list[list[Any]]:
        with self._lock:
            return [[s, k, *counts] for (s, k), counts in self._counts.items()]

    @classmethod
    def from_state(cls, max_wrong_rate: float, state: list[list[Any]]) -> RefusalTrust:
        trust = cls(max_wrong_rate)
        for scope, kind, *counts in state:
            trust._counts[(str(scope), str(kind))] = [float(c) for c in counts] + [0.0] * (
                4 - len(counts)
            )
        return trust

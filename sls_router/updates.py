"""Dynamic Update Manager: count feedback, refit periodically, keep a log of refits.

Online pieces (kNN outcomes, token and latency statistics, per-entry cache verdicts)
learn on every event already; what needs a batch refit (the logistic predictors, the
cache's global thresholds) is refit here every `every_n` feedback events or
`every_s` seconds, on a background thread so requests never wait for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import ConfigurationError

RefitFn = Callable[[], dict[str, Any]]


class UpdateManager:
    """Decides when to refit and runs `refit` (a callable returning figures to log).

    Parameters
    ----------
    refit : does the work and returns what it refit and its validation figures.
    every_n : feedback events between refits (0 disables the count trigger).
    every_s : seconds between refits while feedback arrives (0 disables the timer).
    background : run refits on a daemon thread (False: inline, for deterministic replays).
    clock : time source.
    """

    def __init__(
        self,
        refit: RefitFn,
        *,
        every_n: int = 200,
        every_s: float = 300.0,
        background: bool = True,
        max_log: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if every_n < 0 or every_s < 0:
            raise ConfigurationError("every_n and every_s must be >= 0 (0 disables a trigger).")
        self._refit = refit
        self.every_n = every_n
        self.every_s = every_s
        self.background = background
        self.max_log = max_log
        self.clock = clock
        self.log: list[dict[str, Any]] = []
        self.on_entry: Callable[[dict[str, Any]], None] | None = None  # e.g. a shared log
        self.pending = 0
        self.total_events = 0
        self._last = clock()
        self._lock = threading.Lock()
        self._running: threading.Thread | None = None

    def record(self, n: int = 1) -> None:
        """Count feedback events and start a refit when one is due."""
        with self._lock:
            self.pending += n
            self.total_events += n
            trigger = self._due()
            if trigger is None or (self._running is not None and self._running.is_alive()):
                return
            if self.background:
                self._running = threading.Thread(
                    target=self._run, args=(trigger,), daemon=True, name="sls-router-update"
                )
                self._running.start()
                return
        self._run(trigger)

    def update_now(self) -> dict[str, Any]:
        """Refit synchronously (after a background refit in flight, if any)."""
        self.wait()
        return self._run("manual")

    def wait(self, timeout: float | None = None) -> None:
        thread = self._running
        if thread is not None:
            thread.join(timeout)

    def _due(self) -> str | None:
        if self.every_n and self.pending >= self.every_n:
            return "count"
        if self.every_s and self.pending and self.clock() - self._last >= self.every_s:
            return "time"
        return None

    def _run(self, trigger: str) -> dict[str, Any]:
        with self._lock:
            events, self.pending = self.pending, 0
            self._last = self.clock()
        started = time.perf_counter()
        figures = self._refit()
        entry = {
            "at": self._last,
            "trigger": trigger,
            "feedback_events": events,
            "duration_s": round(time.perf_counter() - started, 4),
            **figures,
        }
        with self._lock:
            self.log.append(entry)
            del self.log[: -self.max_log]
        if self.on_entry is not None:
            self.on_entry(entry)
        return entry

    def to_state(self) -> dict[str, Any]:
        return {"log": self.log, "pending": self.pending, "total_events": self.total_events}

    def restore(self, state: dict[str, Any]) -> None:
        self.log = list(state.get("log", []))
        self.pending = int(state.get("pending", 0))
        self.total_events = int(state.get("total_events", 0))

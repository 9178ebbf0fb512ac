"""Model health: a circuit breaker per model of the pool.

A provider that keeps failing (errors, timeouts, empty answers) or that asks the
caller to back off (rate limit with a retry-after) is taken out of rotation for a
cool-down, so requests stop paying its timeouts; after the cool-down one request
probes it again, and a success puts it back. A model out of rotation is still tried
last, so a request fails only when every model fails.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError


@dataclass
class _Health:
    failures: int = 0  # consecutive
    open_until: float = 0.0
    opened: int = 0  # times taken out of rotation


class CircuitBreaker:
    """Per-model breaker: `failures_to_open` consecutive failures (or a rate limit) open
    it for `cooldown_s` seconds (or the retry-after the provider asked for)."""

    def __init__(
        self,
        failures_to_open: int = 3,
        cooldown_s: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures_to_open < 1 or not (cooldown_s >= 0 and math.isfinite(cooldown_s)):
            raise ConfigurationError(
                "failures_to_open must be >= 1 and cooldown_s a finite number of seconds >= 0."
            )
        self.failures_to_open = failures_to_open
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._health: dict[str, _Health] = {}
        self._lock = threading.Lock()

    def available(self, name: str) -> bool:
        with self._lock:
            health = self._health.get(name)
            return health is None or self.clock() >= health.open_until

    def order(self, ranking: Sequence[str]) -> list[str]:
        """The ranking with models out of rotation moved to the end (last resort)."""
        ready = [n for n in ranking if self.available(n)]
        return ready + [n for n in ranking if n not in ready]

    def record_success(self, name: str) -> None:
        with self._lock:
            health = self._health.get(name)
            if health is not None:
                health.failures = 0
                health.open_until = 0.0

    def record_failure(self, name: str, retry_after: float | None = None) -> None:
        with self._lock:
            health = self._health.setdefault(name, _Health())
            health.failures += 1
            pause = None
            if retry_after is not None:
                pause = retry_after
            elif health.failures >= self.failures_to_open:
                pause = self.cooldown_s
            if pause is not None:
                health.open_until = max(health.open_until, self.clock() + pause)
                health.opened += 1

    def status(self) -> dict[str, dict[str, Any]]:
        """Per model: consecutive failures, seconds until it is tried again, times opened."""
        now = self.clock()
        with self._lock:
            return {
                name: {
                    "failures": h.failures,
                    "opened": h.opened,
                    "retry_in_s": max(0.0, h.open_until - now),
                }
                for name, h in self._health.items()
            }


def retry_after_s(exc: BaseException) -> float | None:
    """The back-off a provider asked for: `exc.retry_after`, or an HTTP response's
    `Retry-After` header in seconds (how OpenAI-, Anthropic- and httpx-style errors
    carry it). None when the error says nothing."""
    value = getattr(exc, "retry_after", None)
    if value is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
        if headers is not None and hasattr(headers, "get"):
            value = headers.get("retry-after") or headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None

"""One request's walk down the ranking of models: which to call next, what each call
gave, which answer is served and what every call cost.

It does no I/O. The four drivers (`complete`, `acomplete`, `stream`, `astream`) call the
models and differ only by `await`; this is the code that charges calls, so it lives
once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import BackendError
from .health import CircuitBreaker, retry_after_s
from .types import Completion, ModelSpec, Response

_TIMEOUTS = (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)


@dataclass(frozen=True)
class Call:
    """One answered (and paid) call of a model."""

    model: str
    completion: Completion
    wall_s: float
    verdict: float | None  # the verifier's; an empty answer counts as 0.0

    @property
    def latency_s(self) -> float:
        return self.completion.latency_s if self.completion.latency_s is not None else self.wall_s


class Failover:
    """Tries models in `ranking` order (healthy ones first) until one answer is accepted.

    An answer is accepted unless the verifier rejects it (0.0); a rejected answer is
    re-routed once when `recheck` is on, and the better answer is served. A failing
    call costs nothing and counts against the model's health; an empty answer is paid
    for and counts as a failure. Every answered call is paid for.
    """

    def __init__(
        self,
        ranking: list[str],
        *,
        health: CircuitBreaker,
        specs: dict[str, ModelSpec],
        recheck: bool,
    ) -> None:
        self.ranking = ranking
        self.health = health
        self.specs = specs
        self.recheck = recheck
        self.attempts: list[tuple[str, str]] = []
        self.calls: list[Call] = []
        self._done = False
        self._started = 0.0

    def candidates(self) -> Iterator[str]:
        """The models to call, in turn, until an answer is accepted."""
        for name in self.health.order(self.ranking):
            if self._done:
                return
            self._started = time.perf_counter()
            yield name

    def failed(self, name: str, exc: BaseException) -> None:
        """A call that raised or timed out: nothing to pay, one strike for the model."""
        retry_after = retry_after_s(exc)
        self.health.record_failure(name, retry_after)
        if isinstance(exc, _TIMEOUTS):
            why = f"timed out after {self.specs[name].timeout_s} s"
        else:
            pause = f" (retry after {retry_after:g} s)" if retry_after is not None else ""
            why = f"{type(exc).__name__}: {exc}{pause}"
        self.attempts.append((name, why))

    def answered(
        self, name: str, completion: Completion, verdict: float | None, *, streamed: bool = False
    ) -> bool:
        """Record one answered (and paid) call; True when no other model is to be tried.
        `streamed`: its text already reached the caller, so a real answer is final."""
        wall_s = time.perf_counter() - self._started
        if not completion.answered:
            self.health.record_failure(name)
            self.calls.append(Call(name, completion, wall_s, 0.0))
            self.attempts.append((name, "empty answer"))
            return False
        self.health.record_success(name)
        self.calls.append(Call(name, completion, wall_s, verdict))
        self.attempts.append((name, "ok" if verdict != 0.0 else "rejected by its check"))
        answers = sum(c.completion.answered for c in self.calls)
        self._done = streamed or verdict != 0.0 or not self.recheck or answers > 1
        return self._done

    @property
    def chosen(self) -> Call | None:
        """The call whose answer is served: the first accepted one, else the first one."""
        usable = [c for c in self.calls if c.completion.answered]
        passed = [c for c in usable if c.verdict != 0.0]
        candidates = passed or usable
        return candidates[0] if candidates else None

    def finish(self, request_id: str, predicted_quality: float) -> Response:
        """The response to serve; raises BackendError (listing each attempt) when every
        model failed."""
        chosen = self.chosen
        if chosen is None:
            detail = "; ".join(f"{m}: {why}" for m, why in self.attempts)
            raise BackendError(
                f"every model failed for request {request_id} ({detail}). "
                "Check the providers' status and credentials, or add models.",
                self.attempts,
            )
        return Response(
            text=chosen.completion.text,
            model=chosen.model,
            cache_hit=False,
            usage=chosen.completion.usage,
            cost_usd=sum(self.specs[c.model].charge(c.completion) for c in self.calls),
            latency_s=sum(c.latency_s for c in self.calls),
            predicted_quality=predicted_quality,
            request_id=request_id,
            tried=tuple(m for m, _ in self.attempts),
            latency_modelled=any(c.completion.latency_modelled for c in self.calls),
            tool_calls=chosen.completion.tool_calls,
            raw=chosen.completion.raw,
        )

"""SmartRouter's streaming entry points: the same steps as `complete`, chunk by chunk.

Text reaches the caller as the chosen model produces it; a cached answer is replayed as
word-sized chunks. A model that fails before its first chunk is replaced by the next
one; once text was sent, no other model can take over and the error is raised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from .backends import StreamChunk, replay_chunks
from .errors import BackendError
from .types import Completion, Request, Response

if TYPE_CHECKING:
    from .router import RoutePlan


class _Attempt:
    """One model's stream: passes text on and keeps the closing completion."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = time.perf_counter()
        self.emitted = False
        self.completion: Completion | None = None

    def take(self, chunk: StreamChunk) -> StreamChunk | None:
        if chunk.completion is not None:
            self.completion = chunk.completion
        elif chunk.text:
            self.emitted = True
        return StreamChunk(chunk.text) if chunk.text else None

    def result(self) -> Completion:
        if self.completion is None:
            raise BackendError(f"model {self.name} ended its stream without a completion.")
        return self.completion


class StreamingMixin:
    """`stream` and `astream` of SmartRouter (kept apart to keep router.py readable)."""

    def stream(self, request: Request | str) -> Iterator[StreamChunk | Response]:
        """Yields text chunks (StreamChunk), then the final Response."""
        plan = self.route(request)
        if plan.decision is None:
            yield from self._cached_stream(plan)
            return
        attempts: list[tuple[str, str]] = []
        checked: list = []
        for name in self.health.order(plan.decision.ranking):
            attempt = _Attempt(name)
            try:
                for chunk in self.backends[name].stream(plan.request):
                    if (out := attempt.take(chunk)) is not None:
                        yield out
                    if attempt.completion is not None:
                        break
                completion = attempt.result()
            except Exception as exc:
                attempts.append(self._failure(name, exc))
                if attempt.emitted:  # text already reached the caller
                    raise
                continue
            verdict = self._verify(plan.request, completion)
            if self._stream_settled(attempt, verdict, attempts, checked):
                yield self._finish(plan, checked, attempts)
                return
        self._finish(plan, checked, attempts)

    async def astream(self, request: Request | str) -> AsyncIterator[StreamChunk | Response]:
        plan = await asyncio.to_thread(self.route, request)  # embedding blocks
        if plan.decision is None:
            for chunk in self._cached_stream(plan):
                yield chunk
            return
        attempts: list[tuple[str, str]] = []
        checked: list = []
        for name in self.health.order(plan.decision.ranking):
            attempt = _Attempt(name)
            try:
                async for chunk in self.backends[name].astream(plan.request):
                    if (out := attempt.take(chunk)) is not None:
                        yield out
                    if attempt.completion is not None:
                        break
                completion = attempt.result()
            except Exception as exc:
                attempts.append(self._failure(name, exc))
                if attempt.emitted:  # text already reached the caller
                    raise
                continue
            verdict = await asyncio.to_thread(self._verify, plan.request, completion)
            if self._stream_settled(attempt, verdict, attempts, checked):
                yield self._finish(plan, checked, attempts)
                return
        self._finish(plan, checked, attempts)

    def _cached_stream(self, plan: RoutePlan) -> Iterator[StreamChunk | Response]:
        response = self._cached_response(plan)
        yield from replay_chunks(response.text)
        yield response

    def _stream_settled(self, attempt: _Attempt, verdict: float | None, attempts: list,
                        checked: list) -> bool:
        """True when this stream's answer is the one to finish with: accepted, or any
        answer at all once its text went out (a stream cannot be taken back)."""
        completion = attempt.result()
        accepted = self._accept(attempt.name, completion, attempt.started, verdict, attempts,
                                checked)
        return accepted or completion.answered

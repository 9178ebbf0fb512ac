"""Backends: how the router reaches a model. Framework models are wrapped by the
integration packages; the engine ships plain callables here and recorded answers in
`replay.py`, a backend like the others that this module does not need."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .errors import ConfigurationError, InvalidInputError, SLSRouterError
from .types import Completion, ModelSpec, Request


@dataclass(frozen=True)
class StreamChunk:
    """A piece of streamed text; the last chunk carries the finished `completion`."""

    text: str
    completion: Completion | None = None


@runtime_checkable
class Backend(Protocol):
    def complete(self, request: Request) -> Completion: ...

    async def acomplete(self, request: Request) -> Completion: ...

    def stream(self, request: Request) -> Iterator[StreamChunk]: ...

    def astream(self, request: Request) -> AsyncIterator[StreamChunk]: ...


class BaseBackend:
    """Implement `complete`; async and streaming fall back to it (one chunk)."""

    def complete(self, request: Request) -> Completion:
        raise NotImplementedError

    async def acomplete(self, request: Request) -> Completion:
        return await asyncio.to_thread(self.complete, request)

    def stream(self, request: Request) -> Iterator[StreamChunk]:
        completion = self.complete(request)
        yield StreamChunk(completion.text, completion)

    async def astream(self, request: Request) -> AsyncIterator[StreamChunk]:
        completion = await self.acomplete(request)
        yield StreamChunk(completion.text, completion)


class CallableBackend(BaseBackend):
    """Wraps `fn(request) -> str | Completion` (and optionally an async twin)."""

    def __init__(
        self,
        fn: Callable[[Request], str | Completion],
        afn: Callable[[Request], Awaitable[str | Completion]] | None = None,
    ) -> None:
        if not callable(fn):
            raise InvalidInputError("CallableBackend needs a function request -> str | Completion.")
        self.fn = fn
        self.afn = afn

    def complete(self, request: Request) -> Completion:
        return _as_completion(self.fn(request))

    async def acomplete(self, request: Request) -> Completion:
        if self.afn is None:
            return await super().acomplete(request)
        return _as_completion(await self.afn(request))


def _as_completion(result: str | Completion) -> Completion:
    if isinstance(result, Completion):
        return result
    if isinstance(result, str):
        return Completion(text=result)
    raise SLSRouterError(
        f"a backend function returned {type(result).__name__}; return a str or a Completion."
    )


def replay_chunks(text: str) -> Iterator[StreamChunk]:
    """Replay a cached answer as a stream of word-sized chunks (joining gives the text)."""
    start = 0
    for i, ch in enumerate(text):
        if ch == " " and i > start:
            yield StreamChunk(text[start:i])
            start = i
    if start < len(text):
        yield StreamChunk(text[start:])


def check_pool(
    pool: Sequence[tuple[ModelSpec, Backend]],
) -> tuple[dict[str, ModelSpec], dict[str, Backend]]:
    if isinstance(pool, Mapping) or not pool:
        raise ConfigurationError("pool must be a non-empty list of (ModelSpec, backend) pairs.")
    specs: dict[str, ModelSpec] = {}
    backends: dict[str, Backend] = {}
    for item in pool:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], ModelSpec)):
            raise ConfigurationError(f"pool item {item!r} is not a (ModelSpec, backend) pair.")
        spec, backend = item
        if spec.name in specs:
            raise ConfigurationError(
                f"model name {spec.name!r} appears twice in the pool; "
                "give every model a unique name."
            )
        if not callable(getattr(backend, "complete", None)):
            raise ConfigurationError(
                f"backend of {spec.name!r} has no complete(request); wrap "
                "a function with CallableBackend."
            )
        specs[spec.name] = spec
        backends[spec.name] = backend
    return specs, backends

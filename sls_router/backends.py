"""Backends: how the router reaches a model. Framework models are wrapped by the
integration packages; the engine ships recorded answers and plain callables."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from .errors import ConfigurationError, InvalidInputError, SLSRouterError
from .replay import ReplayDataset, ReplayRecord, load_dataset
from .types import Completion, ModelSpec, Request, Usage


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

    def __init__(self, fn: Callable[[Request], str | Completion],
                 afn: Callable[[Request], object] | None = None) -> None:
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
    raise SLSRouterError(f"a backend function returned {type(result).__name__}; return a str "
                         "or a Completion.")


class ReplayMissError(SLSRouterError, LookupError):
    """The replay dataset holds no answer for this prompt and model."""


class ReplayBackend(BaseBackend):
    """Answers one model's requests from recorded outputs, never inventing one.

    The request is matched by its id when it is a record id (replays of repeated
    prompts stay distinct), else by its prompt (or, for chat requests, its last user
    turn).
    Cost and latency are the recorded ones; where latency was not recorded it is
    modelled as ttft + output_tokens / tokens_per_s from the dataset's sidecar and the
    completion says so. By default the clock is virtual (no sleeping) so replays run
    fast; `sleep=True` waits the latency for real.
    """

    def __init__(self, dataset: ReplayDataset, model: str, *, sleep: bool = False) -> None:
        if model not in dataset.models:
            raise InvalidInputError(f"model {model!r} is not in replay dataset {dataset.name}; "
                                    f"use one of {dataset.model_names}.")
        self.dataset = dataset
        self.model = model
        self.sleep = sleep

    def complete(self, request: Request) -> Completion:
        completion = self._lookup(request)
        if self.sleep and completion.latency_s:
            time.sleep(completion.latency_s)
        return completion

    async def acomplete(self, request: Request) -> Completion:
        completion = self._lookup(request)
        if self.sleep and completion.latency_s:
            await asyncio.sleep(completion.latency_s)
        return completion

    def _lookup(self, request: Request) -> Completion:
        record = self.dataset.get(request.id)
        for key in _replay_keys(request) if record is None else ():
            record = self.dataset.find(key)
            if record is not None:
                break
        if record is None:
            raise ReplayMissError(f"no recorded answer for this prompt in {self.dataset.name} "
                                  f"(model {self.model}); replay only the dataset's prompts.")
        return self.completion_for(record)

    def completion_for(self, record: ReplayRecord) -> Completion:
        """The recorded answer of this model to `record`, with its cost and latency."""
        resp = record.responses.get(self.model)
        if resp is None:
            raise ReplayMissError(f"{self.dataset.name}: model {self.model} has no recorded "
                                  f"answer for request {record.id}.")
        profile = self.dataset.models[self.model]
        cost = resp.cost
        if cost is None:
            cost = (resp.input_tokens * profile.input_per_mtok
                    + resp.output_tokens * profile.output_per_mtok) / 1e6
        latency, modelled = resp.latency_s, False
        if latency is None and profile.tokens_per_s:
            latency = (profile.ttft_s or 0.0) + resp.output_tokens / profile.tokens_per_s
            modelled = True
        return Completion(text=resp.output, usage=Usage(resp.input_tokens, resp.output_tokens),
                          cost_usd=cost, latency_s=latency, latency_modelled=modelled,
                          raw={"replay_id": record.id, "score": resp.score})


def _replay_keys(request: Request) -> list[str]:
    keys = [request.prompt] if request.prompt is not None else []
    for message in reversed(request.messages or []):
        if message["role"] == "user":
            keys.append(message["content"])
            break
    keys.append(request.text)
    return keys


def replay_pool(source: str | Path | ReplayDataset, *, sleep: bool = False,
                ) -> list[tuple[ModelSpec, ReplayBackend]]:
    """Every model of a replay dataset as (spec, backend), priced from its sidecar."""
    dataset = source if isinstance(source, ReplayDataset) else load_dataset(source)
    pool = []
    for name, profile in dataset.models.items():
        spec = ModelSpec(name=name, input_per_mtok=profile.input_per_mtok,
                         output_per_mtok=profile.output_per_mtok, tier=profile.tier,
                         supports_tools=profile.supports_tools)
        pool.append((spec, ReplayBackend(dataset, name, sleep=sleep)))
    return pool


def replay_chunks(text: str) -> Iterator[StreamChunk]:
    """Replay a cached answer as a stream of word-sized chunks (joining gives the text)."""
    start = 0
    for i, ch in enumerate(text):
        if ch == " " and i > start:
            yield StreamChunk(text[start:i])
            start = i
    if start < len(text):
        yield StreamChunk(text[start:])


def check_pool(pool: Sequence[tuple[ModelSpec, Backend]]
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
            raise ConfigurationError(f"model name {spec.name!r} appears twice in the pool; "
                                     "give every model a unique name.")
        if not callable(getattr(backend, "complete", None)):
            raise ConfigurationError(f"backend of {spec.name!r} has no complete(request); wrap "
                                     "a function with CallableBackend.")
        specs[spec.name] = spec
        backends[spec.name] = backend
    return specs, backends


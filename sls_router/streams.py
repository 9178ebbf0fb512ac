"""A provider's stream, given up once it stays silent for its model's `timeout_s`.

`complete` bounds a whole call; a stream may rightly run long, so it is bounded by its
silence instead: the first chunk, and each next one, must come within `idle_timeout_s`.
Past that the stream raises `TimeoutError`, as a call that timed out does, and the router
fails over (or, once text went out, raises). The sync form reads the provider on a pool
thread, so a provider blocked inside a read costs that thread until it returns, never
the caller; it is told to stop at the next chunk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from typing import Any

from .backends import StreamChunk

_END = object()


def bounded_stream(
    executor: concurrent.futures.Executor,
    open_stream: Callable[[], Iterator[StreamChunk]],
    idle_timeout_s: float,
) -> Generator[StreamChunk, None, None]:
    """The chunks of `open_stream()`, each within `idle_timeout_s` of the last."""
    chunks: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()

    def read() -> None:
        try:
            stream = open_stream()
            try:
                for chunk in stream:
                    chunks.put(chunk)
                    if stop.is_set():
                        break
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
            chunks.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, who raises it
            chunks.put(exc)

    executor.submit(read)
    try:
        while True:
            try:
                item = chunks.get(timeout=idle_timeout_s)
            except queue.Empty:
                raise TimeoutError(f"the stream sent nothing for {idle_timeout_s} s") from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


async def abounded_stream(
    stream: AsyncIterator[StreamChunk], idle_timeout_s: float
) -> AsyncGenerator[StreamChunk, None]:
    """The chunks of `stream`, each within `idle_timeout_s` of the last."""
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(anext(stream), timeout=idle_timeout_s)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise TimeoutError(f"the stream sent nothing for {idle_timeout_s} s") from None
            yield chunk
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()

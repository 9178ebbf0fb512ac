"""Any LangChain chat model as an engine backend, and a pool built from several of them."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.runnables import Runnable

from sls_router import Completion, ConfigurationError, ModelSpec, Request, StreamChunk, Usage
from sls_router.backends import BaseBackend
from sls_router.pool import check_prices, priced_spec
from sls_router.types import estimate_tokens

from .messages import to_langchain_messages, tool_calls_of

# generation parameters handed to the wrapped model as call keyword arguments
_FORWARDED = ("temperature", "max_tokens")


class LangChainBackend(BaseBackend):
    """Calls one LangChain chat model: messages, tools, `stop` and generation params in;
    text, tool calls (unchanged) and token usage out. Usage the model does not report is
    estimated from characters and marked `usage_estimated` in `raw`.

    The wrapped call runs in a fresh context, outside the router's LangChain run:
    callbacks given to the router (token counters, tracers, feedback handlers) see one
    chat-model run per request, the router's, never a second one from inside it."""

    def __init__(self, model: BaseChatModel) -> None:
        self.model = model

    def complete(self, request: Request) -> Completion:
        runnable, messages, kwargs = self._prepare(request)
        message = contextvars.Context().run(runnable.invoke, messages, **kwargs)
        return _completion(request, message)

    async def acomplete(self, request: Request) -> Completion:
        runnable, messages, kwargs = self._prepare(request)
        message = await asyncio.create_task(
            runnable.ainvoke(messages, **kwargs), context=contextvars.Context()
        )
        return _completion(request, message)

    def stream(self, request: Request) -> Iterator[StreamChunk]:
        runnable, messages, kwargs = self._prepare(request)
        context = contextvars.Context()
        chunks = context.run(runnable.stream, messages, **kwargs)
        merged: AIMessageChunk | None = None
        while (chunk := context.run(next, chunks, None)) is not None:
            merged = chunk if merged is None else merged + chunk
            if chunk.text:
                yield StreamChunk(chunk.text)
        yield StreamChunk("", _completion(request, merged or AIMessageChunk("")))

    async def astream(self, request: Request) -> AsyncIterator[StreamChunk]:
        runnable, messages, kwargs = self._prepare(request)
        context = contextvars.Context()
        chunks = runnable.astream(messages, **kwargs)
        merged: AIMessageChunk | None = None
        while (
            chunk := await asyncio.create_task(anext(chunks, None), context=context)
        ) is not None:
            merged = chunk if merged is None else merged + chunk
            if chunk.text:
                yield StreamChunk(chunk.text)
        yield StreamChunk("", _completion(request, merged or AIMessageChunk("")))

    def _prepare(self, request: Request) -> tuple[Runnable, list[BaseMessage], dict[str, Any]]:
        runnable: Runnable = self.model
        if request.tools:
            choice = request.params.get("tool_choice")
            runnable = self.model.bind_tools(
                request.tools, **({"tool_choice": choice} if choice else {})
            )
        messages = to_langchain_messages(
            request.messages or [{"role": "user", "content": request.text}]
        )
        kwargs = {k: request.params[k] for k in _FORWARDED if request.params.get(k) is not None}
        if request.params.get("stop"):
            kwargs["stop"] = list(request.params["stop"])
        return runnable, messages, kwargs


def _completion(request: Request, message: AIMessage) -> Completion:
    usage = message.usage_metadata
    estimated = not usage
    if usage:
        counted = Usage(int(usage["input_tokens"]), int(usage["output_tokens"]))
    else:
        counted = Usage(estimate_tokens(request.text), estimate_tokens(message.text))
    return Completion(
        text=message.text,
        usage=counted,
        tool_calls=tool_calls_of(message),
        raw={"message": message, "usage_estimated": estimated},
    )


def langchain_pool(
    llms: Mapping[str, BaseChatModel],
    prices: Mapping[str, tuple[float, float] | ModelSpec],
) -> list[tuple[ModelSpec, LangChainBackend]]:
    """(ModelSpec, backend) pairs from named chat models and their USD-per-million prices.

    A price may be a ModelSpec to set tier, context window or timeouts as well. Tool
    support is read from the model: it supports tools when its class implements
    `bind_tools`."""
    if not isinstance(llms, Mapping) or not llms:
        raise ConfigurationError("from_llms needs a non-empty dict {name: chat_model}.")
    for name, llm in llms.items():
        if not isinstance(llm, BaseChatModel):
            raise ConfigurationError(
                f"{name!r} is a {type(llm).__name__}, not a LangChain chat model (BaseChatModel)."
            )
    check_prices(list(llms), prices)
    return [
        (
            priced_spec(
                name,
                prices[name],
                supports_tools=_supports_tools(llm),
                context_window=_context_window(llm),
            ),
            LangChainBackend(llm),
        )
        for name, llm in llms.items()
    ]


def _supports_tools(llm: BaseChatModel) -> bool:
    return type(llm).bind_tools is not BaseChatModel.bind_tools


def _context_window(llm: BaseChatModel) -> int:
    profile = getattr(llm, "profile", None) or {}
    window = profile.get("max_input_tokens") if isinstance(profile, Mapping) else None
    return int(window or 8192)


def langchain_judge(judge: Any) -> Any:
    """`judge=(ModelSpec, chat_model)` becomes the router's (ModelSpec, backend) pair; a
    pool model's name, a backend pair or None pass as they are."""
    if isinstance(judge, tuple) and len(judge) == 2 and isinstance(judge[1], BaseChatModel):
        return judge[0], LangChainBackend(judge[1])
    return judge

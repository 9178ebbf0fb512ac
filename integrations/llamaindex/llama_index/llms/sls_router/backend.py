"""LlamaIndexBackend: any LlamaIndex LLM as an engine `Backend`.

The router hands the backend an engine `Request`; the backend rebuilds LlamaIndex
messages and tools from it (so it works for requests from any source, not only from
`SmartRouterLLM`), calls the wrapped LLM and reports text, tool calls and tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from llama_index.core.base.llms.types import ChatResponse, CompletionResponse
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM

from sls_router.backends import StreamChunk
from sls_router.errors import ConfigurationError, InvalidInputError
from sls_router.pool import check_prices, priced_spec
from sls_router.types import Completion, ModelSpec, Request, Usage, estimate_tokens

from .messages import from_engine_messages, selections_to_tool_calls, specs_to_tools

_INPUT_KEYS = ("prompt_tokens", "input_tokens", "prompt_token_count")
_OUTPUT_KEYS = ("completion_tokens", "output_tokens", "candidates_token_count")
_TOOL_FLAGS = ("allow_parallel_tool_calls", "tool_required")


def supports_tools(llm: LLM) -> bool:
    """A LlamaIndex LLM can take tool requests when it is a function-calling model."""
    return isinstance(llm, FunctionCallingLLM) and bool(llm.metadata.is_function_calling_model)


class LlamaIndexBackend:
    """Calls one LlamaIndex LLM for the router: chat, completion, tools, sync and async.

    Chat requests go to `chat` (or `chat_with_tools` when the request binds tools),
    prompt requests to `complete`. Token usage is read from the response
    (``raw["usage"]`` or ``additional_kwargs``, the keys LlamaIndex's token counter
    reads); when the model reports none it is *estimated* as characters / 4.
    """

    def __init__(self, llm: LLM) -> None:
        if not isinstance(llm, LLM):
            raise ConfigurationError(
                f"LlamaIndexBackend wraps a LlamaIndex LLM, got "
                f"{type(llm).__name__}; pass e.g. OpenAI(model=...)."
            )
        self.llm = llm

    # -- the four Backend methods share _call_args and _completion --------------------
    def complete(self, request: Request) -> Completion:
        kind, first, tools, kwargs = self._call_args(request)
        if kind == "prompt":
            return self._completion(request, self.llm.complete(first, **kwargs))
        if tools:
            return self._completion(
                request, self.llm.chat_with_tools(tools, chat_history=first, **kwargs)
            )
        return self._completion(request, self.llm.chat(first, **kwargs))

    async def acomplete(self, request: Request) -> Completion:
        kind, first, tools, kwargs = self._call_args(request)
        if kind == "prompt":
            return self._completion(request, await self.llm.acomplete(first, **kwargs))
        if tools:
            return self._completion(
                request, await self.llm.achat_with_tools(tools, chat_history=first, **kwargs)
            )
        return self._completion(request, await self.llm.achat(first, **kwargs))

    def stream(self, request: Request) -> Iterator[StreamChunk]:
        kind, first, tools, kwargs = self._call_args(request)
        if kind == "prompt":
            responses = self.llm.stream_complete(first, **kwargs)
        elif tools:
            responses = self.llm.stream_chat_with_tools(tools, chat_history=first, **kwargs)
        else:
            responses = self.llm.stream_chat(first, **kwargs)
        deltas: list[str] = []
        last = None
        for last in responses:
            if last.delta:
                deltas.append(last.delta)
                yield StreamChunk(last.delta)
        yield self._last_chunk(request, last, deltas)

    async def astream(self, request: Request) -> AsyncIterator[StreamChunk]:
        kind, first, tools, kwargs = self._call_args(request)
        if kind == "prompt":
            responses = await self.llm.astream_complete(first, **kwargs)
        elif tools:
            responses = await self.llm.astream_chat_with_tools(tools, chat_history=first, **kwargs)
        else:
            responses = await self.llm.astream_chat(first, **kwargs)
        deltas: list[str] = []
        last = None
        async for last in responses:
            if last.delta:
                deltas.append(last.delta)
                yield StreamChunk(last.delta)
        yield self._last_chunk(request, last, deltas)

    # -- shared helpers ---------------------------------------------------------------
    def _call_args(self, request: Request) -> tuple[str, Any, list, dict[str, Any]]:
        kwargs = dict(request.params)
        if request.messages is None:
            return "prompt", request.prompt, [], kwargs
        tools = specs_to_tools(request.tools)
        if tools and not isinstance(self.llm, FunctionCallingLLM):
            raise InvalidInputError(
                f"{type(self.llm).__name__} cannot call tools; give it "
                "supports_tools=False in its ModelSpec."
            )
        if not tools:
            for flag in _TOOL_FLAGS:
                kwargs.pop(flag, None)
        return "chat", from_engine_messages(request.messages), tools, kwargs

    def _last_chunk(self, request: Request, last: Any, deltas: list[str]) -> StreamChunk:
        """The closing chunk: the finished completion (and any text not yet streamed)."""
        if last is None:
            return StreamChunk("", self._completion(request, None))
        completion = self._completion(request, last, streamed="".join(deltas) or None)
        return StreamChunk("" if deltas else completion.text, completion)

    def _completion(
        self,
        request: Request,
        response: ChatResponse | CompletionResponse | None,
        streamed: str | None = None,
    ) -> Completion:
        if response is None:
            text, calls = "", None
        elif isinstance(response, ChatResponse):
            text = response.message.content or ""
            calls = self._tool_calls(response) if request.tools else None
        else:
            text, calls = response.text or "", None
        if streamed is not None:
            text = streamed  # what the caller saw is the answer
        usage = read_usage(response) or estimate_usage(request, text, calls)
        return Completion(text=text, usage=usage, tool_calls=calls or None, raw=response)

    def _tool_calls(self, response: ChatResponse) -> list[dict[str, Any]]:
        selections = self.llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
        return selections_to_tool_calls(selections or [])


def llm_pool(
    llms: Mapping[str, LLM], prices: Mapping[str, Any]
) -> list[tuple[ModelSpec, LlamaIndexBackend]]:
    """(ModelSpec, backend) pairs for the router from ``{name: llm}`` and their prices.

    A price is ``(input_usd_per_mtok, output_usd_per_mtok)`` or a full `ModelSpec`
    with the same name; context window and tool support come from the LLM itself.
    """
    if not isinstance(llms, Mapping) or not llms:
        raise ConfigurationError(
            "from_llms needs a non-empty dict {name: LlamaIndex LLM}, "
            "e.g. {'small': Ollama(...), 'large': OpenAI(...)}."
        )
    for name, llm in llms.items():
        if not isinstance(llm, LLM):
            raise ConfigurationError(
                f"{name!r} is a {type(llm).__name__}, not a LlamaIndex "
                "LLM; pass LLM objects such as OpenAI(model=...)."
            )
    check_prices(list(llms), prices)
    return [
        (
            priced_spec(
                name,
                prices[name],
                supports_tools=supports_tools(llm),
                context_window=llm.metadata.context_window,
            ),
            LlamaIndexBackend(llm),
        )
        for name, llm in llms.items()
    ]


def read_usage(response: Any) -> Usage | None:
    """Tokens a response reports, where LlamaIndex integrations put them, else None."""
    if response is None:
        return None
    raw = getattr(response, "raw", None)
    for source in (
        _field(raw, "usage"),
        _field(raw, "usage_metadata"),
        raw,
        getattr(response, "additional_kwargs", None),
    ):
        counts = _counts(source)
        if counts is not None:
            return counts
    return None


def estimate_usage(request: Request, text: str, calls: list[dict[str, Any]] | None) -> Usage:
    """An estimate (characters / 4), for models that report no token counts."""
    out_chars = len(text) + sum(len(str(c.get("args", ""))) + len(c["name"]) for c in calls or [])
    return Usage(estimate_tokens(request.text), estimate_tokens(out_chars))


def _counts(source: Any) -> Usage | None:
    if source is None:
        return None
    if not isinstance(source, Mapping) and hasattr(source, "model_dump"):
        source = source.model_dump()
    values = []
    for keys in (_INPUT_KEYS, _OUTPUT_KEYS):
        found = next((_field(source, k) for k in keys if _field(source, k) is not None), None)
        values.append(found)
    if values[0] is None and values[1] is None:
        return None
    try:
        return Usage(int(values[0] or 0), int(values[1] or 0))
    except (TypeError, ValueError):
        return None


def _field(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def llm_judge(judge: Any) -> Any:
    """`judge=(ModelSpec, llm)` becomes the router's (ModelSpec, backend) pair; a pool
    model's name, a backend pair or None pass as they are."""
    if isinstance(judge, tuple) and len(judge) == 2 and isinstance(judge[1], LLM):
        return judge[0], LlamaIndexBackend(judge[1])
    return judge

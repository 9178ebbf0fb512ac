"""`SmartRouterLLM`: a LangChain chat model that routes each call through sls-router.

The adapter only translates: LangChain messages and call options become an engine
`Request`, the engine's `Response` becomes an `AIMessage`. Routing, caching and
learning all happen in `sls_router.SmartRouter`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from sls_router import ConfigurationError, ModelSpec, Request, Response, SmartRouter
from sls_router.metadata import thread_of
from sls_router.pool import router_for
from sls_router.replay import replay_pool

from .backend import langchain_judge, langchain_pool
from .messages import final_chunk, response_metadata, to_ai_message, to_engine_messages

ROUTE_EVENT = "sls_route"


class SmartRouterLLM(BaseChatModel):
    """A drop-in chat model over a pool of chat models, with an adaptive semantic cache.

    Build it with `from_llms({name: chat_model}, prices={name: (in, out)})`,
    `from_replay(path)` or `SmartRouterLLM(router=SmartRouter(...))`. Each answer's
    `response_metadata` says which model answered (`sls_model`), whether it came from
    the cache, what it cost and which models were tried; rate it with
    `llm.feedback(response_metadata["sls_request_id"], score)`.
    """

    router: SmartRouter
    model_name: str = Field(default="sls-router", alias="model")
    """A label for traces; the answering model is in `response_metadata['sls_model']`."""
    temperature: float | None = None
    """Sent to the chosen model. Above 0 the answer is sampled and, unless
    `cache_sampled`, neither served from nor stored in the cache."""
    max_tokens: int | None = None
    stop: list[str] | None = None
    namespace: str = "default"
    """Tenant id: requests of different namespaces never share cached answers."""
    task: str | None = None
    """Task tag, a routing feature (e.g. 'log-parsing')."""
    cache_sampled: bool = False
    streaming: bool = False

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    def __init__(self, **data: Any) -> None:
        if not isinstance(data.get("router"), SmartRouter):
            raise ConfigurationError(
                "SmartRouterLLM needs a pool: use SmartRouterLLM.from_llms({name: chat_model}, "
                "prices={name: (input_per_mtok, output_per_mtok)}), "
                "SmartRouterLLM.from_replay(path) or SmartRouterLLM(router=SmartRouter(...))."
            )
        super().__init__(**data)

    @classmethod
    def from_llms(
        cls,
        llms: Mapping[str, BaseChatModel],
        prices: Mapping[str, tuple[float, float] | ModelSpec],
        **options: Any,
    ) -> SmartRouterLLM:
        """Route among LangChain chat models priced in USD per million tokens.

        `options` are SmartRouter options (preset, embedder, verifier, max_wrong_rate,
        judge: a pool model's name or a (ModelSpec, chat_model) pair, ...) or fields of
        this class (namespace, task, temperature, ...). `state` is a directory (what
        `llm.save()` wrote there is restored) or a postgresql:// URL (a cache and
        feedback shared by every replica opened on it)."""
        router_options, fields = _split_options(options)
        if "judge" in router_options:
            router_options["judge"] = langchain_judge(router_options["judge"])
        return cls(router=router_for(langchain_pool(llms, prices), **router_options), **fields)

    @classmethod
    def from_replay(cls, path: str | Path, **options: Any) -> SmartRouterLLM:
        """Route among the models of a recorded dataset (answers come from the recording)."""
        router_options, fields = _split_options(options)
        sleep = bool(router_options.pop("sleep", False))
        return cls(router=router_for(replay_pool(path, sleep=sleep), **router_options), **fields)

    # -- LangChain's identity --------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "sls-router"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "models": sorted(self.router.specs),
            "namespace": self.namespace,
            "task": self.task,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "preset": self.router.options["preset"],
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="sls_router",
            ls_model_type="chat",
            ls_model_name=kwargs.get("model", self.model_name),
        )
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    # -- tools -------------------------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; calls with tools go only to models that support tools, their tool
        calls come back unchanged, and such calls are never cached."""
        specs = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=specs, **kwargs)

    # -- calls -------------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        response = self.router.complete(self._request(messages, stop, kwargs, run_manager))
        _emit(run_manager, response)
        return _result(response)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        response = await self.router.acomplete(self._request(messages, stop, kwargs, run_manager))
        await _aemit(run_manager, response)
        return _result(response)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for item in self.router.stream(self._request(messages, stop, kwargs, run_manager)):
            if isinstance(item, Response):
                _emit(run_manager, item)
                yield ChatGenerationChunk(message=final_chunk(item))
            elif item.text:
                chunk = ChatGenerationChunk(message=AIMessageChunk(item.text))
                if run_manager:
                    run_manager.on_llm_new_token(item.text, chunk=chunk)
                yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for item in self.router.astream(self._request(messages, stop, kwargs, run_manager)):
            if isinstance(item, Response):
                await _aemit(run_manager, item)
                yield ChatGenerationChunk(message=final_chunk(item))
            elif item.text:
                chunk = ChatGenerationChunk(message=AIMessageChunk(item.text))
                if run_manager:
                    await run_manager.on_llm_new_token(item.text, chunk=chunk)
                yield chunk

    def _request(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
    ) -> Request:
        """Everything that changes the answer goes into params, so into the cache scope;
        the run's thread (LangGraph's `thread_id`, or a `session_id` in its metadata)
        becomes the request's, so asking again in it is heard (sls_router/reask.py)."""
        params: dict[str, Any] = {}
        for key in ("temperature", "max_tokens"):
            value = kwargs.get(key, getattr(self, key))
            if value is not None:
                params[key] = value
        stop = stop or self.stop
        if stop:
            params["stop"] = list(stop)
        if kwargs.get("tool_choice") is not None:
            params["tool_choice"] = kwargs["tool_choice"]
        return Request(
            messages=to_engine_messages(messages),
            task=self.task,
            namespace=self.namespace,
            params=params,
            tools=kwargs.get("tools") or None,
            cache_sampled=self.cache_sampled,
            thread=thread_of(None if run_manager is None else run_manager.metadata),
        )

    # -- feedback and state ------------------------------------------------------------
    def feedback(self, request_id: str, score: float, source: str = "user") -> None:
        """Rate the answer of `response_metadata['sls_request_id']` (1 right, 0 wrong)."""
        self.router.feedback(request_id, score, source=source)

    def update_now(self) -> dict[str, Any]:
        return self.router.update_now()

    def save(self, directory: str | Path | None = None) -> None:
        """Checkpoint the router: into `directory`, or into the `state` it was opened on."""
        self.router.save(directory)


def _result(response: Response) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=to_ai_message(response))])


def _emit(run_manager: CallbackManagerForLLMRun | None, response: Response) -> None:
    """The routing decision as a custom event of this run, for handlers and tracers.

    LangChain hands `_stream` no run manager when called through `stream()`; there the
    decision travels only in the final chunk's `response_metadata`."""
    if run_manager is not None:
        CallbackManager(
            run_manager.handlers,
            parent_run_id=run_manager.parent_run_id,
            tags=run_manager.tags,
            metadata=run_manager.metadata,
        ).on_custom_event(ROUTE_EVENT, response_metadata(response), run_id=run_manager.run_id)


async def _aemit(run_manager: AsyncCallbackManagerForLLMRun | None, response: Response) -> None:
    if run_manager is not None:
        manager = AsyncCallbackManager(
            run_manager.handlers,
            parent_run_id=run_manager.parent_run_id,
            tags=run_manager.tags,
            metadata=run_manager.metadata,
        )
        await manager.on_custom_event(
            ROUTE_EVENT, response_metadata(response), run_id=run_manager.run_id
        )


_FIELDS = {
    "model_name",
    "model",
    "temperature",
    "max_tokens",
    "stop",
    "namespace",
    "task",
    "cache_sampled",
    "streaming",
    "callbacks",
    "tags",
    "metadata",
    "cache",
    "disable_streaming",
    "output_version",
    "verbose",
}


def _split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    fields = {k: v for k, v in options.items() if k in _FIELDS}
    return {k: v for k, v in options.items() if k not in _FIELDS}, fields

"""SmartRouterLLM: a LlamaIndex LLM that routes each call through an sls-router.

Set ``Settings.llm = SmartRouterLLM.from_llms(...)`` once and every query engine,
chat engine and agent gets a semantic cache and cost-aware routing. The class only
translates: LlamaIndex messages and tools in, a `Request` to `SmartRouter`, its
`Response` back as LlamaIndex objects. Routing, caching and learning stay in the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.constants import DEFAULT_NUM_OUTPUTS
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection

from sls_router import SmartRouter, StreamChunk
from sls_router.errors import ConfigurationError, InvalidInputError
from sls_router.metadata import REQUEST_ID_KEY, THREAD_KEYS, routing_metadata, thread_of
from sls_router.pool import router_for
from sls_router.replay import replay_pool
from sls_router.types import Request, Response

from .backend import llm_judge, llm_pool
from .events import emit_feedback, emit_route
from .messages import (
    from_engine_message,
    mark_query,
    marked_query,
    to_engine_messages,
    tool_calls_from_message,
    tool_calls_to_selections,
    tools_to_specs,
    with_call_ids,
)

_TOOL_KWARGS = ("allow_parallel_tool_calls", "tool_required", "tool_choice")


class SmartRouterLLM(FunctionCallingLLM):
    """A LlamaIndex LLM over a pool of models, with a semantic cache in front.

    Build it with `from_llms` (LlamaIndex LLMs and their prices), `from_replay`
    (recorded answers) or around a ready `SmartRouter`. Every response's
    ``additional_kwargs`` carries the engine's routing metadata (``sls_model``,
    ``sls_cache_hit``, ``sls_cost_usd``, ``sls_request_id``, ...: see
    `sls_router.metadata`); ``raw["usage"]`` holds the tokens, so LlamaIndex's token
    counter works. Send scores back with `feedback` or an `SLSFeedbackEventHandler`.

    The cache is scoped by the namespace, generation parameters, system prompt and
    the whole history (turns after the question included); it embeds the last user
    turn, or, for templated prompts that hold a ``query_str`` (query engines), only the
    query, with the rest of the turn (template and retrieved context) in the scope.
    Mark the varying part yourself with ``additional_kwargs={"sls_query": ...}`` on the
    last user message. Requests with tools go only to tool-capable models, never cached.
    """

    namespace: str = Field(
        default="default", description="Tenant id: requests of one namespace share a cache."
    )
    task: str | None = Field(
        default=None, description="Task tag such as 'qa/docs' (router feature)."
    )
    is_chat_model: bool = Field(
        default=True, description="Query engines send messages (scoped cache)."
    )
    num_output: int = Field(
        default=DEFAULT_NUM_OUTPUTS, description="Tokens LlamaIndex reserves for the answer."
    )
    _router: SmartRouter = PrivateAttr()

    def __init__(self, router: SmartRouter, **kwargs: Any) -> None:
        if not isinstance(router, SmartRouter):
            raise ConfigurationError(
                f"SmartRouterLLM needs a SmartRouter, got "
                f"{type(router).__name__}; or use SmartRouterLLM.from_llms"
                "(...) / SmartRouterLLM.from_replay(path)."
            )
        super().__init__(**kwargs)
        if not self.namespace:
            raise ConfigurationError("namespace must be a non-empty string (the tenant's id).")
        self._router = router

    @classmethod
    def from_llms(
        cls,
        llms: Mapping[str, LLM],
        prices: Mapping[str, Any],
        *,
        namespace: str = "default",
        task: str | None = None,
        **router_options: Any,
    ) -> SmartRouterLLM:
        """Route among LlamaIndex LLMs; ``prices={name: (input_per_mtok, output_per_mtok)}``
        in USD per million tokens. `router_options` go to `SmartRouter` (embedder,
        preset, cache, verifier, judge: a pool model's name or a (ModelSpec, llm) pair,
        ...). ``state`` is a directory (what
        ``llm.router.save()`` wrote there is restored) or a postgresql:// URL (a cache and
        feedback shared by every replica opened on it)."""
        if "judge" in router_options:
            router_options["judge"] = llm_judge(router_options["judge"])
        router = router_for(llm_pool(llms, prices), **router_options)
        outputs = [llm.metadata.num_output for llm in llms.values() if llm.metadata.num_output > 0]
        return cls(
            router=router,
            namespace=namespace,
            task=task,
            num_output=min(outputs, default=DEFAULT_NUM_OUTPUTS),
        )

    @classmethod
    def from_replay(
        cls,
        path: str | Path,
        *,
        sleep: bool = False,
        namespace: str = "default",
        task: str | None = None,
        **router_options: Any,
    ) -> SmartRouterLLM:
        """Route among the models of a recorded dataset (see `sls_router.replay`);
        ``state`` as in `from_llms`."""
        return cls(
            router=router_for(replay_pool(path, sleep=sleep), **router_options),
            namespace=namespace,
            task=task,
        )

    @classmethod
    def class_name(cls) -> str:
        return "SmartRouterLLM"

    @property
    def router(self) -> SmartRouter:
        return self._router

    @property
    def metadata(self) -> LLMMetadata:
        specs = list(self._router.specs.values())
        return LLMMetadata(
            context_window=min(s.context_window for s in specs),
            num_output=self.num_output,
            is_chat_model=self.is_chat_model,
            is_function_calling_model=any(s.supports_tools for s in specs),
            model_name="sls-router[" + ",".join(s.name for s in specs) + "]",
        )

    def feedback(self, request_id: str, score: float, source: str = "user") -> None:
        """Score the answer served to `request_id` (from ``additional_kwargs``) in [0, 1]."""
        if not isinstance(request_id, str):
            raise InvalidInputError(
                f"request_id must be the str from additional_kwargs"
                f"['{REQUEST_ID_KEY}'], got {type(request_id).__name__}."
            )
        self._router.feedback(request_id, score, source=source)
        emit_feedback(request_id, score, source)

    def close(self) -> None:
        self._router.close()

    # -- chat --------------------------------------------------------------------------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat_response(self._router.complete(self._chat_request(messages, kwargs)))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        request = self._chat_request(messages, kwargs)
        return self._chat_response(await self._router.acomplete(request))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        request = self._chat_request(messages, kwargs)  # bad input fails here, not mid-stream
        pieces = _Pieces(self, chat=True)

        def gen() -> ChatResponseGen:
            for item in self._router.stream(request):
                if (piece := pieces.take(item)) is not None:
                    yield piece

        return gen()

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        request = self._chat_request(messages, kwargs)
        pieces = _Pieces(self, chat=True)

        async def gen() -> ChatResponseAsyncGen:
            async for item in self._router.astream(request):
                if (piece := pieces.take(item)) is not None:
                    yield piece

        return gen()

    # -- completion --------------------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        request = self._prompt_request(prompt, kwargs)
        return self._completion_response(self._router.complete(request))

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        request = self._prompt_request(prompt, kwargs)
        return self._completion_response(await self._router.acomplete(request))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        request = self._prompt_request(prompt, kwargs)
        pieces = _Pieces(self, chat=False)

        def gen() -> CompletionResponseGen:
            for item in self._router.stream(request):
                if (piece := pieces.take(item)) is not None:
                    yield piece

        return gen()

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        request = self._prompt_request(prompt, kwargs)
        pieces = _Pieces(self, chat=False)

        async def gen() -> CompletionResponseAsyncGen:
            async for item in self._router.astream(request):
                if (piece := pieces.take(item)) is not None:
                    yield piece

        return gen()

    # -- tools (what FunctionAgent and predict_and_call use) ----------------------------
    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        return {
            "messages": messages,
            "tools": list(tools or []),
            "allow_parallel_tool_calls": allow_parallel_tool_calls,
            "tool_required": tool_required,
            **kwargs,
        }

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        calls = tool_calls_from_message(response.message)
        if not calls and error_on_no_tool_call:
            raise InvalidInputError(
                "the response holds no tool call; pass "
                "error_on_no_tool_call=False to accept text answers."
            )
        return tool_calls_to_selections(calls)

    # -- templated prompts: cache and route on the query, not on the retrieved context ---
    def _get_messages(self, prompt: Any, **prompt_args: Any) -> list[ChatMessage]:
        """Query engines format `query_str` into a long turn of context; mark the query so
        the router embeds it (a long shared context would hide it from the embedder)."""
        messages = super()._get_messages(prompt, **prompt_args)
        return mark_query(messages, self._query_str(prompt, prompt_args))

    def _get_prompt(self, prompt: Any, **prompt_args: Any) -> str:
        text = super()._get_prompt(prompt, **prompt_args)
        query = self._query_str(prompt, prompt_args)
        if isinstance(query, str) and query.strip() and query in text:
            return _MarkedPrompt(text, query)
        return text

    def _query_str(self, prompt: Any, prompt_args: dict[str, Any]) -> Any:
        """`query_str` given now, or bound earlier with partial_format (as synthesizers do)."""
        if "query_str" in prompt_args:
            return prompt_args["query_str"]
        chosen = prompt.select(llm=self) if callable(getattr(prompt, "select", None)) else prompt
        return (getattr(chosen, "kwargs", None) or {}).get("query_str")

    # -- translation, shared by every entry point --------------------------------------
    def _chat_request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> Request:
        engine_messages = to_engine_messages(messages)
        params, thread = _params_and_thread(kwargs)
        specs = tools_to_specs(params.pop("tools", None))
        if not specs:
            for key in _TOOL_KWARGS:
                params.pop(key, None)
        # the engine scopes the cache by everything but the query: turns after it (tool
        # calls, results) and the rest of a templated turn (instructions, context)
        return Request(
            messages=engine_messages,
            tools=specs or None,
            params=params,
            query=marked_query(messages),
            namespace=self.namespace,
            task=self.task,
            thread=thread,
        )

    def _prompt_request(self, prompt: str, kwargs: dict[str, Any]) -> Request:
        if not isinstance(prompt, str):
            raise InvalidInputError(
                f"prompt must be a str, got {type(prompt).__name__}; use "
                "chat(messages) for ChatMessage lists."
            )
        params, thread = _params_and_thread(kwargs)
        return Request(
            prompt=str(prompt),
            query=getattr(prompt, "sls_query", None),
            params=params,
            namespace=self.namespace,
            task=self.task,
            thread=thread,
        )

    def _chat_response(self, response: Response, delta: str | None = None) -> ChatResponse:
        emit_route(response)
        message = from_engine_message(
            {
                "role": "assistant",
                "content": response.text,
                "tool_calls": with_call_ids(response.tool_calls, response.request_id),
            }
        )
        return ChatResponse(
            message=message,
            delta=delta,
            raw=_raw(response),
            additional_kwargs=routing_metadata(response),
        )

    def _completion_response(
        self, response: Response, delta: str | None = None
    ) -> CompletionResponse:
        emit_route(response)
        return CompletionResponse(
            text=response.text,
            delta=delta,
            raw=_raw(response),
            additional_kwargs=routing_metadata(response),
        )


class _MarkedPrompt(str):
    """A formatted prompt that remembers which part is the query (see `_get_prompt`)."""

    sls_query: str

    def __new__(cls, text: str, query: str) -> _MarkedPrompt:
        marked = super().__new__(cls, text)
        marked.sls_query = query
        return marked


class _Pieces:
    """Turns the router's stream (text chunks, then a Response) into LlamaIndex chunks.

    Text chunks carry the running text and their delta; the Response becomes a last
    chunk with an empty delta that holds the metadata, tool calls and usage, so summing
    deltas gives the text once and usage is counted once.
    """

    def __init__(self, llm: SmartRouterLLM, chat: bool) -> None:
        self.llm, self.chat, self.text = llm, chat, ""

    def take(self, item: StreamChunk | Response) -> ChatResponse | CompletionResponse | None:
        if isinstance(item, Response):
            if self.chat:
                return self.llm._chat_response(item, delta="")
            return self.llm._completion_response(item, delta="")
        if not item.text:
            return None
        self.text += item.text
        if self.chat:
            return ChatResponse(
                message=ChatMessage(role=MessageRole.ASSISTANT, content=self.text), delta=item.text
            )
        return CompletionResponse(text=self.text, delta=item.text)


def _raw(response: Response) -> dict[str, Any]:
    usage = response.usage
    return {
        "usage": {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        },
        "upstream": response.raw,
    }


def _params_and_thread(kwargs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The call's generation parameters, and the conversation a `thread_id` (or
    `session_id`, `conversation_id`) keyword names: not a parameter of the answer, so
    kept out of the cache scope; asking again in it is heard (sls_router/reask.py)."""
    params = {k: v for k, v in kwargs.items() if k not in THREAD_KEYS}
    return params, thread_of(kwargs)

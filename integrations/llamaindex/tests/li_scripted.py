"""Scripted LlamaIndex LLMs for the tests: real LLM subclasses with deterministic output.

`ScriptedLLM` is a plain `CustomLLM` (no tools); `ScriptedToolLLM` is a
`FunctionCallingLLM` that calls a tool when the question names one and answers from
the tool's result afterwards. Both count their calls, can sleep (to show async
concurrency) and report token usage the way LlamaIndex integrations do, unless told not to.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Sequence
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
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection


def _words(text: str) -> list[str]:
    return re.findall(r"\S+\s*", text)


class _Counting:
    """Call counting shared by the scripted LLMs (thread- and task-safe enough for tests)."""

    def _enter(self, count: bool = True) -> None:
        with self._lock:
            self.calls += int(count)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


class ScriptedLLM(_Counting, CustomLLM):
    """Answers ``"<name> says: <query line or last line of the last user turn>"``; no tools.

    Chat and streaming answer the same text, as a real model at temperature 0 would.
    """

    name: str = "scripted"
    delay: float = 0.0
    report_usage: bool = True
    context: int = 4096
    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context, num_output=128, is_chat_model=True, model_name=self.name
        )

    def answer(self, text: str) -> str:
        """Quotes the query line of a query-engine prompt, else the last line."""
        lines = [line for line in text.strip().splitlines() if line.strip()] or [""]
        line = next((x for x in lines if x.startswith("Query:")), lines[-1])
        return f"{self.name} says: {line.removeprefix('Query:').strip()[:60]}"

    def _usage(self, prompt: str, text: str) -> dict[str, Any]:
        if not self.report_usage:
            return {}
        return {
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}
        }

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self._enter()
        try:
            text = self.answer(prompt)
            return CompletionResponse(text=text, raw=self._usage(prompt, text))
        finally:
            self._leave()

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        text = self.answer(prompt)
        self.calls += 1

        def gen() -> CompletionResponseGen:
            so_far = ""
            pieces = _words(text)
            for i, word in enumerate(pieces):
                so_far += word
                raw = self._usage(prompt, text) if i == len(pieces) - 1 else None
                yield CompletionResponse(text=so_far, delta=word, raw=raw)

        return gen()

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        last = next((m.content or "" for m in reversed(messages) if m.role == "user"), "")
        response = self.complete(last, formatted=True)
        return ChatResponse(
            message=ChatMessage(role="assistant", content=response.text), raw=response.raw
        )

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        last = next((m.content or "" for m in reversed(messages) if m.role == "user"), "")
        pieces = self.stream_complete(last, formatted=True)

        def gen() -> ChatResponseGen:
            for piece in pieces:
                yield ChatResponse(
                    message=ChatMessage(role="assistant", content=piece.text),
                    delta=piece.delta,
                    raw=piece.raw,
                )

        return gen()

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self._enter(count=False)  # chat() below counts the call
        try:
            await asyncio.sleep(self.delay)
        finally:
            self._leave()
        return self.chat(messages, **kwargs)


class ScriptedToolLLM(_Counting, FunctionCallingLLM):
    """Calls tool `multiply` for "what is A times B", then answers from its result.

    Tool calls are ToolCallBlocks with ids ``<name>-call-<n>``; the last ones made are
    kept in `last_tool_calls` so tests can check they reach the caller unchanged.
    Usage is reported in ``additional_kwargs`` (prompt_tokens / completion_tokens).
    """

    name: str = "tooly"
    delay: float = 0.0
    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    seen_tools: list[str] = Field(default_factory=list)
    last_tool_calls: list[ToolSelection] = Field(default_factory=list)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=2048,
            num_output=64,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=self.name,
        )

    # -- the script -------------------------------------------------------------------
    def reply(self, messages: Sequence[ChatMessage], tools: Sequence[Any] = ()) -> ChatMessage:
        self.seen_tools = [t.metadata.name for t in tools]
        if messages and messages[-1].role == MessageRole.TOOL:
            return ChatMessage(role="assistant", content=f"The answer is {messages[-1].content}.")
        question = next((m.content or "" for m in reversed(messages) if m.role == "user"), "")
        match = re.search(r"(\d+) times (\d+)", question)
        if match and "multiply" in self.seen_tools:
            self.last_tool_calls = [
                ToolSelection(
                    tool_id=f"{self.name}-call-{self.calls}",
                    tool_name="multiply",
                    tool_kwargs={"a": int(match.group(1)), "b": int(match.group(2))},
                )
            ]
            return ChatMessage(
                role="assistant",
                blocks=[
                    TextBlock(text="Let me compute."),
                    *[
                        ToolCallBlock(
                            tool_call_id=s.tool_id, tool_name=s.tool_name, tool_kwargs=s.tool_kwargs
                        )
                        for s in self.last_tool_calls
                    ],
                ],
            )
        return ChatMessage(role="assistant", content=f"{self.name} answers: {question[-60:]}")

    def _response(self, message: ChatMessage, prompt_chars: int) -> ChatResponse:
        return ChatResponse(
            message=message,
            additional_kwargs={
                "prompt_tokens": prompt_chars // 5 + 1,
                "completion_tokens": len((message.content or "").split()) + 1,
            },
        )

    def _chunks(self, message: ChatMessage, prompt_chars: int) -> list[ChatResponse]:
        """Text word by word, then the tool calls on the last chunk (as providers do)."""
        text, out, so_far = message.content or "", [], ""
        for word in _words(text):
            so_far += word
            out.append(
                ChatResponse(message=ChatMessage(role="assistant", content=so_far), delta=word)
            )
        final = self._response(message, prompt_chars)
        final.delta = ""
        return [*out, final]

    # -- LlamaIndex API -----------------------------------------------------------------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self._enter()
        try:
            return self._response(
                self.reply(messages, kwargs.get("tools", ())),
                sum(len(m.content or "") for m in messages),
            )
        finally:
            self._leave()

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self._enter()
        try:
            await asyncio.sleep(self.delay)
            return self._response(
                self.reply(messages, kwargs.get("tools", ())),
                sum(len(m.content or "") for m in messages),
            )
        finally:
            self._leave()

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        self.calls += 1
        chunks = self._chunks(
            self.reply(messages, kwargs.get("tools", ())),
            sum(len(m.content or "") for m in messages),
        )
        return (chunk for chunk in chunks)  # a generator: LlamaIndex's callbacks expect one

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        self.calls += 1
        chunks = self._chunks(
            self.reply(messages, kwargs.get("tools", ())),
            sum(len(m.content or "") for m in messages),
        )

        async def gen() -> ChatResponseAsyncGen:
            for chunk in chunks:
                yield chunk

        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        response = self.chat([ChatMessage(role="user", content=prompt)])
        return CompletionResponse(
            text=response.message.content or "", additional_kwargs=response.additional_kwargs
        )

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return self.complete(prompt)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        text = self.complete(prompt).text
        return (r for r in [CompletionResponse(text=text, delta=text)])

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        text = self.complete(prompt).text

        async def gen() -> CompletionResponseAsyncGen:
            yield CompletionResponse(text=text, delta=text)

        return gen()

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: Any = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(
                ChatMessage(role="user", content=user_msg)
                if isinstance(user_msg, str)
                else user_msg
            )
        return {"messages": messages, "tools": list(tools), **kwargs}

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        calls = [
            ToolSelection(
                tool_id=b.tool_call_id or "",
                tool_name=b.tool_name,
                tool_kwargs=b.tool_kwargs if isinstance(b.tool_kwargs, dict) else {},
            )
            for b in response.message.blocks
            if isinstance(b, ToolCallBlock)
        ]
        if not calls and error_on_no_tool_call:
            raise ValueError("no tool call in the response")
        return calls

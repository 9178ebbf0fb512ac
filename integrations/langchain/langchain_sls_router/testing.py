"""Scripted chat models for tests and offline examples: real `BaseChatModel`
subclasses that answer by rule, like `langchain_core`'s fake chat models but able to
call tools.

They stand in for provider models offline. A tool-capable one calls a tool when the
prompt names it (or `tool_choice` forces one) and fills the arguments from the
prompt: numbers for numeric fields, the first quoted text for text fields. It cannot
understand a request; tests that need understanding are marked xfail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.messages.tool import tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import PrivateAttr


class ScriptedChatModel(BaseChatModel):
    """Answers `"<tag>: <reply>"`; `answers` maps a last human text to a fixed reply.
    `fail` makes every call raise, `fail_every=k` every k-th call (a flaky provider)."""

    tag: str = "scripted"
    answers: dict[str, str] = {}
    fail: bool = False
    fail_every: int = 0
    _calls: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"tag": self.tag}

    @property
    def calls(self) -> int:
        return self._calls

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(
            generations=[ChatGeneration(message=self._answer(messages, stop, kwargs))]
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._answer(messages, stop, kwargs)
        for word in re.findall(r"\S+\s*|\s+", message.text):
            yield ChatGenerationChunk(message=AIMessageChunk(word))
        chunks = [
            tool_call_chunk(
                name=c["name"], args=json.dumps(c["args"], ensure_ascii=False), id=c["id"], index=i
            )
            for i, c in enumerate(message.tool_calls)
        ]
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                "",
                tool_call_chunks=chunks,
                usage_metadata=message.usage_metadata,
                chunk_position="last",
            )
        )

    def _answer(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> AIMessage:
        self._calls += 1
        if self.fail or (self.fail_every and self._calls % self.fail_every == 0):
            raise ConnectionError(f"{self.tag} is down")
        last = messages[-1]
        calls = self._tool_calls(messages, kwargs.get("tools") or [], kwargs.get("tool_choice"))
        if calls:
            text = ""
        elif isinstance(last, ToolMessage):
            text = f"{self.tag}: the tool said {last.text}"
        else:
            human = _last_human(messages)
            text = self.answers.get(human) or f"{self.tag}: {_reply(human)}"
        for s in stop or []:
            text = text.split(s)[0] if s and s in text[1:] else text
        prompt_chars = sum(len(m.text) for m in messages)
        usage = {
            "input_tokens": prompt_chars // 4 + 1,
            "output_tokens": len(text) // 4 + 1,
            "total_tokens": prompt_chars // 4 + len(text) // 4 + 2,
        }
        return AIMessage(text, tool_calls=calls, usage_metadata=usage)

    def _tool_calls(
        self, messages: list[BaseMessage], tools: Sequence[dict[str, Any]], choice: Any
    ) -> list[Any]:
        if not tools or isinstance(messages[-1], ToolMessage):
            return []
        text = _last_human(messages)
        names = [t["function"]["name"] for t in tools]
        chosen = None
        if isinstance(choice, str) and choice in names:
            chosen = choice
        else:
            mentioned = [n for n in names if _mentions(text, n)]
            if mentioned:
                chosen = mentioned[0]
            elif choice in ("any", "required", True):
                chosen = names[0]
        if chosen is None:
            return []
        spec = tools[names.index(chosen)]["function"]
        args = _fill(spec.get("parameters") or {}, text)
        return [tool_call(name=chosen, args=args, id=f"call_{self._calls}_{chosen}")]


class ScriptedToolChatModel(ScriptedChatModel):
    """A scripted model that supports tool calling (it implements `bind_tools`)."""

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any):
        specs = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=specs, **kwargs)


def _last_human(messages: list[BaseMessage]) -> str:
    for message in reversed(messages):
        if message.type == "human":
            return message.text
    return messages[-1].text


def _reply(text: str) -> str:
    """A deterministic answer that depends on the question (not a real one)."""
    words = re.findall(r"\w+", text.lower())
    return "answer about " + (" ".join(words[:8]) or "nothing")


def _mentions(text: str, name: str) -> bool:
    if name in text:
        return True
    words = [w for w in name.lower().split("_") if len(w) > 3 and w not in {"function", "tool"}]
    return any(w in text.lower() for w in words)


def _fill(schema: dict[str, Any], text: str) -> dict[str, Any]:
    numbers = iter(re.findall(r"-?\d+(?:\.\d+)?", text))
    quoted = re.findall(r"'([^']+)'|\"([^\"]+)\"", text)
    strings = iter([a or b for a, b in quoted])
    args: dict[str, Any] = {}
    for field, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type") or next(
            (p.get("type") for p in prop.get("anyOf", []) if p.get("type") != "null"), "string"
        )
        if kind == "integer":
            args[field] = int(float(next(numbers, "0")))
        elif kind == "number":
            args[field] = float(next(numbers, "0"))
        elif kind == "boolean":
            args[field] = True
        elif kind == "array":
            args[field] = []
        elif kind == "object":
            args[field] = {}
        else:
            args[field] = next(strings, f"{field} of {_reply(text)}")
    return args

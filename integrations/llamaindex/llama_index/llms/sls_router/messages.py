"""Pure converters between LlamaIndex chat objects and the engine's plain dicts.

The engine speaks ``{"role", "content"}`` dicts, tool calls ``{"id", "name", "args"}``
and OpenAI-style tool specs (see `sls_router.types.Request`). Everything here is a
small function with no state, so each one is tested directly and the LLM and the
backend stay thin.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.tools.types import BaseTool, ToolMetadata, ToolOutput

from sls_router.errors import InvalidInputError

_TO_ENGINE_ROLE = {
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "system",
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.CHATBOT: "assistant",
    MessageRole.MODEL: "assistant",
    MessageRole.TOOL: "tool",
    MessageRole.FUNCTION: "tool",
}
_FROM_ENGINE_ROLE = {
    "system": MessageRole.SYSTEM,
    "user": MessageRole.USER,
    "assistant": MessageRole.ASSISTANT,
    "tool": MessageRole.TOOL,
}
QUERY_KEY = "sls_query"
"""Key, in a user message's additional_kwargs, of the text to cache and route on."""
# blocks that carry nothing the next model needs: reasoning traces and cache markers
_SKIPPED_BLOCKS = (ThinkingBlock, CachePoint)


# -- messages -------------------------------------------------------------------------
def to_engine_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """LlamaIndex messages -> engine dicts; refuses what the router cannot route."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InvalidInputError(
            f"messages must be a list of ChatMessage, got "
            f"{type(messages).__name__}; use complete(prompt) for a string."
        )
    if not messages:
        raise InvalidInputError(
            "chat() got an empty message list; pass at least one "
            "ChatMessage(role='user', content='...')."
        )
    return [to_engine_message(m, i) for i, m in enumerate(messages)]


def to_engine_message(message: ChatMessage, index: int = 0) -> dict[str, Any]:
    if not isinstance(message, ChatMessage):
        raise InvalidInputError(
            f"message {index} is a {type(message).__name__}; pass "
            "llama_index.core.llms.ChatMessage objects."
        )
    role = _TO_ENGINE_ROLE.get(MessageRole(message.role))
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolCallBlock):
            calls.append(_call_from_block(block))
        elif not isinstance(block, _SKIPPED_BLOCKS):
            kind = getattr(block, "block_type", type(block).__name__)
            raise InvalidInputError(
                f"message {index} holds a {kind!r} block; sls-router routes and caches text "
                "only. Describe the content in text, or call a multimodal model directly."
            )
    calls.extend(_legacy_tool_calls(message.additional_kwargs.get("tool_calls")))
    out: dict[str, Any] = {"role": role, "content": "\n".join(texts)}
    if calls:
        if role != "assistant":
            raise InvalidInputError(
                f"message {index} ({role}) carries tool calls; only assistant messages may."
            )
        out["tool_calls"] = calls
    if role == "tool":
        call_id = message.additional_kwargs.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidInputError(
                f"message {index} is a tool result without a tool call id; pass "
                "ChatMessage(role='tool', content=..., additional_kwargs={'tool_call_id': id}) "
                "with the id of the assistant's tool call it answers."
            )
        out["tool_call_id"] = call_id
    return out


def from_engine_messages(messages: Sequence[Mapping[str, Any]]) -> list[ChatMessage]:
    return [from_engine_message(m) for m in messages]


def from_engine_message(message: Mapping[str, Any]) -> ChatMessage:
    """Engine dict -> ChatMessage: tool calls as ToolCallBlocks, the core's own format."""
    role = _FROM_ENGINE_ROLE[message["role"]]
    content = message.get("content") or ""
    calls = message.get("tool_calls") or []
    if role == MessageRole.TOOL:
        return ChatMessage(
            role=role, content=content, additional_kwargs={"tool_call_id": message["tool_call_id"]}
        )
    if calls:
        blocks: list[Any] = [TextBlock(text=content)] if content else []
        blocks.extend(tool_calls_to_blocks(calls))
        return ChatMessage(role=role, blocks=blocks)
    return ChatMessage(role=role, content=content)


def mark_query(messages: list[ChatMessage], query: Any) -> list[ChatMessage]:
    """Mark `query` on the last user message that contains it (a copy; never sent on)."""
    if not isinstance(query, str) or not query.strip():
        return messages
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if message.role == MessageRole.USER:
            if query not in (message.content or ""):
                return messages
            marked = message.model_copy(
                update={"additional_kwargs": {**message.additional_kwargs, QUERY_KEY: query}}
            )
            return [*messages[:i], marked, *messages[i + 1 :]]
    return messages


def marked_query(messages: Sequence[ChatMessage]) -> str | None:
    """The query marked on the last user message, if any."""
    for message in reversed(messages):
        if message.role == MessageRole.USER:
            query = message.additional_kwargs.get(QUERY_KEY)
            return query if isinstance(query, str) and query.strip() else None
    return None


# -- tool calls -----------------------------------------------------------------------
def tool_calls_to_blocks(calls: Sequence[Mapping[str, Any]]) -> list[ToolCallBlock]:
    return [
        ToolCallBlock(
            tool_call_id=c.get("id"), tool_name=c["name"], tool_kwargs=dict(c.get("args") or {})
        )
        for c in calls
    ]


def tool_calls_from_message(message: ChatMessage) -> list[dict[str, Any]]:
    """Every tool call a message carries, as engine dicts."""
    calls = [_call_from_block(b) for b in message.blocks if isinstance(b, ToolCallBlock)]
    return calls + _legacy_tool_calls(message.additional_kwargs.get("tool_calls"))


def selections_to_tool_calls(selections: Sequence[ToolSelection]) -> list[dict[str, Any]]:
    return [
        {"id": s.tool_id or None, "name": s.tool_name, "args": dict(s.tool_kwargs)}
        for s in selections
    ]


def tool_calls_to_selections(calls: Sequence[Mapping[str, Any]]) -> list[ToolSelection]:
    return [
        ToolSelection(
            tool_id=c.get("id") or "", tool_name=c["name"], tool_kwargs=dict(c.get("args") or {})
        )
        for c in calls
    ]


def with_call_ids(
    calls: Sequence[Mapping[str, Any]] | None, request_id: str
) -> list[dict[str, Any]]:
    """Give id-less calls a stable id so a tool result can answer them; keep given ids."""
    return [
        {**c, "id": c.get("id") or f"call_{request_id[:12]}_{i}"} for i, c in enumerate(calls or [])
    ]


def _call_from_block(block: ToolCallBlock) -> dict[str, Any]:
    return {
        "id": block.tool_call_id,
        "name": block.tool_name,
        "args": _parse_args(block.tool_kwargs),
    }


def _legacy_tool_calls(raw: Any) -> list[dict[str, Any]]:
    """OpenAI-shaped calls kept in additional_kwargs by older integrations."""
    if not raw:
        return []
    calls = []
    for item in raw if isinstance(raw, Sequence) and not isinstance(raw, str) else [raw]:
        if isinstance(item, ToolSelection):
            calls.append(
                {"id": item.tool_id, "name": item.tool_name, "args": dict(item.tool_kwargs)}
            )
            continue
        function = _get(item, "function")
        name = _get(function, "name") if function is not None else _get(item, "name")
        if not isinstance(name, str):
            raise InvalidInputError(
                f"cannot read tool call {item!r}; put tool calls in "
                "ToolCallBlock blocks of the assistant message."
            )
        args = _get(function, "arguments") if function is not None else _get(item, "args")
        calls.append({"id": _get(item, "id"), "name": name, "args": _parse_args(args)})
    return calls


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def _parse_args(args: Any) -> dict[str, Any]:
    """Tool arguments as a dict; partial or broken JSON (mid-stream) reads as {}."""
    if isinstance(args, Mapping):
        return dict(args)
    if isinstance(args, str) and args.strip():
        try:
            parsed = json.loads(args)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


# -- tool specs -----------------------------------------------------------------------
def tools_to_specs(tools: Sequence[Any] | None) -> list[dict[str, Any]]:
    """LlamaIndex tools -> OpenAI function specs, what the engine's Request carries."""
    specs = []
    for tool in tools or []:
        metadata = getattr(tool, "metadata", None)
        if not isinstance(metadata, ToolMetadata) or not metadata.name:
            raise InvalidInputError(
                f"{tool!r} is not a LlamaIndex tool with a name; pass "
                "FunctionTool / BaseTool objects."
            )
        specs.append(metadata.to_openai_tool(skip_length_check=True))
    return specs


@dataclass
class _SpecToolMetadata(ToolMetadata):
    """Tool metadata whose parameters are a given JSON schema (not a pydantic model)."""

    parameters: dict[str, Any] = field(default_factory=dict)

    def get_parameters_dict(self) -> dict:
        return dict(self.parameters)

    @property
    def fn_schema_str(self) -> str:
        return json.dumps(self.parameters, ensure_ascii=False)


class SpecTool(BaseTool):
    """A tool rebuilt from its spec: what a wrapped LLM needs to offer it to the model.

    The router calls models, never tools (the agent runs them), so it cannot be called.
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        function = spec.get("function", spec)
        self._metadata = _SpecToolMetadata(
            description=function.get("description") or "",
            name=function["name"],
            fn_schema=None,
            parameters=dict(function.get("parameters") or {}),
        )

    @property
    def metadata(self) -> ToolMetadata:
        return self._metadata

    def __call__(self, input: Any) -> ToolOutput:  # noqa: A002 (BaseTool's signature)
        raise InvalidInputError(
            f"tool {self._metadata.name!r} only describes a tool to a "
            "model; run the original tool object instead."
        )


def specs_to_tools(specs: Sequence[Mapping[str, Any]] | None) -> list[SpecTool]:
    return [SpecTool(s) for s in specs or []]

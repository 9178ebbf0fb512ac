"""LangChain messages <-> the engine's plain message dicts, and answers -> AIMessages.

Pure functions, tested one by one. The engine routes and caches on text, so content
blocks other than text are refused with a clear error rather than silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import tool_call, tool_call_chunk

from sls_router import InvalidInputError, Response
from sls_router.metadata import routing_metadata
from sls_router.types import check_tool_calls

# content blocks that only restate an AIMessage's tool_calls (Anthropic style)
_TOOL_CALL_BLOCKS = {"tool_use", "tool_call", "function_call"}
_ROLE_OF = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
_CHAT_ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "system": "system",
    "developer": "system",
}


def to_engine_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as engine dicts: role, text content, tool calls, tool-call ids."""
    if not messages:
        raise InvalidInputError("the message list is empty: pass at least one HumanMessage.")
    return [_to_engine_message(i, m) for i, m in enumerate(messages)]


def _to_engine_message(index: int, message: BaseMessage) -> dict[str, Any]:
    if isinstance(message, ChatMessage):
        role = _CHAT_ROLES.get(message.role)
    else:
        role = _ROLE_OF.get(message.type) if isinstance(message, BaseMessage) else None
    if role is None:
        kind = type(message).__name__
        raise InvalidInputError(
            f"message {index} is a {kind}, which sls-router cannot route; "
            "pass System, Human, AI or Tool messages."
        )
    out: dict[str, Any] = {"role": role, "content": content_text(index, message.content)}
    if message.name:
        out["name"] = message.name
    if isinstance(message, AIMessage) and message.tool_calls:
        out["tool_calls"] = [
            {"id": c.get("id"), "name": c["name"], "args": c["args"]} for c in message.tool_calls
        ]
    if isinstance(message, ToolMessage):
        out["tool_call_id"] = message.tool_call_id
        if message.status == "error":
            out["status"] = "error"
    return out


def content_text(index: int, content: str | list[Any]) -> str:
    """The text of a message's content; text blocks are joined, other media refused."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") in _TOOL_CALL_BLOCKS:
            continue
        else:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise InvalidInputError(
                f"message {index} has a {kind!r} content block; sls-router "
                "routes and caches text only: send text content."
            )
    return "".join(parts)


def to_langchain_messages(messages: Sequence[dict[str, Any]]) -> list[BaseMessage]:
    """Engine dicts back to LangChain messages, for the wrapped chat model."""
    out: list[BaseMessage] = []
    for m in messages:
        name = m.get("name")
        if m["role"] == "system":
            out.append(SystemMessage(m["content"], name=name))
        elif m["role"] == "user":
            out.append(HumanMessage(m["content"], name=name))
        elif m["role"] == "assistant":
            calls = [
                tool_call(name=c["name"], args=c["args"], id=c["id"])
                for c in m.get("tool_calls") or []
            ]
            out.append(AIMessage(m["content"], tool_calls=calls, name=name))
        else:
            out.append(
                ToolMessage(
                    m["content"],
                    tool_call_id=m["tool_call_id"],
                    name=name,
                    status=m.get("status", "success"),
                )
            )
    return out


def tool_calls_of(message: AIMessage) -> list[dict[str, Any]] | None:
    """The tool calls of a wrapped model's answer, unchanged, in the engine's form."""
    if not message.tool_calls:
        return None
    return check_tool_calls(
        [{"id": c.get("id"), "name": c["name"], "args": c["args"]} for c in message.tool_calls]
    )


def response_metadata(response: Response) -> dict[str, Any]:
    """The engine's routing metadata (`sls_router.metadata`), plus the keys LangChain's
    own tooling reads for the model and the cost: `model_name` and `total_cost`."""
    return {
        "model_name": response.model,
        "total_cost": response.cost_usd,
        **routing_metadata(response),
    }


def usage_metadata(response: Response) -> dict[str, int]:
    """Tokens only: LangChain sums usage across messages and chunks and accepts integers
    there, so the USD cost goes to `response_metadata['total_cost']`."""
    usage = response.usage
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def to_ai_message(response: Response) -> AIMessage:
    calls = [
        tool_call(name=c["name"], args=c["args"], id=c["id"]) for c in response.tool_calls or []
    ]
    return AIMessage(
        response.text,
        tool_calls=calls,
        usage_metadata=usage_metadata(response),
        response_metadata=response_metadata(response),
    )


def final_chunk(response: Response) -> AIMessageChunk:
    """The last chunk of a stream: no text, the tool calls, usage and metadata (counted once)."""
    chunks = [
        tool_call_chunk(
            name=c["name"], args=json.dumps(c["args"], ensure_ascii=False), id=c["id"], index=i
        )
        for i, c in enumerate(response.tool_calls or [])
    ]
    return AIMessageChunk(
        "",
        tool_call_chunks=chunks,
        usage_metadata=usage_metadata(response),
        response_metadata=response_metadata(response),
        chunk_position="last",
    )

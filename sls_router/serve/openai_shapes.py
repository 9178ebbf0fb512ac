"""OpenAI's chat-completions shapes <-> the engine's Request and Response.

Pure functions, tested one by one: a request body (already parsed JSON) becomes a
`Request`, a `Response` becomes a completion object or the chunks of a stream, an
error becomes OpenAI's error object. Every malformed field raises InvalidInputError
naming the field, which the app answers with 400.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInputError
from ..metadata import routing_metadata, thread_of
from ..types import Request, Response

EXTRA_FIELD = "sls"
"""The completion's extra field holding the routing facts (sls_router.metadata's keys)."""

# OpenAI's role names -> the engine's ("developer" is the newer name of "system")
_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}


@dataclass(frozen=True)
class ChatCall:
    """A parsed chat-completions body: the engine's request and how to answer it."""

    request: Request
    model: str
    stream: bool
    include_usage: bool


def parse_chat_request(body: Any, *, namespace: str, route_name: str) -> ChatCall:
    """A chat-completions body as a Request for `namespace`; `model` equal to
    `route_name` routes, any other name pins that model (checked by the router)."""
    if not isinstance(body, Mapping):
        raise InvalidInputError(
            "the body must be a JSON object with model and messages, e.g. "
            '{"model": "sls-router", "messages": [{"role": "user", "content": "hi"}]}.'
        )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInputError(f"model: pass a string ({route_name!r} to route, or a model).")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidInputError("messages: pass a non-empty list of {role, content} objects.")
    params: dict[str, Any] = {}
    temperature = body.get("temperature")
    if temperature is not None:
        params["temperature"] = _number(temperature, "temperature", 0.0, 2.0)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise InvalidInputError(f"max_tokens: {max_tokens!r}; pass a whole number >= 1.")
        params["max_tokens"] = max_tokens
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 4:
            raise InvalidInputError("stop: pass a string or a list of at most 4 strings.")
        if stop:
            params["stop"] = stop
    n = body.get("n")
    if n not in (None, 1):
        raise InvalidInputError(f"n: {n!r}; this server returns one choice: pass n = 1.")
    tools = body.get("tools")
    if tools is not None:
        tools = _tools(tools)
    tool_choice = body.get("tool_choice")
    if tool_choice is not None:
        if not isinstance(tool_choice, (str, Mapping)):
            raise InvalidInputError(
                "tool_choice: pass 'auto', 'none', 'required' or "
                '{"type": "function", "function": {"name": ...}}.'
            )
        if tool_choice != "none" and tools:
            params["tool_choice"] = tool_choice
        if tool_choice == "none":
            tools = None  # the model may not call any: route it as a plain request
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidInputError(f"stream: {stream!r}; pass true or false.")
    options = body.get("stream_options") or {}
    if not isinstance(options, Mapping) or not isinstance(
        options.get("include_usage", False), bool
    ):
        raise InvalidInputError('stream_options: pass {"include_usage": true|false}.')
    task = body.get("sls_task")
    if task is not None and not isinstance(task, str):
        raise InvalidInputError("sls_task: pass a task tag such as 'logparsing/HDFS'.")
    metadata = body.get("metadata")  # OpenAI's tags of a call: a thread_id names the chat
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InvalidInputError('metadata: pass an object of strings, e.g. {"thread_id": "t1"}.')
    request = Request(
        messages=[_engine_message(i, m) for i, m in enumerate(messages)],
        task=task,
        namespace=namespace,
        params=params,
        tools=tools or None,
        model=None if model == route_name else model,
        thread=thread_of(metadata),
    )
    return ChatCall(request, model, stream, bool(options.get("include_usage", False)))


def _number(value: Any, name: str, lo: float, hi: float) -> float:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not lo <= value <= hi
    ):
        raise InvalidInputError(f"{name}: {value!r}; pass a number in [{lo:g}, {hi:g}].")
    return float(value)


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidInputError("tools: pass a list of {type: 'function', function: {...}}.")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if (
            not isinstance(tool, Mapping)
            or tool.get("type", "function") != "function"
            or not isinstance(function, Mapping)
            or not isinstance(function.get("name"), str)
        ):
            raise InvalidInputError(
                f"tools[{i}]: pass {{'type': 'function', 'function': {{'name': ..., "
                "'description': ..., 'parameters': {...}}}."
            )
    return [dict(t) for t in tools]


def _engine_message(index: int, message: Any) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise InvalidInputError(f"messages[{index}]: pass an object with role and content.")
    role = _ROLES.get(message.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise InvalidInputError(
            f"messages[{index}].role: {message.get('role')!r}; use system, developer, "
            "user, assistant or tool."
        )
    out: dict[str, Any] = {"role": role, "content": _content(index, message.get("content"))}
    if isinstance(message.get("name"), str):
        out["name"] = message["name"]
    calls = message.get("tool_calls")
    if calls:
        if role != "assistant" or not isinstance(calls, list):
            raise InvalidInputError(
                f"messages[{index}].tool_calls: only an assistant turn carries a list of them."
            )
        out["tool_calls"] = [_engine_tool_call(index, c) for c in calls]
    if role == "tool":
        if not isinstance(message.get("tool_call_id"), str):
            raise InvalidInputError(
                f"messages[{index}]: a tool turn needs the tool_call_id it answers."
            )
        out["tool_call_id"] = message["tool_call_id"]
    return out


def _content(index: int, content: Any) -> str:
    """Text content: a string, or a list of text parts (other media are refused)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
                    continue
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise InvalidInputError(
                f"messages[{index}].content has a {kind!r} part; sls-router routes and "
                "caches text only: send text parts."
            )
        return "".join(parts)
    raise InvalidInputError(
        f"messages[{index}].content is a {type(content).__name__}; pass a string or a "
        "list of text parts."
    )


def _engine_tool_call(index: int, call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise InvalidInputError(
            f"messages[{index}].tool_calls: pass {{'id', 'type': 'function', "
            "'function': {'name', 'arguments'}}."
        )
    arguments = function.get("arguments") or "{}"
    try:
        args = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        args = None
    if not isinstance(args, Mapping):
        raise InvalidInputError(
            f"messages[{index}].tool_calls: arguments of {function['name']!r} must be a "
            "JSON object (as a string)."
        )
    return {"id": call.get("id"), "name": function["name"], "args": dict(args)}


# -- engine -> OpenAI ---------------------------------------------------------------------
def openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The engine's message dicts in OpenAI's form (for OpenAI-compatible backends)."""
    out = []
    for m in messages:
        message: dict[str, Any] = {"role": m["role"], "content": m["content"]}
        if m.get("name"):
            message["name"] = m["name"]
        if m.get("tool_calls"):
            message["tool_calls"] = openai_tool_calls(m["tool_calls"])
            message["content"] = m["content"] or None
        if m["role"] == "tool":
            message["tool_call_id"] = m["tool_call_id"]
        out.append(message)
    return out


def openai_tool_calls(calls: list[dict[str, Any]], *, indexed: bool = False) -> list[dict]:
    """Engine tool calls as OpenAI's; `indexed` adds each one's index (stream deltas)."""
    return [
        {
            **({"index": i} if indexed else {}),
            "id": c.get("id") or f"call_{i}",
            "type": "function",
            "function": {"name": c["name"], "arguments": json.dumps(c["args"])},
        }
        for i, c in enumerate(calls)
    ]


def usage_of(response: Response) -> dict[str, int]:
    usage = response.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion_id(response_or_id: Response | str) -> str:
    request_id = response_or_id if isinstance(response_or_id, str) else response_or_id.request_id
    return f"chatcmpl-{request_id}"


def chat_completion(response: Response, created: int | None = None) -> dict[str, Any]:
    """The chat.completion object of a Response, its routing facts under `sls`."""
    message: dict[str, Any] = {"role": "assistant", "content": response.text}
    if response.tool_calls:
        message["tool_calls"] = openai_tool_calls(response.tool_calls)
        message["content"] = response.text or None
    return {
        "id": completion_id(response),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": response.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if response.tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": usage_of(response),
        EXTRA_FIELD: routing_metadata(response),
    }


def chunk(
    request_id: str,
    model: str,
    created: int,
    delta: dict[str, Any] | None,
    *,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
    extra: dict[str, Any] | None = None,
    include_usage: bool = False,
) -> dict[str, Any]:
    """One chat.completion.chunk; `delta=None` gives the usage chunk (no choices)."""
    out: dict[str, Any] = {
        "id": completion_id(request_id),
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if include_usage:
        out["usage"] = usage
    if extra is not None:
        out[EXTRA_FIELD] = extra
    return out


def final_chunks(
    response: Response, model: str, created: int, include_usage: bool
) -> list[dict[str, Any]]:
    """What closes a stream: tool calls (if any), the finish reason with the routing
    facts, and the usage chunk when the client asked for it."""
    out = []
    if response.tool_calls:
        calls = openai_tool_calls(response.tool_calls, indexed=True)
        out.append(
            chunk(
                response.request_id,
                model,
                created,
                {"tool_calls": calls},
                include_usage=include_usage,
            )
        )
    out.append(
        chunk(
            response.request_id,
            response.model,
            created,
            {},
            finish_reason="tool_calls" if response.tool_calls else "stop",
            extra=routing_metadata(response),
            include_usage=include_usage,
        )
    )
    if include_usage:
        out.append(
            chunk(
                response.request_id,
                response.model,
                created,
                None,
                usage=usage_of(response),
                include_usage=True,
            )
        )
    return out


def error_body(
    message: str, kind: str, *, code: str | None = None, param: str | None = None, **extra: Any
) -> dict[str, Any]:
    """OpenAI's error object: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code, **extra}}


def routing_headers(response: Response) -> dict[str, str]:
    """The routing facts as `x-sls-*` response headers."""
    return {
        "x-sls-model": response.model,
        "x-sls-cache-hit": "true" if response.cache_hit else "false",
        "x-sls-cost-usd": f"{response.cost_usd:.10g}",
        "x-sls-predicted-quality": f"{response.predicted_quality:.4f}",
        "x-sls-request-id": response.request_id,
    }

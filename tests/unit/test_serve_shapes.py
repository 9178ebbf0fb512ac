"""OpenAI's chat-completions shapes <-> Request and Response, function by function."""

from __future__ import annotations

import json

import pytest

from sls_router import Request, Response, Usage
from sls_router.errors import InvalidInputError
from sls_router.serve.openai_shapes import (
    chat_completion,
    final_chunks,
    openai_messages,
    parse_chat_request,
    routing_headers,
)


def _parse(**body):
    body = {"model": "sls-router", "messages": [{"role": "user", "content": "hi"}], **body}
    return parse_chat_request(body, namespace="t", route_name="sls-router")


def test_a_full_request_becomes_the_engines_request():
    call = _parse(
        messages=[
            {"role": "developer", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "weather "},
                    {"type": "text", "text": "in Oslo"},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "w", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
        tools=[{"type": "function", "function": {"name": "w", "parameters": {}}}],
        tool_choice="auto",
        temperature=0.2,
        max_completion_tokens=50,
        stop="END",
        stream=True,
        stream_options={"include_usage": True},
        sls_task="weather/oslo",
        metadata={"thread_id": "chat-42"},
        user="someone",  # unknown fields are ignored, as OpenAI-compatible servers do
    )
    r = call.request
    assert call.stream and call.include_usage and r.model is None and r.namespace == "t"
    assert [m["role"] for m in r.messages] == ["system", "user", "assistant", "tool"]
    assert r.messages[1]["content"] == "weather in Oslo"
    assert r.messages[2]["tool_calls"] == [{"id": "c1", "name": "w", "args": {"city": "Oslo"}}]
    assert r.params == {
        "temperature": 0.2,
        "max_tokens": 50,
        "stop": ["END"],
        "tool_choice": "auto",
    }
    assert r.task == "weather/oslo" and r.tools[0]["function"]["name"] == "w"
    assert r.thread == "chat-42"  # a re-ask in it is heard (reask.py)
    assert openai_messages(r.messages)[2]["tool_calls"][0]["function"] == {
        "name": "w",
        "arguments": '{"city": "Oslo"}',
    }


def test_a_model_name_pins_and_tool_choice_none_drops_the_tools():
    call = _parse(
        model="llama-2-7b",
        tools=[{"type": "function", "function": {"name": "w"}}],
        tool_choice="none",
    )
    assert call.request.model == "llama-2-7b" and call.request.tools is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": []}, "messages"),
        ({"temperature": 3}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": [1]}, "stop"),
        ({"n": 2}, "n"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0]"),
        ({"tool_choice": 3}, "tool_choice"),
        ({"stream_options": {"include_usage": "yes"}}, "stream_options"),
        ({"metadata": ["thread_id"]}, "metadata"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        ({"messages": [{"role": "user", "content": "x", "tool_calls": [{}]}]}, "tool_calls"),
    ],
)
def test_a_malformed_field_is_named(body, field):
    with pytest.raises(InvalidInputError, match=field.replace("[", r"\[").replace("]", r"\]")):
        _parse(**body)


def _response(**fields) -> Response:
    base = dict(
        text="answer",
        model="m",
        cache_hit=False,
        usage=Usage(10, 3),
        cost_usd=1e-5,
        latency_s=0.5,
        predicted_quality=0.8,
        request_id="rid",
        tried=("x", "m"),
    )
    return Response(**{**base, **fields})


def test_a_response_becomes_a_chat_completion_with_the_routing_facts():
    out = chat_completion(_response(), created=7)
    assert out["id"] == "chatcmpl-rid" and out["created"] == 7 and out["model"] == "m"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "answer"}
    assert out["usage"] == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    assert out["sls"]["sls_tried"] == ["x", "m"] and out["sls"]["sls_request_id"] == "rid"
    assert routing_headers(_response())["x-sls-cache-hit"] == "false"
    json.dumps(out)  # JSON-safe


def test_tool_calls_in_a_completion_and_at_the_end_of_a_stream():
    calls = [{"id": "c1", "name": "w", "args": {"city": "Oslo"}}]
    out = chat_completion(_response(text="", tool_calls=calls))
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["choices"][0]["message"]["content"] is None
    chunks = final_chunks(_response(text="", tool_calls=calls), "sls-router", 1, True)
    assert chunks[0]["choices"][0]["delta"]["tool_calls"][0]["index"] == 0
    assert chunks[1]["choices"][0]["finish_reason"] == "tool_calls" and "sls" in chunks[1]
    assert chunks[2]["choices"] == [] and chunks[2]["usage"]["total_tokens"] == 13
    assert all(c["usage"] is None for c in chunks[:2])
    assert "usage" not in final_chunks(_response(), "sls-router", 1, False)[0]


def test_request_model_rejects_a_non_string():
    with pytest.raises(InvalidInputError, match="model"):
        Request(prompt="x", model="")

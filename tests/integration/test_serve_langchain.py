"""`sls-router serve` against LangChain's ChatOpenAI(base_url=...): invoke, stream,
bind_tools (a real client written elsewhere)."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from serve_harness import prompts, start, write_pool


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    running = start(write_pool(tmp_path_factory.mktemp("serve-lc"), tenants=False))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def chat(running):
    return ChatOpenAI(
        base_url=running.base_url, api_key="any", model="sls-router", max_retries=0, temperature=0
    )


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_invoke_returns_the_answer_with_usage_and_the_model_used(chat):
    [prompt] = prompts(1)
    message = chat.invoke([HumanMessage(prompt)])
    assert message.content and message.usage_metadata["output_tokens"] > 0
    assert message.response_metadata["model_name"] in {
        "llama-2-7b",
        "mixtral-8x7b",
        "j2-ultra",
        "tool-model",
    }
    assert message.response_metadata["finish_reason"] == "stop"


def test_stream_joins_to_the_same_text_with_usage_once(chat):
    [prompt] = prompts(1, skip=1)
    chunks = list(chat.stream(prompt, stream_usage=True))  # a fresh answer from a model
    merged = chunks[0]
    for part in chunks[1:]:
        merged += part
    assert sum(1 for c in chunks if c.usage_metadata) == 1 and len(chunks) > 2
    assert merged.usage_metadata["output_tokens"] > 0
    cached = chat.invoke(prompt)  # the same request again: the cache's copy
    assert cached.content == merged.content and cached.usage_metadata["output_tokens"] == 0


def test_bind_tools_calls_the_tool_and_reads_its_result(chat):
    bound = chat.bind_tools([get_weather])
    question = HumanMessage("What is the weather in 'Lima'? Use get_weather.")
    first = bound.invoke([question])
    [call] = first.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "Lima"}
    result = ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])
    answer = bound.invoke([question, first, result])
    assert "sunny in Lima" in answer.content
    streamed = list(bound.stream([question]))
    merged = streamed[0]
    for part in streamed[1:]:
        merged += part
    assert [c["name"] for c in merged.tool_calls] == ["get_weather"]

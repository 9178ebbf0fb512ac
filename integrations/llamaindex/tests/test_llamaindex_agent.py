"""Tool calling: FunctionAgent loops, chat_with_tools and streaming with tool calls."""

from __future__ import annotations

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.tools import FunctionTool
from llama_index.llms.sls_router import SLSRouteEvent

# llama-index's workflows inspect agents with inspect.getmembers, which trips pydantic's
# deprecation warnings on every run; they are not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def _tool() -> FunctionTool:
    return FunctionTool.from_defaults(fn=multiply)


@pytest.mark.asyncio
@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent_tool_loop(li_tool_llm, li_tooly, li_small, li_events, streaming):
    agent = FunctionAgent(
        tools=[_tool()],
        llm=li_tool_llm,
        streaming=streaming,
        system_prompt="You are a careful calculator.",
    )
    for _ in range(2):  # requests with tools are never cached: the model runs again
        handler = agent.run(user_msg="What is 6 times 7?")
        results = [ev async for ev in handler.stream_events() if isinstance(ev, ToolCallResult)]
        answer = await handler
        assert "42" in str(answer)
        made = li_tooly.last_tool_calls[0]  # what the chosen model produced ...
        assert [(r.tool_id, r.tool_name, r.tool_kwargs) for r in results] == [
            (made.tool_id, made.tool_name, made.tool_kwargs)
        ]  # ... reached the agent unchanged
        assert results[0].tool_output.content == "42"
    routes = li_events.of(SLSRouteEvent)
    assert len(routes) == 4 and {e.model for e in routes} == {"tooly"}  # tools -> tool models
    assert not any(e.cache_hit for e in routes)
    assert li_tooly.seen_tools == ["multiply"] and li_small.calls == 0


def test_chat_with_tools_returns_the_models_calls(li_tool_llm, li_tooly):
    response = li_tool_llm.chat_with_tools([_tool()], user_msg="What is 3 times 5?")
    selections = li_tool_llm.get_tool_calls_from_response(response)
    assert selections == li_tooly.last_tool_calls
    assert response.additional_kwargs["sls_model"] == "tooly"
    assert response.message.content == "Let me compute."
    assert response.raw["usage"]["prompt_tokens"] > 0  # reported in additional_kwargs upstream


def test_predict_and_call_runs_the_tool(li_tool_llm):
    output = li_tool_llm.predict_and_call([_tool()], user_msg="What is 4 times 5?")
    assert output.response == "20"


def test_stream_chat_with_tools_ends_with_the_tool_calls(li_tool_llm, li_tooly):
    chunks = list(li_tool_llm.stream_chat_with_tools([_tool()], user_msg="What is 8 times 9?"))
    assert "".join(c.delta or "" for c in chunks) == "Let me compute."
    final = li_tool_llm.get_tool_calls_from_response(chunks[-1])
    assert final == li_tooly.last_tool_calls
    assert li_tool_llm.get_tool_calls_from_response(chunks[0], error_on_no_tool_call=False) == []


@pytest.mark.asyncio
async def test_astream_chat_with_tools_ends_with_the_tool_calls(li_tool_llm, li_tooly):
    stream = await li_tool_llm.astream_chat_with_tools([_tool()], user_msg="What is 2 times 21?")
    chunks = [c async for c in stream]
    assert li_tool_llm.get_tool_calls_from_response(chunks[-1]) == li_tooly.last_tool_calls
    assert chunks[-1].additional_kwargs["sls_model"] == "tooly"


def test_text_requests_may_use_any_model_tool_requests_only_tool_models(li_tool_llm):
    li_tool_llm.chat_with_tools([_tool()], user_msg="What is 2 times 2?")
    plain = li_tool_llm.chat_with_tools([], user_msg="Say hello.")  # no tools bound: plain chat
    assert plain.additional_kwargs["sls_model"] in {"small", "tooly"}
    assert li_tool_llm.chat_with_tools([], user_msg="Say hello.").additional_kwargs["sls_cache_hit"]

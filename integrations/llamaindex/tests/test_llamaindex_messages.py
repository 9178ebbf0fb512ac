"""The pure converters (messages, tool calls, tool specs, usage), tested one by one."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.tools import FunctionTool
from llama_index.llms.sls_router.backend import estimate_usage, read_usage
from llama_index.llms.sls_router.messages import (
    QUERY_KEY,
    from_engine_message,
    from_engine_messages,
    mark_query,
    marked_query,
    specs_to_tools,
    to_engine_message,
    to_engine_messages,
    tool_calls_from_message,
    tools_to_specs,
    with_call_ids,
)

from sls_router import InvalidInputError, Request
from sls_router.types import CHARS_PER_TOKEN, check_tool_calls


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def test_roles_map_onto_the_four_engine_roles():
    messages = [
        ChatMessage(role=MessageRole.DEVELOPER, content="be brief"),
        ChatMessage(role="user", content="hi"),
        ChatMessage(role=MessageRole.CHATBOT, content="hello"),
    ]
    assert to_engine_messages(messages) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]


def test_tool_call_blocks_round_trip_unchanged():
    message = ChatMessage(
        role="assistant",
        blocks=[
            TextBlock(text="computing"),
            ToolCallBlock(tool_call_id="c-7", tool_name="multiply", tool_kwargs={"a": 6, "b": 7}),
        ],
    )
    engine = to_engine_message(message)
    assert engine["tool_calls"] == [{"id": "c-7", "name": "multiply", "args": {"a": 6, "b": 7}}]
    back = from_engine_message(engine)
    assert back.content == "computing"
    assert tool_calls_from_message(back) == engine["tool_calls"]


def test_thinking_blocks_are_dropped_and_text_joined_like_llamaindex():
    message = ChatMessage(
        role="assistant",
        blocks=[ThinkingBlock(content="hmm"), TextBlock(text="a"), TextBlock(text="b")],
    )
    assert to_engine_message(message)["content"] == message.content == "a\nb"


def test_tool_result_needs_its_call_id():
    with pytest.raises(InvalidInputError, match="tool_call_id"):
        to_engine_message(ChatMessage(role="tool", content="42"))
    engine = to_engine_message(
        ChatMessage(role="tool", content="42", additional_kwargs={"tool_call_id": "c-7"})
    )
    assert engine == {"role": "tool", "content": "42", "tool_call_id": "c-7"}
    assert from_engine_message(engine).additional_kwargs == {"tool_call_id": "c-7"}


def test_images_and_empty_lists_are_refused_with_what_to_do():
    image = ChatMessage(
        role="user",
        blocks=[TextBlock(text="what is this?"), ImageBlock(url="http://example.com/a.png")],
    )
    with pytest.raises(InvalidInputError, match="'image' block.*text only"):
        to_engine_messages([image])
    with pytest.raises(InvalidInputError, match="at least one ChatMessage"):
        to_engine_messages([])
    with pytest.raises(InvalidInputError, match="complete"):
        to_engine_messages("hello")
    with pytest.raises(InvalidInputError, match="ChatMessage"):
        to_engine_messages([{"role": "user", "content": "hi"}])


def test_openai_shaped_tool_calls_in_additional_kwargs_are_read():
    message = ChatMessage(
        role="assistant",
        content="",
        additional_kwargs={
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "multiply", "arguments": json.dumps({"a": 2, "b": 3})},
                }
            ]
        },
    )
    assert to_engine_message(message)["tool_calls"] == [
        {"id": "call_1", "name": "multiply", "args": {"a": 2, "b": 3}}
    ]


def test_partial_json_arguments_read_as_empty_args():
    block = ToolCallBlock(tool_call_id="c", tool_name="multiply", tool_kwargs='{"a": 2, "b"')
    message = ChatMessage(role="assistant", blocks=[block])
    assert tool_calls_from_message(message) == [{"id": "c", "name": "multiply", "args": {}}]


def test_missing_call_ids_get_stable_ones_and_given_ids_stay():
    calls = with_call_ids(
        [{"id": None, "name": "f", "args": {}}, {"id": "mine", "name": "g", "args": {}}],
        "abcdef0123456789",
    )
    assert (
        calls[0]["id"]
        == with_call_ids([{"id": None, "name": "f", "args": {}}], "abcdef0123456789")[0]["id"]
    )
    assert calls[1]["id"] == "mine"


def test_tool_specs_are_openai_functions_and_come_back_identical():
    tool = FunctionTool.from_defaults(fn=multiply)
    specs = tools_to_specs([tool])
    assert specs == [tool.metadata.to_openai_tool()]
    rebuilt = specs_to_tools(specs)[0]
    assert rebuilt.metadata.to_openai_tool() == specs[0]
    assert json.loads(rebuilt.metadata.fn_schema_str) == specs[0]["function"]["parameters"]
    with pytest.raises(InvalidInputError, match="original tool"):
        rebuilt({"a": 1})
    with pytest.raises(InvalidInputError, match="LlamaIndex tool"):
        tools_to_specs([multiply])


def test_query_marks_live_on_a_copy_of_the_last_user_turn():
    messages = [
        ChatMessage(role="system", content="s"),
        ChatMessage(role="user", content="Context: x\nQuery: why?\nAnswer:"),
    ]
    marked = mark_query(messages, "why?")
    assert marked_query(marked) == "why?" and marked_query(messages) is None
    assert messages[1].additional_kwargs == {} and marked[1].additional_kwargs[QUERY_KEY]
    assert mark_query(messages, "not in the text") == messages
    assert "sls_query" not in str(to_engine_messages(marked))  # never sent to a model


def test_usage_is_read_where_integrations_put_it():
    assert (
        read_usage(
            CompletionResponse(
                text="x", raw={"usage": {"prompt_tokens": 11, "completion_tokens": 3}}
            )
        ).input_tokens
        == 11
    )

    class _Usage:
        input_tokens, output_tokens = 5, 9

    class _Raw:
        usage = _Usage()

    assert read_usage(ChatResponse(message=ChatMessage(content="x"), raw=_Raw())).output_tokens == 9
    response = ChatResponse(
        message=ChatMessage(content="x"),
        additional_kwargs={"prompt_tokens": 4, "completion_tokens": 2},
    )
    assert (read_usage(response).input_tokens, read_usage(response).output_tokens) == (4, 2)
    assert read_usage(ChatResponse(message=ChatMessage(content="x"), raw={"id": 1})) is None


def test_missing_usage_is_estimated_from_characters():
    request = Request(prompt="x" * 40)
    usage = estimate_usage(request, "y" * 10, None)
    assert usage.input_tokens == 40 / CHARS_PER_TOKEN
    assert usage.output_tokens == 3  # ceil(10 / 4)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_call = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=8),
        "name": st.from_regex(r"[a-z_]{1,10}", fullmatch=True),
        "args": st.dictionaries(
            st.from_regex(r"[a-z]{1,5}", fullmatch=True), st.integers() | _text, max_size=3
        ),
    }
)
_message = st.one_of(
    st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(["system", "user"]), _text),
    st.builds(
        lambda c, calls: {
            "role": "assistant",
            "content": c,
            **({"tool_calls": calls} if calls else {}),
        },
        _text,
        st.lists(_call, max_size=2),
    ),
    st.builds(
        lambda c, i: {"role": "tool", "content": c, "tool_call_id": i},
        _text,
        st.text(min_size=1, max_size=8),
    ),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_message, min_size=1, max_size=5))
def test_engine_messages_survive_a_round_trip(messages):
    back = to_engine_messages(from_engine_messages(messages))
    for original, converted in zip(messages, back):
        assert converted["role"] == original["role"]
        assert converted["content"] == original["content"]
        assert converted.get("tool_call_id") == original.get("tool_call_id")
        if original.get("tool_calls"):
            assert check_tool_calls(converted["tool_calls"]) == original["tool_calls"]

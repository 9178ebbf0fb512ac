"""The pure converters of messages.py, tested one by one: each message type, both ways."""

from __future__ import annotations

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import tool_call
from langchain_sls_router.messages import (
    content_text,
    final_chunk,
    response_metadata,
    to_ai_message,
    to_engine_messages,
    to_langchain_messages,
    tool_calls_of,
    usage_metadata,
)

from sls_router import InvalidInputError, Request, Response, Usage
from sls_router.metadata import KEYS

CALL = {"id": "call-1", "name": "get_weather", "args": {"city": "Paris"}}


def _response(**changes) -> Response:
    fields = dict(
        text="It is sunny.",
        model="small",
        cache_hit=False,
        usage=Usage(12, 4),
        cost_usd=0.0021,
        latency_s=0.4,
        predicted_quality=0.83,
        request_id="r-1",
        tried=("large", "small"),
    )
    return Response(**{**fields, **changes})


# -- LangChain -> engine ----------------------------------------------------------------
def test_system_message_to_engine():
    assert to_engine_messages([SystemMessage("Be brief.")]) == [
        {"role": "system", "content": "Be brief."}
    ]


def test_human_message_to_engine_keeps_its_name():
    assert to_engine_messages([HumanMessage("hi", name="ana")]) == [
        {"role": "user", "content": "hi", "name": "ana"}
    ]


def test_ai_message_with_tool_calls_to_engine():
    message = AIMessage("", tool_calls=[tool_call(**CALL)])
    assert to_engine_messages([message]) == [
        {"role": "assistant", "content": "", "tool_calls": [CALL]}
    ]


def test_ai_content_blocks_restating_tool_calls_are_dropped():
    message = AIMessage(
        [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call-1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        tool_calls=[tool_call(**CALL)],
    )
    assert to_engine_messages([message])[0]["content"] == "Checking."


def test_tool_message_to_engine_keeps_call_id_and_error_status():
    ok = ToolMessage("sunny", tool_call_id="call-1")
    failed = ToolMessage("no such city", tool_call_id="call-2", status="error")
    assert to_engine_messages([ok, failed]) == [
        {"role": "tool", "content": "sunny", "tool_call_id": "call-1"},
        {"role": "tool", "content": "no such city", "tool_call_id": "call-2", "status": "error"},
    ]


@pytest.mark.parametrize(
    ("role", "engine_role"),
    [
        ("user", "user"),
        ("human", "user"),
        ("assistant", "assistant"),
        ("ai", "assistant"),
        ("system", "system"),
        ("developer", "system"),
    ],
)
def test_chat_message_roles_to_engine(role, engine_role):
    assert to_engine_messages([ChatMessage("x", role=role)])[0]["role"] == engine_role


def test_text_content_blocks_are_joined():
    blocks = ["Hello, ", {"type": "text", "text": "world"}]
    assert content_text(0, blocks) == "Hello, world"
    assert to_engine_messages([HumanMessage(blocks)])[0]["content"] == "Hello, world"


def test_multimodal_content_is_refused_not_dropped():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    with pytest.raises(InvalidInputError, match="message 1 has a 'image_url' content block"):
        to_engine_messages(
            [
                SystemMessage("Describe."),
                HumanMessage([{"type": "text", "text": "what is this?"}, image]),
            ]
        )


def test_unroutable_messages_are_refused():
    with pytest.raises(InvalidInputError, match="empty"):
        to_engine_messages([])
    with pytest.raises(InvalidInputError, match="message 0 is a FunctionMessage"):
        to_engine_messages([FunctionMessage("42", name="f")])
    with pytest.raises(InvalidInputError, match="ChatMessage"):
        to_engine_messages([ChatMessage("x", role="critic")])


# -- engine -> LangChain ----------------------------------------------------------------
def test_system_dict_to_langchain():
    assert to_langchain_messages([{"role": "system", "content": "Be brief."}]) == [
        SystemMessage("Be brief.")
    ]


def test_user_dict_to_langchain_keeps_its_name():
    assert to_langchain_messages([{"role": "user", "content": "hi", "name": "ana"}]) == [
        HumanMessage("hi", name="ana")
    ]


def test_assistant_dict_with_tool_calls_to_langchain():
    [message] = to_langchain_messages([{"role": "assistant", "content": "", "tool_calls": [CALL]}])
    assert message == AIMessage("", tool_calls=[tool_call(**CALL)])
    assert message.tool_calls[0]["type"] == "tool_call"


def test_tool_dict_to_langchain_keeps_call_id_and_status():
    assert to_langchain_messages(
        [
            {"role": "tool", "content": "sunny", "tool_call_id": "call-1"},
            {"role": "tool", "content": "boom", "tool_call_id": "call-2", "status": "error"},
        ]
    ) == [
        ToolMessage("sunny", tool_call_id="call-1"),
        ToolMessage("boom", tool_call_id="call-2", status="error"),
    ]


def test_a_conversation_round_trips_through_the_engine_form():
    conversation = [
        SystemMessage("Be brief."),
        HumanMessage("Weather in Paris?"),
        AIMessage("", tool_calls=[tool_call(**CALL)]),
        ToolMessage("sunny", tool_call_id="call-1"),
        AIMessage("It is sunny."),
    ]
    engine = to_engine_messages(conversation)
    assert to_langchain_messages(engine) == conversation
    assert Request(messages=engine).messages == engine  # the engine accepts what we send


# -- the wrapped model's answer -> engine ------------------------------------------------
def test_tool_calls_of_an_answer_come_back_unchanged():
    assert tool_calls_of(AIMessage("no tools")) is None
    assert tool_calls_of(AIMessage("", tool_calls=[tool_call(**CALL)])) == [CALL]


# -- the router's Response -> LangChain ----------------------------------------------------
def test_response_metadata_is_the_engine_keys_plus_langchain_names():
    metadata = response_metadata(_response())
    assert set(metadata) == {"model_name", "total_cost", *KEYS}
    assert metadata["model_name"] == metadata["sls_model"] == "small"
    assert metadata["total_cost"] == metadata["sls_cost_usd"] == 0.0021
    assert metadata["sls_request_id"] == "r-1" and metadata["sls_tried"] == ["large", "small"]


def test_usage_metadata_is_integer_tokens():
    assert usage_metadata(_response()) == {
        "input_tokens": 12,
        "output_tokens": 4,
        "total_tokens": 16,
    }


def test_response_to_ai_message():
    message = to_ai_message(_response(tool_calls=[CALL]))
    assert message.text == "It is sunny."
    assert message.tool_calls == [tool_call(**CALL)]
    assert message.usage_metadata == usage_metadata(_response())
    assert message.response_metadata == response_metadata(_response())


def test_final_chunk_carries_tool_calls_and_usage_once():
    chunk = final_chunk(_response(tool_calls=[CALL]))
    assert chunk.text == "" and chunk.chunk_position == "last"
    assert chunk.tool_call_chunks[0]["args"] == '{"city": "Paris"}'
    merged = AIMessageChunk("It is ") + AIMessageChunk("sunny.") + chunk
    assert merged.text == "It is sunny."
    assert merged.tool_calls == [tool_call(**CALL)]
    assert merged.usage_metadata["total_tokens"] == 16
    assert merged.response_metadata["sls_request_id"] == "r-1"

"""SmartRouterLLM in the ways LangChain users use it: chains, agents, streams, batches."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import (
    AIMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_sls_router import SLSFeedbackHandler, SmartRouterLLM
from langchain_sls_router.testing import ScriptedChatModel, ScriptedToolChatModel

from sls_router import ConfigurationError, InvalidInputError, SLSRouterError, UnknownEntryError

PRICES = {"small": (0.15, 0.6), "large": (2.5, 10.0), "chat-only": (0.05, 0.1)}
LOGPARSING = (
    Path(__file__).resolve().parents[3] / "sls_router" / "data" / "replay" / "logparsing.jsonl.gz"
)


@pytest.fixture
def models() -> dict[str, ScriptedChatModel]:
    return {
        "small": ScriptedToolChatModel(tag="small"),
        "large": ScriptedToolChatModel(tag="large"),
        "chat-only": ScriptedChatModel(tag="chat-only"),
    }


@pytest.fixture
def llm(models) -> SmartRouterLLM:
    return SmartRouterLLM.from_llms(
        models, prices=PRICES, embedder="hashing", background_updates=False, random_state=0
    )


def _calls(models) -> int:
    return sum(m.calls for m in models.values())


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"sunny in {city}"


def test_lcel_chain_answers_then_serves_the_repeat_from_cache(llm, models):
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You answer in one line."), ("human", "{question}")]
    )
    chain = prompt | llm | StrOutputParser()
    first = chain.invoke({"question": "Why is the sky blue?"})
    calls = _calls(models)
    second = chain.invoke({"question": "Why is the sky blue?"})
    assert first == second and first.endswith("answer about why is the sky blue")
    assert _calls(models) == calls  # no model was called for the repeat
    assert llm.router.cache.stats().hits == 1


def test_metadata_and_usage_on_every_message(llm):
    message = llm.invoke("How do I reverse a list in Python?")
    meta = message.response_metadata
    assert meta["sls_model"] in PRICES and meta["sls_cache_hit"] is False
    assert meta["sls_cost_usd"] > 0 and meta["sls_tried"] == [meta["sls_model"]]
    assert meta["total_cost"] == meta["sls_cost_usd"]
    assert 0 <= meta["sls_predicted_quality"] <= 1
    assert message.usage_metadata["total_tokens"] == (
        message.usage_metadata["input_tokens"] + message.usage_metadata["output_tokens"]
    )
    hit = llm.invoke("How do I reverse a list in Python?")
    assert hit.response_metadata["sls_cache_hit"] is True
    assert hit.response_metadata["sls_cost_usd"] == 0.0 and hit.text == message.text
    assert hit.response_metadata["sls_request_id"] != meta["sls_request_id"]


def test_stream_replays_a_cached_answer_and_matches_invoke(llm, models):
    fresh = list(llm.stream("Explain TCP slow start"))
    streamed = "".join(c.text for c in fresh)
    assert len(fresh) > 2 and fresh[-1].response_metadata["sls_cache_hit"] is False
    calls = _calls(models)
    invoked = llm.invoke("Explain TCP slow start")
    assert invoked.text == streamed and invoked.response_metadata["sls_cache_hit"] is True
    cached = list(llm.stream("Explain TCP slow start"))
    assert "".join(c.text for c in cached) == streamed and len(cached) > 2
    assert cached[-1].response_metadata["sls_cache_hit"] is True
    assert _calls(models) == calls
    merged = cached[0]
    for chunk in cached[1:]:
        merged += chunk
    assert merged.usage_metadata["total_tokens"] == 0  # usage counted once, and a hit is free


def test_create_agent_tool_loop_runs_on_tool_capable_models(llm, models):
    from langchain.agents import create_agent

    agent = create_agent(llm, tools=[get_weather])
    result = agent.invoke({"messages": [HumanMessage("What is the weather in 'Paris'?")]})
    messages = result["messages"]
    calls = [m for m in messages if isinstance(m, AIMessage) and m.tool_calls]
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert calls[0].tool_calls[0]["name"] == "get_weather"
    assert calls[0].tool_calls[0]["args"] == {"city": "Paris"}
    assert results[0].text == "sunny in Paris"
    assert messages[-1].text.endswith("the tool said sunny in Paris")
    assert all(
        m.response_metadata["sls_model"] in ("small", "large")
        for m in messages
        if isinstance(m, AIMessage)
    )
    assert models["chat-only"].calls == 0
    assert len(llm.router.cache) == 0  # tool-call turns are never cached


def test_tool_calls_come_back_unchanged_and_are_never_cached(llm, models):
    bound = llm.bind_tools([get_weather], tool_choice="get_weather")
    first = bound.invoke("Weather for 'Oslo' please")
    second = bound.invoke("Weather for 'Oslo' please")
    direct = (
        models[first.response_metadata["sls_model"]]
        .bind_tools([get_weather], tool_choice="get_weather")
        .invoke("Weather for 'Oslo' please")
    )
    assert [(c["name"], c["args"]) for c in first.tool_calls] == [
        (c["name"], c["args"]) for c in direct.tool_calls
    ]
    assert second.response_metadata["sls_cache_hit"] is False
    assert len(llm.router.cache) == 0


def test_history_and_system_prompt_scope_the_cache(llm):
    question = HumanMessage("and what about tomorrow?")
    history_a = [HumanMessage("Weather in Rome?"), AIMessage("Sunny."), question]
    history_b = [HumanMessage("Weather in Oslo?"), AIMessage("Snow."), question]
    assert not llm.invoke(history_a).response_metadata["sls_cache_hit"]
    assert not llm.invoke(history_b).response_metadata["sls_cache_hit"]
    assert llm.invoke(history_a).response_metadata["sls_cache_hit"]
    other_system = [SystemMessage("Answer in French."), *history_a]
    assert not llm.invoke(other_system).response_metadata["sls_cache_hit"]


async def test_abatch_of_100_concurrent_requests_counts_feedback_exactly(llm):
    checked: list[str] = []

    def verifier(request, text):
        checked.append(text)
        return 1.0 if "answer about" in text else 0.0

    handler = SLSFeedbackHandler(llm, verifier=verifier)
    # unrelated texts: the hashing embedder would (rightly) call "report 1" and "report 12" alike
    prompts = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(100)]
    answers = await llm.abatch(prompts, config={"callbacks": [handler], "max_concurrency": 25})
    assert len({a.response_metadata["sls_request_id"] for a in answers}) == 100
    assert len(handler.decisions) == 100 and len(checked) == 100
    assert len(llm.router.learner.outcomes) == 100  # one training row per fresh answer
    for answer in answers[:40]:
        llm.feedback(answer.response_metadata["sls_request_id"], 1.0)
    assert len(llm.router.learner.outcomes) == 140


def test_callbacks_see_routing_events_and_rate_runs(llm):
    events: list[tuple[str, dict]] = []

    class Recorder(BaseCallbackHandler):
        def on_custom_event(self, name, data, *, run_id, **kwargs):
            events.append((name, data))

    handler = SLSFeedbackHandler(llm)
    message = llm.invoke("Is 97 prime?", config={"callbacks": [handler, Recorder()]})
    assert [name for name, _ in events] == ["sls_route"]
    assert events[0][1].items() <= message.response_metadata.items()
    ((run_id, decision),) = handler.decisions.items()
    assert decision["sls_request_id"] == message.response_metadata["sls_request_id"]
    handler.feedback(run_id, 0.0)
    assert len(llm.router.learner.outcomes) == 1
    with pytest.raises(UnknownEntryError, match="run"):
        handler.feedback("00000000-0000-0000-0000-000000000000", 1.0)


async def test_streamed_runs_are_recorded_and_rated_too(llm):
    handler = SLSFeedbackHandler(llm, verifier=lambda request, text: 1.0)
    chunks = [c async for c in llm.astream("Define entropy", config={"callbacks": [handler]})]
    (decision,) = handler.decisions.values()
    assert decision["sls_request_id"] == chunks[-1].response_metadata["sls_request_id"]
    assert len(llm.router.learner.outcomes) == 1  # the verifier's score reached the router


def test_from_replay_answers_with_recorded_outputs():
    from sls_router.replay import load_dataset

    record = next(iter(load_dataset(LOGPARSING)))
    llm = SmartRouterLLM.from_replay(LOGPARSING, embedder="hashing", background_updates=False)
    message = llm.invoke(record.prompt)
    model = message.response_metadata["sls_model"]
    assert message.text == record.responses[model].output
    assert message.usage_metadata["output_tokens"] == record.responses[model].output_tokens


def test_state_keeps_what_was_learned(models, tmp_path):
    first = SmartRouterLLM.from_llms(
        models, prices=PRICES, embedder="hashing", state=tmp_path, background_updates=False
    )
    answer = first.invoke("What is a mutex?")
    first.save(tmp_path)
    again = SmartRouterLLM.from_llms(
        models, prices=PRICES, embedder="hashing", state=tmp_path, background_updates=False
    )
    hit = again.invoke("What is a mutex?")
    assert hit.response_metadata["sls_cache_hit"] and hit.text == answer.text


@pytest.mark.postgres
def test_replicas_on_one_database_share_the_cache(models, new_database):
    url = new_database()
    options = dict(prices=PRICES, embedder="hashing", state=url, background_updates=False)
    first, second = (SmartRouterLLM.from_llms(models, **options) for _ in range(2))
    try:
        answer = first.invoke("What is a mutex?")
        first.save()  # waits for the queued writes
        calls = _calls(models)
        hit = second.invoke("What is a mutex?")
        assert hit.response_metadata["sls_cache_hit"] and hit.text == answer.text
        assert _calls(models) == calls
    finally:
        first.router.close()
        second.router.close()


def test_bad_input_gets_clear_errors(llm, models):
    with pytest.raises(InvalidInputError, match="empty"):
        llm.invoke([])
    with pytest.raises(InvalidInputError, match="FunctionMessage"):
        llm.invoke([FunctionMessage("42", name="f")])
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    with pytest.raises(InvalidInputError, match="image_url"):
        llm.invoke([HumanMessage([{"type": "text", "text": "what is this?"}, image])])
    with pytest.raises(ConfigurationError, match="no price for model 'large'"):
        SmartRouterLLM.from_llms(models, prices={"small": (1, 2), "chat-only": (1, 2)})
    with pytest.raises(ConfigurationError, match="not a LangChain chat model"):
        SmartRouterLLM.from_llms({"x": "gpt-4"}, prices={"x": (1, 2)})
    with pytest.raises(ConfigurationError):
        SmartRouterLLM.from_llms(models, prices={**PRICES, "small": (float("nan"), 1)})
    with pytest.raises(SLSRouterError, match="from_llms"):
        SmartRouterLLM()
    with pytest.raises(UnknownEntryError):
        llm.feedback("no-such-request", 1.0)


def test_every_model_failing_raises_one_error_listing_attempts():
    down = {"a": ScriptedChatModel(tag="a", fail=True), "b": ScriptedChatModel(tag="b", fail=True)}
    llm = SmartRouterLLM.from_llms(
        down, prices={"a": (1, 1), "b": (2, 2)}, embedder="hashing", background_updates=False
    )
    with pytest.raises(SLSRouterError, match="every model failed") as caught:
        asyncio.run(llm.ainvoke("hello"))
    assert sorted(m for m, _ in caught.value.attempts) == ["a", "b"]


def test_threaded_batch_survives_a_flaky_provider_and_counts_feedback_exactly():
    flaky = ScriptedChatModel(tag="flaky", fail_every=3)  # a third of its calls fail
    steady = ScriptedChatModel(tag="steady")
    llm = SmartRouterLLM.from_llms(
        {"flaky": flaky, "steady": steady},
        prices={"flaky": (0.1, 0.1), "steady": (5.0, 5.0)},
        embedder="hashing",
        background_updates=False,
        breaker_cooldown_s=0.05,
    )
    prompts = [hashlib.sha256(f"load {i}".encode()).hexdigest() for i in range(400)]
    answers = llm.batch(prompts, config={"max_concurrency": 8})
    assert all(a.text for a in answers)  # every request answered
    failed_over = [a for a in answers if len(a.response_metadata["sls_tried"]) > 1]
    assert failed_over and all(a.response_metadata["sls_model"] == "steady" for a in failed_over)
    for answer in answers:
        llm.feedback(answer.response_metadata["sls_request_id"], 1.0)
    assert len(llm.router.learner.outcomes) == 400


def test_a_chat_model_given_as_judge_grades_answers_and_keeps_wrong_ones_out(models):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from sls_router import ModelSpec

    judge = FakeListChatModel(responses=["NO, that is wrong", "not asked twice"])
    llm = SmartRouterLLM.from_llms(
        models,
        prices=PRICES,
        embedder="hashing",
        background_updates=False,
        random_state=0,
        judge=(ModelSpec("judge", 1.0, 4.0), judge),
        judge_share=1.0,
        explore_share=1.0,
    )
    llm.invoke("What is a mutex?")
    llm.router.flush()
    assert judge.i == 1  # graded once, off the request path
    again = llm.invoke("What is a mutex?")
    assert not again.response_metadata["sls_cache_hit"]  # the judge's "no" kept it out


def test_an_answer_the_output_parser_refuses_is_feedback_against_it(llm, models):
    from langchain_core.exceptions import OutputParserException
    from langchain_core.output_parsers import JsonOutputParser

    handler = SLSFeedbackHandler(llm)
    chain = llm | JsonOutputParser()  # the scripted models answer in prose, not JSON
    with pytest.raises(OutputParserException):
        chain.invoke("List three primes as JSON", config={"callbacks": [handler]})
    assert llm.router.learner.outcomes.sources == ["output_parser"]
    calls = _calls(models)
    with pytest.raises(OutputParserException):  # the refused answer is not served again
        chain.invoke("List three primes as JSON", config={"callbacks": [handler]})
    assert _calls(models) == calls + 1
    # a parser that accepts the answer says nothing
    (llm | StrOutputParser()).invoke("Name a prime", config={"callbacks": [handler]})
    assert llm.router.learner.outcomes.sources.count("output_parser") == 2


def test_asking_again_in_a_langgraph_thread_is_feedback_against_the_answer(llm):
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import START, MessagesState, StateGraph

    seen = []
    llm.router.on_feedback = lambda *event: seen.append(event)
    graph = StateGraph(MessagesState)
    graph.add_node("chat", lambda state: {"messages": [llm.invoke(state["messages"])]})
    graph.add_edge(START, "chat")
    app = graph.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "chat-7"}}  # LangGraph puts it in run metadata
    text = "What is the tallest mountain in Europe?"
    first = app.invoke({"messages": [HumanMessage(text)]}, config)["messages"][-1]
    again = app.invoke({"messages": [HumanMessage(text)]}, config)["messages"][-1]
    assert [(e[0], e[3]) for e in seen] == [(first.response_metadata["sls_request_id"], "reask")]
    assert again.response_metadata["sls_cache_hit"] is False  # not served the same again
    # another conversation (a thread named in plain run metadata): no re-ask
    llm.invoke(text, config={"metadata": {"session_id": "s"}})
    assert len(seen) == 1

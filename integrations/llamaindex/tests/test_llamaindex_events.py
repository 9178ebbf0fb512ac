"""Instrumentation: route and cache-hit events out, verifier feedback back in."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool
from llama_index.llms.sls_router import (
    SLSCacheHitEvent,
    SLSFeedbackEvent,
    SLSFeedbackEventHandler,
    SLSRouteEvent,
)

from sls_router import ConfigurationError


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


class Verifier:
    """Records what it judged; scores with a fixed value."""

    def __init__(self, score: float | None = 1.0) -> None:
        self.score = score
        self.seen: list[tuple[str, str]] = []

    def __call__(self, request, answer: str) -> float | None:
        self.seen.append((request.embed_text, answer))
        return self.score


def test_route_and_cache_hit_events_describe_each_answer(li_llm, li_events):
    fresh = li_llm.chat(user("Largest ocean on Earth?"))
    hit = li_llm.chat(user("Largest ocean on Earth?"))
    routes = li_events.of(SLSRouteEvent)
    assert [type(e) for e in routes] == [SLSRouteEvent, SLSCacheHitEvent]
    for event, response in zip(routes, (fresh, hit)):
        meta = response.additional_kwargs
        assert (
            event.request_id,
            event.model,
            event.cache_hit,
            event.cost_usd,
            event.predicted_quality,
        ) == (
            meta["sls_request_id"],
            meta["sls_model"],
            meta["sls_cache_hit"],
            meta["sls_cost_usd"],
            meta["sls_predicted_quality"],
        )
    assert routes[0].tried == [fresh.additional_kwargs["sls_model"]] and routes[1].tried == []
    assert routes[0].span_id is not None  # inside the LLM call's span, like core events


def test_handler_judges_every_entry_point_exactly_once(li_llm, li_events, li_handlers):
    verifier = Verifier(1.0)
    handler = li_handlers(SLSFeedbackEventHandler(li_llm, verifier))
    outcomes = len(li_llm.router.learner.outcomes)
    ids = [
        li_llm.chat(user("Chat question one?")).additional_kwargs["sls_request_id"],
        list(li_llm.stream_chat(user("Stream question two?")))[-1].additional_kwargs[
            "sls_request_id"
        ],
        li_llm.complete("Complete question three?").additional_kwargs["sls_request_id"],
        list(li_llm.stream_complete("Stream complete four?"))[-1].additional_kwargs[
            "sls_request_id"
        ],
        asyncio.run(li_llm.achat(user("Async question five?"))).additional_kwargs["sls_request_id"],
    ]
    feedback = li_events.of(SLSFeedbackEvent)
    assert sorted(e.request_id for e in feedback) == sorted(ids)  # once each, none twice
    assert {e.source for e in feedback} == {"verifier"} and handler.applied == len(ids)
    assert len(li_llm.router.learner.outcomes) == outcomes + len(ids)  # each reached the router
    query, answer = verifier.seen[0]  # (last user turn, answer text)
    assert query == "Chat question one?" and answer.endswith("says: Chat question one?")
    assert verifier.seen[2][0] == "Complete question three?"  # completions: the prompt


def test_a_rejecting_verifier_removes_the_answer_from_the_cache(li_llm, li_handlers):
    li_handlers(SLSFeedbackEventHandler(li_llm, Verifier(0.0)))
    li_llm.chat(user("Tallest mountain?"))
    assert not li_llm.chat(user("Tallest mountain?")).additional_kwargs["sls_cache_hit"]


def test_handler_skips_abstentions_tool_calls_and_other_routers(
    li_llm, li_tool_llm, li_events, li_handlers
):
    abstain = Verifier(None)
    li_handlers(SLSFeedbackEventHandler(li_llm, abstain))
    li_llm.chat(user("Skip me?"))
    assert abstain.seen and not li_events.of(SLSFeedbackEvent)
    other = Verifier(1.0)
    handler = li_handlers(SLSFeedbackEventHandler(li_tool_llm, other))
    tool = FunctionTool.from_defaults(
        fn=lambda a, b: a * b, name="multiply", description="Multiply a and b."
    )
    li_tool_llm.chat_with_tools([tool], user_msg="What is 2 times 3?")  # a tool call: skipped
    assert other.seen == []
    li_llm.chat(user("Served by another router?"))  # unknown to li_tool_llm's router
    assert handler.errors == 0 and handler.applied == 0


def test_verifier_errors_are_logged_not_raised(li_llm, li_handlers, caplog):
    def broken(query: str, answer: str) -> float:
        raise RuntimeError("verifier crashed")

    handler = li_handlers(SLSFeedbackEventHandler(li_llm, broken))
    assert li_llm.chat(user("Still answered?")).message.content
    assert handler.verifier.stats()["failed"] == 1 and "verifier crashed" in caplog.text
    assert handler.applied == 0  # "cannot judge": no feedback sent


def test_handler_needs_a_router_and_a_function(li_llm):
    with pytest.raises(ConfigurationError, match="SmartRouter or SmartRouterLLM"):
        SLSFeedbackEventHandler(object(), Verifier())
    with pytest.raises(ConfigurationError, match="verifier must be a function"):
        SLSFeedbackEventHandler(li_llm, "exact")
    assert SLSFeedbackEventHandler(li_llm.router, Verifier()).class_name()


def test_user_feedback_is_an_event_too(li_llm, li_events):
    response = li_llm.chat(user("Rate me?"))
    li_llm.feedback(response.additional_kwargs["sls_request_id"], 0.75)
    [event] = li_events.of(SLSFeedbackEvent)
    assert (event.score, event.source) == (0.75, "user")

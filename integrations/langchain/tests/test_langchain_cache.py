"""SLSSemanticCache: LangChain's BaseCache over the adaptive semantic cache."""

from __future__ import annotations

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration
from langchain_sls_router import SLSSemanticCache
from langchain_sls_router.testing import ScriptedChatModel, ScriptedToolChatModel

from sls_router import UnknownEntryError


@pytest.fixture
def cache() -> SLSSemanticCache:
    return SLSSemanticCache("hashing")


def test_repeat_is_served_from_the_cache(cache):
    model = ScriptedChatModel(tag="m", cache=cache)
    first = model.invoke("What does HTTP 418 mean?")
    second = model.invoke("What does HTTP 418 mean?")
    assert model.calls == 1 and second.text == first.text
    assert isinstance(second, AIMessage)


async def test_async_interface_and_global_cache(cache):
    set_llm_cache(cache)
    try:
        model = ScriptedChatModel(tag="g")
        first = await model.ainvoke("Name a prime above 100")
        second = await model.ainvoke("Name a prime above 100")
        assert model.calls == 1 and second.text == first.text
    finally:
        set_llm_cache(None)


def test_partitioned_by_model_and_by_conversation(cache):
    a, b = ScriptedChatModel(tag="a", cache=cache), ScriptedChatModel(tag="b", cache=cache)
    a.invoke("Capital of Peru?")
    assert b.invoke("Capital of Peru?").text.startswith("b:")  # another llm_string
    a.invoke([SystemMessage("Be brief."), HumanMessage("Capital of Peru?")])
    assert a.calls == 2  # another system prompt is another scope
    a.invoke([HumanMessage("Capital of Peru?")])
    assert a.calls == 2


def test_clear_and_wrong_feedback(cache):
    model = ScriptedChatModel(tag="m", cache=cache)
    model.invoke("Largest ocean?")
    cache.clear()
    model.invoke("Largest ocean?")
    assert model.calls == 2
    model.invoke("Largest ocean?")  # served from the cache
    ((prompt, llm_string),) = cache._served  # what LangChain looked up
    cache.feedback(prompt, llm_string, 0.0)
    model.invoke("Largest ocean?")
    assert model.calls == 3  # a wrong cached answer is no longer served
    with pytest.raises(UnknownEntryError):
        cache.feedback(prompt, llm_string, 1.0)


def test_tool_call_answers_are_not_cached(cache):
    from langchain_core.tools import tool

    @tool
    def lookup(term: str) -> str:
        """Look a term up."""
        return term

    model = ScriptedToolChatModel(tag="t", cache=cache).bind_tools([lookup], tool_choice="lookup")
    model.invoke("lookup 'x'")
    model.invoke("lookup 'x'")
    assert len(cache.cache) == 0


def test_a_cached_answer_is_served_only_in_its_own_context(cache):
    question = HumanMessage("What is the weather in Paris right now?")
    turns = [
        question,
        AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Paris"}, "id": "1"}]),
        ToolMessage("18C and sunny", tool_call_id="1"),
    ]
    answer = [ChatGeneration(message=AIMessage("It is 18C and sunny in Paris."))]
    cache.update(dumps(turns), "m", answer)
    assert cache.lookup(dumps([question]), "m") is None  # the tool must not be skipped
    assert cache.lookup(dumps([SystemMessage("Answer in French."), *turns]), "m") is None
    earlier = [HumanMessage("Weather in Oslo?"), AIMessage("Snow.")]
    assert cache.lookup(dumps([*earlier, *turns]), "m") is None
    hit = cache.lookup(dumps(turns), "m")  # the same request in the same context
    assert hit is not None and hit[0].text == "It is 18C and sunny in Paris."

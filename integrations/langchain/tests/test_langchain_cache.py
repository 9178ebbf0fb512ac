"""SLSSemanticCache: LangChain's BaseCache over the adaptive semantic cache."""

from __future__ import annotations

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
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
    (prompt, llm_string), = cache._served  # what LangChain looked up
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

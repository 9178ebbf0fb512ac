"""The embedder registry's MiniLM names work through the LangChain adapter: the chat
model and the semantic cache each embed with the named model and serve a repeat."""

from __future__ import annotations

import pytest
from langchain_sls_router import SLSSemanticCache, SmartRouterLLM
from langchain_sls_router.testing import ScriptedChatModel

PRICES = {"small": (0.15, 0.6), "large": (2.5, 10.0)}
BACKENDS = {"onnx": "onnx", "onnx-int8": "onnx", "minilm": "onnx"}  # minilm: ONNX by default


@pytest.fixture(autouse=True)
def private_cache(onnx_cache_dir, monkeypatch):
    monkeypatch.setenv("SLS_ROUTER_CACHE_DIR", str(onnx_cache_dir))  # never the user's cache


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKENDS))
def test_the_chat_model_routes_with_a_named_embedder(name):
    models = {"small": ScriptedChatModel(tag="small"), "large": ScriptedChatModel(tag="large")}
    llm = SmartRouterLLM.from_llms(
        models, prices=PRICES, embedder=name, background_updates=False, random_state=0
    )
    try:
        assert llm.router.embedder.name == name
        assert llm.router.embedder.backend == BACKENDS[name]
        first = llm.invoke("How do I reset my password?")
        repeat = llm.invoke("How do I reset my password?")
        other = llm.invoke("What is the capital of France?")
        assert first.response_metadata["sls_cache_hit"] is False
        assert repeat.response_metadata["sls_cache_hit"] is True and repeat.text == first.text
        assert other.response_metadata["sls_cache_hit"] is False and other.text != first.text
    finally:
        llm.router.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKENDS))
def test_the_semantic_cache_embeds_with_a_named_embedder(name):
    cache = SLSSemanticCache(name)
    assert cache.cache.embedder.name == name
    model = ScriptedChatModel(tag="m", cache=cache)
    first = model.invoke("What does HTTP 418 mean?")
    assert model.invoke("What does HTTP 418 mean?").text == first.text
    model.invoke("How tall is Mount Everest?")
    assert model.calls == 2  # the repeat was served, the other question was not

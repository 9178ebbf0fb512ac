"""The embedder registry's MiniLM names work through the LlamaIndex adapter: the LLM
routes and caches with the named model, and `SLSEmbedding` embeds with it."""

from __future__ import annotations

import numpy as np
import pytest
from li_scripted import ScriptedLLM
from llama_index.core.base.llms.types import ChatMessage
from llama_index.llms.sls_router import SLSEmbedding, SmartRouterLLM

BACKENDS = {"onnx": "onnx", "onnx-int8": "onnx", "minilm": "onnx"}  # minilm: ONNX by default


@pytest.fixture(autouse=True)
def private_cache(onnx_cache_dir, monkeypatch):
    monkeypatch.setenv("SLS_ROUTER_CACHE_DIR", str(onnx_cache_dir))  # never the user's cache


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKENDS))
def test_the_llm_routes_with_a_named_embedder(name):
    llm = SmartRouterLLM.from_llms(
        {"small": ScriptedLLM(name="small"), "large": ScriptedLLM(name="large")},
        prices={"small": (0.1, 0.2), "large": (5.0, 15.0)},
        embedder=name,
        background_updates=False,
        random_state=0,
    )
    try:
        assert llm.router.embedder.name == name
        assert llm.router.embedder.backend == BACKENDS[name]
        first = llm.chat(user("How do I reset my password?"))
        repeat = llm.chat(user("How do I reset my password?"))
        other = llm.chat(user("What is the capital of France?"))
        assert first.additional_kwargs["sls_cache_hit"] is False
        assert repeat.additional_kwargs["sls_cache_hit"] is True
        assert repeat.message.content == first.message.content
        assert other.additional_kwargs["sls_cache_hit"] is False
    finally:
        llm.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKENDS))
def test_sls_embedding_embeds_with_a_named_embedder(name):
    embedding = SLSEmbedding(name)
    assert embedding.embedder.name == name
    reset, forgot, france = (
        np.array(embedding.get_text_embedding(text))
        for text in (
            "How do I reset my password?",
            "I forgot my password, how can I change it?",
            "What is the capital of France?",
        )
    )
    assert reset @ forgot > reset @ france  # the paraphrase is the closer one

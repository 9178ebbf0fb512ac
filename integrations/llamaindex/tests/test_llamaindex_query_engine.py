"""`Settings.llm = SmartRouterLLM...` in a VectorStoreIndex query engine, offline; the example."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.llms.sls_router import SLSCacheHitEvent, SLSEmbedding, SLSRouteEvent

from sls_router import ConfigurationError
from sls_router.embeddings import get_embedder

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llamaindex_query_engine.py"
DOCS = [
    "The Danube flows through ten countries and ends in the Black Sea.",
    "Mount Kilimanjaro is the highest mountain in Africa, about 5895 metres tall.",
    "The Atacama desert in Chile is one of the driest places on Earth.",
]


@pytest.fixture
def li_settings(li_llm):
    """Settings.llm / embed_model for one test, restored afterwards."""
    saved = (Settings._llm, Settings._embed_model)
    Settings.llm = li_llm
    Settings.embed_model = SLSEmbedding("hashing")
    yield Settings
    Settings._llm, Settings._embed_model = saved


def _engine(**kwargs):
    index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCS])
    return index.as_query_engine(similarity_top_k=1, **kwargs)


def test_repeated_query_is_served_from_the_cache(li_settings, li_events, li_small, li_large):
    engine = _engine()
    first = str(engine.query("How tall is Kilimanjaro?"))
    other = str(engine.query("Which desert is among the driest places?"))
    before = li_small.calls + li_large.calls
    again = str(engine.query("How tall is Kilimanjaro?"))
    assert again == first and other != first
    assert "How tall is Kilimanjaro?" in first  # the scripted models quote the query
    routes = li_events.of(SLSRouteEvent)
    assert [e.cache_hit for e in routes] == [False, False, True]
    assert isinstance(routes[-1], SLSCacheHitEvent) and routes[-1].cost_usd == 0
    assert routes[0].cost_usd > 0 and li_small.calls + li_large.calls == before


def test_streaming_query_engine_gives_the_same_text(li_settings, li_events):
    text = str(_engine().query("Where does the Danube end?"))
    streamed = _engine(streaming=True).query("Where does the Danube end?")
    assert "".join(streamed.response_gen) == text
    assert li_events.of(SLSRouteEvent)[-1].cache_hit


@pytest.mark.asyncio
async def test_async_query_engine(li_settings):
    engine = _engine()
    first = await engine.aquery("How tall is Kilimanjaro?")
    second = await engine.aquery("How tall is Kilimanjaro?")
    assert str(first) == str(second)


def test_sls_embedding_matches_the_engine_embedder():
    embedding = SLSEmbedding("hashing")
    texts = ["a log line 17", "another one"]
    expected = get_embedder("hashing").encode(texts)
    assert np.allclose(embedding.get_text_embedding_batch(texts), expected, atol=1e-6)
    assert np.allclose(embedding.get_query_embedding(texts[0]), expected[0], atol=1e-6)
    assert embedding.model_name == "sls-router/hashing"
    with pytest.raises(ConfigurationError, match="unknown embedder"):
        SLSEmbedding("openai")


@pytest.mark.asyncio
async def test_sls_embedding_async():
    embedding = SLSEmbedding("hashing")
    vectors = await embedding.aget_text_embedding_batch(["x y z", "p q r"])
    assert len(vectors) == 2 and len(vectors[0]) == embedding.embedder.dim
    assert np.allclose(await embedding.aget_query_embedding("x y z"), vectors[0], atol=1e-6)


def test_example_runs_offline_and_serves_the_repeat_from_cache(capsys):
    spec = importlib.util.spec_from_file_location("li_example_query_engine", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    saved = (Settings._llm, Settings._embed_model)
    try:
        rows = module.main(["--embedder", "hashing"])
    finally:
        Settings._llm, Settings._embed_model = saved
    assert [r["cache_hit"] for r in rows] == [False, False, False, True]
    assert rows[-1]["answer"] == rows[0]["answer"] and rows[-1]["cost_usd"] == 0
    assert "Venus" in rows[0]["answer"] and "Phobos" in rows[1]["answer"]
    assert "served from the cache" in capsys.readouterr().out

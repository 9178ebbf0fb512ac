"""Shared test helpers: a deterministic embedder whose geometry the test controls."""

from __future__ import annotations

import numpy as np
import pytest


class TopicEmbedder:
    """Texts "topic:variant" map to a unit vector near the topic's own direction.

    Same topic -> cosine ~0.97 (paraphrases); different topics -> cosine ~0 (unrelated).
    `spread` moves variants further apart. Deterministic across runs."""

    name = "topic-test"

    def __init__(self, dim: int = 64, spread: float = 0.25) -> None:
        self.dim = dim
        self.spread = spread

    def _unit(self, key: str) -> np.ndarray:
        rng = np.random.default_rng(abs(_stable(key)))
        v = rng.standard_normal(self.dim)
        return v / np.linalg.norm(v)

    def encode(self, texts):
        out = []
        for text in texts:
            topic, _, variant = text.partition(":")
            v = self._unit("topic/" + topic)
            if variant:
                v = v + self.spread * self._unit("variant/" + text)
            out.append(v / np.linalg.norm(v))
        return np.asarray(out, dtype=np.float32)


def _stable(key: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


@pytest.fixture
def topic_embedder() -> TopicEmbedder:
    return TopicEmbedder()


@pytest.fixture(params=["local", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_kind(request) -> str:
    """Runs a test once on the embedded default and once on the shared PostgreSQL store."""
    return request.param


@pytest.fixture
def new_cache(store_kind, request):
    """`new_cache(embedder, **options)`: a SemanticCache on the store under test."""
    from sls_router.cache import SemanticCache

    if store_kind == "local":
        yield SemanticCache
        return
    from sls_router.store.postgres import PostgresEntries
    from sls_router.store.postgres._db import Database

    make_database = request.getfixturevalue("new_database")
    opened: list[Database] = []

    def make(embedder, **options):
        db = Database(make_database(), embedder.name, embedder.dim)
        opened.append(db)
        return SemanticCache(embedder, entries=PostgresEntries(db, "test"), **options)

    yield make
    for db in opened:
        db.close()


@pytest.fixture
def new_router(store_kind, request):
    """`new_router(pool, **options)`: a SmartRouter on the store under test."""
    from sls_router import SmartRouter

    if store_kind == "local":
        yield SmartRouter
        return
    make_database = request.getfixturevalue("new_database")
    opened: list[SmartRouter] = []

    def make(pool, **options):
        router = SmartRouter.open(make_database(), pool, **options)
        opened.append(router)
        return router

    yield make
    for router in opened:
        router.close()

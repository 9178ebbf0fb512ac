"""How long the router takes to decide, without any model's time.

Fills the cache with `entries` synthetic entries in the scope of the timed requests
and gives `models` models a history of outcome records, then times `route()` (embed +
scope + cache lookup + predict + choose) on requests that miss and on requests that
hit. Entries are clustered like real traffic: 5,000 generated requests are embedded
with the router's embedder and every entry is one of them plus small noise (uniform
random vectors would be HNSW's worst case and nothing like text embeddings).

With ``refit`` (the default) the history goes in the way feedback does (the outcome
log, whose success rates become the kNN priors, and the kNN index) and the router
refits once, so the timed decisions also run the logistic predictors, as a router
that has served 20,000 requests does. ``refit=False`` gives the kNN index alone the
history, as this bench did before (no logistic predictors in the timed path).

``torch_embed_p50_ms`` is one single-query embedding by the torch MiniLM (``"minilm"``
as sentence-transformers runs it), timed in the same run on the miss texts, so the
decision's cost can be read as a fraction of it whatever the embedder under test.
:func:`compare_overhead` runs several embedders one after the other in one process, so
their figures (each with its own torch reference) can be read side by side.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from ..backends import CallableBackend
from ..cache import request_scope
from ..embeddings import EMBEDDERS, MiniLMEmbedder
from ..errors import ConfigurationError
from ..router import SmartRouter
from ..routing import query_features
from ..types import ModelSpec, Request

# Cached and uncached requests come from different topics, so the miss path really misses.
_HIT_TOPICS = (
    "disk quota exceeded for user",
    "connection reset by peer on port",
    "how do I rotate the api key",
)
_MISS_TOPICS = (
    "summarise the incident report for",
    "translate the release notes of",
    "classify the support ticket about",
)


_SUBJECTS = (
    "the billing service",
    "my laptop",
    "the nightly backup",
    "our k8s cluster",
    "the login page",
    "a customer invoice",
    "the search index",
    "the mobile app",
    "the payment webhook",
    "a shared drive",
    "the vpn client",
    "the data pipeline",
)
_ACTIONS = (
    "fails with a timeout",
    "returns error 500",
    "is very slow",
    "needs a refund",
    "lost its settings",
    "shows the wrong currency",
    "cannot connect",
    "crashed twice",
    "uses too much memory",
    "must be migrated",
    "rejects my password",
    "is out of disk",
)
_CONTEXTS = (
    "since the update",
    "every monday",
    "for user {n}",
    "in region eu-{n}",
    "after a restart",
    "on build {n}",
    "only in chrome",
    "with ticket #{n}",
)


def traffic(n: int, rng: np.random.Generator) -> list[str]:
    """`n` short support requests from a few subjects, actions and contexts."""
    return [
        f"{rng.choice(_SUBJECTS)} {rng.choice(_ACTIONS)} "
        f"{rng.choice(_CONTEXTS).format(n=rng.integers(1, 10_000))}"
        for _ in range(n)
    ]


def clustered(base: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` unit vectors, each one of `base` plus small noise: clusters like real traffic."""
    noisy = base[rng.integers(0, len(base), n)] + 0.02 * rng.standard_normal(
        (n, base.shape[1])
    ).astype(np.float32)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def _texts(n: int, rng: np.random.Generator, topics: tuple[str, ...]) -> list[str]:
    return [f"{topics[i % len(topics)]} item {i} {rng.integers(10**9)}" for i in range(n)]


def _torch_embed_ms(texts: list[str]) -> list[float]:
    """Milliseconds per single-text ``encode`` of the torch MiniLM, after one warm-up."""
    embedder = MiniLMEmbedder(backend="torch")
    embedder.encode(texts[:1])
    out = []
    for text in texts:
        start = time.perf_counter()
        embedder.encode([text])
        out.append((time.perf_counter() - start) * 1e3)
    return out


def measure_overhead(
    entries: int = 100_000,
    embedder: str = "static",
    models: int = 8,
    decisions: int = 1000,
    history: int = 20_000,
    seed: int = 0,
    refit: bool = True,
) -> dict:
    rng = np.random.default_rng(seed)
    pool = [
        (
            ModelSpec(f"model-{k}", input_per_mtok=0.1 * (k + 1), output_per_mtok=0.2 * (k + 1)),
            CallableBackend(lambda r: "unused"),
        )
        for k in range(models)
    ]
    router = SmartRouter(pool, embedder=embedder, random_state=seed, background_updates=False)
    cache = router.cache
    assert cache is not None  # built with the default cache
    scope = request_scope(Request(prompt="any prompt"))  # every timed request's scope
    texts = traffic(min(entries, 5000), rng)
    vectors = clustered(router.embedder.encode(texts), entries, rng)
    for i in tqdm(range(entries), desc="filling the cache", mininterval=2):
        cache.insert(f"synthetic {i}", f"answer {i}", scope, vector=vectors[i])
    names = [s for s in router.specs]
    for i in tqdm(range(history), desc="model history", mininterval=2):
        vector, model, score = vectors[i % entries], names[i % models], float(rng.random() < 0.6)
        if refit:
            features = query_features(texts[i % len(texts)], None)
            router._record_outcome(vector, features, model, score, "label")
        else:
            router.learner.knn.partial_fit(vector, model, score)
    if refit:
        router.update_now()
    miss_texts = _texts(decisions, rng, _MISS_TOPICS)
    hit_texts = _texts(decisions, rng, _HIT_TOPICS)
    for text, vec in zip(hit_texts, router.embedder.encode(hit_texts)):
        cache.insert(text, "cached answer", scope, vector=vec)
    miss_ms, hit_ms, served = [], [], {"miss": 0, "hit": 0}
    for text in miss_texts:
        start = time.perf_counter()
        plan = router.route(Request(prompt=text))
        miss_ms.append((time.perf_counter() - start) * 1e3)
        served["miss"] += plan.decision is None
    for text in hit_texts:
        start = time.perf_counter()
        plan = router.route(Request(prompt=text))
        hit_ms.append((time.perf_counter() - start) * 1e3)
        served["hit"] += plan.decision is None
    router.close()
    torch_ms = _torch_embed_ms(miss_texts[: min(len(miss_texts), 200)])
    return {
        "entries": entries,
        "embedder": router.embedder.name,
        "backend": getattr(router.embedder, "backend", router.embedder.name),
        "miss_p50_ms": round(float(np.percentile(miss_ms, 50)), 3),
        "miss_p99_ms": round(float(np.percentile(miss_ms, 99)), 3),
        "hit_p50_ms": round(float(np.percentile(hit_ms, 50)), 3),
        "hit_p99_ms": round(float(np.percentile(hit_ms, 99)), 3),
        "torch_embed_p50_ms": round(float(np.percentile(torch_ms, 50)), 3),
        "miss_over_torch_embed": round(
            float(np.percentile(miss_ms, 50) / np.percentile(torch_ms, 50)), 3
        ),
        "models": models,
        "decisions": decisions,
        "refit": refit,
        "logistic_models": len(router.learner.logistic.estimators_),
        "cache_hits_on_miss_path": served["miss"],
        "cache_hits_on_hit_path": served["hit"],
    }


def compare_overhead(embedders: Sequence[str], **options: Any) -> dict[str, dict]:
    """:func:`measure_overhead` for each registry name in turn, keyed by that name.

    Every name is checked before the first (long) run starts."""
    names = [name.strip().lower() for name in embedders]
    unknown = [name for name in names if name not in EMBEDDERS]
    if unknown or not names:
        raise ConfigurationError(
            f"unknown embedder(s) {unknown}; pass a comma-separated list of {', '.join(EMBEDDERS)}"
        )
    if len(set(names)) != len(names):
        raise ConfigurationError(f"embedder {names} named twice; name each one once")
    return {name: measure_overhead(embedder=name, **options) for name in names}

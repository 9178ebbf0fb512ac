"""How long the router takes to decide, without any model's time.

Fills the cache with `entries` synthetic entries (random unit vectors in the scope of
the timed requests) and gives `models` models a history of outcome records, then
times `route()` (embed + scope + cache lookup + predict + choose) on requests that
miss and on requests that hit.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from ..backends import CallableBackend
from ..cache import scope_key
from ..router import SmartRouter
from ..types import ModelSpec, Request

_WORDS = ("disk quota exceeded for user", "connection reset by peer on port",
          "how do I rotate the api key", "summarise the incident report for",
          "translate the release notes of", "classify the support ticket about")


def _texts(n: int, rng: np.random.Generator, tag: str) -> list[str]:
    return [f"{_WORDS[i % len(_WORDS)]} {tag}-{i} {rng.integers(1e9)}" for i in range(n)]


def measure_overhead(entries: int = 100_000, embedder: str = "static", models: int = 8,
                     decisions: int = 1000, history: int = 20_000, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    pool = [(ModelSpec(f"model-{k}", input_per_mtok=0.1 * (k + 1), output_per_mtok=0.2 * (k + 1)),
             CallableBackend(lambda r: "unused")) for k in range(models)]
    router = SmartRouter(pool, embedder=embedder, random_state=seed, background_updates=False)
    dim = router.embedder.dim
    scope = scope_key("default", params={}, system=None, history=[])
    vectors = rng.standard_normal((entries, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i in tqdm(range(entries), desc="filling the cache", mininterval=2):
        router.cache.insert(f"synthetic {i}", f"answer {i}", scope, vector=vectors[i])
    names = [s for s in router.specs]
    for i in tqdm(range(history), desc="model history", mininterval=2):
        router.knn.partial_fit(vectors[i % entries], names[i % models], float(rng.random() < 0.6))
    miss_texts = _texts(decisions, rng, "miss")
    hit_texts = _texts(decisions, rng, "hit")
    for text, vec in zip(hit_texts, router.embedder.encode(hit_texts)):
        router.cache.insert(text, "cached answer", scope, vector=vec)
    miss_ms, hit_ms, hits = [], [], 0
    for text in miss_texts:
        start = time.perf_counter()
        plan = router.route(Request(prompt=text))
        miss_ms.append((time.perf_counter() - start) * 1e3)
        hits += plan.decision is None
    for text in hit_texts:
        start = time.perf_counter()
        plan = router.route(Request(prompt=text))
        hit_ms.append((time.perf_counter() - start) * 1e3)
        hits += plan.decision is None
    router.close()
    return {"entries": entries, "embedder": router.embedder.name,
            "miss_p50_ms": round(float(np.percentile(miss_ms, 50)), 3),
            "miss_p99_ms": round(float(np.percentile(miss_ms, 99)), 3),
            "hit_p50_ms": round(float(np.percentile(hit_ms, 50)), 3),
            "hit_p99_ms": round(float(np.percentile(hit_ms, 99)), 3),
            "models": models, "decisions": decisions, "served_from_cache": hits}

"""GPTCache's cache benchmark protocol on paraphrase pairs.

Every `origin` is cached with its own answer (its text, so origins repeated verbatim
share one answer); every `similar` is asked. A hit serving the answer of its own
origin is positive, a hit serving any other answer is negative (a wrong answer
served), no hit is a miss. In feedback mode the run is online: origin i is inserted,
similar i is asked, and the verdict (or, on a miss, whether the nearest candidate
would have been right) is fed back before pair i + 1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..cache import AdaptiveThreshold, SemanticCache
from ..embeddings import Embedder, get_embedder
from ..errors import InvalidInputError

RESULT_KEYS = (
    "n",
    "positive",
    "negative",
    "miss",
    "hit_rate",
    "wrong_hit_rate",
    "embed_s",
    "lookup_p50_ms",
    "lookup_p99_ms",
)


def load_pairs(path: str | Path) -> list[dict[str, str]]:
    """Read a JSON list of {"origin", "similar"} pairs, refusing anything else."""
    try:
        pairs = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"cannot read pairs from {path} ({exc}); pass a JSON file "
            'holding a list of {"origin": ..., "similar": ...}.'
        ) from exc
    if not isinstance(pairs, list) or not pairs:
        raise InvalidInputError(f"{path} must hold a non-empty JSON list of pairs.")
    for i, pair in enumerate(pairs):
        if not (
            isinstance(pair, dict)
            and isinstance(pair.get("origin"), str)
            and isinstance(pair.get("similar"), str)
        ):
            raise InvalidInputError(
                f'{path}: pair {i} is not {{"origin": str, "similar": str}}}}; fix or remove it.'
            )
    return pairs


def fixed_threshold(similarity: float) -> AdaptiveThreshold:
    """A GPTCache-style rule: a fixed cosine threshold, no margin; run it without
    feedback (nothing is learned then)."""
    return AdaptiveThreshold(similarity=similarity, ratio=1.0)


def run_cache_bench(
    pairs: Sequence[dict[str, str]],
    embedder: str | Embedder = "minilm",
    *,
    feedback: bool = False,
    threshold: AdaptiveThreshold | None = None,
    vectors: tuple[np.ndarray, np.ndarray] | None = None,
    contrast: bool = True,
) -> dict:
    """Run the protocol once; returns the figures under `RESULT_KEYS`.

    `vectors` (origin and similar embeddings) lets several runs share one embedding pass.
    """
    embedder = get_embedder(embedder)
    origins = [p["origin"] for p in pairs]
    similars = [p["similar"] for p in pairs]
    embed_s = 0.0
    if vectors is None:
        start = time.perf_counter()
        vectors = (embedder.encode(origins), embedder.encode(similars))
        embed_s = time.perf_counter() - start
    origin_vecs, similar_vecs = vectors
    cache = SemanticCache(
        embedder, threshold=threshold, capacity=max(len(pairs), 1), contrast=contrast
    )
    if not feedback:
        for text, vec in zip(origins, origin_vecs):
            cache.insert(text, text, vector=vec)
    positive = negative = miss = 0
    lookup_s = []
    for i, (origin, similar) in enumerate(zip(origins, similars)):
        if feedback:
            cache.insert(origin, origin, vector=origin_vecs[i])
        start = time.perf_counter()
        result = cache.lookup(similar, vector=similar_vecs[i])
        lookup_s.append(time.perf_counter() - start)
        if result.hit:
            right = result.answer == origin
            positive += right
            negative += not right
        else:
            miss += 1
        if feedback and result.candidate_id is not None:
            would_be_right = cache.get(result.candidate_id).answer == origin
            cache.observe(result, would_be_right)
    hits = positive + negative
    return {
        "n": len(pairs),
        "positive": positive,
        "negative": negative,
        "miss": miss,
        "hit_rate": hits / len(pairs),
        "wrong_hit_rate": negative / hits if hits else 0.0,
        "embed_s": round(embed_s, 3),
        "lookup_p50_ms": float(np.percentile(lookup_s, 50) * 1e3),
        "lookup_p99_ms": float(np.percentile(lookup_s, 99) * 1e3),
    }

"""Opposites and paraphrases: does a cold cache serve the answer of the question it
was asked, and never the answer of a question that only reads the same?

A pair file is JSON Lines of {"a", "b", "same"} (optional "kind", "domain"). Every `a`
is cached, cold (no feedback), with its own answer; every `b` is then asked. For a
contrast pair (same = false) a hit that serves its `a`'s answer is an opposite served;
for a paraphrase pair (same = true) it is a paraphrase served right; any other hit is a
wrong hit. Lookups are timed with the contrast check on and off over the same cache
and vectors (embedding excluded), so the check's own cost on a hit is measured apart.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import ContrastCheck, SemanticCache
from ..embeddings import Embedder, get_embedder
from ..errors import InvalidInputError


def load_contrast_pairs(path: str | Path) -> list[dict[str, Any]]:
    """Read the pairs, refusing a malformed line with its number."""
    pairs = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path} ({exc}); pass a JSON Lines file.") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            pair = json.loads(line)
        except ValueError as exc:
            raise InvalidInputError(f"{path}:{number}: not JSON ({exc}); fix the line.") from exc
        if not (
            isinstance(pair, dict)
            and isinstance(pair.get("a"), str)
            and isinstance(pair.get("b"), str)
            and isinstance(pair.get("same"), bool)
        ):
            raise InvalidInputError(
                f'{path}:{number}: expected {{"a": str, "b": str, "same": bool}}; fix the line.'
            )
        pairs.append(pair)
    if not pairs:
        raise InvalidInputError(f"{path} holds no pairs.")
    return pairs


def run_contrast_bench(
    pairs: Sequence[dict[str, Any]],
    embedder: str | Embedder = "minilm",
    *,
    contrast: ContrastCheck | bool = True,
) -> dict[str, Any]:
    embedder = get_embedder(embedder)
    a_vecs = embedder.encode([p["a"] for p in pairs])
    b_vecs = embedder.encode([p["b"] for p in pairs])
    cache = SemanticCache(embedder, contrast=contrast, capacity=2 * len(pairs) + 1)
    plain = SemanticCache(embedder, contrast=False, capacity=2 * len(pairs) + 1)
    for pair, vec in zip(pairs, a_vecs):
        cache.insert(pair["a"], pair["a"], vector=vec)
        plain.insert(pair["a"], pair["a"], vector=vec)
    opposites = paraphrases_right = wrong_other = 0
    served_kinds: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    missed_paraphrases: list[dict[str, Any]] = []
    served_opposites: list[dict[str, Any]] = []
    checked_ms, plain_ms = [], []
    for pair, vec in zip(pairs, b_vecs):
        start = time.perf_counter()
        without = plain.lookup(pair["b"], vector=vec)
        middle = time.perf_counter()
        found = cache.lookup(pair["b"], vector=vec)
        end = time.perf_counter()
        if without.hit:  # the check runs only on would-be hits: time it there
            plain_ms.append((middle - start) * 1e3)
            checked_ms.append((end - middle) * 1e3)
        if found.reason == "contrast" and found.contrast is not None:
            refused[found.contrast.kind] += 1
        if not found.hit:
            if pair["same"]:
                missed_paraphrases.append(_explain(pair, found))
            continue
        if found.answer != pair["a"]:
            wrong_other += 1
        elif pair["same"]:
            paraphrases_right += 1
        else:
            opposites += 1
            served_kinds[pair.get("kind", "?")] += 1
            served_opposites.append(_explain(pair, found))
    n_contrast = sum(1 for p in pairs if not p["same"])
    n_same = len(pairs) - n_contrast
    return {
        "contrast_pairs": n_contrast,
        "paraphrase_pairs": n_same,
        "opposites_served": opposites,
        "opposites_served_rate": opposites / n_contrast if n_contrast else 0.0,
        "paraphrases_served_right": paraphrases_right,
        "paraphrases_served_right_rate": paraphrases_right / n_same if n_same else 0.0,
        "other_wrong_hits": wrong_other,
        "refusals": dict(refused),
        "opposites_served_by_kind": dict(served_kinds),
        "hit_lookup_p50_ms": _p50(checked_ms),
        "hit_lookup_p50_ms_without_check": _p50(plain_ms),
        "check_adds_p50_ms": _p50(checked_ms) - _p50(plain_ms),
        "served_opposites": served_opposites,
        "missed_paraphrases": missed_paraphrases,
    }


def _explain(pair: dict[str, Any], found: Any) -> dict[str, Any]:
    contrast = found.contrast
    return {
        "a": pair["a"],
        "b": pair["b"],
        "kind": pair.get("kind"),
        "reason": found.reason,
        "similarity": round(float(found.similarity), 3),
        "contrast": None
        if contrast is None
        else [contrast.kind, contrast.query_span, contrast.cached_span],
    }


def _p50(values: list[float]) -> float:
    return float(np.percentile(values, 50)) if values else float("nan")

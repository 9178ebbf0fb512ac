"""The embedded default store: a router's whole state in one directory, no server.

Layout: `manifest.json` (options, model specs, token/latency statistics, update log),
`cache/` (SemanticCache.save) and the training data as `outcome-*-<generation>` files.
Data files of a new generation are written first and the manifest last, so a crash
at any moment leaves the previous state loadable. Predictors are refit from the saved
training data on load: nothing is pickled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._persist import atomic_write_json, check_manifest, current_generation, read_json
from ..cache import SemanticCache
from ..embeddings import Embedder, get_embedder
from ..errors import StateError
from ..outcomes import OutcomeLog
from ..routing import LatencyPredictor, TokenCostPredictor

if TYPE_CHECKING:
    from ..backends import Backend
    from ..router import SmartRouter
    from ..types import ModelSpec

FORMAT_VERSION = 1
_KIND = "SmartRouter"


def save_router(router: SmartRouter, directory: Path) -> None:
    router.updates.wait()
    old = current_generation(directory)
    gen = old + 1
    if router.cache is not None:
        router.cache.save(directory / "cache")
    router.outcomes.save(directory, gen)
    manifest = {
        "kind": _KIND, "format_version": FORMAT_VERSION, "generation": gen,
        "embedder": router.embedder.name, "options": router.options,
        "has_cache": router.cache is not None,
        "models": [dataclasses.asdict(s) for s in router.specs.values()],
        "tokens": router.tokens.to_state(), "latency": router.latency.to_state(),
        "updates": router.updates.to_state(),
    }
    atomic_write_json(directory / "manifest.json", manifest)
    for stale in (f"outcome-vectors-{old}.npy", f"outcome-features-{old}.npy",
                  f"outcomes-{old}.json"):
        (directory / stale).unlink(missing_ok=True)


def has_state(directory: Path) -> bool:
    return (directory / "manifest.json").is_file()


def load_router(cls: type[SmartRouter], directory: Path,
                pool: Sequence[tuple[ModelSpec, Backend]], embedder: str | Embedder | None,
                overrides: dict[str, Any]) -> SmartRouter:
    manifest = check_manifest(read_json(directory / "manifest.json"), _KIND, FORMAT_VERSION,
                              directory)
    try:
        embedder = get_embedder(embedder or manifest["embedder"])
        cache: bool | SemanticCache = False
        if manifest["has_cache"]:
            cache = SemanticCache.load(directory / "cache", embedder)
        router = cls(pool, embedder=embedder, cache=cache,
                     **{**manifest["options"], **overrides})
        gen = int(manifest["generation"])
        router.outcomes = OutcomeLog.load(directory, gen, embedder.dim,
                                          router.outcomes.n_features)
        router.tokens = TokenCostPredictor.from_state(manifest["tokens"])
        router.latency = LatencyPredictor.from_state(manifest["latency"])
        router.updates.restore(manifest["updates"])
    except StateError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"{directory} holds an incomplete or corrupted router state ({exc!r}); "
                         "restore it from a backup or start afresh.") from exc
    vectors, features, models, scores, weights = router.outcomes.arrays()
    if models:
        router.knn.fit(vectors, models, scores, weights)
        router.update_now()
    return router

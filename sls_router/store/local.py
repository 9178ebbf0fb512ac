"""The embedded default store: a router's whole state in one directory, no server.

Layout: `manifest.json` (options, model specs, token/latency statistics, update log),
`cache-<generation>/` (SemanticCache.save) and the training data as
`outcome-*-<generation>` files. Data files of a new generation, the cache included, are
written first and the manifest last: the manifest is the one commit point, so a crash at
any moment leaves the previous state (cache and outcomes of the same generation)
loadable. Predictors are refit from the saved training data on load: nothing is pickled.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
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
    old_cache_dir = _previous_cache_dir(directory)
    gen = old + 1
    cache_dir = f"cache-{gen}"
    if router.cache is not None:
        # a fresh folder per generation: writing into the live cache folder would commit the
        # new cache before the router's manifest, and a crash between the two mixed states
        shutil.rmtree(directory / cache_dir, ignore_errors=True)  # left by a crashed save
        router.cache.save(directory / cache_dir)
    router.outcomes.save(directory, gen)
    manifest = {
        "kind": _KIND, "format_version": FORMAT_VERSION, "generation": gen,
        "embedder": router.embedder.name, "options": router.options,
        "has_cache": router.cache is not None, "cache_dir": cache_dir,
        "models": [dataclasses.asdict(s) for s in router.specs.values()],
        "tokens": router.tokens.to_state(), "latency": router.latency.to_state(),
        "updates": router.updates.to_state(),
    }
    atomic_write_json(directory / "manifest.json", manifest)
    if old_cache_dir is not None and old_cache_dir != cache_dir:
        shutil.rmtree(directory / old_cache_dir, ignore_errors=True)
    # sweep every other generation, not only the previous one: a crash between the commit
    # and this sweep, or in the middle of a save, leaves files nothing else would remove
    for path in directory.iterdir():
        match = _GENERATION.fullmatch(path.name)
        stale = match is not None and int(next(g for g in match.groups() if g)) != gen
        if stale and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif stale or _TEMP_FILE.fullmatch(path.name):
            path.unlink(missing_ok=True)


# `cache` is the layout of states saved before cache folders had generations
_CACHE_DIR = re.compile(r"cache(-[0-9]+)?")
_GENERATION = re.compile(r"cache-([0-9]+)|outcome-(?:vectors|features)-([0-9]+)\.npy"
                         r"|outcomes-([0-9]+)\.json")
_TEMP_FILE = re.compile(r"\.(manifest\.json|outcome-(vectors|features)-[0-9]+\.npy"
                        r"|outcomes-[0-9]+\.json)\.\w+")


def _previous_cache_dir(directory: Path) -> str | None:
    try:
        manifest = read_json(directory / "manifest.json")
        name = manifest.get("cache_dir", "cache") if manifest.get("has_cache") else None
    except (StateError, AttributeError):
        return None
    return name if isinstance(name, str) and _CACHE_DIR.fullmatch(name) else None


def has_state(directory: Path) -> bool:
    return (directory / "manifest.json").is_file()


class LocalStore:
    """The embedded default: state saved to one directory when `save` is called."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @property
    def generation(self) -> int:
        """The number of the last save committed here (0 before the first): the one `open`
        loads. Whoever interrupts saves (the lab's kill -9 bench) checks against it."""
        return current_generation(self.directory)

    def open(self, cls: type[SmartRouter], pool: Sequence[tuple[ModelSpec, Backend]],
             **options: Any) -> SmartRouter:
        if has_state(self.directory):
            embedder = options.pop("embedder", None)
            return load_router(cls, self.directory, pool, embedder, options)
        return cls(pool, **options)

    def save(self, router: SmartRouter) -> None:
        save_router(router, self.directory)

    def record_outcome(self, *args: Any) -> None:
        pass  # kept in memory until `save`

    def record_feedback(self, *args: Any) -> None:
        pass

    def close(self) -> None:
        pass


def load_router(cls: type[SmartRouter], directory: Path,
                pool: Sequence[tuple[ModelSpec, Backend]], embedder: str | Embedder | None,
                overrides: dict[str, Any]) -> SmartRouter:
    manifest = check_manifest(read_json(directory / "manifest.json"), _KIND, FORMAT_VERSION,
                              directory)
    try:
        embedder = get_embedder(embedder or manifest["embedder"])
        cache: bool | SemanticCache = False
        if manifest["has_cache"]:
            cache_dir = manifest.get("cache_dir", "cache")
            if not isinstance(cache_dir, str) or not _CACHE_DIR.fullmatch(cache_dir):
                raise StateError(f"{directory}: the manifest names cache folder {cache_dir!r}; "
                                 "the state is corrupted. Restore it from a backup.")
            cache = SemanticCache.load(directory / cache_dir, embedder)
        router = cls(pool, embedder=embedder, cache=cache,
                     **{**manifest["options"], **overrides})
        gen = int(manifest["generation"])
        router.outcomes = OutcomeLog.load(directory, gen, embedder.dim,
                                          router.outcomes.n_features)
        router.tokens = TokenCostPredictor.from_state(manifest["tokens"])
        router.latency = LatencyPredictor.from_state(manifest["latency"])
        router.updates.restore(manifest["updates"])
        if len(router.outcomes):  # inside the try: garbled rows are a corrupted state too
            router.refit_knn()
            router.update_now()
    except StateError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        raise StateError(f"{directory} holds an incomplete or corrupted router state ({exc!r}); "
                         "restore it from a backup or start afresh.") from exc
    return router

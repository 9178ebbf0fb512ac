"""SmartRouter's state entry points: save to a directory or a store, load, open.

Where state lives is the store's business (sls_router/store/): a directory written
atomically when `save` is called (the embedded default), or a PostgreSQL database that
every replica reads and writes as it goes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .backends import Backend
    from .embeddings import Embedder
    from .router import SmartRouter
    from .store import Store
    from .types import ModelSpec


class StateMixin:
    store: Store | None

    def save(self, directory: str | Path | None = None) -> None:
        """Make the state durable: into `directory` (see store/local.py: atomic,
        versioned, no pickle), or, without one, into the store the router was opened
        from (a PostgreSQL store writes as it goes; this waits for queued writes)."""
        if directory is not None:
            from .store.local import save_router

            save_router(self, Path(directory))
        elif self.store is not None:
            self.store.save(self)
        else:
            raise ConfigurationError("this router was not opened from a store; pass a "
                                     "directory to save(), or use SmartRouter.open(state, pool).")

    @classmethod
    def load(cls, directory: str | Path, pool: Sequence[tuple[ModelSpec, Backend]],
             embedder: str | Embedder | None = None, **overrides: Any) -> SmartRouter:
        """Restore a router saved in `directory` around `pool` (backends are not saved;
        pass them again)."""
        from .store.local import load_router

        return load_router(cls, Path(directory), pool, embedder, overrides)

    @classmethod
    def open(cls, state: str | Path | Store | None, pool: Sequence[tuple[ModelSpec, Backend]],
             **options: Any) -> SmartRouter:
        """The router kept in `state`, or a new one there: a directory (the state saved in
        it, if any; `save()` checkpoints it), a postgresql:// URL (a cache and feedback
        shared with every replica opened on it), a Store, or None for the URL in
        SLS_ROUTER_DATABASE_URL."""
        from .store import open_store

        store = open_store(state)
        router = store.open(cls, list(pool), **options)
        router.store = store
        return router

"""Where router state lives: `LocalStore` (one directory, the embedded default) or
`PostgresStore` (one database shared by many replicas).

`SmartRouter.open(state, pool)` picks one from `state`: a directory path, a
`postgresql://` URL, a Store, or None for the URL in SLS_ROUTER_DATABASE_URL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..errors import ConfigurationError
from .local import LocalStore

if TYPE_CHECKING:
    from ..backends import Backend
    from ..router import SmartRouter
    from ..types import ModelSpec

DATABASE_URL_ENV = "SLS_ROUTER_DATABASE_URL"


class Store(Protocol):
    """What a router needs from the place its state lives."""

    def open(self, cls: type[SmartRouter], pool: list[tuple[ModelSpec, Backend]],
             **options: Any) -> SmartRouter:
        """The router with this store's state (a new one when there is none yet)."""

    def save(self, router: SmartRouter) -> None:
        """Make everything the router learned durable."""

    def record_outcome(self, vector: np.ndarray, features: np.ndarray, model: str,
                       score: float, weight: float, source: str) -> None:
        """One training row for the predictors, as it is learned."""

    def record_feedback(self, request_id: str, namespace: str, model: str, cache_hit: bool,
                        score: float, source: str) -> None:
        """One feedback event, as it arrives."""

    def close(self) -> None: ...


def open_store(state: str | Path | Store | None) -> Store:
    """A Store from a directory, a postgresql:// URL, a Store, or None (environment)."""
    if state is None:
        state = os.environ.get(DATABASE_URL_ENV)
        if not state:
            raise ConfigurationError(f"no state given and {DATABASE_URL_ENV} is not set; pass a "
                                     "directory or a postgresql:// URL.")
    if isinstance(state, str) and state.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(state)
    if isinstance(state, (str, Path)):
        if not str(state).strip():
            raise ConfigurationError("state is empty; pass a directory or a postgresql:// URL.")
        return LocalStore(Path(state))
    if all(hasattr(state, m) for m in ("open", "save", "record_outcome", "record_feedback")):
        return state
    raise ConfigurationError(f"state={state!r}: pass a directory, a postgresql:// URL or a "
                             "Store.")


__all__ = ["DATABASE_URL_ENV", "LocalStore", "Store", "open_store"]

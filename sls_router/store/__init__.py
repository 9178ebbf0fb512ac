"""Where router state lives: `LocalStore` (one directory, the embedded default) or
`PostgresStore` (one database shared by many replicas).

A store holds data only: snapshots (`Snapshot`, plain JSON and arrays), the training
rows and feedback events as they happen, and, for a shared store, the cache's entries.
It imports neither the router nor the learner; `SmartRouter.open(state, pool)` composes
the pieces, picking the store from `state`: a directory path, a `postgresql://` URL, a
Store, or None for the URL in SLS_ROUTER_DATABASE_URL.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .._persist import Snapshot
from ..errors import ConfigurationError
from ..types import Outcome
from .local import LocalStore

if TYPE_CHECKING:
    from ..cache.entries import EntryStore
    from ..embeddings import Embedder

DATABASE_URL_ENV = "SLS_ROUTER_DATABASE_URL"
Verdict = tuple[float, float, bool]  # (similarity, distance ratio, correct): a cache verdict


class Store(Protocol):
    """What a router needs from the place its state lives.

    `sync_every_s` is how often a router pulls what others wrote (None: nobody else
    writes here)."""

    @property
    def sync_every_s(self) -> float | None: ...

    def load(self) -> Snapshot | None:
        """The last saved snapshot, or None when there is none (a new state)."""

    def attach(self, embedder: Embedder) -> EntryStore | None:
        """Get ready for a router with `embedder`; returns where the cache's entries live
        when the store keeps them itself (None: the cache keeps them, in the snapshot)."""

    def save(self, snapshot: Snapshot) -> None:
        """Make `snapshot` (and everything appended so far) durable."""

    def append_outcome(self, outcome: Outcome) -> None:
        """One training row for the predictors, as it is learned."""

    def append_feedback(
        self,
        request_id: str,
        namespace: str,
        model: str,
        cache_hit: bool,
        score: float,
        source: str,
    ) -> None:
        """One feedback event, as it arrives."""

    def log_update(self, entry: dict[str, Any]) -> None:
        """One refit's log entry."""

    def pull(self, cursor: str) -> tuple[Sequence[Outcome], Sequence[Verdict], str]:
        """Training rows and cache verdicts that others wrote since `cursor` (start with
        "0"), and the cursor to pass next time."""

    def close(self) -> None: ...


def open_store(state: str | Path | Store | None) -> Store:
    """A Store from a directory, a postgresql:// URL, a Store, or None (environment)."""
    if state is None:
        state = os.environ.get(DATABASE_URL_ENV)
        if not state:
            raise ConfigurationError(
                f"no state given and {DATABASE_URL_ENV} is not set; pass a "
                "directory or a postgresql:// URL."
            )
    if isinstance(state, str) and state.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(state)
    if isinstance(state, (str, Path)):
        if not str(state).strip():
            raise ConfigurationError("state is empty; pass a directory or a postgresql:// URL.")
        return LocalStore(Path(state))
    if all(callable(getattr(state, m, None)) for m in ("load", "attach", "save", "pull")):
        return state
    raise ConfigurationError(f"state={state!r}: pass a directory, a postgresql:// URL or a Store.")


__all__ = ["DATABASE_URL_ENV", "LocalStore", "Store", "Verdict", "open_store"]

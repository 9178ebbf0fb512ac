"""The embedded default store: a router's whole state in one directory, no server.

The directory holds one snapshot in sls-router's one save format
(`_persist.write_snapshot`): `manifest.json` (every JSON part, the commit point) and
one `.npy` file per array, of the same generation. A crash at any moment leaves the
previous snapshot loadable. Nothing is pickled: predictors that need a batch fit are
refit from the saved training rows on load.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._persist import Snapshot, current_generation, read_snapshot, snapshot_files, write_snapshot
from ..types import Outcome

FORMAT_VERSION = 2  # 2: one snapshot (router, learner, cache) in one manifest
KIND = "SmartRouter"


class LocalStore:
    """State saved to one directory when `save` is called; nobody else writes there."""

    sync_every_s = None

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @property
    def generation(self) -> int:
        """The number of the last save committed here (0 before the first): the one `load`
        reads. Whoever interrupts saves (the lab's kill -9 bench) checks against it."""
        return current_generation(self.directory)

    def files(self) -> set[str]:
        """The files the last committed save uses; anything else here is debris of a cut
        save, which the next save removes."""
        return snapshot_files(self.directory)

    def load(self) -> Snapshot | None:
        if not (self.directory / "manifest.json").is_file():
            return None
        return read_snapshot(self.directory, KIND, FORMAT_VERSION)

    def attach(self, embedder: Any) -> None:
        return None  # the cache keeps its entries in memory; they are saved in the snapshot

    def save(self, snapshot: Snapshot) -> None:
        write_snapshot(self.directory, KIND, FORMAT_VERSION, snapshot)

    def append_outcome(self, outcome: Outcome) -> None:
        pass  # kept in memory until `save`

    def append_feedback(self, *args: Any) -> None:
        pass

    def log_update(self, entry: dict[str, Any]) -> None:
        pass  # the log is part of the snapshot

    def pull(self, cursor: str) -> tuple[Sequence[Outcome], Sequence[Any], str]:
        return (), (), cursor

    def close(self) -> None:
        pass

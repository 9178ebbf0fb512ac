"""Cache records and where they are kept: the cache decides, an entry store holds.

`CacheEntry` is one cached answer; `EntryStore` is what the cache needs from storage,
and nothing of its rules. `LocalEntries` (the embedded default) keeps entries in memory
with one `VectorIndex` per scope and saves itself to a directory;
`sls_router.store.postgres.PostgresEntries` keeps them in a shared database as it goes.
Both pass the same conformance suite (`sls_router.testing.EntryStoreTests`), so the
cache's rules are written once and behave the same on either.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .._persist import Snapshot, reading_saved
from ..errors import StateError
from ..index import VectorIndex
from .lessons import Lessons, LocalLessons
from .thresholds import EntryVerdicts


def answer_hash(answer: str) -> str:
    """What tells two answers apart (an answer marked wrong is known by it)."""
    return hashlib.sha256(answer.encode("utf-8", "surrogatepass")).hexdigest()[:24]


@dataclass
class CacheEntry:
    """One cached answer; `payload` carries JSON-able extras (model, usage, ...)."""

    id: int
    scope: str
    text: str
    answer: str
    answer_hash: str
    created_at: float
    expires_at: float | None = None
    payload: dict[str, Any] | None = None
    hits: int = 0
    confirmed: bool = True
    verdicts: EntryVerdicts = field(default_factory=EntryVerdicts)

    def to_state(self) -> dict:
        return {
            "id": self.id,
            "scope": self.scope,
            "text": self.text,
            "answer": self.answer,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "payload": self.payload,
            "hits": self.hits,
            "confirmed": self.confirmed,
            "verdicts": self.verdicts.to_state(),
        }

    @classmethod
    def from_state(cls, s: dict) -> CacheEntry:
        return cls(
            id=int(s["id"]),
            scope=s["scope"],
            text=s["text"],
            answer=s["answer"],
            answer_hash=answer_hash(s["answer"]),
            created_at=float(s["created_at"]),
            expires_at=s["expires_at"],
            payload=s["payload"],
            hits=int(s["hits"]),
            confirmed=bool(s["confirmed"]),
            verdicts=EntryVerdicts.from_state(s["verdicts"]),
        )


Neighbours = list[tuple[CacheEntry, float]]  # entries and their cosine similarity, best first


class EntryStore(Protocol):
    """Storage of cache entries and their unit vectors, by scope; every method is thread-safe.

    An entry a store returns may be changed by the cache (hits, confirmation, verdicts);
    `touch` and `update` write such changes back.
    """

    @property
    def lessons(self) -> Lessons:
        """The cache's lessons, kept, saved and shared alongside the entries."""

    def __len__(self) -> int: ...
    def scope_count(self) -> int: ...
    def ids(self) -> list[int]:
        """Every entry id held, least recently used first."""

    def new_id(self) -> int: ...
    def add(self, entry: CacheEntry, vector: np.ndarray) -> None: ...
    def get(self, entry_id: int) -> CacheEntry | None: ...
    def search(
        self,
        scope: str,
        vector: np.ndarray,
        k: int,
        now: float,
    ) -> tuple[Neighbours, int] | None:
        """The k nearest live entries of `scope`, best first, and how many expired ones
        were dropped on the way; None when the store cannot be reached."""

    def touch(self, entry: CacheEntry) -> None:
        """The entry was served: count the hit and make it the most recently used."""

    def update(self, entry: CacheEntry) -> None:
        """Its confirmation or verdicts changed: write them back."""

    def remove(self, entry_id: int) -> bool:
        """Drop one entry; False when it was not held."""

    def clear(self, scope: str | None) -> int: ...
    def expire(self, now: float) -> int: ...
    def evict(self, capacity: int) -> int:
        """Drop least recently used entries beyond `capacity`; returns how many."""

    def snapshot(self) -> Snapshot | None:
        """Every entry and lesson as plain data, to save with the cache; None when the
        store keeps them itself (a shared database: this waits for queued writes)."""


class LocalEntries:
    """In-memory entries in LRU order, one FAISS `VectorIndex` per scope.

    They are saved with the cache, as part of its snapshot.
    """

    def __init__(
        self, dim: int, *, hnsw_min_entries: int = 10_000, lessons: LocalLessons | None = None
    ) -> None:
        self.dim = dim
        self.hnsw_min_entries = hnsw_min_entries
        self.lessons = lessons if lessons is not None else LocalLessons()
        self._lock = threading.RLock()
        self._entries: OrderedDict[int, CacheEntry] = OrderedDict()
        self._indexes: dict[str, VectorIndex] = {}
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._entries)

    def scope_count(self) -> int:
        return len(self._indexes)

    def ids(self) -> list[int]:
        with self._lock:
            return list(self._entries)

    def new_id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id - 1

    def add(self, entry: CacheEntry, vector: np.ndarray) -> None:
        with self._lock:
            self._index_for(entry.scope).add(np.array([entry.id]), vector.reshape(1, -1))
            self._entries[entry.id] = entry

    def get(self, entry_id: int) -> CacheEntry | None:
        return self._entries.get(entry_id)

    def search(
        self,
        scope: str,
        vector: np.ndarray,
        k: int,
        now: float,
    ) -> tuple[Neighbours, int]:
        with self._lock:
            index = self._indexes.get(scope)
            if index is None:
                return [], 0
            live: Neighbours = []
            expired = 0
            for entry_id, sim in index.search(vector, k):
                entry = self._entries[entry_id]
                if entry.expires_at is not None and now >= entry.expires_at:
                    self._remove(entry_id)
                    expired += 1
                else:
                    live.append((entry, sim))
            return live, expired

    def touch(self, entry: CacheEntry) -> None:
        with self._lock:
            entry.hits += 1
            if entry.id in self._entries:
                self._entries.move_to_end(entry.id)

    def update(self, entry: CacheEntry) -> None:
        pass  # entries are the live objects: nothing to write back

    def remove(self, entry_id: int) -> bool:
        with self._lock:
            if entry_id not in self._entries:
                return False
            self._remove(entry_id)
            return True

    def clear(self, scope: str | None) -> int:
        return self._drop(lambda e: scope is None or e.scope == scope)

    def expire(self, now: float) -> int:
        return self._drop(lambda e: e.expires_at is not None and now >= e.expires_at)

    def evict(self, capacity: int) -> int:
        with self._lock:
            evicted = 0
            while len(self._entries) > capacity:
                self._remove(next(iter(self._entries)))
                evicted += 1
            return evicted

    # -- persistence ----------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        with self._lock:
            entries, vectors = self._snapshot()
            return Snapshot(
                {
                    "entries": [e.to_state() for e in entries],
                    "next_id": self._next_id,
                    "wrong_answers": self.lessons.to_state(),
                },
                {"vectors": vectors},
            )

    @classmethod
    def from_snapshot(
        cls, snapshot: Snapshot, dim: int, *, hnsw_min_entries: int = 10_000
    ) -> LocalEntries:
        """The entries `snapshot()` gave; refuses anything inconsistent with StateError."""
        with reading_saved("the saved cache entries"):
            vectors = snapshot.arrays["vectors"]
            entries = [CacheEntry.from_state(s) for s in snapshot.meta["entries"]]
            if vectors.shape != (len(entries), dim) or vectors.dtype != np.float32:
                raise StateError(
                    f"cache vectors {vectors.shape} do not match "
                    f"{len(entries)} entries; the state is corrupted."
                )
            if not np.isfinite(vectors).all():
                raise StateError(
                    "cache vectors hold NaN or infinity; the state is "
                    "corrupted. Restore it from a backup."
                )
            store = cls(
                dim,
                hnsw_min_entries=hnsw_min_entries,
                lessons=LocalLessons.from_state(snapshot.meta["wrong_answers"]),
            )
            store._restore(entries, vectors)
            store._next_id = int(snapshot.meta["next_id"])
        return store

    def _snapshot(self) -> tuple[list[CacheEntry], np.ndarray]:
        """Every entry (LRU order) and its vector, row for row."""
        ids = list(self._entries)
        by_scope: dict[str, list[int]] = {}
        for i in ids:
            by_scope.setdefault(self._entries[i].scope, []).append(i)
        vectors = np.zeros((len(ids), self.dim), dtype=np.float32)
        row = {entry_id: r for r, entry_id in enumerate(ids)}
        for scope, scope_ids in by_scope.items():
            vectors[[row[i] for i in scope_ids]] = self._indexes[scope].vectors(scope_ids)
        return [self._entries[i] for i in ids], vectors

    def _restore(self, entries: list[CacheEntry], vectors: np.ndarray) -> None:
        by_scope: dict[str, list[int]] = {}
        for row, entry in enumerate(entries):
            self._entries[entry.id] = entry
            by_scope.setdefault(entry.scope, []).append(row)
        for scope, rows in by_scope.items():
            ids = np.array([entries[r].id for r in rows], dtype=np.int64)
            self._index_for(scope).add(ids, vectors[rows])

    # -- internals --------------------------------------------------------------------
    def _drop(self, doomed: Callable[[CacheEntry], bool]) -> int:
        with self._lock:
            ids = [i for i, e in self._entries.items() if doomed(e)]
            for i in ids:
                self._remove(i)
            return len(ids)

    def _index_for(self, scope: str) -> VectorIndex:
        index = self._indexes.get(scope)
        if index is None:
            index = VectorIndex(self.dim, hnsw_min_entries=self.hnsw_min_entries)
            self._indexes[scope] = index
        return index

    def _remove(self, entry_id: int) -> None:
        entry = self._entries.pop(entry_id)
        index = self._indexes[entry.scope]
        index.remove([entry_id])
        if len(index) == 0:
            del self._indexes[entry.scope]

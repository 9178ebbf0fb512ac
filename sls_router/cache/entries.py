"""Where a SemanticCache keeps its entries: the cache decides, an entry store holds.

`LocalEntries` (the embedded default) keeps them in memory with one FAISS index per
scope; `sls_router.store.postgres.PostgresEntries` keeps them in a shared database.
Both answer the same few questions, so the cache's rules (thresholds, verdicts,
wrong answers) are written once and behave the same on either.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..index import VectorIndex

if TYPE_CHECKING:
    from .semantic import CacheEntry

Neighbours = list[tuple["CacheEntry", float]]


class EntryStore(Protocol):
    """Storage of cache entries and their vectors; every method is thread-safe."""

    shared: bool  # True when other processes write the same entries

    def __len__(self) -> int: ...
    def scope_count(self) -> int: ...
    def new_id(self) -> int: ...
    def add(self, entry: CacheEntry, vector: np.ndarray) -> None: ...
    def search(self, scope: str, vector: np.ndarray, k: int, now: float,
               ) -> tuple[Neighbours, int] | None:
        """The k nearest live entries of `scope`, best first, and how many expired ones
        were dropped on the way; None when the store cannot be reached."""
    def get(self, entry_id: int) -> CacheEntry | None: ...
    def ids(self) -> list[int]: ...
    def remove(self, entry_id: int) -> bool: ...
    def touch(self, entry: CacheEntry) -> None:
        """The entry was served: count the hit and keep it from eviction."""
    def update(self, entry: CacheEntry) -> None:
        """Its verdicts or confirmation changed: persist them."""
    def clear(self, scope: str | None) -> int: ...
    def expire(self, now: float) -> int: ...
    def evict(self, capacity: int) -> int:
        """Drop least recently used entries beyond `capacity`; returns how many."""
    def mark_wrong(self, scope: str, answer_hash: str) -> None: ...
    def is_wrong(self, scope: str, answer_hash: str) -> bool: ...
    def learned(self, similarity: float, ratio: float, correct: bool) -> None:
        """A verdict for the global thresholds (a shared store publishes it)."""


class LocalEntries:
    """In-memory entries in LRU order, one FAISS `VectorIndex` per scope."""

    shared = False

    def __init__(self, dim: int, *, hnsw_min_entries: int = 10_000) -> None:
        self.dim = dim
        self.hnsw_min_entries = hnsw_min_entries
        self._lock = threading.RLock()
        self._entries: OrderedDict[int, CacheEntry] = OrderedDict()
        self._indexes: dict[str, VectorIndex] = {}
        self.wrong_answers: set[tuple[str, str]] = set()
        self.next_id = 1

    def __len__(self) -> int:
        return len(self._entries)

    def scope_count(self) -> int:
        return len(self._indexes)

    def new_id(self) -> int:
        with self._lock:
            self.next_id += 1
            return self.next_id - 1

    def add(self, entry: CacheEntry, vector: np.ndarray) -> None:
        with self._lock:
            self._index_for(entry.scope).add(np.array([entry.id]), vector.reshape(1, -1))
            self._entries[entry.id] = entry

    def search(self, scope: str, vector: np.ndarray, k: int, now: float,
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

    def get(self, entry_id: int) -> CacheEntry | None:
        return self._entries.get(entry_id)

    def ids(self) -> list[int]:
        with self._lock:
            return list(self._entries)

    def remove(self, entry_id: int) -> bool:
        with self._lock:
            if entry_id not in self._entries:
                return False
            self._remove(entry_id)
            return True

    def touch(self, entry: CacheEntry) -> None:
        with self._lock:
            entry.hits += 1
            if entry.id in self._entries:
                self._entries.move_to_end(entry.id)

    def update(self, entry: CacheEntry) -> None:
        pass  # entries are the live objects: nothing to write back

    def clear(self, scope: str | None) -> int:
        with self._lock:
            ids = [i for i, e in self._entries.items() if scope is None or e.scope == scope]
            for i in ids:
                self._remove(i)
            return len(ids)

    def expire(self, now: float) -> int:
        with self._lock:
            ids = [i for i, e in self._entries.items()
                   if e.expires_at is not None and now >= e.expires_at]
            for i in ids:
                self._remove(i)
            return len(ids)

    def evict(self, capacity: int) -> int:
        with self._lock:
            evicted = 0
            while len(self._entries) > capacity:
                self._remove(next(iter(self._entries)))
                evicted += 1
            return evicted

    def mark_wrong(self, scope: str, answer_hash: str) -> None:
        with self._lock:
            self.wrong_answers.add((scope, answer_hash))

    def is_wrong(self, scope: str, answer_hash: str) -> bool:
        return (scope, answer_hash) in self.wrong_answers

    def learned(self, similarity: float, ratio: float, correct: bool) -> None:
        pass  # the cache's own threshold already holds it

    # -- snapshots for SemanticCache.save / load ------------------------------------
    def snapshot(self) -> tuple[list[CacheEntry], np.ndarray]:
        """Every entry (LRU order) and its vector, row for row."""
        with self._lock:
            ids = list(self._entries)
            by_scope: dict[str, list[int]] = {}
            for i in ids:
                by_scope.setdefault(self._entries[i].scope, []).append(i)
            vectors = np.zeros((len(ids), self.dim), dtype=np.float32)
            row = {entry_id: r for r, entry_id in enumerate(ids)}
            for scope, scope_ids in by_scope.items():
                vectors[[row[i] for i in scope_ids]] = self._indexes[scope].vectors(scope_ids)
            return [self._entries[i] for i in ids], vectors

    def restore(self, entries: list[CacheEntry], vectors: np.ndarray) -> None:
        with self._lock:
            by_scope: dict[str, list[int]] = {}
            for row, entry in enumerate(entries):
                self._entries[entry.id] = entry
                by_scope.setdefault(entry.scope, []).append(row)
            for scope, rows in by_scope.items():
                ids = np.array([entries[r].id for r in rows], dtype=np.int64)
                self._index_for(scope).add(ids, vectors[rows])

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

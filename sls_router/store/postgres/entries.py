"""Cache entries in PostgreSQL: scoped nearest-neighbour lookups through pgvector.

Lookups are SQL: the scope and expiry filter and the k nearest by inner product
(HNSW index). pgvector 0.6 filters the HNSW candidates after the search, so a small
scope inside a large table can come back short; then the same query runs exactly
(ordered by an expression the index cannot serve, which uses the scope's b-tree index):
a short answer means the scope is small, where an exact scan is cheap.

Writes go through the database's outbox (see _db.py). Entry ids are random 63-bit
integers made here, so an insert needs no round trip and a replayed one is a no-op;
one entry per request id (UNIQUE) keeps concurrent replicas from storing it twice.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from ...cache.entries import CacheEntry, Neighbours
from ...cache.thresholds import EntryVerdicts
from ._db import Database, pg_text
from .lessons import PostgresLessons

_COLUMNS = (
    "id, scope, text, answer, answer_hash, created_at, expires_at, payload, hits, "
    "confirmed, verdicts"
)
_SEARCH = (
    f"SELECT {_COLUMNS}, embedding <#> %(v)s FROM sls_cache_entries "
    "WHERE scope = %(scope)s ORDER BY embedding <#> %(v)s LIMIT %(k)s"
)
# `+ 0` hides the order from the HNSW index: an exact scan of the (small) scope
_SEARCH_EXACT = _SEARCH.replace(
    "ORDER BY embedding <#> %(v)s", "ORDER BY (embedding <#> %(v)s) + 0"
)
_EVICT_EVERY = 100


class PostgresEntries:
    """An `EntryStore` shared by every replica connected to the same database."""

    def __init__(self, db: Database, replica: str, *, recent: int = 10_000) -> None:
        self.db = db
        self.replica = replica
        self.lessons = PostgresLessons(db, replica)
        self._lock = threading.Lock()
        # entries stored here lately: what `get` answers while the database is away
        self._recent: OrderedDict[int, CacheEntry] = OrderedDict()
        self._max_recent = recent
        self._adds = 0

    def __len__(self) -> int:
        return (
            self.db.read(
                lambda c: c.execute("SELECT count(*) FROM sls_cache_entries").fetchone()[0]
            )
            or 0
        )

    def scope_count(self) -> int:
        return (
            self.db.read(
                lambda c: c.execute(
                    "SELECT count(DISTINCT scope) FROM sls_cache_entries"
                ).fetchone()[0]
            )
            or 0
        )

    def new_id(self) -> int:
        return secrets.randbits(63) or 1

    def add(self, entry: CacheEntry, vector: np.ndarray) -> None:
        from psycopg.types.json import Jsonb

        request_id = (entry.payload or {}).get("request_id")
        self.db.write(
            "INSERT INTO sls_cache_entries (id, request_id, scope, text, answer, answer_hash, "
            "embedding, created_at, expires_at, payload, hits, confirmed, verdicts, replica) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (
                entry.id,
                pg_text(request_id) if isinstance(request_id, str) else None,
                pg_text(entry.scope),
                pg_text(entry.text),
                pg_text(entry.answer),
                entry.answer_hash,
                np.asarray(vector, np.float32),
                entry.created_at,
                entry.expires_at,
                Jsonb(entry.payload) if entry.payload is not None else None,
                entry.hits,
                entry.confirmed,
                Jsonb(entry.verdicts.to_state()),
                self.replica,
            ),
        )
        with self._lock:
            self._recent[entry.id] = entry
            while len(self._recent) > self._max_recent:
                self._recent.popitem(last=False)
            self._adds += 1

    def search(
        self,
        scope: str,
        vector: np.ndarray,
        k: int,
        now: float,
    ) -> tuple[Neighbours, int] | None:
        params = {"v": np.asarray(vector, np.float32), "scope": pg_text(scope), "k": k}

        def run(conn: Any) -> list[tuple]:
            rows = conn.execute(_SEARCH, params).fetchall()
            if len(rows) < k:
                rows = conn.execute(_SEARCH_EXACT, params).fetchall()
            return rows

        rows = self.db.read(run)
        if rows is None:
            return None
        live: Neighbours = []
        expired = 0
        for row in rows:  # expired neighbours are dropped as they are met, as in LocalEntries
            entry = _entry(row)
            if entry.expires_at is not None and now >= entry.expires_at:
                self._delete(entry.id)
                expired += 1
            else:
                live.append((entry, -float(row[-1])))
        return live, expired

    def get(self, entry_id: int) -> CacheEntry | None:
        found = self.db.read(
            lambda c: [
                c.execute(
                    f"SELECT {_COLUMNS} FROM sls_cache_entries WHERE id = %s", (entry_id,)
                ).fetchone()
            ]
        )
        if found is not None:
            return None if found[0] is None else _entry(found[0])
        with self._lock:  # the database is away: what this replica wrote lately
            return self._recent.get(entry_id)

    def ids(self) -> list[int]:
        return (
            self.db.read(
                lambda c: [
                    r[0]
                    for r in c.execute(
                        "SELECT id FROM sls_cache_entries ORDER BY last_used"
                    ).fetchall()
                ]
            )
            or []
        )

    def remove(self, entry_id: int) -> bool:
        held = self.get(entry_id) is not None
        self._delete(entry_id)
        return held

    def _delete(self, entry_id: int) -> None:
        with self._lock:
            self._recent.pop(entry_id, None)
        self.db.write("DELETE FROM sls_cache_entries WHERE id = %s", (entry_id,))

    def touch(self, entry: CacheEntry) -> None:
        entry.hits += 1
        self.db.write(
            "UPDATE sls_cache_entries SET hits = hits + 1, "
            "last_used = nextval('sls_cache_lru') WHERE id = %s",
            (entry.id,),
        )

    def update(self, entry: CacheEntry) -> None:
        from psycopg.types.json import Jsonb

        self.db.write(
            "UPDATE sls_cache_entries SET verdicts = %s, confirmed = %s WHERE id = %s",
            (Jsonb(entry.verdicts.to_state()), entry.confirmed, entry.id),
        )

    def clear(self, scope: str | None) -> int:
        self.db.flush()
        if scope is None:
            return self.db.read(lambda c: c.execute("DELETE FROM sls_cache_entries").rowcount) or 0
        return (
            self.db.read(
                lambda c: (
                    c.execute(
                        "DELETE FROM sls_cache_entries WHERE scope = %s", (pg_text(scope),)
                    ).rowcount
                )
            )
            or 0
        )

    def expire(self, now: float) -> int:
        return (
            self.db.read(
                lambda c: (
                    c.execute(
                        "DELETE FROM sls_cache_entries WHERE expires_at <= %s", (now,)
                    ).rowcount
                )
            )
            or 0
        )

    def evict(self, capacity: int) -> int:
        """Checked every 100 inserts (or tenth of the capacity): it scans the recency index."""
        every = max(1, min(_EVICT_EVERY, capacity // 10))
        with self._lock:
            due, self._adds = self._adds >= every, self._adds % every
        if not due:
            return 0
        return (
            self.db.read(
                lambda c: (
                    c.execute(
                        "DELETE FROM sls_cache_entries WHERE id IN (SELECT id FROM "
                        "sls_cache_entries ORDER BY last_used DESC OFFSET %s)",
                        (capacity,),
                    ).rowcount
                )
            )
            or 0
        )

    def snapshot(self) -> None:
        """Everything is written as it happens: this waits for queued writes (nothing to
        save; the cache's thresholds are rebuilt from the shared verdicts)."""
        self.db.flush()


def _entry(row: tuple) -> CacheEntry:
    (
        entry_id,
        scope,
        text,
        answer,
        answer_hash,
        created_at,
        expires_at,
        payload,
        hits,
        confirmed,
        verdicts,
    ) = row[:11]
    return CacheEntry(
        id=int(entry_id),
        scope=scope,
        text=text,
        answer=answer,
        answer_hash=answer_hash,
        created_at=float(created_at),
        expires_at=expires_at,
        payload=payload,
        hits=int(hits),
        confirmed=bool(confirmed),
        verdicts=EntryVerdicts.from_state(verdicts),
    )

"""PostgresStore: one cache and one body of feedback for every replica of a service.

What is shared, and how:
- cache entries, their verdicts and the answers marked wrong live in the database;
  every lookup is a scoped SQL query, so an answer one replica stored is found by all;
- each feedback event is appended to `sls_feedback`, each training row of the
  predictors to `sls_outcomes`, each cache-threshold verdict to `sls_cache_verdicts`;
- every `sync_every_s` a replica pulls the rows the others wrote since its last pull
  (`pull(cursor)`); its router hands them to its learner, whose Update Manager then
  refits as usual.

A pull takes the rows whose writing transaction ended before the oldest one still
running (`pg_snapshot_xmin`): ids of rows committed late cannot be skipped that way,
as a plain "id > last seen" would. Token and latency statistics stay per replica.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._persist import Snapshot
from ...errors import ConfigurationError
from ...types import Outcome
from ._db import Database, pg_text
from .entries import PostgresEntries

if TYPE_CHECKING:
    from ...embeddings import Embedder

_PULL_OUTCOMES = (
    "SELECT model, score, weight, source, embedding, features FROM sls_outcomes "
    "WHERE tx >= %(lo)s::xid8 AND tx < %(hi)s::xid8 AND replica <> %(me)s "
    "ORDER BY tx"
)
_PULL_VERDICTS = (
    "SELECT similarity, ratio, correct FROM sls_cache_verdicts "
    "WHERE tx >= %(lo)s::xid8 AND tx < %(hi)s::xid8 AND replica <> %(me)s "
    "ORDER BY tx"
)


class PostgresStore:
    """State shared through PostgreSQL with pgvector (see the module docstring).

    Parameters
    ----------
    url : postgresql://user:password@host:port/database.
    replica : this process's name in the shared tables (default: host-pid-random).
    sync_every_s : seconds between pulls of what other replicas wrote.
    retry_s : seconds between reconnection attempts during an outage.
    pool_size : connections per process.
    ef_search : pgvector HNSW search breadth.
    """

    def __init__(
        self,
        url: str,
        *,
        replica: str | None = None,
        sync_every_s: float = 10.0,
        retry_s: float = 1.0,
        pool_size: int = 4,
        ef_search: int = 100,
    ) -> None:
        if not sync_every_s > 0 or not retry_s > 0:
            raise ConfigurationError("sync_every_s and retry_s must be > 0 seconds.")
        self.url = url
        self.replica = replica or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.sync_every_s = sync_every_s
        self.retry_s = retry_s
        self.pool_size = pool_size
        self.ef_search = ef_search
        self.db: Database | None = None

    def load(self) -> Snapshot | None:
        """Nothing to load: every training row is pulled (`pull("0")`), and token and
        latency statistics stay per replica."""
        return None

    def attach(self, embedder: Embedder) -> PostgresEntries:
        """Connect (the embedder's name and dimension shape the tables); the cache's
        entries live in the database."""
        if self.db is not None:
            raise ConfigurationError(
                "this PostgresStore already serves a router; make one store per router."
            )
        self.db = Database(
            self.url,
            embedder.name,
            embedder.dim,
            pool_size=self.pool_size,
            retry_s=self.retry_s,
            ef_search=self.ef_search,
        )
        return PostgresEntries(self.db, self.replica)

    # -- what this replica learns, published ---------------------------------------
    def append_outcome(self, outcome: Outcome) -> None:
        self._db.write(
            "INSERT INTO sls_outcomes (event_id, replica, model, score, weight, source, "
            "embedding, features) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (
                uuid.uuid4(),
                self.replica,
                outcome.model,
                float(outcome.score),
                float(outcome.weight),
                outcome.source,
                np.asarray(outcome.vector, np.float32),
                [float(x) for x in outcome.features],
            ),
        )

    def append_feedback(
        self,
        request_id: str,
        namespace: str,
        model: str,
        cache_hit: bool,
        score: float,
        source: str,
    ) -> None:
        self._db.write(
            "INSERT INTO sls_feedback (event_id, request_id, namespace, model, cache_hit, score, "
            "source, replica) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                uuid.uuid4(),
                pg_text(request_id),
                pg_text(namespace),
                model,
                bool(cache_hit),
                float(score),
                source,
                self.replica,
            ),
        )

    def log_update(self, entry: dict[str, Any]) -> None:
        from psycopg.types.json import Jsonb

        self._db.write(
            "INSERT INTO sls_update_log (replica, entry) VALUES (%s, %s)",
            (self.replica, Jsonb(entry)),
        )

    # -- what the others learned, pulled -------------------------------------------
    def pull(self, cursor: str) -> tuple[Sequence[Outcome], Sequence[tuple], str]:
        """Rows other replicas committed since `cursor` (nothing while the database is
        unreachable: the same cursor comes back)."""
        pulled = self._db.read(lambda conn: self._pull(conn, cursor), own_writes=False)
        if pulled is None:
            return (), (), cursor
        outcomes, verdicts, cursor = pulled
        rows = [
            Outcome(
                vector.to_numpy().astype(np.float32),
                np.asarray(features, np.float32),
                model,
                score,
                weight,
                source,
            )
            for model, score, weight, source, vector, features in outcomes
        ]
        return rows, [tuple(v) for v in verdicts], cursor

    def _pull(self, conn: Any, cursor: str) -> tuple[list, list, str]:
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            hi = str(conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())").fetchone()[0])
            params = {"lo": cursor, "hi": hi, "me": self.replica}
            outcomes = conn.execute(_PULL_OUTCOMES, params).fetchall()
            verdicts = conn.execute(_PULL_VERDICTS, params).fetchall()
        return outcomes, verdicts, hi

    # -- lifecycle ------------------------------------------------------------------
    def save(self, snapshot: Snapshot) -> None:
        """Everything is written as it happens; this waits for queued writes."""
        self._db.flush()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()

    @property
    def _db(self) -> Database:
        if self.db is None:
            raise ConfigurationError(
                "this PostgresStore is not open; use SmartRouter.open(url, pool)."
            )
        return self.db

"""PostgresStore: one cache and one body of feedback for every replica of a service.

What is shared, and how:
- cache entries, their verdicts and the answers marked wrong live in the database;
  every lookup is a scoped SQL query, so an answer one replica stored is found by all;
- each feedback event is appended to `sls_feedback`, each training row of the
  predictors to `sls_outcomes`, each cache-threshold verdict to `sls_cache_verdicts`;
- every `sync_every_s` a replica pulls the rows the others wrote since its last pull
  into its own predictors and thresholds (its Update Manager then refits as usual).

A pull takes the rows whose writing transaction ended before the oldest one still
running (`pg_snapshot_xmin`): ids of rows committed late cannot be skipped that way,
as a plain "id > last seen" would. Token and latency statistics stay per replica.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...cache import SemanticCache
from ...embeddings import get_embedder
from ...errors import ConfigurationError
from ...router import default_cache
from ._db import Database, pg_text
from .entries import PostgresEntries

if TYPE_CHECKING:
    from ...backends import Backend
    from ...router import SmartRouter
    from ...types import ModelSpec

log = logging.getLogger("sls_router.store.postgres")
_PULL_OUTCOMES = ("SELECT model, score, weight, source, embedding, features FROM sls_outcomes "
                  "WHERE tx >= %(lo)s::xid8 AND tx < %(hi)s::xid8 AND replica <> %(me)s "
                  "ORDER BY tx")
_PULL_VERDICTS = ("SELECT similarity, ratio, correct FROM sls_cache_verdicts "
                  "WHERE tx >= %(lo)s::xid8 AND tx < %(hi)s::xid8 AND replica <> %(me)s "
                  "ORDER BY tx")


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

    def __init__(self, url: str, *, replica: str | None = None, sync_every_s: float = 10.0,
                 retry_s: float = 1.0, pool_size: int = 4, ef_search: int = 100) -> None:
        if not sync_every_s > 0 or not retry_s > 0:
            raise ConfigurationError("sync_every_s and retry_s must be > 0 seconds.")
        self.url = url
        self.replica = replica or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.sync_every_s = sync_every_s
        self.retry_s = retry_s
        self.pool_size = pool_size
        self.ef_search = ef_search
        self.db: Database | None = None
        self._router: SmartRouter | None = None
        self._since = "0"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, cls: type[SmartRouter], pool: Sequence[tuple[ModelSpec, Backend]], *,
             embedder: Any = "minilm", cache: bool = True, **options: Any) -> SmartRouter:
        if self._router is not None:
            raise ConfigurationError("this PostgresStore already serves a router; make one "
                                     "store per router.")
        if not isinstance(cache, bool):
            raise ConfigurationError("with a PostgreSQL store the cache lives in the database: "
                                     "pass cache=True or False, not a SemanticCache.")
        embedder = get_embedder(embedder)
        self.db = Database(self.url, embedder.name, embedder.dim, pool_size=self.pool_size,
                           retry_s=self.retry_s, ef_search=self.ef_search)
        try:
            shared_cache: bool | SemanticCache = False
            if cache:  # the cache the router makes for itself, with shared entries
                shared_cache = default_cache(embedder, options.get("max_wrong_rate", 0.02),
                                             PostgresEntries(self.db, self.replica))
            router = cls(pool, embedder=embedder, cache=shared_cache, **options)
            self._router = router
            self.sync()
        except BaseException:  # a bad option: release the connections before raising
            self.db.close()
            raise
        router.updates.on_entry = self._log_update
        self._thread = threading.Thread(target=self._sync_loop, daemon=True,
                                        name="sls-router-pg-sync")
        self._thread.start()
        return router

    # -- what this replica learns, published ---------------------------------------
    def record_outcome(self, vector: np.ndarray, features: np.ndarray, model: str,
                       score: float, weight: float, source: str) -> None:
        self._db.write(
            "INSERT INTO sls_outcomes (event_id, replica, model, score, weight, source, "
            "embedding, features) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (uuid.uuid4(), self.replica, model, float(score), float(weight), source,
             np.asarray(vector, np.float32), [float(x) for x in features]))

    def record_feedback(self, request_id: str, namespace: str, model: str, cache_hit: bool,
                        score: float, source: str) -> None:
        self._db.write(
            "INSERT INTO sls_feedback (event_id, request_id, namespace, model, cache_hit, score, "
            "source, replica) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (uuid.uuid4(), pg_text(request_id), pg_text(namespace), model, bool(cache_hit),
             float(score), source, self.replica))

    def _log_update(self, entry: dict[str, Any]) -> None:
        from psycopg.types.json import Jsonb

        self._db.write("INSERT INTO sls_update_log (replica, entry) VALUES (%s, %s)",
                       (self.replica, Jsonb(entry)))

    # -- what the others learned, pulled -------------------------------------------
    def sync(self) -> int:
        """Take in the rows other replicas committed since the last pull; returns how many
        (0 also while the database is unreachable)."""
        router = self._router
        pulled = self._db.read(self._pull, own_writes=False)
        if pulled is None or router is None:
            return 0
        outcomes, verdicts, self._since = pulled
        first = router.knn.n_records_ == 0 and len(outcomes) > 1
        for model, score, weight, source, vector, features in outcomes:
            router.add_outcome(vector.to_numpy().astype(np.float32), np.asarray(features, np.float32),
                               model, score, weight, source, fit_knn=not first)
        if first:  # one batch fit instead of row by row on a replica's start
            vectors, _, models, scores, weights = router.outcomes.arrays()
            router.knn.fit(vectors, models, scores, weights)
        if verdicts and router.cache is not None:
            router.cache.absorb_verdicts(verdicts)
        if outcomes or verdicts:
            router.updates.record(len(outcomes) + len(verdicts))
        return len(outcomes) + len(verdicts)

    def _pull(self, conn: Any) -> tuple[list, list, str]:
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            hi = str(conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())").fetchone()[0])
            params = {"lo": self._since, "hi": hi, "me": self.replica}
            outcomes = conn.execute(_PULL_OUTCOMES, params).fetchall()
            verdicts = conn.execute(_PULL_VERDICTS, params).fetchall()
        return outcomes, verdicts, hi

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.sync_every_s):
            try:
                self.sync()
            except Exception:  # noqa: BLE001 - the loop must outlive one bad pull
                log.exception("pulling shared feedback failed; retrying at the next period")

    # -- lifecycle ------------------------------------------------------------------
    def save(self, router: SmartRouter) -> None:
        """Everything is written as it happens; this waits for queued writes."""
        router.updates.wait()
        self._db.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.db is not None:
            self.db.close()

    @property
    def _db(self) -> Database:
        if self.db is None:
            raise ConfigurationError("this PostgresStore is not open; use "
                                     "SmartRouter.open(url, pool).")
        return self.db

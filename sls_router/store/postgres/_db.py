"""The connection to a shared PostgreSQL: schema on connect, reads that degrade, writes
that wait out an outage.

Reads (cache lookups, pulls of others' feedback) run at once and return None while the
database cannot be reached, so a request is answered without the shared state. Writes
(entries, verdicts, feedback, outcomes) go through an in-memory outbox that one
background thread flushes in order; while the database is down they stay queued and
are written when it returns. Every write is idempotent (client-made ids, ON CONFLICT
DO NOTHING), so one replayed after a lost acknowledgement is not written twice. An
outage is logged once when it starts and once when it ends, not per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from ...errors import ConfigurationError, StoreUnavailableError
from ._schema import migrate

log = logging.getLogger("sls_router.store.postgres")
T = TypeVar("T")
Write = tuple[str, Any]  # SQL and its parameters


def _psycopg():
    try:
        import psycopg
        import psycopg_pool
        from pgvector.psycopg import register_vector
    except ImportError as exc:
        from ...errors import DependencyError

        raise DependencyError(
            "the PostgreSQL store needs psycopg, psycopg-pool and pgvector: "
            "pip install 'sls-router[postgres]'."
        ) from exc
    return psycopg, psycopg_pool, register_vector


class Database:
    """A pool of connections to one database holding sls-router's tables.

    Parameters
    ----------
    url : a libpq URL (postgresql://user:password@host:port/db).
    embedder, dim : the embedder every replica of this database must use.
    pool_size : connections per process.
    retry_s : seconds between reconnection attempts while the database is down.
    ef_search : pgvector's HNSW search breadth (recall of scoped lookups).
    """

    def __init__(
        self,
        url: str,
        embedder: str,
        dim: int,
        *,
        pool_size: int = 4,
        retry_s: float = 1.0,
        ef_search: int = 100,
        connect_timeout_s: float = 5.0,
    ) -> None:
        psycopg, psycopg_pool, register_vector = _psycopg()
        self._operational = (
            psycopg.OperationalError,
            psycopg_pool.PoolTimeout,
            psycopg_pool.PoolClosed,
        )
        self._psycopg = psycopg
        self.url = url
        self.retry_s = retry_s
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout_s) as conn:
                migrate(conn, embedder, dim)
        except psycopg.ProgrammingError as exc:  # a malformed URL
            raise ConfigurationError(
                f"{_safe(url)} is not a usable PostgreSQL URL ({exc}); pass "
                "postgresql://user:password@host:port/database."
            ) from exc
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(
                f"cannot connect to {_safe(url)} ({str(exc).strip()}); check that the server runs "
                "and that the URL's host, port, user and password are right."
            ) from exc

        def configure(conn: Any) -> None:
            register_vector(conn)
            conn.execute(f"SET hnsw.ef_search = {int(ef_search)}")

        self.pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=True,
            configure=configure,
            kwargs={"autocommit": True, "connect_timeout": connect_timeout_s},
            timeout=connect_timeout_s,
            name="sls-router",
        )
        self.available = True
        self._outbox: deque[Write] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closed = False
        self._last_probe = 0.0
        self._writer = threading.Thread(
            target=self._write_loop, daemon=True, name="sls-router-pg-writer"
        )
        self._writer.start()

    # -- reads --------------------------------------------------------------------
    def read(self, fn: Callable[[Any], T], *, own_writes: bool = True) -> T | None:
        """`fn(connection)`, or None while the database cannot be reached. With
        `own_writes`, this process's queued writes are made first, so a lookup never
        serves an entry this replica has just removed or misses one it just stored."""
        if not self.available:
            return None
        if own_writes and self._outbox:
            self.flush(timeout=self.retry_s * 5)
        try:
            with self.pool.connection() as conn:
                return fn(conn)
        except self._operational as exc:
            self._down(exc)
            return None

    # -- writes -------------------------------------------------------------------
    def write(self, sql: str, params: Any = None) -> None:
        """Queue one idempotent write; it is made as soon as the database can take it."""
        with self._lock:
            self._outbox.append((sql, params))
            self._idle.clear()
        self._wake.set()

    @property
    def pending_writes(self) -> int:
        return len(self._outbox)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every queued write is made; False if the database stayed away."""
        self._wake.set()
        return self._idle.wait(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Flush what can be flushed, then release the connections."""
        self.flush(timeout)
        if self._outbox:
            log.error(
                "closing with %d writes the database never took (it is unreachable)",
                len(self._outbox),
            )
        self._closed = True
        self._wake.set()
        self._writer.join(timeout)
        self.pool.close()

    def _write_loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.retry_s)
            self._wake.clear()
            if not self.available and not self._probe():
                continue
            while self._outbox and not self._closed:
                with self._lock:
                    batch = list(self._outbox)[:500]
                if not self._write_batch(batch):
                    break
                with self._lock:
                    for _ in batch:
                        self._outbox.popleft()
            with self._lock:
                if not self._outbox:
                    self._idle.set()

    def _write_batch(self, batch: list[Write]) -> bool:
        try:
            with self.pool.connection() as conn, conn.transaction():
                for sql, params in batch:
                    conn.execute(sql, params)
            return True
        except self._operational as exc:
            self._down(exc)
            return False
        except Exception:  # noqa: BLE001 - a refused or unencodable write
            # one bad write must not block the others forever: make them one by one
            # and drop (loudly) only those the database refuses
            try:
                with self.pool.connection() as conn:
                    for sql, params in batch:
                        try:
                            conn.execute(sql, params)
                        except self._operational:
                            raise
                        except Exception as exc:  # noqa: BLE001
                            log.error("the database refused a write, which was dropped: %s", exc)
                return True
            except self._operational as exc:
                self._down(exc)
                return False

    # -- availability -------------------------------------------------------------
    def _down(self, exc: BaseException) -> None:
        with self._lock:
            was, self.available = self.available, False
        if was:
            log.warning(
                "the shared database is unreachable (%s); answering without the shared "
                "cache, with the last predictors, and queueing writes until it returns",
                str(exc).strip() or type(exc).__name__,
            )

    def _probe(self) -> bool:
        now = time.monotonic()
        if now - self._last_probe < self.retry_s:
            return False
        self._last_probe = now
        try:
            self.pool.check()  # drops connections the restart broke
            with self.pool.connection(timeout=self.retry_s) as conn:
                conn.execute("SELECT 1")
        except (*self._operational, self._psycopg.Error):
            return False
        self.available = True
        log.warning("the shared database is back; writing %d queued writes", len(self._outbox))
        return True


def pg_text(text: str) -> str:
    """PostgreSQL text cannot hold NUL characters; anything else is kept as it is."""
    return text.replace("\x00", "\ufffd")


def _safe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(url)
    except Exception:  # not parseable: say nothing of it beyond its scheme
        return url.split("://", 1)[0] + "://..." if "://" in url else "the database URL"
    params.pop("password", None)
    return make_conninfo("", **params) or "the database URL"

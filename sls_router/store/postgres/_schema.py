"""sls-router's tables in PostgreSQL, versioned: migrations run on connect, a newer
schema than this release knows is refused.

Tables: `sls_cache_entries` (answers with a pgvector column and an HNSW index),
`sls_wrong_answers`, `sls_cache_verdicts` (what teaches the cache thresholds),
`sls_feedback` (append-only, one row per feedback event), `sls_outcomes` (the
predictors' training rows) and `sls_update_log`. Rows that replicas pull from each
other carry the id of the transaction that wrote them (`tx`), so a reader can take
exactly the rows committed since its last pull (see store.py).
"""

from __future__ import annotations

from typing import Any

from ...errors import StateError

SCHEMA_VERSION = 1
_LOCK_KEY = 0x534C5352  # pg_advisory_xact_lock: one replica migrates, the others wait

_MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE SEQUENCE sls_cache_lru",  # recency for eviction, without trusting clocks
        """CREATE TABLE sls_cache_entries (
        id bigint PRIMARY KEY,
        request_id text UNIQUE,
        scope text NOT NULL,
        text text NOT NULL,
        answer text NOT NULL,
        answer_hash text NOT NULL,
        embedding vector({dim}) NOT NULL,
        created_at double precision NOT NULL,
        expires_at double precision,
        last_used bigint NOT NULL DEFAULT nextval('sls_cache_lru'),
        payload jsonb,
        hits integer NOT NULL DEFAULT 0,
        confirmed boolean NOT NULL,
        verdicts jsonb NOT NULL,
        replica text NOT NULL)""",
        "CREATE INDEX sls_cache_entries_scope ON sls_cache_entries (scope)",
        "CREATE INDEX sls_cache_entries_last_used ON sls_cache_entries (last_used)",
        """CREATE INDEX sls_cache_entries_embedding ON sls_cache_entries
        USING hnsw (embedding vector_ip_ops) WITH (m = 16, ef_construction = 64)""",
        """CREATE TABLE sls_wrong_answers (
        scope text NOT NULL, answer_hash text NOT NULL, PRIMARY KEY (scope, answer_hash))""",
        """CREATE TABLE sls_cache_verdicts (
        event_id uuid PRIMARY KEY,
        tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
        replica text NOT NULL,
        similarity double precision NOT NULL,
        ratio double precision NOT NULL,
        correct boolean NOT NULL)""",
        "CREATE INDEX sls_cache_verdicts_tx ON sls_cache_verdicts (tx)",
        """CREATE TABLE sls_feedback (
        event_id uuid PRIMARY KEY,
        request_id text NOT NULL,
        namespace text NOT NULL,
        model text NOT NULL,
        cache_hit boolean NOT NULL,
        score double precision NOT NULL,
        source text NOT NULL,
        replica text NOT NULL,
        at timestamptz NOT NULL DEFAULT now())""",
        "CREATE INDEX sls_feedback_request ON sls_feedback (request_id)",
        """CREATE TABLE sls_outcomes (
        event_id uuid PRIMARY KEY,
        tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
        replica text NOT NULL,
        model text NOT NULL,
        score double precision NOT NULL,
        weight double precision NOT NULL,
        source text NOT NULL,
        embedding vector({dim}) NOT NULL,
        features real[] NOT NULL,
        at timestamptz NOT NULL DEFAULT now())""",
        "CREATE INDEX sls_outcomes_tx ON sls_outcomes (tx)",
        """CREATE TABLE sls_update_log (
        id bigserial PRIMARY KEY, replica text NOT NULL, entry jsonb NOT NULL,
        at timestamptz NOT NULL DEFAULT now())""",
    ]
}


def migrate(conn: Any, embedder: str, dim: int) -> None:
    """Bring the database to SCHEMA_VERSION, or refuse one this release cannot read."""
    from psycopg.types.json import Jsonb

    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        _create_vector_extension(conn)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS sls_meta (key text PRIMARY KEY, value jsonb NOT NULL)"
        )
        row = conn.execute("SELECT value FROM sls_meta WHERE key = 'schema'").fetchone()
        meta = row[0] if row else {"version": 0, "embedder": embedder, "dim": dim}
        version = meta.get("version")
        if not isinstance(version, int) or version > SCHEMA_VERSION or version < 0:
            raise StateError(
                f"the database holds sls-router schema version {version!r}; this "
                f"release reads version {SCHEMA_VERSION}. Upgrade sls-router on "
                "every replica, or point this one to another database."
            )
        if row and (meta.get("embedder") != embedder or meta.get("dim") != dim):
            raise StateError(
                f"the database holds {meta.get('dim')}-d embeddings of "
                f"{meta.get('embedder')!r}, this router embeds with {embedder!r} "
                f"({dim}-d); use embedder={meta.get('embedder')!r} or another "
                "database."
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[step]:
                conn.execute(statement.format(dim=int(dim)))
        meta = {"version": SCHEMA_VERSION, "embedder": embedder, "dim": int(dim)}
        conn.execute(
            "INSERT INTO sls_meta VALUES ('schema', %s) ON CONFLICT (key) "
            "DO UPDATE SET value = EXCLUDED.value",
            (Jsonb(meta),),
        )


def _create_vector_extension(conn: Any) -> None:
    import psycopg

    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        return
    try:
        with conn.transaction():  # a savepoint: the message below, not an aborted block
            conn.execute("CREATE EXTENSION vector")
    except psycopg.Error as exc:
        raise StateError(
            f"the pgvector extension is not available in this database ({str(exc).strip()}). "
            "Install pgvector on the server and run `CREATE EXTENSION vector;` in this database "
            "as a user allowed to (e.g. the owner or a superuser)."
        ) from exc

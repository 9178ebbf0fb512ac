"""The shared PostgreSQL store on a real server (pgserver): replicas, outages, bad setups.

The cache and router behaviour tests also run on this store (the `store_kind`
parameter in test_cache.py and test_router.py); these are the store's own.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from sls_router import SmartRouter
from sls_router.backends import CallableBackend
from sls_router.errors import ConfigurationError, StateError, StoreUnavailableError
from sls_router.store import DATABASE_URL_ENV
from sls_router.store.postgres import PostgresStore
from sls_router.types import ModelSpec, Request

pytestmark = pytest.mark.postgres


def _pool(answer=lambda r: f"answer to {r.embed_text.split(':')[0]}"):
    return [
        (ModelSpec("small", 1.0, 1.0), CallableBackend(answer)),
        (ModelSpec("large", 5.0, 5.0), CallableBackend(answer)),
    ]


def _open(url, embedder, **options):
    store = PostgresStore(url, sync_every_s=options.pop("sync_every_s", 0.2), retry_s=0.2)
    return SmartRouter.open(store, _pool(), embedder=embedder, random_state=0, **options)


def test_replicas_share_answers_and_feedback(new_database, topic_embedder):
    url = new_database()
    a, b = _open(url, topic_embedder), _open(url, topic_embedder)
    try:
        first = a.complete(Request(prompt="weather:a"))
        a.feedback(first.request_id, 1.0, source="label")
        assert not first.cache_hit
        a.save()
        second = b.complete(Request(prompt="weather:b"))  # a paraphrase, on the other replica
        assert second.cache_hit and second.text == first.text
        # b learns a's training row within one sync period, without feedback of its own
        deadline = time.time() + 5
        while len(b.learner.outcomes) == 0 and time.time() < deadline:
            time.sleep(0.05)
        assert len(b.learner.outcomes) == 1 and b.learner.outcomes.models == [first.model]
        assert b.learner.knn.n_records_ == 1
    finally:
        a.close()
        b.close()
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT request_id, source, score FROM sls_feedback").fetchall()
    assert rows == [(first.request_id, "label", 1.0)]


def test_a_new_replica_starts_with_what_the_others_learned(new_database, topic_embedder):
    url = new_database()
    a = _open(url, topic_embedder)
    for i in range(20):
        response = a.complete(Request(prompt=f"topic{i}:a"))
        a.feedback(response.request_id, 1.0 if response.model == "small" else 0.0)
    a.close()
    b = _open(url, topic_embedder)
    try:
        assert len(b.learner.outcomes) == 20 and b.learner.knn.n_records_ == 20
        models = sorted(a.specs)
        assert list(b.learner.priors.means(None, models)) == pytest.approx(
            list(a.learner.priors.means(None, models))
        )
    finally:
        b.close()


def test_one_entry_per_request_id_when_replicas_race(new_database, topic_embedder):
    url = new_database()
    routers = [_open(url, topic_embedder) for _ in range(3)]
    try:
        for router in routers:  # the same request id answered by three replicas
            router.complete(Request(prompt="disk:a", id="req-1"))
        for router in routers:
            router.save()
    finally:
        for router in routers:
            router.close()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM sls_cache_entries").fetchone()[0] == 1


def test_wrong_answer_marked_by_one_replica_is_not_served_by_another(new_database, topic_embedder):
    url = new_database()
    a, b = _open(url, topic_embedder), _open(url, topic_embedder)
    try:
        first = a.complete(Request(prompt="refund:a"))
        a.feedback(first.request_id, 0.0, source="label")  # its own answer was wrong
        a.save()
        again = b.complete(Request(prompt="refund:a"))
        assert not again.cache_hit
        assert b.cache.insert("refund:a", first.text, _scope("refund:a")) is None
    finally:
        a.close()
        b.close()


def _scope(prompt):
    from sls_router.router import request_scope

    return request_scope(Request(prompt=prompt))


def test_outage_keeps_answering_and_loses_no_feedback(topic_embedder, caplog):
    """Stop the server in the middle, keep serving, restart it: every feedback is there."""
    import pgserver

    folder = tempfile.mkdtemp(prefix="sls-router-outage-")
    server = pgserver.get_server(folder, cleanup_mode="stop")
    url = server.get_uri()
    router = _open(url, topic_embedder)
    try:
        ids = []
        for i in range(10):
            response = router.complete(Request(prompt=f"before{i}:a"))
            router.feedback(response.request_id, 1.0, source="label")
            ids.append(response.request_id)
        router.save()
        server.cleanup()  # the last handle: pg_ctl stop
        caplog.set_level(logging.WARNING, logger="sls_router.store.postgres")
        during = [router.complete(Request(prompt=f"during{i}:a")) for i in range(20)]
        assert all(r.text for r in during)  # answered without the shared cache
        for response in during:
            router.feedback(response.request_id, 1.0, source="label")
            ids.append(response.request_id)
        outage_logs = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(outage_logs) == 1  # once, not per request
        assert router.store.db.pending_writes > 0
        server = pgserver.get_server(folder, cleanup_mode="stop")  # the database returns
        assert router.store.db.flush(timeout=30)
        after = router.complete(Request(prompt="during0:b"))
        assert after.cache_hit  # entries stored during the outage were written too
    finally:
        router.close()
    with psycopg.connect(url) as conn:
        stored = {r[0] for r in conn.execute("SELECT request_id FROM sls_feedback")}
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)
    assert stored == set(ids)


def test_bad_url_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="PostgreSQL URL"):
        SmartRouter.open("postgresql://localhost/x?nosuchoption=1", _pool(), embedder="hashing")
    with pytest.raises(StoreUnavailableError, match="cannot connect"):
        SmartRouter.open(f"postgresql://nobody@/db?host={tmp_path}", _pool(), embedder="hashing")


def test_missing_pgvector_is_a_clear_error(pg_server, new_database):
    url = new_database("template0")  # a database without the extension
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS sls_plain")
        conn.execute("CREATE ROLE sls_plain LOGIN")
        conn.execute(f"REVOKE CREATE ON DATABASE {name} FROM PUBLIC")
    plain = url.replace("postgres:@", "sls_plain:@")
    with pytest.raises(StateError, match="pgvector"):
        SmartRouter.open(plain, _pool(), embedder="hashing")


def test_newer_schema_or_other_embedder_is_refused(new_database, topic_embedder):
    url = new_database()
    _open(url, topic_embedder).close()
    with pytest.raises(StateError, match="embeds with 'hashing'"):
        SmartRouter.open(url, _pool(), embedder="hashing")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE sls_meta SET value = jsonb_set(value, '{version}', '99')")
    with pytest.raises(StateError, match="schema version 99"):
        _open(url, topic_embedder)


def test_database_url_from_the_environment(new_database, topic_embedder, monkeypatch):
    monkeypatch.setenv(DATABASE_URL_ENV, new_database())
    router = SmartRouter.open(None, _pool(), embedder=topic_embedder)
    try:
        assert isinstance(router.store, PostgresStore)
    finally:
        router.close()


def test_four_processes_share_one_database(new_database):
    """4 processes x 500 requests (+50 every one of them answers under the same ids)."""
    from sls_router.bench.shared_store import entry_owners, replica_figures, shared_tables

    url = new_database()
    run = replica_figures([url] * 4, per_process=500, common=50)
    tables = shared_tables(url)
    assert run["requests"] == 4 * 550
    assert tables["feedback_rows"] == run["feedback_calls"] == 4 * 550  # exact, none lost
    assert tables["entries"] == tables["request_ids"]  # one entry per request id
    owners = entry_owners(url, [e for r in run["per_process"] for e in r["hit_entries"]])
    foreign = sum(
        owners.get(e) not in (None, r["replica"])
        for r in run["per_process"]
        for e in r["hit_entries"]
    )
    assert foreign > 0  # answers cached by one process were served by the others


def test_text_postgres_cannot_hold_is_stored_not_dropped(new_database, topic_embedder):
    """NUL characters (which PostgreSQL text refuses) must not cost an entry or feedback."""
    url = new_database()
    router = _open(url, topic_embedder)
    try:
        response = router.complete(Request(prompt="nul:a\x00b", namespace="team\x00a"))
        router.feedback(response.request_id, 1.0, source="label")
        router.save()
        again = router.complete(Request(prompt="nul:a\x00b", namespace="team\x00a"))
        assert again.cache_hit
    finally:
        router.close()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM sls_feedback").fetchone()[0] == 1


def test_bad_router_option_releases_the_database(new_database, topic_embedder):
    url = new_database()
    store = PostgresStore(url)
    with pytest.raises(ConfigurationError):
        SmartRouter.open(store, _pool(), embedder=topic_embedder, preset="no-such-preset")
    assert store.db.pool.closed

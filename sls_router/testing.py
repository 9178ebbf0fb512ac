"""Test helpers for code built on sls-router: a real PostgreSQL with pgvector, and the
conformance suites that every storage back end passes (`StoreTests`).

The server comes from the PyPI package `pgserver` (it bundles PostgreSQL 16 and
pgvector; install the `test` extra), in a temporary folder: no Docker, no manual step.
Import the fixtures into a conftest.py::

    from sls_router.testing import new_database, pg_server  # noqa: F401
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def pg_server():
    """One server for the whole run, in a temporary folder, stopped and deleted after."""
    import shutil
    import tempfile

    import pgserver
    import psycopg

    folder = tempfile.mkdtemp(prefix="sls-router-pg-")
    server = pgserver.get_server(folder, cleanup_mode="stop")
    with psycopg.connect(server.get_uri("template1"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")  # new databases start with it
    yield server
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def new_database(pg_server):
    """A factory of fresh, empty databases (each call one more); all dropped after."""
    import uuid

    import psycopg

    made: list[str] = []

    def make(template: str = "template1") -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        made.append(name)
        return pg_server.get_uri(name)

    yield make
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        for name in made:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class StoreTests:
    """Behaviour every `Store` must have, to subclass in a back end's tests.

    Define the fixture `make_store`: a factory whose every call opens a new handle on
    one and the same place (a directory, a database), as another process or replica
    would. Set `keeps_snapshots` (does `load()` give back what `save()` was given?) and
    `shared` (does a handle `pull()` the rows another handle appended?).
    """

    keeps_snapshots = True
    shared = False

    @staticmethod
    def _embedder():
        from .embeddings import get_embedder

        return get_embedder("hashing")

    def _outcome(self, i: int):
        import numpy as np

        from .types import Outcome

        rng = np.random.default_rng(i)
        vector = rng.standard_normal(self._embedder().dim).astype(np.float32)
        return Outcome(vector / np.linalg.norm(vector), rng.random(4).astype(np.float32),
                       f"model-{i % 3}", float(i % 2), 0.5 + 0.5 * (i % 2), "label")

    def _open(self, make_store):
        store = make_store()
        store.attach(self._embedder())
        return store

    def test_a_new_place_holds_nothing(self, make_store):
        store = self._open(make_store)
        try:
            assert store.load() is None
            rows, verdicts, cursor = store.pull("0")
            assert list(rows) == [] and list(verdicts) == [] and isinstance(cursor, str)
        finally:
            store.close()

    def test_a_saved_snapshot_comes_back_whole(self, make_store):
        import numpy as np

        from ._persist import Snapshot

        snapshot = Snapshot({"options": {"preset": "cost"}, "text": "naïve \u2603 \"q\"",
                             "nested": {"a": [1, 2.5, None, True]}},
                            {"part.vectors": np.arange(12, dtype=np.float32).reshape(3, 4),
                             "part.ids": np.arange(3, dtype=np.int64)})
        store = self._open(make_store)
        store.save(snapshot)
        store.close()
        again = make_store()
        try:
            loaded = again.load()
            if not self.keeps_snapshots:
                assert loaded is None
                return
            assert loaded is not None and loaded.meta == snapshot.meta
            assert sorted(loaded.arrays) == sorted(snapshot.arrays)
            for name, array in snapshot.arrays.items():
                assert loaded.arrays[name].dtype == array.dtype
                assert np.array_equal(loaded.arrays[name], array)
        finally:
            again.close()

    def test_appended_rows_reach_the_other_handles_once(self, make_store):
        import numpy as np

        writer, reader = self._open(make_store), self._open(make_store)
        try:
            _, _, cursor = reader.pull("0")
            sent = [self._outcome(i) for i in range(5)]
            for row in sent:
                writer.append_outcome(row)
            writer.append_feedback("req-1", "tenant", "model-0", False, 1.0, "user")
            writer.append_feedback("nul\x00text", "t\x00", "model-0", True, 0.0, "user")
            writer.save(_empty_snapshot())  # durable, pushed out
            rows, _, cursor = reader.pull(cursor)
            if not self.shared:
                assert list(rows) == []
                return
            assert [(r.model, r.score, r.weight, r.source) for r in rows] == [
                (r.model, r.score, r.weight, r.source) for r in sent]
            for got, row in zip(rows, sent):
                assert np.allclose(got.vector, row.vector, atol=1e-6)
                assert np.allclose(got.features, row.features, atol=1e-6)
            assert list(reader.pull(cursor)[0]) == []  # nothing twice
            assert list(writer.pull("0")[0]) == []  # nor one's own rows
        finally:
            writer.close()
            reader.close()

    def test_update_log_entries_are_accepted(self, make_store):
        store = self._open(make_store)
        try:
            store.log_update({"trigger": "count", "outcomes": 3, "figures": {"a": 0.5}})
            store.save(_empty_snapshot())
        finally:
            store.close()


def _empty_snapshot():
    from ._persist import Snapshot

    return Snapshot({"empty": True})

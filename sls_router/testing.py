"""Test helpers for code built on sls-router: a real PostgreSQL with pgvector, a private
folder holding the ONNX export of the bundled MiniLM (`onnx_cache_dir`), and the
conformance suites that every storage back end passes (`StoreTests` for stores,
`EntryStoreTests` for cache entry stores).

The server comes from the PyPI package `pgserver` (it bundles PostgreSQL 16 and
pgvector; install the `test` extra), in a temporary folder: no Docker, no manual step.
Import the fixtures into a conftest.py (registering the module first gives the suite's
failed asserts pytest's detailed messages)::

    pytest.register_assert_rewrite("sls_router.testing")
    from sls_router.testing import new_database, onnx_cache_dir, pg_server  # noqa: E402, F401
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .cache.entries import CacheEntry, EntryStore, Neighbours, answer_hash
from .cache.thresholds import EntryVerdicts


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


def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any connection, or a Hugging Face download, fail the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("this must not touch the network")

    import socket

    import huggingface_hub

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)


@pytest.fixture(scope="session")
def onnx_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the fp32 and int8 ONNX exports, made once per run without
    the network (never the user's real cache); tests point ``SLS_ROUTER_CACHE_DIR`` here."""
    pytest.importorskip("onnxruntime")
    from .onnx_embedder import OnnxEmbedder

    root = tmp_path_factory.mktemp("sls-onnx-cache")
    with pytest.MonkeyPatch.context() as mp:
        no_network(mp)
        OnnxEmbedder(precision="int8", cache_dir=root)  # exports fp32 first, then quantises
    return root


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
        return Outcome(
            vector / np.linalg.norm(vector),
            rng.random(4).astype(np.float32),
            f"model-{i % 3}",
            float(i % 2),
            0.5 + 0.5 * (i % 2),
            "label",
        )

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

        snapshot = Snapshot(
            {
                "options": {"preset": "cost"},
                "text": 'naïve \u2603 "q"',
                "nested": {"a": [1, 2.5, None, True]},
            },
            {
                "part.vectors": np.arange(12, dtype=np.float32).reshape(3, 4),
                "part.ids": np.arange(3, dtype=np.int64),
            },
        )
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
                (r.model, r.score, r.weight, r.source) for r in sent
            ]
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


_ENTRIES_KIND = "EntryStoreTests"


def save_entries(entries: EntryStore, directory: Path) -> None:
    """Save an entry store's snapshot into `directory` (nothing for a shared store)."""
    from ._persist import write_snapshot

    snapshot = entries.snapshot()
    if snapshot is not None:
        write_snapshot(directory, _ENTRIES_KIND, 1, snapshot)


def load_entries(directory: Path):
    """The snapshot `save_entries` wrote to `directory`, or None when it wrote none."""
    from ._persist import read_snapshot

    if not (directory / "manifest.json").is_file():
        return None
    return read_snapshot(directory, _ENTRIES_KIND, 1)


class EntryStoreTests:
    """Behaviour every `EntryStore` must have, whatever holds the entries.

    Subclass it in a test module as ``Test<YourStore>`` and define one fixture,
    ``make_entries``: a function of a directory that opens the store kept there as a new
    process would, each call a new handle. A store saved with the cache starts empty and
    finds in the directory what `save_entries` wrote there (`load_entries` reads it); a
    shared store may ignore the directory, every handle then seeing the same entries.
    Vectors have `dim` dimensions::

        class TestMyEntries(EntryStoreTests):
            @pytest.fixture
            def make_entries(self):
                return lambda directory: MyEntries.open(directory, dim=self.dim)
    """

    dim = 8

    @pytest.fixture
    def make_entries(self) -> Callable[[Path], EntryStore]:
        raise NotImplementedError(
            f"{type(self).__name__} subclasses EntryStoreTests: define "
            "its make_entries fixture (see EntryStoreTests)."
        )

    @pytest.fixture
    def entries(self, make_entries: Callable[[Path], EntryStore], tmp_path: Path) -> EntryStore:
        return make_entries(tmp_path)

    # -- helpers ------------------------------------------------------------------------
    def vector(
        self,
        seed: int,
        near: np.ndarray | None = None,
        spread: float = 0.0,
    ) -> np.ndarray:
        """A unit vector (with `near`: that one moved by `spread` in a random direction)."""
        v = np.random.default_rng(seed).standard_normal(self.dim)
        v /= np.linalg.norm(v)
        if near is not None:
            v = near + spread * v
            v /= np.linalg.norm(v)
        return v.astype(np.float32)

    def put(
        self, entries: EntryStore, vector: np.ndarray, scope: str = "s", **fields: Any
    ) -> CacheEntry:
        """Add one entry (its text and answer made from its id unless given)."""
        entry_id = entries.new_id()
        answer = fields.pop("answer", f"answer {entry_id}")
        entry = CacheEntry(
            id=entry_id,
            scope=scope,
            text=f"question {entry_id}",
            answer=answer,
            answer_hash=answer_hash(answer),
            created_at=1000.0,
            **fields,
        )
        entries.add(entry, vector)
        return entry

    def search(
        self, entries: EntryStore, scope: str, vector: np.ndarray, k: int = 10, now: float = 1000.0
    ) -> tuple[Neighbours, int]:
        result = entries.search(scope, vector, k, now)
        assert result is not None, "search found the store unreachable"
        return result

    def found(
        self, entries: EntryStore, scope: str, vector: np.ndarray, k: int = 10, now: float = 1000.0
    ) -> list[int]:
        """The ids a search finds, best first."""
        return [entry.id for entry, _ in self.search(entries, scope, vector, k, now)[0]]

    # -- the behaviour ------------------------------------------------------------------
    def test_a_new_store_is_empty(self, entries: EntryStore) -> None:
        assert len(entries) == 0 and entries.scope_count() == 0 and entries.ids() == []
        assert self.search(entries, "s", self.vector(0)) == ([], 0)
        assert entries.get(12345) is None

    def test_new_ids_are_distinct_positive_int64s(self, entries: EntryStore) -> None:
        ids = [entries.new_id() for _ in range(200)]
        assert len(set(ids)) == 200 and all(0 < i < 2**63 for i in ids)

    def test_an_entry_comes_back_as_it_was_added(self, entries: EntryStore) -> None:
        entry = self.put(
            entries,
            self.vector(0),
            "tenant:x",
            expires_at=5000.0,
            payload={"model": "m", "usage": [1, 2]},
            hits=2,
            confirmed=False,
            verdicts=EntryVerdicts(right=1, right_min=0.93),
        )
        assert entries.get(entry.id) == entry
        assert len(entries) == 1 and entries.scope_count() == 1 and entries.ids() == [entry.id]
        ((got, similarity),) = self.search(entries, "tenant:x", self.vector(0))[0]
        assert got == entry and similarity == pytest.approx(1.0, abs=1e-5)

    def test_search_ranks_by_cosine_similarity_and_returns_at_most_k(
        self, entries: EntryStore
    ) -> None:
        query = self.vector(0)
        vectors = [
            self.vector(i, query, spread) for i, spread in enumerate((0.4, 0.1, 0.8, 0.2), start=1)
        ]
        added = [self.put(entries, v) for v in vectors]
        neighbours, expired = self.search(entries, "s", query)
        assert expired == 0
        assert [e.id for e, _ in neighbours] == [added[i].id for i in (1, 3, 0, 2)]
        for entry, similarity in neighbours:
            cosine = float(query @ vectors[added.index(entry)])
            assert similarity == pytest.approx(cosine, abs=1e-5)
        assert self.found(entries, "s", query, k=2) == [added[1].id, added[3].id]

    def test_a_search_never_crosses_scopes(self, entries: EntryStore) -> None:
        v = self.vector(0)
        a = self.put(entries, v, "a", answer="same")
        b = self.put(entries, v, "b", answer="same")
        assert self.found(entries, "a", v) == [a.id]
        assert self.found(entries, "b", v) == [b.id]
        assert self.found(entries, "ab", v) == [] and self.found(entries, "A", v) == []
        assert entries.scope_count() == 2

    def test_a_removed_entry_is_gone(self, entries: EntryStore) -> None:
        v = self.vector(0)
        gone, kept = self.put(entries, v, "a"), self.put(entries, v, "b")
        assert entries.remove(gone.id) is True
        assert entries.remove(gone.id) is False
        assert entries.get(gone.id) is None and self.found(entries, "a", v) == []
        assert entries.ids() == [kept.id] and len(entries) == 1 and entries.scope_count() == 1

    def test_clear_drops_one_scope_or_all(self, entries: EntryStore) -> None:
        for i in range(3):
            self.put(entries, self.vector(i), "a")
        kept = [self.put(entries, self.vector(i), "b") for i in range(2)]
        assert entries.clear("a") == 3
        assert sorted(entries.ids()) == sorted(e.id for e in kept)
        assert entries.clear("a") == 0 and entries.clear(None) == 2 and len(entries) == 0

    def test_search_drops_expired_neighbours_as_it_meets_them(
        self,
        entries: EntryStore,
    ) -> None:
        v = self.vector(0)
        mortal = self.put(entries, v, expires_at=1100.0)
        lasting = self.put(entries, self.vector(1, v, 0.1))
        assert self.search(entries, "s", v, now=1099.0)[1] == 0
        neighbours, expired = self.search(entries, "s", v, now=1100.0)
        assert [e.id for e, _ in neighbours] == [lasting.id] and expired == 1
        assert entries.get(mortal.id) is None and entries.ids() == [lasting.id]

    def test_expire_drops_only_expired_entries(self, entries: EntryStore) -> None:
        self.put(entries, self.vector(0), expires_at=1100.0)
        later = self.put(entries, self.vector(1), expires_at=1300.0)
        never = self.put(entries, self.vector(2))
        assert entries.expire(1200.0) == 1
        assert sorted(entries.ids()) == sorted([later.id, never.id])

    def test_update_writes_back_confirmation_and_verdicts(self, entries: EntryStore) -> None:
        added = self.put(entries, self.vector(0), confirmed=False)
        entry = entries.get(added.id)
        assert entry is not None
        entry.confirmed = True
        entry.verdicts = EntryVerdicts(right=2, wrong=1, wrong_max=0.8, right_min=0.9)
        entries.update(entry)
        again = entries.get(added.id)
        assert again is not None and again.confirmed and again.verdicts == entry.verdicts

    def test_touch_counts_a_hit_and_saves_the_entry_from_eviction(
        self,
        entries: EntryStore,
    ) -> None:
        a, b, c = (self.put(entries, self.vector(i)) for i in range(3))
        served = entries.get(a.id)
        assert served is not None
        entries.touch(served)
        touched = entries.get(a.id)
        assert touched is not None and touched.hits == 1
        assert entries.ids() == [b.id, c.id, a.id]
        d = self.put(entries, self.vector(3))
        assert entries.evict(3) == 1
        assert entries.get(b.id) is None and entries.ids() == [c.id, a.id, d.id]

    def test_evict_within_capacity_drops_nothing(self, entries: EntryStore) -> None:
        for i in range(3):
            self.put(entries, self.vector(i))
        assert entries.evict(3) == 0 and entries.evict(10) == 0 and len(entries) == 3

    def test_a_wrong_answer_is_wrong_in_its_scope_only(self, entries: EntryStore) -> None:
        lessons = entries.lessons
        lessons.mark_wrong("a", "hash-1")
        assert lessons.is_wrong("a", "hash-1")
        assert not lessons.is_wrong("b", "hash-1") and not lessons.is_wrong("a", "hash-2")
        lessons.learned(0.91, 0.3, False)  # published or kept; never an error

    def test_a_new_handle_finds_what_was_saved(
        self, entries: EntryStore, make_entries: Callable[[Path], EntryStore], tmp_path: Path
    ) -> None:
        vectors = [self.vector(i) for i in range(5)]
        added = [
            self.put(
                entries,
                v,
                "a" if i < 3 else "b",
                expires_at=9000.0 if i else None,
                payload={"i": i},
            )
            for i, v in enumerate(vectors)
        ]
        first = entries.get(added[0].id)
        assert first is not None
        entries.touch(first)
        first.verdicts = EntryVerdicts(right=3, right_min=0.88)
        entries.update(first)
        entries.lessons.mark_wrong("a", added[1].answer_hash)
        save_entries(entries, tmp_path)

        other = make_entries(tmp_path)
        assert other.ids() == entries.ids() and len(other) == 5 and other.scope_count() == 2
        for entry in added:
            assert other.get(entry.id) == entries.get(entry.id)
        for i, v in enumerate(vectors):
            scope = "a" if i < 3 else "b"
            assert self.found(other, scope, v) == self.found(entries, scope, v)
        assert other.lessons.is_wrong("a", added[1].answer_hash)
        assert other.new_id() not in {e.id for e in added}

    def test_concurrent_adds_lose_nothing(self, entries: EntryStore) -> None:
        def work(t: int) -> None:
            for i in range(25):
                self.put(entries, self.vector(100 * t + i), f"thread-{t}")

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(entries) == 100 == len(set(entries.ids())) and entries.scope_count() == 4
        assert all(
            len(self.found(entries, f"thread-{t}", self.vector(100 * t), k=30)) == 25
            for t in range(4)
        )

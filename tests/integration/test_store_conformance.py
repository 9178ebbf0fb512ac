"""Both stores pass the Store conformance suite (sls_router.testing.StoreTests)."""

from __future__ import annotations

import pytest

from sls_router.store import LocalStore
from sls_router.testing import StoreTests


class TestLocalStore(StoreTests):
    keeps_snapshots = True
    shared = False

    @pytest.fixture
    def make_store(self, tmp_path):
        return lambda: LocalStore(tmp_path / "state")


@pytest.mark.postgres
class TestPostgresStore(StoreTests):
    keeps_snapshots = False  # rows are pulled; token and latency statistics stay per replica
    shared = True

    @pytest.fixture
    def make_store(self, new_database):
        from sls_router.store.postgres import PostgresStore

        url = new_database()
        return lambda: PostgresStore(url)

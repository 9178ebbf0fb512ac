"""PostgresEntries passes the entry-store conformance suite on a real server (pgserver);
every handle a test opens is another replica on the same database."""

from __future__ import annotations

from pathlib import Path

import pytest

from sls_router.store.postgres import PostgresEntries
from sls_router.store.postgres._db import Database
from sls_router.testing import EntryStoreTests

pytestmark = pytest.mark.postgres


class TestPostgresEntries(EntryStoreTests):
    @pytest.fixture
    def make_entries(self, new_database):
        url = new_database()
        opened: list[Database] = []

        def make(directory: Path) -> PostgresEntries:
            opened.append(Database(url, "entry-store-tests", self.dim))
            return PostgresEntries(opened[-1], f"replica-{len(opened)}")

        yield make
        for db in opened:
            db.close()

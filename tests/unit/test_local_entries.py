"""LocalEntries passes the entry-store conformance suite, with exact and HNSW indexes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sls_router.cache import LocalEntries
from sls_router.testing import EntryStoreTests, load_entries


class TestLocalEntries(EntryStoreTests):
    @pytest.fixture(params=[10_000, 2], ids=["flat", "hnsw"])
    def make_entries(self, request):
        def make(directory: Path) -> LocalEntries:
            saved = load_entries(directory)
            if saved is not None:
                return LocalEntries.from_snapshot(saved, self.dim, hnsw_min_entries=request.param)
            return LocalEntries(self.dim, hnsw_min_entries=request.param)

        return make

"""Fixtures for every test folder (engine and integrations)."""

import pytest

pytest.register_assert_rewrite("sls_router.testing")  # the conformance suites' asserts

from sls_router.testing import new_database, onnx_cache_dir, pg_server  # noqa: E402, F401

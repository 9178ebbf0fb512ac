"""Fixtures for every test folder (engine and integrations)."""

from sls_router.testing import new_database, pg_server  # noqa: F401

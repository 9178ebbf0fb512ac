"""Pytest fixtures for code built on sls-router: a real PostgreSQL with pgvector.

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

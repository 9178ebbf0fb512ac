"""Shared state for many replicas: PostgreSQL with pgvector (see store.py).

`Database` (one connection pool, the schema migrated on connect) is public for code
that builds `PostgresEntries` itself, as the lab's lookup bench does.
"""

from ._db import Database
from .entries import PostgresEntries
from .store import PostgresStore

__all__ = ["Database", "PostgresEntries", "PostgresStore"]

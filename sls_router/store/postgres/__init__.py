"""Shared state for many replicas: PostgreSQL with pgvector (see store.py)."""

from .entries import PostgresEntries
from .store import PostgresStore

__all__ = ["PostgresEntries", "PostgresStore"]

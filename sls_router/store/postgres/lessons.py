"""The cache's lessons in PostgreSQL: answers marked wrong, and verdicts for the thresholds.

Both are shared: an answer one replica marked wrong is refused by all of them, and each
replica pulls the others' verdicts into its thresholds (see store.py).
"""

from __future__ import annotations

import threading
import uuid

from ._db import Database, pg_text


class PostgresLessons:
    """The `Lessons` of `PostgresEntries`, shared by every replica of the database."""

    def __init__(self, db: Database, replica: str) -> None:
        self.db = db
        self.replica = replica
        self._lock = threading.Lock()
        self._wrong: set[tuple[str, str]] = set()  # marked here: known even while it is away

    def mark_wrong(self, scope: str, answer_hash: str) -> None:
        with self._lock:
            self._wrong.add((scope, answer_hash))
        self.db.write(
            "INSERT INTO sls_wrong_answers VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (pg_text(scope), answer_hash),
        )

    def is_wrong(self, scope: str, answer_hash: str) -> bool:
        if (scope, answer_hash) in self._wrong:
            return True
        return bool(
            self.db.read(
                lambda c: c.execute(
                    "SELECT 1 FROM sls_wrong_answers WHERE scope = %s AND answer_hash = %s",
                    (pg_text(scope), answer_hash),
                ).fetchone()
            )
        )

    def learned(self, similarity: float, ratio: float, correct: bool) -> None:
        self.db.write(
            "INSERT INTO sls_cache_verdicts (event_id, replica, similarity, ratio, "
            "correct) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (uuid.uuid4(), self.replica, similarity, ratio, correct),
        )

"""What the cache learned that outlives any one entry, and where it goes.

Two facts are not records of an entry: an answer judged wrong in a scope (its entry is
removed, and the same answer must never be stored or served there again), and each
verdict on a hit or a miss, which teaches the global thresholds. A back end keeps its
`Lessons` next to its entries (`EntryStore.lessons`): a local one saves both together,
a shared one shares both with every replica.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol


class Lessons(Protocol):
    """Where the cache's rules record what they learned; every method is thread-safe."""

    def mark_wrong(self, scope: str, answer_hash: str) -> None:
        """This answer is wrong in this scope: never store or serve it there again."""

    def is_wrong(self, scope: str, answer_hash: str) -> bool: ...

    def learned(self, similarity: float, ratio: float, correct: bool) -> None:
        """A verdict for the global thresholds (a shared back end publishes it to the
        other replicas; the cache's own threshold has already taken it)."""


class LocalLessons:
    """Lessons held in memory; `LocalEntries` saves them with its entries."""

    def __init__(self, wrong: Iterable[tuple[str, str]] = ()) -> None:
        self._lock = threading.Lock()
        self._wrong = set(wrong)

    def mark_wrong(self, scope: str, answer_hash: str) -> None:
        with self._lock:
            self._wrong.add((scope, answer_hash))

    def is_wrong(self, scope: str, answer_hash: str) -> bool:
        return (scope, answer_hash) in self._wrong

    def learned(self, similarity: float, ratio: float, correct: bool) -> None:
        pass  # nobody else to tell

    def to_state(self) -> list[list[str]]:
        with self._lock:
            return sorted([scope, answer_hash] for scope, answer_hash in self._wrong)

    @classmethod
    def from_state(cls, state: list) -> LocalLessons:
        return cls((scope, answer_hash) for scope, answer_hash in state)

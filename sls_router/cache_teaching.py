"""What a verdict on a served answer teaches the cache, and which cached answers
label-free evidence lets it serve.

A label or a user's rating is the truth for the cache. A label-free verdict (verifier,
agreement, judge) is weak: wrong answers pass checks too, so it never loosens the
thresholds; it removes an answer it makes likelier wrong than right, and confirms one
only together with independent answers that agreed. Independent means other models:
the models seen giving each entry's answer are kept here (`support`), since one model
repeating its own mistake on similar requests is no second opinion.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .cache import CacheLookup, SemanticCache
from .errors import UnknownEntryError
from .learning import Learner


@dataclass
class Served:
    """What was served for one request, kept until its feedback arrives (the answer
    itself as a digest, so long answers do not stay in memory after the cache evicted
    them)."""

    model: str
    cache_hit: bool
    vector: np.ndarray
    features: np.ndarray
    answer_digest: bytes
    lookup: CacheLookup | None
    entry_id: int | None
    namespace: str
    verdicts: list[tuple[str, float]] = field(default_factory=list)  # label-free, so far


def answer_digest(answer: str) -> bytes:
    return hashlib.sha256(answer.strip().encode("utf-8", "surrogatepass")).digest()


class CacheTeacher:
    """Turns verdicts on served answers into the cache's lessons and confirmations.

    `confirm_precision`: an answer confirmed by agreement is served once the agreeing
    models make it right with this probability (trust.py weighs agreement); None: any
    agreement confirms it. At most `max_kept` entries' supporting models are kept."""

    def __init__(
        self,
        cache: SemanticCache | None,
        learner: Learner,
        confirm_precision: float | None,
        max_kept: int,
    ) -> None:
        self.cache = cache
        self.learner = learner
        self.confirm_precision = confirm_precision
        self.max_kept = max_kept
        self._support: OrderedDict[int, set[str]] = OrderedDict()
        self._lock = threading.Lock()

    def judge(self, served: Served, p_right: float, weak: bool) -> None:
        """Teach the cache a verdict on `served`'s answer: `p_right` is how likely the
        verdict makes it right, `weak` whether the verdict is label-free."""
        cache = self.cache
        if cache is None:
            return
        correct = p_right >= 0.5
        try:
            if served.cache_hit:
                if correct and weak:
                    return
                assert served.lookup is not None  # a hit was served from its lookup
                cache.observe(served.lookup, correct)
                return
            lookup = served.lookup
            if lookup is not None:
                cache.judge_fresh(lookup, correct)  # after a contrast refused its candidate
            if served.entry_id is not None and not correct:
                cache.feedback(served.entry_id, False)  # its own answer is wrong
            elif served.entry_id is not None and not weak:
                cache.confirm(served.entry_id)
            if correct and lookup is not None and lookup.candidate_id is not None:
                candidate = cache.get(lookup.candidate_id)
                same_answer = answer_digest(candidate.answer) == served.answer_digest
                same_model = (candidate.payload or {}).get("model") == served.model
                if weak and same_answer:
                    cache.judge_refusal(lookup, True)  # refused, it would have said the same
                    models = self.support_of(candidate.id) | {served.model}
                    for entry_id in (candidate.id, served.entry_id):
                        if entry_id is None:
                            continue
                        agreeing = self.add_support(entry_id, models) - 1
                        if self.confirm_precision is None:
                            agreeing = max(agreeing, 1)
                        self.confirm_agreed(served.features, p_right, agreeing, entry_id)
                elif not weak and (same_answer or same_model):  # a meaningful counterfactual
                    cache.observe(lookup, same_answer)
        except UnknownEntryError:
            pass  # the entry was evicted meanwhile: nothing left to judge

    def confirm_agreed(
        self, features: np.ndarray, p_right: float, agreeing: int, entry_id: int | None
    ) -> bool:
        """Let the cache serve an answer that `agreeing` other models gave too, once that
        makes it right with probability `confirm_precision`; True when it does."""
        if self.confirm_precision is not None and (
            agreeing < 1
            or self.learner.p_agreed(features, p_right, agreeing) < self.confirm_precision
        ):
            return False
        if entry_id is not None and self.cache is not None:
            with contextlib.suppress(UnknownEntryError):  # evicted meanwhile
                self.cache.confirm(entry_id)
        return True

    def support_of(self, entry_id: int | None) -> set[str]:
        """The models that gave cache entry `entry_id`'s answer (as far as this router
        saw; at least the model that produced it)."""
        if entry_id is None or self.cache is None:
            return set()
        with self._lock:
            known = self._support.get(entry_id)
        if known is not None:
            return set(known)
        try:
            model = (self.cache.get(entry_id).payload or {}).get("model")
        except UnknownEntryError:
            return set()
        return {model} if isinstance(model, str) else set()

    def add_support(self, entry_id: int, models: set[str]) -> int:
        """Record that `models` gave entry `entry_id`'s answer; returns how many did."""
        with self._lock:
            support = self._support.setdefault(entry_id, set())
            support.update(models)
            self._support.move_to_end(entry_id)
            while len(self._support) > self.max_kept:
                self._support.popitem(last=False)
            return len(support)

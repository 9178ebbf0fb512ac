"""SemanticCache: when a cached answer may be served, and what each verdict teaches.

The rules live here; the entries and the lessons that outlive them are kept by an
`EntryStore` (entries.py), in memory or in a shared database, the rules unchanged.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._persist import Snapshot, read_snapshot, reading_saved, write_snapshot
from ..embeddings import MAX_TEXT_CHARS, Embedder, get_embedder
from ..errors import ConfigurationError, InvalidInputError, StateError, UnknownEntryError
from .contrast import Contrast, ContrastCheck
from .entries import CacheEntry, EntryStore, LocalEntries, Neighbours, answer_hash
from .lessons import Lessons
from .refusals import RefusalTrust
from .thresholds import AdaptiveThreshold, distance_ratio

FORMAT_VERSION = 2  # 2: the one snapshot format (entries in the manifest)
_KIND = "SemanticCache"


@dataclass(frozen=True)
class CacheLookup:
    """The decision and its evidence.

    ``entry_id``/``answer`` are set only on a hit; ``candidate_id`` is the nearest entry
    whether served or not (so a miss's outcome can still be fed back with `observe`).
    ``margin`` is similarity minus the similarity of the nearest entry with a different
    answer; ``ratio`` the distance ratio to it (see thresholds.py). ``contrast`` says what
    the candidate's question asks differently (reason ``"contrast"`` when that refused
    it; on a hit, a contrast this scope has learned to serve through), ``scope`` where.
    """

    hit: bool
    reason: str
    entry_id: int | None = None
    answer: str | None = None
    payload: dict[str, Any] | None = None
    candidate_id: int | None = None
    similarity: float = float("nan")
    margin: float = float("nan")
    ratio: float = float("nan")
    threshold: float = float("nan")
    ratio_threshold: float = float("nan")
    contrast: Contrast | None = None
    scope: str | None = None


@dataclass(frozen=True)
class CacheStats:
    entries: int
    scopes: int
    lookups: int
    hits: int
    wrong_hits: int
    right_hits: int
    evictions: int
    expirations: int
    similarity_threshold: float
    ratio_threshold: float
    refusals: dict[str, int] = field(default_factory=dict)  # candidates refused, by contrast


class SemanticCache:
    """A semantic cache that serves few wrong answers and learns from verdicts.

    Entries live in scopes (see `scope_key`): a lookup only sees its own scope.
    A hit needs the adaptive similarity threshold, a clear distance ratio to the
    nearest entry with a different answer, the entry's own verdict history, and no
    contrast between the two questions (see contrast.py) that the scope still refuses.
    All public methods are thread-safe.

    Parameters
    ----------
    embedder : name ("minilm", "static", "hashing") or an `Embedder`.
    capacity : maximum entries; least recently used ones are evicted beyond it.
    ttl_s : seconds an entry lives (None: forever).
    max_wrong_rate : the share of wrong hits the thresholds aim to stay under.
    neighbours : how many neighbours a lookup inspects for the margin.
    refit_every : refit the global thresholds after this many new verdicts (0: only
        when `refit()` is called, e.g. by the Update Manager).
    threshold : a configured `AdaptiveThreshold` (overrides max_wrong_rate).
    entries : where entries and the cache's lessons live (default: `LocalEntries`, in
        memory with FAISS; see entries.py).
    contrast : the check run on every would-be hit (default `ContrastCheck()`), a
        configured one (e.g. with a cross-encoder), or False to serve on similarity alone.
    clock : time source, replaceable for replays and tests.
    """

    def __init__(
        self,
        embedder: str | Embedder | None = "minilm",
        *,
        capacity: int = 100_000,
        ttl_s: float | None = None,
        max_wrong_rate: float = 0.02,
        neighbours: int = 10,
        refit_every: int = 25,
        hnsw_min_entries: int = 10_000,
        threshold: AdaptiveThreshold | None = None,
        entries: EntryStore | None = None,
        contrast: ContrastCheck | bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ConfigurationError(f"capacity={capacity!r}: pass a positive entry count.")
        if ttl_s is not None and not (ttl_s > 0 and math.isfinite(ttl_s)):
            raise ConfigurationError(f"ttl_s={ttl_s!r}: pass seconds > 0, or None for no expiry.")
        if neighbours < 2:
            raise ConfigurationError("neighbours must be >= 2 (the margin needs a second one).")
        self.embedder = get_embedder(embedder)
        self.capacity = capacity
        self.ttl_s = ttl_s
        self.neighbours = neighbours
        self.refit_every = refit_every
        self.hnsw_min_entries = hnsw_min_entries
        self.threshold = threshold or AdaptiveThreshold(max_wrong_rate)
        self.entries: EntryStore = (
            entries
            if entries is not None
            else LocalEntries(self.dim, hnsw_min_entries=hnsw_min_entries)
        )
        self.lessons: Lessons = self.entries.lessons
        self.contrast: ContrastCheck | None = (
            ContrastCheck() if contrast is True else contrast or None
        )
        self.refusal_trust = RefusalTrust(self.threshold.max_wrong_rate)
        self._refusals: dict[str, int] = {}
        self.clock = clock
        self._lock = threading.RLock()  # guards the thresholds and the counts
        self._since_refit = 0
        self._counts = dict(
            lookups=0, hits=0, wrong_hits=0, right_hits=0, evictions=0, expirations=0
        )

    # -- public surface -----------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def lookup(
        self,
        text: str,
        scope: str = "default",
        *,
        vector: np.ndarray | None = None,
    ) -> CacheLookup:
        """Find the best entry of `scope` for `text` and decide whether to serve it."""
        vec = self._vector(text, vector)
        _check_scope(scope)
        found = self.entries.search(scope, vec, self.neighbours, self.clock())
        with self._lock:
            self._counts["lookups"] += 1
            if found is None:  # a shared store that cannot be reached: answer without it
                return CacheLookup(
                    False,
                    "unavailable",
                    threshold=self.threshold.similarity_,
                    ratio_threshold=self.threshold.ratio_,
                )
            neighbours, expired = found
            self._counts["expirations"] += expired
            result = self._decide(neighbours)
        if result.hit and self.contrast is not None:  # only a would-be hit pays for the check
            result = self._contrasted(result, text, scope, neighbours[0][0])
        if result.hit:
            with self._lock:
                self._counts["hits"] += 1
            self.entries.touch(neighbours[0][0])
        return result

    def insert(
        self,
        text: str,
        answer: str,
        scope: str = "default",
        *,
        vector: np.ndarray | None = None,
        payload: dict[str, Any] | None = None,
        confirmed: bool = True,
    ) -> int | None:
        """Store `answer` for `text`; returns the entry id, or None when the answer was
        marked wrong before in this scope (it is never stored or served again).

        An unconfirmed entry (its answer only passed a weak check) is not served until
        `confirm` is called, e.g. when an independent answer agreed with it."""
        if not isinstance(answer, str):
            raise InvalidInputError(
                f"answer must be a str, got {type(answer).__name__}; "
                "serialise structured answers to text or JSON first."
            )
        vec = self._vector(text, vector)
        _check_scope(scope)
        ahash = answer_hash(answer)
        if self.lessons.is_wrong(scope, ahash):
            return None
        now = self.clock()
        # keep what was embedded: a 1 MB prompt must not cost 1 MB of cache per entry
        entry = CacheEntry(
            id=self.entries.new_id(),
            scope=scope,
            text=text[:MAX_TEXT_CHARS],
            answer=answer,
            answer_hash=ahash,
            created_at=now,
            payload=payload,
            confirmed=bool(confirmed),
            expires_at=None if self.ttl_s is None else now + self.ttl_s,
        )
        self.entries.add(entry, vec)
        evicted = self.entries.evict(self.capacity)
        if evicted:
            with self._lock:
                self._counts["evictions"] += evicted
        return entry.id

    def feedback(
        self,
        entry_id: int,
        correct: bool,
        *,
        similarity: float | None = None,
        ratio: float | None = None,
    ) -> None:
        """A verdict on an entry.

        With `similarity` (and `ratio`) it judges a hit served at that evidence: a wrong
        one raises the entry's own floor above it (and evicts an entry that is mostly
        wrong); both teach the global thresholds. Without them it judges the entry's
        own answer: a wrong answer is removed and never stored or served again in its scope.
        """
        correct = _check_verdict(correct)
        if similarity is not None:
            similarity = _check_number("similarity", similarity)
            ratio = 0.0 if ratio is None else _check_number("ratio", ratio)
        entry = self.get(entry_id)
        if similarity is None:
            if not correct:
                self.lessons.mark_wrong(entry.scope, entry.answer_hash)
                self.entries.remove(entry_id)
            return
        assert ratio is not None  # given a value with `similarity` above
        with self._lock:
            _record(entry, similarity, correct)
            self._counts["right_hits" if correct else "wrong_hits"] += 1
            self._learn(similarity, ratio, correct)
        if entry.verdicts.discredited:
            self.entries.remove(entry_id)
        else:
            self.entries.update(entry)

    def observe(self, lookup: CacheLookup, correct: bool) -> None:
        """Feed back whether `lookup`'s candidate was (or would have been) right.

        For a hit this is the verdict on the served answer; for a miss it is a
        counterfactual (e.g. the fresh answer agreed with the candidate's), which
        teaches the thresholds without anything wrong having been served.
        """
        correct = _check_verdict(correct)
        if lookup.contrast is not None:
            self.judge_refusal(lookup, correct)
        if lookup.hit:
            assert lookup.entry_id is not None  # the cache names the entry of every hit
            self.feedback(
                lookup.entry_id, correct, similarity=lookup.similarity, ratio=lookup.ratio
            )
            return
        if lookup.candidate_id is None or math.isnan(lookup.similarity):
            return
        if lookup.reason == "contrast" and not correct:
            return  # the contrast keeps such candidates out: the thresholds need not rise
        entry = self.entries.get(lookup.candidate_id)
        with self._lock:
            if entry is not None:
                _record(entry, lookup.similarity, correct, served=False)
            self._learn(lookup.similarity, lookup.ratio, correct)
        if entry is not None:
            self.entries.update(entry)

    def decline(
        self, lookup: CacheLookup, reason: str, *, proved_wrong: bool = False
    ) -> CacheLookup:
        """A hit the caller does not serve after all (a verifier rejected its answer, or
        it waits for a judge): no longer counted as served, and returned as a miss for
        `reason` that keeps its candidate, so its outcome can still be fed back. With
        `proved_wrong` the entry and the thresholds learn it as a wrong hit, though none
        is counted (nothing wrong was served)."""
        if not lookup.hit:
            return lookup
        if proved_wrong:
            self.observe(lookup, False)
        with self._lock:
            self._counts["hits"] -= 1
            self._counts["wrong_hits"] -= int(proved_wrong)
        return replace(lookup, hit=False, reason=reason, entry_id=None, answer=None, payload=None)

    def vouch(self, lookup: CacheLookup) -> None:
        """A label-free source (a judge) found `lookup`'s candidate right for the
        lookup's request, which was not served it: the entry may serve requests this
        close from now on (its own verdicts), and a contrast it passed counts as a
        refusal for nothing. The global thresholds, which label-free verdicts never
        loosen, are left alone."""
        if lookup.contrast is not None:
            self.judge_refusal(lookup, True)
        if lookup.candidate_id is None or math.isnan(lookup.similarity):
            return
        entry = self.entries.get(lookup.candidate_id)
        if entry is None:
            return
        with self._lock:
            _record(entry, lookup.similarity, True, served=False)
        self.entries.update(entry)

    def judge_refusal(self, lookup: CacheLookup, candidate_right: bool) -> None:
        """Whether the candidate of a lookup with a contrast would have been right (e.g.
        the fresh answer was the very same): teaches only whether the scope keeps
        refusing that kind of contrast, not the similarity thresholds."""
        if lookup.contrast is not None and lookup.scope is not None:
            self.refusal_trust.learn(lookup.scope, lookup.contrast.kind, candidate_right)

    def judge_fresh(self, lookup: CacheLookup, fresh_right: bool) -> None:
        """The verdict on the fresh answer served after a contrast refused `lookup`'s
        candidate: a refusal only pays where fresh answers are right more often."""
        if lookup.contrast is not None and lookup.scope is not None and not lookup.hit:
            self.refusal_trust.learn_fresh(lookup.scope, lookup.contrast.kind, fresh_right)

    def confirm(self, entry_id: int) -> None:
        """Let an unconfirmed entry be served from now on."""
        entry = self.get(entry_id)
        entry.confirmed = True
        self.entries.update(entry)

    def invalidate(self, entry_id: int) -> None:
        """Remove one entry (it may be inserted again later)."""
        if not self.entries.remove(entry_id):
            raise UnknownEntryError(f"cache entry {entry_id!r} is not held; nothing to invalidate.")

    def clear(self, scope: str | None = None) -> int:
        """Drop every entry (of one scope); returns how many were dropped."""
        return self.entries.clear(scope)

    def expire(self) -> int:
        """Drop every expired entry now (lookups also skip and drop them lazily)."""
        dropped = self.entries.expire(self.clock())
        with self._lock:
            self._counts["expirations"] += dropped
        return dropped

    def absorb_verdicts(self, verdicts: list[tuple[float, float, bool]]) -> None:
        """Verdicts another replica observed (similarity, ratio, correct): they teach the
        global thresholds here too, without being published again."""
        with self._lock:
            for similarity, ratio, correct in verdicts:
                self.threshold.observe(similarity, ratio, correct)
            self.threshold.fit()
            self._since_refit = 0

    def refit(self) -> None:
        """Refit the global thresholds from the verdicts seen so far."""
        with self._lock:
            self.threshold.fit()
            self._since_refit = 0

    def get(self, entry_id: int) -> CacheEntry:
        entry = self.entries.get(entry_id)
        if entry is None:
            raise UnknownEntryError(
                f"cache entry {entry_id!r} is not held (never inserted, "
                "evicted, expired or invalidated); drop this verdict."
            )
        return entry

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                entries=len(self.entries),
                scopes=self.entries.scope_count(),
                similarity_threshold=self.threshold.similarity_,
                ratio_threshold=self.threshold.ratio_,
                refusals=dict(self._refusals),
                **self._counts,
            )

    # -- decision -----------------------------------------------------------------
    def _decide(self, neighbours: Neighbours) -> CacheLookup:
        t_sim, t_ratio = self.threshold.similarity_, self.threshold.ratio_
        if not neighbours:
            return CacheLookup(False, "empty", threshold=t_sim, ratio_threshold=t_ratio)
        best, best_sim = neighbours[0]
        other_sim = _nearest_other_answer(neighbours, self.neighbours)
        ratio = distance_ratio(best_sim, other_sim)
        common: dict[str, Any] = dict(
            candidate_id=best.id,
            similarity=best_sim,
            margin=best_sim - other_sim,
            ratio=ratio,
            threshold=t_sim,
            ratio_threshold=t_ratio,
        )
        if ratio > t_ratio:
            return CacheLookup(False, "ambiguous", **common)
        if not best.confirmed:
            return CacheLookup(False, "unconfirmed", **common)
        if not best.verdicts.allows(best_sim, t_sim):
            reason = "below_threshold" if best_sim < t_sim else "entry_distrusted"
            return CacheLookup(False, reason, **common)
        return CacheLookup(
            True, "hit", entry_id=best.id, answer=best.answer, payload=best.payload, **common
        )

    def _contrasted(
        self, result: CacheLookup, text: str, scope: str, entry: CacheEntry
    ) -> CacheLookup:
        """The would-be hit, refused when its question contrasts with the query in a way
        this scope still refuses; a contrast served through is kept as evidence."""
        assert self.contrast is not None  # checked by the caller
        contrast = self.contrast.compare(text, entry.text)  # it bounds its own work
        if contrast is None:
            return result
        if not self.refusal_trust.refuses(scope, contrast.kind):
            return replace(result, contrast=contrast, scope=scope)
        with self._lock:
            self._refusals[contrast.kind] = self._refusals.get(contrast.kind, 0) + 1
        return replace(
            result,
            hit=False,
            reason="contrast",
            entry_id=None,
            answer=None,
            payload=None,
            contrast=contrast,
            scope=scope,
        )

    def _learn(self, similarity: float, ratio: float, correct: bool) -> None:
        self.threshold.observe(similarity, ratio, correct)
        self.lessons.learned(similarity, ratio, correct)
        self._since_refit += 1
        if self.refit_every and self._since_refit >= self.refit_every:
            self.threshold.fit()
            self._since_refit = 0

    def _vector(self, text: str, vector: np.ndarray | None) -> np.ndarray:
        if not isinstance(text, str):
            raise InvalidInputError(
                f"text must be a str, got {type(text).__name__}; pass the "
                "query text (e.g. the last user turn)."
            )
        if vector is None:
            if not text.strip():
                raise InvalidInputError(
                    "text is empty; pass the non-empty query text to cache or look up."
                )
            vector = self.embedder.encode([text[:MAX_TEXT_CHARS]])[0]
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vec.shape[0] != self.dim:
            raise InvalidInputError(
                f"vector has dimension {vec.shape[0]}, the cache's embedder "
                f"({self.embedder.name}) gives {self.dim}; embed with the "
                "cache's embedder (cache.embedder.encode)."
            )
        if not np.all(np.isfinite(vec)):
            raise InvalidInputError("vector contains NaN or infinity; re-embed the text.")
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            raise InvalidInputError("vector is all zeros; nothing to compare. Re-embed the text.")
        return vec / norm

    # -- persistence --------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write the cache atomically (see `_persist.write_snapshot`): a crash leaves the
        previous state loadable. With a shared entry store, only the cache's own state
        is written (the entries live in the database)."""
        write_snapshot(Path(directory), _KIND, FORMAT_VERSION, self.snapshot())

    @classmethod
    def load(
        cls,
        directory: str | Path,
        embedder: str | Embedder | None = None,
        *,
        contrast: ContrastCheck | bool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> SemanticCache:
        """Read a cache saved to a directory; refuses (with StateError) anything
        inconsistent and never modifies the files it reads."""
        directory = Path(directory)
        snapshot = read_snapshot(directory, _KIND, FORMAT_VERSION)
        try:
            return cls.from_snapshot(snapshot, embedder, contrast=contrast, clock=clock)
        except StateError as exc:
            raise StateError(f"{directory}: {exc}") from exc

    def snapshot(self) -> Snapshot:
        """The cache as plain data: its configuration, thresholds and counts, and its
        entry store's snapshot (none when a shared store keeps the entries itself)."""
        with self._lock:
            meta = {
                "embedder": self.embedder.name,
                "dim": self.dim,
                "config": {
                    "capacity": self.capacity,
                    "ttl_s": self.ttl_s,
                    "neighbours": self.neighbours,
                    "refit_every": self.refit_every,
                    "hnsw_min_entries": self.hnsw_min_entries,
                },
                "threshold": self.threshold.to_state(),
                "counts": dict(self._counts),
                "contrast": None if self.contrast is None else self.contrast.describe(),
                "refusal_trust": self.refusal_trust.to_state(),
                "refusals": dict(self._refusals),
            }
        return Snapshot.nest(meta, {"entries": self.entries.snapshot()})

    @classmethod
    def from_snapshot(
        cls,
        snapshot: Snapshot,
        embedder: str | Embedder | None = None,
        *,
        contrast: ContrastCheck | bool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> SemanticCache:
        """`contrast`: None rebuilds the saved check (a cross-encoder is not saved: pass
        the check again to keep it)."""
        meta = snapshot.meta
        with reading_saved("the saved cache"):
            embedder = get_embedder(embedder or meta["embedder"])
            if embedder.dim != meta["dim"]:
                raise StateError(
                    f"the cache was saved with {meta['dim']}-d embeddings "
                    f"({meta['embedder']}); load it with that embedder."
                )
            config = meta["config"]
            saved = snapshot.part("entries")
            entries = (
                None
                if saved is None
                else LocalEntries.from_snapshot(
                    saved, embedder.dim, hnsw_min_entries=config["hnsw_min_entries"]
                )
            )
            if contrast is None:  # caches saved before the check get it too
                saved_check = meta.get("contrast", {})
                contrast = saved_check is not None and ContrastCheck(
                    token_vectors=saved_check.get("token_vectors", "static"),
                    align_min_cosine=saved_check.get("align_min_cosine", 0.5),
                    name_min_cosine=saved_check.get("name_min_cosine", 0.8),
                )
            cache = cls(
                embedder,
                clock=clock,
                entries=entries,
                threshold=AdaptiveThreshold.from_state(meta["threshold"]),
                contrast=contrast,
                **config,
            )
            cache._counts.update({k: int(v) for k, v in meta["counts"].items()})
            cache.refusal_trust = RefusalTrust.from_state(
                cache.threshold.max_wrong_rate, meta.get("refusal_trust", [])
            )
            cache._refusals.update({k: int(v) for k, v in meta.get("refusals", {}).items()})
        return cache


def _record(
    entry: CacheEntry,
    similarity: float,
    correct: bool,
    *,
    served: bool = True,
) -> None:
    """A verdict on `entry`, recorded on a copy that then replaces its verdicts: a store
    saving meanwhile reads the old verdicts or the new ones, never half of each."""
    verdicts = replace(entry.verdicts)
    verdicts.record(similarity, correct, served=served)
    entry.verdicts = verdicts


def _nearest_other_answer(neighbours: Neighbours, k: int) -> float:
    """Similarity of the nearest neighbour whose answer differs from the best one's.

    If the inspected neighbours all share the best answer, the last one's similarity
    is an upper bound of the true value (conservative); with no neighbour at all, 0."""
    best = neighbours[0][0]
    for entry, sim in neighbours[1:]:
        if entry.answer_hash != best.answer_hash:
            return sim
    return neighbours[-1][1] if len(neighbours) >= k else 0.0


def _check_scope(scope: str) -> None:
    if not isinstance(scope, str) or not scope:
        raise InvalidInputError("scope must be a non-empty string; build one with scope_key().")


def _check_verdict(correct: Any) -> bool:
    if isinstance(correct, (bool, np.bool_)):
        return bool(correct)
    raise InvalidInputError(
        f"correct must be True or False, got {correct!r}; turn scores into a "
        "verdict first (e.g. score >= 0.5)."
    )


def _check_number(name: str, value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(value):
        raise InvalidInputError(f"{name} is {value}; pass the finite value from the lookup.")
    return value


def default_cache(
    embedder: Embedder, max_wrong_rate: float, entries: EntryStore | None = None
) -> SemanticCache:
    """The cache a router makes for itself (`entries`: where a shared store keeps it).

    It refits its two thresholds itself every 25 verdicts (milliseconds): a workload
    where hits are wrong must switch it off fast, not at the next update."""
    return SemanticCache(embedder, max_wrong_rate=max_wrong_rate, refit_every=25, entries=entries)

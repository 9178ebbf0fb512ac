"""SmartRouter: cache -> scheduler -> backend (with failover) -> record -> update.

The one door for feedback is `SmartRouter.feedback`: it judges the served cache
entry (a wrong one is demoted or removed and its region tightens) and adds a training
row for the model that produced a fresh answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import agreement
from ._persist import Snapshot, reading_saved
from .backends import Backend, StreamChunk, check_pool, replay_chunks
from .cache import CacheLookup, SemanticCache, default_cache, request_scope
from .cache_teaching import CacheTeacher, Served, answer_digest
from .embeddings import MAX_TEXT_CHARS, Embedder, get_embedder
from .errors import (
    BackendError,
    ConfigurationError,
    InvalidInputError,
    StateError,
    UnknownEntryError,
)
from .failover import Failover
from .health import CircuitBreaker
from .judge import Judge
from .learning import Learner
from .off_path import OffPathWork
from .reask import REASK_WINDOW_S, ReaskDetector
from .replay import replay_pool
from .routing import Decision, Scheduler, query_features
from .store import LocalStore, Store, open_store
from .streams import abounded_stream, bounded_stream
from .trust import label_free, right_after_disagreeing
from .types import Completion, Feedback, ModelSpec, Request, Response, Usage, estimate_tokens
from .verifiers import BoundedVerifier, Verifier, tool_call_verdict

logger = logging.getLogger(__name__)
# at most this many other models are asked for one answer's second opinions
MAX_SECOND_OPINIONS = 3
# a hit this close above the similarity threshold is borderline: it waits for the judge
BORDERLINE_SIMILARITY = 0.03
# the options that are the scheduler's (its objective, constraints and exploration)
_SCHEDULER_OPTIONS = (
    "preset",
    "lam",
    "mu",
    "min_quality",
    "max_cost_usd",
    "budget_usd",
    "exploration",
    "explore_share",
    "confidence",
    "default_model",
    "random_state",
)


@dataclass
class RoutePlan:
    """A routing decision before any model is called (see `SmartRouter.route`)."""

    request: Request
    vector: np.ndarray
    features: np.ndarray
    scope: str
    cacheable: bool
    lookup: CacheLookup | None
    decision: Decision | None
    started: float
    quality: dict[str, float] | None = None


class SmartRouter:
    """Routes each request to the best model of a pool, or answers it from the cache.

    Parameters
    ----------
    pool : (ModelSpec, Backend) pairs; names must be unique.
    embedder : embeds the varying part of each request for cache and routing.
    preset, lam, mu, min_quality, max_cost_usd, budget_usd : the scheduler's objective.
    exploration : scale of Thompson-sampling exploration (0: greedy on the means).
    explore_share : exploration may cost at most this share of everything spent.
    confidence : how many std a prediction must beat the incumbent by to leave it.
    default_model : the incumbent ("keep this quality, cut the cost") until evidence
        beats it; None lets the router find the best model per task.
    cache : True (a SemanticCache with `embedder`), False, or a SemanticCache.
    max_wrong_rate : the cache's wrong-hit target.
    verifier : applied to every fresh answer as automatic (weak) feedback.
    verifier_timeout_s : each check's time budget; past it, or when the verifier raises,
        the answer is served unjudged (see BoundedVerifier; counted in `stats()`).
    recheck : when the verifier rejects an answer, try the next model once.
    second_opinion : share of fresh answers that no verifier judged also asked of the
        runner-up models, off the request path, to compare (feedback source
        "agreement"); its spend counts against `explore_share`. For an answer the cache
        keeps, it is scaled by the share of requests the cache does not answer (a
        repeat brings an independent answer anyway). 0 (the default) never pays for one.
    confirm_precision : None (the default): an answer that only passed a verifier is
        served from the cache once a later answer agreed with it. A number: only once
        other models agreeing make it right with this probability (trust.py), a request
        that finds it waiting being sent to a model that has not given it yet.
    judge : None (the default), the name of a pool model, or a (ModelSpec, backend) pair:
        an LLM that grades answers off the request path (judge.py; feedback source
        "judge"): a sampled share of fresh answers, every borderline cache hit (served
        only once the judge vouched for it), and the candidates a contrast kept out.
        Each call is paid and counts against `explore_share`.
    judge_share : share of fresh answers the judge grades.
    reask_window_s : a request of the same `Request.thread` that asks the same question
        again within this many seconds of an answer is feedback of source "reask"
        against that answer (reask.py). 0: never.
    on_feedback : called with (request_id, model, cache_hit, source, score) for every
        verdict through `feedback`, e.g. to log or count them.
    breaker_failures, breaker_cooldown_s : a model failing this many times in a row (or
        rate-limited) leaves the rotation for the cool-down (see health.py).
    update_every_n, update_every_s, background_updates : Update Manager triggers.
    """

    def __init__(
        self,
        pool: Sequence[tuple[ModelSpec, Backend]],
        *,
        embedder: str | Embedder | None = "minilm",
        preset: str = "balanced",
        lam: float | None = None,
        mu: float | None = None,
        min_quality: float | None = None,
        max_cost_usd: float | None = None,
        budget_usd: float | None = None,
        exploration: float = 1.0,
        explore_share: float = 0.1,
        confidence: float = 1.0,
        default_model: str | None = None,
        cache: bool | SemanticCache = True,
        max_wrong_rate: float = 0.02,
        verifier: Verifier | None = None,
        verifier_timeout_s: float = 10.0,
        recheck: bool = True,
        second_opinion: float = 0.0,
        confirm_precision: float | None = None,
        judge: str | tuple[ModelSpec, Backend] | Judge | None = None,
        judge_share: float = 0.1,
        reask_window_s: float = REASK_WINDOW_S,
        on_feedback: Callable[[str, str, bool, str, float], None] | None = None,
        breaker_failures: int = 3,
        breaker_cooldown_s: float = 30.0,
        update_every_n: int = 200,
        update_every_s: float = 300.0,
        background_updates: bool = True,
        max_pending: int = 100_000,
        random_state: int | None = None,
    ) -> None:
        self.specs, self.backends = check_pool(pool)
        self.options: dict[str, Any] = dict(
            preset=preset,
            lam=lam,
            mu=mu,
            min_quality=min_quality,
            max_cost_usd=max_cost_usd,
            budget_usd=budget_usd,
            exploration=exploration,
            explore_share=explore_share,
            confidence=confidence,
            default_model=default_model,
            max_wrong_rate=max_wrong_rate,
            verifier_timeout_s=verifier_timeout_s,
            recheck=recheck,
            second_opinion=second_opinion,
            confirm_precision=confirm_precision,
            judge_share=judge_share,
            reask_window_s=reask_window_s,
            breaker_failures=breaker_failures,
            breaker_cooldown_s=breaker_cooldown_s,
            update_every_n=update_every_n,
            update_every_s=update_every_s,
            background_updates=background_updates,
            max_pending=max_pending,
            random_state=random_state,
        )
        self.embedder = get_embedder(embedder)
        if isinstance(cache, SemanticCache):
            self.cache: SemanticCache | None = cache
        else:
            self.cache = default_cache(self.embedder, max_wrong_rate) if cache else None
        scheduler = Scheduler(**{k: self.options[k] for k in _SCHEDULER_OPTIONS})
        if default_model is not None and default_model not in self.specs:
            raise ConfigurationError(
                f"default_model={default_model!r} is not in the pool "
                f"({sorted(self.specs)}); name one of its models, or None."
            )
        self.learner = Learner(
            self.embedder.dim,
            scheduler,
            self.cache,
            update_every_n=update_every_n,
            update_every_s=update_every_s,
            background_updates=background_updates,
        )
        self.verifier = (
            None if verifier is None else BoundedVerifier(verifier, timeout_s=verifier_timeout_s)
        )
        self.recheck = recheck
        if not 0.0 <= second_opinion <= 1.0:
            raise ConfigurationError(
                f"second_opinion={second_opinion!r}: pass the share of fresh answers to "
                "check against a second model, in [0, 1] (0: never)."
            )
        if confirm_precision is not None and not 0.5 <= confirm_precision <= 1.0:
            raise ConfigurationError(
                f"confirm_precision={confirm_precision!r}: pass how likely right label-free "
                "evidence must make an answer before the cache serves it, in [0.5, 1]."
            )
        if not 0.0 <= judge_share <= 1.0:
            raise ConfigurationError(
                f"judge_share={judge_share!r}: pass the share of fresh answers the judge "
                "grades, in [0, 1]."
            )
        self.second_opinion = second_opinion
        self.judge = None if judge is None else Judge.of(judge, self.backends, self.specs)
        self.judge_share = judge_share
        if not reask_window_s >= 0:
            raise ConfigurationError(
                f"reask_window_s={reask_window_s!r}: pass how many seconds after an answer "
                "the same question again in its thread counts against it (0: never)."
            )
        self.reasks = ReaskDetector(
            window_s=reask_window_s,
            max_threads=max_pending,
            contrast=None if self.cache is None else self.cache.contrast,
        )
        self.on_feedback = on_feedback
        self._sampling_rng = np.random.default_rng(random_state)
        self.off_path = OffPathWork()  # second opinions and gradings, after the answer
        self.health = CircuitBreaker(breaker_failures, breaker_cooldown_s)
        self.max_pending = max_pending
        # what verdicts teach the cache; its supporting models bounded like `_served`
        self.teacher = CacheTeacher(self.cache, self.learner, confirm_precision, max_pending)
        self.store: Store | None = None  # set by `open`: where learned state is published
        self._served: OrderedDict[str, Served] = OrderedDict()
        self._lock = threading.RLock()
        self._pool_executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(4, sum(s.max_concurrency for s in self.specs.values())),
            thread_name_prefix="sls-router-call",
        )
        self._sync_cursor = "0"
        self._sync_stop = threading.Event()
        self._sync_thread: threading.Thread | None = None

    @classmethod
    def from_replay(cls, path: str | Path, *, sleep: bool = False, **options: Any) -> SmartRouter:
        """A router over every model of a recorded dataset (see replay.py)."""
        return cls(replay_pool(path, sleep=sleep), **options)

    # -- where the state lives --------------------------------------------------------
    @classmethod
    def open(
        cls,
        state: str | Path | Store | None,
        pool: Sequence[tuple[ModelSpec, Backend]],
        **options: Any,
    ) -> SmartRouter:
        """The router kept in `state`, or a new one there: a directory (the state saved in
        it, if any; `save()` checkpoints it), a postgresql:// URL (a cache and feedback
        shared with every replica opened on it), a Store, or None for the URL in
        SLS_ROUTER_DATABASE_URL."""
        store = open_store(state)
        try:
            router = cls._compose(store, list(pool), options)
        except BaseException:  # a bad option or state: release the store before raising
            store.close()
            raise
        router._start_sync()
        return router

    @classmethod
    def load(
        cls,
        directory: str | Path,
        pool: Sequence[tuple[ModelSpec, Backend]],
        embedder: str | Embedder | None = None,
        **overrides: Any,
    ) -> SmartRouter:
        """Restore a router saved in `directory` around `pool` (backends are not saved;
        pass them again)."""
        saved = LocalStore(Path(directory)).load()
        if saved is None:
            raise StateError(
                f"{directory} holds no saved router (no manifest.json); pass the "
                "directory a router was saved to, or use SmartRouter.open."
            )
        if embedder is not None:
            overrides["embedder"] = embedder
        return cls._build(saved, None, list(pool), overrides)

    @classmethod
    def _compose(
        cls, store: Store, pool: list[tuple[ModelSpec, Backend]], options: dict[str, Any]
    ) -> SmartRouter:
        """A router attached to `store`: its saved state, then what other replicas
        published since."""
        router = cls._build(store.load(), store, pool, options)
        router.store = store
        router.sync()
        router.learner.on_update(store.log_update)
        return router

    @classmethod
    def _build(
        cls,
        saved: Snapshot | None,
        store: Store | None,
        pool: list[tuple[ModelSpec, Backend]],
        options: dict[str, Any],
    ) -> SmartRouter:
        """A router from a saved snapshot (options given here win) with its cache entries
        where the store keeps them itself."""
        if saved is None:
            return cls._assemble(None, store, pool, options)
        with reading_saved("the saved router state (or an option given to open it)"):
            return cls._assemble(saved, store, pool, options)

    @classmethod
    def _assemble(
        cls,
        saved: Snapshot | None,
        store: Store | None,
        pool: list[tuple[ModelSpec, Backend]],
        options: dict[str, Any],
    ) -> SmartRouter:
        options = dict(options)
        embedder = options.pop("embedder", None)
        if saved is not None:
            options = {**_saved_options(saved), **options}
            embedder = embedder or saved.meta.get("embedder")
        embedder = get_embedder(embedder or "minilm")
        entries = None if store is None else store.attach(embedder)
        cache = options.pop("cache", None)
        if entries is not None:
            if cache is not None and not isinstance(cache, bool):
                raise ConfigurationError(
                    "with a shared store the cache lives in the database: "
                    "pass cache=True or False, not a SemanticCache."
                )
            cache = (cache is not False) and default_cache(
                embedder, options.get("max_wrong_rate", 0.02), entries
            )
        elif cache is None:  # the saved cache, if the router had one
            part = None if saved is None else saved.part("cache")
            cache = (
                SemanticCache.from_snapshot(part, embedder)
                if part is not None
                else saved is None or bool(saved.meta.get("has_cache"))
            )
        router = cls(pool, embedder=embedder, cache=cache, **options)
        if saved is not None:
            router.restore(saved)
        return router

    def save(self, directory: str | Path | None = None) -> None:
        """Make the state durable: into `directory` (atomic, versioned, no pickle), or,
        without one, into the store the router was opened from (a PostgreSQL store
        writes as it goes; this waits for queued writes)."""
        if directory is not None:
            LocalStore(Path(directory)).save(self.snapshot())
        elif self.store is not None:
            self.store.save(self.snapshot())
        else:
            raise ConfigurationError(
                "this router was not opened from a store; pass a "
                "directory to save(), or use SmartRouter.open(state, pool)."
            )

    def snapshot(self) -> Snapshot:
        """Everything to restore this router, as plain data (backends excepted)."""
        cache = None if self.cache is None else self.cache.snapshot()
        return Snapshot.nest(
            {
                "embedder": self.embedder.name,
                "options": self.options,
                "has_cache": self.cache is not None,
                "models": [dataclasses.asdict(s) for s in self.specs.values()],
            },
            {"learner": self.learner.snapshot(), "cache": cache},
        )

    def restore(self, snapshot: Snapshot) -> None:
        learner = snapshot.part("learner")
        if learner is None:
            raise StateError(
                "the saved router holds no learning state; the state is "
                "corrupted. Restore it from a backup or start afresh."
            )
        self.learner.restore(learner)

    def sync(self) -> int:
        """Take in what other replicas sharing the store learned since the last pull;
        returns how many rows (0 with a store of one's own, or while it is unreachable)."""
        if self.store is None:
            return 0
        rows, verdicts, self._sync_cursor = self.store.pull(self._sync_cursor)
        return self.learner.absorb(rows, verdicts)

    def _start_sync(self) -> None:
        period = getattr(self.store, "sync_every_s", None)
        if period:
            self._sync_thread = threading.Thread(
                target=self._sync_loop, args=(period,), daemon=True, name="sls-router-sync"
            )
            self._sync_thread.start()

    def _sync_loop(self, period: float) -> None:
        while not self._sync_stop.wait(period):
            try:
                self.sync()
            except Exception:  # noqa: BLE001 - the loop must outlive one bad pull
                logger.exception("pulling shared feedback failed; retrying at the next period")

    # -- requests: four drivers of one Failover, differing only by `await` ------------
    def complete(self, request: Request | str) -> Response:
        plan = self.route(request)
        if plan.decision is None:
            return self._cached_response(plan)
        failover = self._failover(plan)
        for name in failover.candidates():
            try:
                completion = self._call(self.backends[name], self.specs[name], plan.request)
            except Exception as exc:  # a failing provider must not fail the request
                failover.failed(name, exc)
                continue
            failover.answered(name, completion, self._verify(plan.request, completion))
        return self._settle(plan, failover)

    async def acomplete(self, request: Request | str) -> Response:
        plan = await asyncio.to_thread(self.route, request)  # embedding blocks
        if plan.decision is None:
            return self._cached_response(plan)
        failover = self._failover(plan)
        for name in failover.candidates():
            try:
                completion = await asyncio.wait_for(
                    self.backends[name].acomplete(plan.request), timeout=self.specs[name].timeout_s
                )
            except Exception as exc:  # a failing provider must not fail the request
                failover.failed(name, exc)
                continue
            verdict = await asyncio.to_thread(self._verify, plan.request, completion)
            failover.answered(name, completion, verdict)
        return self._settle(plan, failover)

    def stream(self, request: Request | str) -> Iterator[StreamChunk | Response]:
        """Yields text chunks (StreamChunk) as the chosen model writes them, then the final
        Response. A model failing before its first chunk is replaced by the next one;
        once text went out, no other model can take over and the error is raised. A
        stream silent for its model's `timeout_s` fails (streams.py)."""
        plan = self.route(request)
        if plan.decision is None:
            yield from self._cached_stream(plan)
            return
        failover = self._failover(plan)
        for name in failover.candidates():
            attempt = _StreamAttempt(name)
            try:
                with contextlib.closing(
                    bounded_stream(
                        self._pool_executor,
                        partial(self.backends[name].stream, plan.request),
                        self.specs[name].timeout_s,
                    )
                ) as chunks:
                    for chunk in chunks:
                        if (out := attempt.take(chunk)) is not None:
                            yield out
                        if attempt.completion is not None:
                            break
                completion = attempt.result()
            except Exception as exc:
                failover.failed(name, exc)
                if attempt.emitted:  # text already reached the caller
                    raise
                continue
            failover.answered(
                name, completion, self._verify(plan.request, completion), streamed=True
            )
        yield self._settle(plan, failover)

    async def astream(self, request: Request | str) -> AsyncIterator[StreamChunk | Response]:
        plan = await asyncio.to_thread(self.route, request)  # embedding blocks
        if plan.decision is None:
            for chunk in self._cached_stream(plan):
                yield chunk
            return
        failover = self._failover(plan)
        for name in failover.candidates():
            attempt = _StreamAttempt(name)
            try:
                async with contextlib.aclosing(
                    abounded_stream(
                        self.backends[name].astream(plan.request), self.specs[name].timeout_s
                    )
                ) as chunks:
                    async for chunk in chunks:
                        if (out := attempt.take(chunk)) is not None:
                            yield out
                        if attempt.completion is not None:
                            break
                completion = attempt.result()
            except Exception as exc:
                failover.failed(name, exc)
                if attempt.emitted:  # text already reached the caller
                    raise
                continue
            verdict = await asyncio.to_thread(self._verify, plan.request, completion)
            failover.answered(name, completion, verdict, streamed=True)
        yield self._settle(plan, failover)

    def batch(self, requests: Sequence[Request | str], max_concurrency: int = 8) -> list[Response]:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max_concurrency) as pool:
            return list(pool.map(self.complete, requests))

    async def abatch(
        self, requests: Sequence[Request | str], max_concurrency: int = 32
    ) -> list[Response]:
        gate = asyncio.Semaphore(max_concurrency)

        async def one(request: Request | str) -> Response:
            async with gate:
                return await self.acomplete(request)

        return list(await asyncio.gather(*(one(r) for r in requests)))

    # -- feedback -----------------------------------------------------------------
    def feedback(
        self, request_id: str, score: float, source: str = "user", *, namespace: str | None = None
    ) -> None:
        """Judge the answer served to `request_id` (score in [0, 1]). With `namespace`,
        only a request of that tenant is accepted (others look unknown).

        A label-free source ("verifier", "agreement", "judge") is weighed by how often
        its verdicts proved right (trust.py); any other source ("label", "user", your
        own) is taken as the truth, and also teaches how far the label-free ones are
        trusted."""
        self._take_feedback(request_id, score, source, namespace=namespace)

    def _take_feedback(
        self,
        request_id: str,
        score: float,
        source: str,
        *,
        namespace: str | None = None,
        row_score: float | None = None,
    ) -> None:
        """`feedback`, where the predictors may learn `row_score` (a probability the
        router weighed, e.g. after a disagreement) instead of the verdict itself."""
        fb = Feedback(request_id, score, source)
        served = self._served_record(request_id)
        if served is not None and namespace is not None and served.namespace != namespace:
            served = None
        if served is None:
            raise UnknownEntryError(
                f"request {request_id!r} is unknown (never served here, "
                "or too old); pass the request_id of a Response."
            )
        if self.store is not None:
            self.store.append_feedback(
                request_id, served.namespace, served.model, served.cache_hit, fb.score, source
            )
        weak = label_free(source)
        if weak:
            with self._lock:
                served.verdicts.append((source, fb.score))
        elif served.verdicts:
            self.learner.ground_truth(served.features, served.verdicts, fb.score >= 0.5)
        p_right = self.learner.p_right(served.features, source, fb.score)
        # an untrusted failure (one of two disagreeing answers) says nothing to the cache
        if self.cache is not None and not (weak and fb.score < 0.5 <= p_right):
            self.teacher.judge(served, p_right, weak=weak)
        if not served.cache_hit:
            learned = fb.score if row_score is None else row_score
            self._record_outcome(served.vector, served.features, served.model, learned, source)
        self.learner.feedback_arrived()
        if self.on_feedback is not None:
            self.on_feedback(request_id, served.model, served.cache_hit, source, fb.score)

    # -- second opinions: a runner-up asked off the request path, to compare ----------
    def _ask_second_opinions(self, plan: RoutePlan, served_model: str, answer: str) -> None:
        """Ask models down the ranking for the same request until their answers make the
        served one trusted (`confirm_precision`), one disagrees, the cap on what learning
        may spend stops it, or MAX_SECOND_OPINIONS were asked. Each comparison is feedback
        of source "agreement" for both answers."""
        assert plan.decision is not None  # asked only for a routed request
        request, decision = plan.request, plan.decision
        record = self._served_record(request.id)
        entry_id = None if record is None else record.entry_id
        p_right = decision.predicted_quality  # the served answer's, before any agreement
        others = [m for m in decision.ranking if m != served_model and self.health.available(m)]
        agreeing = 0
        dearest = max(decision.costs.values())
        for other in others[:MAX_SECOND_OPINIONS]:
            if not self.learner.may_learn(decision.costs[other], dearest):
                return
            started = time.perf_counter()
            try:
                completion = self._call(self.backends[other], self.specs[other], request)
            except Exception as exc:  # noqa: BLE001 - a failed second opinion costs the request nothing
                logger.debug("second opinion from %s failed: %s", other, exc)
                return
            self.learner.observe_learning_call(
                request.task,
                other,
                completion.usage.output_tokens,
                time.perf_counter() - started,
                self.specs[other].charge(completion),
            )
            other_verdict = self._verify(request, completion)
            if other_verdict is not None:
                self._record_outcome(
                    plan.vector, plan.features, other, other_verdict, _check_source(completion)
                )
            if other_verdict == 0.0:
                continue  # a rejected answer is evidence of nothing about the served one
            same = agreement.agree(request.task, answer, completion.text)
            if same is None:
                return
            served_score = other_score = 1.0 if same else 0.0
            if not same and not agreement.few_answers(request.task):
                # one of two open answers is wrong, not which: each model learns how
                # likely its own is right, from both predicted qualities. Labels keep
                # the verdict: there, Bayes on the predictors' own beliefs drifted to
                # the cheapest models (README, "Learning without labels")
                quality = plan.quality or {}
                q_served = quality.get(served_model, decision.predicted_quality)
                q_other = quality.get(other, 0.5)
                served_score = right_after_disagreeing(q_served, q_other)
                other_score = right_after_disagreeing(q_other, q_served)
            self._record_outcome(plan.vector, plan.features, other, other_score, "agreement")
            try:
                self._take_feedback(
                    request.id, 1.0 if same else 0.0, "agreement", row_score=served_score
                )
            except UnknownEntryError:
                return  # forgotten meanwhile (max_pending)
            if not same:
                return
            agreeing = (
                agreeing + 1
                if entry_id is None
                else self.teacher.add_support(entry_id, {served_model, other}) - 1
            )
            if self.teacher.confirm_agreed(plan.features, p_right, agreeing, entry_id):
                return

    # -- the judge: an LLM grading answers, off the request path -----------------------
    def _judge_due(self, completion: Completion) -> bool:
        return (
            self.judge is not None
            and self.judge_share > 0
            and not completion.tool_calls
            and bool(completion.text)
            and self._sampling_rng.random() < self.judge_share
        )

    def _awaits_judge(self, request: Request, lookup: CacheLookup) -> bool:
        """A hit the rules would serve with little room (near the similarity threshold,
        or past a contrast the scope no longer refuses) waits for the judge, as in
        Apple's Krites: the request gets a fresh answer, the judge grades the cached one
        for it off the request path, and requests this close hit once it agreed. When
        the cap on what learning may spend leaves no room for the judge, the rules
        decide alone (a wait that no grading ends would turn the hit into a miss for
        good)."""
        cache, judge = self.cache, self.judge
        if judge is None or cache is None or lookup.entry_id is None or lookup.answer is None:
            return False
        near = lookup.similarity < cache.threshold.similarity_ + BORDERLINE_SIMILARITY
        if lookup.contrast is None and not near:
            return False
        try:
            if cache.get(lookup.entry_id).verdicts.vouched_at(lookup.similarity):
                return False
        except UnknownEntryError:
            return False  # evicted meanwhile: the lookup's own answer is served
        cost = judge.expected_cost(request, lookup.answer)
        return self.learner.may_learn(cost, cost)

    def _grade_candidate(self, plan: RoutePlan) -> None:
        """Ask the judge whether the cached answer kept from this request (by a contrast,
        or waiting for the judge) would have been right for it, off the request path. A
        refusal teaches the scope whether to keep refusing that kind; a waiting hit is
        vouched for (later requests this close hit) or recorded wrong."""
        lookup, cache = plan.lookup, self.cache
        if (
            self.judge is None
            or cache is None
            or lookup is None
            or lookup.reason not in ("contrast", "awaiting_judge")
        ):
            return
        assert lookup.candidate_id is not None  # both are found against a candidate
        try:
            candidate = cache.get(lookup.candidate_id).answer
        except UnknownEntryError:
            return

        def learn(verdict: float) -> None:
            right = self.learner.p_right(plan.features, "judge", verdict) >= 0.5
            with contextlib.suppress(UnknownEntryError):  # evicted meanwhile
                if lookup.reason == "contrast":
                    cache.judge_refusal(lookup, right)
                elif right:
                    cache.vouch(lookup)
                else:
                    cache.observe(lookup, False)

        self._grade_later(plan, candidate, learn)

    def _judged_served(self, request_id: str) -> Callable[[float], None]:
        """A judge's verdict on the answer served to `request_id`, as its feedback."""

        def learn(verdict: float) -> None:
            with contextlib.suppress(UnknownEntryError):  # forgotten meanwhile (max_pending)
                self.feedback(request_id, verdict, source="judge")

        return learn

    def _grade_later(self, plan: RoutePlan, answer: str, learn: Callable[[float], None]) -> None:
        """Have the judge grade `answer` to the plan's request off the request path, if
        the cap on what learning may spend allows it, and hand its verdict to `learn`."""
        judge = self.judge
        assert judge is not None  # asked only with a judge
        decision = plan.decision

        def grade() -> None:
            cost = judge.expected_cost(plan.request, answer)
            dearest = max(decision.costs.values()) if decision is not None else cost
            if not self.learner.may_learn(cost, dearest):
                return
            try:
                verdict, completion = judge.grade(
                    plan.request, answer, call=partial(self._call, judge.backend, judge.spec)
                )
            except Exception as exc:  # noqa: BLE001 - a failed grading costs the request nothing
                logger.debug("the judge failed: %s", exc)
                return
            self.learner.spent_on_learning(judge.spec.charge(completion))
            if verdict is not None:
                learn(verdict)

        self.off_path.submit(grade)

    def _served_record(self, request_id: Any) -> Served | None:
        """What was served for `request_id`, while it is kept for feedback."""
        if not isinstance(request_id, str):
            return None
        with self._lock:
            return self._served.get(request_id)

    def _second_opinion_due(
        self, plan: RoutePlan, completion: Completion, verdict: float | None
    ) -> bool:
        """Is this fresh answer sampled for a second opinion, and can it be compared?

        Not when a verifier judged it: its verdict already gives the predictors their
        row and keeps the answer out of the cache until another one agrees; beside it,
        second opinions cost more than they taught (README, "Learning without labels").

        On traffic that repeats, a cached answer meets an independent one for free: the
        next equivalent request goes to a model that has not given it
        (`_independent_look`) and is served by it. A second opinion pays for what
        repetition brings anyway, so a cacheable answer is sampled at `second_opinion`
        times the share of requests the cache does not answer."""
        share = self.second_opinion
        if plan.cacheable:
            share *= 1.0 - self.learner.repeat_rate  # a moving average of 0s and 1s
        return (
            self.second_opinion > 0
            and verdict is None
            and plan.decision is not None
            and not completion.tool_calls
            and agreement.normalise(plan.request.task, completion.text) is not None
            and self._sampling_rng.random() < share
        )

    def _call(self, backend: Backend, spec: ModelSpec, request: Request) -> Completion:
        """One model call on the router's pool, given up after the model's `timeout_s`
        (a hung provider keeps a pool thread, never the caller)."""
        future = self._pool_executor.submit(backend.complete, request)
        return future.result(timeout=spec.timeout_s)

    def flush(self) -> None:
        """Wait for the work the router does off the request path (second opinions,
        gradings: each model call there bounded by `_call`) and a refit that is running."""
        self.off_path.flush()
        self.learner.updates.wait()

    def fit(self, records: Iterable[Any], source: str = "label") -> SmartRouter:
        """Warm start from history: learn recorded outcomes before serving.

        Each record has `embed_text` (or `prompt`), `task` and `responses`, a mapping of
        model name to a recorded answer with `score` in [0, 1] and, optionally,
        `output_tokens` and `latency_s` (the replay format's records, `sls_router.replay`,
        are such). Models outside the pool are skipped. The same as learning those
        outcomes online, one by one, then refitting."""
        rows, calls = [], []
        for record in records:
            text = record.embed_text
            vector = self.embedder.encode([text[:MAX_TEXT_CHARS]])[0]
            features = query_features(text, record.task)
            for model, answer in record.responses.items():
                if model not in self.specs or answer.score is None:
                    continue
                rows.append(self.learner.row(vector, features, model, answer.score, source))
                calls.append((record.task, model, answer.output_tokens, answer.latency_s))
        self.learner.fit(rows, calls)
        return self

    def update_now(self) -> dict[str, Any]:
        """Refit the predictors and the cache thresholds now; returns the log entry."""
        return self.learner.updates.update_now()

    # -- the steps shared by every entry point --------------------------------------
    def route(self, request: Request | str) -> RoutePlan:
        """Decide without calling a model: cache hit (decision None) or the ranked models."""
        request = _as_request(request)
        started = time.perf_counter()
        # cut here too, so a user's own embedder never receives a 1 MB prompt either
        vector = self.embedder.encode([request.embed_text[:MAX_TEXT_CHARS]])[0]
        features = query_features(request.embed_text, request.task)
        scope = request_scope(request)
        asked_again = self.reasks.observe(request, vector)
        doubted = None  # the model whose answer the user just asked again about
        if asked_again is not None:  # before the lookup: the cache must not serve it again
            earlier = self._served_record(asked_again)
            doubted = None if earlier is None else earlier.model
            with contextlib.suppress(UnknownEntryError):  # forgotten meanwhile
                self.feedback(asked_again, 0.0, source="reask")
        # an all-zero embedding (e.g. emoji-only text for "static") compares to nothing:
        # such a request skips the cache instead of failing
        cacheable = (
            self.cache is not None
            and request.model is None  # a pinned request wants that model's own answer
            and not request.tools
            and (request.temperature == 0 or request.cache_sampled)
            and bool(np.any(vector))
        )
        lookup: CacheLookup | None = None
        if cacheable:
            assert self.cache is not None  # part of `cacheable`
            lookup = self.cache.lookup(request.embed_text, scope, vector=vector)
            if lookup.hit:
                assert lookup.answer is not None  # a hit carries its answer
                if self._verify_text(request, lookup.answer) == 0.0:  # checked before serving
                    lookup = self.cache.decline(lookup, "rejected_by_verifier", proved_wrong=True)
                elif self._awaits_judge(request, lookup):
                    lookup = self.cache.decline(lookup, "awaiting_judge")
            self.learner.observe_request(cache_hit=lookup.hit)
            if lookup.hit:
                return RoutePlan(request, vector, features, scope, cacheable, lookup, None, started)
        candidates = [s for s in self.specs.values() if s.supports_tools or not request.tools]
        if request.model is None:
            # asked again: another model answers when one can (the same model would
            # most likely give the answer the user just turned down)
            candidates = [s for s in candidates if s.name != doubted] or candidates
        else:
            if request.model not in self.specs:
                raise InvalidInputError(
                    f"request pinned to model {request.model!r}, which is not in the pool "
                    f"({sorted(self.specs)}); name one of them, or None to route."
                )
            candidates = [s for s in candidates if s.name == request.model]
            if not candidates:
                raise InvalidInputError(
                    f"the request binds tools but the pinned model {request.model!r} does "
                    "not support tools; pin a tool-capable model or drop the tools."
                )
        if not candidates:
            raise InvalidInputError(
                "the request binds tools but no model of the pool supports "
                "tools; add one with supports_tools=True or drop the tools."
            )
        decision, quality = self.learner.decide(
            candidates, vector, features, estimate_tokens(request.text), request.task
        )
        if (
            self.teacher.confirm_precision is not None
            and lookup is not None
            and lookup.reason == "unconfirmed"
            and request.model is None
        ):
            decision = self._independent_look(decision, lookup, quality)
        return RoutePlan(
            request, vector, features, scope, cacheable, lookup, decision, started, quality
        )

    def _independent_look(
        self, decision: Decision, lookup: CacheLookup, quality: dict[str, float]
    ) -> Decision:
        """A cached answer waits for an independent one: send this request to the best
        ranked model that has not given that answer yet, within exploration's cap. Its
        answer serves the request and, agreeing, counts toward confirming the cached one;
        the same model would only repeat itself."""
        gave = self.teacher.support_of(lookup.candidate_id)
        if decision.chosen not in gave:
            return decision
        other = next((m for m in decision.ranking if m not in gave), None)
        if other is None or not self.learner.may_learn(
            decision.costs[other], max(decision.costs.values())
        ):
            return decision
        return dataclasses.replace(
            decision,
            ranking=[other] + [m for m in decision.ranking if m != other],
            chosen=other,
            predicted_quality=quality[other],
            predicted_cost_usd=decision.costs[other],
            explored=True,
        )

    def _failover(self, plan: RoutePlan) -> Failover:
        assert plan.decision is not None  # a plan without one is served from the cache
        return Failover(
            plan.decision.ranking, health=self.health, specs=self.specs, recheck=self.recheck
        )

    def _verify(self, request: Request, completion: Completion) -> float | None:
        """The answer's label-free check: a tool call's against its tool's schema, text
        against the verifier. `_check_source` names which."""
        if completion.tool_calls:
            return tool_call_verdict(request.tools, completion.tool_calls)
        return self._verify_text(request, completion.text)

    def _verify_text(self, request: Request, text: str) -> float | None:
        return None if self.verifier is None else self.verifier(request, text)

    def _settle(self, plan: RoutePlan, failover: Failover) -> Response:
        """Serve the failover's answer: learn from every call made, cache the answer,
        and send the verifier's verdicts as feedback."""
        chosen = failover.chosen
        assert plan.quality is not None  # set with the decision
        response = failover.finish(
            plan.request.id, plan.quality[chosen.model] if chosen is not None else 0.0
        )
        assert chosen is not None  # finish raised BackendError otherwise
        self.learner.observe_calls(
            plan.request.task,
            [(c.model, c.completion.usage.output_tokens, c.latency_s) for c in failover.calls],
            response.cost_usd,
            explored=plan.decision is not None and plan.decision.explored,
        )
        completion, verdict = chosen.completion, chosen.verdict
        entry_id = None
        if plan.cacheable and verdict != 0.0 and not completion.tool_calls and completion.text:
            assert self.cache is not None  # part of `cacheable`
            entry_id = self.cache.insert(  # only a verifier's pass: wait for confirmation
                plan.request.embed_text,
                completion.text,
                plan.scope,
                vector=plan.vector,
                confirmed=verdict is None,
                payload={
                    "model": chosen.model,
                    "request_id": plan.request.id,
                    "input_tokens": completion.usage.input_tokens,
                    "output_tokens": completion.usage.output_tokens,
                },
            )
        if entry_id is not None:
            self.teacher.add_support(entry_id, {chosen.model})
        self._remember(plan, response, entry_id)
        for call in failover.calls:
            if call.verdict is not None and call.model != chosen.model:
                self._record_outcome(
                    plan.vector,
                    plan.features,
                    call.model,
                    call.verdict,
                    _check_source(call.completion),
                )
        if verdict is not None:
            self.feedback(plan.request.id, verdict, source=_check_source(completion))
        if self._second_opinion_due(plan, completion, verdict):
            self.off_path.submit(self._ask_second_opinions, plan, chosen.model, completion.text)
        if self._judge_due(completion):
            self._grade_later(plan, completion.text, self._judged_served(plan.request.id))
        self._grade_candidate(plan)
        return response

    def _record_outcome(
        self, vector: np.ndarray, features: np.ndarray, model: str, score: float, source: str
    ) -> None:
        row = self.learner.outcome(vector, features, model, score, source)
        if self.store is not None:
            self.store.append_outcome(row)

    def _cached_response(self, plan: RoutePlan) -> Response:
        lookup = plan.lookup
        assert self.cache is not None and lookup is not None and lookup.answer is not None  # a hit
        payload = lookup.payload or {}
        response = Response(
            text=lookup.answer,
            model=str(payload.get("model", "cache")),
            cache_hit=True,
            usage=Usage(0, 0),
            cost_usd=0.0,
            latency_s=time.perf_counter() - plan.started,
            predicted_quality=1.0 - self.cache.threshold.max_wrong_rate,
            request_id=plan.request.id,
            raw={"cache_entry": lookup.entry_id, **payload},
        )
        self._remember(plan, response, lookup.entry_id)
        return response

    def _cached_stream(self, plan: RoutePlan) -> Iterator[StreamChunk | Response]:
        """A cached answer replayed as word-sized chunks."""
        response = self._cached_response(plan)
        yield from replay_chunks(response.text)
        yield response

    def _remember(self, plan: RoutePlan, response: Response, entry_id: int | None) -> None:
        lookup = plan.lookup
        if lookup is not None and (lookup.answer is not None or lookup.payload is not None):
            lookup = dataclasses.replace(lookup, answer=None, payload=None)  # feedback needs ids
        served = Served(
            model=response.model,
            cache_hit=response.cache_hit,
            vector=plan.vector,
            features=plan.features,
            answer_digest=answer_digest(response.text),
            lookup=lookup,
            entry_id=entry_id,
            namespace=plan.request.namespace,
        )
        with self._lock:
            self._served[plan.request.id] = served
            while len(self._served) > self.max_pending:
                self._served.popitem(last=False)

    def stats(self) -> dict[str, Any]:
        """Counters for operators: the verifier's checks (timed out, failed, skipped) and
        the cache's hits, misses and wrong answers."""
        return {
            "verifier": None if self.verifier is None else self.verifier.stats(),
            "cache": None if self.cache is None else dataclasses.asdict(self.cache.stats()),
        }

    # -- lifecycle ------------------------------------------------------------------
    def close(self) -> None:
        self._sync_stop.set()
        if self._sync_thread is not None:
            self._sync_thread.join()
        self.learner.close()
        if self.store is not None:
            self.store.close()
        self.off_path.close()
        self._pool_executor.shutdown(wait=False, cancel_futures=True)


class _StreamAttempt:
    """One model's stream: passes text on and keeps the closing completion."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.emitted = False
        self.completion: Completion | None = None

    def take(self, chunk: StreamChunk) -> StreamChunk | None:
        if chunk.completion is not None:
            self.completion = chunk.completion
        elif chunk.text:
            self.emitted = True
        return StreamChunk(chunk.text) if chunk.text else None

    def result(self) -> Completion:
        if self.completion is None:
            raise BackendError(f"model {self.name} ended its stream without a completion.")
        return self.completion


def _saved_options(saved: Snapshot) -> dict[str, Any]:
    """The options a saved router was built with (checked: they come from a file)."""
    options = saved.meta.get("options")
    if not isinstance(options, dict):
        raise StateError(
            "the saved router's options are missing or corrupted; restore the "
            "state from a backup or start afresh."
        )
    return options


def _check_source(completion: Completion) -> str:
    """The feedback source of `_verify`'s verdict on `completion`."""
    return "tool_schema" if completion.tool_calls else "verifier"


def _as_request(request: Request | str) -> Request:
    if isinstance(request, Request):
        return request
    if isinstance(request, str):
        return Request(prompt=request)
    raise InvalidInputError(f"expected a Request or a prompt string, got {type(request).__name__}.")

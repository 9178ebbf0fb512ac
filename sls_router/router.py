"""SmartRouter: cache -> scheduler -> backend (with failover) -> record -> update.

The one door for feedback is `SmartRouter.feedback`: it judges the served cache
entry (a wrong one is demoted or removed and its region tightens) and adds a training
row for the model that produced a fresh answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._state import StateMixin
from ._streaming import StreamingMixin
from .backends import Backend, check_pool
from .cache import CacheLookup, SemanticCache, request_scope
from .cache.entries import EntryStore
from .embeddings import MAX_TEXT_CHARS, Embedder, get_embedder
from .errors import BackendError, InvalidInputError, UnknownEntryError
from .health import CircuitBreaker, retry_after_s
from .outcomes import OutcomeLog
from .replay import replay_pool
from .routing import (Decision, KNNQualityPredictor, LatencyPredictor, LogisticQualityPredictor,
                      Scheduler, TokenCostPredictor, query_features)
from .types import (Completion, Feedback, ModelSpec, Request, Response, Usage,
                    estimate_tokens)
from .updates import UpdateManager
from .verifiers import BoundedVerifier, Verifier

if TYPE_CHECKING:
    from .store import Store

_TIMEOUTS = (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)
SOURCE_WEIGHTS = {"label": 1.0, "user": 1.0, "verifier": 0.5}
# the logistic predictors refit on the most recent outcomes only: a refit costs the same
# however long the router has run, and follows drift (the kNN keeps every outcome)
_LOGISTIC_WINDOW = 5000  # input tokens are estimated from characters before a call


@dataclass
class _Served:
    """What was served for one request, kept until its feedback arrives (up to
    `max_pending` of them: the answer itself is kept as a digest, so long answers do not
    stay in memory after the cache evicted them)."""

    model: str
    cache_hit: bool
    vector: np.ndarray
    features: np.ndarray
    answer_digest: bytes
    lookup: CacheLookup | None
    entry_id: int | None
    namespace: str


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


class SmartRouter(StateMixin, StreamingMixin):
    """Routes each request to the best model of a pool, or answers it from the cache.

    Parameters
    ----------
    pool : (ModelSpec, Backend) pairs; names must be unique.
    embedder : embeds the varying part of each request for cache and routing.
    preset, lam, mu, min_quality, max_cost_usd, budget_usd : the scheduler's objective.
    exploration : scale of Thompson-sampling exploration (0: greedy on the means).
    cache : True (a SemanticCache with `embedder`), False, or a SemanticCache.
    max_wrong_rate : the cache's wrong-hit target.
    verifier : applied to every fresh answer as automatic (weak) feedback.
    verifier_timeout_s : each check's time budget; past it, or when the verifier raises,
        the answer is served unjudged (see BoundedVerifier; counted in `stats()`).
    recheck : when the verifier rejects an answer, try the next model once.
    breaker_failures, breaker_cooldown_s : a model failing this many times in a row (or
        rate-limited) leaves the rotation for the cool-down (see health.py).
    update_every_n, update_every_s, background_updates : Update Manager triggers.
    """

    def __init__(self, pool: Sequence[tuple[ModelSpec, Backend]], *,
                 embedder: str | Embedder | None = "minilm", preset: str = "balanced",
                 lam: float | None = None, mu: float | None = None,
                 min_quality: float | None = None, max_cost_usd: float | None = None,
                 budget_usd: float | None = None, exploration: float = 1.0,
                 cache: bool | SemanticCache = True, max_wrong_rate: float = 0.02,
                 verifier: Verifier | None = None, verifier_timeout_s: float = 10.0,
                 recheck: bool = True,
                 breaker_failures: int = 3, breaker_cooldown_s: float = 30.0,
                 update_every_n: int = 200, update_every_s: float = 300.0,
                 background_updates: bool = True, max_pending: int = 100_000,
                 random_state: int | None = None) -> None:
        self.specs, self.backends = check_pool(pool)
        self.options = dict(preset=preset, lam=lam, mu=mu, min_quality=min_quality,
                            max_cost_usd=max_cost_usd, budget_usd=budget_usd,
                            exploration=exploration, max_wrong_rate=max_wrong_rate,
                            verifier_timeout_s=verifier_timeout_s, recheck=recheck,
                            breaker_failures=breaker_failures,
                            breaker_cooldown_s=breaker_cooldown_s, update_every_n=update_every_n,
                            update_every_s=update_every_s, background_updates=background_updates,
                            max_pending=max_pending, random_state=random_state)
        self.embedder = get_embedder(embedder)
        if isinstance(cache, SemanticCache):
            self.cache: SemanticCache | None = cache
        else:
            self.cache = default_cache(self.embedder, max_wrong_rate) if cache else None
        self.scheduler = Scheduler(preset=preset, lam=lam, mu=mu, min_quality=min_quality,
                                   max_cost_usd=max_cost_usd, budget_usd=budget_usd,
                                   exploration=exploration, random_state=random_state)
        self.knn = KNNQualityPredictor()
        self.logistic = LogisticQualityPredictor()
        self.tokens = TokenCostPredictor()
        self.latency = LatencyPredictor()
        self.verifier = (None if verifier is None
                         else BoundedVerifier(verifier, timeout_s=verifier_timeout_s))
        self.recheck = recheck
        self.health = CircuitBreaker(breaker_failures, breaker_cooldown_s)
        self.max_pending = max_pending
        n_features = len(query_features("x", None))
        self.outcomes = OutcomeLog(self.embedder.dim, n_features)
        self.updates = UpdateManager(self._refit, every_n=update_every_n, every_s=update_every_s,
                                     background=background_updates)
        self.store: Store | None = None  # set by `open`: where learned state is published
        self._served: OrderedDict[str, _Served] = OrderedDict()
        self._lock = threading.RLock()
        self._pool_executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(4, sum(s.max_concurrency for s in self.specs.values())),
            thread_name_prefix="sls-router-call")

    @classmethod
    def from_replay(cls, path: str | Path, *, sleep: bool = False, **options: Any) -> "SmartRouter":
        """A router over every model of a recorded dataset (see replay.py)."""
        return cls(replay_pool(path, sleep=sleep), **options)

    # -- requests -----------------------------------------------------------------
    def complete(self, request: Request | str) -> Response:
        plan = self.route(request)
        if plan.decision is None:
            return self._cached_response(plan)
        attempts: list[tuple[str, str]] = []
        checked: list[tuple[str, Completion, float, float | None]] = []
        for name in self.health.order(plan.decision.ranking):
            started = time.perf_counter()
            try:
                future = self._pool_executor.submit(self.backends[name].complete, plan.request)
                completion = future.result(timeout=self.specs[name].timeout_s)
            except Exception as exc:  # a failing provider must not fail the request
                attempts.append(self._failure(name, exc))
                continue
            verdict = self._verify(plan.request, completion)
            if self._accept(name, completion, started, verdict, attempts, checked):
                break
        return self._finish(plan, checked, attempts)

    async def acomplete(self, request: Request | str) -> Response:
        plan = await asyncio.to_thread(self.route, request)  # embedding blocks
        if plan.decision is None:
            return self._cached_response(plan)
        attempts: list[tuple[str, str]] = []
        checked: list[tuple[str, Completion, float, float | None]] = []
        for name in self.health.order(plan.decision.ranking):
            started = time.perf_counter()
            try:
                completion = await asyncio.wait_for(self.backends[name].acomplete(plan.request),
                                                    timeout=self.specs[name].timeout_s)
            except Exception as exc:  # a failing provider must not fail the request
                attempts.append(self._failure(name, exc))
                continue
            verdict = await asyncio.to_thread(self._verify, plan.request, completion)
            if self._accept(name, completion, started, verdict, attempts, checked):
                break
        return self._finish(plan, checked, attempts)

    def batch(self, requests: Sequence[Request | str], max_concurrency: int = 8) -> list[Response]:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max_concurrency) as pool:
            return list(pool.map(self.complete, requests))

    async def abatch(self, requests: Sequence[Request | str],
                     max_concurrency: int = 32) -> list[Response]:
        gate = asyncio.Semaphore(max_concurrency)

        async def one(request: Request | str) -> Response:
            async with gate:
                return await self.acomplete(request)

        return list(await asyncio.gather(*(one(r) for r in requests)))

    # -- feedback -----------------------------------------------------------------
    def feedback(self, request_id: str, score: float, source: str = "user", *,
                 namespace: str | None = None) -> None:
        """Judge the answer served to `request_id` (score in [0, 1]). With `namespace`,
        only a request of that tenant is accepted (others look unknown)."""
        fb = Feedback(request_id, score, source)
        with self._lock:
            served = self._served.get(request_id) if isinstance(request_id, str) else None
        if served is not None and namespace is not None and served.namespace != namespace:
            served = None
        if served is None:
            raise UnknownEntryError(f"request {request_id!r} is unknown (never served here, "
                                    "or too old); pass the request_id of a Response.")
        if self.store is not None:
            self.store.record_feedback(request_id, served.namespace, served.model,
                                       served.cache_hit, fb.score, source)
        if self.cache is not None:
            self._judge_cache(served, fb.score >= 0.5, weak=source == "verifier")
        if not served.cache_hit:
            self._record_outcome(served.vector, served.features, served.model, fb.score, source)
        self.updates.record()

    def _judge_cache(self, served: _Served, correct: bool, weak: bool) -> None:
        """Labels and ratings judge the cache; a verifier's pass is `weak` evidence (wrong
        answers pass too), so it never loosens thresholds: it only confirms answers that
        an independent answer agreed with. A rejection is a sure wrong either way."""
        try:
            if served.cache_hit:
                if correct and weak:
                    return
                self.cache.observe(served.lookup, correct)
                return
            if served.entry_id is not None and not correct:
                self.cache.feedback(served.entry_id, False)  # its own answer is wrong
            elif served.entry_id is not None and not weak:
                self.cache.confirm(served.entry_id)
            lookup = served.lookup
            if correct and lookup is not None and lookup.candidate_id is not None:
                candidate = self.cache.get(lookup.candidate_id)
                same_answer = _digest(candidate.answer) == served.answer_digest
                same_model = (candidate.payload or {}).get("model") == served.model
                if weak and same_answer:
                    self.cache.confirm(candidate.id)
                    if served.entry_id is not None:
                        self.cache.confirm(served.entry_id)
                elif not weak and (same_answer or same_model):  # a meaningful counterfactual
                    self.cache.observe(lookup, same_answer)
        except UnknownEntryError:
            pass  # the entry was evicted meanwhile: nothing left to judge

    def update_now(self) -> dict[str, Any]:
        """Refit the predictors and the cache thresholds now; returns the log entry."""
        return self.updates.update_now()

    def _refit(self) -> dict[str, Any]:
        vectors, features, models, scores, weights = self.outcomes.arrays()
        figures: dict[str, Any] = {"outcomes": len(models)}
        if len(models):
            recent = slice(-_LOGISTIC_WINDOW, None)
            logistic = LogisticQualityPredictor(min_samples=self.logistic.min_samples)
            logistic.fit(np.hstack([vectors[recent], features[recent]]), models[recent],
                         scores[recent], weights[recent])
            with self._lock:
                self.logistic = logistic
            figures["logistic_brier"] = {m: round(float(b), 4)
                                         for m, b in logistic.validation_brier_.items()}
        if self.cache is not None:
            self.cache.refit()
            figures["cache_similarity"] = self.cache.threshold.similarity_
            figures["cache_ratio"] = self.cache.threshold.ratio_
        return figures

    # -- the steps shared by every entry point --------------------------------------
    def route(self, request: Request | str) -> RoutePlan:
        """Decide without calling a model: cache hit (decision None) or the ranked models."""
        request = _as_request(request)
        started = time.perf_counter()
        # cut here too, so a user's own embedder never receives a 1 MB prompt either
        vector = self.embedder.encode([request.embed_text[:MAX_TEXT_CHARS]])[0]
        features = query_features(request.embed_text, request.task)
        scope = request_scope(request)
        # an all-zero embedding (e.g. emoji-only text for "static") compares to nothing:
        # such a request skips the cache instead of failing
        cacheable = (self.cache is not None and not request.tools
                     and (request.temperature == 0 or request.cache_sampled)
                     and bool(np.any(vector)))
        lookup = None
        if cacheable:
            lookup = self.cache.lookup(request.embed_text, scope, vector=vector)
            if lookup.hit and self._verify_text(request, lookup.answer) == 0.0:
                self.cache.observe(lookup, False)  # checked before serving: a sure miss
                lookup = dataclasses.replace(lookup, hit=False, reason="rejected_by_verifier")
            if lookup.hit:
                return RoutePlan(request, vector, features, scope, cacheable, lookup, None, started)
        decision, quality = self._decide(request, vector, features)
        return RoutePlan(request, vector, features, scope, cacheable, lookup, decision, started,
                     quality)

    def _decide(self, request: Request, vector: np.ndarray, features: np.ndarray,
                ) -> tuple[Decision, dict[str, float]]:
        candidates = [s for s in self.specs.values() if s.supports_tools or not request.tools]
        if not candidates:
            raise InvalidInputError("the request binds tools but no model of the pool supports "
                                    "tools; add one with supports_tools=True or drop the tools.")
        names = [s.name for s in candidates]
        priors = self.outcomes.success_rates()
        input_tokens = estimate_tokens(request.text)
        with self._lock:  # the predictors are not thread-safe; updates and reads take turns
            knn = self.knn.predict(vector, names, priors=priors)
            logistic = self.logistic  # replaced whole by a refit, never changed in place
            cost, output_tokens = self.tokens.costs(candidates, input_tokens, request.task)
            latency = self.latency.predict_many(names, output_tokens)
        mean = logistic.blend(knn.mean, np.hstack([vector, features]), names)
        with self._lock:
            decision = self.scheduler.choose(candidates, mean, knn.std, cost, latency)
        return decision, dict(zip(names, mean.tolist()))

    def _failure(self, name: str, exc: BaseException) -> tuple[str, str]:
        """A call that raised or timed out: nothing to pay, one strike for the model."""
        retry_after = retry_after_s(exc)
        self.health.record_failure(name, retry_after)
        if isinstance(exc, _TIMEOUTS):
            return name, f"timed out after {self.specs[name].timeout_s} s"
        pause = f" (retry after {retry_after:g} s)" if retry_after is not None else ""
        return name, f"{type(exc).__name__}: {exc}{pause}"

    def _accept(self, name: str, completion: Completion, started: float, verdict: float | None,
                attempts: list, checked: list) -> bool:
        """Record one answered (and paid) call; True when no further model should be tried.
        An empty answer is paid for but counts as a failure of the model."""
        if not completion.answered:
            self.health.record_failure(name)
            checked.append((name, completion, time.perf_counter() - started, 0.0))
            attempts.append((name, "empty answer"))
            return False
        self.health.record_success(name)
        checked.append((name, completion, time.perf_counter() - started, verdict))
        attempts.append((name, "ok" if verdict != 0.0 else "rejected by verifier"))
        return verdict != 0.0 or not self.recheck or sum(c[1].answered for c in checked) > 1

    def _verify(self, request: Request, completion: Completion) -> float | None:
        return None if completion.tool_calls else self._verify_text(request, completion.text)

    def _verify_text(self, request: Request, text: str) -> float | None:
        return None if self.verifier is None else self.verifier(request, text)

    def _finish(self, plan: RoutePlan, checked: list, attempts: list[tuple[str, str]]) -> Response:
        usable = [c for c in checked if c[1].answered]
        if not usable:
            detail = "; ".join(f"{m}: {why}" for m, why in attempts)
            raise BackendError(f"every model failed for request {plan.request.id} ({detail}). "
                               "Check the providers' status and credentials, or add models.",
                               attempts)
        passed = [c for c in usable if c[3] != 0.0]
        name, completion, _, verdict = passed[0] if passed else usable[0]
        total_cost = 0.0
        total_latency = 0.0
        modelled = False
        for other_name, other, other_wall, _ in checked:  # every call made is paid for
            total_cost += self.specs[other_name].charge(other)
            lat = other.latency_s if other.latency_s is not None else other_wall
            total_latency += lat
            modelled = modelled or other.latency_modelled
            with self._lock:
                self.tokens.partial_fit(other_name, plan.request.task, other.usage.output_tokens)
                self.latency.partial_fit(other_name, other.usage.output_tokens, lat)
        with self._lock:
            self.scheduler.record_spend(total_cost, time.time())
        entry_id = None
        if plan.cacheable and verdict != 0.0 and not completion.tool_calls and completion.text:
            entry_id = self.cache.insert(  # only a verifier's pass: wait for confirmation
                plan.request.embed_text, completion.text, plan.scope, vector=plan.vector,
                confirmed=verdict is None,
                payload={"model": name, "request_id": plan.request.id,
                         "input_tokens": completion.usage.input_tokens,
                         "output_tokens": completion.usage.output_tokens})
        quality = plan.quality[name]
        response = Response(
            text=completion.text, model=name, cache_hit=False, usage=completion.usage,
            cost_usd=total_cost, latency_s=total_latency, predicted_quality=quality,
            request_id=plan.request.id, tried=tuple(m for m, _ in attempts),
            latency_modelled=modelled, tool_calls=completion.tool_calls, raw=completion.raw)
        self._remember(plan, response, entry_id)
        for other_name, other, _, other_verdict in checked:
            if other_verdict is not None and other_name != name:
                self._record_outcome(plan.vector, plan.features, other_name, other_verdict,
                                     "verifier")
        if verdict is not None:
            self.feedback(plan.request.id, verdict, source="verifier")
        return response

    def _record_outcome(self, vector: np.ndarray, features: np.ndarray, model: str,
                        score: float, source: str) -> None:
        weight = SOURCE_WEIGHTS.get(source, 1.0)
        self.add_outcome(vector, features, model, score, weight, source)
        if self.store is not None:
            self.store.record_outcome(vector, features, model, score, weight, source)

    def add_outcome(self, vector: np.ndarray, features: np.ndarray, model: str, score: float,
                    weight: float, source: str, *, fit_knn: bool = True) -> None:
        """One training row (e.g. learned by another replica); the kNN learns it at once,
        the logistic predictors at the next refit (`fit_knn=False`: see `refit_knn`)."""
        self.outcomes.add(vector, features, model, score, weight, source)
        if fit_knn:
            with self._lock:
                self.knn.partial_fit(vector, model, score, weight)

    def refit_knn(self) -> None:
        """Refit the kNN predictor from every training row at once (after a bulk load)."""
        vectors, _, models, scores, weights = self.outcomes.arrays()
        with self._lock:
            self.knn.fit(vectors, models, scores, weights)

    def _cached_response(self, plan: RoutePlan) -> Response:
        lookup = plan.lookup
        payload = lookup.payload or {}
        response = Response(
            text=lookup.answer, model=str(payload.get("model", "cache")), cache_hit=True,
            usage=Usage(0, 0), cost_usd=0.0, latency_s=time.perf_counter() - plan.started,
            predicted_quality=1.0 - self.cache.threshold.max_wrong_rate,
            request_id=plan.request.id, raw={"cache_entry": lookup.entry_id, **payload})
        self._remember(plan, response, lookup.entry_id)
        return response

    def _remember(self, plan: RoutePlan, response: Response, entry_id: int | None) -> None:
        lookup = plan.lookup
        if lookup is not None and (lookup.answer is not None or lookup.payload is not None):
            lookup = dataclasses.replace(lookup, answer=None, payload=None)  # feedback needs ids
        served = _Served(model=response.model, cache_hit=response.cache_hit, vector=plan.vector,
                         features=plan.features, answer_digest=_digest(response.text),
                         lookup=lookup, entry_id=entry_id, namespace=plan.request.namespace)
        with self._lock:
            self._served[plan.request.id] = served
            while len(self._served) > self.max_pending:
                self._served.popitem(last=False)

    def stats(self) -> dict[str, Any]:
        """Counters for operators: the verifier's checks (timed out, failed, skipped) and
        the cache's hits, misses and wrong answers."""
        return {"verifier": None if self.verifier is None else self.verifier.stats(),
                "cache": None if self.cache is None else dataclasses.asdict(self.cache.stats())}

    # -- lifecycle ------------------------------------------------------------------
    def close(self) -> None:
        self.updates.wait()
        if self.store is not None:
            self.store.close()
        self._pool_executor.shutdown(wait=False, cancel_futures=True)


def default_cache(embedder: Embedder, max_wrong_rate: float,
                  entries: EntryStore | None = None) -> SemanticCache:
    """The cache a router makes for itself (`entries`: where a shared store keeps it).

    It refits its two thresholds itself every 25 verdicts (milliseconds): a workload
    where hits are wrong must switch it off fast, not at the next update."""
    return SemanticCache(embedder, max_wrong_rate=max_wrong_rate, refit_every=25,
                         entries=entries)


def _digest(answer: str) -> bytes:
    return hashlib.sha256(answer.strip().encode("utf-8", "surrogatepass")).digest()


def _as_request(request: Request | str) -> Request:
    if isinstance(request, Request):
        return request
    if isinstance(request, str):
        return Request(prompt=request)
    raise InvalidInputError(f"expected a Request or a prompt string, got "
                            f"{type(request).__name__}.")

"""Dynamic Update Manager: everything the router learns, owned in one place.

The `Learner` owns the training rows (`OutcomeLog`), how far each label-free source of
feedback is trusted (`SourceTrust`), the quality predictors (kNN, and
per-model logistic regressions refit on a window of recent rows), the token/cost and
latency predictors, the `Scheduler` with its spend window, and the `UpdateManager`
that refits periodically (the cache's thresholds included). The router asks it for a
decision and tells it what happened; a store saves its `snapshot()`, and rows other
replicas learned come in through `absorb()`. It imports no store and no router.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._persist import Snapshot, reading_saved
from .cache import SemanticCache
from .outcomes import OutcomeLog
from .routing import (
    Decision,
    KNNQualityPredictor,
    LatencyPredictor,
    LogisticQualityPredictor,
    Scheduler,
    TokenCostPredictor,
    query_features,
)
from .routing.features import task_key
from .routing.task_priors import TaskPriors
from .trust import SourceTrust
from .types import ModelSpec, Outcome
from .updates import UpdateManager

# a label-free verdict is one weak voice: its row counts half a label, and its score is
# what the source's trust says the verdict is worth (trust.py); other sources count whole
SOURCE_WEIGHTS = {"verifier": 0.5, "agreement": 0.5, "judge": 0.5}
# the logistic predictors refit on the most recent outcomes only: a refit costs the same
# however long the router has run, and follows drift (the kNN keeps every outcome)
LOGISTIC_WINDOW = 5000
N_FEATURES = len(query_features("x", None))
# what a fresh answer teaches serves again when traffic repeats: the share of recent
# requests (~REPEAT_WINDOW) that the cache answered measures it; with a share r, one
# lesson serves about 1 / (1 - r) requests (counted up to 20)
REPEAT_WINDOW = 100
MAX_REPEAT = 0.95


def trust_key(features: np.ndarray) -> str:
    """Trust is kept per task bucket of the request's features (rows from other replicas
    carry features, not tags)."""
    return str(task_key(features))


class Learner:
    """What the router knows about its models, and how it learns more.

    Parameters
    ----------
    dim : the embedder's dimension (training rows are embedded requests).
    scheduler : the objective and the choice; its spend window is learned state.
    cache : the cache whose thresholds the periodic refit teaches (None: no cache).
    update_every_n, update_every_s, background_updates : the UpdateManager's triggers.
    """

    def __init__(
        self,
        dim: int,
        scheduler: Scheduler,
        cache: SemanticCache | None = None,
        *,
        update_every_n: int = 200,
        update_every_s: float = 300.0,
        background_updates: bool = True,
    ) -> None:
        self.scheduler = scheduler
        self.cache = cache
        self.outcomes = OutcomeLog(dim, N_FEATURES)
        self.knn = KNNQualityPredictor()
        self.logistic = LogisticQualityPredictor()
        self.tokens = TokenCostPredictor()
        self.latency = LatencyPredictor()
        self.priors = TaskPriors()
        self.trust = SourceTrust()
        self.repeat_rate = 0.0  # share of recent requests the cache answered (moving average)
        self.updates = UpdateManager(
            self.refit,
            every_n=update_every_n,
            every_s=update_every_s,
            background=background_updates,
        )
        self._lock = threading.RLock()  # predictors are not thread-safe: reads and updates
        # take turns; the logistic predictors are replaced whole by a refit

    # -- deciding -------------------------------------------------------------------
    def decide(
        self,
        candidates: Sequence[ModelSpec],
        vector: np.ndarray,
        features: np.ndarray,
        input_tokens: int,
        task: str | None,
    ) -> tuple[Decision, dict[str, float]]:
        """The scheduler's choice among `candidates` and each one's predicted quality."""
        names = [s.name for s in candidates]
        key = task_key(features)
        with self._lock:
            prior = self.priors.stats(key, names)
            prior_mean = prior[0]
            knn = self.knn.predict(vector, names, priors=dict(zip(names, prior_mean.tolist())))
            logistic = self.logistic
            cost, output_tokens = self.tokens.costs(candidates, input_tokens, task)
            latency = self.latency.predict_many(names, output_tokens)
        knn = knn.on_this_request(logistic.blend(knn.mean, np.hstack([vector, features]), names))
        mean = knn.mean
        # the best in hindsight given what is known of this very request
        prior = (*knn.given_own(prior[0], prior[1]), prior[2])
        with self._lock:
            reuse = 1.0 / (1.0 - min(self.repeat_rate, MAX_REPEAT))
            decision = self.scheduler.choose(
                candidates,
                mean,
                knn.std,
                cost,
                latency,
                prior=prior,
                reuse=reuse,
                sample_std=knn.learnable_std(prior[1]),
                failed_here=knn.failed_here,
            )
        return decision, dict(zip(names, mean.tolist()))

    # -- learning from what happened ----------------------------------------------------
    def observe_request(self, cache_hit: bool) -> None:
        """One request served: from the cache or not (how much traffic repeats)."""
        with self._lock:
            self.repeat_rate += (float(cache_hit) - self.repeat_rate) / REPEAT_WINDOW

    def observe_calls(
        self,
        task: str | None,
        calls: Sequence[tuple[str, int, float]],
        cost_usd: float,
        *,
        explored: bool = False,
    ) -> None:
        """Every (model, output tokens, latency) call made for one request, and its cost
        (`explored`: the request was routed to explore; its cost counts against the cap)."""
        with self._lock:
            for model, output_tokens, latency_s in calls:
                self.tokens.partial_fit(model, task, output_tokens)
                self.latency.partial_fit(model, output_tokens, latency_s)
            self.scheduler.record_spend(cost_usd, time.time(), explored=explored)

    def observe_learning_call(
        self, task: str | None, model: str, output_tokens: int, latency_s: float, cost_usd: float
    ) -> None:
        """A pool model's call made only to learn (a second opinion): its tokens and
        latency teach the predictors; its cost is `spent_on_learning`."""
        with self._lock:
            self.tokens.partial_fit(model, task, output_tokens)
            self.latency.partial_fit(model, output_tokens, latency_s)
        self.spent_on_learning(cost_usd)

    def spent_on_learning(self, cost_usd: float) -> None:
        """Money spent only to learn (a second opinion, a judge's grading): it counts
        against exploration's cap, and it served no request."""
        with self._lock:
            self.scheduler.record_spend(cost_usd, time.time(), explored=True, request=False)

    def may_learn(self, cost_usd: float, max_cost_usd: float) -> bool:
        """May a call made only to learn spend `cost_usd` now (exploration's cap)?"""
        with self._lock:
            reuse = 1.0 / (1.0 - min(self.repeat_rate, MAX_REPEAT))
            return self.scheduler.may_learn(cost_usd, max_cost_usd, reuse)

    def outcome(
        self, vector: np.ndarray, features: np.ndarray, model: str, score: float, source: str
    ) -> Outcome:
        """Learn one judged answer; returns the row (for a store to publish)."""
        row = self.row(vector, features, model, score, source)
        self.add(row)
        return row

    @staticmethod
    def row(
        vector: np.ndarray, features: np.ndarray, model: str, score: float, source: str
    ) -> Outcome:
        """A training row, weighted by how much its source is trusted."""
        return Outcome(
            vector, features, model, float(score), SOURCE_WEIGHTS.get(source, 1.0), source
        )

    def add(self, row: Outcome, *, online: bool = True) -> None:
        """One training row; the kNN and the task priors learn it at once, the logistic
        predictors at the next refit (`online=False`: a bulk load, `rebuild()` after)."""
        self.outcomes.add(row.vector, row.features, row.model, row.score, row.weight, row.source)
        if online:
            score = self.trust.training_score(row.source, trust_key(row.features), row.score)
            with self._lock:
                self.priors.add(task_key(row.features), row.model, score, row.weight)
                self.knn.partial_fit(row.vector, row.model, score, row.weight)

    def ground_truth(
        self, features: np.ndarray, verdicts: Sequence[tuple[str, float]], right: bool
    ) -> None:
        """A label or rating on an answer that label-free sources had judged: each of
        their verdicts (source, score) is scored against it."""
        key = trust_key(features)
        for source, score in verdicts:
            self.trust.observe(source, key, score, right)

    def p_right(self, features: np.ndarray, source: str, score: float) -> float:
        """How likely an answer is right, given `source`'s verdict on it."""
        return self.trust.p_right(source, trust_key(features), score)

    def p_agreed(self, features: np.ndarray, p_right: float, agreeing: int) -> float:
        """How likely an answer is right that was right with probability `p_right` before
        `agreeing` other models gave it too: each agreement multiplies its odds by how
        much likelier an agreement is right than wrong (trust.py). Models sharing a
        mistake make this optimistic; ground truth on agreements corrects the ratio."""
        precision = self.trust.precision("agreement", trust_key(features), True)
        p = min(max(p_right, 1e-6), 1 - 1e-6)
        odds = p / (1 - p) * (precision / (1 - precision)) ** agreeing
        return odds / (1 + odds)

    def fit(
        self, rows: Sequence[Outcome], calls: Sequence[tuple[str | None, str, int, float | None]]
    ) -> None:
        """Warm start from history: training rows, and recorded calls (task, model, output
        tokens, latency or None) for the token and latency predictors; then one refit."""
        for row in rows:
            self.add(row, online=False)
        with self._lock:
            for task, model, output_tokens, latency_s in calls:
                self.tokens.partial_fit(model, task, output_tokens)
                if latency_s is not None:
                    self.latency.partial_fit(model, output_tokens, latency_s)
        self.rebuild()
        self.updates.update_now()

    def absorb(
        self, rows: Sequence[Outcome], verdicts: Sequence[tuple[float, float, bool]] = ()
    ) -> int:
        """Take in what other replicas learned: training rows and cache verdicts; counts
        them as feedback for the Update Manager. Returns how many were taken."""
        bulk = self.knn.n_records_ == 0 and len(rows) > 1
        for row in rows:
            self.add(row, online=not bulk)
        if bulk:  # one batch fit instead of row by row (a replica's start)
            self.rebuild()
        if verdicts and self.cache is not None:
            self.cache.absorb_verdicts(list(verdicts))
        if rows or verdicts:
            self.updates.record(len(rows) + len(verdicts))
        return len(rows) + len(verdicts)

    def feedback_arrived(self) -> None:
        self.updates.record()

    # -- refitting ------------------------------------------------------------------
    def refit(self) -> dict[str, Any]:
        """The Update Manager's work: logistic predictors on recent rows, cache thresholds."""
        vectors, features, models, scores, weights = self._training_arrays()
        figures: dict[str, Any] = {"outcomes": len(models)}
        if len(models):
            recent = slice(-LOGISTIC_WINDOW, None)
            logistic = LogisticQualityPredictor(min_samples=self.logistic.min_samples)
            logistic.fit(
                np.hstack([vectors[recent], features[recent]]),
                models[recent],
                scores[recent],
                weights[recent],
            )
            with self._lock:
                self.logistic = logistic
            figures["logistic_brier"] = {
                m: round(float(b), 4) for m, b in logistic.validation_brier_.items()
            }
        if self.cache is not None:
            self.cache.refit()
            figures["cache_similarity"] = self.cache.threshold.similarity_
            figures["cache_ratio"] = self.cache.threshold.ratio_
        return figures

    def rebuild(self) -> None:
        """Refit the kNN and the task priors from every training row at once."""
        vectors, features, models, scores, weights = self._training_arrays()
        priors = TaskPriors()
        for f, model, score, weight in zip(features, models, scores, weights):
            priors.add(task_key(f), model, float(score), float(weight))
        with self._lock:
            self.knn.fit(vectors, models, scores, weights)
            self.priors = priors

    def _training_arrays(self) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray]:
        """The rows, each label-free score replaced by what its source's trust makes of
        it now (so trust measured later also corrects older rows)."""
        vectors, features, models, scores, weights, sources = self.outcomes.arrays()
        calibrated = np.array(
            [
                self.trust.training_score(source, trust_key(f), float(score))
                for f, score, source in zip(features, scores, sources)
            ]
        )
        return vectors, features, models, calibrated, weights

    def on_update(self, publish: Callable[[dict[str, Any]], None]) -> None:
        """Also send each refit's log entry to `publish` (e.g. a shared log)."""
        self.updates.on_entry = publish

    # -- state ----------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Everything learned, as plain data (the predictors that need a batch fit are
        refit from the rows on restore: nothing is pickled)."""
        self.updates.wait()
        with self._lock:
            meta = {
                "tokens": self.tokens.to_state(),
                "latency": self.latency.to_state(),
                "spend": self.scheduler.spend(),
                "updates": self.updates.to_state(),
                "repeat_rate": self.repeat_rate,
                "trust": self.trust.to_state(),
            }
        return Snapshot.nest(meta, {"outcomes": self.outcomes.snapshot()})

    def restore(self, snapshot: Snapshot) -> None:
        with reading_saved("the saved learning state"):
            outcomes = snapshot.part("outcomes")
            if outcomes is None:
                raise KeyError("outcomes")
            self.outcomes = OutcomeLog.from_snapshot(outcomes, self.outcomes.dim, N_FEATURES)
            self.tokens = TokenCostPredictor.from_state(snapshot.meta["tokens"])
            self.latency = LatencyPredictor.from_state(snapshot.meta["latency"])
            self.scheduler.restore_spend(snapshot.meta["spend"])
            self.updates.restore(snapshot.meta["updates"])
            self.repeat_rate = float(snapshot.meta["repeat_rate"])
            self.trust = SourceTrust.from_state(snapshot.meta.get("trust", []))
            if len(self.outcomes):  # garbled rows fail here: a corrupted state too
                self.rebuild()
                self.updates.update_now()

    def close(self) -> None:
        self.updates.wait()

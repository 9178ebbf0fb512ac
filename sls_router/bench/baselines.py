"""Baselines replayed on the same requests as sls-router, for an honest comparison.

All of them start from the same recorded answers; none uses a cache. `best_single`
and `oracle` use hindsight (labels of the whole file) and are references, not
strategies one could run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from ..replay import ReplayBackend, ReplayDataset, ReplayRecord
from ..routing import KNNPrediction, KNNQualityPredictor, Scheduler
from ..types import Completion, ModelSpec, Request
from ..verifiers import TaskVerifier
from .trace import Trace, normalise

Serve = Callable[[int, ReplayRecord], list[str]]  # models called, the last one is served


class Replayer:
    """Recorded answers, costs and latencies of every model, looked up per record."""

    def __init__(self, dataset: ReplayDataset) -> None:
        self.dataset = dataset
        self.backends = {m: ReplayBackend(dataset, m) for m in dataset.models}
        self.models = [m for m in dataset.models]

    def call(self, record: ReplayRecord, model: str) -> Completion | None:
        if model not in record.responses:
            return None
        return self.backends[model].completion_for(record)

    def cost(self, record: ReplayRecord, model: str) -> float:
        """What `model`'s recorded answer to `record` cost (it must have one)."""
        cost = self.backends[model].completion_for(record).cost_usd
        assert cost is not None  # completion_for prices every recorded answer
        return cost

    def right(self, record: ReplayRecord, model: str) -> bool:
        resp = record.responses.get(model)
        return resp is not None and resp.score >= 0.5

    # the means below are over `records`, by default the whole set
    def mean_cost(self, model: str, records: Sequence[ReplayRecord] | None = None) -> float:
        """Over the records `model` answered."""
        costs = [self.cost(r, model) for r in self._among(records) if model in r.responses]
        return float(np.mean(costs)) if costs else float("inf")

    def mean_latency(self, model: str, records: Sequence[ReplayRecord] | None = None) -> float:
        """Recorded or modelled; 0 where the data set has neither."""
        calls = [self.call(r, model) for r in self._among(records)]
        latencies = [c.latency_s or 0.0 for c in calls if c is not None]
        return float(np.mean(latencies)) if latencies else 0.0

    def accuracy(self, model: str, records: Sequence[ReplayRecord] | None = None) -> float:
        return float(np.mean([self.right(r, model) for r in self._among(records)]))

    def _among(self, records: Sequence[ReplayRecord] | None) -> Sequence[ReplayRecord]:
        return self.dataset.records if records is None else records

    def run(self, serve: Serve) -> Trace:
        """Replay `serve`'s choices: every model it called is paid for, the last is served."""
        trace = Trace()
        for i, record in enumerate(self.dataset):
            called = [m for m in serve(i, record) if m in record.responses]
            if not called:
                called = [self.cheapest_available(record)]
            cost = latency = 0.0
            for model in called:
                completion = self.call(record, model)
                # `called` holds recorded models only, and completion_for prices them all
                assert completion is not None and completion.cost_usd is not None
                cost += completion.cost_usd
                latency += completion.latency_s or 0.0
                trace.calls[model] += 1
            trace.add(self.right(record, called[-1]), cost, latency, called[-1])
        return trace

    def cheapest_available(self, record: ReplayRecord) -> str:
        return min(record.responses, key=lambda m: self.cost(record, m))


def single(replayer: Replayer, model: str) -> Trace:
    return replayer.run(lambda i, r: [model])


def random_choice(replayer: Replayer, seed: int) -> Trace:
    rng = np.random.default_rng(seed)
    return replayer.run(lambda i, r: [str(rng.choice(sorted(r.responses)))])


def oracle(replayer: Replayer) -> Trace:
    """The cheapest right model where one exists (an upper bound), else the cheapest."""

    def serve(i: int, record: ReplayRecord) -> list[str]:
        right = [m for m in record.responses if replayer.right(record, m)]
        pool = right or list(record.responses)
        return [min(pool, key=lambda m: replayer.cost(record, m))]

    return replayer.run(serve)


def cascade(replayer: Replayer, chain: Sequence[str]) -> Trace:
    """FrugalGPT-style: cheapest first, escalate while the answer is rejected.

    Acceptance is label-free: the task's verifier where one exists, else two
    consecutive models giving the same answer. Every call made is paid for."""
    verifier = TaskVerifier()

    def serve(i: int, record: ReplayRecord) -> list[str]:
        request = Request(prompt=record.prompt, query=record.query, task=record.task)
        called: list[str] = []
        previous = None
        for model in chain:
            if model not in record.responses:
                continue
            called.append(model)
            answer = record.responses[model].output
            verdict = verifier(request, answer)
            if verdict is not None and verdict >= 0.5:
                return called
            if (
                verdict is None
                and previous is not None
                and normalise(previous) == normalise(answer)
            ):
                return called
            previous = answer
        return called

    return replayer.run(serve)


def static_knn(
    replayer: Replayer,
    vectors: np.ndarray,
    specs: Sequence[ModelSpec],
    *,
    train_fraction: float = 0.02,
    preset: str = "balanced",
    seed: int = 0,
) -> Trace:
    """OptLLM-style: kNN trained on the first 2% with every model's label, then frozen.

    The training requests call every model (paid) and serve a right answer; later
    requests are routed greedily by predicted quality and cost, with no cache."""
    n_train = max(1, int(len(replayer.dataset) * train_fraction))
    knn = fed_knn(replayer.dataset.records[:n_train], vectors[:n_train])
    route = _greedy_router(replayer, specs, preset, seed)

    def serve(i: int, record: ReplayRecord) -> list[str]:
        if i < n_train:
            right = [m for m in record.responses if replayer.right(record, m)]
            rest = [m for m in record.responses if m not in right]
            return rest + right  # all called; a right one (if any) is served
        return [route(knn, vectors[i], record.task)]

    return replayer.run(serve)


def hindsight_knn(
    replayer: Replayer,
    vectors: np.ndarray,
    specs: Sequence[ModelSpec],
    *,
    folds: int = 5,
    preset: str = "balanced",
    seed: int = 0,
) -> Trace:
    """How much routing request by request can gain here at most, for the router's kNN.

    Each request is routed greedily, by the router's objective, on a kNN that knows
    every model's outcome on the other folds' requests (4 in 5 of the file), with the
    models' success rates per task there as priors: no exploration, no learning cost, no cache.
    An online router knows only the outcomes of the models it served, of the requests
    before. A hindsight reference, like `oracle`, not a strategy one could run."""
    n = len(replayer.dataset)
    fold = np.random.default_rng(seed).permutation(n) % folds
    route = _greedy_router(replayer, specs, preset, seed)
    records = replayer.dataset.records
    knns = []
    for f in range(folds):
        known = np.flatnonzero(fold != f)
        knns.append(fed_knn([records[i] for i in known], vectors[known]))
    return replayer.run(lambda i, record: [route(knns[fold[i]], vectors[i], record.task)])


def fed_knn(records: Sequence[ReplayRecord], vectors: np.ndarray) -> FedKNN:
    """The router's kNN fed every model's recorded outcome on `records`, and each
    model's success rate per task on them (the task priors of a router that saw them)."""
    knn = KNNQualityPredictor()
    outcomes: dict[str | None, dict[str, list[float]]] = {}
    rows, models, scores = [], [], []
    for i, record in enumerate(records):
        for model, response in record.responses.items():
            rows.append(i)
            models.append(model)
            scores.append(response.score)
            outcomes.setdefault(record.task, {}).setdefault(model, []).append(response.score)
    knn.fit(vectors[rows], models, scores)
    rates = {t: {m: float(np.mean(s)) for m, s in of.items()} for t, of in outcomes.items()}
    return FedKNN(knn, rates)


class FedKNN(NamedTuple):
    """The router's kNN fed recorded outcomes, and each model's success rate per task."""

    knn: KNNQualityPredictor
    rates: dict[str | None, dict[str, float]]  # per task, per model

    def predict(self, vector: np.ndarray, models: Sequence[str], task: str | None) -> KNNPrediction:
        """P(right) of each of `models`, with the task's rates as priors, and the
        outcomes recorded on the same text weighed as the router weighs them."""
        prediction = self.knn.predict(vector, models, priors=self.rates.get(task))
        return prediction.on_this_request(prediction.mean)


def _greedy_router(
    replayer: Replayer, specs: Sequence[ModelSpec], preset: str, seed: int
) -> Callable[[FedKNN, np.ndarray, str | None], str]:
    """The model of best predicted utility (the router's objective, with each model's
    mean recorded cost and latency), without exploration."""
    scheduler = Scheduler(preset=preset, exploration=0.0, min_explore=0.0, random_state=seed)
    names = [s.name for s in specs]
    cost = np.array([replayer.mean_cost(m) for m in names])
    latency = np.array([replayer.mean_latency(m) for m in names])

    def route(known: FedKNN, vector: np.ndarray, task: str | None) -> str:
        pred = known.predict(vector, names, task)
        return scheduler.choose(specs, pred.mean, pred.std, cost, latency).chosen

    return route

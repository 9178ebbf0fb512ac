"""What learning from nothing must cost at least, whatever the router.

A router that starts knowing nothing must try each model it does not yet know to be
worse often enough to tell. Lai and Robbins (1985) showed that any policy that learns
(one whose loss grows slower than any power of the number of requests T) tries a
worse model i at least about ``ln T / KL(p_i, p_i*)`` times, where ``p_i`` is its
success rate and ``p_i*`` the rate it would need to be the best by the objective
(KL: the Kullback-Leibler divergence of two Bernoulli laws). A model that could not be
the best even if always right needs no try. Each try of a worse model costs its
shortfall in accuracy and its difference in price, so the bound gives the accuracy and
cost that learning the best model from scratch can reach at best, beside what that
model alone gets in hindsight. The bound is asymptotic (it holds as T grows), capped at
T tries, and counts no per-request signal: it says what a target demands, not what a
router will do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..replay import ReplayDataset, ReplayRecord
from ..routing import Scheduler
from .baselines import Replayer


@dataclass(frozen=True)
class LearningCost:
    """The least that learning which model is best must cost over `requests` requests.

    ``best``: the model best by the objective in hindsight, with its ``accuracy`` and
    ``cost_usd`` alone; ``tries``: the least expected number of tries of each worse
    model; ``wrong``/``extra_cost_usd``: what those tries cost, so that
    ``accuracy - wrong / requests`` and ``cost_usd + extra_cost_usd`` are the best a
    router that starts from nothing can expect."""

    requests: int
    best: str
    accuracy: float
    cost_usd: float
    tries: dict[str, float] = field(default_factory=dict)
    wrong: float = 0.0
    extra_cost_usd: float = 0.0

    @property
    def informative(self) -> bool:
        """Whether the tries fit in the requests. Where models too close to tell apart
        would need more, the asymptotic bound says nothing about this many requests."""
        return sum(self.tries.values()) < self.requests


def bernoulli_kl(p: float, q: float) -> float:
    """KL(Bernoulli(p) || Bernoulli(q)), for 0 <= p <= 1 and 0 < q < 1."""
    return sum(a * math.log(a / b) for a, b in ((p, q), (1 - p, 1 - q)) if a > 0)


def least_learning_cost(
    accuracy: Mapping[str, float],
    cost_usd: Mapping[str, float],
    latency_s: Mapping[str, float],
    requests: int,
    scheduler: Scheduler,
) -> LearningCost:
    """The Lai-Robbins bound for one task: `accuracy`, `cost_usd` (per request) and
    `latency_s` of each model on it, and the scheduler whose objective ranks them."""
    names = list(accuracy)
    p = np.array([accuracy[m] for m in names])
    cost = np.array([cost_usd[m] for m in names])
    penalty = scheduler.penalty(cost, np.array([latency_s[m] for m in names]))
    best = int(np.argmax(p - penalty))
    tries: dict[str, float] = {}
    for i, name in enumerate(names):
        needed = p[best] - penalty[best] + penalty[i]  # the rate that would make it best
        if i == best or needed >= 1.0 or p[i] >= needed:
            continue
        # near the best, telling the two apart takes more requests than there are: the
        # bound says no more than that the model may be served throughout
        tries[name] = min(requests, math.log(requests) / bernoulli_kl(float(p[i]), float(needed)))
    return LearningCost(
        requests=requests,
        best=names[best],
        accuracy=float(p[best]),
        cost_usd=float(cost[best]) * requests,
        tries=tries,
        wrong=sum(n * (p[best] - accuracy[m]) for m, n in tries.items()),
        extra_cost_usd=sum(n * (cost_usd[m] - cost[best]) for m, n in tries.items()),
    )


def dataset_learning_cost(
    dataset: ReplayDataset, scheduler: Scheduler
) -> tuple[float, float, list[LearningCost]]:
    """The bound per task of a replay set (the router keeps an incumbent per task), and
    the accuracy and cost over the whole set that learning from scratch can reach at
    best, with the best model of each task in hindsight as the reference. A task where
    the bound is not `informative` is counted at its best model's figures."""
    replayer = Replayer(dataset)
    by_task: dict[str | None, list[ReplayRecord]] = {}
    for record in dataset:
        by_task.setdefault(record.task, []).append(record)
    bounds = [_task_bound(replayer, records, scheduler) for records in by_task.values()]
    n = len(dataset)
    accuracy = sum(b.accuracy * b.requests - b.wrong * b.informative for b in bounds) / n
    cost = sum(b.cost_usd + b.extra_cost_usd * b.informative for b in bounds)
    return accuracy, cost, bounds


def _task_bound(
    replayer: Replayer, records: Sequence[ReplayRecord], scheduler: Scheduler
) -> LearningCost:
    models = [m for m in replayer.models if all(m in r.responses for r in records)]
    return least_learning_cost(
        {m: replayer.accuracy(m, records) for m in models},
        {m: replayer.mean_cost(m, records) for m in models},
        {m: replayer.mean_latency(m, records) for m in models},
        len(records),
        scheduler,
    )

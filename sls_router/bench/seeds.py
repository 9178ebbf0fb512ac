"""Several seeds of one bench: the orders they replay and the figures they add up to.

One run proves little: the router learns online, so the order of the requests and its
random state change the path it takes. Seed 0 replays the file's order (so one seed is
the bench as it always was); seed s > 0 replays a permutation drawn from a Generator
seeded s. Every figure is then the mean over seeds, with the worst seed beside it, and
a strategy that some single model beats on both accuracy and cost says so.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from statistics import fmean
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..replay import ReplayDataset

# the figures of DESIGN.md that are averaged over seeds (calls_per_model too, per model)
MEAN_FIGURES = (
    "accuracy",
    "cost_usd",
    "llm_time_s",
    "wall_s",
    "cache_hit_rate",
    "cache_wrong_hit_rate",
    "explored_cost_share",
)


def check_seeds(seeds: int) -> None:
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigurationError(f"seeds={seeds!r}: run at least one seed (an integer >= 1).")


def seed_order(n: int, seed: int) -> np.ndarray:
    """The replay order of seed `seed`: file order for 0, a seeded permutation after."""
    if seed == 0:
        return np.arange(n)
    return np.random.default_rng(seed).permutation(n)


def shuffled(dataset: ReplayDataset, seed: int) -> ReplayDataset:
    """The same requests and models in seed `seed`'s order."""
    order = seed_order(len(dataset), seed)
    return ReplayDataset(dataset.name, [dataset.records[i] for i in order], dataset.models)


def _mean(values: Sequence[float]) -> float:
    """The mean, leaving a lone value as it was (one seed reports exactly as before)."""
    return values[0] if len(values) == 1 else fmean(values)


def _mean_calls(summaries: Sequence[Mapping]) -> dict:
    models = sorted({m for s in summaries for m in s["calls_per_model"]})
    return {m: _mean([s["calls_per_model"].get(m, 0) for s in summaries]) for m in models}


def mean_summary(summaries: Sequence[Mapping]) -> dict:
    """The figures of DESIGN.md, each the mean of the seeds' figures."""
    figures: dict[str, Any] = {k: _mean([s[k] for s in summaries]) for k in MEAN_FIGURES}
    figures["wall_s"] = round(figures["wall_s"], 3)
    figures["calls_per_model"] = _mean_calls(summaries)
    figures["verdicts"] = _pooled_verdicts(summaries)
    return figures


def _pooled_verdicts(summaries: Sequence[Mapping]) -> dict[str, dict[str, float]]:
    """Per feedback source, the verdicts of every seed pooled: how many per seed (mean),
    and the share that matched the truth."""
    n: dict[str, float] = {}
    right: dict[str, float] = {}
    for s in summaries:
        for source, v in s.get("verdicts", {}).items():
            n[source] = n.get(source, 0) + v["n"]
            right[source] = right.get(source, 0) + v["n"] * v["right"]
    return {
        source: {"n": n[source] / len(summaries), "right": right[source] / n[source]}
        for source in sorted(n)
    }


def seed_figures(per_seed: Mapping[int, Mapping], singles: Mapping[str, Mapping]) -> dict:
    """One strategy over seeds: the means, the worst seed's accuracy and cost, the single
    models (`singles`: name -> figures) that beat it in the mean, and each seed."""
    summaries = list(per_seed.values())
    figures = mean_summary(summaries)
    figures["accuracy_worst"] = min(s["accuracy"] for s in summaries)
    figures["cost_usd_worst"] = max(s["cost_usd"] for s in summaries)
    figures["dominated_by"] = dominated_by(figures, singles)
    figures["per_seed"] = [
        {"seed": seed, "accuracy": s["accuracy"], "cost_usd": s["cost_usd"]}
        for seed, s in per_seed.items()
    ]
    return figures


def _at_least(a: float, b: float) -> bool:
    return a >= b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _beats(a: float, b: float) -> bool:
    return a > b and not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def dominates(single: Mapping, figures: Mapping) -> bool:
    """Pareto dominance in the mean: at least as accurate and as cheap, strictly better on
    one. Sums of the same costs in another order differ in the last bits; that is a tie."""
    acc, cost = single["accuracy"], single["cost_usd"]
    return (
        _at_least(acc, figures["accuracy"])
        and _at_least(figures["cost_usd"], cost)
        and (_beats(acc, figures["accuracy"]) or _beats(figures["cost_usd"], cost))
    )


def dominated_by(figures: Mapping, singles: Mapping[str, Mapping]) -> list[str]:
    """The `single:<model>` strategies that beat `figures` on accuracy and cost."""
    return [name for name, single in singles.items() if dominates(single, figures)]


def hashed_draw(*parts: object) -> float:
    """A uniform draw in [0, 1) fixed by `parts` (a seed, a request id, ...): the same
    whatever order the requests run in, so simulated signals do not depend on it."""
    key = "\0".join(map(str, parts)).encode("utf-8", "surrogatepass")
    return float(
        np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little")).random()
    )

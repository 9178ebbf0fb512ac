"""The Performance-Cost Optimized Scheduler: which model to call for this request.

For each candidate the scheduler gets a predicted quality (mean and std of P(right)),
cost in USD and latency in seconds, and maximises

    utility = quality - lam * cost / max_cost - mu * latency / max_latency

where ``max_cost`` and ``max_latency`` are those of the most expensive and slowest
candidate *of this request*. Normalising makes ``lam`` and ``mu`` unit-free and the
same for a 10-token classification and a 2,000-token code answer: ``lam`` is how
much quality (as a probability) one would give up to go from the most expensive
model to a free one; ``mu`` likewise from the slowest model to an instant one.

Do no harm: the scheduler keeps an incumbent, the model that is best so far in
hindsight for the request's task by the same objective (per-task success rates,
`TaskPriors`), or the `default_model` a user names until evidence beats it. It leaves
the incumbent only where the request's own prediction says, with confidence, that
another model is better: by more than ``confidence`` standard deviations of the
difference. A model that failed this very request (``failed_here``) is not kept as the
incumbent for it, not even a named default.

Exploration is Thompson sampling on quality (a Beta draw matched to the predicted mean
and ``exploration * std``, the std being the part of the uncertainty that a try would
teach later requests: unseen models have a wide one and are tried early, and exploration
fades as evidence accumulates, near this request or in the task's record), and it is
priced: an exploratory call is made only while exploration has cost at most
``explore_share`` of everything spent (plus the price of ``explore_warmup`` calls of the
request's dearest model, so a new router can start); with a named default, also while at
most that share of requests (plus ``explore_warmup``) were explored, since each explored
answer risks the quality the user vouches for. A model 20x dearer thus earns its tries
20x more slowly. What is learned on traffic that repeats serves again (the kNN and the
cache reuse it), so the share is multiplied by the expected reuse: 1 / (1 - r), r the
share of recent requests the cache answered (`reuse`, at most 20; 1 on traffic that
never repeats). A floor of ``min_explore`` uniform picks, inside the same cap, keeps one
early failure from locking a model out; it skips a model whose price outweighs even a
perfect answer.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigurationError, InvalidInputError
from ..types import ModelSpec
from ._common import as_float, check_state, state_header

__all__ = ["PRESETS", "Decision", "Scheduler"]

PRESETS: dict[str, tuple[float, float]] = {
    "quality": (0.05, 0.01),  # give up at most 5 points of accuracy to pay nothing
    "balanced": (0.3, 0.05),  # 30 points for the full price range, 5 for the latency range
    "cost": (1.0, 0.05),  # the cheapest model wins unless it is far worse
}
"""``(lam, mu)`` per preset: quality points traded for the full cost / latency range."""


@dataclass
class Decision:
    """The scheduler's choice for one request and everything it assumed.

    ``ranking`` holds every candidate once, best first by sampled utility with the
    ineligible ones last: the router fails over down this list. ``utilities`` are the
    expected (mean) utilities, ``sampled_utilities`` the Thompson draws that ranked.
    ``explored`` is True when the choice differs from the best expected utility;
    ``constrained`` when no candidate met every constraint and the cheapest was taken;
    ``incumbent`` is the model kept unless evidence beats it (None before any evidence).
    """

    ranking: list[str]
    chosen: str
    predicted_quality: float
    predicted_cost_usd: float
    predicted_latency_s: float
    utilities: dict[str, float]
    explored: bool
    constrained: bool
    sampled_utilities: dict[str, float] = field(default_factory=dict)
    incumbent: str | None = None
    costs: dict[str, float] = field(default_factory=dict)


def _opt(value: Any, name: str, hi: float = math.inf, required: bool = False) -> None:
    if value is None and not required:
        return
    if not 0.0 <= as_float(value) <= hi:  # NaN and non-numbers fail too
        what = "a number" if required else "None or a number"
        raise ConfigurationError(f"{name}={value!r}: pass {what} in [0, {hi}].")


class Scheduler:
    """Chooses a model per request: max utility, Thompson exploration, hard constraints.

    Parameters: ``preset`` names ``(lam, mu)`` in ``PRESETS``; ``lam``/``mu`` override
    it. ``min_quality`` (predicted mean), ``max_cost_usd`` (per request) and
    ``budget_usd`` per sliding ``budget_window_s`` (fed by ``record_spend``) make
    candidates ineligible. ``exploration`` scales the std used for sampling (0 = use
    the mean); ``min_explore`` is the probability of a uniform pick among eligible ones;
    ``explore_share`` and ``explore_warmup`` cap what exploration may cost;
    ``confidence`` is how sure a prediction must be to leave the incumbent;
    ``default_model`` is the incumbent until evidence beats it.
    """

    def __init__(
        self,
        preset: str = "balanced",
        lam: float | None = None,
        mu: float | None = None,
        min_quality: float | None = None,
        max_cost_usd: float | None = None,
        budget_usd: float | None = None,
        budget_window_s: float = 3600.0,
        exploration: float = 1.0,
        min_explore: float = 0.02,
        explore_share: float = 0.1,
        explore_warmup: float = 2.0,
        confidence: float = 1.0,
        default_model: str | None = None,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.preset = preset
        self.lam = lam
        self.mu = mu
        self.min_quality = min_quality
        self.max_cost_usd = max_cost_usd
        self.budget_usd = budget_usd
        self.budget_window_s = budget_window_s
        self.exploration = exploration
        self.min_explore = min_explore
        self.explore_share = explore_share
        self.explore_warmup = explore_warmup
        self.confidence = confidence
        self.default_model = default_model
        self.random_state = random_state
        if preset not in PRESETS:
            raise ConfigurationError(
                f"preset {preset!r} is unknown; use one of {list(PRESETS)} "
                "or pass lam= and mu= explicitly."
            )
        for name in ("lam", "mu", "max_cost_usd", "budget_usd"):
            _opt(getattr(self, name), name)
        _opt(min_quality, "min_quality", hi=1.0)
        _opt(exploration, "exploration", required=True)
        _opt(min_explore, "min_explore", hi=1.0, required=True)
        _opt(explore_share, "explore_share", hi=1.0, required=True)
        _opt(explore_warmup, "explore_warmup", required=True)
        _opt(confidence, "confidence", required=True)
        if default_model is not None and (not isinstance(default_model, str) or not default_model):
            raise ConfigurationError(
                f"default_model={default_model!r}: pass the name of a model of the pool, or None."
            )
        if not as_float(budget_window_s) > 0 or math.isinf(budget_window_s):
            raise ConfigurationError(
                f"budget_window_s={budget_window_s!r}: pass a positive finite number of seconds."
            )
        if random_state is not None and not isinstance(random_state, (int, np.random.Generator)):
            raise ConfigurationError("random_state must be None, an int seed or a numpy Generator.")
        self._rng = np.random.default_rng(random_state)
        self._spend: deque[tuple[float, float]] = deque()
        self._spent = 0.0
        self.spent_total_usd = 0.0  # since the start: what the exploration cap is a share of
        self.explored_usd = 0.0
        self.requests = 0
        self.explored_requests = 0

    @property
    def effective_lam(self) -> float:
        return float(self.lam) if self.lam is not None else PRESETS[self.preset][0]

    @property
    def effective_mu(self) -> float:
        return float(self.mu) if self.mu is not None else PRESETS[self.preset][1]

    # ---------------------------------------------------------------- budget
    def record_spend(
        self,
        cost_usd: float,
        now: float | None = None,
        *,
        explored: bool = False,
        request: bool = True,
    ) -> None:
        """Count money spent at time ``now`` (seconds, default ``time.time()``);
        ``explored``: on a call made to explore (it counts against the exploration cap);
        ``request``: for a request served (False: a call made only to learn)."""
        cost = as_float(cost_usd)
        if not 0 <= cost < math.inf:
            raise InvalidInputError(f"cost_usd={cost_usd!r}: pass a finite amount >= 0 in USD.")
        self.spent_total_usd += cost
        self.requests += int(request)
        if explored:
            self.explored_usd += cost
            self.explored_requests += int(request)
        t = self._now(now)
        # one entry per 1/1000 of the window, stamped with the end of its slot: the record
        # stays bounded however many requests arrive (one entry per request held ~9.5 MB
        # per 100,000 requests for an hour), and a spend expires at most one slot late
        width = self.budget_window_s / 1000
        stamp = (math.floor(t / width) + 1) * width
        if self._spend and self._spend[-1][0] == stamp:
            self._spend[-1] = (stamp, self._spend[-1][1] + cost)
        else:
            self._spend.append((stamp, cost))
        self._spent += cost
        self._prune(t)

    def spent_usd(self, now: float | None = None) -> float:
        """Money recorded in the budget window ending at ``now``."""
        self._prune(self._now(now))
        return self._spent

    def remaining_budget_usd(self, now: float | None = None) -> float:
        if self.budget_usd is None:
            return math.inf
        return max(0.0, self.budget_usd - self.spent_usd(now))

    def _prune(self, now: float) -> None:
        start = now - self.budget_window_s
        while self._spend and self._spend[0][0] <= start:
            self._spent -= self._spend.popleft()[1]
        if not self._spend:
            self._spent = 0.0  # drop accumulated rounding
        self._spent = max(0.0, self._spent)

    @staticmethod
    def _now(now: float | None) -> float:
        if now is None:
            return time.time()
        t = as_float(now)
        if not math.isfinite(t):
            raise InvalidInputError(f"now={now!r}: pass a finite time in seconds or None.")
        return t

    # ---------------------------------------------------------------- choice
    def _sample_quality(self, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        """One Thompson draw per candidate from Beta(mean, exploration * std).

        Always draws one Beta per candidate so that runs with the same seed stay in
        step across settings (common random numbers make comparisons less noisy).
        ``np.maximum``/``np.minimum`` select exactly what ``np.clip`` would (the bounds
        never cross), at a fraction of its call overhead: this runs on every request.
        """
        m = np.minimum(np.maximum(mean, 1e-4), 1 - 1e-4)
        rest = 1 - m
        s = std * self.exploration
        var = np.minimum(np.maximum(s * s, 1e-12), 0.999 * m * rest)
        nu = m * rest / var - 1.0
        draw = self._rng.beta(m * nu, rest * nu)
        return np.where(s > 0, draw, mean)

    def choose(
        self,
        candidates: Sequence[ModelSpec],
        quality_mean: Any,
        quality_std: Any,
        cost_usd: Any,
        latency_s: Any,
        now: float | None = None,
        *,
        prior: tuple[Any, Any, Any] | None = None,
        reuse: float = 1.0,
        sample_std: Any = None,
        failed_here: Any = None,
    ) -> Decision:
        """Pick a model; arrays are aligned with ``candidates`` (one value per model).

        ``prior``: (mean, std, evidence) of each candidate's success rate in the request's
        task (`TaskPriors`), which picks the incumbent; without it, there is none.
        ``reuse``: how many requests are expected to draw on what one call teaches (1 on
        traffic that never repeats); the exploration cap grows with it.
        ``sample_std``: the part of ``quality_std`` that trying a model here would teach
        (`KNNPrediction.learnable_std`), which the Thompson draw uses; default
        ``quality_std``. Leaving the incumbent is always judged on ``quality_std``.
        ``failed_here``: which candidates the request's own outcomes judge wrong more
        often than right (`KNNPrediction.failed_here`); none of them is kept as the
        incumbent for it, not even a named default: the quality a user vouches for is
        not what that model gives on a request it already failed."""
        names = _check_candidates(candidates)
        q, sd, cost, lat = _check_arrays(len(names), quality_mean, quality_std, cost_usd, latency_s)
        draw_sd = sd if sample_std is None else _check_array(sample_std, len(names), "sample_std")
        failed = (
            np.zeros(len(names), dtype=bool)
            if failed_here is None
            else _check_array(failed_here, len(names), "failed_here", hi=1.0) > 0
        )
        n = len(names)
        t = self._now(now)
        penalty = self.penalty(cost, lat)
        u_mean = q - penalty
        u_sample = self._sample_quality(q, draw_sd) - penalty
        floor_draw, floor_pick = self._rng.random(2)  # drawn every time: keeps runs in step

        incumbent, untested = (
            (None, False) if prior is None else self._incumbent(names, penalty, *prior, failed)
        )
        eligible = self._eligible(q, cost, t)
        if eligible is None or eligible.any():
            ok = list(range(n)) if eligible is None else np.flatnonzero(eligible).tolist()
            exploit = self._exploit(u_mean, sd, ok, incumbent, untested)
            chosen = ok[int(np.argmax(u_sample[ok]))]
            if floor_draw < self.min_explore:
                # among models that could still beat the exploit: one whose price
                # outweighs even a perfect answer has nothing left to show
                hope = [i for i in ok if i == exploit or 1.0 - penalty[i] > u_mean[exploit]]
                chosen = hope[min(int(floor_pick * len(hope)), len(hope) - 1)]
            if chosen != exploit and not self._may_explore(float(cost[chosen]), cost, reuse):
                chosen = exploit
            explored, constrained = chosen != exploit, False
            rest = np.lexsort((-u_mean, ~np.isin(np.arange(n), ok))).tolist()
            order = [chosen] + [i for i in rest if i != chosen]
        else:  # nothing meets every constraint: the cheapest, then by expected utility
            order = np.lexsort((-u_mean, cost)).tolist()
            chosen, explored, constrained = order[0], False, True

        return Decision(
            ranking=[names[i] for i in order],
            chosen=names[chosen],
            predicted_quality=float(q[chosen]),
            predicted_cost_usd=float(cost[chosen]),
            predicted_latency_s=float(lat[chosen]),
            utilities=dict(zip(names, u_mean.tolist())),
            explored=bool(explored),
            constrained=constrained,
            sampled_utilities=dict(zip(names, u_sample.tolist())),
            incumbent=None if incumbent is None else names[incumbent],
            costs=dict(zip(names, cost.tolist())),
        )

    def penalty(self, cost_usd: np.ndarray, latency_s: np.ndarray) -> np.ndarray:
        """What each candidate's price and latency take off its quality in the objective:
        ``lam`` quality points for the dearest candidate's cost, ``mu`` for the slowest
        one's latency (utility = quality - penalty)."""
        lam, mu = self.effective_lam, self.effective_mu
        return lam * _normalised(cost_usd) + mu * _normalised(latency_s)

    def _incumbent(
        self,
        names: list[str],
        penalty: np.ndarray,
        mean: Any,
        std: Any,
        evidence: Any,
        failed: np.ndarray,
    ) -> tuple[int | None, bool]:
        """The best model so far in hindsight by the objective, among those with evidence
        in the task that did not fail this very request, and whether it is a named default
        not yet measured. The default stays until it was measured and another beats it
        with confidence, or until it fails the request."""
        hindsight = np.asarray(mean, dtype=float) - penalty
        sd = np.asarray(std, dtype=float)
        seen = np.asarray(evidence, dtype=float) > 0
        known = np.flatnonzero(seen & ~failed)
        best = int(known[np.argmax(hindsight[known])]) if len(known) else None
        default = names.index(self.default_model) if self.default_model in names else None
        if default is not None and not failed[default]:
            if not seen[default]:
                return default, True
            if best is None or not self._better(hindsight, sd, best, default):
                return default, False
        return best, False

    def _exploit(
        self,
        u_mean: np.ndarray,
        sd: np.ndarray,
        ok: list[int],
        incumbent: int | None,
        untested: bool,
    ) -> int:
        """The best expected utility, unless the incumbent is not confidently beaten (an
        untested named default cannot be: its quality is what the user vouches for)."""
        best = ok[int(np.argmax(u_mean[ok]))]
        if incumbent is None or incumbent not in ok:
            return best
        if untested or not self._better(u_mean, sd, best, incumbent):
            return incumbent
        return best

    def _better(self, utility: np.ndarray, sd: np.ndarray, a: int, b: int) -> bool:
        """Is `a` better than `b` by more than `confidence` std of the difference?"""
        margin = self.confidence * math.hypot(float(sd[a]), float(sd[b]))
        return bool(utility[a] - utility[b] > margin)

    def may_learn(self, cost: float, max_cost: float, reuse: float = 1.0) -> bool:
        """May a call made only to learn (a second opinion) spend `cost` now? It shares
        exploration's cap (`max_cost`: the dearest candidate's predicted cost). A call
        that costs nothing serves no request and risks none: always."""
        return cost <= 0 or self._may_explore(cost, np.array([max_cost]), reuse)

    def _may_explore(self, cost: float, costs: np.ndarray, reuse: float) -> bool:
        """Would one more exploratory request keep exploration within its cap in money
        and, when the user named a default (a quality they vouch for), in requests (each
        explored answer risks that quality)? What one call teaches is worth `reuse`
        requests, so the caps scale with it."""
        share = self.explore_share * reuse
        money = share * (self.spent_total_usd + cost) + self.explore_warmup * float(costs.max())
        if self.explored_usd + cost > money:
            return False
        count = share * (self.requests + 1) + self.explore_warmup
        return self.default_model is None or self.explored_requests + 1 <= count

    def _eligible(self, q: np.ndarray, cost: np.ndarray, t: float) -> np.ndarray | None:
        """Which candidates meet every constraint; None when no constraint is set."""
        if self.min_quality is None and self.max_cost_usd is None and self.budget_usd is None:
            return None
        eligible = np.ones(len(q), dtype=bool)
        if self.min_quality is not None:
            eligible &= q >= self.min_quality
        if self.max_cost_usd is not None:
            eligible &= cost <= self.max_cost_usd
        if self.budget_usd is not None:
            eligible &= cost <= self.remaining_budget_usd(t)
        return eligible

    # ---------------------------------------------------------------- state
    def to_state(self) -> dict:
        """Parameters and the spend in the current window (the random stream restarts)."""
        state = state_header(self)
        if not isinstance(self.random_state, (int, type(None))):
            state["params"]["random_state"] = None
        return {**state, "spend": self.spend()}

    def spend(self) -> dict[str, Any]:
        """What was spent, as a saved router keeps it: the budget window as [slot end,
        USD] pairs, and the totals the exploration cap is computed from."""
        return {
            "window": [list(x) for x in self._spend],
            "total_usd": self.spent_total_usd,
            "explored_usd": self.explored_usd,
            "requests": self.requests,
            "explored_requests": self.explored_requests,
        }

    def restore_spend(self, spend: dict[str, Any]) -> None:
        self._spend.clear()
        self._spent = 0.0
        for t, cost in spend["window"]:
            self._spend.append((float(t), float(cost)))
            self._spent += float(cost)
        self.spent_total_usd = float(spend["total_usd"])
        self.explored_usd = float(spend["explored_usd"])
        self.requests = int(spend["requests"])
        self.explored_requests = int(spend["explored_requests"])

    @classmethod
    def from_state(cls, state: dict) -> Scheduler:
        state = check_state(state, cls)
        self = cls(**state["params"])
        self.restore_spend(state["spend"])
        return self


def _check_candidates(candidates: Sequence[ModelSpec]) -> list[str]:
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
        raise InvalidInputError("candidates must be a list of ModelSpec.")
    if not candidates:
        raise InvalidInputError("no candidate models: pass at least one ModelSpec to choose from.")
    for c in candidates:
        if not isinstance(c, ModelSpec):
            raise InvalidInputError(f"candidate {c!r} is not a ModelSpec; pass ModelSpec objects.")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"candidate names repeat in {names}: pass each model once.")
    return names


def _check_arrays(
    n: int, quality_mean: Any, quality_std: Any, cost_usd: Any, latency_s: Any
) -> tuple[np.ndarray, ...]:
    """The four per-candidate arrays as float arrays; one joint range check on the usual
    path (min and max are NaN or infinite if any value is), per-array checks for the
    message when it fails."""
    raw = (quality_mean, quality_std, cost_usd, latency_s)
    try:
        arrays = tuple(np.asarray(v, dtype=float).reshape(-1) for v in raw)
    except (TypeError, ValueError):
        arrays = ()
    if len(arrays) == 4 and all(a.shape == (n,) for a in arrays):
        joint = np.concatenate(arrays)
        lo, top, q_top = float(joint.min()), float(joint.max()), float(arrays[0].max())
        if lo >= 0 and top < math.inf and q_top <= 1.0:
            return arrays
    names = ("quality_mean", "quality_std", "cost_usd", "latency_s")
    return tuple(
        _check_array(v, n, name, hi=1.0 if name == "quality_mean" else math.inf)
        for v, name in zip(raw, names)
    )


def _check_array(values: Any, n: int, name: str, hi: float = math.inf) -> np.ndarray:
    try:
        a = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be {n} numbers, one per candidate.") from exc
    if a.shape != (n,):
        raise InvalidInputError(
            f"{name} has {a.size} values for {n} candidates: pass one per "
            "candidate, in the same order."
        )
    if not (np.isfinite(a).all() and a.min() >= 0 and a.max() <= hi):
        raise InvalidInputError(f"{name}={a.tolist()}: pass finite numbers in [0, {hi}].")
    return a


def _normalised(values: np.ndarray) -> np.ndarray:
    top = float(values.max())
    return values / top if top > 0 else np.zeros_like(values)

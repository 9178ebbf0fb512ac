"""When may a cached answer be served? Thresholds that learn from verdicts.

A hit needs two things: the query must be close to the entry (cosine similarity at
least ``similarity_``) and clearly closer to it than to any entry with a *different*
answer. The second is a distance-ratio test (as in nearest-neighbour matching):
``ratio = d(query, best) / d(query, nearest other answer) <= ratio_``, with
``d = sqrt(2 - 2 * cosine)``. A ratio is scale-free, so the same rule works in dense
regions (many near-identical questions with different answers) and sparse ones.

``AdaptiveThreshold`` refits both numbers from observed verdicts so that the
estimated wrong-hit rate among the hits it would serve stays under
``max_wrong_rate``. Verdicts come from served hits and, where the caller can tell,
from misses (the fresh answer agreed or disagreed with the best candidate's). Per
entry, ``EntryVerdicts`` keeps what was learned about one cached answer: a wrong hit
raises that entry's own similarity floor above it. Nothing lets one entry serve below the
global threshold: a few verdicts on one answer cannot tell an equivalent request from a
lucky one (a cached "Yes" is right for half of all yes / no questions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigurationError
from ..index import SAME_TEXT_DISTANCE

_SIM_GRID = np.round(np.arange(0.50, 0.9951, 0.01), 3)
_RATIO_GRID = np.round(np.arange(0.40, 1.0001, 0.025), 3)
_Z = 1.645  # one-sided 95% Wilson bounds: a rule is trusted only once the data back it


def distance_ratio(best_similarity: float, other_similarity: float) -> float:
    """d(best) / d(other) on the unit sphere; 0 for an exact duplicate, <= 1 otherwise."""
    d_best = math.sqrt(max(0.0, 2.0 - 2.0 * best_similarity))
    d_other = math.sqrt(max(0.0, 2.0 - 2.0 * other_similarity))
    if d_best <= SAME_TEXT_DISTANCE:
        return 0.0
    return min(1.0, d_best / d_other)


def wilson_bounds(wrong: np.ndarray | int, n: np.ndarray | int, z: float = _Z):
    """Wilson score interval of a wrong-hit rate (vectorised); (0, 0) where n == 0."""
    wrong = np.asarray(wrong, dtype=float)
    n = np.asarray(n, dtype=float)
    safe_n = np.maximum(n, 1.0)
    p = wrong / safe_n
    denom = 1.0 + z * z / safe_n
    centre = (p + z * z / (2 * safe_n)) / denom
    half = z * np.sqrt(p * (1 - p) / safe_n + z * z / (4 * safe_n * safe_n)) / denom
    lower = np.where(n > 0, np.maximum(0.0, centre - half), 0.0)
    upper = np.where(n > 0, np.minimum(1.0, centre + half), 0.0)
    return lower, upper


class AdaptiveThreshold:
    """The global hit rule, refit from verdicts to keep wrong hits under a bound.

    Parameters
    ----------
    max_wrong_rate : target share of served hits that may be wrong.
    similarity, ratio : the rule used before there is evidence (the prior).
    min_observations : verdicts needed before the rule is refit at all.
    window : how many recent verdicts are kept (older ones age out).
    """

    def __init__(
        self,
        max_wrong_rate: float = 0.02,
        *,
        similarity: float = 0.70,
        ratio: float = 0.85,
        min_observations: int = 20,
        window: int = 5000,
    ) -> None:
        self.max_wrong_rate = max_wrong_rate
        self.similarity = similarity
        self.ratio = ratio
        self.min_observations = min_observations
        self.window = window
        self._validate()
        self.similarity_ = similarity
        self.ratio_ = ratio
        self.n_fits_ = 0
        self._obs: list[tuple[float, float, bool]] = []

    def _validate(self) -> None:
        if not (0.0 < self.max_wrong_rate < 1.0) or math.isnan(self.max_wrong_rate):
            raise ConfigurationError(
                f"max_wrong_rate={self.max_wrong_rate!r}: pass a share in (0, 1), e.g. 0.02."
            )
        if not (-1.0 <= self.similarity <= 1.0):
            raise ConfigurationError(f"similarity={self.similarity!r}: pass a cosine in [-1, 1].")
        if not (0.0 < self.ratio <= 1.0):
            raise ConfigurationError(f"ratio={self.ratio!r}: pass a distance ratio in (0, 1].")
        if self.min_observations < 1 or self.window < self.min_observations:
            raise ConfigurationError(
                "min_observations must be >= 1 and window >= min_observations."
            )

    def observe(self, similarity: float, ratio: float, correct: bool) -> None:
        """Record one verdict: would serving at (similarity, ratio) have been right?"""
        self._obs.append((float(similarity), float(ratio), bool(correct)))
        if len(self._obs) > self.window:
            del self._obs[: len(self._obs) - self.window]

    def fit(self) -> AdaptiveThreshold:
        """Pick the rule that serves the most right hits with a bounded wrong rate.

        1. Rules whose wrong rate is *certified* (Wilson upper bound <= target) compete
           on right hits served.
        2. Without a certified rule, the prior stays unless the data refute it (Wilson
           lower bound > target); a refuted prior is replaced by the stricter rule that
           serves the most right hits without being refuted, the strictest on ties, so a
           workload where every hit is wrong switches the cache off within a few verdicts.
        """
        if not self._obs:
            return self
        sims, ratios, correct = self._arrays()
        prior_refuted = self._prior_refuted(sims, ratios, correct)
        if len(self._obs) < self.min_observations and not prior_refuted:
            return self
        served = (sims[None, None, :] >= _SIM_GRID[:, None, None]) & (
            ratios[None, None, :] <= _RATIO_GRID[None, :, None]
        )
        n = served.sum(axis=2)
        wrong = (served & ~correct[None, None, :]).sum(axis=2)
        right = n - wrong
        lower, upper = wilson_bounds(wrong, n)
        certified = (upper <= self.max_wrong_rate) & (n >= self.min_observations)
        if certified.any():
            self._choose(np.where(certified, right, -1), n)
        elif prior_refuted:
            stricter = (_SIM_GRID[:, None] >= self.similarity) & (
                _RATIO_GRID[None, :] <= self.ratio
            )
            ok = stricter & (lower <= self.max_wrong_rate)
            self._choose(np.where(ok, right, -1), n)
        else:
            self.similarity_, self.ratio_ = self.similarity, self.ratio
        self.n_fits_ += 1
        return self

    def _choose(self, score: np.ndarray, n: np.ndarray) -> None:
        if score.max() < 0:  # nothing acceptable: strictest rule, the cache is effectively off
            self.similarity_, self.ratio_ = float(_SIM_GRID[-1]), float(_RATIO_GRID[0])
            return
        best = score == score.max()
        # ties: serve the fewest (strictest) so a refuted region is not re-entered blindly
        fewest = np.where(best, n, np.iinfo(np.int64).max)
        i, j = np.unravel_index(np.argmin(fewest), fewest.shape)
        self.similarity_, self.ratio_ = float(_SIM_GRID[i]), float(_RATIO_GRID[j])

    def _prior_refuted(self, sims: np.ndarray, ratios: np.ndarray, correct: np.ndarray) -> bool:
        served = (sims >= self.similarity) & (ratios <= self.ratio)
        lower, _ = wilson_bounds(int((served & ~correct).sum()), int(served.sum()))
        return bool(lower > self.max_wrong_rate)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        arr = np.array([(s, r) for s, r, _ in self._obs], dtype=float).reshape(-1, 2)
        correct = np.array([c for _, _, c in self._obs], dtype=bool)
        return arr[:, 0], arr[:, 1], correct

    # -- persistence (plain JSON) -------------------------------------------------
    def to_state(self) -> dict:
        return {
            "params": {
                "max_wrong_rate": self.max_wrong_rate,
                "similarity": self.similarity,
                "ratio": self.ratio,
                "min_observations": self.min_observations,
                "window": self.window,
            },
            "similarity_": self.similarity_,
            "ratio_": self.ratio_,
            "n_fits_": self.n_fits_,
            "observations": [list(o) for o in self._obs],
        }

    @classmethod
    def from_state(cls, state: dict) -> AdaptiveThreshold:
        self = cls(**state["params"])
        self.similarity_ = float(state["similarity_"])
        self.ratio_ = float(state["ratio_"])
        self.n_fits_ = int(state["n_fits_"])
        self._obs = [(float(s), float(r), bool(c)) for s, r, c in state["observations"]]
        return self


@dataclass
class EntryVerdicts:
    """What verdicts taught about one cached answer (vCache-style, per entry).

    ``wrong_max``: the highest similarity at which serving this entry was judged wrong;
    the entry never serves at or below it again. ``right_min``: the lowest similarity
    at which it was judged right, which spares a request that close the judge's wait
    (`vouched_at`); it never lets the entry serve below the global threshold.
    """

    right: int = 0
    wrong: int = 0
    wrong_max: float = -1.0
    right_min: float = 2.0

    def record(self, similarity: float, correct: bool, *, served: bool = True) -> None:
        """A verdict at `similarity`; `served=False` for a miss's counterfactual, which
        moves the floor but does not count against the entry (nothing wrong was served)."""
        if correct:
            self.right += 1
            self.right_min = min(self.right_min, similarity)
        else:
            self.wrong += int(served)
            self.wrong_max = max(self.wrong_max, similarity)

    def allows(self, similarity: float, global_similarity: float) -> bool:
        return similarity >= global_similarity and similarity > self.wrong_max + 1e-6

    def vouched_at(self, similarity: float) -> bool:
        """Judged right at this similarity or a lower one, and never wrong this close:
        a request this close needs no judge of its own."""
        return (
            self.right >= 1
            and self.right_min <= similarity + 1e-6
            and similarity > self.wrong_max + 1e-6
        )

    @property
    def discredited(self) -> bool:
        """Mostly wrong after several verdicts: better evicted than kept tightening."""
        return self.wrong >= 3 and self.wrong > self.right

    def to_state(self) -> list:
        return [self.right, self.wrong, self.wrong_max, self.right_min]

    @classmethod
    def from_state(cls, state: list) -> EntryVerdicts:
        right, wrong, wrong_max, right_min = state
        return cls(int(right), int(wrong), float(wrong_max), float(right_min))

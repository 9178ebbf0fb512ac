"""Quality prediction by matrix factorisation over (request embedding, model).

P(right | request x, model m) = sigmoid(v_m . (W x) + b_m). The projection W is shared
by every model: what makes a request hard or easy is learned from the outcomes of all
models, and each model only needs its own small vector v_m and bias b_m. A router
serves its incumbent most of the time, so the other models keep a few dozen outcomes
each: a regression per model learns nothing about them, a shared projection does. This
is the form of RouteLLM's matrix factorisation router, written here from the idea.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ._common import as_float, check_name, check_outcomes, check_params


class FactorisedQualityPredictor:
    """P(score >= 0.5) for every model from one shared low-rank projection.

    ``fit`` learns ``W`` (``dim`` x features), a vector and a bias per model, by Adam on
    the weighted log loss against the (soft) scores, with an L2 penalty, in ``epochs``
    passes of ``batch`` rows, from a seeded start (the same rows give the same model).
    It first fits on the oldest ``1 - validation_fraction`` of the rows and predicts the
    rest (``validation_brier_`` per model with at least ``min_validation`` rows there),
    then refits on every row. ``stack`` then weighs it against another predictor's
    predictions of those held-out rows, and `blend` mixes the two with that weight
    (``weight_``, 0 until stacked). Models it never saw predict NaN.
    """

    def __init__(
        self,
        dim: int = 16,
        epochs: int = 30,
        batch: int = 512,
        learning_rate: float = 0.01,
        l2: float = 1e-4,
        validation_fraction: float = 0.2,
        min_validation: int = 5,
        random_state: int = 0,
    ) -> None:
        self.dim = dim
        self.epochs = epochs
        self.batch = batch
        self.learning_rate = learning_rate
        self.l2 = l2
        self.validation_fraction = validation_fraction
        self.min_validation = min_validation
        self.random_state = random_state
        check_params(
            dim=isinstance(dim, int) and dim >= 1,
            epochs=isinstance(epochs, int) and epochs >= 1,
            batch=isinstance(batch, int) and batch >= 1,
            learning_rate=as_float(learning_rate) > 0,
            l2=as_float(l2) >= 0,
            validation_fraction=0 < as_float(validation_fraction) < 1,
            min_validation=isinstance(min_validation, int) and min_validation >= 1,
        )
        self.models_: dict[str, int] = {}
        self.validation_brier_: dict[str, float] = {}
        self.n_features_in_: int | None = None
        self.weight_ = 0.0
        self._params: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._held_out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def fit(
        self,
        X: Any,
        models: Sequence[str],
        scores: Sequence[float] | np.ndarray,
        weights: Sequence[float] | np.ndarray | None = None,
    ) -> FactorisedQualityPredictor:
        """Learn from these outcomes, oldest first (validated before any change)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or not np.all(np.isfinite(X)):
            raise InvalidInputError(
                f"X shape {X.shape}: pass a finite (n, d) matrix, one row per outcome."
            )
        names, s, w = check_outcomes(len(X), models, scores, weights)
        index = {name: i for i, name in enumerate(dict.fromkeys(names))}
        m = np.array([index[n] for n in names], dtype=np.int64)
        n_val = int(round(self.validation_fraction * len(X)))
        brier: dict[str, float] = {}
        held_out = None
        if n_val and len(X) - n_val:
            tr, va = slice(None, -n_val), slice(-n_val, None)
            p = _probabilities(self._train(X[tr], m[tr], s[tr], w[tr], len(index)), X[va], m[va])
            held_out = (p, s[va], w[va])
            for name, i in index.items():
                mine = m[va] == i
                if mine.sum() >= self.min_validation:
                    error = (p[mine] - s[va][mine]) ** 2
                    brier[name] = float(np.average(error, weights=w[va][mine]))
        self._params = self._train(X, m, s, w, len(index))
        self.models_, self.validation_brier_ = index, brier
        self.n_features_in_ = X.shape[1]
        self._held_out, self.weight_ = held_out, 0.0
        return self

    @property
    def held_out_rows(self) -> int:
        """How many of the last rows given to `fit` were held out to validate it."""
        return 0 if self._held_out is None else len(self._held_out[0])

    def stack(self, reference: Any) -> float:
        """Weigh this predictor against another one, from that one's predictions of the
        `held_out_rows` (`reference`, in order): ``weight_`` becomes the share, in steps of
        0.1, whose mixture of the two has the lowest Brier score there, if that mixture
        beats the other predictor alone by more than chance (else 0). A predictor that
        adds nothing to the other gets 0; one that makes it useless, 1."""
        if self._held_out is None:
            return self.weight_
        p, s, w = self._held_out
        ref = np.asarray(reference, dtype=float)
        if ref.shape != p.shape or not np.all(np.isfinite(ref)):
            raise InvalidInputError(
                f"reference of shape {ref.shape}: pass one finite prediction per held-out row "
                f"({len(p)})."
            )
        shares = np.linspace(0.0, 1.0, 11)
        briers = [np.average(((1 - a) * ref + a * p - s) ** 2, weights=w) for a in shares]
        best = float(shares[int(np.argmin(briers))])
        # kept only if it beats the other predictor alone by two standard errors of the
        # paired difference: on a few held-out rows, the best of 11 shares is often luck
        gain = (ref - s) ** 2 - ((1 - best) * ref + best * p - s) ** 2
        mean = np.average(gain, weights=w)
        spread = math.sqrt(np.average((gain - mean) ** 2, weights=w) / len(gain))
        self.weight_ = best if mean > 2 * spread else 0.0
        return self.weight_

    def _train(
        self, X: np.ndarray, m: np.ndarray, s: np.ndarray, w: np.ndarray, n_models: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.random_state)
        params = [
            rng.normal(0.0, 1.0 / math.sqrt(X.shape[1]), (self.dim, X.shape[1])),  # W
            rng.normal(0.0, 0.1, (n_models, self.dim)),  # v per model
            np.zeros(n_models),  # b per model
        ]
        first = [np.zeros_like(p) for p in params]
        second = [np.zeros_like(p) for p in params]
        beta1, beta2, step = 0.9, 0.999, 0
        for _ in range(self.epochs):
            for rows in np.array_split(rng.permutation(len(X)), max(1, len(X) // self.batch)):
                W, V, b = params
                x, mi = X[rows], m[rows]
                h = x @ W.T  # the requests, projected
                z = np.einsum("ij,ij->i", h, V[mi]) + b[mi]
                g = w[rows] * (_sigmoid(z) - s[rows]) / w[rows].sum()  # d loss / d z
                owner = np.zeros((len(rows), n_models))  # which model each row is of
                owner[np.arange(len(rows)), mi] = g
                grads = [
                    (g[:, None] * V[mi]).T @ x + self.l2 * W,
                    owner.T @ h + self.l2 * V,
                    owner.sum(axis=0),
                ]
                step += 1
                for p, gr, m1, m2 in zip(params, grads, first, second):
                    m1 *= beta1
                    m1 += (1 - beta1) * gr
                    m2 *= beta2
                    m2 += (1 - beta2) * gr * gr
                    lr = self.learning_rate * math.sqrt(1 - beta2**step) / (1 - beta1**step)
                    p -= lr * m1 / (np.sqrt(m2) + 1e-8)
        W, V, b = params
        return W, V, b

    def predict(self, X: Any, models: Sequence[str]) -> np.ndarray:
        """P(correct): shape ``(n_models,)`` for one row, ``(n, n_models)`` for a matrix."""
        models = [check_name(m) for m in models]
        X = np.asarray(X, dtype=np.float64)
        one = X.ndim == 1
        X2 = X[None, :] if one else X
        if (
            X2.ndim != 2
            or not np.isfinite(X2).all()
            or (self.n_features_in_ is not None and X2.shape[1] != self.n_features_in_)
        ):
            raise InvalidInputError(
                f"X shape {X.shape}: pass finite feature rows of width {self.n_features_in_}."
            )
        out = np.full((len(X2), len(models)), np.nan)
        known = [(j, self.models_[name]) for j, name in enumerate(models) if name in self.models_]
        if known and self._params is not None:
            W, V, b = self._params
            cols, rows = zip(*known)
            out[:, list(cols)] = _sigmoid((X2 @ W.T) @ V[list(rows)].T + b[list(rows)])
        return out[0] if one else out

    def blend(self, mean: Any, x: Any, models: Sequence[str]) -> np.ndarray:
        """The other predictor's ``mean`` mixed with this one's P(correct) for one feature
        row ``x``, at ``weight_``; models this one never saw keep ``mean``."""
        mean = np.asarray(mean, dtype=float)
        if self._params is None or self.weight_ == 0.0:
            return mean.copy()
        probs = self.predict(x, models)
        mixed = (1 - self.weight_) * mean + self.weight_ * probs
        return np.where(np.isnan(probs), mean, mixed)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(z, -50), 50)))


def _probabilities(
    params: tuple[np.ndarray, np.ndarray, np.ndarray], X: np.ndarray, m: np.ndarray
) -> np.ndarray:
    W, V, b = params
    return _sigmoid(np.einsum("ij,ij->i", X @ W.T, V[m]) + b[m])

"""A matrix factorisation over (request, model): the predictor RouteLLM's strongest
router uses, written here from the idea, to measure against the router's kNN.

P(right | request x, model m) = sigmoid(v_m . (W x) + b_m). The projection W is shared
by every model: what makes a request hard or easy is learned from the outcomes of all
models, and each model only needs its own small vector v_m and bias b_m.

It lives in the lab, not the router: fed every model's outcome (the hindsight setting
of `benchmarks/predictor_headroom.py`) it predicts better than the kNN, but blended
into the router, where it learns from one model's outcome per request, it did not pay
on every set (README, "Do the predictors earn their cost?").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..routing._common import (
    as_float,
    check_feature_rows,
    check_name,
    check_params,
    check_training_rows,
)


class FactorisedQualityPredictor:
    """P(score >= 0.5) for every model from one shared low-rank projection.

    ``fit`` learns ``W`` (``dim`` x features), a vector and a bias per model, by Adam on
    the weighted log loss against the (soft) scores, with an L2 penalty, in ``epochs``
    passes of ``batch`` rows, from a seeded start (the same rows give the same model).
    Models it never saw predict NaN.
    """

    def __init__(
        self,
        dim: int = 16,
        epochs: int = 30,
        batch: int = 512,
        learning_rate: float = 0.01,
        l2: float = 1e-4,
        random_state: int = 0,
    ) -> None:
        self.dim = dim
        self.epochs = epochs
        self.batch = batch
        self.learning_rate = learning_rate
        self.l2 = l2
        self.random_state = random_state
        check_params(
            dim=isinstance(dim, int) and dim >= 1,
            epochs=isinstance(epochs, int) and epochs >= 1,
            batch=isinstance(batch, int) and batch >= 1,
            learning_rate=as_float(learning_rate) > 0,
            l2=as_float(l2) >= 0,
        )
        self.models_: dict[str, int] = {}
        self.n_features_in_: int | None = None
        self._params: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def fit(
        self,
        X: Any,
        models: Sequence[str],
        scores: Sequence[float] | np.ndarray,
        weights: Sequence[float] | np.ndarray | None = None,
    ) -> FactorisedQualityPredictor:
        """Learn from these outcomes (validated before any change)."""
        X, names, s, w = check_training_rows(X, models, scores, weights, np.float64)
        index = {name: i for i, name in enumerate(dict.fromkeys(names))}
        m = np.array([index[n] for n in names], dtype=np.int64)
        self._params = self._train(X, m, s, w, len(index))
        self.models_, self.n_features_in_ = index, X.shape[1]
        return self

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
        X2, one = check_feature_rows(X, self.n_features_in_)
        out = np.full((len(X2), len(models)), np.nan)
        known = [(j, self.models_[name]) for j, name in enumerate(models) if name in self.models_]
        if known and self._params is not None:
            W, V, b = self._params
            cols, rows = zip(*known)
            out[:, list(cols)] = _sigmoid((X2 @ W.T) @ V[list(rows)].T + b[list(rows)])
        return out[0] if one else out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(z, -50), 50)))

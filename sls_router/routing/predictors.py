"""What the scheduler needs to know before calling a model: quality, tokens, cost, latency.

* ``KNNQualityPredictor``: success rate of each model among the past queries most like
  this one, with a Beta prior, so it is useful from the first outcome and says how
  unsure it is (the scheduler explores on that uncertainty).
* ``LogisticQualityPredictor``: one logistic regression per model, refit periodically;
  smoother than kNN once there is enough data, and validated so the two can be blended.
* ``TokenCostPredictor`` / ``LatencyPredictor``: running estimates of output length and
  of time-to-first-token plus throughput, per model.

State is JSON (``to_state``/``from_state``): raw outcomes and counters, no pickle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np

from ..errors import InvalidInputError
from ..index import SAME_TEXT_SIMILARITY, VectorIndex
from ..types import ModelSpec
from ._common import (
    as_float,
    check_feature_rows,
    check_name,
    check_nonneg,
    check_outcomes,
    check_params,
    check_score,
    check_state,
    check_training_rows,
    decode_array,
    encode_array,
    state_header,
)

__all__ = [
    "KNNPrediction",
    "KNNQualityPredictor",
    "LatencyPredictor",
    "LogisticQualityPredictor",
    "TokenCostPredictor",
]


@dataclass(frozen=True)
class KNNPrediction:
    """Per-model arrays aligned with ``models``: posterior mean, its std, evidence weight,
    and the share of the mean that the neighbours (not the prior) decide; and the
    outcomes recorded on this very request (their weight and weighted score), which
    ``on_this_request`` weighs apart from the neighbours'."""

    models: list[str]
    mean: np.ndarray
    std: np.ndarray
    n_eff: np.ndarray
    local_share: np.ndarray
    own_n: np.ndarray
    own_score: np.ndarray
    request_strength: float = 1.0

    def learnable_std(self, prior_std: np.ndarray) -> np.ndarray:
        """The uncertainty that trying a model on this request would reduce for later
        ones: the neighbours' std where they decide the mean, the task prior's own std
        where the prior does. Far from every past request, the std above is mostly how
        much requests differ from one another, which one try here teaches nothing about
        (no later request is near either); exploring on it never stops on diverse
        traffic."""
        return self.local_share * self.std + (1.0 - self.local_share) * prior_std

    def on_this_request(self, mean: Any) -> KNNPrediction:
        """This prediction with ``mean`` (the neighbours' estimate, perhaps blended with
        another predictor's) updated by each model's outcomes on this very request
        (``given_own``). Where they decide, trying the model again teaches about the
        request itself (``local_share`` 1)."""
        own = self.own_n > 0
        updated, std = self.given_own(mean, self.std)
        return replace(
            self, mean=updated, std=std, local_share=np.where(own, 1.0, self.local_share)
        )

    def given_own(self, mean: Any, std: Any) -> tuple[np.ndarray, np.ndarray]:
        """A success rate estimated elsewhere (``mean``, ``std``: the neighbours', a task's
        record) updated by each model's outcomes on this very request.

        A model's answers to one request agree far more than its answers to neighbouring
        requests (the same prompt gives the same answer, or nearly), so its own outcomes
        are not one neighbour among ``k``: the request's own rate is drawn around the
        estimate from a Beta worth ``request_strength`` outcomes, and its recorded outcomes
        update that Beta. Without this, a model that failed a request was asked again on
        every repeat, its failure outweighed by dozens of neighbours it had answered right.
        Models without outcomes here keep ``mean`` and ``std``."""
        mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
        own = self.own_n > 0
        if not own.any():
            return mean, std
        n = self.request_strength + self.own_n
        updated = (self.request_strength * mean + self.own_score) / n
        return (
            np.where(own, updated, mean),
            np.where(own, np.sqrt(updated * (1 - updated) / (n + 1)), std),
        )

    @property
    def failed_here(self) -> np.ndarray:
        """Which models this request's own outcomes judge wrong more often than right."""
        return (self.own_n > 0) & (self.own_score < 0.5 * self.own_n)


class KNNQualityPredictor:
    """Similarity-weighted success rate among a model's nearest past outcomes.

    For each model, the ``k`` nearest outcome records *of that model* are weighted by
    ``max(cos, 0) ** similarity_power * weight`` (near neighbours dominate; a verifier's
    verdict may carry a weight below a label's) and shrunk toward a Beta prior:
    ``mean = (sum w*s + prior*prior_strength) / (sum w + prior_strength)``,
    ``std = sqrt(mean*(1-mean) / (sum w + prior_strength + 1))``. An unseen model gets
    the prior with the widest std, so the scheduler tries it. Outcomes recorded on the
    same text are kept apart (``KNNPrediction.on_this_request``, ``request_strength``).

    One index search fetches ``min(k * n_models * 2, max_candidates)`` neighbours over
    all records, then groups by model: a model rarely used near this query gets the
    few records it has there (or the prior). ``max_candidates`` bounds the search cost:
    measured here at 100,000 records (HNSW, 2 cores) a 128-neighbour search takes
    ~0.2 ms, a 256 one ~0.35-0.5 ms and a 512 one ~0.75 ms; with the similarity**4
    weights the nearest records dominate anyway. Not thread-safe: serialise updates.
    """

    def __init__(
        self,
        k: int = 32,
        prior_mean: float = 0.5,
        prior_strength: float = 2.0,
        hnsw_min_entries: int = 10_000,
        similarity_power: float = 4.0,
        max_candidates: int = 64,
        request_strength: float = 1.0,
    ) -> None:
        self.k = k
        self.prior_mean = prior_mean
        self.prior_strength = prior_strength
        self.hnsw_min_entries = hnsw_min_entries
        self.similarity_power = similarity_power
        self.max_candidates = max_candidates
        self.request_strength = request_strength
        ok_k = isinstance(k, int) and k >= 1
        ok_m = ok_k and isinstance(max_candidates, int) and max_candidates >= k
        check_params(
            k=ok_k,
            prior_mean=0 < as_float(prior_mean) < 1,
            prior_strength=as_float(prior_strength) > 0,
            similarity_power=as_float(similarity_power) > 0,
            hnsw_min_entries=as_float(hnsw_min_entries) >= 1,
            max_candidates=ok_m,
            request_strength=as_float(request_strength) > 0,
        )
        self._reset(None)

    def _reset(self, dim: int | None) -> None:
        self.dim_: int | None = dim
        self.models_: list[str] = []
        self._model_ids: dict[str, int] = {}
        self._index = VectorIndex(dim, hnsw_min_entries=self.hnsw_min_entries) if dim else None
        self._n = 0
        self._midx: np.ndarray = np.zeros(64, dtype=np.int32)
        self._scores: np.ndarray = np.zeros(64)
        self._weights: np.ndarray = np.zeros(64)
        # candidate list -> (models known then, their column ids): the router asks about
        # the same few lists on every request
        self._cols: dict[tuple[str, ...], tuple[int, np.ndarray]] = {}

    @property
    def n_records_(self) -> int:
        return self._n

    def _vectors(self, vectors: Any, dim: int | None) -> np.ndarray:
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2 or v.shape[1] < 1 or (dim is not None and v.shape[1] != dim):
            raise InvalidInputError(
                f"vector shape {np.shape(vectors)}: pass unit query "
                f"embeddings of dimension {dim or 'd'} (Embedder.encode rows)."
            )
        if not np.all(np.isfinite(v)):
            raise InvalidInputError("vector contains NaN or inf: pass a finite query embedding.")
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)

    def _model_id(self, model: str) -> int:
        if model not in self._model_ids:
            self._model_ids[model] = len(self.models_)
            self.models_.append(model)
        return self._model_ids[model]

    def _append(self, v: np.ndarray, models: list[str], s: np.ndarray, w: np.ndarray) -> None:
        n, m = self._n, len(models)
        if n + m > len(self._scores):
            cap = max(2 * len(self._scores), n + m)
            self._midx, self._scores, self._weights = (
                np.resize(a, cap) for a in (self._midx, self._scores, self._weights)
            )
        self._midx[n : n + m] = [self._model_id(name) for name in models]
        self._scores[n : n + m], self._weights[n : n + m] = s, w
        assert self._index is not None  # callers _reset(dim) first
        self._index.add(np.arange(n, n + m, dtype=np.int64), v)
        self._n = n + m

    def partial_fit(
        self, vector: Any, model: str, score: float, weight: float = 1.0
    ) -> KNNQualityPredictor:
        """Add one outcome (amortised O(1) plus one index insert)."""
        v = self._vectors(vector, self.dim_)
        if v.shape[0] != 1:
            raise InvalidInputError("partial_fit takes one vector; use fit for a batch.")
        s, w = check_score(score), check_nonneg(weight, "weight", positive=True)
        name = check_name(model)
        if self.dim_ is None:
            self._reset(v.shape[1])
        self._append(v, [name], np.array([s]), np.array([w]))
        return self

    def fit(
        self,
        vectors: Any,
        models: Sequence[str],
        scores: Sequence[float] | np.ndarray,
        weights: Sequence[float] | np.ndarray | None = None,
    ) -> KNNQualityPredictor:
        """Forget everything and learn from these outcomes (validated before any change)."""
        v = self._vectors(vectors, None)
        names, s, w = check_outcomes(len(v), models, scores, weights)
        self._reset(v.shape[1])
        self._append(v, names, s, w)
        return self

    def predict(
        self, vector: Any, models: Sequence[str], priors: dict[str, float] | None = None
    ) -> KNNPrediction:
        """Posterior success rate of each of ``models`` among the request's neighbours;
        ``priors`` overrides ``prior_mean``. A model's global success rate is a better prior
        than 0.5 once it is known. The outcomes recorded on the request itself come apart
        (``own_n``, ``own_score``): ``on_this_request`` adds them."""
        models = [check_name(m) for m in models]
        pm = self._prior_means(models, priors)
        sw, sws = np.zeros(len(models)), np.zeros(len(models))
        own_n, own_s = sw, sws
        v = self._query(vector)
        if self._n and models:
            fetch = min(self._n, max(self.k, min(self.k * len(models) * 2, self.max_candidates)))
            assert self._index is not None  # records imply an index
            ids, sims = self._index.search_arrays(v, fetch)
            mask = self._midx[ids] == self._columns(models)[:, None]
            mask &= np.cumsum(mask, axis=1) <= self.k
            weights, scores = self._weights[ids], self._scores[ids]
            w = np.maximum(sims, 0.0) ** self.similarity_power * weights
            same = sims >= SAME_TEXT_SIMILARITY
            weighted = mask * np.where(same, 0.0, w)
            sw, sws = weighted.sum(axis=1), weighted @ scores
            if same.any():  # the request has outcomes of its own
                own = mask * np.where(same, weights, 0.0)
                own_n, own_s = own.sum(axis=1), own @ scores
        ps = self.prior_strength
        mean = (sws + pm * ps) / (sw + ps)
        std = np.sqrt(mean * (1 - mean) / (sw + ps + 1))
        return KNNPrediction(
            models, mean, std, sw, sw / (sw + ps), own_n, own_s, self.request_strength
        )

    def _prior_means(self, models: list[str], priors: dict[str, float] | None) -> np.ndarray:
        """Each model's prior mean, checked; the usual all-float case skips per-value checks."""
        values = [(priors or {}).get(m, self.prior_mean) for m in models]
        if not all(type(x) is float and 0.0 <= x <= 1.0 for x in values):
            values = [check_score(x, f"prior for {m!r}") for m, x in zip(models, values)]
        return np.array(values, dtype=float)

    def _query(self, vector: Any) -> np.ndarray:
        """``_vectors(vector)[0]`` with the same bits, minus its generic checks for one finite
        row of the right size (a finite sum means every value is finite)."""
        v = np.asarray(vector, dtype=np.float32)
        if v.ndim != 1 or v.shape[0] != self.dim_ or not math.isfinite(float(v.sum())):
            return self._vectors(vector, self.dim_)[0]
        v = v[None, :]
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return (v / norms)[0] if norms[0, 0] > 0 else np.zeros_like(v[0])

    def _columns(self, models: list[str]) -> np.ndarray:
        key = tuple(models)
        cached = self._cols.get(key)
        if cached is not None and cached[0] == len(self.models_):
            return cached[1]
        if len(self._cols) > 64:
            self._cols.clear()
        cols = np.array([self._model_ids.get(m, -1) for m in models])
        self._cols[key] = (len(self.models_), cols)
        return cols

    def to_state(self) -> dict:
        n = self._n
        if n:
            assert self._index is not None  # records imply an index
            vecs = self._index.vectors(list(range(n)))
        else:
            vecs = np.zeros((0, self.dim_ or 0))
        return {
            **state_header(self),
            "dim": self.dim_,
            "models": list(self.models_),
            "vectors": encode_array(vecs, "f4"),
            "scores": encode_array(self._scores[:n], "f8"),
            "model_index": encode_array(self._midx[:n], "i4"),
            "weights": encode_array(self._weights[:n], "f8"),
        }

    @classmethod
    def from_state(cls, state: dict) -> KNNQualityPredictor:
        state = check_state(state, cls)
        self = cls(**state["params"])
        if state["dim"] is not None:
            self._reset(int(state["dim"]))
            for name in state["models"]:
                self._model_id(name)
            midx = decode_array(state["model_index"])
            if len(midx):
                self._append(
                    decode_array(state["vectors"]),
                    [self.models_[i] for i in midx],
                    decode_array(state["scores"]),
                    decode_array(state["weights"]),
                )
        return self


class LogisticQualityPredictor:
    """One scikit-learn ``LogisticRegression`` per model: P(score >= 0.5 | features).

    Features are the query embedding followed by ``query_features`` (see
    the embedding followed by ``features.query_features``). Models with fewer than
    ``min_samples`` outcomes or
    only one class are not fit and predict NaN, so the caller falls back to kNN.
    ``fit`` first fits on the first 80% of each model's outcomes (in the given order,
    i.e. oldest first) and scores the last 20%: ``validation_brier_`` and
    ``validation_log_loss_`` (against the soft score) let the scheduler weigh this
    predictor against kNN; then it refits on everything.
    """

    def __init__(
        self,
        min_samples: int = 50,
        C: float = 1.0,
        validation_fraction: float = 0.2,
        max_iter: int = 200,
    ) -> None:
        self.min_samples = min_samples
        self.C = C
        self.validation_fraction = validation_fraction
        self.max_iter = max_iter
        check_params(
            min_samples=as_float(min_samples) >= 2,
            C=as_float(C) > 0,
            validation_fraction=0 < as_float(validation_fraction) < 1,
            max_iter=isinstance(max_iter, int) and max_iter >= 1,
        )
        self.n_features_in_: int | None = None
        self.estimators_: dict[str, Any] = {}
        self.validation_brier_: dict[str, float] = {}
        self.validation_log_loss_: dict[str, float] = {}
        self._data: tuple[np.ndarray, list[str], np.ndarray, np.ndarray] | None = None
        self._set_coef({})

    def _set_coef(self, coef: dict[str, tuple[np.ndarray, float]]) -> None:
        """Keep the fitted coefficients as one matrix, a row per model: ``predict`` then
        needs one product per model and one vectorised sigmoid for all (sklearn's
        ``predict_proba`` spends ~50 us per model checking its input)."""
        self._rows = {name: i for i, name in enumerate(coef)}
        self._coef = (
            np.array([c for c, _ in coef.values()]).reshape(len(coef), -1)
            if coef
            else np.zeros((0, 0))
        )
        self._intercepts = np.array([b for _, b in coef.values()], dtype=np.float64)
        self._trust: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}

    def _new(self) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, max_iter=self.max_iter)

    def fit(
        self,
        X: Any,
        models: Sequence[str],
        scores: Sequence[float] | np.ndarray,
        weights: Sequence[float] | np.ndarray | None = None,
    ) -> LogisticQualityPredictor:
        """Refit every model from scratch on these outcomes (validated before any change)."""
        X, names, s, w = check_training_rows(X, models, scores, weights, np.float32)
        estimators, coef, brier, logloss = {}, {}, {}, {}
        names_arr = np.array(names)
        for name in dict.fromkeys(names):
            idx = np.flatnonzero(names_arr == name)
            y = s[idx] >= 0.5
            if len(idx) < self.min_samples or y.all() or not y.any():
                continue
            n_val = max(1, int(round(self.validation_fraction * len(idx))))
            tr, va = idx[:-n_val], idx[-n_val:]
            ytr = s[tr] >= 0.5
            if ytr.any() and not ytr.all():
                p = np.clip(
                    self._new().fit(X[tr], ytr, sample_weight=w[tr]).predict_proba(X[va])[:, 1],
                    1e-6,
                    1 - 1e-6,
                )
                brier[name] = float(np.average((p - s[va]) ** 2, weights=w[va]))
                logloss[name] = float(
                    np.average(-(s[va] * np.log(p) + (1 - s[va]) * np.log(1 - p)), weights=w[va])
                )
            est = self._new().fit(X[idx], y, sample_weight=w[idx])
            estimators[name] = est
            coef[name] = (est.coef_[0].astype(np.float64), float(est.intercept_[0]))
        self.n_features_in_ = X.shape[1]
        self.estimators_ = estimators
        self._set_coef(coef)
        self.validation_brier_, self.validation_log_loss_ = brier, logloss
        self._data = (X, names, s, w)
        return self

    def predict(self, X: Any, models: Sequence[str]) -> np.ndarray:
        """P(correct): shape ``(n_models,)`` for one row, ``(n, n_models)`` for a matrix."""
        models = [check_name(m) for m in models]
        X2, one = check_feature_rows(X, self.n_features_in_)
        out = np.full((len(X2), len(models)), np.nan)
        rows = [self._rows.get(name, -1) for name in models]
        cols = [j for j, r in enumerate(rows) if r >= 0]
        if cols:
            # one matrix-vector product per model, not one matrix product for all: the
            # latter sums in another order, and its last-bit differences could tip a decision
            z = np.empty((len(X2), len(self._coef)))
            for i, c in enumerate(self._coef):
                z[:, i] = X2 @ c
            z += self._intercepts
            p = 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(z, -50), 50)))  # = np.clip, faster
            if rows == list(range(len(self._coef))):  # every model fitted, in fitting order
                out = p
            else:
                out[:, cols] = p[:, [rows[j] for j in cols]]
        return out[0] if one else out

    def blend(self, mean: Any, x: Any, models: Sequence[str]) -> np.ndarray:
        """kNN ``mean`` blended with this predictor's P(correct) for one feature row ``x``.

        A model's weight is ``0.5 * (1 - brier / 0.25)``: trust it as far as its validation
        Brier score beat a coin (0.25); models without a fit or a better-than-coin score
        keep the kNN mean."""
        mean = np.asarray(mean, dtype=float)
        if not self.estimators_:
            return mean.copy()
        probs = self.predict(x, models)
        key = tuple(models)
        if key not in self._trust:  # fixed from one fit to the next
            if len(self._trust) > 64:
                self._trust.clear()
            brier = np.array([self.validation_brier_.get(m, math.nan) for m in key])
            self._trust[key] = (0.5 * (1.0 - brier / 0.25), brier < 0.25)
        alpha, trusted = self._trust[key]
        return np.where(trusted & ~np.isnan(probs), (1 - alpha) * mean + alpha * probs, mean)

    def to_state(self) -> dict:
        if self._data is None:
            return {**state_header(self), "data": None}
        X, names, s, w = self._data
        return {
            **state_header(self),
            "data": {
                "X": encode_array(X, "f4"),
                "models": names,
                "scores": encode_array(s, "f8"),
                "weights": encode_array(w, "f8"),
            },
        }

    @classmethod
    def from_state(cls, state: dict) -> LogisticQualityPredictor:
        state = check_state(state, cls)
        self, data = cls(**state["params"]), state["data"]
        if data is not None:
            self.fit(
                decode_array(data["X"]),
                data["models"],
                decode_array(data["scores"]),
                decode_array(data["weights"]),
            )
        return self


_K = TypeVar("_K")


def _count(table: dict[_K, list[float]], key: _K, value: float) -> None:
    """Add one observation to a running ``[n, sum]`` in ``table``."""
    n, total = table.get(key, (0.0, 0.0))
    table[key] = [n + 1.0, total + value]


class TokenCostPredictor:
    """Expected output tokens per (model, task), hence expected cost in USD.

    Each level is a running mean shrunk by ``prior_strength`` pseudo-observations
    toward the level above it: (model, task) -> model -> the task's mean over all
    models -> ``prior_output_tokens``. So a new task starts at the model's usual length,
    an untried model starts at what the others answer (not at an arbitrary prior that
    would make it look dearer or cheaper than it is), and one odd answer moves it little.
    """

    def __init__(self, prior_output_tokens: float = 256, prior_strength: float = 1.0) -> None:
        self.prior_output_tokens = prior_output_tokens
        self.prior_strength = prior_strength
        check_params(
            prior_output_tokens=as_float(prior_output_tokens) >= 0,
            prior_strength=as_float(prior_strength) > 0,
        )
        self.counts_: dict[tuple[str, str | None], list[float]] = {}  # key -> [n, sum]
        self.model_counts_: dict[str, list[float]] = {}
        self.task_counts_: dict[str | None, list[float]] = {}

    def partial_fit(self, model: str, task: str | None, output_tokens: float) -> TokenCostPredictor:
        t, name = check_nonneg(output_tokens, "output_tokens"), check_name(model)
        if task is not None and not isinstance(task, str):
            raise InvalidInputError(f"task {task!r}: pass a task tag string or None.")
        _count(self.counts_, (name, task), t)
        _count(self.model_counts_, name, t)
        _count(self.task_counts_, task, t)
        return self

    def predict(self, model: str, task: str | None = None) -> float:
        """Expected output tokens; an unknown model or task falls back to the prior."""
        return self.predict_many([model], task)[0]

    def predict_many(self, models: Sequence[str], task: str | None = None) -> list[float]:
        """``predict`` for each of ``models`` (the task's pooled mean is looked up once)."""
        ps = self.prior_strength
        n, total = self.task_counts_.get(task, (0.0, 0.0))
        pooled = total / n if n else self.prior_output_tokens
        out = []
        for model in models:
            n, total = self.model_counts_.get(model, (0.0, 0.0))
            per_model = (total + pooled * ps) / (n + ps)
            n, total = self.counts_.get((model, task), (0.0, 0.0))
            out.append(float((total + per_model * ps) / (n + ps)))
        return out

    def cost(self, spec: ModelSpec, input_tokens: int, task: str | None = None) -> float:
        """Expected USD of one call: known input tokens plus expected output tokens."""
        tokens = check_nonneg(input_tokens, "input_tokens")
        return spec.cost(tokens, self.predict(spec.name, task))

    def costs(
        self,
        specs: Sequence[ModelSpec],
        input_tokens: int,
        task: str | None = None,
    ) -> tuple[np.ndarray, list[float]]:
        """``cost`` of each spec as an array, and the expected output tokens behind them
        (the latency predictor needs those too): one pass for the router's hot path."""
        tokens = check_nonneg(input_tokens, "input_tokens")
        out = self.predict_many([s.name for s in specs], task)
        return np.array([s.cost(tokens, t) for s, t in zip(specs, out)]), out

    def to_state(self) -> dict:
        return {
            **state_header(self),
            "counts": [[m, t, n, s] for (m, t), (n, s) in self.counts_.items()],
            "model_counts": [[m, n, s] for m, (n, s) in self.model_counts_.items()],
            "task_counts": [[t, n, s] for t, (n, s) in self.task_counts_.items()],
        }

    @classmethod
    def from_state(cls, state: dict) -> TokenCostPredictor:
        state = check_state(state, cls)
        self = cls(**state["params"])
        self.counts_ = {(m, t): [float(n), float(s)] for m, t, n, s in state["counts"]}
        self.model_counts_ = {m: [float(n), float(s)] for m, n, s in state["model_counts"]}
        self.task_counts_ = {t: [float(n), float(s)] for t, n, s in state["task_counts"]}
        return self


class LatencyPredictor:
    """Per model ``latency = ttft + output_tokens / tokens_per_s``, by online least squares.

    Sufficient statistics of weighted least squares on ``[1, tokens]`` are kept per
    model, seeded with ``prior_weight`` pseudo-observations at 0 and ``prior_ref_tokens``
    tokens drawn from the priors, so one sample cannot give a negative or infinite
    estimate. Fitted values are kept physical: ttft >= 0 and throughput > 0 (when the
    unconstrained fit breaks one, the other is refit with it pinned at the bound).
    """

    _MIN_S_PER_TOKEN = 1e-7  # caps throughput at 10M tokens/s

    def __init__(
        self,
        prior_ttft_s: float = 0.5,
        prior_tokens_per_s: float = 50.0,
        prior_weight: float = 1.0,
        prior_ref_tokens: float = 256.0,
    ) -> None:
        self.prior_ttft_s = prior_ttft_s
        self.prior_tokens_per_s = prior_tokens_per_s
        self.prior_weight = prior_weight
        self.prior_ref_tokens = prior_ref_tokens
        check_params(
            prior_ttft_s=as_float(prior_ttft_s) >= 0,
            prior_tokens_per_s=as_float(prior_tokens_per_s) > 0,
            prior_weight=as_float(prior_weight) > 0,
            prior_ref_tokens=as_float(prior_ref_tokens) > 0,
        )
        self.stats_: dict[str, list[float]] = {}  # model -> [n, sum t, sum t^2, sum y, sum t*y]

    def partial_fit(self, model: str, output_tokens: float, latency_s: float) -> LatencyPredictor:
        t, y = check_nonneg(output_tokens, "output_tokens"), check_nonneg(latency_s, "latency_s")
        st = self.stats_.get(check_name(model), [0.0] * 5)
        self.stats_[model] = [a + b for a, b in zip(st, (1.0, t, t * t, y, t * y))]
        return self

    def coef(self, model: str) -> tuple[float, float]:
        """``(ttft_s, tokens_per_s)`` of a model (the priors when it was never seen)."""
        n, st, stt, sy, sty = self.stats_.get(model, [0.0] * 5)
        w, r = self.prior_weight, self.prior_ref_tokens
        y0, y1 = self.prior_ttft_s, self.prior_ttft_s + r / self.prior_tokens_per_s
        n, st, stt = n + 2 * w, st + w * r, stt + w * r * r
        sy, sty = sy + w * (y0 + y1), sty + w * r * y1
        det = n * stt - st * st
        a, b = (stt * sy - st * sty) / det, (n * sty - st * sy) / det
        if b < self._MIN_S_PER_TOKEN:
            b = self._MIN_S_PER_TOKEN
            a = (sy - b * st) / n
        if a < 0:
            a, b = 0.0, max(sty / stt, self._MIN_S_PER_TOKEN)
        return float(a), float(1.0 / b)

    def predict(self, model: str, output_tokens: float) -> float:
        """Expected seconds for a call producing ``output_tokens`` tokens."""
        ttft, tps = self.coef(model)
        return ttft + check_nonneg(output_tokens, "output_tokens") / tps

    def predict_many(self, models: Sequence[str], output_tokens: Sequence[float]) -> np.ndarray:
        """``predict`` for each (model, output_tokens) pair, as an array."""
        return np.array([self.predict(m, t) for m, t in zip(models, output_tokens)])

    def to_state(self) -> dict:
        return {**state_header(self), "stats": {m: list(v) for m, v in self.stats_.items()}}

    @classmethod
    def from_state(cls, state: dict) -> LatencyPredictor:
        state = check_state(state, cls)
        self = cls(**state["params"])
        self.stats_ = {m: [float(x) for x in v] for m, v in state["stats"].items()}
        return self

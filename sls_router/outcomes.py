"""The router's training data: one row per judged answer of a model on a request."""

from __future__ import annotations

import threading

import numpy as np

from ._persist import Snapshot
from .errors import StateError


class OutcomeLog:
    """Append-only (vector, features, model, score, weight, source) rows, thread-safe.

    Predictors that need a batch refit read `arrays()`; saved as a Snapshot."""

    def __init__(self, dim: int, n_features: int) -> None:
        self.dim = dim
        self.n_features = n_features
        self._lock = threading.Lock()
        self._vectors: list[np.ndarray] = []
        self._features: list[np.ndarray] = []
        self.models: list[str] = []
        self.scores: list[float] = []
        self.weights: list[float] = []
        self.sources: list[str] = []

    def __len__(self) -> int:
        return len(self.models)

    def add(
        self,
        vector: np.ndarray,
        features: np.ndarray,
        model: str,
        score: float,
        weight: float,
        source: str,
    ) -> None:
        with self._lock:
            self._vectors.append(np.asarray(vector, dtype=np.float32))
            self._features.append(np.asarray(features, dtype=np.float32))
            self.models.append(model)
            self.scores.append(float(score))
            self.weights.append(float(weight))
            self.sources.append(source)

    def arrays(
        self,
    ) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray, list[str]]:
        with self._lock:
            n = len(self.models)
            vectors = np.vstack(self._vectors) if n else np.zeros((0, self.dim), np.float32)
            features = (
                np.vstack(self._features) if n else np.zeros((0, self.n_features), np.float32)
            )
            return (
                vectors,
                features,
                list(self.models),
                np.array(self.scores),
                np.array(self.weights),
                list(self.sources),
            )

    def snapshot(self) -> Snapshot:
        vectors, features, models, scores, weights, sources = self.arrays()
        return Snapshot(
            {
                "models": models,
                "scores": scores.tolist(),
                "weights": weights.tolist(),
                "sources": sources,
            },
            {"vectors": vectors, "features": features},
        )

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, dim: int, n_features: int) -> OutcomeLog:
        meta = snapshot.meta
        vectors, features = snapshot.arrays["vectors"], snapshot.arrays["features"]
        n = len(meta["models"])
        if (
            vectors.shape != (n, dim)
            or features.shape != (n, n_features)
            or not (len(meta["scores"]) == len(meta["weights"]) == len(meta["sources"]) == n)
        ):
            raise StateError(
                "the saved outcomes disagree in length; the state is corrupted. "
                "Restore it from a backup."
            )
        log = cls(dim, n_features)
        for row in zip(
            vectors, features, meta["models"], meta["scores"], meta["weights"], meta["sources"]
        ):
            log.add(*row)
        return log

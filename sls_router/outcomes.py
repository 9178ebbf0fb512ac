"""The router's training data: one row per judged answer of a model on a request."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ._persist import atomic_write_json, atomic_write_npy, read_json, read_npy
from .errors import StateError


class OutcomeLog:
    """Append-only (vector, features, model, score, weight, source) rows, thread-safe.

    Predictors that need a batch refit read `arrays()`; saved as .npy + JSON."""

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
        self._sums: dict[str, list[float]] = {}  # model -> [sum(score * weight), sum(weight)]

    def __len__(self) -> int:
        return len(self.models)

    def add(self, vector: np.ndarray, features: np.ndarray, model: str, score: float,
            weight: float, source: str) -> None:
        with self._lock:
            self._vectors.append(np.asarray(vector, dtype=np.float32))
            self._features.append(np.asarray(features, dtype=np.float32))
            self.models.append(model)
            self.scores.append(float(score))
            self.weights.append(float(weight))
            self.sources.append(source)
            acc = self._sums.setdefault(model, [0.0, 0.0])
            acc[0] += float(score) * float(weight)
            acc[1] += float(weight)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray]:
        with self._lock:
            n = len(self.models)
            vectors = np.vstack(self._vectors) if n else np.zeros((0, self.dim), np.float32)
            features = (np.vstack(self._features) if n
                        else np.zeros((0, self.n_features), np.float32))
            return (vectors, features, list(self.models), np.array(self.scores),
                    np.array(self.weights))

    def success_rates(self) -> dict[str, float]:
        """Weighted mean score per model: a better prior than 0.5 once known."""
        with self._lock:
            return {m: (s + 1.0) / (w + 2.0) for m, (s, w) in self._sums.items()}

    def save(self, directory: Path, generation: int) -> None:
        vectors, features, models, scores, weights = self.arrays()
        atomic_write_npy(directory / f"outcome-vectors-{generation}.npy", vectors)
        atomic_write_npy(directory / f"outcome-features-{generation}.npy", features)
        atomic_write_json(directory / f"outcomes-{generation}.json",
                          {"models": models, "scores": scores.tolist(),
                           "weights": weights.tolist(), "sources": list(self.sources)})

    @classmethod
    def load(cls, directory: Path, generation: int, dim: int, n_features: int) -> "OutcomeLog":
        vectors = read_npy(directory / f"outcome-vectors-{generation}.npy")
        features = read_npy(directory / f"outcome-features-{generation}.npy")
        meta = read_json(directory / f"outcomes-{generation}.json")
        n = len(meta["models"])
        if vectors.shape != (n, dim) or features.shape != (n, n_features) or not (
                len(meta["scores"]) == len(meta["weights"]) == len(meta["sources"]) == n):
            raise StateError(f"{directory}: outcome files disagree in length; the state is "
                             "corrupted. Restore it from a backup.")
        log = cls(dim, n_features)
        log._vectors = list(vectors)
        log._features = list(features)
        log.models = list(meta["models"])
        log.scores = [float(s) for s in meta["scores"]]
        log.weights = [float(w) for w in meta["weights"]]
        log.sources = list(meta["sources"])
        for model, score, weight in zip(log.models, log.scores, log.weights):
            acc = log._sums.setdefault(model, [0.0, 0.0])
            acc[0] += score * weight
            acc[1] += weight
        return log

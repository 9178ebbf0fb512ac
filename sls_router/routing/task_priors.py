"""What each model is worth on each task, before looking at the request itself.

Outcome statistics per (task, model), shrunk toward the model's global ones: a new task
starts from what all tasks taught, and a task with its own evidence soon speaks for
itself. The quality predictors use these as their priors, and the scheduler takes its
incumbent (the model to keep unless evidence says otherwise) from them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ConfigurationError


class TaskPriors:
    """Weighted success counts per (task, model) and per model; a task is the bucket
    `features.task_key` gives (tags are hashed into a few buckets, rarely sharing one).

    Parameters
    ----------
    strength : how many outcomes of a model the global rate is worth in a task's prior
        (shrinkage: with fewer outcomes in the task, the global rate dominates).
    base : the prior of a model never seen at all (the Beta(1, 1) mean).
    """

    def __init__(self, strength: float = 5.0, base: float = 0.5) -> None:
        if not strength > 0 or not 0 < base < 1:
            raise ConfigurationError("TaskPriors needs strength > 0 and 0 < base < 1.")
        self.strength = float(strength)
        self.base = float(base)
        self._task: dict[tuple[int | None, str], list[float]] = {}  # -> [sum w*s, sum w]
        self._model: dict[str, list[float]] = {}

    def add(self, task: int | None, model: str, score: float, weight: float) -> None:
        for acc in (
            self._task.setdefault((task, model), [0.0, 0.0]),
            self._model.setdefault(model, [0.0, 0.0]),
        ):
            acc[0] += score * weight
            acc[1] += weight

    def means(self, task: int | None, models: Sequence[str]) -> np.ndarray:
        """Each model's prior success rate in `task`: its task record shrunk toward its
        global record, itself shrunk toward `base`."""
        return self.stats(task, models)[0]

    def stats(
        self, task: int | None, models: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, std, evidence) of each model in `task`, in one pass: the means above,
        their uncertainty (a Beta posterior's std with the shrunk counts) and the weight
        of the task's own outcomes."""
        mean, evidence = np.empty(len(models)), np.empty(len(models))
        for i, model in enumerate(models):
            gs, gw = self._model.get(model, (0.0, 0.0))
            overall = (gs + self.base) / (gw + 1.0)
            ts, tw = self._task.get((task, model), (0.0, 0.0))
            mean[i] = (ts + overall * self.strength) / (tw + self.strength)
            evidence[i] = tw
        std = np.sqrt(mean * (1 - mean) / (evidence + self.strength + 1))
        return mean, std, evidence

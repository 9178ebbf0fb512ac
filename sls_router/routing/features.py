"""Small dense features of a query and of a model, for the quality predictors.

The embedding says *what* a query is about; these features add what an embedding
hides (how long the query is, which task it belongs to) and describe a model by
its price, size and context, so a predictor can share strength across models.
All values are scaled to roughly [0, 1] so they sit next to a unit embedding
without dominating it.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from ..errors import InvalidInputError
from ..types import ModelSpec

__all__ = ["MODEL_FEATURES_DIM", "QUERY_FEATURES_DIM", "TASK_BUCKETS", "combined_features",
           "model_features", "query_features"]

TASK_BUCKETS = 16
"""Task tags are hashed into this many one-hot buckets (collisions are possible and rare)."""

QUERY_FEATURES_DIM = 2 + TASK_BUCKETS
MODEL_FEATURES_DIM = 5


def _task_bucket(task: str) -> int:
    # crc32 is stable across processes and platforms, unlike hash() (salted per process).
    return zlib.crc32(task.encode("utf-8")) % TASK_BUCKETS


def query_features(text: str, task: str | None) -> np.ndarray:
    """Length and task features of one query, float32 of shape ``(QUERY_FEATURES_DIM,)``.

    Layout:
      ``[0]``  log1p(number of characters) / 10
      ``[1]``  log1p(number of whitespace-separated words) / 10
      ``[2:18]`` one-hot of ``crc32(task) % 16``; all zeros when ``task`` is None or empty.

    Length matters because long inputs break small models first; the task tag lets
    a linear model learn a per-task offset that an embedding may not isolate.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a str, got {type(text).__name__}; pass the "
                                "query text (Request.embed_text).")
    if task is not None and not isinstance(task, str):
        raise InvalidInputError(f"task must be a str like 'logparsing/HDFS' or None, got "
                                f"{type(task).__name__}.")
    out = np.zeros(QUERY_FEATURES_DIM, dtype=np.float32)
    out[0] = math.log1p(len(text)) / 10.0
    out[1] = math.log1p(len(text.split())) / 10.0
    if task:
        out[2 + _task_bucket(task)] = 1.0
    return out


def model_features(spec: ModelSpec) -> np.ndarray:
    """Price, size and capability features of one model, float32 of shape ``(5,)``.

    Layout: ``[log1p(input_per_mtok), log1p(output_per_mtok), log1p(tier),
    supports_tools (0/1), log(context_window) / 10]``. Logs because prices and sizes
    span orders of magnitude across a pool.
    """
    if not isinstance(spec, ModelSpec):
        raise InvalidInputError(f"expected a ModelSpec, got {type(spec).__name__}.")
    return np.array([math.log1p(spec.input_per_mtok), math.log1p(spec.output_per_mtok),
                     math.log1p(spec.tier), float(spec.supports_tools),
                     math.log(spec.context_window) / 10.0], dtype=np.float32)


def combined_features(embedding: np.ndarray, text: str, task: str | None) -> np.ndarray:
    """The logistic predictor's input: the query embedding followed by ``query_features``.

    Accepts one embedding ``(dim,)`` and returns ``(dim + QUERY_FEATURES_DIM,)`` float32.
    """
    emb = np.asarray(embedding, dtype=np.float32)
    if emb.ndim != 1 or not np.all(np.isfinite(emb)):
        raise InvalidInputError("embedding must be one finite 1-D vector (one row of "
                                "Embedder.encode).")
    return np.concatenate([emb, query_features(text, task)])

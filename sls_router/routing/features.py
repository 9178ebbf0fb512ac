"""Small dense features of a query, for the quality predictors.

The embedding says *what* a query is about; these features add what an embedding
hides (how long the query is, which task it belongs to). All values are scaled to
roughly [0, 1] so they sit next to a unit embedding without dominating it.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from ..errors import InvalidInputError

__all__ = ["QUERY_FEATURES_DIM", "TASK_BUCKETS", "query_features"]

TASK_BUCKETS = 16
"""Task tags are hashed into this many one-hot buckets (collisions are possible and rare)."""

QUERY_FEATURES_DIM = 2 + TASK_BUCKETS


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
        raise InvalidInputError(
            f"text must be a str, got {type(text).__name__}; pass the "
            "query text (Request.embed_text)."
        )
    if task is not None and not isinstance(task, str):
        raise InvalidInputError(
            f"task must be a str like 'logparsing/HDFS' or None, got {type(task).__name__}."
        )
    out = np.zeros(QUERY_FEATURES_DIM, dtype=np.float32)
    out[0] = math.log1p(len(text)) / 10.0
    out[1] = math.log1p(len(text.split())) / 10.0
    if task:
        out[2 + _task_bucket(task)] = 1.0
    return out


def task_key(features: np.ndarray) -> int | None:
    """The task bucket a row of `query_features` was made with (None: no task), so that
    rows learned elsewhere (another replica) still say which task they belong to."""
    buckets = np.asarray(features)[2 : 2 + TASK_BUCKETS]
    return int(np.argmax(buckets)) if buckets.any() else None

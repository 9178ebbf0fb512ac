"""Shared checks and the JSON state encoding of the routing estimators.

Arrays travel as base64 of their little-endian bytes inside JSON: exact, compact
(a 384-d float32 vector is ~2 KB), and never pickle.
"""

from __future__ import annotations

import base64
import inspect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigurationError, InvalidInputError, StateError

FORMAT_VERSION = 1


def encode_array(a: np.ndarray, dtype: str) -> dict:
    a = np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<"))
    return {"dtype": dtype, "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode()}


def decode_array(d: dict) -> np.ndarray:
    raw = base64.b64decode(d["b64"])
    return np.frombuffer(raw, dtype=np.dtype(d["dtype"]).newbyteorder("<")).reshape(d["shape"])


def init_params(obj: Any) -> dict:
    """An estimator's constructor parameters, read back from the attributes of the same name."""
    names = [p for p in inspect.signature(type(obj).__init__).parameters if p != "self"]
    return {name: getattr(obj, name) for name in names}


def state_header(obj: Any) -> dict:
    return {
        "kind": type(obj).__name__,
        "format_version": FORMAT_VERSION,
        "params": init_params(obj),
    }


def check_state(state: Any, cls: type) -> dict:
    """Refuse a state written by another class or by an unknown format version."""
    kind = cls.__name__
    if not isinstance(state, dict) or state.get("kind") != kind:
        raise StateError(f"this is not a saved {kind}; pass the dict from {kind}.to_state().")
    if state.get("format_version") != FORMAT_VERSION:
        raise StateError(
            f"{kind} state has format version {state.get('format_version')!r}, "
            f"this sls-router reads {FORMAT_VERSION}; upgrade sls-router."
        )
    return state


def check_score(x: Any, what: str = "score") -> float:
    if (
        isinstance(x, bool)
        or not isinstance(x, (int, float, np.number))
        or not math.isfinite(x)
        or not 0 <= x <= 1
    ):
        raise InvalidInputError(
            f"{what} {x!r}: pass a finite number in [0, 1] (1 = right, 0 = wrong)."
        )
    return float(x)


def check_nonneg(x: Any, what: str, positive: bool = False) -> float:
    if (
        isinstance(x, bool)
        or not isinstance(x, (int, float, np.number))
        or not math.isfinite(x)
        or x < 0
        or (positive and x == 0)
    ):
        raise InvalidInputError(
            f"{what} {x!r}: pass a finite number {'> 0' if positive else '>= 0'}."
        )
    return float(x)


def check_name(model: Any) -> str:
    if not isinstance(model, str) or not model:
        raise InvalidInputError(f"model {model!r}: pass the model's name (ModelSpec.name).")
    return model


def as_float(x: Any) -> float:
    """A real number as float, else NaN (so every range check on it fails)."""
    ok = isinstance(x, (int, float, np.number)) and not isinstance(x, bool)
    return float(x) if ok else math.nan


def check_params(**checks: bool) -> None:
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise ConfigurationError(
            f"invalid predictor parameter(s) {', '.join(bad)}: see the "
            "class docstring for the allowed ranges."
        )


def check_outcomes(
    n: int,
    models: Sequence[str],
    scores: Sequence[float] | np.ndarray,
    weights: Sequence[float] | np.ndarray | None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Validate a batch of n outcomes: names, scores in [0, 1], positive weights."""
    names = [check_name(m) for m in models]
    s = np.array([check_score(x) for x in scores], dtype=float)
    w = (
        np.ones(len(s))
        if weights is None
        else np.array([check_nonneg(x, "weight", positive=True) for x in weights], dtype=float)
    )
    if not n == len(names) == len(s) == len(w):
        raise InvalidInputError(
            f"got {n} vectors/rows, {len(names)} models, {len(s)} scores and "
            f"{len(w)} weights: pass one of each per outcome."
        )
    return names, s, w


def check_feature_rows(X: Any, width: int | None) -> tuple[np.ndarray, bool]:
    """Feature rows to predict on, as a float matrix, and whether one row was given."""
    X = np.asarray(X, dtype=np.float64)
    rows = X[None, :] if X.ndim == 1 else X
    if rows.ndim != 2 or not np.isfinite(rows).all() or width not in (None, rows.shape[1]):
        raise InvalidInputError(
            f"X shape {X.shape}: pass finite feature rows of width {width} "
            "(embedding + query_features)."
        )
    return rows, X.ndim == 1


def check_training_rows(
    X: Any, models: Sequence[str], scores: Any, weights: Any, dtype: Any
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """A batch of outcomes to fit on: one finite feature row per outcome, as `dtype`,
    with its model, score and weight (`check_outcomes`)."""
    X = np.asarray(X, dtype=dtype)
    if X.ndim != 2 or not np.all(np.isfinite(X)):
        raise InvalidInputError(
            f"X shape {X.shape}: pass a finite (n, d) matrix, one row "
            "per outcome (embedding + query_features rows)."
        )
    return (X, *check_outcomes(len(X), models, scores, weights))

"""The lab's matrix factorisation predictor: what a shared projection learns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sls_router.bench.factorisation import FactorisedQualityPredictor
from sls_router.errors import InvalidInputError

DIM = 32


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _difficulty_data(seed: int = 0, rare_rows: int = 8):
    """Easy and hard requests (two clusters). "main" (many rows) and "rare" (a few) are
    both right on the easy ones and wrong on the hard ones; "other" the opposite."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((2, DIM)))

    def query(hard: int) -> np.ndarray:
        return _unit(centres[hard] + 0.5 * rng.standard_normal(DIM) / math.sqrt(DIM))

    rows, models, scores = [], [], []
    for i in range(400):
        hard = i % 2
        for model, right in (("main", not hard), ("other", bool(hard))):
            rows.append(query(hard))
            models.append(model)
            scores.append(float(right))
    for i in range(rare_rows):
        hard = i % 2
        rows.append(query(hard))
        models.append("rare")
        scores.append(float(not hard))
    return np.stack(rows), models, np.array(scores), query


def test_the_projection_learns_what_makes_a_request_hard_for_every_model():
    X, models, scores, query = _difficulty_data()
    mf = FactorisedQualityPredictor().fit(X, models, scores)
    easy, hard = query(0), query(1)
    p_easy, p_hard = (
        mf.predict(easy, ["main", "other", "rare"]),
        mf.predict(hard, ["main", "other", "rare"]),
    )
    assert p_easy[0] > 0.9 and p_hard[0] < 0.1  # main
    assert p_easy[1] < 0.1 and p_hard[1] > 0.9  # other
    assert p_easy[2] > p_hard[2] + 0.3  # rare: 8 outcomes, and the shared projection
    assert np.isnan(mf.predict(easy, ["unseen"])).all()
    batch = mf.predict(np.stack([easy, hard]), ["main", "rare"])
    assert batch.shape == (2, 2) and np.allclose(batch[0], mf.predict(easy, ["main", "rare"]))


def test_the_same_rows_give_the_same_predictor():
    X, models, scores, query = _difficulty_data(1)
    q = query(0)
    first = FactorisedQualityPredictor().fit(X, models, scores).predict(q, ["main", "rare"])
    again = FactorisedQualityPredictor().fit(X, models, scores).predict(q, ["main", "rare"])
    assert np.array_equal(first, again)


def test_bad_input_is_refused_before_any_change():
    X, models, scores, query = _difficulty_data(3)
    mf = FactorisedQualityPredictor().fit(X, models, scores)
    easy = query(0)
    before = mf.predict(easy, ["main"])
    with pytest.raises(InvalidInputError):
        mf.fit(X[:, :5][:3] * np.nan, models[:3], scores[:3])
    with pytest.raises(InvalidInputError):
        mf.predict(np.ones(DIM + 1), ["main"])
    assert np.array_equal(mf.predict(easy, ["main"]), before)

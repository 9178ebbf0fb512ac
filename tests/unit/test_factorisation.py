"""The matrix factorisation predictor: what a shared projection learns, how it is
weighed against the kNN on rows it held out, and what the router then blends."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sls_router.errors import InvalidInputError
from sls_router.learning import held_out_knn
from sls_router.routing import query_features
from sls_router.routing.factorisation import FactorisedQualityPredictor

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


def test_stacking_weighs_it_by_what_it_adds_to_the_other_predictor():
    X, models, scores, query = _difficulty_data(2)
    mf = FactorisedQualityPredictor().fit(X, models, scores)
    easy = query(0)
    n = mf.held_out_rows
    assert n == round(0.2 * len(X))
    held_scores = scores[-n:]
    assert mf.weight_ == 0.0  # until stacked: blend is the other predictor's mean
    assert mf.stack(np.full(n, 0.5)) >= 0.8  # against a coin, it is nearly all
    assert mf.stack(held_scores) == 0.0  # against a perfect predictor, nothing
    mean = np.array([0.3, 0.6])
    assert np.array_equal(mf.blend(mean, easy, ["main", "unseen"]), mean)
    mf.stack(np.full(n, 0.5))
    mixed = mf.blend(mean, easy, ["main", "unseen"])
    p = mf.predict(easy, ["main"])[0]
    assert mixed[0] == pytest.approx((1 - mf.weight_) * 0.3 + mf.weight_ * p)
    assert mixed[1] == 0.6  # a model it never saw keeps the kNN's mean
    with pytest.raises(InvalidInputError, match="held-out row"):
        mf.stack(np.full(n + 1, 0.5))


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


def test_held_out_knn_predicts_each_held_out_row_from_the_rows_before_it():
    a, b = _unit(np.random.default_rng(4).standard_normal((2, DIM)))
    vectors = np.stack([a, a, b, b, a, b])  # the last two are held out
    features = np.stack([query_features("a request", "classification/t")] * 6)
    scores = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    predicted = held_out_knn(vectors, features, ["m"] * 6, scores, np.ones(6), 2)
    # row 4 learns from rows 0-1 (right, its request); row 5 from rows 2-3 (wrong, its
    # request): its own outcome (right) is not among what it learns from
    assert predicted.shape == (2,)
    assert predicted[0] > 0.7
    assert predicted[1] < 0.3

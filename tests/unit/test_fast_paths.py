"""The hot-path shortcuts of the routing decision give the same answers as the plain code.

Each shortcut (stacked logistic coefficients, batch cost/latency predictions, the kNN
predictor's one-row path, the scheduler's unconstrained path, the index's in-FAISS
tombstone filter, the static embedder's one-text path) is checked against the slower
computation it replaces, bit for bit where the router's decisions depend on it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sls_router.errors import InvalidInputError
from sls_router.index import VectorIndex
from sls_router.routing import (
    KNNQualityPredictor,
    LatencyPredictor,
    LogisticQualityPredictor,
    Scheduler,
    TokenCostPredictor,
)
from sls_router.types import ModelSpec

DIM = 24


def _unit_rows(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def logistic() -> LogisticQualityPredictor:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((900, DIM)).astype(np.float32)
    models = [["good", "bad", "thin"][i] for i in rng.choice(3, 900, p=[0.48, 0.48, 0.04])]
    signal = X[:, 0] + X[:, 1] * np.array([m == "bad" for m in models])
    scores = (signal + 0.7 * rng.standard_normal(900) > 0).astype(float)
    return LogisticQualityPredictor(min_samples=50).fit(X, models, scores)


def test_logistic_fast_path_equals_sklearn_predict_proba(logistic):
    assert set(logistic.estimators_) == {"good", "bad"}  # "thin" has too few outcomes
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, DIM))
    models = ["thin", "bad", "unknown", "good"]
    fast = logistic.predict(X, models)
    for j, name in enumerate(models):
        if name in logistic.estimators_:
            expected = logistic.estimators_[name].predict_proba(X)[:, 1]
            assert np.max(np.abs(fast[:, j] - expected)) < 1e-9
        else:
            assert np.isnan(fast[:, j]).all()
    one = logistic.predict(X[3], models)  # one row: the same numbers as that matrix row
    assert one.shape == (4,) and np.allclose(one, fast[3], rtol=0, atol=1e-12, equal_nan=True)


def test_logistic_blend_trusts_each_model_as_far_as_it_beat_a_coin(logistic):
    rng = np.random.default_rng(2)
    models = ["good", "thin", "bad", "unknown"]
    for _ in range(20):
        x, mean = rng.standard_normal(DIM), rng.random(4)
        probs = logistic.predict(x, models)
        expected = mean.copy()
        for i, name in enumerate(models):
            brier = logistic.validation_brier_.get(name)
            if not math.isnan(probs[i]) and brier is not None and brier < 0.25:
                alpha = 0.5 * (1.0 - brier / 0.25)
                expected[i] = (1 - alpha) * mean[i] + alpha * probs[i]
        assert np.array_equal(logistic.blend(mean, x, models), expected)
    unfitted = LogisticQualityPredictor()
    assert np.array_equal(unfitted.blend([0.2, 0.7], np.zeros(DIM), ["a", "b"]), [0.2, 0.7])


def test_batch_cost_and_latency_equal_one_model_at_a_time():
    rng = np.random.default_rng(3)
    tokens, latency = TokenCostPredictor(), LatencyPredictor()
    specs = [
        ModelSpec(f"m{i}", input_per_mtok=0.3 * i + 0.1, output_per_mtok=i + 0.2) for i in range(5)
    ]
    for _ in range(300):
        name, task = f"m{rng.integers(4)}", ["a", "b", None][rng.integers(3)]
        out = float(rng.integers(0, 400))
        tokens.partial_fit(name, task, out)
        latency.partial_fit(name, out, 0.2 + out / 80 + float(rng.random()))
    for task in ("a", "c", None):  # "c" was never seen; m4 neither
        cost, out = tokens.costs(specs, 1234, task)
        assert np.array_equal(cost, [tokens.cost(s, 1234, task) for s in specs])
        assert out == [tokens.predict(s.name, task) for s in specs]
        assert np.array_equal(
            latency.predict_many([s.name for s in specs], out),
            [latency.predict(s.name, t) for s, t in zip(specs, out)],
        )
    with pytest.raises(InvalidInputError):
        tokens.costs(specs, -1)


@pytest.mark.parametrize("hnsw_min_entries", [10_000, 100])
def test_knn_one_row_path_gives_the_generic_paths_bits(hnsw_min_entries):
    rng = np.random.default_rng(4)
    knn = KNNQualityPredictor(hnsw_min_entries=hnsw_min_entries)
    vectors = _unit_rows(rng, 400)
    knn.fit(vectors, [f"m{i % 3}" for i in range(400)], (rng.random(400) < 0.6).astype(float))
    models = ["m2", "never-seen", "m0", "m1"]
    for v in _unit_rows(rng, 20) * 3.7:  # not unit: both paths normalise it
        priors = {"m0": 0.7, "m2": 0.4}
        one, generic = knn.predict(v, models, priors), knn.predict(v[None, :], models, priors)
        for a, b in ((one.mean, generic.mean), (one.std, generic.std), (one.n_eff, generic.n_eff)):
            assert np.array_equal(a, b)
    with pytest.raises(InvalidInputError):
        knn.predict(np.full(DIM, np.nan), models)
    with pytest.raises(InvalidInputError):
        knn.predict(np.ones(DIM + 1), models)
    with pytest.raises(InvalidInputError):
        knn.predict(vectors[0], models, priors={"m0": True})


def test_scheduler_without_constraints_ranks_like_the_constrained_path():
    """min_quality=0 constrains nothing but takes the general (lexsort) path."""
    rng = np.random.default_rng(5)
    cands = [ModelSpec(f"m{i}", input_per_mtok=1.0, output_per_mtok=1.0) for i in range(6)]
    plain = Scheduler(random_state=9, min_explore=0.3)
    general = Scheduler(random_state=9, min_explore=0.3, min_quality=0.0)
    for _ in range(300):
        q = np.round(rng.random(6), 1)  # rounding makes ties
        sd = rng.random(6) * 0.2 * (rng.random(6) < 0.7)
        cost, lat = np.round(rng.random(6), 1) * 1e-3, rng.random(6)
        a, b = plain.choose(cands, q, sd, cost, lat), general.choose(cands, q, sd, cost, lat)
        assert a == b


@pytest.mark.parametrize("hnsw_min_entries", [10_000, 300])
def test_index_search_skips_removed_ids_as_post_filtering_did(hnsw_min_entries):
    rng = np.random.default_rng(6)
    index = VectorIndex(DIM, hnsw_min_entries=hnsw_min_entries)
    vectors = _unit_rows(rng, 1000)
    ids = np.arange(5, 1005)
    index.add(ids[:600], vectors[:600])
    index.add(ids[600:], vectors[600:])
    removed = set(rng.choice(ids, 60, replace=False).tolist())  # below either rebuild limit
    index.remove(sorted(removed))
    assert len(index) == 940 and index.kind == ("flat" if hnsw_min_entries > 1000 else "hnsw")
    live = np.array([i not in removed for i in ids])
    for q in _unit_rows(rng, 30):
        got, sims = index.search_arrays(q, 10)
        # what the index answered before: k + tombstones results, removed ones dropped
        sims_all, pos = index._inner.search(q[None, :], 10 + len(removed))
        old = [int(index._ids[p]) for p in pos[0] if p >= 0 and int(index._ids[p]) not in removed][
            :10
        ]
        assert got.tolist() == old and not removed & set(got.tolist())
        assert np.allclose(sims, vectors[got - 5] @ q, atol=1e-5)
        if index.kind == "flat":  # exact: the true top 10 among live entries
            exact = ids[live][np.argsort(-(vectors[live] @ q), kind="stable")[:10]]
            assert set(got.tolist()) == set(exact.tolist())
    extra = _unit_rows(rng, 3)  # entries added after removals are found
    index.add(np.array([2000, 2001, 2002]), extra)
    assert index.search(extra[1], 1)[0][0] == 2001 and len(index) == 943
    index.remove(list(range(5, 405)))  # past the limit: rebuilt without tombstones
    assert len(index) == 943 - len(set(range(5, 405)) - removed) and not index._dead
    assert index.search(extra[2], 1)[0][0] == 2002


def test_static_one_text_path_equals_model2vec_encode():
    from model2vec import StaticModel
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    from sls_router.embeddings import _one_text_path

    words = ["[UNK]", "disk", "quota", "exceeded", "for", "user", "the", "login", "page", "is"]
    tokenizer = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    table = np.random.default_rng(7).standard_normal((len(words), 16)).astype(np.float16)
    model = StaticModel(table, tokenizer, normalize=True, max_length=8)
    one = _one_text_path(model)
    assert one is not None
    texts = [
        "",
        "disk quota",
        "the login page is exceeded for user user user user user",
        "unknown words only",
        "disk " * 50,
    ]
    for text in texts:
        assert np.array_equal(one(text), model.encode([text], use_multiprocessing=False))
    weighted = StaticModel(table, tokenizer, normalize=True, weights=np.ones(len(words)))
    assert _one_text_path(weighted) is None  # a layout it does not repeat: model2vec's own

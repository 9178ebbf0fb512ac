"""Behaviour of the routing package: predictors learn what generated the data, the
scheduler trades quality against cost as configured, explores, and honours limits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sls_router.errors import ConfigurationError, InvalidInputError, StateError
from sls_router.routing import (
    PRESETS,
    QUERY_FEATURES_DIM,
    KNNQualityPredictor,
    LatencyPredictor,
    LogisticQualityPredictor,
    Scheduler,
    TokenCostPredictor,
    query_features,
)
from sls_router.types import ModelSpec

DIM = 32


class Regions:
    """Two clusters of unit query vectors: A is right on X and wrong on Y, B the opposite."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.centres = {name: self._unit(self.rng.standard_normal(DIM)) for name in "XY"}

    @staticmethod
    def _unit(v: np.ndarray) -> np.ndarray:
        return (v / np.linalg.norm(v)).astype(np.float32)

    def query(self, region: str) -> np.ndarray:
        noise = 0.6 * self.rng.standard_normal(DIM) / math.sqrt(DIM)
        return self._unit(self.centres[region] + noise)

    @staticmethod
    def score(model: str, region: str) -> float:
        return float((model == "A") == (region == "X"))

    def outcomes(self, n: int):
        regions = self.rng.choice(["X", "Y"], n)
        models = self.rng.choice(["A", "B"], n)
        vectors = np.stack([self.query(r) for r in regions])
        scores = [self.score(m, r) for m, r in zip(models, regions)]
        return vectors, list(models), scores, list(regions)


# ------------------------------------------------------------------- features
def test_query_features_layout_and_stable_task_hash():
    f = query_features("hello big world", "logparsing/HDFS")
    assert f.dtype == np.float32 and f.shape == (QUERY_FEATURES_DIM,) == (18,)
    assert f[0] == pytest.approx(math.log1p(15) / 10) and f[1] == pytest.approx(math.log1p(3) / 10)
    assert f[2:].sum() == 1.0
    assert np.array_equal(f, query_features("hello big world", "logparsing/HDFS"))
    assert query_features("x", None)[2:].sum() == 0
    other = query_features("x", "codegen/humaneval")[2:]
    assert other.sum() == 1.0  # a different tag may share a bucket, but is one-hot too


# ------------------------------------------------------------------- kNN
def test_knn_learns_which_model_is_right_in_which_region():
    data = Regions(1)
    vectors, models, scores, _ = data.outcomes(200)
    knn = KNNQualityPredictor()
    for v, m, s in zip(vectors, models, scores):
        knn.partial_fit(v, m, s)
    x = knn.predict(data.query("X"), ["A", "B", "C"])
    y = knn.predict(data.query("Y"), ["A", "B", "C"])
    assert x.mean[0] > x.mean[1] + 0.6 and y.mean[1] > y.mean[0] + 0.6
    # never seen: the prior, the least evidence and the widest uncertainty
    assert x.mean[2] == pytest.approx(0.5) and x.n_eff[2] == 0
    assert x.std[2] > max(x.std[0], x.std[1])
    # batch fit learns the same thing
    batch = KNNQualityPredictor().fit(vectors, models, scores)
    assert np.allclose(batch.predict(data.query("X"), ["A", "B"]).mean[0] > 0.8, True)


def test_knn_uncertainty_shrinks_with_evidence_and_priors_override():
    data = Regions(2)
    knn = KNNQualityPredictor()
    stds = []
    for i in range(60):
        knn.partial_fit(data.query("X"), "A", 1.0)
        if i in (2, 10, 59):
            stds.append(knn.predict(data.query("X"), ["A"]).std[0])
    assert stds[0] > stds[1] > stds[2]
    p = knn.predict(data.query("X"), ["A", "new"], priors={"new": 0.9})
    assert p.mean[1] == pytest.approx(0.9) and p.mean[0] > 0.9


def test_knn_learnable_std_is_the_priors_far_from_every_record_and_its_own_near_them():
    data = Regions(3)
    knn = KNNQualityPredictor()
    for _ in range(40):
        knn.partial_fit(data.query("X"), "A", 1.0)
    prior_std = np.array([0.03])
    far = knn.predict(-data.centres["X"], ["A"])  # opposite: no neighbour weighs anything
    near = knn.predict(data.query("X"), ["A"])
    assert far.local_share[0] == 0.0 and far.std[0] > 0.2
    assert far.learnable_std(prior_std)[0] == pytest.approx(0.03)
    assert near.local_share[0] > 0.8
    assert near.learnable_std(prior_std)[0] == pytest.approx(
        near.local_share[0] * near.std[0] + (1 - near.local_share[0]) * 0.03
    )


def test_knn_nearest_records_dominate_far_ones():
    data = Regions(3)
    knn = KNNQualityPredictor()
    for _ in range(100):  # many far (Y) successes must not mask near (X) failures
        knn.partial_fit(data.query("Y"), "A", 1.0)
    for _ in range(10):
        knn.partial_fit(data.query("X"), "A", 0.0)
    assert knn.predict(data.query("X"), ["A"]).mean[0] < 0.2


def test_knn_weighs_a_requests_own_outcomes_apart_from_its_neighbours():
    data = Regions(5)
    request = data.query("X")
    knn = KNNQualityPredictor()
    for _ in range(30):  # A is right all around the request, and B half the time
        knn.partial_fit(data.query("X"), "A", 1.0)
    for i in range(30):
        knn.partial_fit(data.query("X"), "B", float(i % 2))
    knn.partial_fit(request, "A", 0.0)  # but A failed this very request
    knn.partial_fit(request.copy(), "B", 1.0)  # and B answered it right
    p = knn.predict(request, ["A", "B", "C"])
    # the neighbours' estimates leave the request's own outcomes out
    assert p.mean[0] > 0.9 and list(p.own_n) == [1.0, 1.0, 0.0]
    assert list(p.own_score) == [0.0, 1.0, 0.0]
    assert list(p.failed_here) == [True, False, False]
    # one outcome on the request weighs as much as everything its neighbours say
    here = p.on_this_request(p.mean)
    assert here.mean[0] == pytest.approx(p.mean[0] / 2) and here.mean[0] < 0.5
    assert here.mean[1] == pytest.approx((p.mean[1] + 1) / 2) and here.mean[1] > 0.7
    assert here.mean[2] == p.mean[2] and here.std[2] == p.std[2]  # no outcome here
    assert list(here.local_share[:2]) == [1.0, 1.0]  # a try teaches about this request
    # a blended estimate is updated the same way; a stronger prior moves less
    assert p.on_this_request(np.array([0.6, 0.6, 0.6])).mean[0] == pytest.approx(0.3)
    firm = KNNQualityPredictor(request_strength=4.0)
    firm.partial_fit(request, "A", 0.0)
    assert firm.predict(request, ["A"]).on_this_request(np.array([0.5])).mean[0] == 0.4
    # a far request knows nothing of them
    assert knn.predict(data.query("Y"), ["A"]).own_n[0] == 0.0
    with pytest.raises(ConfigurationError):
        KNNQualityPredictor(request_strength=0.0)


def test_knn_keeps_learning_after_switching_to_hnsw():
    data = Regions(4)
    knn = KNNQualityPredictor(hnsw_min_entries=100)
    vectors, models, scores, _ = data.outcomes(300)
    for v, m, s in zip(vectors, models, scores):
        knn.partial_fit(v, m, s)
    assert knn._index.kind == "hnsw" and knn.n_records_ == 300
    x = knn.predict(data.query("X"), ["A", "B"])
    assert x.mean[0] > x.mean[1] + 0.6


# ------------------------------------------------------------------- logistic
def _features(vectors):
    return np.stack([np.hstack([v, query_features("some query text", None)]) for v in vectors])


def test_logistic_fits_per_model_and_leaves_thin_models_unfit():
    data = Regions(5)
    vectors, models, scores, _ = data.outcomes(400)
    X = _features(vectors)
    # "thin" has too few outcomes, "flat" only one class: neither can be fit
    extra = _features(np.stack([data.query("X") for _ in range(60)]))
    X = np.vstack([X, extra])
    models += ["thin"] * 10 + ["flat"] * 50
    scores += [1.0, 0.0] * 5 + [1.0] * 50
    lr = LogisticQualityPredictor().fit(X, models, scores)
    test_v, _, _, regions = data.outcomes(200)
    p = lr.predict(_features(test_v), ["A", "B", "thin", "flat", "never"])
    assert p.shape == (200, 5)
    assert np.isnan(p[:, 2:]).all()
    truth = np.array([[data.score("A", r), data.score("B", r)] for r in regions])
    accuracy = ((p[:, :2] >= 0.5) == (truth == 1)).mean()
    assert accuracy > 0.9
    assert set(lr.validation_brier_) == {"A", "B"}
    assert all(b < 0.15 for b in lr.validation_brier_.values())
    one = lr.predict(_features(test_v[:1])[0], ["A"])
    assert one.shape == (1,) and one[0] == pytest.approx(p[0, 0])


# ------------------------------------------------------------------- tokens / latency
def test_token_predictor_converges_and_prices_calls():
    rng = np.random.default_rng(6)
    tokens = TokenCostPredictor(prior_output_tokens=256)
    for _ in range(300):
        tokens.partial_fit("m", "qa", max(0.0, rng.normal(120, 25)))
        tokens.partial_fit("m", "code", max(0.0, rng.normal(400, 60)))
    assert tokens.predict("m", "qa") == pytest.approx(120, rel=0.1)
    assert tokens.predict("m", "code") == pytest.approx(400, rel=0.1)
    assert tokens.predict("m", "new-task") == pytest.approx(260, rel=0.1)  # the model's mean
    # an untried model starts at what the others answer on this task, else at the prior
    assert tokens.predict("unknown", "qa") == pytest.approx(120, rel=0.1)
    assert tokens.predict("unknown", "never-seen") == 256
    spec = ModelSpec("m", input_per_mtok=1.0, output_per_mtok=2.0)
    expected = spec.cost(1000, tokens.predict("m", "qa"))
    assert tokens.cost(spec, 1000, "qa") == pytest.approx(expected)


def test_latency_predictor_converges_and_stays_physical():
    rng = np.random.default_rng(7)
    lat = LatencyPredictor()
    for _ in range(300):
        n = int(rng.integers(20, 500))
        lat.partial_fit("m", n, (0.3 + n / 80.0) * rng.normal(1.0, 0.05))
    ttft, tps = lat.coef("m")
    assert ttft == pytest.approx(0.3, rel=0.1) and tps == pytest.approx(80, rel=0.1)
    assert lat.predict("m", 160) == pytest.approx(0.3 + 2.0, rel=0.1)
    assert lat.coef("never") == (pytest.approx(0.5), pytest.approx(50.0))
    odd = LatencyPredictor()
    odd.partial_fit("x", 1000, 0.0)  # nonsense: 1000 tokens in no time
    odd.partial_fit("y", 0, 30.0)  # a long stall before nothing
    for model in ("x", "y"):
        ttft, tps = odd.coef(model)
        assert ttft >= 0 and 0 < tps < math.inf and odd.predict(model, 100) >= 0


# ------------------------------------------------------------------- scheduler
CHEAP = ModelSpec("cheap", 0.1, 0.1)
MID = ModelSpec("mid", 1.0, 1.0)
DEAR = ModelSpec("dear", 10.0, 10.0)


def _choices(scheduler, cands, mean, std, cost, latency=None, n=200):
    latency = [1.0] * len(cands) if latency is None else latency
    return [scheduler.choose(cands, mean, std, cost, latency, now=0.0) for _ in range(n)]


def test_equal_quality_prefers_the_cheaper_model():
    decisions = _choices(
        Scheduler(random_state=0), [DEAR, CHEAP], [0.8, 0.8], [0.05, 0.05], [0.01, 0.001]
    )
    share = np.mean([d.chosen == "cheap" for d in decisions])
    assert share >= 0.9
    for d in decisions:
        assert sorted(d.ranking) == ["cheap", "dear"]
        assert d.predicted_cost_usd == (0.001 if d.chosen == "cheap" else 0.01)


def test_a_model_that_failed_this_request_is_not_its_incumbent_even_as_the_default():
    cands, cost, latency = [CHEAP, MID], [0.001, 0.001], [1.0, 1.0]
    mean, std = [0.2, 0.3], [0.2, 0.05]  # this request: "cheap" failed it, hence 0.2
    prior = ([0.9, 0.6], [0.02, 0.02], [50, 50])  # the task: "cheap" is far better
    for default in (None, "cheap"):
        scheduler = Scheduler(default_model=default, explore_share=0.0, explore_warmup=0.0)
        kept = scheduler.choose(cands, mean, std, cost, latency, now=0.0, prior=prior)
        assert kept.incumbent == "cheap" and kept.chosen == "cheap"  # not confidently beaten
        moved = scheduler.choose(
            cands, mean, std, cost, latency, now=0.0, prior=prior, failed_here=[True, False]
        )
        assert moved.incumbent == "mid" and moved.chosen == "mid"
    with pytest.raises(InvalidInputError, match="failed_here"):
        Scheduler().choose(cands, mean, std, cost, latency, prior=prior, failed_here=[True])


def test_raising_lam_moves_choices_toward_cheaper_models():
    cands, mean, std, cost = (
        [CHEAP, MID, DEAR],
        [0.6, 0.7, 0.8],
        [0.05, 0.05, 0.05],
        [0.001, 0.003, 0.01],
    )
    shares = []
    for lam in [0, 0.3, 1, 3]:
        decisions = _choices(Scheduler(lam=lam, mu=0.0, random_state=1), cands, mean, std, cost)
        shares.append(np.mean([d.chosen == "cheap" for d in decisions]))
    assert shares == sorted(shares) and shares[0] < 0.1 and shares[-1] > 0.9
    assert PRESETS["quality"][0] < PRESETS["balanced"][0] < PRESETS["cost"][0]


def test_without_data_every_model_is_tried_early():
    cands = [ModelSpec(f"m{i}", p, p) for i, p in enumerate([0.1, 0.5, 2.0, 10.0])]
    prior = KNNQualityPredictor().predict(np.ones(DIM) / math.sqrt(DIM), [c.name for c in cands])
    cost = [c.cost(500, 256) for c in cands]
    for seed in range(5):
        decisions = _choices(Scheduler(random_state=seed), cands, prior.mean, prior.std, cost, n=50)
        assert {d.chosen for d in decisions} == {c.name for c in cands}


def test_min_quality_and_max_cost_are_respected():
    cands, mean, std, cost = (
        [CHEAP, MID, DEAR],
        [0.3, 0.7, 0.9],
        [0.2, 0.2, 0.2],
        [0.001, 0.003, 0.01],
    )
    floor = _choices(
        Scheduler(preset="cost", min_quality=0.5, random_state=2), cands, mean, std, cost
    )
    assert all(d.chosen != "cheap" and d.ranking[-1] == "cheap" for d in floor)
    cap = _choices(
        Scheduler(preset="quality", max_cost_usd=0.005, random_state=3), cands, mean, std, cost
    )
    assert all(d.chosen != "dear" and d.ranking[-1] == "dear" and not d.constrained for d in cap)
    none = Scheduler(min_quality=0.95, random_state=4).choose(cands, mean, std, cost, [1, 1, 1])
    assert none.constrained and none.chosen == "cheap" and none.ranking == ["cheap", "mid", "dear"]


def test_budget_per_window_is_respected_and_renews():
    scheduler = Scheduler(preset="quality", budget_usd=0.1, budget_window_s=60.0, random_state=5)
    cands, mean, std, cost = [CHEAP, DEAR], [0.5, 0.9], [0.05, 0.05], [0.001, 0.01]
    spent_dear = 0
    for i in range(100):  # one request per 0.1 s: all within one window
        d = scheduler.choose(cands, mean, std, cost, [1, 1], now=i * 0.1)
        if not d.constrained:
            scheduler.record_spend(d.predicted_cost_usd, now=i * 0.1)
        spent_dear += d.chosen == "dear"
    assert scheduler.spent_usd(now=9.9) <= 0.1 + 1e-12
    assert spent_dear >= 8  # the budget was used on the better model while it lasted
    later = scheduler.choose(cands, mean, std, cost, [1, 1], now=100.0)
    assert scheduler.spent_usd(now=100.0) == 0 and later.chosen == "dear"


def _floor_counts(cheap_quality: float) -> tuple[dict[str, int], list]:
    decisions = _choices(
        Scheduler(min_explore=1.0, exploration=0.0, random_state=6),
        [CHEAP, MID, DEAR],
        [cheap_quality, 0.1, 0.1],
        [0.01] * 3,
        [0.001, 0.003, 0.01],
    )
    counts = {name: sum(d.chosen == name for d in decisions) for name in ("cheap", "mid", "dear")}
    return counts, decisions


def test_floor_exploration_picks_uniformly_and_is_flagged():
    counts, decisions = _floor_counts(0.6)  # any perfect answer beats cheap's expected 0.52
    assert min(counts.values()) > 40
    assert all(d.explored == (d.chosen != "cheap") for d in decisions)
    assert all(d.ranking[0] == d.chosen and len(set(d.ranking)) == 3 for d in decisions)


def test_floor_exploration_skips_a_model_whose_price_outweighs_a_perfect_answer():
    # balanced, latency alike: a perfect answer from dear (utility 1 - 0.35) loses to
    # cheap's expected 0.82; one from mid (1 - 0.14) would beat it
    counts, _ = _floor_counts(0.9)
    assert counts["dear"] == 0
    assert counts["cheap"] > 40 and counts["mid"] > 40


def test_router_loop_learns_to_pick_the_right_model_per_region():
    data = Regions(8)
    knn = KNNQualityPredictor()
    scheduler = Scheduler(random_state=8)
    cands = [ModelSpec("A", 1.0, 1.0), ModelSpec("B", 1.0, 1.0)]
    regions = data.rng.permutation(["X"] * 100 + ["Y"] * 100)
    right = []
    for region in regions:
        v = data.query(region)
        p = knn.predict(v, ["A", "B"])
        d = scheduler.choose(cands, p.mean, p.std, [0.001, 0.001], [1.0, 1.0], now=0.0)
        knn.partial_fit(v, d.chosen, data.score(d.chosen, region))
        right.append(data.score(d.chosen, region))
    assert np.mean(right[100:]) >= 0.9


# ------------------------------------------------------------------- state
def _round_trip(obj):
    return type(obj).from_state(json.loads(json.dumps(obj.to_state(), allow_nan=False)))


def test_state_round_trips_give_identical_predictions():
    data = Regions(9)
    vectors, models, scores, _ = data.outcomes(300)
    queries = np.stack([data.query(r) for r in "XYXY"])
    knn = KNNQualityPredictor(k=16).fit(vectors, models, scores, weights=np.full(300, 0.5))
    knn2 = _round_trip(knn)
    assert knn2.k == 16
    for q in queries:
        a, b = knn.predict(q, ["A", "B", "C"]), knn2.predict(q, ["A", "B", "C"])
        assert np.array_equal(a.mean, b.mean) and np.array_equal(a.std, b.std)
    lr = LogisticQualityPredictor(min_samples=20).fit(_features(vectors), models, scores)
    lr2 = _round_trip(lr)
    assert np.array_equal(
        lr.predict(_features(queries), ["A", "B"]), lr2.predict(_features(queries), ["A", "B"])
    )
    assert lr2.validation_brier_ == lr.validation_brier_
    tok, lat = TokenCostPredictor(), LatencyPredictor()
    for i in range(20):
        tok.partial_fit("A", None if i % 2 else "qa", 10 * i)
        lat.partial_fit("A", 10 * i, 0.2 + i / 10)
    tok2, lat2 = _round_trip(tok), _round_trip(lat)
    assert tok2.predict("A", None) == tok.predict("A", None)
    assert tok2.predict("A", "qa") == tok.predict("A", "qa")
    assert lat2.predict("A", 100) == lat.predict("A", 100)
    sched = Scheduler(preset="cost", budget_usd=1.0, random_state=3)
    sched.record_spend(0.25, now=10.0)
    sched2 = _round_trip(sched)
    assert sched2.spent_usd(now=11.0) == 0.25 and sched2.effective_lam == PRESETS["cost"][0]
    for empty in (KNNQualityPredictor(), LogisticQualityPredictor()):
        assert _round_trip(empty).to_state() == empty.to_state()
    with pytest.raises(StateError):
        KNNQualityPredictor.from_state({**knn.to_state(), "format_version": 99})
    with pytest.raises(StateError):
        LatencyPredictor.from_state(tok.to_state())


# ------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call",
    [
        lambda k: k.partial_fit(np.ones(DIM), "A", math.nan),
        lambda k: k.partial_fit(np.ones(DIM), "A", 1.5),
        lambda k: k.partial_fit(np.ones(DIM), "A", 1.0, weight=0),
        lambda k: k.partial_fit(np.full(DIM, np.inf), "A", 1.0),
        lambda k: k.partial_fit(np.ones(DIM + 1), "A", 1.0),
        lambda k: k.predict(np.ones(DIM - 1), ["A"]),
        lambda k: k.predict(np.ones(DIM), ["A"], priors={"A": 2.0}),
        lambda k: k.partial_fit(np.ones(DIM), "", 1.0),
        lambda k: k.fit(np.ones((3, DIM)), ["A"] * 3, [1.0, 0.0]),
    ],
)
def test_knn_bad_input_is_refused_and_loses_nothing(call):
    knn = KNNQualityPredictor().partial_fit(np.ones(DIM), "A", 1.0)
    with pytest.raises(InvalidInputError):
        call(knn)
    assert knn.n_records_ == 1 and knn.dim_ == DIM


def test_other_bad_inputs_and_configs():
    with pytest.raises(InvalidInputError):
        TokenCostPredictor().partial_fit("m", "t", -1)
    with pytest.raises(InvalidInputError):
        LatencyPredictor().partial_fit("m", 10, math.inf)
    with pytest.raises(InvalidInputError):
        LatencyPredictor().partial_fit("m", -5, 1.0)
    assert TokenCostPredictor().predict("unknown") == 256  # unknown model: the prior
    lr = LogisticQualityPredictor(min_samples=2).fit(np.eye(4), ["A"] * 4, [1, 0, 1, 0])
    with pytest.raises(InvalidInputError):
        lr.predict(np.ones(5), ["A"])
    with pytest.raises(InvalidInputError):
        lr.fit(np.eye(4), ["A"] * 4, [1, 0, 1, math.nan])
    with pytest.raises(InvalidInputError):
        Scheduler().choose([], [], [], [], [])
    with pytest.raises(InvalidInputError):
        Scheduler().choose([CHEAP, DEAR], [0.5], [0.1, 0.1], [0, 0], [0, 0])
    with pytest.raises(InvalidInputError):
        Scheduler().choose([CHEAP, DEAR], [0.5, math.nan], [0.1, 0.1], [0, 0], [0, 0])
    with pytest.raises(InvalidInputError):
        Scheduler().choose([CHEAP, CHEAP], [0.5, 0.5], [0.1, 0.1], [0, 0], [0, 0])
    with pytest.raises(InvalidInputError):
        Scheduler().record_spend(-1.0)
    for kwargs in [
        dict(preset="fast"),
        dict(lam=-1),
        dict(mu=-0.1),
        dict(budget_usd=-5),
        dict(exploration=-1),
        dict(min_explore=1.5),
        dict(min_explore=-0.1),
        dict(budget_window_s=0),
        dict(min_quality=2),
        dict(exploration=None),
        dict(lam=math.nan),
        dict(random_state="seed"),
    ]:
        with pytest.raises(ConfigurationError):
            Scheduler(**kwargs)
    for cls, kwargs in [
        (KNNQualityPredictor, dict(k=0)),
        (KNNQualityPredictor, dict(prior_mean=1)),
        (LogisticQualityPredictor, dict(C=0)),
        (LatencyPredictor, dict(prior_tokens_per_s=0)),
    ]:
        with pytest.raises(ConfigurationError):
            cls(**kwargs)


def test_scheduler_with_zero_cost_and_latency_and_no_exploration():
    d = Scheduler(exploration=0.0, min_explore=0.0).choose(
        [CHEAP, DEAR], [0.4, 0.6], [0.3, 0.3], [0.0, 0.0], [0.0, 0.0]
    )
    assert d.chosen == "dear" and not d.explored and d.predicted_quality == 0.6
    assert d.utilities == {"cheap": 0.4, "dear": 0.6} and d.sampled_utilities == d.utilities

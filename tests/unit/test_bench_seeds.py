"""`sls-router bench --seeds`: the orders, the mean and worst arithmetic, dominance;
and what `--train` / `--train-split` learn, on hand-made figures and records."""

from __future__ import annotations

import numpy as np
import pytest

from sls_router import CallableBackend, ModelSpec, SmartRouter
from sls_router.bench.seeds import check_seeds, dominated_by, seed_figures, seed_order, shuffled
from sls_router.bench.training import training_split, warm_start
from sls_router.errors import ConfigurationError
from sls_router.replay import RecordedResponse, ReplayDataset, ReplayRecord


def _figures(accuracy, cost, calls=None, hits=0.0):
    return {
        "accuracy": accuracy,
        "cost_usd": cost,
        "llm_time_s": 10 * cost,
        "wall_s": 1.0,
        "cache_hit_rate": hits,
        "cache_wrong_hit_rate": 0.0,
        "explored_cost_share": 0.0,
        "calls_per_model": calls or {},
    }


def _record(rid, models=("cheap", "dear")):
    resp = RecordedResponse("x", 1.0, 1, 1, 0.001, None)
    return ReplayRecord(
        rid, None, f"prompt {rid}", None, "x", None, "exact", dict.fromkeys(models, resp)
    )


def _dataset(n):
    return ReplayDataset("hand", [_record(str(i)) for i in range(n)], {})


def test_seed_zero_keeps_file_order_and_other_seeds_shuffle():
    assert seed_order(50, 0).tolist() == list(range(50))
    one, two = seed_order(50, 1), seed_order(50, 2)
    assert sorted(one.tolist()) == list(range(50)) and one.tolist() != list(range(50))
    assert one.tolist() != two.tolist()
    assert one.tolist() == seed_order(50, 1).tolist()  # the same seed, the same order
    assert one.tolist() == np.random.default_rng(1).permutation(50).tolist()
    data = _dataset(20)
    assert shuffled(data, 0).records == data.records
    assert [r.id for r in shuffled(data, 3).records] == [str(i) for i in seed_order(20, 3)]
    for bad in (0, -1, 1.5):
        with pytest.raises(ConfigurationError, match="at least one seed"):
            check_seeds(bad)


def test_mean_and_worst_over_seeds():
    per_seed = {
        0: _figures(0.8, 1.0, {"a": 3, "b": 1}, hits=0.5),
        1: _figures(0.6, 3.0, {"a": 1}, hits=0.1),
        2: _figures(0.7, 2.0, {"a": 2, "b": 2}, hits=0.3),
    }
    f = seed_figures(per_seed, {})
    assert f["accuracy"] == pytest.approx(0.7) and f["cost_usd"] == pytest.approx(2.0)
    assert f["llm_time_s"] == pytest.approx(20.0) and f["cache_hit_rate"] == pytest.approx(0.3)
    assert f["accuracy_worst"] == 0.6 and f["cost_usd_worst"] == 3.0
    assert f["calls_per_model"] == {"a": pytest.approx(2.0), "b": pytest.approx(1.0)}
    assert f["per_seed"] == [
        {"seed": 0, "accuracy": 0.8, "cost_usd": 1.0},
        {"seed": 1, "accuracy": 0.6, "cost_usd": 3.0},
        {"seed": 2, "accuracy": 0.7, "cost_usd": 2.0},
    ]
    assert f["dominated_by"] == []


def test_one_seed_reports_its_figures_unchanged():
    only = _figures(2 / 3, 0.011, {"a": 3})
    f = seed_figures({0: only}, {})
    assert {k: f[k] for k in only} == only  # counts stay integers, nothing is re-rounded
    assert f["accuracy_worst"] == 2 / 3 and f["cost_usd_worst"] == 0.011


def test_dominated_by_needs_both_figures_and_one_strictly():
    singles = {
        "single:same": _figures(0.7, 2.0),  # a tie on both: no better
        "single:cheaper": _figures(0.7, 1.5),  # as accurate, cheaper
        "single:better": _figures(0.75, 2.0),  # more accurate, same cost
        "single:dearer": _figures(0.9, 2.5),  # better but dearer
        "single:worse": _figures(0.6, 0.1),  # cheaper but less accurate
        "single:noise": _figures(0.7, 2.0 - 1e-15),  # float noise of summing in another order
    }
    per_seed = {0: _figures(0.8, 1.0), 1: _figures(0.6, 3.0)}  # mean 0.7 at 2.0
    assert seed_figures(per_seed, singles)["dominated_by"] == ["single:cheaper", "single:better"]
    assert dominated_by(_figures(0.95, 3.0), singles) == []


def test_train_split_takes_the_file_start_and_scores_the_rest():
    data = _dataset(10)
    train, scored = training_split(data, split=0.3)
    assert [r.id for r in train] == ["0", "1", "2"]
    assert [r.id for r in scored] == [str(i) for i in range(3, 10)]
    for bad in (0, 1, 1.5, 0.05):  # 0.05 of 10 requests is no request
        with pytest.raises(ConfigurationError, match="train_split"):
            training_split(data, split=bad)


def test_training_on_a_scored_line_is_refused_naming_it():
    data = _dataset(5)
    other = ReplayDataset("train", [_record("t1"), _record("3")], {})
    with pytest.raises(ConfigurationError, match="'3'"):
        training_split(data, other)
    # the split's lines are not scored, so a train file may hold them
    train, scored = training_split(data, ReplayDataset("t", [_record("0")], {}), split=0.2)
    assert [r.id for r in train] == ["0", "0"] and len(scored) == 4


def test_a_router_learns_only_its_own_models():
    records = [_record("a"), _record("b", models=("other",))]
    pool = [(ModelSpec("dear", 1.0, 1.0), CallableBackend(lambda request: "x"))]
    router = SmartRouter(pool, embedder="hashing", cache=False, background_updates=False)
    warm_start(router, records)
    assert router.learner.outcomes.models == ["dear"]

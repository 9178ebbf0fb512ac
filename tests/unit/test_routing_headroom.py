"""What routing can gain on a data set, and what learning it from nothing must cost:
the `hindsight_knn` reference and the Lai-Robbins bound (`bench/learning_cost.py`)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sls_router.bench.learning_cost import (
    bernoulli_kl,
    dataset_learning_cost,
    least_learning_cost,
)
from sls_router.bench.replay_bench import run_bench
from sls_router.replay import load_dataset
from sls_router.routing import Scheduler

TOPICS = (
    "weather forecast rain tomorrow cloudy storm wind",
    "python function sort list integers recursion loop",
)


def _replay(
    tmp_path,
    score_of,
    prompt_of=lambda i, topic: f"{TOPICS[topic]} item{i}",
    task_of=lambda topic: "classification/t",
):
    """200 records on two topics, alternating; `score_of(model, i, topic)` scores the
    answers of models "a" and "b"."""
    rows = []
    for i in range(200):
        topic = i % 2
        responses = {}
        for m in ("a", "b"):
            score = float(score_of(m, i, topic))
            responses[m] = {
                "output": "yes" if score else "no",
                "score": score,
                "input_tokens": 10,
                "output_tokens": 1,
                "cost": 0.001,
                "latency_s": 1.0,
            }
        rows.append(
            {
                "id": f"r{i}",
                "task": task_of(topic),
                "prompt": prompt_of(i, topic),
                "reference": "yes",
                "responses": responses,
            }
        )
    path = tmp_path / "topics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return load_dataset(path)


def _accuracy(dataset, strategy):
    result, _ = run_bench(dataset, embedder="hashing", strategies=[strategy])
    return result["strategies"][strategy]["accuracy"]


def test_hindsight_knn_routes_each_topic_to_the_model_right_on_it(tmp_path):
    dataset = _replay(tmp_path, lambda m, i, topic: m == "ab"[topic])
    assert _accuracy(dataset, "single:a") == pytest.approx(0.5)
    assert _accuracy(dataset, "hindsight_knn") >= 0.95


def test_hindsight_knn_never_knows_the_outcome_it_scores(tmp_path):
    # requests share no word and which model is right is a coin per request: nothing to
    # learn from the others, so a reference that saw the scored request's own outcome
    # would be right every time
    coins = np.random.default_rng(0).integers(0, 2, 200)
    dataset = _replay(
        tmp_path, lambda m, i, topic: m == "ab"[coins[i]], lambda i, _: f"alpha{i} bravo{i} w{i}"
    )
    assert _accuracy(dataset, "hindsight_knn") < 0.65


def test_bernoulli_kl_by_hand():
    assert bernoulli_kl(0.3, 0.3) == 0.0
    assert bernoulli_kl(0.5, 0.9) == pytest.approx(0.5 * math.log(5 / 9) + 0.5 * math.log(5))
    assert bernoulli_kl(0.0, 0.5) == pytest.approx(math.log(2))


def test_least_learning_cost_by_hand():
    scheduler = Scheduler(preset="balanced")  # 0.3 quality points for the dearest price
    bound = least_learning_cost(
        accuracy={"good": 0.9, "weak": 0.5, "dear": 0.95},
        cost_usd={"good": 0.001, "weak": 0.001, "dear": 0.1},
        latency_s={"good": 1.0, "weak": 1.0, "dear": 1.0},
        requests=1000,
        scheduler=scheduler,
    )
    assert bound.best == "good"
    # "weak" must be tried until a rate of 0.9 is told from its 0.5 ...
    weak_tries = math.log(1000) / bernoulli_kl(0.5, 0.9)
    assert bound.tries["weak"] == pytest.approx(weak_tries)
    # ... and "dear" never: even always right, its price keeps it below "good"
    assert "dear" not in bound.tries
    assert bound.wrong == pytest.approx(weak_tries * 0.4)
    assert bound.extra_cost_usd == pytest.approx(0.0)
    assert bound.cost_usd == pytest.approx(1.0)


def test_a_model_too_close_to_tell_apart_is_tried_at_most_every_request():
    bound = least_learning_cost(
        accuracy={"good": 0.9, "close": 0.899},
        cost_usd={"good": 0.001, "close": 0.001},
        latency_s={"good": 1.0, "close": 1.0},
        requests=100,
        scheduler=Scheduler(),
    )
    assert bound.tries == {"close": 100}
    assert bound.wrong == pytest.approx(100 * 0.001)
    assert not bound.informative  # so a data set's figures do not count it


def test_the_bound_is_counted_per_task(tmp_path):
    # each topic is its own task with its own best model (right 9 times in 10), and the
    # other model right half the time there
    dataset = _replay(
        tmp_path,
        lambda m, i, topic: i % 20 >= 2 if m == "ab"[topic] else i % 4 < 2,
        task_of=lambda topic: f"classification/t{topic}",
    )
    accuracy, cost, bounds = dataset_learning_cost(dataset, Scheduler())
    assert sorted(b.best for b in bounds) == ["a", "b"]
    tries = math.log(100) / bernoulli_kl(0.5, 0.9)
    for b in bounds:
        assert b.requests == 100 and b.accuracy == pytest.approx(0.9)
        assert list(b.tries.values()) == [pytest.approx(tries)] and b.informative
    assert accuracy == pytest.approx(0.9 - 2 * tries * 0.4 / 200)
    assert cost == pytest.approx(0.2)

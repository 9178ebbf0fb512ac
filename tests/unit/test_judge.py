"""The LLM judge: its verdicts are bounded to read, weighed as a label-free source, paid
for within the spend cap on learning, and asked off the request path on sampled fresh
answers, borderline cache hits and candidates a contrast kept out."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

from sls_router import CallableBackend, ConfigurationError, ModelSpec, Request, SmartRouter
from sls_router.cache import SemanticCache
from sls_router.judge import MAX_SHOWN_CHARS, grading_request, parse_verdict
from sls_router.types import Completion, Usage


def test_the_verdict_is_the_first_word_and_anything_else_says_nothing():
    assert parse_verdict("YES.") == 1.0
    assert parse_verdict("  no, the year is wrong") == 0.0
    assert parse_verdict("Correct") == 1.0
    assert parse_verdict("I think so") is None
    assert parse_verdict("") is None and parse_verdict(None) is None
    assert parse_verdict(" " * 10_000 + "yes") is None  # only the head is read


def test_the_judge_sees_the_request_and_the_answer_each_cut_to_a_bound():
    request = Request(prompt="q" * 50_000, namespace="tenant")
    shown = grading_request(request, "a" * 50_000)
    text = shown.messages[-1]["content"]
    assert len(text) < 2 * MAX_SHOWN_CHARS + 100
    assert shown.namespace == "tenant" and shown.params["temperature"] == 0


def _model(name: str, price: float, answer):
    calls: list[Request] = []

    def fn(request: Request) -> Completion:
        calls.append(request)
        return Completion(answer(request), Usage(100, 20))

    backend = CallableBackend(fn)
    backend.calls = calls  # type: ignore[attr-defined]
    return ModelSpec(name, price, price), backend


def _judge(says):
    """A scripted judge: `says(answer)` -> its reply; it records what it graded."""
    graded: list[str] = []

    def fn(request: Request) -> Completion:
        answer = request.messages[-1]["content"].split("\n\nAnswer:\n", 1)[1]
        graded.append(answer)
        return Completion(says(answer), Usage(300, 1))

    backend = CallableBackend(fn)
    backend.graded = graded  # type: ignore[attr-defined]
    return ModelSpec("judge", 5.0, 5.0), backend


def _router(pool, **options) -> SmartRouter:
    options.setdefault("embedder", "hashing")
    return SmartRouter(pool, background_updates=False, random_state=0, **options)


def test_a_judge_that_rejects_a_fresh_answer_keeps_it_out_of_the_cache():
    pool = [_model("a", 1.0, lambda r: "wrong answer")]
    judge = _judge(lambda answer: "NO")
    seen = []
    router = _router(
        pool, judge=judge, judge_share=1.0, on_feedback=lambda *event: seen.append(event)
    )
    first = router.complete("how tall is the eiffel tower")
    router.flush()
    assert judge[1].graded == ["wrong answer"]
    assert [(e[3], e[4]) for e in seen] == [("judge", 0.0)]
    assert not router.complete("how tall is the eiffel tower").cache_hit
    without = _router(pool)
    without.complete("how tall is the eiffel tower")
    assert without.complete("how tall is the eiffel tower").cache_hit  # the judge made it
    scheduler = router.learner.scheduler
    assert scheduler.requests == 2  # grading serves no request ...
    assert scheduler.spent_total_usd > first.cost_usd * 2  # ... but it is paid for


def test_a_judges_verdicts_are_weighed_by_how_often_labels_proved_them_right():
    pool = [_model("a", 1.0, lambda r: f"answer to {r.id}")]
    judge = _judge(lambda a: "YES")
    router = _router(pool, cache=False, judge=judge, judge_share=1.0, explore_share=1.0)
    for i in range(60):  # the judge says yes; labels say right one time in four
        response = router.complete(Request(prompt=f"question {i}", task="t", id=f"q{i}"))
        router.flush()
        router.feedback(response.request_id, float(i % 4 == 0), source="label")
    from sls_router.learning import trust_key
    from sls_router.routing import query_features

    key = trust_key(query_features("question", "t"))
    assert router.learner.trust.precision("judge", key, True) == pytest.approx(0.25, abs=0.1)


def test_grading_stops_at_the_cap_on_what_learning_may_spend():
    pool = [_model("a", 1.0, lambda r: f"answer {r.id}")]
    judge = _judge(lambda a: "YES")
    router = _router(pool, cache=False, judge=judge, judge_share=1.0, explore_share=0.1)
    for i in range(200):
        router.complete(Request(prompt=f"distinct question {i} about {i * 7}"))
        router.flush()
    graded = len(judge[1].graded)
    assert 0 < graded < 100
    scheduler = router.learner.scheduler
    one_grading = judge[0].cost(300, 1)
    warmup = scheduler.explore_warmup * max(one_grading, pool[0][0].cost(100, 20))
    assert scheduler.explored_usd <= 0.1 * scheduler.spent_total_usd + warmup + one_grading


def test_only_a_sampled_share_of_fresh_answers_is_graded_and_none_by_default():
    pool = [_model("a", 0.01, lambda r: f"answer {r.id}")]
    judge = _judge(lambda a: "YES")
    router = _router(pool, cache=False, judge=judge, judge_share=0.25, explore_share=1.0)
    for i in range(200):
        router.complete(Request(prompt=f"question {i}"))
    router.flush()
    assert 25 <= len(judge[1].graded) <= 75
    assert not hasattr(_router(pool), "graded") and _router(pool).judge is None


class _Geometry:
    """Texts mapped to chosen unit vectors: 'far' and 'far too' sit at cosine 0.71 from
    'base' and at 0.5 from each other."""

    name, dim = "geometry-test", 4
    side = float(np.sqrt(1 - 0.71**2))
    vectors = {
        "base": [1.0, 0.0, 0.0, 0.0],
        "same": [1.0, 0.0, 0.0, 0.0],
        "far": [0.71, side, 0.0, 0.0],
        "far too": [0.71, 0.0, side, 0.0],
    }

    def encode(self, texts):
        return np.asarray([self.vectors[t] for t in texts], dtype=np.float32)


@pytest.mark.parametrize("judge_says", ["YES", "NO"])
def test_a_borderline_hit_waits_for_the_judge_and_later_ones_follow_its_verdict(judge_says):
    embedder = _Geometry()
    cache = SemanticCache(embedder, contrast=False)
    pool = [_model("a", 1.0, lambda r: "answer to " + r.text)]
    judge = _judge(lambda a: judge_says)
    router = _router(
        pool, embedder=embedder, cache=cache, judge=judge, judge_share=0.0, explore_share=1.0
    )
    router.complete("base")
    sure = router.complete("same")
    router.flush()
    assert sure.cache_hit and judge[1].graded == []  # a sure hit needs no judge
    near = router.complete("far")
    router.flush()
    # a borderline hit is not served: a fresh answer is, and the judge grades the cached one
    assert not near.cache_hit and near.text == "answer to far"
    assert judge[1].graded == ["answer to base"]
    # nothing wrong was served, and the hit that waits is not counted as served
    assert router.stats()["cache"]["wrong_hits"] == 0
    assert router.stats()["cache"]["hits"] == 1
    later = router.complete("far too")  # as close to "base" as "far" was
    router.flush()
    assert later.cache_hit == (judge_says == "YES")
    assert later.text == ("answer to base" if judge_says == "YES" else "answer to far too")
    # either way the verdict decides: a "no" keeps the entry from serving this close
    assert judge[1].graded == ["answer to base"]


def test_a_borderline_hit_is_served_when_the_cap_leaves_no_room_for_the_judge():
    embedder = _Geometry()
    cache = SemanticCache(embedder, contrast=False)
    pool = [_model("a", 1.0, lambda r: "answer to " + r.text)]
    judge = _judge(lambda a: "YES")
    router = _router(pool, embedder=embedder, cache=cache, judge=judge, judge_share=0.0)
    router.learner.may_learn = lambda cost, dearest: False  # the cap is spent
    router.complete("base")
    near = router.complete("far")
    router.flush()
    # no grading could end the wait: the similarity rules decide alone, as without a judge
    assert near.cache_hit and near.text == "answer to base" and judge[1].graded == []


def test_a_candidate_kept_out_by_a_contrast_is_graded_for_the_new_question():
    pool = [_model("a", 1.0, lambda r: "answer to " + r.text)]
    judge = _judge(lambda a: "NO")
    router = _router(pool, judge=judge, judge_share=0.0, explore_share=1.0)
    router.complete("How do I turn on dark mode?")
    refused = router.complete("How do I turn off dark mode?")
    router.flush()
    assert router.cache is not None and router.cache.stats().refusals  # a contrast refused
    assert not refused.cache_hit
    assert judge[1].graded == ["answer to How do I turn on dark mode?"]
    # the scope learned that this refused candidate was wrong (counts: candidate wrong,
    # candidate right, fresh wrong, fresh right)
    assert [row[1:] for row in router.cache.refusal_trust.to_state()] == [
        ["antonym", 1.0, 0.0, 0.0, 0.0]
    ]


def test_a_failing_judge_costs_the_request_nothing():
    def broken(request: Request) -> Completion:
        raise TimeoutError("judge down")

    pool = [_model("a", 1.0, lambda r: "fine")]
    judge = (ModelSpec("judge", 1.0, 1.0), CallableBackend(broken))
    router = _router(pool, judge=judge, judge_share=1.0)
    assert router.complete("hello").text == "fine"
    router.flush()


def test_a_judge_outside_the_pool_or_a_bad_share_is_refused_with_what_to_do():
    pool = [_model("a", 1.0, lambda r: "x")]
    with pytest.raises(ConfigurationError, match="not a model of the pool"):
        _router(pool, judge="gpt-judge")
    with pytest.raises(ConfigurationError, match="judge_share"):
        _router(pool, judge="a", judge_share=2.0)
    with pytest.raises(ConfigurationError, match="ModelSpec, backend"):
        _router(pool, judge=("spec", "backend"))
    assert _router(pool, judge="a").judge is not None  # a pool model may grade


def test_a_judge_that_hangs_is_given_up_after_its_timeout_and_says_nothing():
    release = threading.Event()
    spec, backend = _judge(lambda answer: "NO" if release.wait(30) else "NO")
    seen = []
    router = _router(
        [_model("a", 1.0, lambda r: "an answer")],
        judge=(dataclasses.replace(spec, timeout_s=0.3), backend),
        judge_share=1.0,
        on_feedback=lambda *event: seen.append(event),
    )
    try:
        router.complete("how tall is the eiffel tower")
        started = time.perf_counter()
        router.flush()
        assert time.perf_counter() - started < 5
        assert backend.graded == ["an answer"]  # asked, and given up on
        assert [e[3] for e in seen if e[3] == "judge"] == []
    finally:
        release.set()
        router.close()

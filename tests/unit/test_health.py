"""Model health: the circuit breaker, rate limits, empty answers, cost of failovers."""

from __future__ import annotations

import asyncio

import pytest

from sls_router import (
    BackendError,
    CallableBackend,
    Completion,
    ModelSpec,
    Request,
    SmartRouter,
    UnknownEntryError,
    Usage,
)
from sls_router.health import CircuitBreaker, retry_after_s


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class RateLimited(Exception):
    def __init__(self, retry_after) -> None:
        super().__init__("429 too many requests")
        self.retry_after = retry_after


class _Response:
    def __init__(self, headers) -> None:
        self.headers = headers


class HTTPStatusError(Exception):
    def __init__(self, headers) -> None:
        super().__init__("429")
        self.response = _Response(headers)


def test_breaker_opens_after_consecutive_failures_and_probes_after_cooldown():
    clock = FakeClock()
    breaker = CircuitBreaker(failures_to_open=3, cooldown_s=30, clock=clock)
    breaker.record_failure("a")
    breaker.record_failure("a")
    breaker.record_success("a")  # the streak is broken
    breaker.record_failure("a")
    breaker.record_failure("a")
    assert breaker.available("a")
    breaker.record_failure("a")
    assert not breaker.available("a")
    assert breaker.order(["a", "b"]) == ["b", "a"]  # still tried, last
    clock.now += 30
    assert breaker.available("a")  # half-open: one probe
    breaker.record_failure("a")
    assert not breaker.available("a")  # the probe failed: out again at once
    clock.now += 30
    breaker.record_success("a")
    assert breaker.available("a") and breaker.status()["a"]["failures"] == 0


def test_retry_after_comes_from_the_error_or_its_http_response():
    assert retry_after_s(RateLimited(7)) == 7.0
    assert retry_after_s(HTTPStatusError({"retry-after": "12"})) == 12.0
    assert retry_after_s(HTTPStatusError({"retry-after": "soon"})) is None
    assert retry_after_s(RateLimited(float("nan"))) is None
    assert retry_after_s(RuntimeError("boom")) is None


def _router(pool, **options):
    return SmartRouter(
        pool, embedder="hashing", cache=False, random_state=0, background_updates=False, **options
    )


def test_rate_limited_model_rests_for_its_retry_after():
    calls = {"limited": 0, "backup": 0}

    def limited(request):
        calls["limited"] += 1
        raise RateLimited(3600)

    def backup(request):
        calls["backup"] += 1
        return "ok"

    pool = [
        (ModelSpec("limited", 0.1, 0.1), CallableBackend(limited)),
        (ModelSpec("backup", 50, 50), CallableBackend(backup)),
    ]
    router = _router(pool, exploration=0.0)
    first = router.complete("hello there")
    assert first.text == "ok" and first.tried == ("limited", "backup")
    for i in range(20):
        assert router.complete(f"question {i}").tried == ("backup",)
    assert calls["limited"] == 1 and router.health.status()["limited"]["retry_in_s"] > 3500


def test_empty_answers_fail_over_and_are_paid_once():
    empty = Completion(text="  ", usage=Usage(10, 0), cost_usd=0.5)
    good = Completion(text="an answer", usage=Usage(10, 5), cost_usd=0.25)
    pool = [
        (ModelSpec("empty", 0.1, 0.1), CallableBackend(lambda r: empty)),
        (ModelSpec("good", 90, 90), CallableBackend(lambda r: good)),
    ]
    router = _router(pool, exploration=0.0)
    response = router.complete("what is an answer?")
    assert response.text == "an answer" and response.tried == ("empty", "good")
    assert response.cost_usd == pytest.approx(0.75)  # both calls were billed, each once


def test_every_model_empty_is_an_error_not_an_empty_answer():
    pool = [
        (ModelSpec("a"), CallableBackend(lambda r: "")),
        (ModelSpec("b"), CallableBackend(lambda r: Completion(text=""))),
    ]
    router = _router(pool)
    with pytest.raises(BackendError, match="empty answer") as caught:
        router.complete("anything")
    assert sorted(m for m, _ in caught.value.attempts) == ["a", "b"]
    with pytest.raises(BackendError):
        list(router.stream("anything else"))
    with pytest.raises(BackendError):
        asyncio.run(router.acomplete("and again"))


def test_feedback_is_checked_against_the_tenant():
    pool = [(ModelSpec("a"), CallableBackend(lambda r: "fine"))]
    router = _router(pool)
    response = router.complete(Request(prompt="hello", namespace="tenant-a"))
    with pytest.raises(UnknownEntryError):
        router.feedback(response.request_id, 1.0, namespace="tenant-b")
    with pytest.raises(UnknownEntryError):
        router.feedback(response.request_id[::-1], 1.0)  # a forged id
    router.feedback(response.request_id, 1.0, namespace="tenant-a")
    assert len(router.learner.outcomes) == 1

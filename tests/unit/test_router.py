"""SmartRouter behaviour: learning, cost knob, exploration, failover, feedback, state."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import numpy as np
import pytest

from sls_router import (
    BackendError,
    CallableBackend,
    Completion,
    ModelSpec,
    Request,
    SLSRouterError,
    SmartRouter,
    Usage,
)
from sls_router.backends import BaseBackend, StreamChunk
from sls_router.errors import ConfigurationError, InvalidInputError, StateError, UnknownEntryError
from sls_router.updates import UpdateManager


def _answer(model: str, good_on: str):
    """A backend whose answer is right ("<topic>-ok") only on topics of `good_on`."""

    def fn(request: Request) -> Completion:
        topic = request.embed_text.split(":")[0]
        text = f"{topic}-ok" if topic in good_on else f"{topic}-bad-{model}"
        return Completion(text, Usage(100, 20))

    return CallableBackend(fn)


def _score(request: Request, response) -> float:
    return 1.0 if response.text.endswith("-ok") else 0.0


def _pool(prices=(1.0, 1.0), good=("X", "Y")):
    return [
        (ModelSpec("A", prices[0], prices[0]), _answer("A", good[0])),
        (ModelSpec("B", prices[1], prices[1]), _answer("B", good[1])),
    ]


def _run(router, topics, feedback=True):
    picks = []
    for i, topic in enumerate(topics):
        response = router.complete(Request(prompt=f"{topic}:{i}-{time.perf_counter_ns()}"))
        picks.append(response)
        if feedback:
            router.feedback(response.request_id, _score(None, response), source="label")
    return picks


def test_learns_which_model_is_right_where(topic_embedder, new_router):
    router = new_router(
        _pool(), embedder=topic_embedder, cache=False, random_state=0, background_updates=False
    )
    rng = np.random.default_rng(0)
    _run(router, rng.choice(["X", "Y"], 200))
    later = _run(router, rng.choice(["X", "Y"], 100))
    right = sum(r.text.endswith("-ok") for r in later)
    assert right >= 90


def test_equal_quality_prefers_cheaper(topic_embedder):
    router = SmartRouter(
        _pool(prices=(10.0, 1.0), good=("XY", "XY")),
        embedder=topic_embedder,
        cache=False,
        random_state=1,
    )
    _run(router, ["X"] * 100)
    later = _run(router, ["X"] * 100)
    assert sum(r.model == "B" for r in later) >= 90


def test_cost_knob_moves_choices_toward_cheaper(topic_embedder):
    # A is right on X and Y but costs 20x B, which is right on X only
    shares = []
    for lam in (0.0, 0.3, 3.0):
        router = SmartRouter(
            _pool(prices=(20.0, 1.0), good=("XY", "X")),
            embedder=topic_embedder,
            cache=False,
            lam=lam,
            random_state=2,
        )
        rng = np.random.default_rng(3)
        _run(router, rng.choice(["X", "Y"], 150))
        later = _run(router, rng.choice(["X", "Y"], 100))
        shares.append(sum(r.model == "B" for r in later))
    assert shares[0] <= shares[1] + 5 and shares[1] <= shares[2] + 5  # monotone up to noise
    assert shares[0] <= 60 and shares[2] >= 90


def test_explores_every_model_without_data_within_its_cap(topic_embedder):
    pool = [(ModelSpec(f"m{i}", 1.0, 1.0), _answer(f"m{i}", "X")) for i in range(4)]
    router = SmartRouter(pool, embedder=topic_embedder, cache=False, random_state=4)
    picks = _run(router, ["X"] * 150, feedback=False)
    assert {r.model for r in picks} == {"m0", "m1", "m2", "m3"}
    scheduler = router.learner.scheduler
    dearest = max(r.cost_usd for r in picks)
    assert scheduler.explored_usd <= 0.1 * scheduler.spent_total_usd + 2 * dearest + 1e-12


def _failing(exc):
    def fn(request):
        raise exc

    return CallableBackend(fn)


def test_failover_on_error_and_timeout(topic_embedder, new_router):
    def slow(request):
        time.sleep(2)
        return "late"

    pool = [
        (ModelSpec("broken", 0.1, 0.1), _failing(RuntimeError("503 from provider"))),
        (ModelSpec("slow", 0.1, 0.1, timeout_s=0.2), CallableBackend(slow)),
        (ModelSpec("ok", 5.0, 5.0), CallableBackend(lambda r: "fine")),
    ]
    router = new_router(
        pool, embedder=topic_embedder, cache=False, random_state=0, breaker_failures=2
    )
    tried = []
    for i in range(12):
        response = router.complete(f"q{i}:x")
        assert response.text == "fine" and response.model == "ok"
        assert response.tried[-1] == "ok"
        tried.append(response.tried)
    assert any(len(t) > 1 for t in tried[:6])  # failing over while it learns...
    assert all(t == ("ok",) for t in tried[-4:])  # ...until both are out of rotation
    assert not router.health.available("broken") and not router.health.available("slow")


def test_all_models_failing_lists_every_attempt(topic_embedder):
    pool = [
        (ModelSpec("a"), _failing(RuntimeError("boom-a"))),
        (ModelSpec("b"), _failing(ValueError("boom-b"))),
    ]
    router = SmartRouter(pool, embedder=topic_embedder, cache=False)
    with pytest.raises(BackendError) as info:
        router.complete("hello:x")
    assert {m for m, _ in info.value.attempts} == {"a", "b"}
    assert "boom-a" in str(info.value) and "boom-b" in str(info.value)


def test_feedback_door_changes_cache_and_predictor(topic_embedder, new_router):
    router = new_router(
        _pool(good=("", "")), embedder=topic_embedder, random_state=0, background_updates=False
    )
    first = router.complete("weather:a")
    assert not first.cache_hit
    second = router.complete("weather:a")
    assert second.cache_hit and second.text == first.text and second.cost_usd == 0.0

    def p_right() -> float:
        p = router.learner.knn.predict(router.embedder.encode(["weather:a"])[0], [first.model])
        return float(p.on_this_request(p.mean).mean[0])

    before = p_right()
    router.feedback(first.request_id, 0.0, source="label")
    assert p_right() < before
    assert len(router.learner.outcomes) == 1
    third = router.complete("weather:a")
    assert not third.cache_hit  # the wrong answer is never served again


def test_wrong_cache_hit_feedback_tightens_the_entry(topic_embedder, new_router):
    router = new_router(_pool(), embedder=topic_embedder, random_state=0)
    router.complete("weather:a")
    hit = router.complete("weather:b")
    assert hit.cache_hit
    router.feedback(hit.request_id, 0.0)
    assert not router.complete("weather:b").cache_hit


def test_tools_and_sampling_are_not_cached(topic_embedder, new_router):
    pool = [
        (ModelSpec("tooly", supports_tools=True), CallableBackend(lambda r: "called")),
        (ModelSpec("plain"), CallableBackend(lambda r: "plain")),
    ]
    router = new_router(pool, embedder=topic_embedder)
    tools = [{"name": "get_weather", "parameters": {}}]
    for _ in range(3):
        r = router.complete(Request(prompt="weather:a", tools=tools))
        assert r.model == "tooly" and not r.cache_hit
    for _ in range(2):
        assert not router.complete(Request(prompt="news:a", params={"temperature": 0.7})).cache_hit
    assert len(router.cache) == 0


def test_a_pinned_request_calls_its_model_and_skips_the_cache(topic_embedder):
    router = SmartRouter(_pool(prices=(0.1, 10.0)), embedder=topic_embedder, random_state=0)
    router.complete(Request(prompt="X:pin"))  # cached: pinned requests must not take it
    pinned = [router.complete(Request(prompt="X:pin", model="B")) for _ in range(2)]
    assert all(r.model == "B" and not r.cache_hit and r.tried == ("B",) for r in pinned)
    router.feedback(pinned[0].request_id, 1.0)  # learned from like any answer
    with pytest.raises(InvalidInputError, match="not in the pool"):
        router.complete(Request(prompt="X:pin", model="C"))
    with pytest.raises(InvalidInputError, match="does not support tools"):
        router.complete(Request(prompt="X:pin", model="A", tools=[{"name": "f"}]))


def test_periodic_updates_fire_by_count(topic_embedder):
    router = SmartRouter(
        _pool(), embedder=topic_embedder, cache=False, update_every_n=10, background_updates=False
    )
    _run(router, ["X", "Y"] * 15)
    assert len(router.learner.updates.log) == 3
    assert all(e["trigger"] == "count" for e in router.learner.updates.log)
    assert router.learner.updates.log[-1]["outcomes"] == 30


def test_periodic_updates_fire_by_time():
    now = [0.0]
    calls = []
    manager = UpdateManager(
        lambda: calls.append(1) or {}, every_n=0, every_s=60, background=False, clock=lambda: now[0]
    )
    manager.record()
    assert calls == []
    now[0] = 61
    manager.record()
    assert calls == [1] and manager.log[-1]["trigger"] == "time"


def test_background_update_does_not_block(topic_embedder):
    router = SmartRouter(_pool(), embedder=topic_embedder, cache=False, update_every_n=5)
    _run(router, ["X"] * 12)
    router.learner.updates.wait(10)
    assert len(router.learner.updates.log) >= 1


def test_save_load_gives_same_decisions(tmp_path, topic_embedder):
    router = SmartRouter(
        _pool(prices=(3.0, 1.0)),
        embedder=topic_embedder,
        exploration=0.0,
        random_state=0,
        background_updates=False,
        update_every_n=60,  # no refit pending at save: both routers refit at the same points
    )
    rng = np.random.default_rng(5)
    _run(router, rng.choice(["X", "Y"], 120))
    router.save(tmp_path)
    loaded = SmartRouter.load(tmp_path, _pool(prices=(3.0, 1.0)), topic_embedder)
    assert len(loaded.learner.outcomes) == len(router.learner.outcomes) and len(
        loaded.cache
    ) == len(router.cache)
    for i in range(30):
        topic = "X" if i % 2 else "Y"
        req = f"{topic}:fresh-{i}"
        a, b = router.route(Request(prompt=req)), loaded.route(Request(prompt=req))
        assert (a.lookup.hit, a.lookup.answer) == (b.lookup.hit, b.lookup.answer)
    router.cache, loaded.cache = None, None  # now compare the scheduler's own decisions
    for i in range(30):
        req = f"{'X' if i % 2 else 'Y'}:fresh-{i}"
        a, b = router.route(Request(prompt=req)), loaded.route(Request(prompt=req))
        assert a.decision.chosen == b.decision.chosen
        assert a.decision.predicted_quality == pytest.approx(b.decision.predicted_quality, 1e-6)


def test_reopening_the_state_keeps_what_was_learned(tmp_path, topic_embedder, store_kind, request):
    """`open(state)` then `save()`, on a directory or on PostgreSQL: a router reopened
    on the same state has the same training rows, cache and kNN predictions."""
    state = tmp_path if store_kind == "local" else request.getfixturevalue("new_database")()
    options = dict(
        embedder=topic_embedder, exploration=0.0, random_state=0, background_updates=False
    )
    router = SmartRouter.open(state, _pool(), **options)
    _run(router, np.random.default_rng(5).choice(["X", "Y"], 60))
    router.save()
    again = SmartRouter.open(state, _pool(), **options)
    try:
        assert len(again.learner.outcomes) == len(router.learner.outcomes) > 0
        assert sorted(again.learner.outcomes.models) == sorted(router.learner.outcomes.models)
        for i in range(20):
            req = Request(prompt=f"{'X' if i % 2 else 'Y'}:fresh-{i}")
            a, b = router.route(req), again.route(req)
            if store_kind == "postgres" and a.lookup.hit and b.lookup.reason == "contrast":
                # which contrasts a scope refuses is learned per replica and starts afresh
                # on PostgreSQL (README): a restarted replica refuses until it relearns
                continue
            assert (a.lookup.hit, a.lookup.answer) == (b.lookup.hit, b.lookup.answer)
            knn = [r.learner.knn.predict(a.vector, ["A", "B"]).mean for r in (router, again)]
            assert knn[0] == pytest.approx(knn[1], abs=1e-9)
    finally:
        router.close()
        again.close()


def test_load_refuses_future_version(tmp_path, topic_embedder):
    router = SmartRouter(_pool(), embedder=topic_embedder)
    router.save(tmp_path)
    manifest = (
        (tmp_path / "manifest.json").read_text().replace('"format_version":1', '"format_version":7')
    )
    (tmp_path / "manifest.json").write_text(manifest)
    with pytest.raises(StateError):
        SmartRouter.load(tmp_path, _pool(), topic_embedder)


def test_async_and_batch_answer_every_request(topic_embedder, new_router):
    router = new_router(_pool(), embedder=topic_embedder, random_state=0)
    responses = asyncio.run(router.abatch([f"t{i}:x" for i in range(50)]))
    assert len({r.request_id for r in responses}) == 50
    assert len(router.batch([f"u{i}:x" for i in range(20)])) == 20


def test_stream_and_complete_give_same_text(topic_embedder, new_router):
    router = new_router(_pool(), embedder=topic_embedder, random_state=0)
    chunks = list(router.stream("weather:a"))
    final = chunks[-1]
    assert "".join(c.text for c in chunks[:-1]) == final.text
    cached = list(router.stream("weather:a"))
    assert cached[-1].cache_hit and "".join(c.text for c in cached[:-1]) == final.text


@pytest.mark.parametrize(
    "make",
    [
        lambda e: SmartRouter([], embedder=e),
        lambda e: SmartRouter(
            [(ModelSpec("a"), CallableBackend(str)), (ModelSpec("a"), CallableBackend(str))],
            embedder=e,
        ),
        lambda e: SmartRouter(
            [(ModelSpec("a", input_per_mtok=-1.0), CallableBackend(str))], embedder=e
        ),
        lambda e: SmartRouter(
            [(ModelSpec("a", output_per_mtok=math.nan), CallableBackend(str))], embedder=e
        ),
        lambda e: SmartRouter([(ModelSpec("a"), object())], embedder=e),
        lambda e: SmartRouter(_pool(), embedder=e, preset="cheapest-please"),
    ],
)
def test_bad_configuration(make, topic_embedder):
    with pytest.raises(ConfigurationError):
        make(topic_embedder)


def test_bad_feedback_and_requests(topic_embedder, new_router):
    router = new_router(_pool(), embedder=topic_embedder)
    response = router.complete("weather:a")
    with pytest.raises(UnknownEntryError):
        router.feedback("no-such-request", 1.0)
    for bad in (math.nan, math.inf, -0.5, 2.0, "good"):
        with pytest.raises(InvalidInputError):
            router.feedback(response.request_id, bad)
    with pytest.raises(InvalidInputError):
        router.complete(Request(prompt="   "))
    with pytest.raises(InvalidInputError):
        router.complete(Request(messages=[{"role": "wizard", "content": "hi"}]))
    with pytest.raises(InvalidInputError):
        router.complete(42)
    with pytest.raises(InvalidInputError):
        router.complete(Request(prompt="x:a", tools=[{"name": "t"}]))  # no tool-capable model
    assert len(router.learner.outcomes) == 0
    assert isinstance(BackendError("x"), SLSRouterError)


def test_turns_after_the_question_and_the_rest_of_the_prompt_scope_the_cache(
    topic_embedder, new_router
):
    router = new_router(
        [(ModelSpec("m"), CallableBackend(lambda r: f"answer {len(r.text)}"))],
        embedder=topic_embedder,
        random_state=0,
        background_updates=False,
    )
    question = {"role": "user", "content": "weather:paris"}
    router.complete(Request(messages=[question]))
    call = {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "1", "name": "get_weather", "args": {"city": "Paris"}}],
    }
    result = {"role": "tool", "content": "sunny", "tool_call_id": "1"}
    after_tools = router.complete(Request(messages=[question, call, result]))
    assert not after_tools.cache_hit  # the tool's result changes what the answer must be
    assert router.complete(Request(messages=[question])).cache_hit

    template = "Context: {ctx}\nQuestion: {q}\nAnswer:"
    first = Request(prompt=template.format(ctx="France", q="capital:x"), query="capital:x")
    other_context = Request(prompt=template.format(ctx="Spain", q="capital:x"), query="capital:x")
    same_context = Request(prompt=template.format(ctx="France", q="capital:x"), query="capital:x")
    router.complete(first)
    assert not router.complete(other_context).cache_hit
    assert router.complete(same_context).cache_hit


def test_a_cached_answer_is_served_only_in_its_own_context(topic_embedder, new_router):
    calls = []

    def answer(request: Request) -> str:
        calls.append(request)
        return f"answer {len(calls)}"

    router = new_router(
        [(ModelSpec("m"), CallableBackend(answer))],
        embedder=topic_embedder,
        random_state=0,
        background_updates=False,
    )
    question = {"role": "user", "content": "weather:paris"}
    tool_turns = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "1", "name": "get_weather", "args": {"city": "Paris"}}],
        },
        {"role": "tool", "content": "18C and sunny", "tool_call_id": "1"},
    ]
    after_tools = router.complete(Request(messages=[question, *tool_turns]))
    assert not after_tools.cache_hit
    # the answer written after the tool's result is not served to the question alone
    assert not router.complete(Request(messages=[question])).cache_hit
    system = {"role": "system", "content": "Answer in French."}
    earlier = [
        {"role": "user", "content": "weather:oslo"},
        {"role": "assistant", "content": "snow"},
    ]
    assert not router.complete(Request(messages=[system, question, *tool_turns])).cache_hit
    assert not router.complete(Request(messages=[*earlier, question, *tool_turns])).cache_hit
    assert len(calls) == 4  # every miss called the model
    again = router.complete(Request(messages=[question, *tool_turns]))
    assert again.cache_hit and again.text == after_tools.text and len(calls) == 4


class _StalledStream(BaseBackend):
    """Streams `before` chunks, then stalls until released (a provider that hangs)."""

    def __init__(self, before: list[str]) -> None:
        self.before = before
        self.release = threading.Event()

    def stream(self, request):
        yield from (StreamChunk(text) for text in self.before)
        self.release.wait(30)
        yield StreamChunk("", Completion("".join(self.before) + " late"))

    async def astream(self, request):
        for text in self.before:
            yield StreamChunk(text)
        await asyncio.sleep(30)
        yield StreamChunk("", Completion("late"))


def _stall_pool(before: list[str]):
    stalled = _StalledStream(before)
    pool = [
        (ModelSpec("stalled", 0.1, 0.1, timeout_s=0.3), stalled),
        (ModelSpec("ok", 5.0, 5.0), CallableBackend(lambda r: "fine")),
    ]
    return stalled, pool


def test_a_stream_silent_before_its_first_chunk_fails_over(topic_embedder):
    stalled, pool = _stall_pool([])
    router = SmartRouter(pool, embedder=topic_embedder, cache=False, random_state=0)
    try:
        for i in range(3):  # whichever is tried first, each answer comes from "ok"
            started = time.perf_counter()
            final = list(router.stream(f"q{i}:x"))[-1]
            assert final.text == "fine" and time.perf_counter() - started < 5
            final = asyncio.run(_last(router.astream(f"a{i}:x")))
            assert final.text == "fine"
        assert not router.health.available("stalled") or "stalled" not in final.tried
    finally:
        stalled.release.set()
        router.close()


def test_a_stream_that_stalls_after_its_text_went_out_raises_in_time(topic_embedder):
    stalled, pool = _stall_pool(["partial ", "answer"])
    router = SmartRouter(
        pool[:1], embedder=topic_embedder, cache=False, random_state=0, recheck=False
    )
    try:
        started = time.perf_counter()
        with pytest.raises(TimeoutError, match="sent nothing for 0.3 s"):
            list(router.stream("q:x"))
        with pytest.raises(TimeoutError, match="sent nothing for 0.3 s"):
            asyncio.run(_last(router.astream("a:x")))
        assert time.perf_counter() - started < 5
    finally:
        stalled.release.set()
        router.close()


async def _last(stream):
    last = None
    async for item in stream:
        last = item
    return last

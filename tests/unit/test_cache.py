"""Behaviour of the semantic cache: scope, decisions, adaptation, eviction, state, threads."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from sls_router import Request
from sls_router.cache import AdaptiveThreshold, SemanticCache, request_scope, scope_key
from sls_router.errors import InvalidInputError, SLSRouterError, StateError, UnknownEntryError


@pytest.fixture
def cache(topic_embedder, new_cache):
    return new_cache(topic_embedder)


def test_paraphrase_hits_and_unrelated_misses(cache):
    entry = cache.insert("weather:a", "sunny")
    cache.insert("stocks:a", "up")
    hit = cache.lookup("weather:b")
    assert hit.hit and hit.entry_id == entry and hit.answer == "sunny"
    assert hit.similarity > 0.9 and hit.margin > 0.5 and hit.ratio < 0.5
    miss = cache.lookup("football:a")
    assert not miss.hit and miss.reason in {"below_threshold", "ambiguous"}


def test_a_declined_hit_is_not_counted_as_served_and_keeps_its_candidate(cache):
    entry = cache.insert("weather:a", "sunny")
    hit = cache.lookup("weather:b")
    declined = cache.decline(hit, "rejected_by_verifier")
    assert not declined.hit and declined.reason == "rejected_by_verifier"
    assert declined.answer is None and declined.candidate_id == entry
    assert cache.stats().hits == 0 and cache.stats().lookups == 1
    assert cache.decline(declined, "again") is declined  # a miss stays as it is
    assert cache.stats().hits == 0
    # proved wrong (a verifier rejected the cached answer): learned, not counted
    wrong = cache.decline(cache.lookup("weather:b"), "rejected_by_verifier", proved_wrong=True)
    assert not wrong.hit and cache.stats().hits == cache.stats().wrong_hits == 0
    assert not cache.lookup("weather:b").hit  # the entry no longer serves this close


@pytest.mark.parametrize(
    "other",
    [
        dict(namespace="tenant-b"),
        dict(system="You are a pirate."),
        dict(history=[{"role": "user", "content": "earlier turn"}]),
        dict(params={"temperature": 0.7}),
    ],
)
def test_scope_isolation(cache, other):
    cache.insert("weather:a", "sunny", scope_key("tenant-a"))
    assert cache.lookup("weather:a", scope_key("tenant-a")).hit
    other = dict(other)  # the parameter is shared by both store runs
    scope = scope_key(other.pop("namespace", "tenant-a"), **other)
    result = cache.lookup("weather:a", scope)
    assert not result.hit and result.reason == "empty"


_QUESTION = {"role": "user", "content": "weather:paris"}
_TOOL_TURNS = [
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "1", "name": "get_weather", "args": {"city": "Paris"}}],
    },
    {"role": "tool", "content": "18C and sunny", "tool_call_id": "1"},
]


@pytest.mark.parametrize(
    "other",
    [
        [_QUESTION],  # the bare question: the answer written after the tool must not reach it
        [{"role": "system", "content": "Answer in French."}, _QUESTION, *_TOOL_TURNS],
        [
            {"role": "user", "content": "weather:oslo"},
            {"role": "assistant", "content": "Snow."},
            _QUESTION,
            *_TOOL_TURNS,
        ],
        [_QUESTION, _TOOL_TURNS[0], {**_TOOL_TURNS[1], "content": "25C and cloudy"}],
    ],
)
def test_request_scope_keeps_an_answer_in_its_own_context(cache, other):
    after_tools = Request(messages=[_QUESTION, *_TOOL_TURNS])
    cache.insert(after_tools.embed_text, "It is 18C and sunny.", request_scope(after_tools))
    elsewhere = Request(messages=other)
    assert elsewhere.embed_text == after_tools.embed_text  # only the scope tells them apart
    assert not cache.lookup(elsewhere.embed_text, request_scope(elsewhere)).hit
    same = Request(messages=[dict(m) for m in (_QUESTION, *_TOOL_TURNS)])
    assert request_scope(same) == request_scope(after_tools)
    assert cache.lookup(same.embed_text, request_scope(same)).hit  # the cache is on


def test_request_scope_is_one_function_wherever_imported():
    import sls_router
    import sls_router.router

    assert sls_router.request_scope is request_scope is sls_router.router.request_scope


def test_ambiguous_neighbourhood_is_not_served(topic_embedder, new_cache):
    cache = new_cache(topic_embedder)
    # two near-identical questions with different answers: neither may be served
    cache.insert("capital:france", "Paris")
    cache.insert("capital:spain", "Madrid")
    result = cache.lookup("capital:italy")
    assert not result.hit and result.reason == "ambiguous"
    assert result.similarity > 0.9 and result.margin < 0.05


def test_same_answer_neighbours_do_not_count_as_ambiguity(cache):
    cache.insert("greeting:a", "hello")
    cache.insert("greeting:b", "hello")
    assert cache.lookup("greeting:c").hit


def _region_hit_rate(cache: SemanticCache, topics: range, verdict: bool | None) -> float:
    hits = 0
    for t in topics:
        cache.insert(f"t{t}:origin", f"answer-{t}")
        result = cache.lookup(f"t{t}:paraphrase")
        hits += result.hit
        if verdict is not None:
            cache.observe(result, verdict)
    return hits / len(topics)


def test_wrong_verdicts_reduce_hits_and_right_ones_do_not(topic_embedder, new_cache):
    # synthetic texts: the thresholds alone decide (the contrast check has its own tests)
    wrong = new_cache(topic_embedder, refit_every=5, contrast=False)
    right = new_cache(topic_embedder, refit_every=5, contrast=False)
    assert _region_hit_rate(wrong, range(0, 20), None) == 1.0
    _region_hit_rate(wrong, range(20, 60), verdict=False)
    _region_hit_rate(right, range(20, 60), verdict=True)
    assert _region_hit_rate(wrong, range(60, 100), None) <= 0.1
    assert _region_hit_rate(right, range(60, 100), None) == 1.0
    assert wrong.threshold.similarity_ > right.threshold.similarity_


def test_wrong_hit_tightens_that_entry(cache):
    entry = cache.insert("weather:a", "sunny")
    first = cache.lookup("weather:b")
    assert first.hit
    cache.feedback(entry, False, similarity=first.similarity, ratio=first.ratio)
    again = cache.lookup("weather:b")
    assert not again.hit and again.reason == "entry_distrusted"
    assert cache.lookup("weather:a").hit  # its own question is still answered


def test_lucky_verdicts_never_let_an_entry_serve_below_the_global_threshold(
    topic_embedder, new_cache
):
    """A cached "Yes" is right for about half of all yes / no questions, however far
    they are: verdicts that it would have been right far away prove no equivalence."""
    cache = new_cache(topic_embedder, contrast=False)
    dim = topic_embedder.dim

    def at(cosine: float, axis: int) -> np.ndarray:  # a unit vector this close to axis 0
        vector = np.zeros(dim, dtype=np.float32)
        vector[0], vector[axis] = cosine, np.sqrt(1.0 - cosine * cosine)
        return vector

    cache.insert("q0", "Yes", vector=at(1.0, 1))
    for axis in range(1, 6):  # misses far away, where "Yes" happened to be right
        far = cache.lookup(f"q{axis}", vector=at(0.5, axis))
        assert not far.hit and far.reason == "below_threshold"
        cache.observe(far, True)
    assert not cache.lookup("q6", vector=at(0.52, 6)).hit
    near = cache.lookup("q7", vector=at(0.99, 7))
    assert near.hit and near.answer == "Yes"


def test_answer_marked_wrong_is_never_served_again(cache):
    scope = scope_key("t")
    entry = cache.insert("weather:a", "rainy", scope)
    cache.feedback(entry, False)
    assert not cache.lookup("weather:a", scope).hit
    assert cache.insert("weather:a", "rainy", scope) is None
    assert not cache.lookup("weather:a", scope).hit
    assert cache.insert("weather:a", "sunny", scope) is not None
    assert cache.lookup("weather:a", scope).answer == "sunny"


def test_discredited_entry_is_evicted(cache):
    entry = cache.insert("weather:a", "sunny")
    for sim in (0.95, 0.96, 0.97):
        cache.feedback(entry, False, similarity=sim, ratio=0.2)
    with pytest.raises(UnknownEntryError):
        cache.get(entry)
    assert not cache.lookup("weather:a").hit


def test_capacity_evicts_least_recently_used(topic_embedder, new_cache):
    cache = new_cache(topic_embedder, capacity=3)
    ids = [cache.insert(f"t{i}:a", f"a{i}") for i in range(3)]
    assert cache.lookup("t0:a").hit  # t0 becomes most recently used
    cache.insert("t3:a", "a3")
    assert len(cache) == 3
    assert not cache.lookup("t1:a").hit  # t1 was least recently used
    assert cache.lookup("t0:a").hit and cache.lookup("t2:a").hit
    assert cache.stats().evictions == 1
    with pytest.raises(UnknownEntryError):
        cache.get(ids[1])


def test_ttl_expires_entries(topic_embedder, new_cache):
    now = [1000.0]
    cache = new_cache(topic_embedder, ttl_s=60, clock=lambda: now[0])
    cache.insert("weather:a", "sunny")
    assert cache.lookup("weather:a").hit
    now[0] += 61
    assert not cache.lookup("weather:a").hit
    assert len(cache) == 0 and cache.stats().expirations == 1


def test_save_load_round_trip_gives_same_decisions(tmp_path, topic_embedder):
    cache = SemanticCache(topic_embedder, refit_every=5)
    for t in range(30):
        cache.insert(f"t{t}:o", f"ans{t}", scope_key("ns", system=f"s{t % 3}"))
    for t in range(30):
        r = cache.lookup(f"t{t}:p", scope_key("ns", system=f"s{t % 3}"))
        cache.observe(r, t % 4 != 0)
    cache.save(tmp_path / "c")
    loaded = SemanticCache.load(tmp_path / "c", topic_embedder)
    assert len(loaded) == len(cache)
    assert loaded.threshold.similarity_ == cache.threshold.similarity_
    assert loaded.stats() == cache.stats()
    for t in range(40):
        q, s = f"t{t}:x", scope_key("ns", system=f"s{t % 3}")
        a, b = cache.lookup(q, s), loaded.lookup(q, s)
        assert (a.hit, a.entry_id, a.answer) == (b.hit, b.entry_id, b.answer)
        assert a.similarity == pytest.approx(b.similarity, abs=1e-6)
    assert loaded.insert("new:a", "x") > max(cache.entries.ids())


def _snapshot(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_corrupted_state_is_refused_and_left_alone(tmp_path, topic_embedder):
    cache = SemanticCache(topic_embedder)
    cache.insert("weather:a", "sunny")
    cache.save(tmp_path)
    next(tmp_path.glob("entries.vectors-*.npy")).write_bytes(b"{not an array")
    before = _snapshot(tmp_path)
    with pytest.raises(StateError, match="corrupted"):
        SemanticCache.load(tmp_path, topic_embedder)
    assert _snapshot(tmp_path) == before


def test_future_version_is_refused(tmp_path, topic_embedder):
    cache = SemanticCache(topic_embedder)
    cache.insert("weather:a", "sunny")
    cache.save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["format_version"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    before = _snapshot(tmp_path)
    with pytest.raises(StateError, match="upgrade"):
        SemanticCache.load(tmp_path, topic_embedder)
    assert _snapshot(tmp_path) == before


def test_mismatched_vectors_are_refused(tmp_path, topic_embedder):
    cache = SemanticCache(topic_embedder)
    cache.insert("weather:a", "sunny")
    cache.save(tmp_path)
    vec_file = next(tmp_path.glob("entries.vectors-*.npy"))
    np.save(vec_file, np.zeros((5, 64), dtype=np.float32))
    with pytest.raises(StateError):
        SemanticCache.load(tmp_path, topic_embedder)


def test_saving_again_keeps_one_generation(tmp_path, topic_embedder):
    cache = SemanticCache(topic_embedder)
    cache.insert("weather:a", "sunny")
    cache.save(tmp_path)
    cache.insert("stocks:a", "up")
    cache.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entries.vectors-2.npy", "manifest.json"]
    assert len(SemanticCache.load(tmp_path, topic_embedder)) == 2


def test_eight_threads_lose_nothing(topic_embedder, new_cache):
    cache = new_cache(topic_embedder, capacity=10_000)
    per_thread = 150
    hits = [0] * 8

    def work(t: int) -> None:
        for i in range(per_thread):
            cache.insert(f"th{t}-{i}:a", f"ans-{t}-{i}", scope_key(f"ns{t}"))
            hits[t] += cache.lookup(f"th{t}-{i}:a", scope_key(f"ns{t}")).hit

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stats = cache.stats()
    assert stats.entries == 8 * per_thread == len(set(cache.entries.ids()))
    assert stats.lookups == 8 * per_thread
    assert stats.hits == sum(hits) == 8 * per_thread


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.lookup(""),
        lambda c: c.lookup(None),
        lambda c: c.lookup(42),
        lambda c: c.insert("q:a", 3),
        lambda c: c.lookup("q:a", vector=np.full(64, np.nan)),
        lambda c: c.lookup("q:a", vector=np.ones(10)),
        lambda c: c.lookup("q:a", vector=np.zeros(64)),
        lambda c: c.lookup("q:a", scope=""),
        lambda c: c.feedback(12345, True),
        lambda c: c.invalidate(12345),
        lambda c: c.feedback(1, "yes"),
        lambda c: c.feedback(1, True, similarity=float("nan")),
    ],
)
def test_bad_input_gets_clear_error_and_keeps_state(cache, call):
    cache.insert("keep:a", "kept")
    with pytest.raises(SLSRouterError) as info:
        call(cache)
    assert len(str(info.value)) > 20
    assert cache.lookup("keep:a").answer == "kept"


def test_bad_configuration_is_refused(topic_embedder):
    for kwargs in (
        dict(capacity=0),
        dict(ttl_s=-1),
        dict(max_wrong_rate=1.5),
        dict(max_wrong_rate=float("nan")),
        dict(neighbours=1),
    ):
        with pytest.raises(SLSRouterError):
            SemanticCache(topic_embedder, **kwargs)
    with pytest.raises(InvalidInputError):
        scope_key("")


def test_diverse_workload_switches_cache_off_quickly(topic_embedder, new_cache):
    """Every cross-request hit is wrong: after a few verdicts the cache stops serving."""
    cache = new_cache(topic_embedder, refit_every=1)
    served = []
    for t in range(60):
        cache.insert(f"t{t}:o", f"a{t}")
        r = cache.lookup(f"t{t}:p")
        served.append(r.hit)
        cache.observe(r, False)
    assert sum(served[:10]) >= 1  # the prior serves at first
    assert sum(served[20:]) == 0


def test_threshold_certifies_before_loosening():
    th = AdaptiveThreshold(0.02, similarity=0.9, ratio=0.5, min_observations=20)
    rng = np.random.default_rng(0)
    for _ in range(400):  # all right between 0.75 and 0.9 with modest ratios
        th.observe(float(rng.uniform(0.75, 0.9)), float(rng.uniform(0.2, 0.6)), True)
    th.fit()
    assert th.similarity_ <= 0.76 and th.ratio_ >= 0.6
    for _ in range(100):  # now wrong answers at 0.75-0.8
        th.observe(float(rng.uniform(0.75, 0.8)), 0.3, False)
    th.fit()
    assert th.similarity_ >= 0.8


def test_an_exact_duplicate_is_one_whichever_way_float32_rounds_its_self_similarity():
    from sls_router.cache import distance_ratio

    one_ulp_below = float(np.nextafter(np.float32(1.0), np.float32(0.0)))
    one_ulp_above = float(np.nextafter(np.float32(1.0), np.float32(2.0)))
    for self_similarity in (one_ulp_below, 1.0, one_ulp_above):
        for other in (self_similarity, 0.9):  # a duplicate of the same answer, or a neighbour
            assert distance_ratio(self_similarity, other) == 0.0
    assert distance_ratio(0.95, 0.95) == 1.0  # two different answers equally near: ambiguous
    assert 0.0 < distance_ratio(0.95, 0.90) < 1.0

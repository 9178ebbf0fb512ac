"""Hostile input: every bad request, score, price, name or state file gets a clear
SLSRouterError (or is handled correctly), and nothing stored before is lost."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sls_router import (
    CallableBackend,
    ConfigurationError,
    InvalidInputError,
    ModelSpec,
    Request,
    SLSRouterError,
    SmartRouter,
    StateError,
)
from sls_router.bench.stress_inputs import HUGE, RecordingEmbedder, bad_input_scenario
from sls_router.embeddings import MAX_TEXT_CHARS

FAST = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ANY_CHAR = st.characters(exclude_categories=())  # surrogates included
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 5),
    st.none(),
    st.booleans(),
    st.text(max_size=4),
    st.just([1]),
)


class Env:
    """A router holding some state; what its backends received."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.embedder = RecordingEmbedder()
        self.router = SmartRouter(
            self.pool(), embedder=self.embedder, random_state=0, background_updates=False
        )
        for i in range(8):
            response = self.router.complete(f"stored question {i} about the invoice")
            self.router.feedback(response.request_id, 1.0, source="label")
        self.served = self.router.complete("one more stored question")

    def answer(self, request: Request) -> str:
        self.received.append(request.text)
        return "answer: " + request.embed_text[:20]

    def pool(self) -> list:
        return [
            (ModelSpec("a", 1, 1), CallableBackend(self.answer)),
            (ModelSpec("b", 3, 3), CallableBackend(self.answer)),
        ]

    def snapshot(self) -> tuple:
        r = self.router
        return (
            frozenset(r.cache.entries.ids()),
            len(r.learner.outcomes),
            r.learner.updates.total_events,
        )

    def refused_cleanly(self, action, judges: bool = False) -> bool:
        """True when `action` raised an SLSRouterError and changed nothing stored. An
        accepted action must lose nothing stored, unless it `judges` (a wrong verdict
        removes the judged entry: that is its purpose)."""
        before = self.snapshot()
        try:
            action()
        except SLSRouterError:
            assert self.snapshot() == before
            return True
        after = self.snapshot()
        assert before[1] <= after[1] and (judges or before[0] <= after[0])
        return False


@pytest.fixture(scope="module")
def env() -> Env:
    """Shared by the examples of a module: building one per example would dominate."""
    return Env()


def _valid_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return bool(text.strip())


@FAST
@given(text=st.text(ANY_CHAR, max_size=60))
def test_any_prompt_is_answered_whole_or_refused_cleanly(env, text):
    sent = len(env.received)
    refused = env.refused_cleanly(lambda: env.router.complete(Request(prompt=text)))
    assert refused == (not _valid_text(text))
    if not refused and len(env.received) > sent:  # a fresh answer: the model got it all
        assert env.received[-1] == text


MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(("system", "user", "assistant", "tool", "hacker", None, 3))},
    optional={
        "content": st.one_of(
            st.text(ANY_CHAR, max_size=20),
            st.none(),
            st.integers(),
            st.just([{"type": "image_url", "image_url": "x"}]),
            st.just({"type": "text", "text": "hi"}),
            st.binary(max_size=4),
        ),
        "tool_call_id": st.text(max_size=3),
    },
)


@FAST
@given(messages=st.lists(MESSAGE, max_size=4))
def test_any_messages_are_answered_or_refused_cleanly(env, messages):
    def expected_ok() -> bool:
        contents = [m.get("content", "") for m in messages]
        return (
            bool(messages)
            and all(m["role"] in ("system", "user", "assistant", "tool") for m in messages)
            and all(c is None or isinstance(c, str) for c in contents)
            and all(_valid_text(c) or not (c or "").strip() for c in contents if isinstance(c, str))
            and all(m["role"] != "tool" or isinstance(m.get("tool_call_id"), str) for m in messages)
            and any(_valid_text(c) for c in contents if isinstance(c, str))
        )

    refused = env.refused_cleanly(lambda: env.router.complete(Request(messages=messages)))
    assert refused == (not expected_ok())


@FAST
@given(temperature=NUMBERS, extra=st.dictionaries(st.text(max_size=5), NUMBERS, max_size=3))
def test_generation_parameters_are_checked(env, temperature, extra):
    params = {**extra, "temperature": temperature}
    ok = temperature is None or (
        not isinstance(temperature, (bool, list))
        and _as_float(temperature) >= 0
        and math.isfinite(_as_float(temperature))
    )
    refused = env.refused_cleanly(
        lambda: env.router.complete(Request(prompt="how warm is it?", params=params))
    )
    assert refused == (not ok)


def _as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


@FAST
@given(
    score=NUMBERS,
    source=st.one_of(
        st.sampled_from(("user", "label", "verifier")), st.none(), st.integers(), st.just("")
    ),
)
def test_feedback_scores_and_sources_are_checked(env, score, source):
    number = _as_float(score) if isinstance(score, (int, float)) else math.nan
    ok = (
        score is not None
        and not isinstance(score, str)
        and 0 <= number <= 1
        and isinstance(source, str)
        and source != ""
    )
    refused = env.refused_cleanly(
        lambda: env.router.feedback(env.served.request_id, score, source), judges=True
    )
    assert refused == (not ok)


@FAST
@given(
    request_id=st.one_of(st.text(ANY_CHAR, max_size=40), st.none(), st.integers()),
    namespace=st.one_of(st.none(), st.text(min_size=1, max_size=5)),
)
def test_unknown_or_foreign_request_ids_are_refused(env, request_id, namespace):
    assume(request_id != env.served.request_id)
    assert env.refused_cleanly(lambda: env.router.feedback(request_id, 0.0, namespace=namespace))
    assert env.refused_cleanly(
        lambda: env.router.feedback(env.served.request_id, 0.0, namespace="another-tenant")
    )


@FAST
@given(
    prices=st.tuples(
        *[
            st.one_of(
                st.floats(allow_nan=True, allow_infinity=True),
                st.integers(-3, 3),
                st.text(max_size=2),
            )
        ]
        * 2
    ),
    name=st.text(ANY_CHAR, max_size=12),
)
def test_model_specs_refuse_bad_prices_and_names(prices, name):
    ok = name.strip() != "" and all(
        isinstance(p, (int, float)) and math.isfinite(p) and p >= 0 for p in prices
    )
    try:
        spec = ModelSpec(name, *prices)
    except ConfigurationError:
        assert not ok
        return
    assert ok and spec.cost(1000, 1000) >= 0


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "image_url", "image_url": {"url": "x.png"}}],
        {"type": "input_audio"},
        b"bytes",
        42,
        3.5,
        ("a", "b"),
    ],
)
def test_unsupported_content_types_are_refused(content):
    with pytest.raises(InvalidInputError, match="only text content"):
        Request(messages=[{"role": "user", "content": content}])


def test_huge_prompt_is_sent_whole_but_embedded_truncated():
    env = Env()
    lengths = len(env.embedder.lengths)
    response = env.router.complete(HUGE)
    assert env.received[-1] == HUGE and len(HUGE) == 1_000_000
    assert max(env.embedder.lengths[lengths:]) <= MAX_TEXT_CHARS  # even a user's embedder
    entry = env.router.cache.get(max(env.router.cache.entries.ids()))
    assert len(entry.text) <= MAX_TEXT_CHARS  # the cache keeps only what it embedded
    again = env.router.complete(HUGE)
    assert again.cache_hit and again.text == response.text


def test_unknown_model_names_in_a_saved_state_do_not_break_loading(tmp_path):
    env = Env()
    env.router.save(tmp_path)
    renamed = [
        (ModelSpec("x", 1, 1), CallableBackend(env.answer)),
        (ModelSpec("y", 2, 2), CallableBackend(env.answer)),
    ]
    loaded = SmartRouter.load(tmp_path, renamed)
    response = loaded.complete("a brand new question on shipping")
    assert response.model in ("x", "y") and response.text.startswith("answer: ")
    loaded.feedback(response.request_id, 1.0)


def _state(tmp_path: Path) -> Path:
    env = Env()
    env.router.save(tmp_path / "good")
    return tmp_path / "good"


_COUNTER = itertools.count()


def _digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # garbled floats may be huge
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_truncated_or_garbled_state_files_give_state_error_and_stay_untouched(tmp_path, data):
    good = tmp_path / "good"
    if not good.exists():
        _state(tmp_path)
    files = sorted(p.relative_to(good) for p in good.rglob("*") if p.is_file())
    target_file = data.draw(st.sampled_from(files))
    broken = tmp_path / f"broken-{next(_COUNTER)}"
    shutil.copytree(good, broken)
    raw = (broken / target_file).read_bytes()
    how = data.draw(st.sampled_from(("truncate", "overwrite")))
    if how == "truncate":
        cut = data.draw(st.integers(0, len(raw) - 1))
        (broken / target_file).write_bytes(raw[:cut])
    else:
        at = data.draw(st.integers(0, len(raw) - 1))
        junk = data.draw(st.binary(min_size=1, max_size=8))
        (broken / target_file).write_bytes(raw[:at] + junk + raw[at + len(junk) :])
    before = _digest(broken)
    try:
        SmartRouter.load(broken, Env().pool())
    except StateError:
        pass
    else:  # an overwrite may leave valid data (a digit for a digit); a cut never does
        assert how == "overwrite"
    assert _digest(broken) == before  # a failed (or any) load writes nothing
    shutil.rmtree(broken)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_state_json_of_the_wrong_shape_gives_state_error(tmp_path, data):
    good = tmp_path / "good"
    if not good.exists():
        _state(tmp_path)
    where = data.draw(
        st.sampled_from(
            [
                (),
                ("meta",),
                ("meta", "learner"),
                ("meta", "cache"),
                ("meta", "learner", "outcomes"),
                ("meta", "options"),
            ]
        )
    )
    broken = tmp_path / f"broken-{next(_COUNTER)}"
    shutil.copytree(good, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    doc = manifest
    for key in where:
        doc = doc[key]
    doc[data.draw(st.sampled_from(sorted(doc)))] = data.draw(JSON)
    (broken / "manifest.json").write_text(json.dumps(manifest))
    before = _digest(broken)
    with contextlib.suppress(StateError):
        SmartRouter.load(broken, Env().pool())
    assert _digest(broken) == before
    shutil.rmtree(broken)


def test_state_from_a_newer_version_is_refused_untouched(tmp_path):
    state = _state(tmp_path)
    path = state / "manifest.json"
    path.write_text(path.read_text().replace('"format_version":2', '"format_version":3'))
    before = _digest(state)
    with pytest.raises(StateError, match="version"):
        SmartRouter.load(state, Env().pool())
    assert _digest(state) == before


def test_lone_surrogates_are_refused_by_the_embedders_too():
    embedder = RecordingEmbedder().base
    with pytest.raises(InvalidInputError, match="unicode"):
        embedder.encode(["fine", "broken \ud800"])
    assert np.isfinite(embedder.encode(["fine \U0001f600"])).all()


def test_the_fixed_hostile_list_of_stress_all_clear():
    result = bad_input_scenario()
    assert result["tried"] >= 50
    assert result["unclear"] == {} and result["clear"] == result["tried"]
    assert result["stored_state_intact"]

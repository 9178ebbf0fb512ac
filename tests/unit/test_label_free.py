"""Learning without labels: agreement between models, trust in each label-free source
calibrated from ground truth, second opinions within a spend cap, and cache entries
confirmed only by evidence that is trusted."""

from __future__ import annotations

import dataclasses
import threading
import time
import zlib

import numpy as np
import pytest

from sls_router import CallableBackend, ConfigurationError, ModelSpec, Request, SmartRouter
from sls_router.agreement import agree, few_answers, normalise
from sls_router.trust import SourceTrust, right_after_disagreeing
from sls_router.types import Completion, Usage


# -- agreement ----------------------------------------------------------------------
def test_log_templates_agree_whatever_their_spacing_and_runs_of_wildcards():
    assert agree("logparsing/HDFS", "Got  block <*> <*>", "Got block <*>")
    assert not agree("logparsing/HDFS", "Got block <*>", "Got file <*>")


def test_labels_agree_by_their_first_word_case_and_punctuation_aside():
    assert agree("classification/overruling", "Yes.", "yes, it overrules")
    assert not agree("classification/overruling", "No", "Yes")


def test_only_labels_are_answers_among_a_few():
    assert few_answers("classification/overruling") and few_answers("classification")
    assert not few_answers("logparsing/HDFS") and not few_answers(None)


def test_code_cannot_be_compared_as_text_and_empty_answers_say_nothing():
    assert normalise("codegen/humaneval", "def f(): return 1") is None
    assert agree("codegen/humaneval", "def f(): return 1", "def f(): return 1") is None
    assert agree("chat/x", "", "anything") is None
    assert agree(None, "Paris is the capital", "paris  is the CAPITAL")


def test_a_huge_answer_is_compared_in_bounded_time():
    huge = "<*> " * 500_000
    assert agree("logparsing/x", huge, huge + "tail") is True  # only the head is compared


# -- trust --------------------------------------------------------------------------
@pytest.mark.parametrize("precision", [0.3, 0.7, 0.95])
def test_trust_converges_to_the_true_precision_of_a_source(precision):
    rng = np.random.default_rng(0)
    trust = SourceTrust()
    for _ in range(4000):
        trust.observe("judge", "t", 1.0, answer_right=bool(rng.random() < precision))
    assert trust.precision("judge", "t", True) == pytest.approx(precision, abs=0.03)
    assert trust.p_right("judge", "t", 1.0) == pytest.approx(precision, abs=0.03)
    assert trust.precision("judge", "other task", True) == 0.75  # the prior, untouched


def test_without_evidence_the_priors_speak_and_the_truth_is_taken_as_given():
    trust = SourceTrust()
    assert trust.p_right("verifier", "t", 1.0) == 0.5  # a pass proves nothing yet
    assert trust.p_right("verifier", "t", 0.0) == pytest.approx(0.1)  # a failure nearly does
    assert trust.p_right("label", "t", 0.0) == 0.0
    assert trust.p_right("thumbs", "t", 1.0) == 1.0  # a user's own source is the truth


def test_trust_is_saved_as_plain_data_and_refuses_garbled_counts():
    trust = SourceTrust()
    trust.observe("agreement", "t", 1.0, answer_right=False)
    again = SourceTrust.from_state(trust.to_state())
    assert again.precision("agreement", "t", True) == trust.precision("agreement", "t", True)
    with pytest.raises(ValueError):
        SourceTrust.from_state([["agreement", "t", True, -1.0, 0.0]])


@pytest.mark.parametrize(("q", "other"), [(0.9, 0.5), (0.7, 0.6), (0.5, 0.5), (0.3, 0.8)])
def test_a_disagreement_between_open_answers_says_one_is_wrong_not_which(q, other):
    mine, theirs = right_after_disagreeing(q, other), right_after_disagreeing(other, q)
    # by Bayes over the three cases a disagreement leaves (two right answers agree, two
    # wrong open answers do not)
    only_me, only_them, neither = q * (1 - other), (1 - q) * other, (1 - q) * (1 - other)
    assert mine == pytest.approx(only_me / (only_me + only_them + neither))
    assert mine + theirs <= 1.0  # at most one of them is right
    assert (mine > theirs) == (q > other) and (mine == pytest.approx(theirs)) == (q == other)
    assert mine < q  # a disagreement is evidence against each answer
    assert right_after_disagreeing(1.0, other) == 1.0 and right_after_disagreeing(q, 1.0) == 0.0


def test_a_probability_is_trained_as_it_is_once_the_source_is_measured():
    trust = SourceTrust()
    trust.observe("agreement", "t", 0.0, answer_right=True)
    trust.observe("agreement", "t", 1.0, answer_right=True)
    assert trust.training_score("agreement", "t", 1.0) == pytest.approx(3 / 4)
    assert trust.training_score("agreement", "t", 0.3) == 0.3
    # a verifier's own score between 0 and 1 is still a verdict, calibrated once measured
    trust.observe("verifier", "t", 0.7, answer_right=True)
    assert trust.training_score("verifier", "t", 0.7) == pytest.approx(2 / 3)


# -- the router ---------------------------------------------------------------------
def _model(name: str, price: float, answer):
    calls: list[str] = []

    def fn(request: Request) -> Completion:
        calls.append(request.id)
        return Completion(answer(request), Usage(100, 20))

    backend = CallableBackend(fn)
    backend.calls = calls  # type: ignore[attr-defined]
    return ModelSpec(name, price, price), backend


def _router(pool, **options) -> SmartRouter:
    options.setdefault("verifier", lambda request, answer: 1.0)
    return SmartRouter(
        pool, embedder="hashing", background_updates=False, random_state=0, **options
    )


def _line(i: int) -> Request:
    return Request(prompt="disk quota exceeded for user alice", id=f"r{i}")


def test_one_model_repeating_itself_never_confirms_its_cached_answer():
    """The same model gives the same (possibly wrong) template on every equivalent line:
    with confirm_precision that is no second opinion, so its answers wait unserved (by
    default, as before, any later answer that agrees confirms it)."""
    pool = [_model("only", 0.1, lambda r: "disk quota exceeded <*>")]
    default = _router(pool)
    assert [default.complete(_line(i)).cache_hit for i in range(3)] == [False, False, True]
    router = _router(pool, confirm_precision=0.9)
    served = [router.complete(_line(i)) for i in range(12)]
    assert not any(r.cache_hit for r in served)
    assert router.cache is not None and router.cache.stats().hits == 0


@pytest.mark.parametrize("verified", [False, True])
def test_second_opinions_are_asked_for_answers_no_verifier_judged_within_the_cap(verified):
    """Beside a verifier's verdict a second opinion is not asked: the verdict gives the
    predictors their row, and the cache waits for an independent answer anyway."""
    pool = [_model(n, 1.0, lambda r: "disk quota exceeded <*>") for n in "abc"]
    verifier = (lambda request, answer: 1.0) if verified else None
    router = _router(pool, second_opinion=1.0, confirm_precision=0.75, verifier=verifier)
    first = router.complete(_line(0))
    router.flush()
    asked = sum(len(b.calls) for _, b in pool) - 1
    assert not first.cache_hit
    assert asked == 0 if verified else asked >= 1  # off the request path
    scheduler = router.learner.scheduler
    assert scheduler.explored_usd <= scheduler.spent_total_usd
    assert scheduler.requests == 1  # a second opinion serves no request


def test_second_opinions_stop_at_the_spend_cap():
    pool = [_model(n, 1.0, lambda r, n=n: f"{n} says {r.id}") for n in "abcd"]
    router = _router(pool, second_opinion=1.0, explore_share=0.1, cache=False)
    for i in range(300):
        router.complete(Request(prompt=f"distinct question number {i} on topic {i * 31}"))
        router.flush()
    scheduler = router.learner.scheduler
    spend, explored = scheduler.spent_total_usd, scheduler.explored_usd
    warmup = scheduler.explore_warmup * max(spec.cost(100, 20) for spec, _ in pool)
    reuse = 1.0  # nothing repeats here, no cache
    assert explored <= 0.1 * reuse * spend + warmup + max(spec.cost(100, 20) for spec, _ in pool)
    assert explored > 0  # but some were asked


def test_traffic_that_repeats_asks_fewer_second_opinions_for_what_the_cache_keeps():
    """Three requests in four repeat one line, which the cache answers; the fresh
    answers to the other lines get second opinions about as often as the cache misses,
    since a repeat would bring an independent answer for free. Without a cache, every
    fresh answer gets one."""
    words = np.random.default_rng(0).choice(["cpu", "disk", "net", "fan", "ram"], (400, 6))

    def asked(cache: bool) -> tuple[int, int]:
        pool = [_model(n, 1.0, lambda r: f"template {r.prompt}") for n in "ab"]
        router = _router(pool, second_opinion=1.0, cache=cache, explore_share=1.0, verifier=None)
        fresh = 0
        for i in range(400):
            line = "disk quota exceeded" if i % 4 else f"{' '.join(words[i])} event {i}"
            fresh += not router.complete(Request(prompt=line, id=f"r{i}")).cache_hit
            router.flush()
        return sum(len(b.calls) for _, b in pool) - fresh, fresh

    with_cache, fresh = asked(cache=True)
    without_cache, all_fresh = asked(cache=False)
    assert all_fresh == 400 and without_cache == 400  # one second opinion per answer
    assert 100 <= fresh < 120  # the distinct lines, and the repeated line's first few
    assert 0.1 * fresh <= with_cache <= 0.5 * fresh


def test_a_source_right_half_the_time_cannot_confirm_cache_entries():
    """Labels show that the models' agreements are right only half the time: agreement
    then stops confirming entries, while ground truth still teaches the cache."""
    answers = {}

    def shared(request: Request) -> str:
        return answers.setdefault(request.id, f"template {zlib.crc32(request.id.encode()) % 2}")

    pool = [_model("a", 1.0, shared), _model("b", 1.0, shared)]
    router = _router(pool, second_opinion=1.0, confirm_precision=0.8, cache=False, verifier=None)
    features = np.zeros(0)
    for i in range(400):
        request = Request(prompt=f"question {i} on subject {i * 17}", task="t", id=f"q{i}")
        response = router.complete(request)
        router.flush()
        router.feedback(response.request_id, float(i % 2 == 0), source="label")
    from sls_router.learning import trust_key
    from sls_router.routing import query_features

    features = query_features("question", "t")
    precision = router.learner.trust.precision("agreement", trust_key(features), True)
    assert precision == pytest.approx(0.5, abs=0.08)
    assert router.learner.p_agreed(features, 0.5, 3) < 0.8


@pytest.mark.parametrize("source", ["verifier", "agreement"])
def test_label_free_verdicts_reach_on_feedback(source):
    seen = []
    pool = [_model("a", 1.0, lambda r: "x"), _model("b", 1.0, lambda r: "x")]
    router = _router(
        pool,
        cache=False,
        second_opinion=1.0,
        verifier=(lambda request, answer: 1.0) if source == "verifier" else None,
        on_feedback=lambda *event: seen.append(event),
    )
    response = router.complete(Request(prompt="hello there", id="h1"))
    router.flush()
    assert [event[3] for event in seen] == [source]  # no second opinion beside a verifier
    assert seen[0][:2] == ("h1", response.model)


def test_label_free_verdicts_become_calibrated_training_scores():
    pool = [_model("a", 1.0, lambda r: "x"), _model("b", 1.0, lambda r: "x")]
    router = _router(pool, cache=False)
    response = router.complete(Request(prompt="hello there", id="h1"))
    # an unmeasured verifier's pass is taught as it says; once a label measured such
    # passes (prior 1 right 1 wrong, plus this right one), as how often they are right,
    # older rows included
    rows = router.learner.outcomes
    verifier_rows = [i for i, s in enumerate(rows.sources) if s == "verifier"]
    calibrated = router.learner._training_arrays()[3]
    assert verifier_rows and all(calibrated[i] == 1.0 for i in verifier_rows)
    router.feedback(response.request_id, 1.0, source="label")
    calibrated = router.learner._training_arrays()[3]
    assert all(calibrated[i] == pytest.approx(2 / 3) for i in verifier_rows)


def test_bad_options_are_refused_with_what_to_do():
    pool = [_model("a", 1.0, lambda r: "x")]
    with pytest.raises(ConfigurationError, match="second_opinion"):
        _router(pool, second_opinion=1.5)
    with pytest.raises(ConfigurationError, match="confirm_precision"):
        _router(pool, confirm_precision=0.2)


def test_a_cached_answer_waiting_for_confirmation_sends_the_next_request_elsewhere():
    """An unconfirmed answer of model a: the next equivalent request goes to b, whose
    answer serves it and, agreeing, counts toward confirming a's."""
    pool = [
        _model("a", 0.1, lambda r: "disk quota exceeded <*>"),
        _model("b", 1.0, lambda r: "disk quota exceeded <*>"),
    ]
    router = _router(pool, confirm_precision=0.6)
    first = router.complete(_line(0))
    second = router.complete(_line(1))
    assert first.model == "a" and not second.cache_hit and second.model == "b"
    assert router.complete(_line(2)).cache_hit  # a pass and one agreement: 2/3 >= 0.6


# -- tool calls checked against their tool's schema ------------------------------------
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_a_tool_call_that_breaks_its_schema_or_names_no_bound_tool_is_a_failure():
    from sls_router.verifiers import MAX_TOOL_ARGS_CHARS, tool_call_verdict

    ok = [{"id": "1", "name": "weather", "args": {"city": "Oslo"}}]
    assert tool_call_verdict([WEATHER], ok) is None  # fitting a schema proves little
    assert tool_call_verdict([WEATHER], [{"name": "weather", "args": {"town": 1}}]) == 0.0
    assert tool_call_verdict([WEATHER], [{"name": "stocks", "args": {}}]) == 0.0
    huge = [{"name": "weather", "args": {"city": 5, "pad": "x" * MAX_TOOL_ARGS_CHARS}}]
    assert tool_call_verdict([WEATHER], huge) is None  # too big to check: not judged
    broken = {"type": "function", "function": {"name": "weather", "parameters": {"type": 7}}}
    assert tool_call_verdict([broken], ok) is None  # the user's schema, not the model's fault


def test_an_invalid_tool_call_is_feedback_and_the_next_tool_model_is_tried():
    def calls(args):
        def fn(request: Request) -> Completion:
            return Completion(
                "", Usage(10, 5), tool_calls=[{"id": "c", "name": "weather", "args": args}]
            )

        return fn

    pool = [
        (ModelSpec("sloppy", 0.1, 0.1, supports_tools=True), CallableBackend(calls({"town": 3}))),
        (
            ModelSpec("careful", 5.0, 5.0, supports_tools=True),
            CallableBackend(calls({"city": "Oslo"})),
        ),
    ]
    seen = []
    router = SmartRouter(
        pool,
        embedder="hashing",
        background_updates=False,
        random_state=0,
        default_model="sloppy",
        on_feedback=lambda *event: seen.append(event),
    )
    response = router.complete(Request(prompt="weather in Oslo?", tools=[WEATHER]))
    assert tuple(response.tried) == ("sloppy", "careful") and response.model == "careful"
    assert response.tool_calls[0]["args"] == {"city": "Oslo"}
    rows = router.learner.outcomes
    assert ("sloppy", 0.0, "tool_schema") in zip(rows.models, rows.scores, rows.sources)
    assert seen == []  # the served call fit its schema: no verdict on it


def test_a_second_opinion_that_hangs_is_given_up_after_its_timeout():
    """Off the request path a provider may hang too: `flush()` waits for the model's
    timeout, not for the provider."""
    release = threading.Event()
    spec, backend = _model("slow", 1.0, lambda r: "x" if release.wait(30) else "late")
    pool = [_model("fast", 0.1, lambda r: "x"), (dataclasses.replace(spec, timeout_s=0.3), backend)]
    router = _router(pool, second_opinion=1.0, cache=False, verifier=None)
    try:
        response = router.complete(Request(prompt="hello there", id="h1"))
        started = time.perf_counter()
        router.flush()
        assert time.perf_counter() - started < 5
        assert response.model == "fast" and response.text == "x"
        assert backend.calls == ["h1"]  # it was asked, and given up on
    finally:
        release.set()
        router.close()


def test_learning_work_beyond_the_backlog_bound_is_skipped():
    release = threading.Event()
    spec, slow = _model("slow", 1.0, lambda r: "x" if release.wait(30) else "late")
    pool = [_model("fast", 0.1, lambda r: "x"), (spec, slow)]
    router = _router(pool, second_opinion=1.0, verifier=None)
    router.off_path.max_queued = 1
    try:
        router.complete(Request(prompt="first question", id="q1"))
        router.complete(Request(prompt="another question entirely", id="q2"))
        time.sleep(0.2)
        assert slow.calls == ["q1"]  # q2's second opinion found the backlog full
    finally:
        release.set()
        router.flush()
        router.close()


def _taught_after_disagreeing(task: str) -> dict[str, list[float]]:
    """Labels first teach that "strong" is right and "weak" wrong on these requests;
    then, without labels, the two disagree on every request: what each model learns."""
    pool = [_model("strong", 1.0, lambda r: "template a"), _model("weak", 0.5, lambda r: "b")]
    router = _router(pool, second_opinion=1.0, cache=False, explore_share=1.0, verifier=None)
    for i in range(40):
        response = router.complete(Request(prompt=f"line {i} failed", task=task, id=f"l{i}"))
        router.feedback(response.request_id, float(response.model == "strong"), source="label")
    router.flush()
    rows = router.learner.outcomes
    start = len(rows.sources)
    for i in range(40, 60):
        router.complete(Request(prompt=f"line {i} failed", task=task, id=f"l{i}"))
        router.flush()
    taught = zip(rows.models[start:], rows.scores[start:], rows.sources[start:])
    learned = [(model, score) for model, score, source in taught if source == "agreement"]
    return {model: [s for m, s in learned if m == model] for model in ("strong", "weak")}


def test_a_strong_model_that_a_weak_one_disagrees_with_is_not_taught_it_was_wrong():
    scores = _taught_after_disagreeing("logparsing/t")
    assert scores["strong"] and scores["weak"]
    assert np.mean(scores["strong"]) > 0.5 > np.mean(scores["weak"])


def test_on_a_label_task_a_disagreement_is_taught_as_it_says():
    scores = _taught_after_disagreeing("classification/t")
    assert scores["strong"] and scores["weak"]
    assert set(scores["strong"]) == set(scores["weak"]) == {0.0}

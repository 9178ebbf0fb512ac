"""A user asking the same question again in a thread soon after an answer: feedback of
source "reask" against that answer, and not for agent steps, other threads, opposite
questions, follow-ups on the topic or questions asked long after."""

from __future__ import annotations

import numpy as np
import pytest

from sls_router import CallableBackend, ConfigurationError, ModelSpec, Request, SmartRouter
from sls_router.cache import ContrastCheck
from sls_router.errors import InvalidInputError
from sls_router.reask import ReaskDetector
from sls_router.types import Completion, Usage


def _unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _ask(text: str, thread: str | None = "t1", **options) -> Request:
    return Request(prompt=text, thread=thread, **options)


def test_the_same_question_again_in_the_thread_soon_after_is_a_reask():
    clock = _Clock()
    detector = ReaskDetector(clock=clock)
    first = _ask("How do I reset my password?")
    assert detector.observe(first, _unit(1, 0, 0)) is None
    clock.now = 30
    again = _ask("How can I reset my password?")
    assert detector.observe(again, _unit(1, 0.1, 0)) == first.id
    # the re-ask is now the thread's last request: a third ask is a re-ask of it
    clock.now = 40
    assert detector.observe(_ask("reset my password please"), _unit(1, 0.05, 0)) == again.id


def test_other_threads_namespaces_and_requests_without_a_thread_are_not_reasks():
    detector = ReaskDetector(clock=_Clock())
    vector = _unit(1, 0, 0)
    detector.observe(_ask("What is the VAT rate?"), vector)
    assert detector.observe(_ask("What is the VAT rate?", thread="t2"), vector) is None
    assert detector.observe(_ask("What is the VAT rate?", namespace="other"), vector) is None
    assert detector.observe(_ask("What is the VAT rate?", thread=None), vector) is None


def test_an_agent_step_on_the_same_question_is_not_a_reask():
    detector = ReaskDetector(clock=_Clock())
    question = {"role": "user", "content": "What is the weather in Paris?"}
    detector.observe(Request(messages=[question], thread="t1"), _unit(1, 0))
    step = Request(
        messages=[
            question,
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "c1", "name": "weather", "args": {"city": "Paris"}}],
            },
            {"role": "tool", "content": "18C, sunny", "tool_call_id": "c1"},
        ],
        thread="t1",
    )
    assert step.embed_text == question["content"]  # the same text is embedded...
    assert detector.observe(step, _unit(1, 0)) is None  # ...but it is no new user turn


def test_a_follow_up_an_opposite_or_a_late_question_is_not_a_reask():
    clock = _Clock()
    detector = ReaskDetector(clock=clock, contrast=ContrastCheck(token_vectors=None))
    detector.observe(_ask("How do I turn on dark mode?"), _unit(1, 0, 0))
    clock.now = 10
    assert detector.observe(_ask("How do I turn off dark mode?"), _unit(1, 0.05, 0)) is None
    clock.now = 20
    follow_up = _ask("And does it save battery?")
    assert detector.observe(follow_up, _unit(1, 1, 0)) is None  # cosine 0.71
    clock.now = 20 + detector.window_s + 1
    assert detector.observe(_ask("And does it save battery?"), _unit(1, 1, 0)) is None


def _router(answers, **options) -> tuple[SmartRouter, list]:
    seen: list = []

    def answer(request: Request) -> Completion:
        return Completion(answers.pop(0), Usage(10, 5))

    router = SmartRouter(
        [(ModelSpec("m", 1.0, 1.0), CallableBackend(answer))],
        embedder="hashing",
        background_updates=False,
        random_state=0,
        on_feedback=lambda *event: seen.append(event),
        **options,
    )
    return router, seen


def test_the_router_learns_from_a_reask_and_does_not_serve_that_answer_again():
    router, seen = _router(["a first answer", "a better answer"])
    first = router.complete(_ask("What is the capital of Australia?"))
    again = router.complete(_ask("What is the capital of Australia?"))
    assert [(e[0], e[3], e[4]) for e in seen] == [(first.request_id, "reask", 0.0)]
    assert not again.cache_hit and again.text == "a better answer"  # a fresh answer
    # the same question in another thread is served from the cache, as before
    other = router.complete(_ask("What is the capital of Australia?", thread="t9"))
    assert other.cache_hit and other.text == "a better answer"
    assert len(seen) == 1


def test_a_reask_goes_to_another_model_unless_the_request_names_one():
    def backend(name: str) -> CallableBackend:
        return CallableBackend(lambda request: Completion(f"{name} says so", Usage(10, 5)))

    router = SmartRouter(
        [(ModelSpec(name, 1.0, 1.0), backend(name)) for name in ("a", "b")],
        embedder="hashing",
        background_updates=False,
        random_state=0,
    )
    question = "What is the capital of Australia?"
    for seed_thread in ("t1", "t2", "t3"):  # whichever model answers first
        first = router.complete(_ask(question, thread=seed_thread))
        again = router.complete(_ask(question, thread=seed_thread))
        assert not again.cache_hit and again.model != first.model
        pinned = router.complete(_ask(question, thread=seed_thread, model=again.model))
        assert pinned.model == again.model  # a named model is the user's choice


def test_reasks_can_be_switched_off_and_bad_threads_are_refused():
    router, seen = _router(["one", "two"], reask_window_s=0, cache=False)
    router.complete(_ask("What is the capital of Australia?"))
    router.complete(_ask("What is the capital of Australia?"))
    assert seen == []
    with pytest.raises(ConfigurationError, match="reask_window_s"):
        _router([], reask_window_s=-1)
    with pytest.raises(InvalidInputError, match="thread"):
        Request(prompt="x", thread="")

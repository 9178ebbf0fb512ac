"""EmbeddingBatcher: a lone call runs at once on its own thread, calls that arrive while
every slot is busy go together into the next batch, each caller gets its own rows, and
an error reaches every caller of its batch without losing a slot."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest

from sls_router.embedding_batcher import EmbeddingBatcher
from sls_router.errors import ConfigurationError

SAFETY_S = 30  # only so a broken batcher fails instead of hanging; nothing is timed


def rows(texts: list[str]) -> np.ndarray:
    """One distinct row per text, so a caller given another's rows is caught."""
    return np.array([[len(t), sum(map(ord, t))] for t in texts], dtype=np.float32)


class Gated:
    """An encode that records its batches and, for texts in `hold`, waits for `gate`."""

    def __init__(self, hold: tuple[str, ...] = (), fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.threads: list[int] = []
        self.hold, self.fail_on = hold, fail_on
        self.entered = threading.Semaphore(0)
        self.gate = threading.Event()

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        self.threads.append(threading.get_ident())
        if any(t in self.hold for t in texts):
            self.entered.release()
            assert self.gate.wait(SAFETY_S), "the test never opened the gate"
        if self.fail_on is not None and self.fail_on in texts:
            raise ValueError(f"bad text {self.fail_on!r}")
        return rows(texts)


def until(condition: Callable[[], bool]) -> None:
    """Wait for another thread to reach a state (a handshake, not a timing check)."""
    done = threading.Event()
    for _ in range(SAFETY_S * 1000):
        if condition():
            return
        done.wait(0.001)
    raise AssertionError("the other threads never got there")


def in_threads(batcher: EmbeddingBatcher, texts: list[str]) -> tuple[list, list[threading.Thread]]:
    out: list = [None] * len(texts)

    def call(i: int) -> None:
        try:
            out[i] = batcher.encode([texts[i]])
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(texts))]
    return out, threads


def behind_a_held_call(
    batcher: EmbeddingBatcher,
    encode: Gated,
    texts: list[str],
    while_queued: Callable[[], object] = lambda: None,
) -> list:
    """Run texts[0] until it holds the model, queue the others behind it, call
    `while_queued`, then release the model and return every caller's result."""
    out, threads = in_threads(batcher, texts)
    threads[0].start()
    assert encode.entered.acquire(timeout=SAFETY_S)
    for t in threads[1:]:
        t.start()
    until(lambda: len(batcher._queue) == len(texts) - 1)
    while_queued()
    encode.gate.set()
    for t in threads:
        t.join(SAFETY_S)
    return out


def test_a_lone_call_runs_at_once_on_its_own_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    encode = Gated()
    batcher = EmbeddingBatcher(encode, slots=1)

    def no_waiting(*args: object, **kwargs: object) -> bool:
        raise AssertionError("a lone call waited")

    monkeypatch.setattr(threading.Event, "wait", no_waiting)
    for text in ("first", "second"):
        np.testing.assert_array_equal(batcher.encode([text]), rows([text]))
    assert encode.batches == [["first"], ["second"]]
    assert encode.threads == [threading.get_ident()] * 2


def test_calls_arriving_during_a_batch_go_together_into_the_next() -> None:
    encode = Gated(hold=("a",))
    batcher = EmbeddingBatcher(encode, slots=1)
    texts = ["a", "bb", "ccc", "dddd"]
    seen: list = []
    out = behind_a_held_call(
        batcher, encode, texts, lambda: seen.append([list(b) for b in encode.batches])
    )
    assert seen == [[["a"]]]  # nobody else ran while the slot was busy
    assert encode.batches[0] == ["a"] and sorted(encode.batches[1]) == ["bb", "ccc", "dddd"]
    assert len(encode.batches) == 2
    for text, got in zip(texts, out):
        np.testing.assert_array_equal(got, rows([text]))


def test_a_free_slot_serves_a_second_caller_without_waiting() -> None:
    encode = Gated(hold=("a",))
    batcher = EmbeddingBatcher(encode, slots=2)
    out, threads = in_threads(batcher, ["a"])
    threads[0].start()
    assert encode.entered.acquire(timeout=SAFETY_S)
    np.testing.assert_array_equal(batcher.encode(["b"]), rows(["b"]))  # while "a" is held
    encode.gate.set()
    threads[0].join(SAFETY_S)
    assert encode.batches == [["a"], ["b"]]
    np.testing.assert_array_equal(out[0], rows(["a"]))


def test_a_batch_holds_at_most_max_batch_texts_and_big_calls_run_directly() -> None:
    encode = Gated(hold=("a",))
    batcher = EmbeddingBatcher(encode, max_batch=2, slots=1)
    texts = ["a", "b", "c", "d", "e"]
    out = behind_a_held_call(batcher, encode, texts)
    assert [len(b) for b in encode.batches] == [1, 2, 2]
    assert sorted(sum(encode.batches, [])) == texts
    for text, got in zip(texts, out):
        np.testing.assert_array_equal(got, rows([text]))
    big = ["x", "yy", "zzz"]
    np.testing.assert_array_equal(batcher.encode(big), rows(big))
    assert encode.batches[-1] == big


def test_an_error_reaches_every_caller_of_its_batch_and_frees_the_slot() -> None:
    encode = Gated(hold=("a",), fail_on="bad")
    batcher = EmbeddingBatcher(encode, slots=1)
    texts = ["a", "bad", "fine"]
    out = behind_a_held_call(batcher, encode, texts)
    np.testing.assert_array_equal(out[0], rows(["a"]))
    assert isinstance(out[1], ValueError) and out[2] is out[1]  # "fine" shared the bad batch
    np.testing.assert_array_equal(batcher.encode(["after"]), rows(["after"]))
    assert batcher._running == 0 and not batcher._queue


def test_an_interrupted_waiter_gives_up_its_place_and_its_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encode = Gated(hold=("a",))
    batcher = EmbeddingBatcher(encode, slots=1)
    real_wait = threading.Event.wait

    def wait(self: threading.Event, timeout: float | None = None) -> bool:
        if threading.current_thread().name == "interrupted":
            raise KeyboardInterrupt
        return real_wait(self, timeout)

    monkeypatch.setattr(threading.Event, "wait", wait)
    out, threads = in_threads(batcher, ["a"])
    threads[0].start()
    assert encode.entered.acquire(timeout=SAFETY_S)
    caught: list[BaseException] = []

    def interrupted() -> None:
        try:
            batcher.encode(["never"])
        except KeyboardInterrupt as exc:
            caught.append(exc)

    t = threading.Thread(target=interrupted, name="interrupted")
    t.start()
    t.join(SAFETY_S)
    assert caught and not batcher._queue
    encode.gate.set()
    threads[0].join(SAFETY_S)
    np.testing.assert_array_equal(batcher.encode(["next"]), rows(["next"]))
    assert ["never"] not in encode.batches and batcher._running == 0


def test_eight_threads_hammering_get_their_own_rows_and_no_thread_is_left() -> None:
    batcher = EmbeddingBatcher(rows, max_batch=8, slots=2)
    before = threading.active_count()
    texts = [f"text number {i}" + "!" * (i % 7) for i in range(400)]
    results: dict[int, np.ndarray] = {}

    def worker(k: int) -> None:
        for i in range(k, len(texts), 8):
            results[i] = batcher.encode([texts[i]])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SAFETY_S)
    assert sorted(results) == list(range(len(texts)))
    for i, text in enumerate(texts):
        np.testing.assert_array_equal(results[i], rows([text]))
    assert threading.active_count() == before and batcher._running == 0


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"slots": True}, {"slots": 1.5}])
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigurationError, match="positive int"):
        EmbeddingBatcher(rows, **kwargs)

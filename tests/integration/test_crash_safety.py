"""Crash safety of saved state: a save cut short at any point leaves the previous state,
whole; SIGKILL during saves, many times, never leaves a directory that fails to load."""

from __future__ import annotations

import json
import shutil

import pytest

import sls_router._persist as persist
from sls_router import CallableBackend, ModelSpec, Request, SmartRouter, StateError
from sls_router.bench.stress_kill9 import kill9_scenario


class Crash(Exception):
    """Stands for the process dying in the middle of a save."""


def _pool():
    return [
        (ModelSpec("a", 1, 1), CallableBackend(lambda r: f"a: {r.embed_text}")),
        (ModelSpec("b", 2, 2), CallableBackend(lambda r: f"b: {r.embed_text}")),
    ]


def _router() -> SmartRouter:
    return SmartRouter(_pool(), embedder="hashing", random_state=0, background_updates=False)


def _serve(router: SmartRouter, start: int, n: int, wrong_every: int = 4) -> None:
    for i in range(start, start + n):
        response = router.complete(Request(prompt=f"ticket {i}: printer {i * 7919} offline"))
        router.feedback(response.request_id, float(i % wrong_every != 0), source="label")


def _figures(router: SmartRouter) -> tuple[int, int, int]:
    return len(router.cache), len(router.learner.outcomes), router.learner.updates.total_events


def _count_writes(router: SmartRouter, directory) -> int:
    calls = {"n": 0}
    real = persist.atomic_write_bytes

    def counting(path, data):
        calls["n"] += 1
        real(path, data)

    persist.atomic_write_bytes = counting
    try:
        router.save(directory)
    finally:
        persist.atomic_write_bytes = real
    return calls["n"]


def test_a_save_cut_short_at_any_write_leaves_the_old_state(tmp_path, monkeypatch):
    """The manifest is the one commit point: cut the save before each of its writes in
    turn and the directory must load as the old state, cache and outcomes alike."""
    router = _router()
    _serve(router, 0, 60)
    router.save(tmp_path / "probe")
    old = _figures(router)
    _serve(router, 60, 40)  # changes the cache and the outcomes
    new = _figures(router)
    assert new[0] != old[0] and new[1] != old[1]
    writes = _count_writes(router, tmp_path / "probe-count")
    assert writes >= 4  # outcome vectors and features, cache vectors, then the manifest
    for cut in range(writes):
        state = tmp_path / f"cut-{cut}"
        shutil.copytree(tmp_path / "probe", state)
        done = {"n": 0}
        real = persist.atomic_write_bytes

        def crashing(path, data, real=real, done=done, cut=cut):
            if done["n"] == cut:
                raise Crash(f"killed before write {cut} ({path.name})")
            done["n"] += 1
            real(path, data)

        monkeypatch.setattr(persist, "atomic_write_bytes", crashing)
        with pytest.raises(Crash):
            router.save(state)
        monkeypatch.setattr(persist, "atomic_write_bytes", real)
        loaded = SmartRouter.load(state, _pool(), background_updates=False)
        assert _figures(loaded) == old, f"cut before write {cut}"
        router.save(state)  # the next save over the debris of the crashed one
        assert _figures(SmartRouter.load(state, _pool())) == new


def test_saves_leave_one_generation_and_no_debris(tmp_path):
    router = _router()
    for round_ in range(4):
        _serve(router, round_ * 10, 10)
        router.save(tmp_path)
    # what kills can leave: a temp file, and files of a generation a crash kept from sweeping
    (tmp_path / ".manifest.json.abc123").write_text("{")
    (tmp_path / "learner.outcomes.vectors-2.npy").write_bytes(b"")
    (tmp_path / ".cache.entries.vectors-6.npy.x1y2").write_bytes(b"")
    router.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "cache.entries.vectors-5.npy",
        "learner.outcomes.features-5.npy",
        "learner.outcomes.vectors-5.npy",
        "manifest.json",
    ]
    assert _figures(SmartRouter.load(tmp_path, _pool())) == _figures(router)


def test_a_state_of_an_older_format_is_refused_clearly_and_left_alone(tmp_path):
    router = _router()
    _serve(router, 0, 30)
    router.save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1}))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(StateError, match="older sls-router"):
        SmartRouter.load(tmp_path, _pool())
    with pytest.raises(StateError, match="older sls-router"):
        SmartRouter.open(tmp_path, _pool(), embedder="hashing")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_saving_into_a_shared_folder_leaves_other_files_alone(tmp_path):
    (tmp_path / "cache").mkdir()  # somebody else's folder, not a router state
    (tmp_path / "cache" / "keep.txt").write_text("mine")
    (tmp_path / ".hidden").write_text("mine too")
    router = _router()
    _serve(router, 0, 10)
    router.save(tmp_path)
    router.save(tmp_path)
    assert (tmp_path / "cache" / "keep.txt").read_text() == "mine"
    assert (tmp_path / ".hidden").read_text() == "mine too"


@pytest.mark.slow
def test_kill9_during_saves_always_leaves_a_loadable_state(tmp_path):
    """20 child processes SIGKILLed at random moments while saving, on one directory."""
    result = kill9_scenario(trials=20, seed=7, workdir=tmp_path)
    assert result["failures"] == []
    assert result["loaded"] == result["trials"] == 20
    assert result["loaded_new"] + result["loaded_old"] == 20
    assert result["generations_saved"] > 20
    assert result["debris_after_a_clean_save"] == []  # what a kill leaves is swept later

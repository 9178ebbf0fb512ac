"""kill -9 while saving: the state directory must always load, as the old or the new state.

A child python opens the router saved in a directory (or builds one), then loops: a few
requests with feedback, one line in a log saying what the next generation will hold
(written before the save, so a save cut short is still described), `save`. The parent
SIGKILLs it at a seeded random moment, loads the directory with `SmartRouter.load` and
checks that the generation it finds is the last or the one before, with exactly the
cache entries and training rows logged for it. The next trial continues from that state.

Run as `python -m sls_router.bench.stress_kill9 DIR LOG SEED` to be the child.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..backends import CallableBackend
from ..errors import SLSRouterError
from ..router import SmartRouter
from ..store import LocalStore
from ..types import ModelSpec, Request

_WORDS = ("disk", "quota", "login", "timeout", "refund", "cluster", "backup", "invoice")


def kill9_pool() -> list[tuple[ModelSpec, CallableBackend]]:
    """The child's models: answers are unique, so each fresh answer is a new entry."""

    def answer(request: Request) -> str:
        return f"{request.id} says: {request.embed_text[:40]}"

    return [
        (ModelSpec(f"model-{k}", 0.5 * (k + 1), 0.5 * (k + 1)), CallableBackend(answer))
        for k in range(3)
    ]


def _open(directory: Path, seed: int) -> SmartRouter:
    return SmartRouter.open(
        directory, kill9_pool(), embedder="hashing", random_state=seed, background_updates=False
    )


def child(directory: Path, log_path: Path, seed: int) -> None:
    """Save forever; the parent kills this process at a random moment."""
    rng = random.Random(seed)
    router = _open(directory, seed)
    gen = LocalStore(directory).generation

    served = iter(range(10**9))

    def requests(n: int) -> None:
        for _ in range(n):
            words = " ".join(rng.choice(_WORDS) for _ in range(3))
            response = router.complete(
                Request(prompt=f"{words} #{rng.randrange(10**9)}", id=f"s{seed}-{next(served)}")
            )
            # 1 in 5 judged wrong: a wrong fresh answer leaves the cache, so counts vary
            router.feedback(response.request_id, float(rng.random() >= 0.2), source="label")

    with open(log_path, "a", encoding="utf-8") as log:

        def save() -> None:
            nonlocal gen
            gen += 1
            assert router.cache is not None  # a router opened with the default cache
            line = {
                "generation": gen,
                "entries": len(router.cache),
                "outcomes": len(router.learner.outcomes),
            }
            log.write(json.dumps(line) + "\n")
            log.flush()
            os.fsync(log.fileno())
            router.save(directory)

        if gen == 0:  # the first state must exist before the parent may kill
            requests(300)
            save()
        print("ready", flush=True)
        while True:
            requests(rng.randrange(1, 6))
            save()


def _logged(log_path: Path) -> list[dict[str, int]]:
    lines = []
    for raw in log_path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):  # a line cut by the kill
            lines.append(json.loads(raw))
    return lines


def _wait_ready(proc: subprocess.Popen, timeout_s: float) -> bool:
    assert proc.stdout is not None  # started with stdout=PIPE
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.strip() == b"ready":
                return True
            if not line:
                return False
        elif proc.poll() is not None:
            return False
    return False


def kill9_trial(
    directory: Path, log_path: Path, seed: int, delay_s: float, timeout_s: float = 120.0
) -> dict[str, Any]:
    """One child, one SIGKILL after `delay_s`, one load and check."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sls_router.bench.stress_kill9",
                str(directory),
                str(log_path),
                str(seed),
            ],
            stdout=subprocess.PIPE,
            stderr=err,
        )
        assert proc.stdout is not None  # stdout=PIPE
        try:
            if not _wait_ready(proc, timeout_s):
                proc.kill()
                proc.wait()
                err.seek(0)
                tail = err.read().decode(errors="replace")[-800:]
                return {
                    "ok": False,
                    "why": f"child never got ready (exit {proc.returncode}): {tail}",
                }
            time.sleep(delay_s)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
    logged = _logged(log_path)
    last = logged[-1]["generation"]
    try:
        router = SmartRouter.load(
            directory, kill9_pool(), embedder="hashing", background_updates=False
        )
    except SLSRouterError as exc:
        return {"ok": False, "why": f"load failed: {exc}"}
    try:
        gen = LocalStore(directory).generation
        expected = next((line for line in reversed(logged) if line["generation"] == gen), None)
        assert router.cache is not None  # it was saved with one
        found = {
            "generation": gen,
            "entries": len(router.cache),
            "outcomes": len(router.learner.outcomes),
        }
    finally:
        router.close()
    if gen not in (last, last - 1):
        return {"ok": False, "why": f"loaded generation {gen}, the last save was {last}"}
    if found != expected:
        return {"ok": False, "why": f"loaded {found}, generation {gen} held {expected}"}
    return {"ok": True, "state": "new" if gen == last else "old", "generation": gen}


def _debris(directory: Path) -> list[str]:
    """Files and folders the current generation does not use (a cut save leaves some)."""
    live = LocalStore(directory).files()
    return sorted(p.name for p in directory.iterdir() if p.name not in live)


def kill9_scenario(
    trials: int = 20, seed: int = 0, max_delay_s: float = 0.4, workdir: str | Path | None = None
) -> dict[str, Any]:
    """`trials` kills on one state directory, each at a seeded random delay."""
    rng = random.Random(seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sls-kill9-", dir=workdir) as tmp:
        directory, log_path = Path(tmp) / "state", Path(tmp) / "generations.jsonl"
        directory.mkdir()
        log_path.touch()
        results = [
            kill9_trial(directory, log_path, seed + i, rng.uniform(0.0, max_delay_s))
            for i in range(trials)
        ]
        debris_after_kill = len(_debris(directory))
        router = SmartRouter.load(directory, kill9_pool(), embedder="hashing")
        router.save(directory)  # one clean save must sweep what the kills left
        router.close()
        debris_after_save = _debris(directory)
        generations = LocalStore(directory).generation - 1
    failures = [r["why"] for r in results if not r["ok"]]
    return {
        "trials": trials,
        "loaded": sum(r["ok"] for r in results),
        "loaded_new": sum(r.get("state") == "new" for r in results),
        "loaded_old": sum(r.get("state") == "old" for r in results),
        "generations_saved": generations,
        "failures": failures[:5],
        "debris_after_last_kill": debris_after_kill,
        "debris_after_a_clean_save": debris_after_save,
        "wall_s": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    child(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))

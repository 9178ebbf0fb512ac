"""Label-free verifiers and the replay backend."""

from __future__ import annotations

import json

import pytest

from sls_router.errors import InvalidInputError
from sls_router.replay import ReplayBackend, ReplayMissError, load_dataset, replay_pool
from sls_router.types import Request
from sls_router.verifiers import (
    DoctestVerifier,
    LogTemplateVerifier,
    TaskVerifier,
    template_matches,
)

LINE = (
    "Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106 dest: /10.250.19.102:50010"
)


def test_log_template_self_check():
    assert template_matches("Receiving block <*> src: <*> dest: <*>", LINE)
    assert template_matches(LINE, LINE)
    assert not template_matches("Receiving block <*> from <*>", LINE)
    assert not template_matches("", LINE)
    verifier = LogTemplateVerifier()
    request = Request(prompt=f"Parse: {LINE}", query=LINE, task="logparsing/HDFS")
    assert verifier(request, "Receiving block <*> src: <*> dest: <*>") == 1.0
    assert verifier(request, "Deleting block <*>") == 0.0


def test_each_wildcard_stands_for_one_value_of_the_line():
    line = "Read out cached package applicability for package: KB2928120, ApplicableState: 0"
    good = "Read out cached package applicability for package: <*>, ApplicableState: <*>"
    assert template_matches(good, line)
    # a wildcard that swallows a space the line has, or stands for nothing
    assert not template_matches(good.replace(": <*>", ":<*>"), line)
    assert not template_matches("vibrate=[<*>] sound=<*>", "vibrate=[] sound=null")
    assert not template_matches("steps=<*>#<*><*>#<*>", "steps=15##0##54")
    assert not template_matches("<*>", line) and not template_matches("<*> <*>", line)
    # a value may hold spaces inside it, and the first place of a fixed part is not
    # always the one that leaves valid values around it
    assert template_matches("Function=<*>", "Function=int IdoTransportMgr::SendPacket(x)")
    assert template_matches("<*>:<*>", "a: b:c")
    assert not template_matches("<*>:<*>", "a: b: c")


PROMPT = '''def add(a, b):
    """Add two numbers.
    >>> add(2, 3)
    5
    >>> add(-1, 1)
    0
    """
'''


def test_doctest_verifier_runs_generated_code_in_a_subprocess():
    verifier = DoctestVerifier(timeout_s=5)
    request = Request(prompt=PROMPT, task="codegen/humaneval")
    assert verifier(request, "def add(a, b):\n    return a + b\n") == 1.0
    assert verifier(request, "def add(a, b):\n    return a - b\n") == 0.0
    assert verifier(request, "    return a + b\n") == 1.0  # a body completing the prompt
    assert verifier(request, "def add(a, b):\n    while True: pass\n") == 0.0  # timeout
    assert (
        verifier(
            request,
            "import socket\ndef add(a, b):\n    socket.create_connection(('127.0.0.1', 9))\n",
        )
        == 0.0
    )
    assert verifier(Request(prompt="def f(): pass"), "def f(): return 1") is None


def test_task_verifier_dispatches_by_kind():
    verifier = TaskVerifier()
    assert verifier(Request(prompt="x", query=LINE, task="logparsing/HDFS"), LINE) == 1.0
    assert verifier(Request(prompt="x", task="classification/overruling"), "yes") is None


def _write(tmp_path, lines, models=None):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    if models is not None:
        (tmp_path / "d.models.json").write_text(json.dumps(models))
    return path


def test_replay_backend_returns_recorded_answers(tmp_path):
    path = _write(
        tmp_path,
        [
            {
                "id": "1",
                "prompt": "p1",
                "reference": "a",
                "responses": {
                    "m": {
                        "output": "a",
                        "score": 1,
                        "input_tokens": 10,
                        "output_tokens": 5,
                        "cost": 0.5,
                        "latency_s": 2.0,
                    }
                },
            },
            {
                "id": "2",
                "prompt": "p2",
                "reference": "b",
                "responses": {
                    "m": {"output": "c", "score": 0, "input_tokens": 1000, "output_tokens": 100}
                },
            },
        ],
        models={
            "m": {"input_per_mtok": 1.0, "output_per_mtok": 2.0, "tokens_per_s": 50, "ttft_s": 0.5}
        },
    )
    ((spec, backend),) = replay_pool(path)
    assert spec.name == "m" and spec.input_per_mtok == 1.0
    first = backend.complete(Request(prompt="p1"))
    assert (first.text, first.cost_usd, first.latency_s, first.latency_modelled) == (
        "a",
        0.5,
        2.0,
        False,
    )
    second = backend.complete(Request(messages=[{"role": "user", "content": "p2"}]))
    assert second.cost_usd == pytest.approx((1000 * 1.0 + 100 * 2.0) / 1e6)
    assert second.latency_s == pytest.approx(0.5 + 100 / 50) and second.latency_modelled
    with pytest.raises(ReplayMissError):
        backend.complete(Request(prompt="never recorded"))
    with pytest.raises(InvalidInputError):
        ReplayBackend(load_dataset(path), "unknown-model")


def test_a_model_without_sidecar_prices_is_priced_from_what_its_calls_cost(tmp_path):
    """Otherwise its price would read as zero and a router would ignore its cost."""

    def call(cost, tokens_in, tokens_out):
        return {
            "output": "x",
            "score": 1,
            "cost": cost,
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
        }

    lines = [
        {
            "id": "1",
            "prompt": "p1",
            "responses": {"dear": call(0.03, 900, 100), "cheap": call(0.001, 900, 100)},
        },
        {
            "id": "2",
            "prompt": "p2",
            "responses": {"dear": call(0.01, 400, 100), "cheap": call(0.0005, 400, 100)},
        },
        {"id": "3", "prompt": "p3", "responses": {"free": call(0.0, 10, 1)}},
    ]
    specs = {spec.name: spec for spec, _ in replay_pool(_write(tmp_path, lines))}
    assert specs["dear"].input_per_mtok == pytest.approx(0.04 / 1500 * 1e6)  # $26.67
    assert specs["dear"].output_per_mtok == specs["dear"].input_per_mtok
    assert specs["cheap"].input_per_mtok == pytest.approx(0.0015 / 1500 * 1e6)
    assert specs["free"].input_per_mtok == 0.0  # it cost nothing: free it stays
    sidecar = {"dear": {"input_per_mtok": 5.0}, "cheap": {}}
    priced = {s.name: s for s, _ in replay_pool(_write(tmp_path, lines, models=sidecar))}
    assert priced["dear"].input_per_mtok == 5.0  # a sidecar's price stands...
    assert priced["cheap"].input_per_mtok == 0.0  # ...zero included


@pytest.mark.parametrize(
    "line, message",
    [
        ({"prompt": "p", "responses": {}}, "missing field 'id'"),
        ({"id": 1, "prompt": "p", "scorer": "fuzzy", "responses": {}}, "unknown scorer"),
        ({"id": 1, "prompt": "p", "responses": {"m": {"output": "x", "score": 1}}}, "no 'cost'"),
        (
            {"id": 1, "prompt": "p", "responses": {"m": {"output": "x", "score": 3, "cost": 1}}},
            "score",
        ),
    ],
)
def test_bad_replay_lines_name_the_line(tmp_path, line, message):
    ok = {"id": "0", "prompt": "ok", "responses": {"m": {"output": "x", "score": 1, "cost": 0.1}}}
    path = _write(tmp_path, [ok, line])
    with pytest.raises(InvalidInputError, match=message) as info:
        load_dataset(path)
    assert "d.jsonl:2" in str(info.value)


def test_a_subset_keeps_only_the_named_models_and_tasks(tmp_path):
    def resp(output, score):
        return {"output": output, "score": score, "input_tokens": 10, "output_tokens": 1}

    lines = [
        {
            "id": str(i),
            "task": "logs/a" if i % 2 else "logs/b",
            "prompt": f"p{i}",
            "reference": "r",
            "responses": {"x": resp("r", 1), "y": resp("w", 0), "z": resp("r", 1)},
        }
        for i in range(6)
    ]
    models = {m: {"input_per_mtok": p, "output_per_mtok": p} for m, p in zip("xyz", (1, 2, 3))}
    full = load_dataset(_write(tmp_path, lines, models))
    part = full.subset(models=["z", "y"], tasks=["logs/a"])
    assert [r.id for r in part] == ["1", "3", "5"]
    assert part.model_names == ["z", "y"] and part.models["z"].input_per_mtok == 3
    assert all(set(r.responses) == {"z", "y"} for r in part)
    assert "z, y" in part.name and "logs/a" in part.name
    assert [spec.name for spec, _ in replay_pool(part)] == ["z", "y"]
    # the file's dataset is untouched, and a subset of nothing is refused naming the choices
    assert len(full) == 6 and all(set(r.responses) == {"x", "y", "z"} for r in full)
    assert full.subset().model_names == ["x", "y", "z"] and len(full.subset()) == 6
    with pytest.raises(InvalidInputError, match=r"\['w'\].*'x', 'y', 'z'"):
        full.subset(models=["x", "w"])
    with pytest.raises(InvalidInputError, match=r"\['logs/c'\].*'logs/a', 'logs/b'"):
        full.subset(tasks=["logs/c"])
    with pytest.raises(InvalidInputError, match="name one or more"):
        full.subset(models=[])

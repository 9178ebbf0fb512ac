"""The replay benchmark: metric arithmetic, scorer rules, determinism, JSON, report."""

from __future__ import annotations

import json

import pytest

from sls_router.bench.cli import main
from sls_router.bench.replay_bench import run_bench
from sls_router.bench.report import pareto_front
from sls_router.bench.trace import judge_hit
from sls_router.errors import ConfigurationError
from sls_router.replay import ReplayRecord, load_dataset

KEYS = {
    "accuracy",
    "cost_usd",
    "llm_time_s",
    "wall_s",
    "cache_hit_rate",
    "cache_wrong_hit_rate",
    "explored_cost_share",
    "calls_per_model",
    "verdicts",  # per feedback source: verdicts on served answers, and how many were right
}
SEED_KEYS = {"accuracy_worst", "cost_usd_worst", "dominated_by", "per_seed"}


def _resp(output, score, cost, latency=1.0):
    return {
        "output": output,
        "score": score,
        "input_tokens": 10,
        "output_tokens": 5,
        "cost": cost,
        "latency_s": latency,
    }


@pytest.fixture
def tiny(tmp_path):
    """Three requests, two models: 'cheap' is right once, 'dear' twice."""
    rows = [
        {
            "id": "a",
            "task": "classification/t",
            "prompt": "alpha question",
            "reference": "A",
            "responses": {"cheap": _resp("A", 1, 0.001), "dear": _resp("A", 1, 0.01)},
        },
        {
            "id": "b",
            "task": "classification/t",
            "prompt": "bravo question",
            "reference": "B",
            "responses": {"cheap": _resp("x", 0, 0.001), "dear": _resp("B", 1, 0.01)},
        },
        {
            "id": "c",
            "task": "classification/t",
            "prompt": "charlie question",
            "reference": "C",
            "responses": {"cheap": _resp("y", 0, 0.001), "dear": _resp("z", 0, 0.01)},
        },
    ]
    path = tmp_path / "tiny.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_metric_arithmetic_on_a_tiny_dataset(tiny):
    result, _ = run_bench(
        load_dataset(tiny),
        embedder="hashing",
        strategies=["single:cheap", "single:dear", "oracle", "cascade", "best_single", "cheapest"],
    )
    s = result["strategies"]
    assert s["single:cheap"]["accuracy"] == pytest.approx(1 / 3)
    assert s["single:cheap"]["cost_usd"] == pytest.approx(0.003)
    assert s["single:dear"]["accuracy"] == pytest.approx(2 / 3)
    assert s["single:dear"]["llm_time_s"] == pytest.approx(3.0)
    # oracle: cheap where it is right, dear where only dear is, cheapest where none is
    assert s["oracle"]["accuracy"] == pytest.approx(2 / 3)
    assert s["oracle"]["cost_usd"] == pytest.approx(0.001 + 0.01 + 0.001)
    # cascade (no verifier for this task): escalates until two answers agree, paying all
    assert s["cascade"]["cost_usd"] == pytest.approx(0.011 * 3)
    assert s["cascade"]["calls_per_model"] == {"cheap": 3, "dear": 3}
    assert result["best_single"] == "dear" and result["cheapest"] == "cheap"

    def timeless(figures: dict) -> dict:  # wall time is measured, run by run
        return {k: v for k, v in figures.items() if k != "wall_s"}

    assert timeless(s["best_single"]) == timeless(s["single:dear"])
    assert timeless(s["cheapest"]) == timeless(s["single:cheap"])
    for figures in s.values():
        assert set(figures) == KEYS | SEED_KEYS


def _record(scorer, reference=None, group=None):
    return ReplayRecord(
        id="r",
        task=None,
        prompt="p",
        query=None,
        reference=reference,
        group=group,
        scorer=scorer,
        responses={},
    )


def test_scorer_rules_count_unjudgeable_hits_as_wrong():
    assert judge_hit(_record("exact", reference="A  b"), "A b", None, None)
    assert not judge_hit(_record("exact", reference="A"), "B", None, None)
    assert not judge_hit(_record("exact"), "A", None, None)  # no reference: cannot judge
    src = _record("group", group="g1")
    assert judge_hit(_record("group", group="g1"), "x", src, True)
    assert not judge_hit(_record("group", group="g1"), "x", src, False)  # source was wrong
    assert not judge_hit(_record("group", group="g2"), "x", src, True)  # other group
    assert not judge_hit(_record("group"), "x", src, True)  # no group: cannot judge
    assert not judge_hit(_record("group", group="g1"), "x", None, None)  # unknown source


def test_sls_runs_deterministically_under_a_seed(tiny):
    strategies = ["sls", "sls_no_cache", "random", "static_knn", "sls_cache_best_single"]
    a, _ = run_bench(load_dataset(tiny), embedder="hashing", strategies=strategies, seed=7)
    b, _ = run_bench(load_dataset(tiny), embedder="hashing", strategies=strategies, seed=7)
    for name in strategies:
        fa = {k: v for k, v in a["strategies"][name].items() if k != "wall_s"}
        fb = {k: v for k, v in b["strategies"][name].items() if k != "wall_s"}
        assert fa == fb


def test_repeated_request_is_served_from_cache_and_judged(tmp_path):
    # the same prompt five times (the rest of a prompt beyond its query scopes the cache)
    rows = [
        {
            "id": str(i),
            "prompt": "Answer briefly: same question",
            "query": "same question",
            "reference": "A",
            "responses": {"m": _resp("A", 1, 0.5)},
        }
        for i in range(5)
    ]
    path = tmp_path / "rep.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    result, traces = run_bench(load_dataset(path), embedder="hashing", strategies=["sls"])
    s = result["strategies"]["sls"]
    assert s["cache_hit_rate"] == pytest.approx(0.8) and s["accuracy"] == 1.0
    assert s["cost_usd"] == pytest.approx(0.5) and traces["sls"].model[1:] == ["cache"] * 4


def test_cli_writes_json_and_report(tiny, tmp_path):
    out, report = tmp_path / "out.json", tmp_path / "report"
    assert (
        main(
            [
                "bench",
                "--data",
                str(tiny),
                "--embedder",
                "hashing",
                "--json",
                str(out),
                "--report",
                str(report),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert {"dataset", "n", "feedback", "strategies"} <= set(result) and result["n"] == 3
    assert {
        "sls",
        "oracle",
        "cascade",
        "static_knn",
        "sls_no_updates",
        "random",
        "single:cheap",
    } <= set(result["strategies"])
    for name in ("report.md", "cost_accuracy.png", "learning_curve.png", "model_share.png"):
        assert (report / name).stat().st_size > 1000 or name == "report.md"
    text = (report / "report.md").read_text()
    assert "| sls" in text and "| explored (of cost) |" in text


def test_pareto_front():
    points = {"a": (1.0, 0.5), "b": (2.0, 0.4), "c": (3.0, 0.9), "d": (0.5, 0.2)}
    assert pareto_front(points) == ["d", "a", "c"]


def test_bad_options_are_refused(tiny):
    with pytest.raises(ConfigurationError):
        run_bench(load_dataset(tiny), embedder="hashing", feedback="oracle")
    with pytest.raises(ConfigurationError, match="unknown strategies"):
        run_bench(load_dataset(tiny), embedder="hashing", strategies=["magic"])
    assert main(["bench", "--data", "/no/such/file.jsonl"]) == 2


def test_overhead_bench_times_real_misses_and_real_hits():
    from sls_router.bench.overhead import measure_overhead

    figures = measure_overhead(
        entries=2000, embedder="hashing", models=3, decisions=40, history=300
    )
    assert figures["cache_hits_on_hit_path"] == 40  # the hit path really hits...
    assert figures["cache_hits_on_miss_path"] == 0  # ...and the miss path really misses
    assert figures["hit_p50_ms"] > 0 and figures["miss_p50_ms"] > 0
    assert figures["torch_embed_p50_ms"] > 0  # the torch MiniLM reference, same run
    assert figures["refit"] and figures["logistic_models"] == 3  # timed with every predictor


def test_overhead_reports_several_embedders_side_by_side(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    from sls_router.bench import overhead

    measure = overhead.measure_overhead
    monkeypatch.setattr(  # a short history: this checks the report, not the speed
        overhead, "measure_overhead", lambda **kw: measure(**{**kw, "history": 300})
    )
    out = tmp_path / "overhead.json"
    argv = ["overhead", "--embedder", "hashing,onnx-int8", "--entries", "2000"]
    assert main([*argv, "--models", "3", "--decisions", "40", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())["embedders"]
    assert list(figures) == ["hashing", "onnx-int8"]
    assert figures["onnx-int8"]["backend"] == "onnx" and figures["hashing"]["entries"] == 2000
    for row in figures.values():  # each decision timed beside a torch embedding of that run
        assert row["miss_p50_ms"] > 0 and row["hit_p50_ms"] > 0 and row["torch_embed_p50_ms"] > 0
        ratio = row["miss_p50_ms"] / row["torch_embed_p50_ms"]
        assert row["miss_over_torch_embed"] == pytest.approx(ratio, abs=0.002)
    assert "hashing (hashing): miss path p50" in capsys.readouterr().out


def test_overhead_refuses_an_unknown_embedder_before_any_run(capsys):
    assert main(["overhead", "--embedder", "hashing,minilm,bogus"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["overhead", "--embedder", "onnx,onnx"]) == 2
    assert "name each one once" in capsys.readouterr().err


@pytest.fixture
def dozen(tmp_path):
    """Twelve requests on two topics; 'cheap' knows the first, 'dear' both."""
    rows = [
        {
            "id": f"q{i}",
            "task": "classification/t",
            "prompt": f"{'sky' if i % 2 else 'sea'} question {i}",
            "reference": "R",
            "responses": {
                "cheap": _resp("R" if i % 2 else "w", int(i % 2), 0.001),
                "dear": _resp("R", 1, 0.01),
            },
        }
        for i in range(12)
    ]
    path = tmp_path / "dozen.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _without_wall(result):
    return {
        name: {k: v for k, v in figures.items() if k != "wall_s"}
        for name, figures in result["strategies"].items()
    }


def test_every_strategy_replays_each_seeds_order(dozen, monkeypatch):
    from sls_router.bench import replay_bench

    seen: dict[str, list[list[str]]] = {"sls": [], "random": []}

    def fake_sls(data, embedder, **kw):
        seen["sls"].append([r.id for r in data])
        return replay_bench.baselines.single(replay_bench.baselines.Replayer(data), "cheap")

    def fake_random(replayer, seed):
        seen["random"].append([r.id for r in replayer.dataset])
        return replay_bench.baselines.single(replayer, "dear")

    monkeypatch.setattr(replay_bench, "run_sls", fake_sls)
    monkeypatch.setattr(replay_bench.baselines, "random_choice", fake_random)
    result, _ = run_bench(
        load_dataset(dozen), embedder="hashing", strategies=["sls", "random"], seeds=3
    )
    file_order = [f"q{i}" for i in range(12)]
    orders = seen["sls"]
    assert orders == seen["random"] and len(orders) == 3  # the same orders for both
    assert orders[0] == file_order  # seed 0 keeps file order
    assert len({tuple(o) for o in orders}) == 3  # each seed its own order...
    assert all(sorted(o) == sorted(file_order) for o in orders)  # ...of the same requests
    assert result["seeds"] == 3 and [
        p["seed"] for p in result["strategies"]["sls"]["per_seed"]
    ] == [0, 1, 2]


def test_seeds_report_mean_worst_and_repeat_exactly(dozen):
    strategies = ["sls", "random", "static_knn", "oracle", "single:dear"]
    a, traces = run_bench(load_dataset(dozen), embedder="hashing", strategies=strategies, seeds=3)
    b, _ = run_bench(load_dataset(dozen), embedder="hashing", strategies=strategies, seeds=3)
    assert _without_wall(a) == _without_wall(b)  # the same seeds, the same figures
    for figures in a["strategies"].values():
        accs = [p["accuracy"] for p in figures["per_seed"]]
        costs = [p["cost_usd"] for p in figures["per_seed"]]
        assert figures["accuracy"] == pytest.approx(sum(accs) / 3)
        assert figures["cost_usd"] == pytest.approx(sum(costs) / 3)
        assert figures["accuracy_worst"] == min(accs) and figures["cost_usd_worst"] == max(costs)
    # seed 0 of K seeds is the one-seed bench; the traces returned are seed 0's
    one, _ = run_bench(load_dataset(dozen), embedder="hashing", strategies=strategies)
    for name in strategies:
        first = a["strategies"][name]["per_seed"][0]
        assert one["strategies"][name]["accuracy"] == first["accuracy"]
        assert one["strategies"][name]["cost_usd"] == pytest.approx(first["cost_usd"])
        assert sum(traces[name].correct) / 12 == first["accuracy"]


def test_a_named_default_model_is_kept_but_for_capped_explorations(dozen):
    # "dear" is right on all twelve: every request but the capped explorations gets it
    # (10% of requests plus a warm-up of two)
    result, traces = run_bench(
        load_dataset(dozen), embedder="hashing", strategies=["sls"], default_model="dear"
    )
    assert result["default_model"] == "dear"
    assert traces["sls"].model.count("dear") >= 12 - (0.1 * 12 + 2)
    with pytest.raises(ConfigurationError, match=r"default_model='gpt-4o'.*'cheap', 'dear'"):
        run_bench(load_dataset(dozen), embedder="hashing", default_model="gpt-4o")


def test_dominated_by_names_single_models_even_when_not_asked_for(tiny):
    result, _ = run_bench(
        load_dataset(tiny), embedder="hashing", strategies=["cascade", "oracle", "single:cheap"]
    )
    s = result["strategies"]
    # cascade pays both models for dear's accuracy: dear alone is as right and cheaper
    assert s["cascade"]["dominated_by"] == ["single:dear"]
    assert s["oracle"]["dominated_by"] == [] and s["single:cheap"]["dominated_by"] == []


def test_train_records_are_learned_first_and_never_scored(dozen, tmp_path, monkeypatch, capsys):
    from sls_router.router import SmartRouter

    learned: list[list[str]] = []

    def fit(self, records):
        assert not self._served  # before any request is served
        learned.append([r.id for r in records])

    monkeypatch.setattr(SmartRouter, "fit", fit, raising=False)
    result, _ = run_bench(
        load_dataset(dozen), embedder="hashing", strategies=["sls"], train_split=0.25
    )
    assert learned == [["q0", "q1", "q2"]]
    assert result["n"] == 9 and result["n_train"] == 3
    # a train file that holds a scored line is refused, naming the line
    lines = dozen.read_text().splitlines()
    train = tmp_path / "train.jsonl"
    train.write_text(lines[5].replace('"q5"', '"t5"') + "\n" + lines[7] + "\n")
    with pytest.raises(ConfigurationError, match="'q7'"):
        run_bench(
            load_dataset(dozen), embedder="hashing", strategies=["sls"], train=load_dataset(train)
        )
    assert main(["bench", "--data", str(dozen), "--train", str(train)]) == 2
    assert "'q7' is both trained on and scored" in capsys.readouterr().err


def test_a_train_split_is_learned_and_not_scored(dozen):
    result, _ = run_bench(
        load_dataset(dozen), embedder="hashing", strategies=["sls", "oracle"], train_split=0.5
    )
    assert result["n"] == 6 and result["n_train"] == 6


def test_the_bench_reports_each_sources_verdicts_and_how_often_they_were_right(tiny):
    result, _ = run_bench(load_dataset(tiny), embedder="hashing", strategies=["sls"])
    verdicts = result["strategies"]["sls"]["verdicts"]
    assert verdicts["label"]["n"] == result["n"]  # one label per request served
    assert verdicts["label"]["right"] == 1.0  # a label is the truth it reports
    none, _ = run_bench(load_dataset(tiny), embedder="hashing", strategies=["sls"], feedback="none")
    assert none["strategies"]["sls"]["verdicts"] == {}


@pytest.mark.parametrize("accuracy", [1.0, 0.0])
def test_a_simulated_judge_is_as_right_as_stated(dozen, accuracy):
    free = {"cheap": {}, "dear": {}}  # a sidecar pricing both at zero: the cap never bites
    (dozen.parent / "dozen.models.json").write_text(json.dumps(free))
    data = load_dataset(dozen)
    plain, _ = run_bench(data, embedder="hashing", strategies=["sls"], feedback="none")
    judged, _ = run_bench(
        data, embedder="hashing", strategies=["sls"], feedback="none", judge_accuracy=accuracy
    )
    assert judged["judge"] == f"simulated, accuracy {accuracy:g}" and plain["judge"] is None
    figures = judged["strategies"]["sls"]
    verdicts = figures["verdicts"]["judge"]
    assert verdicts["right"] == accuracy
    # every fresh answer is graded (free here); a served hit never is: it was sure, or a
    # judge already vouched for it before any request was served it
    fresh = round(judged["n"] * (1 - figures["cache_hit_rate"]))
    assert verdicts["n"] == fresh
    with pytest.raises(ConfigurationError, match="judge_accuracy"):
        run_bench(data, embedder="hashing", strategies=["sls"], judge_accuracy=1.5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["onnx", "onnx-int8", "minilm"])
def test_the_cli_benches_run_with_a_named_embedder(
    name, tiny, tmp_path, onnx_cache_dir, monkeypatch, capsys
):
    monkeypatch.setenv("SLS_ROUTER_CACHE_DIR", str(onnx_cache_dir))  # never the user's cache
    out = tmp_path / "bench.json"
    argv = ["bench", "--data", str(tiny), "--embedder", name, "--strategies", "sls"]
    assert main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["embedder"] == name and "embed_s" in result
    assert result["strategies"]["sls"]["accuracy"] > 0
    pairs = tmp_path / "pairs.json"
    pairs.write_text(
        json.dumps(
            [
                {"origin": "How do I reset my password?", "similar": "How do I reset my password"},
                {"origin": "What is the capital of France?", "similar": "capital of France?"},
            ]
        )
    )
    capsys.readouterr()
    assert main(["cache-bench", "--pairs", str(pairs), "--embedder", name]) == 0
    assert f"2 pairs, {name})" in capsys.readouterr().out


def test_simulated_users_ask_again_after_wrong_answers_and_the_router_hears_it(dozen):
    data = load_dataset(dozen)
    plain, _ = run_bench(data, embedder="hashing", strategies=["sls"], feedback="none")
    asked, _ = run_bench(
        data, embedder="hashing", strategies=["sls"], feedback="none", reask=(1.0, 0.0)
    )
    figures = asked["strategies"]["sls"]
    wrong = round((1 - figures["accuracy"]) * asked["n"])
    assert wrong > 0 and "asking again after 1 of wrong" in asked["reask"]
    # every wrong answer was asked again, and each re-ask told the router so: a verdict
    # of source "reask" against an answer that was indeed wrong
    assert figures["verdicts"]["reask"] == {"n": wrong, "right": 1.0}
    assert figures["cost_usd"] > plain["strategies"]["sls"]["cost_usd"]  # re-asks are paid
    assert "reask" not in plain["strategies"]["sls"]["verdicts"] and plain["reask"] is None
    with pytest.raises(ConfigurationError, match="re-ask rate"):
        run_bench(data, embedder="hashing", strategies=["sls"], reask=(1.5, 0.0))


def test_the_reask_rates_are_read_from_the_command_line():
    from sls_router.bench.simulated_users import parse_reask_rates

    assert parse_reask_rates("0.5") == (0.5, 0.05)
    assert parse_reask_rates("0.5,0") == (0.5, 0.0)
    for bad in ("x", "0.5,0.1,0.2", "2"):
        with pytest.raises(ConfigurationError, match="reask-rate|re-ask rate"):
            parse_reask_rates(bad)


def test_the_bench_replays_a_named_pool_and_named_tasks(dozen, tmp_path, capsys):
    out = tmp_path / "out.json"
    argv = ["bench", "--data", str(dozen), "--embedder", "hashing", "--json", str(out)]
    assert main([*argv, "--models", "cheap", "--tasks", "classification/t"]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 12 and "[models: cheap]" in result["dataset"]
    singles = {name for name in result["strategies"] if name.startswith("single:")}
    assert singles == {"single:cheap"}  # the dear model is not in the pool at all
    assert set(result["strategies"]["sls"]["calls_per_model"]) <= {"cheap", "cache"}
    assert result["strategies"]["oracle"]["accuracy"] == 0.5  # with 'dear' it would be 1
    assert main([*argv, "--models", "cheap,gpt-4o"]) == 2
    assert "'gpt-4o'" in capsys.readouterr().err
    assert main([*argv, "--tasks", "chat/x"]) == 2
    assert "'classification/t'" in capsys.readouterr().err


def test_the_bench_reports_the_share_of_the_spend_that_went_on_exploring(dozen):
    def share(models, seeds):
        data = load_dataset(dozen).subset(models)
        result, _ = run_bench(data, embedder="hashing", strategies=["sls", "random"], seeds=seeds)
        figures = result["strategies"]
        assert figures["random"]["explored_cost_share"] == 0.0  # only the router explores
        return figures["sls"]["explored_cost_share"]

    assert share(["dear"], seeds=1) == 0.0  # one model: nothing to explore
    # two: some seeds explore, within the cap (10% of the spend plus two warm-up calls)
    assert 0.0 < share(["cheap", "dear"], seeds=4) <= 0.5

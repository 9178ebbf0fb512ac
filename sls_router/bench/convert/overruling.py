"""FrugalGPT's OVERRULING results of 12 LLMs -> replay file."""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import InvalidInputError
from ._common import chars_to_tokens, check_limit, finish, number, read_csv, round6

OV_MODELS = (
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
)
#: modelled throughput (tokens/s, ttft s) of 2023 APIs, NOT measured (none recorded).
OV_THROUGHPUT = {
    "gptneox_20B": (60, 0.5),
    "gptj_6B": (100, 0.3),
    "fairseq_gpt_13B": (80, 0.4),
    "text-davinci-002": (40, 0.6),
    "text-curie-001": (80, 0.3),
    "gpt-3.5-turbo": (60, 0.4),
    "gpt-4": (20, 0.8),
    "j1-jumbo": (30, 0.8),
    "j1-grande": (50, 0.5),
    "j1-large": (80, 0.3),
    "xlarge": (40, 0.6),
    "medium": (80, 0.3),
}
#: parameters in billions (Cohere xlarge/medium as in HELM: 52.4 / 6.1; GPT-3.5/4 are
#: undisclosed: coarse ranks 175 and 1000).
OV_TIER = {
    "gptneox_20B": 20,
    "gptj_6B": 6,
    "fairseq_gpt_13B": 13,
    "text-davinci-002": 175,
    "text-curie-001": 6.7,
    "gpt-3.5-turbo": 175,
    "gpt-4": 1000,
    "j1-jumbo": 178,
    "j1-grande": 17,
    "j1-large": 7.5,
    "xlarge": 52.4,
    "medium": 6.1,
}


def convert_overruling(
    src: str | Path, out: str | Path, *, limit_per_source: int | None = None
) -> dict:
    """FrugalGPT OVERRULING results (`overruling.csv.gz`) -> one request per row, 12 models."""
    limit = check_limit(limit_per_source)
    path = Path(src)
    if path.is_dir():
        path = path / "overruling.csv.gz"
    if not path.is_file():
        raise InvalidInputError(
            f"{path} does not exist; pass FrugalGPT's overruling.csv.gz "
            "(from the OptLLM repository) or the folder holding it."
        )
    columns = ["query", "ref_answer"] + [
        f"{m}{s}" for m in OV_MODELS for s in ("_answer", "_cost", "")
    ]
    rows = read_csv(path, columns, None)
    if not rows:
        raise InvalidInputError(f"{path} holds no rows; it must list one query per row.")
    prompts = [row["query"] for _, row in rows]
    prefix = os.path.commonprefix(prompts) if len(prompts) > 1 else ""
    prefix = prefix[: prefix.rfind("\n") + 1]
    if limit is not None:
        rows = rows[:limit]
    records: list[dict] = []
    fallback = 0
    for i, row in rows:
        prompt = row["query"]
        query = prompt[len(prefix) :]
        if not query.strip():
            fallback += 1
            at = prompt.rfind("Context:")
            query = prompt[at:] if at >= 0 else prompt
        index = row.get("") or ""
        rid = index if index.strip().isdigit() else str(i - 1)
        in_tok = chars_to_tokens(prompt)
        responses = {}
        for model in OV_MODELS:
            output = row[f"{model}_answer"].strip()
            score = number(row, model, path, i)
            if score not in (0.0, 1.0):
                raise InvalidInputError(
                    f"{path}: row {i}: column {model!r} must be 0 or 1, got "
                    f"{row[model]!r}; fix the row or drop it."
                )
            cost = number(row, f"{model}_cost", path, i)
            if cost < 0:
                raise InvalidInputError(
                    f"{path}: row {i}: column {model}_cost must be USD >= 0, "
                    f"got {row[f'{model}_cost']!r}."
                )
            responses[model] = {
                "output": output,
                "score": score,
                "input_tokens": in_tok,
                "output_tokens": chars_to_tokens(output),
                "cost": round6(cost),
                "latency_s": None,
            }
        records.append(
            {
                "id": f"overruling-{rid}",
                "task": "classification/overruling",
                "prompt": prompt,
                "query": query,
                "reference": row["ref_answer"].strip(),
                "scorer": "exact",
                "responses": responses,
            }
        )
    sidecar = {}
    price_notes = []
    for model in OV_MODELS:
        tokens = sum(
            r["responses"][model]["input_tokens"] + r["responses"][model]["output_tokens"]
            for r in records
        )
        cost = sum(r["responses"][model]["cost"] for r in records)
        price = round(cost / tokens * 1e6, 4) if tokens else 0.0
        price_notes.append(f"{model} {price:g}")
        sidecar[model] = {
            "input_per_mtok": price,
            "output_per_mtok": price,
            "tokens_per_s": OV_THROUGHPUT[model][0],
            "ttft_s": OV_THROUGHPUT[model][1],
            "tier": OV_TIER[model],
        }
    notes = [
        "cost is FrugalGPT's recorded USD cost per query (<m>_cost); score is its 0/1 "
        "column <m>; output is <m>_answer stripped; reference is ref_answer.",
        "tokens are estimated, not recorded: input = ceil(len(prompt) / 4), output = "
        "ceil(len(answer) / 4).",
        "sidecar prices are effective USD per million estimated tokens (total recorded cost "
        "/ total estimated tokens), same for input and output: " + ", ".join(price_notes) + ".",
        "latency is modelled, not recorded: latency_s is null; the sidecar's tokens_per_s "
        "and ttft_s are plausible 2023 API figures chosen by hand, not measurements.",
        f"query is the prompt after the {len(prefix)}-character few-shot prefix shared by "
        f"all {len(prompts)} prompts (cut back to a line boundary)"
        + (f"; {fallback} prompts fell back to their last 'Context:' block" if fallback else "")
        + ".",
        "tier: parameters in billions (Cohere xlarge 52.4 / medium 6.1 as listed by HELM); "
        "GPT-3.5/4 sizes are undisclosed: coarse ranks 175 and 1000.",
    ]
    return finish(records, list(OV_MODELS), sidecar, out, notes)


# ============================================================================== helpers

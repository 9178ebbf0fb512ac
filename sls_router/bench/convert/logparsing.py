"""OptLLM's Loghub-2k log-parsing runs of 8 LLMs -> replay file."""

from __future__ import annotations

from pathlib import Path

from ...errors import InvalidInputError
from ._common import (
    chars_to_tokens,
    check_limit,
    count,
    finish,
    read_csv,
    require_dir,
    response,
    template_score,
)

LOG_PROMPT = (
    "Abstract the variable parts of this log message with <*> and answer with the "
    "template only.\nLog message: {content}\nTemplate:"
)

#: replay model name -> column prefix in togetherModel_<System>_raw.csv.gz
LOG_TOGETHER = {
    "mixtral-8x7b": "Nous_Mixtral",
    "llama-2-7b": "Nous_llama7b",
    "llama-2-13b": "Nous_llama13b",
    "llama-2-70b": "Nous_llama70b",
    "yi-34b": "Yi_34B",
    "yi-6b": "Yi_6B",
}
#: replay model name -> column prefix in ai21_<System>_raw.csv.gz
LOG_AI21 = {"j2-mid": "j2_mid", "j2-ultra": "j2_ultra"}

#: USD per million tokens, early 2024 list prices (SOURCES.md), same for input and output.
#: Llama-2-13B: SOURCES.md gives 0.225 to 0.3; the upper end is used.
LOG_PRICES = {
    "mixtral-8x7b": 0.6,
    "llama-2-7b": 0.2,
    "llama-2-13b": 0.3,
    "llama-2-70b": 0.9,
    "yi-34b": 0.8,
    "yi-6b": 0.2,
    "j2-mid": 10.0,
    "j2-ultra": 15.0,
}
#: modelled throughput (tokens/s, time to first token in s): plausible 2024 API figures,
#: NOT measured (the source records no latency).
LOG_THROUGHPUT = {
    "mixtral-8x7b": (70, 0.4),
    "llama-2-7b": (120, 0.3),
    "llama-2-13b": (90, 0.35),
    "llama-2-70b": (40, 0.6),
    "yi-34b": (70, 0.45),
    "yi-6b": (120, 0.3),
    "j2-mid": (50, 0.5),
    "j2-ultra": (50, 0.6),
}
#: parameters in billions
LOG_TIER = {
    "mixtral-8x7b": 47,
    "llama-2-7b": 7,
    "llama-2-13b": 13,
    "llama-2-70b": 70,
    "yi-34b": 34,
    "yi-6b": 6,
    "j2-mid": 17,
    "j2-ultra": 178,
}

_LOG_BASE = ("LineId", "Content", "EventId", "EventTemplate")


def convert_logparsing(
    src: str | Path, out: str | Path, *, limit_per_source: int | None = None
) -> dict:
    """OptLLM log-parsing CSVs (folder SRC) -> one request per log line, 8 models."""
    limit = check_limit(limit_per_source)
    folder = require_dir(src, "togetherModel_<System>_raw.csv.gz and ai21_<System>_raw.csv.gz")
    together = {
        p.name[len("togetherModel_") : -len("_raw.csv.gz")]: p
        for p in folder.glob("togetherModel_*_raw.csv.gz")
    }
    ai21 = {p.name[len("ai21_") : -len("_raw.csv.gz")]: p for p in folder.glob("ai21_*_raw.csv.gz")}
    if not together and not ai21:
        raise InvalidInputError(
            f"{folder} holds no togetherModel_<System>_raw.csv.gz or "
            "ai21_<System>_raw.csv.gz files; point SRC at OptLLM's "
            "datasets/log_parsing folder."
        )
    for name, have, other in (("ai21", together, ai21), ("togetherModel", ai21, together)):
        for system in sorted(set(have) - set(other)):
            raise InvalidInputError(
                f"{folder / f'{name}_{system}_raw.csv.gz'} is missing; each "
                "system needs both its togetherModel_ and its ai21_ file."
            )
    t_cols = list(_LOG_BASE) + [
        f"{p}_{s}"
        for p in LOG_TOGETHER.values()
        for s in ("template", "prompt_token_num", "completion_tokens_num")
    ]
    a_cols = (
        list(_LOG_BASE)
        + ["token_num"]
        + [f"{p}_{s}" for p in LOG_AI21.values() for s in ("output", "template")]
    )
    records: list[dict] = []
    systems = sorted(together)
    for system in systems:
        t_rows = read_csv(together[system], t_cols, limit)
        a_rows = read_csv(ai21[system], a_cols, limit)
        if len(t_rows) != len(a_rows):
            raise InvalidInputError(
                f"{together[system]} has {len(t_rows)} rows but {ai21[system]} has "
                f"{len(a_rows)}; both files of a system must hold the same log lines in the "
                "same order."
            )
        for (i, t), (_, a) in zip(t_rows, a_rows):
            if (t["LineId"], t["Content"]) != (a["LineId"], a["Content"]):
                raise InvalidInputError(
                    f"{ai21[system]}: row {i} (LineId {a['LineId']!r}) does not match row {i} "
                    f"of {together[system]} (LineId {t['LineId']!r}); both files must hold the "
                    "same log lines in the same order."
                )
            reference = t["EventTemplate"]
            responses = {}
            for model, prefix in LOG_TOGETHER.items():
                output = t[f"{prefix}_template"]
                responses[model] = response(
                    output,
                    template_score(output, reference),
                    count(t, f"{prefix}_prompt_token_num", together[system], i),
                    count(t, f"{prefix}_completion_tokens_num", together[system], i),
                    LOG_PRICES[model],
                    LOG_PRICES[model],
                    None,
                )
            in_tokens = count(a, "token_num", ai21[system], i)
            for model, prefix in LOG_AI21.items():
                output = a[f"{prefix}_template"]
                responses[model] = response(
                    output,
                    template_score(output, reference),
                    in_tokens,
                    chars_to_tokens(a[f"{prefix}_output"]),
                    LOG_PRICES[model],
                    LOG_PRICES[model],
                    None,
                )
            records.append(
                {
                    "id": f"{system}-{t['LineId']}",
                    "task": f"logparsing/{system}",
                    "prompt": LOG_PROMPT.format(content=t["Content"]),
                    "query": t["Content"],
                    "reference": reference,
                    "scorer": "exact",
                    "group": f"{system}/{t['EventId']}",
                    "responses": responses,
                }
            )
    models = list(LOG_TOGETHER) + list(LOG_AI21)
    sidecar = {
        m: {
            "input_per_mtok": LOG_PRICES[m],
            "output_per_mtok": LOG_PRICES[m],
            "tokens_per_s": LOG_THROUGHPUT[m][0],
            "ttft_s": LOG_THROUGHPUT[m][1],
            "tier": LOG_TIER[m],
        }
        for m in models
    }
    notes = [
        f"{len(systems)} systems ({', '.join(systems)}); accuracies are over these only "
        "(SOURCES.md quotes means over 16 systems).",
        "latency is modelled, not recorded: latency_s is null; the sidecar's tokens_per_s "
        "and ttft_s are plausible 2024 API figures chosen by hand, not measurements.",
        "j2-mid / j2-ultra: AI21 files record prompt tokens only (token_num); output tokens "
        "are estimated as ceil(len(raw <m>_output) / 4).",
        "cost = (input + output tokens) x early-2024 list price per million tokens, same "
        "for input and output: "
        + ", ".join(f"{m} {p:g}" for m, p in LOG_PRICES.items())
        + " (llama-2-13b: upper end of SOURCES.md's 0.225-0.3).",
        "output is the normalised <m>_template column; score 1 iff it equals EventTemplate "
        "after whitespace normalisation.",
        "prompt is a fixed instruction + the log line (a shared prefix like real templated "
        "prompts; OptLLM's exact prompt text is not in the CSVs); query is the log line.",
    ]
    return finish(records, models, sidecar, out, notes)

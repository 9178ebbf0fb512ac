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

Run as `sls-router convert KIND SRC OUT [--limit N]`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ...errors import InvalidInputError
from .humaneval import convert_humaneval
from .logparsing import convert_logparsing
from .overruling import convert_overruling

KINDS = ("logparsing", "humaneval", "overruling")

__all__ = ["KINDS", "convert", "convert_humaneval", "convert_logparsing", "convert_overruling"]


def convert(
    kind: str, src: str | Path, out: str | Path, *, limit_per_source: int | None = None
) -> dict:
    """Convert the recorded source SRC of KIND into the replay file OUT (+ sidecar).

    KIND is one of `KINDS`. `limit_per_source` keeps only the first N log lines of each
    system (logparsing), the first N problems (humaneval, each with its 10 runs) or the
    first N rows (overruling)."""
    converters: dict[str, Callable[..., dict]] = {
        "logparsing": convert_logparsing,
        "humaneval": convert_humaneval,
        "overruling": convert_overruling,
    }
    if kind not in converters:
        raise InvalidInputError(f"unknown source kind {kind!r}; use one of {', '.join(KINDS)}.")
    return converters[kind](src, out, limit_per_source=limit_per_source)

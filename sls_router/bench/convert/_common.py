"""Reading, checking and writing shared by the converters (package-internal)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import InvalidInputError
from ...replay import sidecar_path
from ..trace import normalise


def check_limit(limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInputError(
            f"limit_per_source must be a positive integer or None, got {limit!r}."
        )
    return limit


def require_dir(src: str | Path, holds: str) -> Path:
    folder = Path(src)
    if not folder.is_dir():
        raise InvalidInputError(
            f"source folder {folder} does not exist or is not a folder; "
            f"pass the folder holding {holds}."
        )
    return folder


def read_csv(path: Path, required: list[str], limit: int | None) -> list[tuple[int, dict]]:
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
                    "file? Pass the source file as published (unedited header)."
                )
            for i, row in enumerate(reader, 1):
                if limit is not None and i > limit:
                    break
                absent = [c for c in required if row.get(c) is None]
                if absent:
                    raise InvalidInputError(
                        f"{path}: row {i} (line {reader.line_num}) is short: no value for "
                        f"{', '.join(map(repr, absent))}; fix or remove the row."
                    )
                rows.append((i, row))
    except InvalidInputError:
        raise
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        kind = "a gzipped UTF-8 CSV" if opener is gzip.open else "a UTF-8 CSV"
        raise InvalidInputError(
            f"cannot read {path} as {kind} ({exc}); use the source file as published."
        ) from exc
    return rows


def number(row: dict, column: str, path: Path, i: int) -> float:
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidInputError(
            f"{path}: row {i}: column {column!r} must be a number, got "
            f"{row.get(column)!r}; fix the row or drop it."
        )
    return value


def count(row: dict, column: str, path: Path, i: int) -> int:
    value = number(row, column, path, i)
    if value < 0:
        raise InvalidInputError(
            f"{path}: row {i}: column {column!r} must be a token count >= 0, got {row[column]!r}."
        )
    return int(round(value))


def chars_to_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def template_score(output: str, reference: str) -> float:
    return 1.0 if normalise(output) == normalise(reference) else 0.0


def round6(x: float) -> float:
    return float(f"{x:.10g}")


def response(
    output: str,
    score: float,
    in_tok: int,
    out_tok: int,
    price_in: float,
    price_out: float,
    latency: float | None,
) -> dict[str, Any]:
    cost = (in_tok * price_in + out_tok * price_out) / 1e6
    return {
        "output": output,
        "score": score,
        "input_tokens": in_tok,
        "output_tokens": out_tok,
        "cost": round6(cost),
        "latency_s": latency,
    }


def summary(records: list[dict], models: list[str]) -> dict[str, dict]:
    acc, cost, lat = {}, {}, {}
    for model in models:
        resps = [r["responses"][model] for r in records if model in r["responses"]]
        acc[model] = round(sum(x["score"] for x in resps) / len(resps), 4) if resps else None
        cost[model] = round(sum(x["cost"] for x in resps), 4)
        lats = [x["latency_s"] for x in resps if x["latency_s"] is not None]
        lat[model] = round(statistics.median(lats), 3) if lats else None
    return {"per_model_accuracy": acc, "per_model_cost": cost, "per_model_median_latency_s": lat}


def finish(
    records: list[dict], models: list[str], sidecar: dict, out: str | Path, notes: list[str]
) -> dict:
    if not records:
        raise InvalidInputError("the source holds no requests to convert; check SRC.")
    out = Path(out)
    side = sidecar_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)
    atomic_write(out, lines, gz=out.name.endswith(".gz"))
    atomic_write(side, iter([json.dumps(sidecar, indent=1) + "\n"]), gz=False)
    return {
        "requests": len(records),
        "models": models,
        **summary(records, models),
        "notes": notes,
        "out": str(out),
        "sidecar": str(side),
    }


def atomic_write(path: Path, chunks: Iterator[str], *, gz: bool) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            if gz:  # mtime=0 and no file name: the same input gives the same bytes
                with (
                    gzip.GzipFile(
                        filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9
                    ) as zf,
                    io.TextIOWrapper(zf, encoding="utf-8", newline="\n") as fh,
                ):
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

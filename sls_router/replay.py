"""Recorded answers as a backend: what real LLMs answered on real requests, replayed
offline (no API, no key), in the format of DESIGN.md.

One JSON object per line (id, task, prompt, query, reference, group, scorer and
per-model responses) plus a `<name>.models.json` sidecar with prices and throughput,
used where a response lacks its cost or latency (such latency is marked modelled).
`ReplayBackend` answers as one recorded model, `replay_pool` gives every model of a
file to `SmartRouter` (`SmartRouter.from_replay`); the lab replays the same files.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .backends import BaseBackend
from .errors import InvalidInputError, SLSRouterError
from .types import Completion, ModelSpec, Request, Usage

SCORERS = ("exact", "group")


@dataclass(frozen=True)
class RecordedResponse:
    output: str
    score: float
    input_tokens: int
    output_tokens: int
    cost: float | None
    latency_s: float | None


@dataclass(frozen=True)
class ReplayRecord:
    id: str
    task: str | None
    prompt: str
    query: str | None
    reference: str | None
    group: str | None
    scorer: str
    responses: dict[str, RecordedResponse]

    @property
    def embed_text(self) -> str:
        return self.query if self.query else self.prompt


@dataclass(frozen=True)
class ModelProfile:
    """Prices (USD per million tokens) and throughput of a replayed model."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    tokens_per_s: float | None = None
    ttft_s: float | None = None
    tier: float = 1.0
    supports_tools: bool = False


@dataclass
class ReplayDataset:
    name: str
    records: list[ReplayRecord]
    models: dict[str, ModelProfile]
    _by_prompt: dict[str, ReplayRecord] = field(default_factory=dict, repr=False)
    _by_id: dict[str, ReplayRecord] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for record in self.records:
            self._by_prompt.setdefault(record.prompt, record)
            self._by_id[record.id] = record
        for record in self.records:  # a chat turn may carry only the varying part
            if record.query:
                self._by_prompt.setdefault(record.query, record)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[ReplayRecord]:
        return iter(self.records)

    def find(self, prompt: str) -> ReplayRecord | None:
        """The record whose prompt is `prompt`, else whose query (varying part) is: a chat
        that sends the instructions as system prompt and the log line or question as the
        user turn replays the same recorded answers."""
        return self._by_prompt.get(prompt)

    def get(self, record_id: str) -> ReplayRecord | None:
        """A record by id: replays of repeated prompts (e.g. several runs) stay distinct."""
        return self._by_id.get(record_id)

    @property
    def model_names(self) -> list[str]:
        return list(self.models)

    def subset(
        self, models: Sequence[str] | None = None, tasks: Sequence[str] | None = None
    ) -> ReplayDataset:
        """The same file with a smaller pool (`models`) and/or only some tasks' requests:
        how the router does on a pool or a mix of jobs that it was not tuned on. The name
        says what was kept, so figures name what they replayed."""
        kept = self.model_names if models is None else list(dict.fromkeys(models))
        self._check_names("models", kept, self.model_names)
        if tasks is not None:
            self._check_names("tasks", tasks, sorted({r.task for r in self.records if r.task}))
        records = [
            replace(r, responses={m: r.responses[m] for m in kept if m in r.responses})
            for r in self.records
            if tasks is None or r.task in tasks
        ]
        name = self.name + (f" [models: {', '.join(kept)}]" if models is not None else "")
        name += f" [tasks: {', '.join(tasks)}]" if tasks is not None else ""
        return ReplayDataset(name, records, {m: self.models[m] for m in kept})

    def _check_names(self, kind: str, asked: Sequence[str], known: list[str]) -> None:
        unknown = [a for a in asked if a not in known]
        if unknown or not asked:
            what = f"{kind} {unknown} are not in {self.name}" if unknown else f"no {kind} named"
            raise InvalidInputError(f"{what}: name one or more of {known}.")


def _open_text(path: Path):
    return (
        gzip.open(path, "rt", encoding="utf-8")
        if path.suffix == ".gz"
        else path.open(encoding="utf-8")
    )


def sidecar_path(path: Path) -> Path:
    name = path.name
    for suffix in (".gz", ".jsonl"):
        name = name.removesuffix(suffix)
    return path.with_name(f"{name}.models.json")


def load_dataset(path: str | Path, limit: int | None = None) -> ReplayDataset:
    """Read and validate a replay file; errors name the file and line to fix."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(
            f"replay file {path} does not exist; create one with "
            "`sls-router convert` or pass the right path."
        )
    models = _load_models(sidecar_path(path))
    priced = set(models)  # the sidecar's prices stand, zero included
    records: list[ReplayRecord] = []
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if limit is not None and len(records) >= limit:
                break
            records.append(_parse_record(line, f"{path}:{lineno}", models))
    if not records:
        raise InvalidInputError(f"{path} holds no requests; each line must be one JSON request.")
    _price_from_recorded_costs(models, records, priced)
    return ReplayDataset(path.name, records, models)


def _price_from_recorded_costs(
    models: dict[str, ModelProfile], records: list[ReplayRecord], priced: set[str]
) -> None:
    """A model the sidecar does not list is priced from what its calls cost: USD per
    million tokens, input and output alike (the split is not recorded). Without this
    its price would read as zero, and a router replaying the file would ignore its cost."""
    for name, profile in models.items():
        if name in priced:
            continue
        calls = [r.responses[name] for r in records if name in r.responses]
        usd = sum(c.cost or 0.0 for c in calls)
        tokens = sum(c.input_tokens + c.output_tokens for c in calls)
        if usd > 0 and tokens > 0:
            rate = usd / tokens * 1e6
            models[name] = replace(profile, input_per_mtok=rate, output_per_mtok=rate)


def _load_models(path: Path) -> dict[str, ModelProfile]:
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {name: ModelProfile(**spec) for name, spec in raw.items()}
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"{path}: invalid model sidecar ({exc}); expected "
            '{"model": {"input_per_mtok": ..., "output_per_mtok": ...}}.'
        ) from exc


def _parse_record(line: str, where: str, models: dict[str, ModelProfile]) -> ReplayRecord:
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise InvalidInputError(f"{where}: not valid JSON ({exc}).") from exc
    if not isinstance(obj, dict):
        raise InvalidInputError(f"{where}: each line must be a JSON object.")
    for key in ("id", "prompt", "responses"):
        if key not in obj:
            raise InvalidInputError(
                f"{where}: missing field {key!r}; every request needs id, prompt and responses."
            )
    if not isinstance(obj["prompt"], str) or not isinstance(obj["responses"], dict):
        raise InvalidInputError(f"{where}: prompt must be a string and responses an object.")
    reference = obj.get("reference")
    scorer = obj.get("scorer") or ("exact" if reference is not None else "group")
    if scorer not in SCORERS:
        raise InvalidInputError(f"{where}: unknown scorer {scorer!r}; use one of {SCORERS}.")
    responses = {}
    for model, resp in obj["responses"].items():
        responses[model] = _parse_response(resp, f"{where} model {model!r}", models.get(model))
        if model not in models:
            models[model] = ModelProfile()
    return ReplayRecord(
        id=str(obj["id"]),
        task=obj.get("task"),
        prompt=obj["prompt"],
        query=obj.get("query"),
        reference=reference,
        group=obj.get("group"),
        scorer=scorer,
        responses=responses,
    )


def _parse_response(resp: Any, where: str, profile: ModelProfile | None) -> RecordedResponse:
    if not isinstance(resp, dict) or not isinstance(resp.get("output"), str):
        raise InvalidInputError(f"{where}: a response needs a string 'output'.")
    score = resp.get("score")
    if not isinstance(score, (int, float)) or not (0 <= score <= 1):
        raise InvalidInputError(f"{where}: 'score' must be a number in [0, 1], got {score!r}.")
    tokens = {}
    for key in ("input_tokens", "output_tokens"):
        value = resp.get(key, 0) or 0
        if not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
            raise InvalidInputError(f"{where}: {key!r} must be a count >= 0, got {value!r}.")
        tokens[key] = int(value)
    cost = resp.get("cost")
    if cost is None and (
        profile is None or (profile.input_per_mtok == 0 and profile.output_per_mtok == 0)
    ):
        raise InvalidInputError(
            f"{where}: no 'cost' and no price for this model in the "
            ".models.json sidecar; add one of them."
        )
    if cost is not None and (
        not isinstance(cost, (int, float)) or cost < 0 or not math.isfinite(cost)
    ):
        raise InvalidInputError(f"{where}: 'cost' must be USD >= 0, got {cost!r}.")
    latency = resp.get("latency_s")
    if latency is not None and (
        not isinstance(latency, (int, float)) or latency < 0 or not math.isfinite(latency)
    ):
        raise InvalidInputError(f"{where}: 'latency_s' must be seconds >= 0 or null.")
    return RecordedResponse(
        output=resp["output"], score=float(score), cost=cost, latency_s=latency, **tokens
    )


# -- the backend ------------------------------------------------------------------------
class ReplayMissError(SLSRouterError, LookupError):
    """The replay dataset holds no answer for this prompt and model."""


class ReplayBackend(BaseBackend):
    """Answers one model's requests from recorded outputs, never inventing one.

    The request is matched by its id when it is a record id (replays of repeated
    prompts stay distinct), else by its prompt (or, for chat requests, its last user
    turn).
    Cost and latency are the recorded ones; where latency was not recorded it is
    modelled as ttft + output_tokens / tokens_per_s from the dataset's sidecar and the
    completion says so. By default the clock is virtual (no sleeping) so replays run
    fast; `sleep=True` waits the latency for real.
    """

    def __init__(self, dataset: ReplayDataset, model: str, *, sleep: bool = False) -> None:
        if model not in dataset.models:
            raise InvalidInputError(
                f"model {model!r} is not in replay dataset {dataset.name}; "
                f"use one of {dataset.model_names}."
            )
        self.dataset = dataset
        self.model = model
        self.sleep = sleep

    def complete(self, request: Request) -> Completion:
        completion = self._lookup(request)
        if self.sleep and completion.latency_s:
            time.sleep(completion.latency_s)
        return completion

    async def acomplete(self, request: Request) -> Completion:
        completion = self._lookup(request)
        if self.sleep and completion.latency_s:
            await asyncio.sleep(completion.latency_s)
        return completion

    def _lookup(self, request: Request) -> Completion:
        record = self.dataset.get(request.id)
        for key in _replay_keys(request) if record is None else ():
            record = self.dataset.find(key)
            if record is not None:
                break
        if record is None:
            raise ReplayMissError(
                f"no recorded answer for this prompt in {self.dataset.name} "
                f"(model {self.model}); replay only the dataset's prompts."
            )
        return self.completion_for(record)

    def completion_for(self, record: ReplayRecord) -> Completion:
        """The recorded answer of this model to `record`, with its cost and latency."""
        resp = record.responses.get(self.model)
        if resp is None:
            raise ReplayMissError(
                f"{self.dataset.name}: model {self.model} has no recorded "
                f"answer for request {record.id}."
            )
        profile = self.dataset.models[self.model]
        cost = resp.cost
        if cost is None:
            cost = (
                resp.input_tokens * profile.input_per_mtok
                + resp.output_tokens * profile.output_per_mtok
            ) / 1e6
        latency, modelled = resp.latency_s, False
        if latency is None and profile.tokens_per_s:
            latency = (profile.ttft_s or 0.0) + resp.output_tokens / profile.tokens_per_s
            modelled = True
        return Completion(
            text=resp.output,
            usage=Usage(resp.input_tokens, resp.output_tokens),
            cost_usd=cost,
            latency_s=latency,
            latency_modelled=modelled,
            raw={"replay_id": record.id, "score": resp.score},
        )


def _replay_keys(request: Request) -> list[str]:
    keys = [request.prompt] if request.prompt is not None else []
    for message in reversed(request.messages or []):
        if message["role"] == "user":
            keys.append(message["content"])
            break
    keys.append(request.text)
    return keys


def replay_pool(
    source: str | Path | ReplayDataset,
    *,
    sleep: bool = False,
) -> list[tuple[ModelSpec, ReplayBackend]]:
    """Every model of a replay dataset as (spec, backend), priced from its sidecar."""
    dataset = source if isinstance(source, ReplayDataset) else load_dataset(source)
    pool = []
    for name, profile in dataset.models.items():
        spec = ModelSpec(
            name=name,
            input_per_mtok=profile.input_per_mtok,
            output_per_mtok=profile.output_per_mtok,
            tier=profile.tier,
            supports_tools=profile.supports_tools,
        )
        pool.append((spec, ReplayBackend(dataset, name, sleep=sleep)))
    return pool

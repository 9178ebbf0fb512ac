"""Warm start in the bench: recorded outcomes the router learns before it serves.

Training comes from a second replay file (`--train FILE`) and/or the start of the scored
file (`--train-split F`, taken in file order before any shuffle). Figures never train
on the lines they score: a record id on both sides is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigurationError
from ..replay import ReplayDataset, ReplayRecord
from ..router import SmartRouter


def split_start(
    dataset: ReplayDataset, fraction: float
) -> tuple[list[ReplayRecord], ReplayDataset]:
    """(the first `fraction` of the file, for training; the rest, to score)."""
    if not 0 < fraction < 1:
        raise ConfigurationError(
            f"train_split={fraction!r}: give the fraction of the file to train on, "
            "strictly between 0 and 1."
        )
    k = int(len(dataset) * fraction)
    if k == 0:
        raise ConfigurationError(
            f"train_split={fraction} of {len(dataset)} requests is no request; "
            "give a larger fraction."
        )
    rest = ReplayDataset(dataset.name, dataset.records[k:], dataset.models)
    return dataset.records[:k], rest


def check_disjoint(train: Sequence[ReplayRecord], scored: ReplayDataset) -> None:
    """Refuse a training record that is also scored: its figures would be hindsight."""
    scored_ids = {r.id for r in scored}
    for record in train:
        if record.id in scored_ids:
            raise ConfigurationError(
                f"request id {record.id!r} is both trained on and scored; bench figures "
                "never train on the lines they score: remove it from the training file "
                "or use --train-split."
            )


def training_split(
    dataset: ReplayDataset,
    train: ReplayDataset | None = None,
    split: float | None = None,
) -> tuple[list[ReplayRecord], ReplayDataset]:
    """(records to learn before serving, the dataset to score), checked disjoint."""
    records = list(train.records) if train is not None else []
    scored = dataset
    if split is not None:
        head, scored = split_start(dataset, split)
        records += head
    check_disjoint(records, scored)
    return records, scored


def warm_start(router: SmartRouter, records: Sequence[ReplayRecord]) -> None:
    """Teach `router` the recorded outcomes of its own models before it serves (other
    models' answers are skipped by `SmartRouter.fit`)."""
    if records:
        router.fit(records)

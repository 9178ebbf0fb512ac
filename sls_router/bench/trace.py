"""What a strategy did on each request of a replay, and the figures of DESIGN.md."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..replay import ReplayRecord


def normalise(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Trace:
    """Per-request outcome of one strategy, in replay order."""

    correct: list[bool] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    llm_time: list[float] = field(default_factory=list)
    model: list[str] = field(default_factory=list)  # "cache" for a cache hit
    hit: list[bool] = field(default_factory=list)
    calls: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    # spent on explored requests and on calls made only to learn: the router's capped share
    explored_usd: float = 0.0
    # per feedback source: [verdicts given, verdicts that matched the truth]
    verdicts: dict[str, list[int]] = field(default_factory=dict)

    def add_verdict(self, source: str, passed: bool, right: bool) -> None:
        """A verdict on a served answer, and whether the answer really was right."""
        counts = self.verdicts.setdefault(source, [0, 0])
        counts[0] += 1
        counts[1] += passed == right

    def add(
        self, correct: bool, cost: float, llm_time: float, model: str, hit: bool = False
    ) -> None:
        self.correct.append(bool(correct))
        self.cost.append(float(cost))
        self.llm_time.append(float(llm_time))
        self.model.append(model)
        self.hit.append(bool(hit))

    def summary(self) -> dict:
        n = len(self.correct)
        hits = sum(self.hit)
        wrong_hits = sum(h and not c for h, c in zip(self.hit, self.correct))
        cost = sum(self.cost)
        return {
            "accuracy": sum(self.correct) / n if n else 0.0,
            "cost_usd": cost,
            "llm_time_s": sum(self.llm_time),
            "wall_s": round(self.wall_s, 3),
            "cache_hit_rate": hits / n if n else 0.0,
            "cache_wrong_hit_rate": wrong_hits / hits if hits else 0.0,
            "explored_cost_share": self.explored_usd / cost if cost > 0 else 0.0,
            "calls_per_model": dict(sorted(self.calls.items())),
            "verdicts": {
                source: {"n": n, "right": right / n}
                for source, (n, right) in sorted(self.verdicts.items())
            },
        }


def judge_hit(
    record: ReplayRecord, answer: str, source: ReplayRecord | None, source_correct: bool | None
) -> bool:
    """Is a cached answer right for `record`? Anything the scorer cannot judge is wrong.

    `exact`: the answer equals the reference (whitespace-normalised). `group`: the
    answer came from a request of the same group whose own answer was right."""
    if record.scorer == "exact":
        return record.reference is not None and normalise(answer) == normalise(record.reference)
    return (
        source is not None
        and record.group is not None
        and source.group == record.group
        and bool(source_correct)
    )

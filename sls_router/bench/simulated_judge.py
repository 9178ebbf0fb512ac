"""A judge of stated accuracy, simulated from the replay's labels (the bench only).

The replay holds no judge's answers, so `--judge-accuracy A` stands one in: for the
request being replayed it says whether an answer is right with probability A (and
the opposite otherwise), and abstains where the labels cannot tell (a cached answer
that no model gave to this request, under a scorer that needs its source). Each
grading is charged at the pool's dearest model's prices, a strong model's bill.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..backends import CallableBackend
from ..judge import Judge, grading_request
from ..replay import ReplayRecord
from ..types import Completion, ModelSpec, Request, Usage, estimate_tokens
from .seeds import hashed_draw
from .trace import judge_hit


def _never_called(request: Request) -> Completion:
    raise RuntimeError("the simulated judge grades from the labels; it calls no model")


@dataclass
class SimulatedJudge(Judge):
    accuracy: float = 0.8
    seed: int = 0
    # whether an answer is right for the request being replayed (None: cannot tell)
    truth: Callable[[str], bool | None] = field(default=lambda answer: None)

    @classmethod
    def priced_like(cls, dearest: ModelSpec, accuracy: float, seed: int) -> SimulatedJudge:
        spec = ModelSpec(
            f"judge (simulated, accuracy {accuracy:g})",
            dearest.input_per_mtok,
            dearest.output_per_mtok,
        )
        return cls(spec, CallableBackend(_never_called), accuracy=accuracy, seed=seed)

    def follow(self, record: ReplayRecord) -> None:
        """Grade against `record` from now on (the request being replayed)."""
        self.truth = lambda answer: truth_for(record, answer)

    def grade(
        self, request: Request, answer: str, call: Callable[[Request], Completion] | None = None
    ) -> tuple[float | None, Completion]:
        shown = estimate_tokens(grading_request(request, answer).text)
        completion = Completion("", Usage(shown, 1))
        right = self.truth(answer)
        if right is None:
            return None, completion
        # one draw per (seed, request, answer): the same whatever order gradings run in
        honest = hashed_draw(self.seed, request.id, answer) < self.accuracy
        return float(right if honest else not right), completion


def truth_for(record: ReplayRecord, answer: str) -> bool | None:
    """Right or wrong for `record`, from its labels; None where they cannot tell."""
    for response in record.responses.values():
        if response.output.strip() == answer.strip():
            return response.score >= 0.5
    if record.scorer == "exact":
        return judge_hit(record, answer, None, None)
    return None

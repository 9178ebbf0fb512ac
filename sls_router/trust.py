"""How far each label-free source of feedback is trusted, per task, learned as it runs.

A label-free verdict (a task verifier's, an agreement between two models, a judge's)
is evidence, not truth: a log template that matches its own line is wrong about half
the time, and two models can share a mistake. `SourceTrust` keeps, per (source, task,
verdict), Beta counts of how often such a verdict was right, and turns a verdict into
the probability that the answer is right. Once ground truth has measured a source on a
task, the predictors learn that probability instead of the raw verdict; with
`confirm_precision` set, the cache lets label-free evidence confirm an entry only when
it makes the answer that likely right.

Counts grow from ground truth: a label or a user's rating on an answer that a source
had judged. Cross-checks between sources (two models' passing answers that agree count
both passes right) were tried and left out: models share mistakes, so on recorded log
parsing they taught the verifier a precision it does not have, and the cache then
served more wrong answers.

With no evidence at all the priors speak, and they are deliberately cautious (see
`PRIORS`): a pass proves nothing until measured, a task check's failure is nearly
always right, and an agreement is worth less than a label.
"""

from __future__ import annotations

import threading
from typing import Any

# (right, wrong) pseudo-counts of a verdict before any evidence, by (source, passed); a
# source without one ("label", "user", a user's own such as "thumbs") is taken as the
# truth, as it always was, and teaches the others:
# - a verifier checks a necessary condition (a template matches its own line, code passes
#   its own examples): a failure proves the answer wrong nearly always, a pass is a coin
#   flip until measured;
# - two different models agreeing: likelier right than not, weighing two answers;
#   disagreeing says one of them is wrong, not which;
# - a judge (a model told to grade): likelier right than not, either way.
PRIORS: dict[tuple[str, bool], tuple[float, float]] = {
    ("verifier", True): (1.0, 1.0),
    ("verifier", False): (9.0, 1.0),
    ("agreement", True): (2.0, 1.0),
    ("agreement", False): (1.0, 1.0),
    ("judge", True): (3.0, 1.0),
    ("judge", False): (3.0, 1.0),
    # a tool call whose arguments break its tool's schema would fail (only failures
    # are reported: fitting a schema proves little)
    ("tool_schema", True): (1.0, 1.0),
    ("tool_schema", False): (9.0, 1.0),
    # an answer the chain's output parser (or structured-output schema) refused: it was
    # not usable as asked, nearly always
    ("output_parser", True): (1.0, 1.0),
    ("output_parser", False): (9.0, 1.0),
    # the user asked the same again soon after (reask.py): likelier unhappy than not,
    # but people also ask again for more detail
    ("reask", True): (1.0, 1.0),
    ("reask", False): (2.0, 1.0),
}
LABEL_FREE = frozenset(source for source, _ in PRIORS)


def label_free(source: str) -> bool:
    """Is `source` evidence to weigh by its learned trust (not taken as the truth)?"""
    return source in LABEL_FREE


def right_after_disagreeing(quality: float, other_quality: float) -> float:
    """The probability that an open answer (a template, a text) is right when another
    model's answer to the same request disagreed with it, by Bayes from both models'
    predicted quality on that request.

    Two right answers agree (the task's normalisation compares the one right answer),
    and two wrong open answers are taken never to agree, so a disagreement leaves: this
    one right and the other wrong, the reverse, or both wrong. Teaching both models
    "wrong" instead, as a verdict on each, punished a strong model for every weak one
    that disagreed with it."""
    disagreeing = 1.0 - quality * other_quality  # every case but both right
    return quality * (1.0 - other_quality) / disagreeing if disagreeing > 0 else 0.5


def passed(score: float) -> bool:
    """A verdict is a pass at score 0.5 or above."""
    return score >= 0.5


class SourceTrust:
    """Beta counts, per (source, task, verdict), of how often a label-free verdict was right.

    `task` is any hashable key (the learner uses the task bucket of the request's
    features, so replicas that share rows share the key)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, bool], list[float]] = {}
        self._lock = threading.Lock()

    def p_right(self, source: str, task: str, score: float) -> float:
        """The probability that an answer is right, given `source`'s verdict `score`
        (the truth is taken as it is)."""
        if not label_free(source):
            return float(score)
        verdict = passed(score)
        precision = self.precision(source, task, verdict)
        return precision if verdict else 1.0 - precision

    def training_score(self, source: str, task: str, score: float) -> float:
        """What a predictor learns from `source`'s verdict: the verdict itself until
        ground truth measured such verdicts on `task` (a calibrated coin flip would blur
        the differences between models that their pass rates show), then `p_right`. An
        agreement row between 0 and 1 is a disagreement the router already weighed
        (`right_after_disagreeing`): kept."""
        if (
            not label_free(source)
            or (source == "agreement" and score not in (0.0, 1.0))
            or self.evidence(source, task, passed(score)) == 0
        ):
            return float(score)
        return self.p_right(source, task, score)

    def precision(self, source: str, task: str, verdict: bool) -> float:
        """How often `source`'s pass (or fail) on `task` was right: the posterior mean."""
        right, wrong = self._posterior(source, task, verdict)
        return right / (right + wrong)

    def evidence(self, source: str, task: str, verdict: bool) -> float:
        """How many verdicts (beyond the prior) the precision rests on."""
        with self._lock:
            return sum(self._counts.get((source, task, verdict), (0.0, 0.0)))

    def observe(self, source: str, task: str, score: float, answer_right: bool) -> None:
        """Ground truth on an answer that `source` had given verdict `score`."""
        if not label_free(source):
            return
        verdict = passed(score)
        right = verdict == answer_right
        self._add(source, task, verdict, float(right), float(not right))

    def _add(self, source: str, task: str, verdict: bool, right: float, wrong: float) -> None:
        with self._lock:
            counts = self._counts.setdefault((source, task, verdict), [0.0, 0.0])
            counts[0] += right
            counts[1] += wrong

    def _posterior(self, source: str, task: str, verdict: bool) -> tuple[float, float]:
        prior = PRIORS[(source, verdict)]
        with self._lock:
            right, wrong = self._counts.get((source, task, verdict), (0.0, 0.0))
        return prior[0] + right, prior[1] + wrong

    def report(self) -> list[dict[str, Any]]:
        """Every (source, task, verdict) with its evidence and precision, for operators."""
        with self._lock:
            keys = sorted(self._counts, key=str)
        return [
            {
                "source": source,
                "task": task,
                "verdict": "pass" if verdict else "fail",
                "evidence": round(self.evidence(source, task, verdict), 2),
                "precision": round(self.precision(source, task, verdict), 4),
            }
            for source, task, verdict in keys
        ]

    # -- state (JSON) ---------------------------------------------------------------
    def to_state(self) -> list[list[Any]]:
        with self._lock:
            return [[s, t, v, r, w] for (s, t, v), (r, w) in self._counts.items()]

    @classmethod
    def from_state(cls, state: list[list[Any]]) -> SourceTrust:
        trust = cls()
        for source, task, verdict, right, wrong in state:
            if not (float(right) >= 0 and float(wrong) >= 0):
                raise ValueError("negative trust counts")
            trust._counts[(str(source), str(task), bool(verdict))] = [float(right), float(wrong)]
        return trust

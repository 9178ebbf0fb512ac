"""An LLM that grades answers: label-free evidence the router buys on purpose.

A judge reads a request and one answer and says whether the answer is right. Its
verdicts are feedback of source "judge", weighed like every label-free source by how
often they proved right (trust.py): a judge shares blind spots with the models it grades.
Asking costs a call, so the router asks off the request path, on a sampled share of fresh
answers and on borderline cache hits (which wait for its "yes" before they are served),
within the cap on what learning may spend.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .backends import Backend
from .errors import ConfigurationError
from .types import Completion, ModelSpec, Request, estimate_tokens

INSTRUCTIONS = (
    "You grade answers. Read the request and the answer below and decide whether the "
    "answer is correct and does what the request asks. Reply with one word: YES or NO."
)
MAX_SHOWN_CHARS = 8_000  # of the request and of the answer: a judge's call stays bounded
MAX_READ_CHARS = 200  # of the judge's reply: the verdict is its first word
_FIRST_WORD = re.compile(r"[A-Za-z]+")


@dataclass
class Judge:
    """A grading model: its price (`spec`, to count what judging costs) and its backend."""

    spec: ModelSpec
    backend: Backend

    @classmethod
    def of(
        cls,
        judge: str | tuple[ModelSpec, Backend] | Judge,
        pool: dict[str, Backend],
        specs: dict[str, ModelSpec],
    ) -> Judge:
        """A judge given as the name of a pool model or as a (ModelSpec, backend) pair,
        the same shape as a pool entry (or a Judge, e.g. one that grades otherwise)."""
        if isinstance(judge, Judge):
            return judge
        if isinstance(judge, str):
            if judge not in pool:
                raise ConfigurationError(
                    f"judge={judge!r} is not a model of the pool ({', '.join(sorted(pool))}); "
                    "name one, or pass a (ModelSpec, backend) pair."
                )
            return cls(specs[judge], pool[judge])
        if isinstance(judge, tuple) and len(judge) == 2:
            spec, backend = judge
            if isinstance(spec, ModelSpec) and callable(getattr(backend, "complete", None)):
                return cls(spec, backend)
        raise ConfigurationError(
            f"judge={judge!r}: pass the name of a pool model or a (ModelSpec, backend) pair."
        )

    def grade(
        self, request: Request, answer: str, call: Callable[[Request], Completion] | None = None
    ) -> tuple[float | None, Completion]:
        """1.0 (right), 0.0 (wrong) or None (the judge did not say), and its call. `call`
        sends the grading request (the router's bounds it by the judge's `timeout_s`);
        by default the backend is called directly."""
        completion = (call or self.backend.complete)(grading_request(request, answer))
        return parse_verdict(completion.text), completion

    def expected_cost(self, request: Request, answer: str) -> float:
        """What grading this answer should cost (a one-word reply), for the spend cap."""
        return self.spec.cost(estimate_tokens(grading_request(request, answer).text), 2)


def grading_request(request: Request, answer: str) -> Request:
    """The judge's own request: the instructions, then the request and the answer, each
    cut at MAX_SHOWN_CHARS."""
    shown = f"Request:\n{_cut(request.text)}\n\nAnswer:\n{_cut(answer)}"
    return Request(
        messages=[{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": shown}],
        task="judge",
        namespace=request.namespace,
        params={"temperature": 0, "max_tokens": 5},
    )


def parse_verdict(reply: str | None) -> float | None:
    """The first word of the reply: yes / correct / right is 1.0, no / incorrect / wrong
    is 0.0, anything else None. Only the first MAX_READ_CHARS are read."""
    match = _FIRST_WORD.search((reply or "")[:MAX_READ_CHARS])
    word = match.group(0).casefold() if match else ""
    if word in ("yes", "correct", "right", "true", "pass"):
        return 1.0
    if word in ("no", "incorrect", "wrong", "false", "fail"):
        return 0.0
    return None


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + " [...]"

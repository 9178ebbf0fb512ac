"""Users simulated from the labels (the bench only): they ask again after a bad answer.

The replays hold no conversations, so `--reask-rate P[,Q]` stands users in: after an
answer the harness knows to be wrong, the user sends the same request again, in the
same thread, with probability P; after a right one with probability Q (people also ask
again for more detail, or by mistake; 0.05 unless given). What is modelled: the rates,
and that a user asks again at once. The router is told nothing but what it would see,
the same question again in the thread (sls_router/reask.py). A re-ask is answered and
paid like any request; its cost counts, and the figures still score the first answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigurationError
from .seeds import hashed_draw

DEFAULT_AFTER_RIGHT = 0.05


@dataclass(frozen=True)
class SimulatedUsers:
    after_wrong: float
    after_right: float = DEFAULT_AFTER_RIGHT
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("after_wrong", "after_right"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigurationError(
                    f"re-ask rate {value!r}: pass probabilities in [0, 1], as --reask-rate P[,Q]."
                )

    def ask_again(self, request_id: str, answer_right: bool) -> bool:
        """Does the user ask `request_id` again? One draw per (seed, request): the same
        in every order."""
        rate = self.after_right if answer_right else self.after_wrong
        return hashed_draw(self.seed, "reask", request_id) < rate

    def describe(self) -> str:
        return (
            f"simulated users asking again after {self.after_wrong:g} of wrong "
            f"and {self.after_right:g} of right answers"
        )


def parse_reask_rates(text: str) -> tuple[float, float]:
    """ "P" or "P,Q" -> (P, Q), Q defaulting to DEFAULT_AFTER_RIGHT."""
    try:
        rates = [float(part) for part in text.split(",")]
    except ValueError as exc:
        raise ConfigurationError(
            f"--reask-rate {text!r}: pass P or P,Q, probabilities in [0, 1]."
        ) from exc
    if len(rates) not in (1, 2):
        raise ConfigurationError(f"--reask-rate {text!r}: pass P or P,Q.")
    after_right = rates[1] if len(rates) == 2 else DEFAULT_AFTER_RIGHT
    users = SimulatedUsers(rates[0], after_right)  # checks the range
    return users.after_wrong, users.after_right

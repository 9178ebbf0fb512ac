"""Whether two answers to equivalent requests say the same, after the task's normalisation.

Two independent answers that agree are evidence that both are right; answers that
differ say that at least one is wrong. What "the same" means depends on the task kind
(the part of `Request.task` before the slash): a log template is compared with its
whitespace and runs of wildcards collapsed, a label by its first word, case and
punctuation aside; generated code cannot be compared as text (two right programs
rarely read alike), so it gives no verdict and is left to its verifier.
"""

from __future__ import annotations

import re

# bounded work on model output: answers are compared on their first characters only
MAX_COMPARED_CHARS = 4000
_WILDCARDS = re.compile(r"(?:<\*>\s*)+")
_WORD = re.compile(r"[^\W_]+")


def task_kind(task: str | None) -> str:
    return (task or "").split("/", 1)[0]


def _template(text: str) -> str:
    return _WILDCARDS.sub("<*> ", " ".join(text.split())).strip()


def _label(text: str) -> str:
    match = _WORD.search(text.casefold())
    return match.group(0) if match else ""


def _text(text: str) -> str:
    return " ".join(text.casefold().split())


NORMALISERS = {"logparsing": _template, "classification": _label, "codegen": None}


def few_answers(task: str | None) -> bool:
    """Are this task's answers a label among a few? Two wrong ones then agree as easily
    as two right ones (on a yes / no task, always), so without ground truth a comparison
    cannot tell a shared bias from the truth."""
    return task_kind(task) == "classification"


def normalise(task: str | None, answer: str) -> str | None:
    """The comparable form of `answer` for `task`, or None when such answers cannot be
    compared as text."""
    kind = task_kind(task)
    rule = NORMALISERS.get(kind, _text)
    if rule is None:
        return None
    return rule(answer[:MAX_COMPARED_CHARS])


def agree(task: str | None, first: str, second: str) -> bool | None:
    """Do two answers to `task` say the same? None: they cannot be compared (code), or
    one of them says nothing."""
    a, b = normalise(task, first), normalise(task, second)
    if not a or not b:
        return None
    return a == b

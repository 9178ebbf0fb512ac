"""Label-free verifiers: a task's own check of an answer, used as (weak) feedback.

A verifier returns 1.0 (passes), 0.0 (fails) or None (cannot judge). A pass is
evidence, not truth: a log template that matches its own line may still be wrong,
so the router weighs verifier verdicts below labels.
"""

from __future__ import annotations

import doctest
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import jsonschema

from .errors import ConfigurationError
from .sandbox import Sandbox, run_python
from .types import Request

logger = logging.getLogger(__name__)

_WILDCARD = "<*>"
# a tool call's arguments longer than this (as JSON) are not checked: the check stays
# bounded whatever a model returns
MAX_TOOL_ARGS_CHARS = 10_000


class Verifier(Protocol):
    def __call__(self, request: Request, answer: str) -> float | None: ...


def template_matches(template: str, line: str) -> bool:
    """Does a log template (with `<*>` wildcards) match its log line exactly?

    Everything but `<*>` matches literally, after whitespace is normalised. Each `<*>`
    stands for one value of the line: at least one character, with no space at either
    end, and two wildcards need fixed text between them to be told apart. A template
    that puts `<*>` where the line has nothing, lets one swallow a space the line has
    ("package:<*>" for "package: KB2928120"), writes `<*><*>`, or has no fixed text at
    all, is not the line's template: on the bundled log replay no such answer was right,
    and 1 reference of 24,000 has an empty value (`vibrate=[]`).

    Runs in linear time: each fixed part is placed at its first occurrence that leaves a
    value before it and lets one start right after it. Whether a place is valid depends
    on that place alone, so the earliest valid one never loses a match a later one
    would find; a model's template with thousands of wildcards costs what reading the
    line costs, never a backtracking search.
    """
    template = " ".join(template.split())
    line = " ".join(line.split())
    if not template.replace(_WILDCARD, "").strip():
        return False  # no fixed text: it would match every line, and says nothing of this one
    parts = template.split(_WILDCARD)
    if len(parts) == 1:
        return template == line
    first, *middle, last = parts
    position, end = len(first), len(line) - len(last)
    if end <= position or not line.startswith(first) or not line.endswith(last):
        return False
    for part in middle:
        found = _place(line, part, position, end) if part else -1
        if found < 0:
            return False
        position = found + len(part)
    return _is_value(line, position, end)


def _is_value(line: str, start: int, stop: int) -> bool:
    """May a wildcard stand for line[start:stop]: not empty, no space at either end?"""
    return start < stop and line[start] != " " and line[stop - 1] != " "


def _place(line: str, part: str, start: int, stop: int) -> int:
    """The first place of `part` in line[start:stop] with a value before it (from
    `start`) and room for one right after it; -1 if there is none."""
    if start >= stop or line[start] == " ":
        return -1
    found = line.find(part, start + 1, stop)
    while found >= 0:
        after = found + len(part)
        if line[found - 1] != " " and after < stop and line[after] != " ":
            return found
        found = line.find(part, found + 1, stop)
    return -1


class BoundedVerifier:
    """Runs a verifier within a time budget, so that no answer can hold a request.

    Each check runs on a daemon thread; past `timeout_s` the verdict is None (cannot
    judge) and the request goes on. A verifier that raises or returns anything but a
    number in [0, 1] or None is "cannot judge" too. Each kind of trouble is logged once
    per verifier, and counted in `stats()`. Python cannot stop a thread: a check that
    never ends keeps its thread, and once `max_stuck` are stuck, further checks are
    skipped (None) until one finishes, so a hanging verifier cannot pile up threads.
    """

    def __init__(self, verifier: Verifier, timeout_s: float = 10.0, *, max_stuck: int = 8) -> None:
        if not callable(verifier):
            raise ConfigurationError(
                "verifier must be a function (request, answer_text) -> score in [0, 1] or None."
            )
        if not timeout_s > 0:
            raise ConfigurationError(f"verifier_timeout_s must be > 0 seconds, got {timeout_s!r}.")
        self.verifier = verifier
        self.timeout_s = float(timeout_s)
        self.max_stuck = max_stuck
        self._counts = {"checked": 0, "timed_out": 0, "failed": 0, "skipped": 0}
        self._stuck = 0
        self._lock = threading.Lock()
        self._logged: set[str] = set()

    def __call__(self, request: Request, answer: str) -> float | None:
        with self._lock:
            self._counts["checked"] += 1
            if self._stuck >= self.max_stuck:
                self._counts["skipped"] += 1
                return None
        check = _Check(self.verifier, request, answer)
        if not check.wait(self.timeout_s):
            with self._lock:
                self._counts["timed_out"] += 1
                if check.abandon(on_end=self._unstick):
                    self._stuck += 1
            self._warn(
                "timeout",
                f"verifier {self.verifier!r} took longer than "
                f"{self.timeout_s:g} s: its answers are served unjudged (counted in "
                "the router's stats()); raise verifier_timeout_s or fix the verifier",
            )
            return None
        if isinstance(check.outcome, BaseException):
            self._fail(
                "raised",
                f"verifier {self.verifier!r} raised "
                f"{type(check.outcome).__name__}: {check.outcome}",
            )
            return None
        verdict = check.outcome
        if verdict is None:
            return None
        if isinstance(verdict, (bool, int, float)) and 0.0 <= float(verdict) <= 1.0:
            return float(verdict)
        self._fail(
            "verdict",
            f"verifier {self.verifier!r} returned {verdict!r}; a verifier "
            "returns a score in [0, 1] or None",
        )
        return None

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {**self._counts, "stuck": self._stuck}

    def _unstick(self) -> None:
        with self._lock:
            self._stuck -= 1

    def _fail(self, kind: str, message: str) -> None:
        with self._lock:
            self._counts["failed"] += 1
        self._warn(kind, message + " (treated as 'cannot judge')")

    def _warn(self, kind: str, message: str) -> None:
        with self._lock:
            if kind in self._logged:
                return
            self._logged.add(kind)
        logger.warning(message)


class _Check:
    """One verification on its own daemon thread (a daemon never blocks interpreter exit)."""

    def __init__(self, verifier: Verifier, request: Request, answer: str) -> None:
        self.outcome: float | None | BaseException = None
        self._on_end: Callable[[], None] | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._verifier, self._request, self._answer = verifier, request, answer
        threading.Thread(target=self._run, name="sls-router-verify", daemon=True).start()

    def _run(self) -> None:
        try:
            self.outcome = self._verifier(self._request, self._answer)
        except BaseException as exc:  # a verifier's failure is "cannot judge", never a crash
            self.outcome = exc
        with self._lock:
            self._done.set()
            on_end = self._on_end
        if on_end is not None:
            on_end()

    def wait(self, timeout_s: float) -> bool:
        return self._done.wait(timeout_s)

    def abandon(self, on_end: Callable[[], None]) -> bool:
        """Give up on this check; True when it is still running (it is then stuck, and
        calls `on_end` when it ends at last)."""
        with self._lock:
            if self._done.is_set():
                return False
            self._on_end = on_end
            return True


class LogTemplateVerifier:
    """The template must match the log line it was extracted from (the request's query)."""

    def __call__(self, request: Request, answer: str) -> float | None:
        line = request.query or request.embed_text
        if not line.strip():
            return None
        return 1.0 if template_matches(answer, line) else 0.0


_RUNNER = r"""
import doctest, json, sys
spec = json.load(sys.stdin)
namespace = {"__name__": "__verify__"}
exec(compile(spec["code"], "<generated>", "exec"), namespace)
parser = doctest.DocTestParser()
test = parser.get_doctest(spec["doctests"], namespace, "prompt", "<prompt>", 0)
runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
result = runner.run(test, out=lambda s: None)
print(json.dumps({"attempted": result.attempted, "failed": result.failed}))
"""


class DoctestVerifier:
    """Runs generated code against the doctest examples in the prompt's docstring.

    The code runs in a bubblewrap `Sandbox` (see sandbox.py for exactly what it can see
    and do), killed after `timeout_s`: a timeout or a crash fails the answer. Where no
    sandbox can be started, generated code is not run at all: the verdict is None
    (cannot judge) and one log line says what to install. `unsafe_run_without_sandbox`
    runs it anyway, as the router's own user with only resource limits: for code you
    trust. Prompts without examples cannot be judged (None). The code runs in the
    same process as the check, so hostile code can fake a pass: a verdict is evidence.
    """

    def __init__(
        self,
        timeout_s: float = 5.0,
        *,
        sandbox: Sandbox | None = None,
        unsafe_run_without_sandbox: bool = False,
    ) -> None:
        self.timeout_s = timeout_s
        self.sandbox = sandbox or Sandbox()
        self.unsafe_run_without_sandbox = unsafe_run_without_sandbox

    def __call__(self, request: Request, answer: str) -> float | None:
        prompt = request.prompt if request.prompt is not None else request.embed_text
        examples = doctest.DocTestParser().get_examples(prompt)
        if not examples:
            return None
        sandbox: Sandbox | None = self.sandbox
        if self.unsafe_run_without_sandbox:
            sandbox = None
        elif (problem := self.sandbox.problem()) is not None:
            _log_once(
                f"generated code is not run, so codegen answers cannot be judged: "
                f"{problem}; or pass unsafe_run_without_sandbox=True for trusted code"
            )
            return None
        doctests = "".join(
            f">>> {ex.source.rstrip()}\n{_until_docstring_end(ex.want)}" for ex in examples
        )
        code = answer if "def " in answer else prompt + answer
        payload = json.dumps({"code": code, "doctests": doctests})
        result = run_python(_RUNNER, payload, self.timeout_s, sandbox=sandbox)
        if result.returncode != 0:
            return 0.0  # crashed, or killed at its time limit
        try:
            counts = json.loads(result.last_line)
            passed = counts["attempted"] > 0 and counts["failed"] == 0
        except (ValueError, TypeError, KeyError):
            return 0.0
        return 1.0 if passed else 0.0


_logged: set[str] = set()


def _log_once(message: str) -> None:
    if message not in _logged:
        _logged.add(message)
        logger.warning(message)


def _until_docstring_end(want: str) -> str:
    """An example's expected output ends where the docstring closes."""
    kept = []
    for line in want.splitlines(keepends=True):
        if line.strip().startswith(('"""', "'''")):
            break
        kept.append(line)
    return "".join(kept)


VERIFIERS = {"logparsing": LogTemplateVerifier, "codegen": DoctestVerifier}


class TaskVerifier:
    """Picks the verifier by the request's task kind (`<kind>/<name>`); None otherwise."""

    def __init__(self) -> None:
        self._by_kind = {kind: cls() for kind, cls in VERIFIERS.items()}

    def __call__(self, request: Request, answer: str) -> float | None:
        kind = (request.task or "").split("/", 1)[0]
        verifier = self._by_kind.get(kind)
        return None if verifier is None else verifier(request, answer)


def tool_call_verdict(
    tools: Sequence[Mapping[str, Any]] | None, tool_calls: Sequence[Mapping[str, Any]]
) -> float | None:
    """0.0 when a tool call names no bound tool or its arguments break that tool's JSON
    schema (the call would fail); None otherwise, since a call that fits its schema may
    still be the wrong one. A schema that is itself invalid is the user's, not the
    model's, fault: it judges nothing."""
    schemas: dict[str, Any] = {}
    for tool in tools or ():
        function = tool.get("function", tool) if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            schemas[function["name"]] = function.get("parameters")
    if not schemas:
        return None
    for call in tool_calls:
        if call.get("name") not in schemas:
            return 0.0
        schema, args = schemas[call["name"]], call.get("args", {})
        if not isinstance(schema, Mapping):
            continue
        if len(json.dumps(args, default=str)) > MAX_TOOL_ARGS_CHARS:
            return None
        try:
            jsonschema.validate(args, schema)
        except jsonschema.ValidationError:
            return 0.0
        except jsonschema.SchemaError:
            continue
    return None

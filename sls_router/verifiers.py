"""Label-free verifiers: a task's own check of an answer, used as (weak) feedback.

A verifier returns 1.0 (passes), 0.0 (fails) or None (cannot judge). A pass is
evidence, not truth: a log template that matches its own line may still be wrong,
so the router weighs verifier verdicts below labels.
"""

from __future__ import annotations

import doctest
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Protocol

from .types import Request

_WILDCARD = "<*>"


class Verifier(Protocol):
    def __call__(self, request: Request, answer: str) -> float | None: ...


def template_matches(template: str, line: str) -> bool:
    """Does a log template (with `<*>` wildcards) match its log line exactly?"""
    template = " ".join(template.split())
    line = " ".join(line.split())
    if not template:
        return False
    parts = [re.escape(p) for p in template.split(_WILDCARD)]
    pattern = "(?:.*?)".join(parts)
    return re.fullmatch(pattern, line, flags=re.DOTALL) is not None


class LogTemplateVerifier:
    """The template must match the log line it was extracted from (the request's query)."""

    def __call__(self, request: Request, answer: str) -> float | None:
        line = request.query or request.embed_text
        if not line.strip():
            return None
        return 1.0 if template_matches(answer, line) else 0.0


_RUNNER = r"""
import doctest, json, socket, sys
def _no_network(*a, **k):
    raise OSError("network access is disabled while verifying generated code")
socket.socket = _no_network
socket.create_connection = _no_network
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

    The code runs in a separate, isolated Python process (`-I`, empty environment,
    sockets disabled, temporary working directory) killed after `timeout_s`.
    Prompts without examples cannot be judged (None).
    """

    def __init__(self, timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s

    def __call__(self, request: Request, answer: str) -> float | None:
        prompt = request.prompt if request.prompt is not None else request.embed_text
        examples = doctest.DocTestParser().get_examples(prompt)
        if not examples:
            return None
        doctests = "".join(f">>> {ex.source.rstrip()}\n{_until_docstring_end(ex.want)}"
                           for ex in examples)
        code = answer if "def " in answer else prompt + answer
        payload = json.dumps({"code": code, "doctests": doctests})
        with tempfile.TemporaryDirectory() as workdir:
            try:
                proc = subprocess.run([sys.executable, "-I", "-c", _RUNNER], input=payload,
                                      capture_output=True, text=True, timeout=self.timeout_s,
                                      cwd=workdir, env={"PATH": os.defpath})
            except subprocess.TimeoutExpired:
                return 0.0
        if proc.returncode != 0:
            return 0.0
        try:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return 0.0
        return 1.0 if result["attempted"] > 0 and result["failed"] == 0 else 0.0


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

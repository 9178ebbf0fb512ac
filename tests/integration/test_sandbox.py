"""Generated code runs in a bubblewrap sandbox: hostile answers leave the host untouched
and fail (or cannot be judged), right answers still pass."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from sls_router import DoctestVerifier, Sandbox
from sls_router.sandbox import _processes_of
from sls_router.types import Request

PROMPT = 'def add(a, b):\n    """Add.\n    >>> add(1, 2)\n    3\n    """\n'
RIGHT = "def add(a, b):\n    return a + b\n"


def _verify(answer: str, prompt: str = PROMPT, **options) -> float | None:
    return DoctestVerifier(timeout_s=10, **options)(Request(prompt=prompt), answer)


@pytest.fixture(scope="module", autouse=True)
def sandbox_works():
    problem = Sandbox().problem()
    assert problem is None, f"the sandbox must start here (make test installs it): {problem}"


def test_right_answers_still_pass_and_wrong_ones_fail():
    assert _verify(RIGHT) == 1.0
    assert _verify("def add(a, b):\n    return a - b\n") == 0.0
    assert _verify("    return a + b\n") == 1.0  # a body completing the prompt
    assert _verify("def add(a, b):\n    while True: pass\n") == 0.0  # killed at its time limit


def test_the_reported_attack_leaves_no_file_on_the_host():
    name = f"sls_pwned_{uuid.uuid4().hex}"
    answer = (
        f'import os\nopen(os.path.expanduser("~/{name}"), "w")'
        f'.write(os.popen("id -un").read())\n{RIGHT}'
    )
    _verify(answer)  # its verdict does not matter: the host must not change
    assert not (Path.home() / name).exists()


def _probe(body: str) -> str:
    """An answer whose doctest passes only if `body` (returning a bool) returns True."""
    indented = "".join(f"    {line}\n" for line in body.splitlines())
    return f"def probe():\n{indented}"


PROBE_PROMPT = 'def probe():\n    """\n    >>> probe()\n    True\n    """\n'


def test_writing_outside_its_directory_has_no_effect(tmp_path):
    target = tmp_path / "written"
    answer = _probe(f"open({str(target)!r}, 'w').write('x')\nreturn True")
    assert _verify(answer, PROBE_PROMPT) == 0.0 and not target.exists()
    assert _verify(answer, PROBE_PROMPT, unsafe_run_without_sandbox=True) == 1.0
    assert target.exists()  # unconfined, the same answer does write: the test can tell


def test_reading_a_host_file_fails(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    answer = _probe(f"return open({str(secret)!r}).read() == 's3cret'")
    assert _verify(answer, PROBE_PROMPT) == 0.0
    assert _verify(answer, PROBE_PROMPT, unsafe_run_without_sandbox=True) == 1.0
    for path in ("/etc/passwd", str(Path.home()), os.getcwd()):
        assert _verify(_probe(f"import os\nreturn os.path.exists({path!r})"), PROBE_PROMPT) == 0.0


@pytest.mark.parametrize("module", ["socket", "_socket"])
def test_no_socket_reaches_the_host(module):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(3)
    port = server.getsockname()[1]
    connected = []

    def accept():
        with contextlib.suppress(OSError):
            connected.append(server.accept())

    listener = threading.Thread(target=accept)
    listener.start()
    answer = _probe(
        f"import {module}\ns = {module}.socket()\n"
        f"s.connect(('127.0.0.1', {port}))\ns.send(b'hi')\nreturn True"
    )
    verdict = _verify(answer, PROBE_PROMPT)
    listener.join()
    server.close()
    assert verdict == 0.0 and not connected


def test_forking_many_processes_is_stopped_and_cleaned_up():
    before = _processes_of(Sandbox().run_as() or os.getuid())
    answer = _probe(
        "import os, time\nfor _ in range(500):\n"
        "    if os.fork() == 0:\n        time.sleep(30)\n        os._exit(0)\n"
        "return True"
    )
    assert _verify(answer, PROBE_PROMPT) == 0.0
    deadline = time.monotonic() + 5  # killed processes may take a moment to be reaped
    while _processes_of(Sandbox().run_as() or os.getuid()) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_of(Sandbox().run_as() or os.getuid()) <= before  # none left behind


def test_allocating_far_more_memory_than_allowed_fails():
    answer = _probe("block = bytearray(8 << 30)\nreturn True")
    assert _verify(answer, PROBE_PROMPT) == 0.0


def test_without_a_sandbox_generated_code_is_not_run(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "sls_router.verifiers")
    target = tmp_path / "ran"
    answer = f"open({str(target)!r}, 'w').write('x')\n{RIGHT}"
    missing = Sandbox(bwrap=str(tmp_path / "no-bwrap"))
    for _ in range(3):
        assert _verify(answer, sandbox=missing) is None
    assert not target.exists()
    assert sum("apt-get install bubblewrap" in r.message for r in caplog.records) == 1
    assert _verify(answer, sandbox=missing, unsafe_run_without_sandbox=True) == 1.0
    assert target.exists()

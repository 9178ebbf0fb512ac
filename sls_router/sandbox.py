"""Runs untrusted Python (code a model wrote) where it cannot touch the host.

A model's answer can be steered by whoever wrote the request or the documents it
retrieved, so code from it is treated as hostile. `Sandbox` runs it under bubblewrap
(`bwrap`, the sandbox Flatpak uses). Inside, the code sees:

- a read-only `/usr` and a read-only copy of the Python installation, nothing else of
  the host's files: no home directories, no `/etc`, no project or state files;
- a private, empty tmpfs as `/tmp`: its working directory and the only writable place,
  gone when it exits;
- its own `/proc` and a minimal `/dev`; new user, PID, network, IPC, UTS and cgroup
  namespaces (no network at all, not even the host's loopback), no capabilities, no
  further user namespaces, a new terminal session, and an empty environment;
- an unprivileged user id when the router runs as root (the kernel does not enforce
  process limits on root), and limits on CPU seconds, address space, processes, open
  files and file size (`SandboxLimits`); it is killed, with every process it started,
  when its time is up or the router exits.

`run_python(..., sandbox=None)` runs the same script with the same limits but without
isolation: only for code the user trusts, behind a parameter that says it is unsafe.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_NOBODY = 65534
_OUTPUT_LIMIT = 1 << 16  # bytes of the script's stdout that are read back


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run resource limits (setrlimit), applied to the sandbox and all it starts."""

    cpu_s: int = 10
    address_space_bytes: int = 1 << 30
    processes: int = 16  # beyond those the sandbox user already has
    file_bytes: int = 1 << 24
    open_files: int = 64


@dataclass(frozen=True)
class RunResult:
    returncode: int | None  # None: killed at its time limit
    stdout: str

    @property
    def last_line(self) -> str:
        lines = self.stdout.strip().splitlines()
        return lines[-1] if lines else ""


class Sandbox:
    """A bubblewrap sandbox for one Python script at a time (see the module docstring).

    `problem()` says why no sandbox can be started here (None when it can); it is
    checked once, by starting a sandbox, and remembered.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        bwrap: str = "bwrap",
        sandbox_uid: int = _NOBODY,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.bwrap = bwrap
        self.sandbox_uid = sandbox_uid
        self._problem: str | None = None
        self._checked = False
        self._lock = threading.Lock()

    def problem(self) -> str | None:
        with self._lock:
            if not self._checked:
                self._problem = self._find_problem()
                self._checked = True
            return self._problem

    def _find_problem(self) -> str | None:
        if shutil.which(self.bwrap) is None:
            return (
                f"bubblewrap ({self.bwrap}) is not installed: install it (Debian/Ubuntu: "
                "`apt-get install bubblewrap`, Fedora: `dnf install bubblewrap`)"
            )
        if self._python is None:
            return (
                "no Python interpreter is readable by the sandbox user "
                f"{self.run_as() or os.getuid()}: install one under /usr or make this "
                "one's directories world-readable"
            )
        result, error = _run(
            self.command(["-c", "print('ready')"]), "", 10.0, self.limits, self.run_as()
        )
        if result.last_line != "ready":
            return f"bubblewrap could not start a sandbox: {error.strip()[:300] or 'no output'}"
        return None

    def run_as(self) -> int | None:
        """Root is exempt from process limits: the sandbox then runs as an unprivileged uid."""
        return self.sandbox_uid if os.getuid() == 0 else None

    @functools.cached_property
    def _python(self) -> tuple[str, str] | None:
        """(interpreter, installation prefix) that the sandbox user can read."""
        candidates = [(os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix))]
        system = shutil.which("python3", path="/usr/bin")
        if system is not None:
            candidates.append((os.path.realpath(system), "/usr"))
        for exe, prefix in candidates:
            if exe.startswith(prefix + os.sep) and (
                self.run_as() is None or _world_readable(Path(exe))
            ):
                return exe, prefix
        return None

    def command(self, python_args: list[str]) -> list[str]:
        python = self._python
        if python is None:
            raise RuntimeError("no interpreter for the sandbox; call problem() first")
        exe, prefix = python
        args = [
            self.bwrap,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--clearenv",
            "--setenv",
            "HOME",
            "/tmp",
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        if not prefix.startswith("/usr/") and prefix != "/usr":
            args += ["--ro-bind", prefix, prefix]
        args += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--chdir",
            "/tmp",
            exe,
            "-I",
            "-X",
            "utf8",
            *python_args,
        ]
        return args


def run_python(
    script: str,
    stdin: str,
    timeout_s: float,
    *,
    sandbox: Sandbox | None,
    limits: SandboxLimits | None = None,
) -> RunResult:
    """Run `script` with `stdin`; `sandbox=None` runs it unconfined (trusted code only)."""
    if sandbox is None:
        with tempfile.TemporaryDirectory() as workdir:
            command = [sys.executable, "-I", "-X", "utf8", "-c", script]
            return _run(command, stdin, timeout_s, limits or SandboxLimits(), None, cwd=workdir)[0]
    return _run(
        sandbox.command(["-c", script]), stdin, timeout_s, sandbox.limits, sandbox.run_as()
    )[0]


def _run(
    command: list[str],
    stdin: str,
    timeout_s: float,
    limits: SandboxLimits,
    run_as: int | None,
    cwd: str | None = None,
) -> tuple[RunResult, str]:
    """Start `command` in its own session with `limits`, kill the whole session at
    `timeout_s`; output goes to files (bounded by the file-size limit), not pipes."""
    processes = _processes_of(run_as if run_as is not None else os.getuid())
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            cwd=cwd,
            env={"PATH": os.defpath},
            start_new_session=True,
            user=run_as,
            group=run_as,
            extra_groups=[] if run_as is not None else None,
            preexec_fn=lambda: _apply_limits(limits, processes),
        )
        returncode: int | None
        try:
            proc.communicate(stdin.encode("utf-8", "surrogatepass"), timeout=timeout_s)
            returncode = proc.returncode
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            _kill_session(proc)
        return RunResult(returncode, _tail(out)), _tail(err)


def _apply_limits(limits: SandboxLimits, processes: int) -> None:
    for which, value in (
        (resource.RLIMIT_CPU, limits.cpu_s),
        (resource.RLIMIT_AS, limits.address_space_bytes),
        (resource.RLIMIT_NPROC, processes + limits.processes),
        (resource.RLIMIT_FSIZE, limits.file_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
    ):
        resource.setrlimit(which, (value, value))


def _kill_session(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _tail(fh) -> str:
    fh.seek(0, os.SEEK_END)
    fh.seek(max(0, fh.tell() - _OUTPUT_LIMIT))
    return fh.read().decode("utf-8", "replace")


def _processes_of(uid: int) -> int:
    """How many processes `uid` runs now: the process limit counts them all."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                count += entry.stat().st_uid == uid
    return count


def _world_readable(path: Path) -> bool:
    """Can any user reach and run `path` (every directory above it searchable)?"""
    try:
        if not path.stat().st_mode & stat.S_IXOTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)
    except OSError:
        return False

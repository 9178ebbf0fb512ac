"""Atomic, versioned, pickle-free state files: JSON for metadata, .npy for arrays."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import StateError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, allow_nan=False, separators=(",", ":")).encode())


def atomic_write_npy(path: Path, array: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise StateError(f"{path} is missing: the state directory is incomplete; "
                         "restore it from a backup or start from an empty state.") from exc
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # nesting too deep
        raise StateError(f"{path} is not valid JSON ({exc}): the state is corrupted; "
                         "restore it from a backup or start from an empty state.") from exc


def read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise StateError(f"{path} is missing: the state directory is incomplete; "
                         "restore it from a backup or start from an empty state.") from exc
    except Exception as exc:  # a garbled header fails inside numpy's parser in many ways
        raise StateError(f"{path} is not a readable .npy array ({exc}): the state is corrupted; "
                         "restore it from a backup or start from an empty state.") from exc


def check_manifest(manifest: Any, kind: str, version: int, where: Path) -> dict:
    """Refuse state written by another component or a newer/unknown format version."""
    if not isinstance(manifest, dict) or manifest.get("kind") != kind:
        raise StateError(f"{where} does not hold a saved {kind}; point to a directory written by "
                         f"{kind}.save().")
    found = manifest.get("format_version")
    if found != version:
        raise StateError(f"{where} has {kind} format version {found!r}, this sls-router reads "
                         f"version {version}; upgrade sls-router (or save again with this one).")
    return manifest


def current_generation(directory: Path) -> int:
    """The generation a state directory's manifest points to (0 when there is none)."""
    try:
        return int(read_json(directory / "manifest.json").get("generation", 0))
    except (StateError, AttributeError, TypeError, ValueError):
        return 0

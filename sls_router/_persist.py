"""Atomic, versioned, pickle-free state files: JSON for metadata, .npy for arrays."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import StateError

# what code reading a garbled saved field raises (a missing key, a wrong type or value)
_GARBLED = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)


@contextlib.contextmanager
def reading_saved(what: str) -> Iterator[None]:
    """Inside, any error a garbled saved field causes becomes one StateError on `what`."""
    try:
        yield
    except StateError:
        raise
    except _GARBLED as exc:
        raise StateError(
            f"{what} is incomplete or corrupted ({exc!r}); restore it from a backup or "
            "start afresh."
        ) from exc


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
        raise StateError(
            f"{path} is missing: the state directory is incomplete; "
            "restore it from a backup or start from an empty state."
        ) from exc
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # nesting too deep
        raise StateError(
            f"{path} is not valid JSON ({exc}): the state is corrupted; "
            "restore it from a backup or start from an empty state."
        ) from exc


def read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise StateError(
            f"{path} is missing: the state directory is incomplete; "
            "restore it from a backup or start from an empty state."
        ) from exc
    except Exception as exc:  # a garbled header fails inside numpy's parser in many ways
        raise StateError(
            f"{path} is not a readable .npy array ({exc}): the state is corrupted; "
            "restore it from a backup or start from an empty state."
        ) from exc


def check_manifest(manifest: Any, kind: str, version: int, where: Path) -> dict:
    """Refuse state written by another component or another format version."""
    if not isinstance(manifest, dict) or manifest.get("kind") != kind:
        raise StateError(
            f"{where} does not hold a saved {kind}; point to a directory written by {kind}.save()."
        )
    found = manifest.get("format_version")
    if isinstance(found, int) and not isinstance(found, bool) and found < version:
        raise StateError(
            f"{where} has {kind} format version {found}, written by an older "
            f"sls-router; this one reads version {version}. Start from an empty "
            "state, or keep using the release that wrote it."
        )
    if found != version:
        raise StateError(
            f"{where} has {kind} format version {found!r}, this sls-router reads "
            f"version {version}; upgrade sls-router (or save again with this one)."
        )
    return manifest


def current_generation(directory: Path) -> int:
    """The generation a state directory's manifest points to (0 when there is none)."""
    try:
        return int(read_json(directory / "manifest.json").get("generation", 0))
    except (StateError, AttributeError, TypeError, ValueError):
        return 0


@dataclass
class Snapshot:
    """State as plain data: JSON-able `meta` and named arrays. The one save format of
    sls-router: every component that saves itself produces one, every store writes one."""

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def nest(cls, meta: dict[str, Any], parts: dict[str, Snapshot | None]) -> Snapshot:
        """One snapshot of several components' (`meta` holds what is not a component)."""
        arrays = {
            f"{name}.{key}": array
            for name, part in parts.items()
            if part is not None
            for key, array in part.arrays.items()
        }
        return cls(
            {**meta, **{name: None if part is None else part.meta for name, part in parts.items()}},
            arrays,
        )

    def part(self, name: str) -> Snapshot | None:
        """The snapshot of component `name` (None when it was saved without one)."""
        meta = self.meta.get(name)
        if meta is None:
            return None
        if not isinstance(meta, dict):
            raise StateError(
                f"the saved {name} is {type(meta).__name__}, not an object; the "
                "state is corrupted. Restore it from a backup."
            )
        prefix = f"{name}."
        return Snapshot(
            meta,
            {
                key[len(prefix) :]: array
                for key, array in self.arrays.items()
                if key.startswith(prefix)
            },
        )


_ARRAY_NAME = re.compile(r"[A-Za-z0-9_.]+")
_ARRAY_FILE = re.compile(r"([A-Za-z0-9_.]+)-([0-9]+)\.npy")
_TEMP_FILE = re.compile(r"\.(manifest\.json|[A-Za-z0-9_.]+-[0-9]+\.npy)\.\w+")


def write_snapshot(directory: Path, kind: str, version: int, snapshot: Snapshot) -> None:
    """Write `snapshot` into `directory`: the arrays of a new generation first, then the
    manifest (the one commit point), then remove other generations' files. A crash at
    any moment leaves the previous snapshot readable."""
    directory = Path(directory)
    generation = current_generation(directory) + 1
    for name, array in snapshot.arrays.items():
        if not _ARRAY_NAME.fullmatch(name):
            raise ValueError(f"array name {name!r} is not a plain file name")
        atomic_write_npy(directory / f"{name}-{generation}.npy", array)
    atomic_write_json(
        directory / "manifest.json",
        {
            "kind": kind,
            "format_version": version,
            "generation": generation,
            "arrays": sorted(snapshot.arrays),
            "meta": snapshot.meta,
        },
    )
    # every other generation, not only the previous one: a crash between the commit and
    # this sweep, or in the middle of a write, leaves files nothing else would remove
    for path in directory.iterdir():
        match = _ARRAY_FILE.fullmatch(path.name)
        if (match is not None and int(match.group(2)) != generation) or _TEMP_FILE.fullmatch(
            path.name
        ):
            path.unlink(missing_ok=True)


def snapshot_files(directory: Path) -> set[str]:
    """The files the current snapshot in `directory` uses (others are debris of cut saves)."""
    try:
        manifest = read_json(Path(directory) / "manifest.json")
        generation = int(manifest["generation"])
        return {"manifest.json", *(f"{n}-{generation}.npy" for n in manifest["arrays"])}
    except (StateError, KeyError, TypeError, ValueError):
        return set()


def read_snapshot(directory: Path, kind: str, version: int) -> Snapshot:
    """The snapshot saved in `directory`; StateError names what is missing or corrupted."""
    directory = Path(directory)
    manifest = check_manifest(read_json(directory / "manifest.json"), kind, version, directory)
    try:
        generation = int(manifest["generation"])
        names = [str(n) for n in manifest["arrays"]]
        meta = manifest["meta"]
        if not isinstance(meta, dict) or not all(_ARRAY_NAME.fullmatch(n) for n in names):
            raise ValueError("manifest fields have the wrong shape")
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(
            f"{directory}/manifest.json is incomplete or corrupted ({exc!r}); "
            "restore it from a backup or start from an empty state."
        ) from exc
    return Snapshot(meta, {n: read_npy(directory / f"{n}-{generation}.npy") for n in names})

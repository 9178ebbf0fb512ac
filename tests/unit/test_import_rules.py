"""The house's import rules, checked on the source: storage below everything, no mixins."""

from __future__ import annotations

import ast
from pathlib import Path

import sls_router

PACKAGE = Path(sls_router.__file__).parent


def _imports(path: Path) -> set[str]:
    """Absolute names of the sls_router modules a file imports (relative ones resolved)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return {n for n in names if n.startswith("sls_router")}


def test_storage_imports_neither_the_router_nor_the_learner():
    for path in (PACKAGE / "store").rglob("*.py"):
        bad = {
            n for n in _imports(path) if n.startswith(("sls_router.router", "sls_router.learning"))
        }
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


def test_the_cache_and_the_learner_never_import_the_router():
    for path in [
        *(PACKAGE / "cache").rglob("*.py"),
        PACKAGE / "learning.py",
        *(PACKAGE / "routing").rglob("*.py"),
    ]:
        bad = {n for n in _imports(path) if n.startswith(("sls_router.router", "sls_router.store"))}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


def test_no_mixins():
    for path in PACKAGE.rglob("*.py"):
        classes = [
            n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)
        ]
        assert not [c for c in classes if c.endswith("Mixin")], path


def test_the_server_is_a_front_end_and_nothing_below_imports_it():
    """serve -> router (and what front ends share); never the learner, the cache or the
    store directly, and nothing of the engine imports serve (the lab's command may)."""
    below = ("sls_router.learning", "sls_router.cache", "sls_router.store", "sls_router.routing")
    for path in (PACKAGE / "serve").rglob("*.py"):
        bad = {n for n in _imports(path) if n.startswith(below)}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"
    for path in PACKAGE.rglob("*.py"):
        if "serve" in path.relative_to(PACKAGE).parts or path == PACKAGE / "bench" / "cli.py":
            continue
        assert not {n for n in _imports(path) if n.startswith("sls_router.serve")}, path

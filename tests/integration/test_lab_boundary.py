"""The engine and the lab: the engine never imports the lab (`sls_router.bench`) nor the
lab's dependencies, so `pip install sls-router` works without the `bench` extra, and
the lab without that extra says which extra to install."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import sls_router

ROOT = Path(sls_router.__file__).parent
LAB = "sls_router.bench"
LAB_DEPENDENCIES = ("matplotlib", "rich", "tqdm")  # the `bench` extra


def _engine_modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("sls_router", *path.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name != LAB and not name.startswith(LAB + "."):
            modules[name] = path
    return modules


def _imports(name: str, path: Path) -> Iterator[str]:
    """Every module `path` names in an import, at its top or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module) if p)
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _is_lab(module: str) -> bool:
    top = module.split(".")[0]
    return module == LAB or module.startswith(LAB + ".") or top in LAB_DEPENDENCIES


def test_no_engine_module_names_the_lab_or_its_dependencies():
    modules = _engine_modules()
    assert "sls_router.router" in modules and "sls_router.replay" in modules
    found = {
        name: sorted(m for m in _imports(name, path) if _is_lab(m))
        for name, path in modules.items()
    }
    assert {name: lab for name, lab in found.items() if lab} == {}


def test_importing_every_engine_module_loads_nothing_of_the_lab():
    code = (
        "import importlib, sys\n"
        f"for name in {sorted(_engine_modules())!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{LAB_DEPENDENCIES!r} or m.startswith({LAB!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_lab_without_its_extra_names_the_extra():
    code = (
        "import sys\n"
        "sys.modules['rich'] = None  # as if rich were not installed\n"
        "from sls_router.bench.cli import main\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "DependencyError: the sls-router lab needs rich" in done.stderr
    assert "pip install 'sls-router[bench]'" in done.stderr

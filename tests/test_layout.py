"""Architecture rules checked on the source: import direction and no I/O in the core."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import secagg.errors as errors_module
from secagg.errors import SecAggError

ROOT = Path(__file__).resolve().parents[1]
# secagg/chain, secagg/store and the daemon launcher are drivers by design (DESIGN.md §1):
# they talk to nodes and start processes.
ADAPTERS = ("chain", "store", "daemon.py")
CORE = sorted(
    p
    for p in (ROOT / "secagg").rglob("*.py")
    if p.relative_to(ROOT / "secagg").parts[0] not in ADAPTERS
)
ALL_SECAGG = sorted((ROOT / "secagg").rglob("*.py"))
PROTOCOLS = sorted((ROOT / "protocols").rglob("*.py"))
DRIVERS = {ROOT / "secagg" / "sim.py"}  # drivers may read the clock
IO_MODULES = {
    "socket",
    "subprocess",
    "requests",
    "httpx",
    "urllib",
    "http",
    "asyncio",
    "random",
    "shutil",
}
IO_CALLS = {"open", "print", "input"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", ALL_SECAGG, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_protocols_or_clients(path: Path) -> None:
    bad = [n for n in _imports(path) if n.startswith(("secagg.protocols", "secagg.clients"))]
    assert not bad, f"{path.name} imports {bad}: imports go clients -> protocols -> secagg"


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: str(p.relative_to(ROOT)))
def test_protocols_never_import_clients(path: Path) -> None:
    assert not [n for n in _imports(path) if n.startswith("secagg.clients")]


@pytest.mark.parametrize("path", CORE + PROTOCOLS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_io_in_core_and_protocols(path: Path) -> None:
    roots = {n.split(".")[0] for n in _imports(path)}
    allowed = {"time"} if path in DRIVERS else set()
    assert not (roots & IO_MODULES), f"{path.name} imports I/O modules {roots & IO_MODULES}"
    assert "time" not in roots or "time" in allowed, f"{path.name} reads the clock"
    tree = ast.parse(path.read_text())
    calls = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert not (calls & IO_CALLS), f"{path.name} calls {calls & IO_CALLS}"
    assert "np.random" not in path.read_text(), f"{path.name} uses numpy's global-style RNG"


def test_every_error_derives_from_the_root() -> None:
    classes = [
        obj
        for _, obj in inspect.getmembers(errors_module, inspect.isclass)
        if obj.__module__ == errors_module.__name__
    ]
    assert len(classes) > 10
    assert all(issubclass(c, SecAggError) for c in classes)
    assert set(errors_module.__all__) == {c.__name__ for c in classes}


def test_the_core_and_the_flower_mod_import_without_torch() -> None:
    """A Flower ClientApp process starts for every message: importing ``secagg`` and the
    Flower adapter must not pull in torch (~1.5 s here); the torch paths import it when they
    run (issue 20)."""
    import subprocess
    import sys

    code = "import sys, secagg, secagg.clients.flower; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stderr

"""The committed contract artifacts: fresh, compiled as pinned, and mirrored in Python."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from secagg.chain import Phase, Status
from secagg.chain.artifacts import CONTRACTS, error_selectors, load
from secagg.chain.errors import ContractError, error_class

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS_DIR = ROOT / "contracts"


def test_committed_artifacts_are_not_stale() -> None:
    """Recompiles the sources with the pinned solcjs; fails if any artifact differs."""
    node = shutil.which("node")
    if node is None or not (CONTRACTS_DIR / "node_modules" / "solc").is_dir():
        pytest.fail("needs node and `npm ci --prefix contracts` (make test installs them)")
    result = subprocess.run(
        [node, str(CONTRACTS_DIR / "build.js"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_artifacts_pin_the_compiler_and_the_evm_version() -> None:
    package = json.loads((CONTRACTS_DIR / "package.json").read_text())
    pinned = package["dependencies"]["solc"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), "solc must be pinned to an exact version"
    for name in CONTRACTS:
        compiler = load(name).compiler
        assert compiler["version"].startswith(pinned + "+commit.")
        assert compiler["settings"]["evmVersion"] == "prague"
        pragma = re.search(r"pragma solidity ([^;]+);", _source(name))
        assert pragma is not None and pragma.group(1) == pinned


def test_every_contract_error_has_a_named_python_error() -> None:
    names = {name for name, _, _ in error_selectors().values()}
    ours = {n for n in names if not n.startswith(("ERC20", "Ownable", "SafeERC20", "Reentrancy"))}
    assert {"RevealMismatch", "NotSurvivor", "WrongPhase", "InsufficientStake"} <= ours
    missing = sorted(n for n in ours if error_class(n) is ContractError)
    assert not missing, f"add ContractError subclasses for {missing}"
    declared = {c.solidity_name for c in _subclasses(ContractError)}
    assert declared <= names, f"Python errors without a contract error: {declared - names}"


@pytest.mark.parametrize(("enum", "solidity"), [(Phase, "Phase"), (Status, "Status")])
def test_python_enums_mirror_the_solidity_enums(enum: type, solidity: str) -> None:
    body = re.search(rf"enum {solidity} \{{([^}}]*)\}}", _source("RoundCoordinator"))
    assert body is not None
    members = [m.strip() for m in body.group(1).split(",") if m.strip()]
    snake = [re.sub(r"(?<!^)(?=[A-Z])", "_", m).upper() for m in members]
    assert [m.name for m in enum] == snake  # type: ignore[attr-defined]


def _source(name: str) -> str:
    return (CONTRACTS_DIR / "src" / f"{name}.sol").read_text()


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out

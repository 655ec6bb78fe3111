"""The compiled contracts (ABI + creation bytecode) shipped with the package.

They are built by ``make contracts`` (pinned solcjs, see ``contracts/package.json``) and
committed, so nothing here needs Node; ``tests/test_contracts_build.py`` fails when they are
stale. Custom-error selectors of every artifact are indexed here to decode reverts.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from .errors import ContractError, error_class

CONTRACTS = ("RewardToken", "KeyRegistry", "ModelRegistry", "RoundCoordinator")


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    compiler: dict[str, Any]


@cache
def load(name: str) -> Artifact:
    """The artifact of contract ``name`` (one of :data:`CONTRACTS`)."""
    if name not in CONTRACTS:
        raise KeyError(f"unknown contract {name!r}; known: {', '.join(CONTRACTS)}")
    text = resources.files(__package__).joinpath("artifacts", f"{name}.json").read_text()
    data = json.loads(text)
    return Artifact(name, data["abi"], data["bytecode"], data["compiler"])


def _signature(item: dict[str, Any]) -> str:
    return f"{item['name']}({','.join(_abi_type(i) for i in item['inputs'])})"


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return str(param["type"])


@cache
def error_selectors() -> dict[bytes, tuple[str, list[str], list[str]]]:
    """4-byte selector -> (name, argument names, argument types) over all artifacts."""
    table: dict[bytes, tuple[str, list[str], list[str]]] = {}
    for contract in CONTRACTS:
        for item in load(contract).abi:
            if item["type"] == "error":
                selector = keccak(text=_signature(item))[:4]
                names = [i["name"] for i in item["inputs"]]
                table[selector] = (item["name"], names, [_abi_type(i) for i in item["inputs"]])
    return table


def decode_revert(data: bytes) -> ContractError | None:
    """The named error in revert ``data``, or None when the selector is not ours."""
    entry = error_selectors().get(data[:4])
    if entry is None:
        return None
    name, names, types = entry
    try:
        values = abi_decode(types, data[4:])
    except Exception:  # malformed payload: still report the name
        values = ()
    enums = _enum_types(name)
    shown = [
        to_checksum_address(v) if t == "address" else enums[i](v) if i in enums else v
        for i, (t, v) in enumerate(zip(types, values, strict=False))
    ]
    return error_class(name)(name, dict(zip(names, shown, strict=False)))


@cache
def _enum_types(error: str) -> dict[int, type[enum.IntEnum]]:
    """Argument position -> Python enum, for the arguments of ``error`` that are one of the
    coordinator's enums (``WrongPhase(expected=Phase.COMMIT, ...)`` reads by name)."""
    from .contracts import Phase, Status

    by_name: dict[str, type[enum.IntEnum]] = {"Phase": Phase, "Status": Status}
    for contract in CONTRACTS:
        for item in load(contract).abi:
            if item["type"] == "error" and item["name"] == error:
                return {
                    i: by_name[kind]
                    for i, param in enumerate(item["inputs"])
                    if (kind := str(param.get("internalType", "")).rpartition(".")[2]) in by_name
                }
    return {}

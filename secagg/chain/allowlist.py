"""Owner-approved participants: a Merkle root of addresses, checked by ``register``.

A task created with ``TaskParams.allowlist_root = root(accounts)`` takes registrations only
from those accounts; each proves membership with ``proof(accounts, its address)``. Leaves and
inner nodes are hashed as OpenZeppelin's ``StandardMerkleTree`` and ``MerkleProof`` do: the
leaf of an account is keccak256(keccak256(abi.encode(address))) (double hashing: a leaf can
never be read as an inner node), and an inner node is keccak256 of its two children in
ascending order (so a proof needs no left/right flags).
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils.crypto import keccak

from secagg.errors import ConfigError

__all__ = ["leaf", "proof", "root"]


def leaf(address: str) -> bytes:
    """keccak256(keccak256(abi.encode(address)))."""
    word = bytes.fromhex(address.removeprefix("0x")).rjust(32, b"\0")
    return keccak(keccak(word))


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak(min(a, b) + max(a, b))


def _levels(accounts: Sequence[str]) -> list[list[bytes]]:
    if not accounts:
        raise ConfigError("an allowlist holds at least one account", parameter="allowlist")
    level = sorted({leaf(a) for a in accounts})
    levels = [level]
    while len(level) > 1:
        level = [
            _pair(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
        levels.append(level)
    return levels


def root(accounts: Sequence[str]) -> bytes:
    """The root to put in ``TaskParams.allowlist_root``."""
    return _levels(accounts)[-1][0]


def proof(accounts: Sequence[str], address: str) -> list[bytes]:
    """The sibling hashes from ``address``'s leaf to the root (``register``'s ``proof``)."""
    levels = _levels(accounts)
    try:
        i = levels[0].index(leaf(address))
    except ValueError:
        raise ConfigError(f"{address} is not in the allowlist", parameter="allowlist") from None
    out = []
    for level in levels[:-1]:
        sibling = i ^ 1
        if sibling < len(level):
            out.append(level[sibling])
        i //= 2
    return out

"""Signed rounds over Flower: every node's Ed25519 signing key and the directory of them all.

Flower has no PKI of signing keys, so the federation brings its own: a *directory* file, the
same on every node and on the ServerApp, mapping each client id to that client's Ed25519
public key, and on each node a *key file* with its own private key::

    directory.json   {"0": "<64 hex chars>", "1": "<64 hex chars>", ...}
    node key file    <64 hex chars: the 32-byte Ed25519 private key (RFC 8032 seed)>

Client ids come from the directory, not from the server. Flower's node ids are assigned by
the SuperLink when a node connects, so nobody can list them in advance, and a server that
picked the mapping from node ids to client ids could hand a node someone else's id. In a
signed round a node therefore *states* its client id (the directory entry holding its own
public key, :attr:`NodeIdentity.client_id`) with a signature over the id, session and round
(so another node cannot claim it and push it out of the round), refuses any request
addressed to another id, and checks every other client's signature against its own copy of
the directory. A server that remaps ids gets refusals; one that lies about a key cannot sign
with it; the directory itself never comes from the server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flwr.app import Context

from secagg.errors import ConfigError
from secagg.primitives.signing import PUBLIC_KEY_BYTES, SignedPurpose, SigningKey, signed_message
from secagg.protocol import CLIENT_ID_LIMIT
from secagg.randomness import RandomSource, SystemRandom

__all__ = [
    "IdentityFiles",
    "IdentitySource",
    "NodeIdentity",
    "checked_directory",
    "identify_message",
    "load_directory",
    "load_signing_key",
    "parse_directory",
    "write_directory",
    "write_signing_key",
]

KEY_HEX_CHARS = 2 * PUBLIC_KEY_BYTES


def identify_message(client_id: int, *, session: bytes, round: int) -> bytes:
    """What a node signs to claim ``client_id`` in a round, under its own purpose label
    (:attr:`~secagg.primitives.signing.SignedPurpose.FLOWER_IDENTITY`), so it is never a valid
    signature of advertised keys or of a survivor set."""
    return signed_message(
        SignedPurpose.FLOWER_IDENTITY, session=session, round=round, fields=(client_id,)
    )


def _hex_key(text: str, what: str, parameter: str) -> bytes:
    if not isinstance(text, str) or len(text) != KEY_HEX_CHARS:
        raise ConfigError(f"{what} must be {KEY_HEX_CHARS} hex characters", parameter=parameter)
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"{what} is not hex", parameter=parameter) from None


def _read(path: str | os.PathLike[str], parameter: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", parameter=parameter) from None


def parse_directory(data: str) -> dict[int, bytes]:
    """Client id -> Ed25519 public key, from the JSON text of a directory file.

    Raises
    ------
    ConfigError
        (``parameter="directory"``) not a JSON object of ``"<id>": "<64 hex>"``, an id
        outside [0, 2^31) or not in canonical decimal, or a public key listed twice.
    """
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"directory is not JSON: {exc}", parameter="directory") from None
    if not isinstance(parsed, dict) or not parsed:
        raise ConfigError("directory must be a non-empty JSON object", parameter="directory")
    out: dict[int, bytes] = {}
    for key, value in parsed.items():
        if (
            not (key.isascii() and key.isdigit())
            or str(int(key)) != key
            or int(key) >= CLIENT_ID_LIMIT
        ):
            raise ConfigError(
                f"directory id {key!r} is not a client id in [0, 2^31)", parameter="directory"
            )
        out[int(key)] = _hex_key(value, f"directory entry {key}", "directory")
    if len(set(out.values())) != len(out):
        raise ConfigError("directory lists one public key twice", parameter="directory")
    return out


def checked_directory(directory: Mapping[int, bytes]) -> dict[int, bytes]:
    """A copy of ``directory`` once it maps client ids (ints >= 0) to distinct 32-byte
    Ed25519 public keys; :class:`ConfigError` (``parameter="directory"``) otherwise."""
    out = dict(directory)
    ids_ok = all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in out)
    keys_ok = all(isinstance(k, bytes) and len(k) == PUBLIC_KEY_BYTES for k in out.values())
    if not out or not ids_ok or not keys_ok or len(set(out.values())) != len(out):
        raise ConfigError(
            "directory must map client ids to distinct 32-byte Ed25519 public keys",
            parameter="directory",
        )
    return out


def load_directory(path: str | os.PathLike[str]) -> dict[int, bytes]:
    """:func:`parse_directory` of the file at ``path``."""
    return parse_directory(_read(path, "directory"))


def load_signing_key(path: str | os.PathLike[str]) -> SigningKey:
    """The Ed25519 signing key in the file at ``path`` (64 hex characters).

    Raises
    ------
    ConfigError
        (``parameter="signing_key"``) the file does not hold one.
    """
    text = _read(path, "signing_key").strip()
    seed = _hex_key(text, f"signing key file {path}", "signing_key")
    return SigningKey(Ed25519PrivateKey.from_private_bytes(seed))


def write_signing_key(path: str | os.PathLike[str], rng: RandomSource | None = None) -> bytes:
    """Make a fresh signing key, write it to ``path`` (mode 0600, never overwriting a file),
    and return its public key for the directory. ``rng``: OS entropy by default."""
    seed = (rng if rng is not None else SystemRandom()).random_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(seed.hex() + "\n")
    return SigningKey(Ed25519PrivateKey.from_private_bytes(seed)).public


def write_directory(path: str | os.PathLike[str], directory: Mapping[int, bytes]) -> None:
    """Write ``directory`` (client id -> public key) as a directory file."""
    text = json.dumps({str(cid): key.hex() for cid, key in sorted(directory.items())}, indent=1)
    parse_directory(text)  # refuse to write what no node would load
    Path(path).write_text(text + "\n", encoding="utf-8")


@dataclass(frozen=True, eq=False)
class NodeIdentity:
    """A node's signing key and the federation's directory; its client id is the directory
    entry of its own public key.

    Parameters
    ----------
    signing_key:
        d_u^SK, this node's Ed25519 key (never pickled).
    directory:
        Client id -> d_v^PK for every client of a signed round (the PKI).

    Raises
    ------
    ConfigError
        The node's public key is not in the directory.
    """

    signing_key: SigningKey
    directory: Mapping[int, bytes]
    client_id: int = field(init=False)

    def __post_init__(self) -> None:
        directory = checked_directory(self.directory)
        mine = [cid for cid, key in directory.items() if key == self.signing_key.public]
        if not mine:
            raise ConfigError(
                "this node's public key is not in the directory", parameter="directory"
            )
        object.__setattr__(self, "directory", MappingProxyType(directory))
        object.__setattr__(self, "client_id", mine[0])

    def claim(self, *, session: bytes, round: int) -> bytes:
        """The signature proving this node holds :attr:`client_id`'s key in the round."""
        message = identify_message(self.client_id, session=session, round=round)
        return self.signing_key.sign(message)

    @classmethod
    def load(
        cls, signing_key: str | os.PathLike[str], directory: str | os.PathLike[str]
    ) -> NodeIdentity:
        """From a key file and a directory file."""
        return cls(load_signing_key(signing_key), load_directory(directory))


IdentitySource = Callable[[Context], NodeIdentity]
"""How :class:`~secagg.clients.flower.SecAggMod` finds the identity of the node it runs on."""


@dataclass(frozen=True)
class IdentityFiles:
    """An :data:`IdentitySource` that reads the files on each message (picklable, so it can
    travel to Flower's simulation workers; a :class:`NodeIdentity` never is).

    Parameters
    ----------
    signing_key:
        Path of the node's key file; ``{name}`` fields are filled from the node's
        ``node_config`` (e.g. ``"keys/{partition-id}.key"``, or ``"{signing-key}"`` with
        ``flower-supernode --node-config "signing-key='/etc/secagg/node.key'"``).
    directory:
        Path of the directory file (the same on every node).
    """

    signing_key: str
    directory: str

    def __call__(self, ctx: Context) -> NodeIdentity:
        config: dict[str, Any] = dict(ctx.node_config)
        try:
            path = self.signing_key.format_map(config)
        except (KeyError, ValueError, IndexError) as exc:
            raise ConfigError(
                f"signing key path {self.signing_key!r}: no node_config value for {exc}",
                parameter="signing_key",
            ) from None
        return NodeIdentity.load(path, self.directory)

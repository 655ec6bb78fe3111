"""A participant's long-term identity on disk: its Ethereum account and its agreement key c_u,
both encrypted with the passphrase.

The file is a standard Web3 Secret Storage (keystore v3) JSON of the account, readable by any
Ethereum wallet (``eth_account.Account.decrypt``), with one more top-level entry,
``"secagg"``, that holds c_u (the X25519 private key registered as c_u^PK) encrypted the same
way: the ``crypto`` object of a keystore v3 file (scrypt, AES-128-CTR, keccak MAC), with its
own salt and IV. Files are created with mode 0600 and never overwritten.

``light=True`` uses scrypt n = 2^12 instead of 2^18 (geth's ``--lightkdf``): for tests and
throwaway dev accounts, where the default ~1 s and 256 MiB per unlock would be wasted.
"""

from __future__ import annotations

import json
import os
from getpass import getpass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_keyfile.keyfile import create_keyfile_json, decode_keyfile_json

from secagg.primitives.x25519 import KeyPair
from secagg.randomness import RandomSource, SystemRandom

from ..errors import KeystoreError
from .participant import Identity

__all__ = [
    "PASSPHRASE_ENV",
    "create_identity",
    "load_identity",
    "read_passphrase",
    "save_identity",
]

PASSPHRASE_ENV = "SECAGG_PASSPHRASE"  # noqa: S105 (the variable's name, not a secret)
EXTRA = "secagg"
EXTRA_VERSION = 1
LIGHT_SCRYPT_N = 2**12
SCRYPT_N = 2**18


def create_identity(rng: RandomSource | None = None) -> Identity:
    """A new account and c_u from ``rng`` (OS entropy by default)."""
    rng = rng or SystemRandom()
    return Identity(Account.from_key(rng.random_bytes(32)), KeyPair.generate(rng.fork("c_u")))


def _encrypt(secret: bytes, passphrase: str, light: bool) -> dict[str, Any]:
    keyfile: dict[str, Any] = create_keyfile_json(
        secret, passphrase.encode(), kdf="scrypt", iterations=LIGHT_SCRYPT_N if light else SCRYPT_N
    )
    return keyfile


def save_identity(
    identity: Identity, path: str | os.PathLike[str], passphrase: str, *, light: bool = False
) -> Path:
    """Writes ``identity`` to a new file at ``path`` (mode 0600).

    Raises
    ------
    KeystoreError
        The file exists already, or cannot be written.
    """
    if not passphrase:
        raise KeystoreError("an empty passphrase would leave the keys readable")
    account = _encrypt(identity.account.key, passphrase, light)
    agreement = _encrypt(identity.agreement_key.private_bytes(), passphrase, light)
    account[EXTRA] = {
        "version": EXTRA_VERSION,
        "agreement_key": {"crypto": agreement["crypto"]},
        "agreement_public": identity.agreement_key.public.hex(),
    }
    target = Path(path)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeystoreError(f"{target} exists: a keystore is never overwritten") from None
    except OSError as exc:
        raise KeystoreError(f"cannot create {target}: {exc}") from exc
    with os.fdopen(fd, "w") as out:
        json.dump(account, out, indent=1)
        out.flush()
        os.fsync(out.fileno())  # on disk before the address is shown to anyone
    return target


def load_identity(path: str | os.PathLike[str], passphrase: str) -> Identity:
    """The identity stored at ``path``.

    Raises
    ------
    KeystoreError
        The file is missing, readable by others, malformed, or the passphrase is wrong.
    """
    source = Path(path)
    try:
        mode = source.stat().st_mode
        data = json.loads(source.read_text())
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"cannot read the keystore {source}: {exc}") from exc
    if mode & 0o077:
        raise KeystoreError(f"{source} is readable by others (mode {mode & 0o777:o}): chmod 600")
    extra = data.get(EXTRA) if isinstance(data, dict) else None
    if not isinstance(extra, dict) or extra.get("version") != EXTRA_VERSION:
        raise KeystoreError(f"{source} is not a secagg keystore (no {EXTRA!r} v1 entry)")
    try:
        key = Account.decrypt(data, passphrase)
        agreement = decode_keyfile_json(
            {"version": 3, "crypto": extra["agreement_key"]["crypto"]}, passphrase.encode()
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise KeystoreError(f"cannot decrypt {source}: {exc}") from exc
    identity = Identity(Account.from_key(key), KeyPair.from_private_bytes(bytes(agreement)))
    if identity.agreement_key.public.hex() != extra.get("agreement_public"):
        raise KeystoreError(f"{source}: the agreement key does not match its public key")
    return identity


def read_passphrase(file: str | None = None, *, confirm: bool = False) -> str:
    """The passphrase from ``file`` (first line), else ``$SECAGG_PASSPHRASE``, else a prompt.

    Raises
    ------
    KeystoreError
        The file cannot be read, or the two prompted entries differ.
    """
    if file is not None:
        try:
            return Path(file).read_text().splitlines()[0] if Path(file).stat().st_size else ""
        except OSError as exc:
            raise KeystoreError(f"cannot read the passphrase file {file}: {exc}") from exc
    if env := os.environ.get(PASSPHRASE_ENV):
        return env
    passphrase = getpass("passphrase: ")
    if confirm and getpass("again: ") != passphrase:
        raise KeystoreError("the passphrases differ")
    return passphrase

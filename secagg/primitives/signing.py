"""Ed25519 signatures (RFC 8032) via ``cryptography``, with domain-separated messages.

Bonawitz et al.'s actively secure variant gives every client a long-term signing key pair
(d_u^SK, d_u^PK) whose public halves are known to all (a PKI; on chain the key registry plays
that part). SIG.sign and SIG.ver sign:

* the advertised keys: ``sign(d_u^SK, c_u^PK || s_u^PK || u || session || round)``, so a server
  cannot substitute a client's keys;
* the survivor set in the consistency check: ``sign(d_u^SK, U3 || session || round)``, so a
  server cannot show different survivor sets to different clients.

Every signed message starts with a length-prefixed purpose label (:class:`SignedPurpose`), so
a signature for one purpose never verifies for another. Verification raises
:class:`~secagg.errors.AuthenticationError`; it never returns a bool.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from secagg.errors import AuthenticationError, CryptoError
from secagg.primitives.secret import SecretHolder
from secagg.randomness import RandomSource

__all__ = [
    "PUBLIC_KEY_BYTES",
    "SIGNATURE_BYTES",
    "SignedPurpose",
    "SigningKey",
    "signed_message",
    "verify",
]

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


class SignedPurpose(bytes, enum.Enum):
    """What a signature vouches for (the first field of every signed message)."""

    ADVERTISED_KEYS = b"secagg/v1/sig/advertised-keys"
    SURVIVORS = b"secagg/v1/sig/survivors"
    FLOWER_IDENTITY = b"secagg/v1/sig/flower-identity"
    """A Flower node's claim to a client id of the directory in one round."""


def signed_message(
    purpose: SignedPurpose, *, session: bytes, round: int, fields: Iterable[bytes | int]
) -> bytes:
    """The canonical byte string signed for ``purpose``: every field length-prefixed."""
    out = bytearray()
    for part in (purpose.value, session, round, *fields):
        data = part.to_bytes(8, "big") if isinstance(part, int) else bytes(part)
        out += len(data).to_bytes(4, "big") + data
    return bytes(out)


class SigningKey(SecretHolder):
    """An Ed25519 signing key d_u^SK; ``public`` is d_u^PK (32 bytes)."""

    __slots__ = ("_private", "public")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public: bytes = private.public_key().public_bytes_raw()

    @classmethod
    def generate(cls, rng: RandomSource) -> SigningKey:
        """SIG.gen from 32 bytes of ``rng`` (the RFC 8032 seed)."""
        return cls(Ed25519PrivateKey.from_private_bytes(rng.random_bytes(32)))

    def sign(self, message: bytes) -> bytes:
        """SIG.sign: a 64-byte deterministic signature."""
        return self._private.sign(message)


def verify(public: bytes, message: bytes, signature: bytes, *, sender: int | None = None) -> None:
    """SIG.ver: return if ``signature`` is ``public``'s signature of ``message``, else raise.

    Raises
    ------
    AuthenticationError
        Wrong sizes, an invalid key, or a signature that does not verify.
    """
    if len(public) != PUBLIC_KEY_BYTES:
        raise CryptoError(f"Ed25519 public key must be {PUBLIC_KEY_BYTES} bytes, got {len(public)}")
    if len(signature) != SIGNATURE_BYTES:
        raise AuthenticationError(
            f"signature must be {SIGNATURE_BYTES} bytes, got {len(signature)}", sender=sender
        )
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise AuthenticationError("signature does not verify", sender=sender) from exc

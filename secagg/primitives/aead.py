"""AEAD for the Shamir shares clients send each other through the server.

ChaCha20-Poly1305 (RFC 8439) from ``cryptography``. The associated data binds every
ciphertext to its sender, receiver, session and round, so the server can neither redirect
a share to another client, nor replay it into another session or round, nor claim that it
came from someone else: any of those fails the tag check with :class:`AuthenticationError`.

Wire layout of a sealed box: ``nonce (12 bytes) || ciphertext || tag (16 bytes)``; the nonce
comes from the injected :class:`RandomSource`.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from secagg.errors import AuthenticationError, CryptoError
from secagg.primitives.kdf import Label, derive_key
from secagg.primitives.secret import SecretHolder
from secagg.randomness import RandomSource

__all__ = ["NONCE_BYTES", "OVERHEAD", "AeadKey", "associated_data"]

NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = NONCE_BYTES + TAG_BYTES


def associated_data(*, sender: int, receiver: int, session: bytes, round: int) -> bytes:
    """Canonical associated data: label, sender, receiver, session, round."""
    label = Label.SHARE_ENCRYPTION.value
    return (
        len(label).to_bytes(2, "big")
        + label
        + sender.to_bytes(8, "big")
        + receiver.to_bytes(8, "big")
        + len(session).to_bytes(2, "big")
        + session
        + round.to_bytes(8, "big")
    )


class AeadKey(SecretHolder):
    """A symmetric share-encryption key c_{u,v}, derived from an X25519 shared secret."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise CryptoError(f"AEAD key must be 32 bytes, got {len(key)}")
        self._aead = ChaCha20Poly1305(key)

    @classmethod
    def from_shared_secret(cls, shared: bytes, *, session: bytes, round: int) -> AeadKey:
        """c_{u,v} = HKDF(KA.agree(c_u^SK, c_v^PK), SHARE_ENCRYPTION, session, round)."""
        return cls(derive_key(shared, Label.SHARE_ENCRYPTION, session=session, round=round))

    def seal(
        self,
        plaintext: bytes,
        *,
        sender: int,
        receiver: int,
        session: bytes,
        round: int,
        rng: RandomSource,
    ) -> bytes:
        """Encrypt ``plaintext`` from ``sender`` to ``receiver``."""
        nonce = rng.random_bytes(NONCE_BYTES)
        ad = associated_data(sender=sender, receiver=receiver, session=session, round=round)
        return nonce + self._aead.encrypt(nonce, plaintext, ad)

    def open(self, box: bytes, *, sender: int, receiver: int, session: bytes, round: int) -> bytes:
        """Decrypt a box; raise :class:`AuthenticationError` unless every binding matches."""
        if len(box) < OVERHEAD:
            raise AuthenticationError(
                f"sealed box of {len(box)} bytes is shorter than nonce + tag ({OVERHEAD})",
                sender=sender,
            )
        ad = associated_data(sender=sender, receiver=receiver, session=session, round=round)
        try:
            return self._aead.decrypt(box[:NONCE_BYTES], box[NONCE_BYTES:], ad)
        except InvalidTag as exc:
            raise AuthenticationError(
                "share box failed authentication "
                "(tampered, or wrong sender/receiver/session/round)",
                sender=sender,
            ) from exc

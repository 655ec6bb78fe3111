"""X25519 key agreement (RFC 7748) via ``cryptography``.

Bonawitz et al. write KA.gen, KA.agree; each client has two pairs: (c_u^PK, c_u^SK) for share
encryption and (s_u^PK, s_u^SK) for pairwise masks. :class:`KeyPair` is one such pair.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from secagg.errors import AuthenticationError, CryptoError, RemoteProtocolError, WeakKeyError
from secagg.primitives.secret import SecretHolder
from secagg.randomness import RandomSource

__all__ = ["KEY_BYTES", "KeyPair", "agree", "key_point", "validate_public_key"]

KEY_BYTES = 32
_SMALL_ORDER_PROBE = X25519PrivateKey.from_private_bytes(bytes(range(1, KEY_BYTES + 1)))
"""A fixed, public scalar: only used to test public keys for small order."""


def validate_public_key(public: bytes, *, sender: int | None = None) -> bytes:
    """Return ``public`` if it is a usable X25519 public key.

    Every X25519 scalar is clamped to a multiple of the cofactor 8, so a point of small order
    (RFC 7748 §6.1; the 12 encodings of the 8 such points, canonical or not) gives an all-zero
    shared secret with *any* private key. One agreement with a fixed public scalar finds them.

    Raises
    ------
    RemoteProtocolError
        The key is not 32 bytes.
    WeakKeyError
        The key is a small-order point.
    """
    if not isinstance(public, bytes) or len(public) != KEY_BYTES:
        size = len(public) if isinstance(public, bytes) else type(public).__name__
        raise RemoteProtocolError(f"X25519 public key must be 32 bytes, got {size}", sender=sender)
    try:
        _SMALL_ORDER_PROBE.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:  # cryptography refuses the all-zero shared secret
        raise WeakKeyError(
            "X25519 public key is a small-order point (every shared secret would be zero)",
            sender=sender,
        ) from None
    return public


def key_point(public: bytes) -> bytes:
    """``public`` with bit 255 cleared: X25519 ignores that bit (RFC 7748 §5), so two keys
    that differ only there are the same point. Compare keys for repeats in this form."""
    return public[:-1] + bytes([public[-1] & 0x7F]) if public else public


class KeyPair(SecretHolder):
    """An X25519 key pair. The private half is hidden from ``repr`` and never pickled."""

    __slots__ = ("_private", "public")

    def __init__(self, private: X25519PrivateKey) -> None:
        self._private = private
        self.public: bytes = private.public_key().public_bytes_raw()

    @classmethod
    def generate(cls, rng: RandomSource) -> KeyPair:
        """KA.gen with randomness from ``rng`` (32 bytes, clamped by X25519 itself)."""
        return cls(X25519PrivateKey.from_private_bytes(rng.random_bytes(KEY_BYTES)))

    @classmethod
    def from_private_bytes(cls, private: bytes) -> KeyPair:
        """Rebuild a pair from its 32-byte private scalar (e.g. after Shamir reconstruction)."""
        if len(private) != KEY_BYTES:
            raise CryptoError(f"X25519 private key must be 32 bytes, got {len(private)}")
        return cls(X25519PrivateKey.from_private_bytes(private))

    def private_bytes(self) -> bytes:
        """The raw private scalar. Only for Shamir-sharing s_u^SK; handle as a secret."""
        return self._private.private_bytes_raw()

    def agree(self, peer_public: bytes, *, sender: int | None = None) -> bytes:
        """KA.agree: the 32-byte shared secret with ``peer_public``.

        Raises
        ------
        RemoteProtocolError
            The key is not 32 bytes.
        AuthenticationError
            The key is a low-order point (the shared secret would be all zero).
        """
        validate_public_key(peer_public, sender=sender)
        try:
            return self._private.exchange(X25519PublicKey.from_public_bytes(peer_public))
        except ValueError as exc:  # cryptography rejects an all-zero shared secret
            raise AuthenticationError(
                "X25519 public key is a low-order point (all-zero shared secret)", sender=sender
            ) from exc


def agree(private: KeyPair, peer_public: bytes) -> bytes:
    """Functional alias of :meth:`KeyPair.agree`."""
    return private.agree(peer_public)

"""X25519 key agreement (RFC 7748) via ``cryptography``.

Bonawitz et al. write KA.gen, KA.agree; each client has two pairs: (c_u^PK, c_u^SK) for share
encryption and (s_u^PK, s_u^SK) for pairwise masks. :class:`KeyPair` is one such pair.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from secagg.errors import CryptoError, RemoteProtocolError, WeakKeyError
from secagg.primitives.secret import SecretHolder
from secagg.randomness import RandomSource

__all__ = ["KEY_BYTES", "SMALL_ORDER_KEYS", "KeyPair", "agree", "key_point", "validate_public_key"]

KEY_BYTES = 32
_P = (1 << 255) - 19
_SMALL_ORDER_U = (
    0,  # order 2
    1,  # order 4 on the curve
    0x57119FD0DD4E22D8868E1C58C45C44045BEF839C55B1D0B1248C50A3BC959C5F,  # order 8
    0x00B8495F16056286FDB1329CEB8D09DA6AC49FF1FAE35616AEB8413B7C7AEBE0,  # order 8
    _P - 1,  # order 4 on the twist (X25519 accepts twist points)
    _P,  # 0, not reduced mod p
    _P + 1,  # 1, not reduced mod p (u + p < 2^255 only for u < 19)
)
SMALL_ORDER_KEYS = frozenset(u.to_bytes(KEY_BYTES, "little") for u in _SMALL_ORDER_U)
"""Every 32-byte X25519 public key of small order, with bit 255 cleared (see
:func:`key_point`): the u-coordinates of the points of order 1, 2, 4 or 8 on the curve and its
twist, canonical or not (libsodium's ``has_small_order`` list). With any private key, an
agreement with one of them is all zero; ``tests/test_known_answers.py`` checks each against
``cryptography``'s own zero-secret refusal, and random keys against both."""


def validate_public_key(public: bytes, *, sender: int | None = None) -> bytes:
    """Return ``public`` if it is a usable X25519 public key.

    Every X25519 scalar is clamped to a multiple of the cofactor 8, so a point of small order
    (RFC 7748 §6.1) gives an all-zero shared secret with *any* private key. The key (bit 255
    ignored, as X25519 ignores it) is looked up in :data:`SMALL_ORDER_KEYS`: no agreement is
    computed, so checking every neighbour's keys costs nothing next to agreeing with them.

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
    if key_point(public) in SMALL_ORDER_KEYS:
        raise WeakKeyError(
            "X25519 public key is a small-order point (every shared secret would be zero)",
            sender=sender,
        )
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
        WeakKeyError
            The key is a small-order point (the shared secret would be all zero); a subclass
            of :class:`~secagg.errors.AuthenticationError`.
        """
        if not isinstance(peer_public, bytes) or len(peer_public) != KEY_BYTES:
            validate_public_key(peer_public, sender=sender)  # raises the named size error
        try:
            return self._private.exchange(X25519PublicKey.from_public_bytes(peer_public))
        except ValueError:  # cryptography rejects an all-zero shared secret: one agreement
            raise WeakKeyError(  # finds a small-order key, no separate probe needed
                "X25519 public key is a small-order point (all-zero shared secret)",
                sender=sender,
            ) from None


def agree(private: KeyPair, peer_public: bytes) -> bytes:
    """Functional alias of :meth:`KeyPair.agree`."""
    return private.agree(peer_public)

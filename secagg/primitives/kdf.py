"""HKDF-SHA256 (RFC 5869) with purpose labels and session binding.

Every key secagg uses is ``derive_key(secret, label, session=..., round=...)``: the label
names the purpose (one per use, listed in :class:`Label`), and the session id and round bind
the key to one run, so a key (and so a mask) is never reused across purposes, sessions or
rounds. The HKDF ``info`` is the unambiguous length-prefixed encoding

    info = u16(len(label)) || label || u16(len(session)) || session || u64(round)
           || u32(len(context)) || context

and the salt is empty (RFC 5869 §3.1: the IKM here is already a uniformly random X25519 output
or seed).
"""

from __future__ import annotations

import hmac
from enum import Enum

from secagg.errors import CryptoError

__all__ = ["Label", "derive_key", "hkdf_sha256"]

_HASH_BYTES = 32


class Label(bytes, Enum):
    """Purpose labels. A new use of a secret gets a new label, never a reused one."""

    PAIRWISE_MASK = b"secagg/v1/pairwise-mask"
    """s_{u,v}: seed of the pairwise mask PRG(s_{u,v}) between clients u and v."""
    SELF_MASK = b"secagg/v1/self-mask"
    """b_u: seed of client u's self mask PRG(b_u)."""
    SELF_MASK_COMMITMENT = b"secagg/v1/self-mask-commitment"
    """Public: a one-way image of b_u bound to u, so a b_u rebuilt from shares can be checked."""
    SHARE_COMMITMENT = b"secagg/v1/share-commitment"
    """Public: a one-way image of one Shamir share, bound to its owner, holder and kind, so a
    revealed share can be checked against what its dealer dealt."""
    SHARE_ENCRYPTION = b"secagg/v1/share-encryption"
    """c_{u,v}: AEAD key for the Shamir shares u sends to v through the server."""
    QUANTIZE_DITHER = b"secagg/v1/quantize-dither"
    """Uniforms for stochastic rounding (not secret-critical, but never a global RNG)."""
    NEIGHBOUR_GRAPH = b"secagg/v1/neighbour-graph"
    """Public: the permutation that places clients on the SecAgg+ Harary graph."""
    DP_ROTATION = b"secagg/v1/dp-rotation"
    """Public: the random signs of a round's distributed-DP rotation (from the session id)."""
    FLOWER_ROUND_SEED = b"secagg/v1/flower-round-seed"
    """A Flower node's per-round seed in seed mode (tests, examples), from its fixed seed."""


_LABEL_PREFIX = {label: len(label.value).to_bytes(2, "big") + label.value for label in Label}
"""u16(len(label)) || label, per label (an Enum's ``.value`` is a slow property lookup)."""


def hkdf_sha256(ikm: bytes, *, salt: bytes | None, info: bytes, length: int) -> bytes:
    """Plain RFC 5869 HKDF-SHA256 (checked against RFC 5869's vectors and ``cryptography``'s
    HKDF in the known-answer tests).

    Extract and expand are HMAC-SHA256 (§2.2, §2.3) through :func:`hmac.digest`, OpenSSL's
    one-shot HMAC: a round at n = 1000 derives about half a million keys (mask seeds, AEAD
    keys, share commitments), and the one-shot call costs a fifth of ``cryptography``'s HKDF
    object per key.
    """
    if not 1 <= length <= 255 * _HASH_BYTES:
        raise CryptoError(f"HKDF-SHA256 output length must be in [1, 8160], got {length}")
    prk = hmac.digest(salt or bytes(_HASH_BYTES), ikm, "sha256")  # extract
    blocks, block = [], b""
    for i in range(1, -(-length // _HASH_BYTES) + 1):  # expand: T(i) = HMAC(PRK, T(i-1)|info|i)
        block = hmac.digest(prk, block + info + bytes([i]), "sha256")
        blocks.append(block)
    return b"".join(blocks)[:length]


def derive_key(
    secret: bytes,
    label: Label,
    *,
    session: bytes,
    round: int,
    context: bytes = b"",
    length: int = 32,
) -> bytes:
    """Derive a ``length``-byte key for ``label`` bound to ``session`` and ``round``.

    Parameters
    ----------
    secret:
        Input keying material (an X25519 shared secret or a random seed), >= 16 bytes.
    label:
        The purpose, a :class:`Label`.
    session:
        The session id (1..65535 bytes).
    round:
        The round number, 0 <= round < 2^64.
    context:
        Extra public binding (e.g. the ordered pair of client ids).
    """
    if not isinstance(label, Label):
        raise CryptoError(f"label must be a secagg Label, got {label!r}")
    if len(secret) < 16:
        raise CryptoError(f"key material must be at least 16 bytes, got {len(secret)}")
    if not 1 <= len(session) < (1 << 16):
        raise CryptoError(f"session id must be 1..65535 bytes, got {len(session)}")
    if not 0 <= round < (1 << 64):
        raise CryptoError(f"round must be in [0, 2^64), got {round}")
    info = (
        _LABEL_PREFIX[label]
        + len(session).to_bytes(2, "big")
        + session
        + round.to_bytes(8, "big")
        + len(context).to_bytes(4, "big")
        + context
    )
    return hkdf_sha256(secret, salt=None, info=info, length=length)

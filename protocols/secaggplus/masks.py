"""Mask derivation and application: the only place masks are made.

Notation (Bonawitz et al. §4):

* self mask ``PRG(b_u)``: the PRG key is ``HKDF(b_u, SELF_MASK, session, round)``;
* pairwise mask ``p_{u,v} = Delta_{u,v} PRG(s_{u,v})`` with ``Delta_{u,v} = +1`` when u > v and
  ``-1`` when u < v, so p_{u,v} + p_{v,u} = 0; ``s_{u,v}`` is
  ``HKDF(KA.agree(s_u^SK, s_v^PK), PAIRWISE_MASK, session, round, context = min || max)``.

A client sends ``y_u = x_u + PRG(b_u) + sum_{v in N(u) ∩ U2} p_{u,v}`` (mod 2^b). The server
subtracts PRG(b_u) for survivors and the surviving neighbours' p_{w,v} for every v that
dropped after sharing (it rebuilt s_v^SK from shares).

:class:`Masker` adds or subtracts PRG(key) for a list of keys into an accumulator: on numpy
block by block on every core (see :func:`~secagg.primitives.prg.add_keystreams`), on torch
tensors with the bit-identical torch keystream on the tensor's own device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from secagg.primitives.kdf import Label, derive_key
from secagg.primitives.prg import add_keystreams
from secagg.primitives.prg_torch import keystreams_torch
from secagg.protocol import Session
from secagg.ring import Ring, RingVector, is_torch

DEVICE_BATCH_WORDS = 1 << 24
"""Keystream words generated per batch on a GPU (the ChaCha20 state takes 4 bytes a word)."""

__all__ = ["DEVICE_BATCH_WORDS", "Masker", "pairwise_key", "pairwise_sign", "self_mask_key"]


def self_mask_key(seed: bytes, session: Session) -> bytes:
    """The PRG key of PRG(b_u)."""
    return derive_key(seed, Label.SELF_MASK, session=session.id, round=session.round)


SHARE_COMMITMENT_BYTES = 16
"""|C|: a share commitment. A holder forging a share that matches one needs a second preimage
(2^128 work); a share has 288 bits of entropy, so C hides it."""


def share_commitment(share: bytes, kind: str, owner: int, holder: int, session: Session) -> bytes:
    """C = HKDF(share, SHARE_COMMITMENT, session, round, kind || owner || holder)[:16]: the
    dealer ``owner`` publishes one per holder and kind ("s" for s_u^SK, "b" for b_u) next to
    the box; the holder checks what it opened against it, and the server checks what the
    holder reveals. A bad share is then the holder's fault or the dealer's, never unclear."""
    context = kind.encode() + owner.to_bytes(8, "big") + holder.to_bytes(8, "big")
    key = derive_key(
        share, Label.SHARE_COMMITMENT, session=session.id, round=session.round, context=context
    )
    return key[:SHARE_COMMITMENT_BYTES]


def self_mask_commitment(seed: bytes, owner: int, session: Session) -> bytes:
    """h_u = HKDF(b_u, SELF_MASK_COMMITMENT, session, round, u): client u publishes it in
    ShareKeys; the server checks the b_u it rebuilds from t shares against it, so one corrupt
    share aborts the round instead of silently removing a wrong self mask."""
    return derive_key(
        seed,
        Label.SELF_MASK_COMMITMENT,
        session=session.id,
        round=session.round,
        context=owner.to_bytes(8, "big"),
    )


def pairwise_key(shared: bytes, u: int, v: int, session: Session) -> bytes:
    """The PRG key of PRG(s_{u,v}) from the X25519 shared secret (symmetric in u, v)."""
    lo, hi = min(u, v), max(u, v)
    context = lo.to_bytes(8, "big") + hi.to_bytes(8, "big")
    return derive_key(
        shared, Label.PAIRWISE_MASK, session=session.id, round=session.round, context=context
    )


def pairwise_sign(u: int, v: int) -> int:
    """Delta_{u,v}: +1 if u > v, -1 if u < v."""
    return 1 if u > v else -1


class Masker:
    """Adds ±PRG(key) to ring vectors of one length, on numpy or on ``like``'s torch device."""

    def __init__(self, ring: Ring, length: int, like: RingVector = None) -> None:
        self.ring = ring
        self.length = length
        self._device = like.device if is_torch(like) else None

    def apply(self, acc: RingVector, key: bytes, sign: int) -> None:
        """``acc += sign * PRG(key)`` in place (sign is +1 or -1)."""
        self.apply_all(acc, [(key, sign)])

    def apply_all(self, acc: RingVector, keys: Sequence[tuple[bytes, int]]) -> None:
        """``acc += sum(sign * PRG(key))`` in place over (key, sign) pairs: a client's self
        mask and pairwise masks, or what the server removes, in one pass over ``acc``."""
        self.ring.check(acc, self.length)
        if self._device is None:
            add_keystreams(acc, keys)
        elif self._device.type == "cpu" and acc.is_contiguous():
            add_keystreams(acc.numpy().view(self.ring.numpy_dtype), keys)  # same memory
        else:
            self._apply_on_device(acc, keys)

    def _apply_on_device(self, acc: Any, keys: Sequence[tuple[bytes, int]]) -> None:
        """Batches of keys through one set of ChaCha20 kernels on the tensor's device, then
        one signed sum per batch (wrapping mod 2^b like every ring operation)."""
        import torch

        batch = max(1, DEVICE_BATCH_WORDS // max(1, self.length))
        for i in range(0, len(keys), batch):
            group = keys[i : i + batch]
            streams = keystreams_torch(
                [key for key, _ in group], self.length, self.ring.bits, device=self._device
            )
            signs = torch.tensor([sign for _, sign in group], device=self._device)
            acc += (streams * signs.to(streams.dtype)[:, None]).sum(0).to(acc.dtype)

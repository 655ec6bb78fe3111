"""Phases and messages of the pairwise-masking protocols (``secaggplus``, and ``secagg``,
which is the same protocol on the complete graph and shares this wire format).

Client phases in order (Bonawitz et al. 2017, §4 and Fig. 4; Bell et al. 2020, §3):

=================  =============================  ==========================================
phase              Bonawitz                       client sends / server answers
=================  =============================  ==========================================
ADVERTISE_KEYS     Round 0 AdvertiseKeys          :class:`AdvertiseKeys` / :class:`ServerKeys`
SHARE_KEYS         Round 1 ShareKeys              :class:`ShareKeys` / :class:`ForwardedShares`
MASKED_INPUT       Round 2 MaskedInputCollection  :class:`MaskedInput` / a request below
CONSISTENCY_CHECK  Round 3 ConsistencyCheck       :class:`SurvivorsSignature` / UnmaskRequest
                   (only when enabled)
UNMASKING          Round 4 Unmasking              :class:`UnmaskResponse` / nothing
=================  =============================  ==========================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from secagg import wire
from secagg.wire import Message

NAME = "secaggplus"
VERSION = 4  # 2: ShareKeys carries h_u; 3: MaskedInput.bad_boxes, share commitments;
# 4: the quantizer's dither is read from 32-bit keystream words (issue 22)

__all__ = [
    "NAME",
    "VERSION",
    "AdvertiseKeys",
    "EncryptedShare",
    "ForwardedShares",
    "MaskedInput",
    "Phase",
    "PublicKeys",
    "ServerKeys",
    "ShareKeys",
    "ShareOf",
    "SignatureOf",
    "SurvivorsRequest",
    "SurvivorsSignature",
    "UnmaskRequest",
    "UnmaskResponse",
]


class Phase(enum.Enum):
    """Client phases, in order. CONSISTENCY_CHECK runs only with ``consistency_check=True``."""

    ADVERTISE_KEYS = "advertise-keys"
    SHARE_KEYS = "share-keys"
    MASKED_INPUT = "masked-input"
    CONSISTENCY_CHECK = "consistency-check"
    UNMASKING = "unmasking"


@dataclass(frozen=True, slots=True)
class PublicKeys:
    """A client's advertised keys: c_u^PK (share encryption), s_u^PK (masking), and
    sigma_u = SIG.sign(d_u^SK, c_u^PK || s_u^PK) (empty unless signatures are on)."""

    client: int
    c_pk: bytes
    s_pk: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class EncryptedShare:
    """An AEAD box e_{u,v} with u's shares of s_u^SK and b_u for v. ``peer`` is the receiver
    when u sends it, the sender when the server forwards it. ``s_commitment`` and
    ``b_commitment`` are u's public commitments to the two shares in the box (protocol
    version 3, :func:`~secagg.protocols.secaggplus.masks.share_commitment`)."""

    peer: int
    box: bytes
    s_commitment: bytes = b""
    b_commitment: bytes = b""


@dataclass(frozen=True, slots=True)
class ShareOf:
    """A Shamir share (36 bytes) of the secret of client ``owner``."""

    owner: int
    share: bytes


@dataclass(frozen=True, slots=True)
class SignatureOf:
    """Client ``client``'s signature of the survivor set U3."""

    client: int
    signature: bytes


@wire.message(NAME, VERSION, tag=1)
@dataclass(frozen=True, slots=True, eq=False)
class AdvertiseKeys(Message):
    """Client -> server, ADVERTISE_KEYS: (c_u^PK, s_u^PK, sigma_u)."""

    c_pk: bytes
    s_pk: bytes
    signature: bytes


@wire.message(NAME, VERSION, tag=2)
@dataclass(frozen=True, slots=True, eq=False)
class ServerKeys(Message):
    """Server -> client u: the roster U1 (sorted; it fixes the graph) and the keys of
    N(u) within U1, sorted by client id."""

    roster: tuple[int, ...]
    keys: tuple[PublicKeys, ...]


@wire.message(NAME, VERSION, tag=3)
@dataclass(frozen=True, slots=True, eq=False)
class ShareKeys(Message):
    """Client u -> server, SHARE_KEYS: one box per neighbour in U1 (peer = receiver), and
    h_u, the commitment to the self-mask seed b_u (``masks.self_mask_commitment``)."""

    shares: tuple[EncryptedShare, ...]
    b_commitment: bytes


@wire.message(NAME, VERSION, tag=4)
@dataclass(frozen=True, slots=True, eq=False)
class ForwardedShares(Message):
    """Server -> client u: the boxes addressed to u by its neighbours in U2 (peer = sender).
    Their senders are u's view of N(u) ∩ U2: the clients u masks with."""

    shares: tuple[EncryptedShare, ...]


@wire.message(NAME, VERSION, tag=5)
@dataclass(frozen=True, slots=True, eq=False)
class MaskedInput(Message):
    """Client u -> server, MASKED_INPUT: y_u = x_u + PRG(b_u) + sum_v ±PRG(s_{u,v}) in Z_{2^b}^d.

    ``bad_boxes``: the senders (sorted) whose share box did not open at u, or held a
    plaintext of the wrong size. u holds no share of their secrets; it masks with them all
    the same (the pairwise masks do not depend on the boxes).
    """

    vector: npt.NDArray[Any]
    bad_boxes: tuple[int, ...] = ()


@wire.message(NAME, VERSION, tag=6)
@dataclass(frozen=True, slots=True, eq=False)
class SurvivorsRequest(Message):
    """Server -> client, CONSISTENCY_CHECK: the survivor set U3 to sign."""

    survivors: tuple[int, ...]


@wire.message(NAME, VERSION, tag=7)
@dataclass(frozen=True, slots=True, eq=False)
class SurvivorsSignature(Message):
    """Client -> server, CONSISTENCY_CHECK: SIG.sign(d_u^SK, U3 || session || round)."""

    signature: bytes


@wire.message(NAME, VERSION, tag=8)
@dataclass(frozen=True, slots=True, eq=False)
class UnmaskRequest(Message):
    """Server -> client: U3, and (with the consistency check) at least t signatures of it."""

    survivors: tuple[int, ...]
    signatures: tuple[SignatureOf, ...]


@wire.message(NAME, VERSION, tag=9)
@dataclass(frozen=True, slots=True, eq=False)
class UnmaskResponse(Message):
    """Client u -> server, UNMASKING: shares of b_v for neighbours v in U3, and of s_v^SK for
    neighbours v in U2 \\ U3 (never both for one v)."""

    self_mask_shares: tuple[ShareOf, ...]
    key_shares: tuple[ShareOf, ...]

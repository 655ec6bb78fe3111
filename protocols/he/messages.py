"""Phases and messages shared by the homomorphic-encryption protocols (``ckks``, ``paillier``).

Both protocols speak one wire format, ``he``: a ciphertext is opaque bytes here and only the
task's scheme (:mod:`.scheme`) parses it, so a CKKS ciphertext sent to a Paillier task fails
with :class:`~secagg.errors.CiphertextError`, not with a wire error.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from secagg import wire
from secagg.wire import Message

NAME = "he"
VERSION = 2  # 2: the quantizer's dither is read from 32-bit keystream words (issue 22)


class Phase(enum.Enum):
    """Client phases of the HE protocols.

    INPUT: every participant sends its encrypted update to the aggregator.
    DECRYPT: the aggregator hands the encrypted sum to the decryptor(s) (the key holder, or
    participants in the shared-key mode), which return the plaintext sum.
    """

    INPUT = "input"
    DECRYPT = "decrypt"


@wire.message(NAME, VERSION, tag=1)
@dataclass(frozen=True, slots=True, eq=False)
class EncryptedInput(Message):
    """Participant -> aggregator: Enc_pk(x_u), one ciphertext per chunk of the update."""

    chunks: tuple[bytes, ...]


@wire.message(NAME, VERSION, tag=2)
@dataclass(frozen=True, slots=True, eq=False)
class EncryptedSum(Message):
    """Aggregator -> decryptor: Enc_pk(sum_{u in U} x_u) and the survivor set U."""

    survivors: tuple[int, ...]
    chunks: tuple[bytes, ...]


@wire.message(NAME, VERSION, tag=3)
@dataclass(frozen=True, slots=True, eq=False)
class DecryptedSum(Message):
    """Decryptor -> aggregator: the decrypted sum (float64 for CKKS; for Paillier the uint64
    slot sums, offsets still in)."""

    values: npt.NDArray[Any]

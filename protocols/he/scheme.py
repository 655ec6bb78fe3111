"""The interface an additively homomorphic scheme implements to run in the HE machines.

A :class:`Scheme` is bound to one task's key material: the public part always, the secret
part only for a party that may decrypt. It does no I/O; ciphertexts are bytes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import numpy.typing as npt

from secagg.errors import CiphertextError, LocalProtocolError, WrongLengthError, WrongRingError
from secagg.randomness import RandomSource

__all__ = ["Accumulator", "Scheme"]


class Accumulator(ABC):
    """The aggregator's running homomorphic sum over the ciphertexts it accepted.

    Subclasses say how chunks parse (and are checked), combine and serialize.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._parts: list[Any] | None = None

    def add(self, chunks: tuple[bytes, ...], sender: int) -> None:
        """Parse and check every chunk, then add them all; on any bad chunk raise
        :class:`~secagg.errors.CiphertextError` and leave the sum unchanged."""
        try:
            parts = self._parse(chunks)
        except CiphertextError as exc:
            exc.sender = sender
            raise
        self._parts = parts if self._parts is None else self._combine(self._parts, parts)

    def chunks(self) -> tuple[bytes, ...]:
        """The serialized encrypted sum."""
        if self._parts is None:
            raise LocalProtocolError("the sum is empty: no ciphertext was added")
        return tuple(self._serialize(part) for part in self._parts)

    @abstractmethod
    def _parse(self, chunks: tuple[bytes, ...]) -> list[Any]:
        """One checked ciphertext per chunk (raise CiphertextError)."""

    @abstractmethod
    def _combine(self, total: list[Any], parts: list[Any]) -> list[Any]:
        """The homomorphic sum of ``total`` and ``parts``, chunk by chunk."""

    @abstractmethod
    def _serialize(self, part: Any) -> bytes:
        """One chunk of the sum as bytes."""


class Scheme(ABC):
    """An additively homomorphic scheme bound to a task's keys.

    Attributes
    ----------
    slots:
        Values per ciphertext (chunk); an update of d values travels in ceil(d / slots).
    value_dtype:
        The dtype of a decrypted sum on the wire (float64 or uint64).
    """

    slots: int
    value_dtype: np.dtype[Any]

    def num_chunks(self, dim: int) -> int:
        return -(-dim // self.slots)

    @property
    @abstractmethod
    def can_decrypt(self) -> bool:
        """Whether this copy holds the secret key."""

    @abstractmethod
    def encode(self, vector: Any, weight: float, rng: RandomSource) -> npt.NDArray[Any]:
        """A participant's update as the values it encrypts (clipped, weighted, and for
        integer schemes quantized and offset to be non-negative)."""

    @abstractmethod
    def encrypt(self, values: npt.NDArray[Any], rng: RandomSource) -> tuple[bytes, ...]:
        """Encrypt ``values`` under the public key, ``slots`` values per chunk."""

    @abstractmethod
    def accumulator(self, dim: int) -> Accumulator:
        """An empty encrypted sum of ``dim`` values."""

    @abstractmethod
    def decrypt(self, chunks: tuple[bytes, ...], dim: int) -> npt.NDArray[Any]:
        """Decrypt a (summed) ciphertext: ``dim`` values of ``value_dtype``.

        Raises MissingSecretKeyError without the secret key, CiphertextError on bad chunks.
        """

    @abstractmethod
    def finish(self, values: npt.NDArray[Any], num_inputs: int) -> npt.NDArray[Any]:
        """The aggregate result from a decrypted sum of ``num_inputs`` updates (the ring sum,
        or float64 for CKKS). Raises AbortError("out-of-range-sum") when some entry is
        outside what ``num_inputs`` honest updates can produce."""

    @abstractmethod
    def agree(self, a: npt.NDArray[Any], b: npt.NDArray[Any]) -> bool:
        """Whether two decryptions of one encrypted sum are consistent."""

    def check_decrypted(self, values: Any, dim: int, sender: int) -> None:
        """Reject a decrypted sum of the wrong length or type (the decryptor's fault)."""
        if values.dtype != self.value_dtype:
            raise WrongRingError(
                f"decrypted sum is {values.dtype}, this scheme's sums are {self.value_dtype}",
                sender=sender,
            )
        if len(values) != dim:
            raise WrongLengthError(
                f"decrypted sum has {len(values)} values, the session's dim is {dim}",
                sender=sender,
            )
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise WrongRingError("decrypted sum contains NaN or infinity", sender=sender)

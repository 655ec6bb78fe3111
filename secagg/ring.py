"""Vectors in the ring Z_{2^b}, b in {32, 64}.

Representation
--------------
* numpy: ``uint32`` / ``uint64`` arrays. Unsigned integer arithmetic in numpy wraps modulo
  2^b, so addition and subtraction in the ring are plain ``+`` and ``-``: no widening to
  int64 and no ``%`` on the hot path.
* torch: ``int32`` / ``int64`` tensors on any device, holding the same bits (two's
  complement). torch 2.x cannot add ``uint32``/``uint64`` tensors, but signed addition wraps
  to exactly the same bit pattern, so the ring element is the unsigned reading of the bits.
  :meth:`Ring.to_numpy` reinterprets, it never converts values.

Bonawitz et al. write the ring as Z_R with R = 2^b; ``Ring(bits=b)`` is that ring.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from secagg.errors import ConfigError, WrongLengthError, WrongRingError

# torch is imported where a torch path runs, not with the core: a process that never touches
# a tensor (a Flower ClientApp between training phases, a verifier) saves ~1.6 s per start.

__all__ = ["Ring", "RingVector", "is_torch"]

RingVector: TypeAlias = Any
"""A numpy ``uint32``/``uint64`` array or a torch ``int32``/``int64`` tensor (same bits)."""

_NUMPY: dict[int, np.dtype[Any]] = {32: np.dtype(np.uint32), 64: np.dtype(np.uint64)}
_NUMPY_SIGNED: dict[int, np.dtype[Any]] = {32: np.dtype(np.int32), 64: np.dtype(np.int64)}


def is_torch(x: object) -> bool:
    """True when ``x`` is a torch tensor, without importing torch: a process that has not
    imported torch holds no tensor."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


@dataclass(frozen=True, slots=True)
class Ring:
    """The ring Z_{2^bits}.

    Parameters
    ----------
    bits:
        32 or 64.
    """

    bits: Literal[32, 64]

    def __post_init__(self) -> None:
        if self.bits not in (32, 64):
            raise ConfigError(f"ring bits must be 32 or 64, got {self.bits!r}")

    # -- dtypes -----------------------------------------------------------------------------
    @property
    def modulus(self) -> int:
        """R = 2^bits."""
        return 1 << self.bits

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        return _NUMPY[self.bits]

    @property
    def signed_numpy_dtype(self) -> np.dtype[Any]:
        """The two's-complement reading of a ring element (used to decode centred sums)."""
        return _NUMPY_SIGNED[self.bits]

    @property
    def torch_dtype(self) -> Any:
        """Storage dtype of a ring vector on a torch device (signed; same bits)."""
        import torch

        return torch.int32 if self.bits == 32 else torch.int64

    # -- construction and conversion --------------------------------------------------------
    def zeros(self, length: int, like: RingVector = None) -> RingVector:
        """A zero vector of ``length`` entries, numpy unless ``like`` is a torch tensor."""
        if is_torch(like):
            import torch

            return torch.zeros(length, dtype=self.torch_dtype, device=like.device)
        return np.zeros(length, dtype=self.numpy_dtype)

    def to_numpy(self, vec: RingVector) -> npt.NDArray[Any]:
        """The vector as a numpy unsigned array (host copy for torch tensors)."""
        self._check_dtype(vec)
        if is_torch(vec):
            host: npt.NDArray[Any] = vec.detach().cpu().numpy().view(self.numpy_dtype)
            return host
        return np.asarray(vec)

    def to_torch(self, vec: npt.NDArray[Any], device: Any = "cpu") -> Any:
        """The numpy vector as a torch tensor on ``device`` (same bits, signed storage)."""
        self._check_dtype(vec)
        signed = np.ascontiguousarray(vec).view(self.signed_numpy_dtype)
        import torch

        return torch.from_numpy(signed.copy()).to(device)

    def like(self, vec: npt.NDArray[Any], like: RingVector) -> RingVector:
        """``vec`` moved to the kind (numpy or torch device) of ``like``."""
        return self.to_torch(vec, like.device) if is_torch(like) else vec

    def from_signed(self, values: Any) -> RingVector:
        """Embed signed integers (|v| < 2^(bits-1)) into the ring, two's complement."""
        if is_torch(values):
            return values.to(self.torch_dtype)
        return np.asarray(values).astype(self.signed_numpy_dtype).view(self.numpy_dtype)

    def to_signed(self, vec: RingVector) -> npt.NDArray[Any] | Any:
        """The centred representative in [-2^(bits-1), 2^(bits-1)) of each entry."""
        self._check_dtype(vec)
        return vec if is_torch(vec) else np.asarray(vec).view(self.signed_numpy_dtype)

    # -- arithmetic -------------------------------------------------------------------------
    def add(self, a: RingVector, b: RingVector) -> RingVector:
        """a + b mod 2^bits (wraps for free)."""
        return a + b

    def sub(self, a: RingVector, b: RingVector) -> RingVector:
        """a - b mod 2^bits (wraps for free)."""
        return a - b

    def add_(self, acc: RingVector, b: RingVector) -> RingVector:
        """In-place ``acc += b``; returns ``acc``. No temporary of length d."""
        acc += b
        return acc

    def sub_(self, acc: RingVector, b: RingVector) -> RingVector:
        """In-place ``acc -= b``; returns ``acc``."""
        acc -= b
        return acc

    def neg(self, a: RingVector) -> RingVector:
        """-a mod 2^bits (unary minus wraps for free, as add and sub do)."""
        return -a

    def sum(self, vectors: Iterable[RingVector], length: int) -> RingVector:
        """Sum of vectors of ``length`` entries; numpy zeros for an empty iterable.

        One accumulator of length d is allocated; each vector is added in place.
        """
        acc: RingVector | None = None
        for v in vectors:
            if acc is None:
                acc = v.clone() if is_torch(v) else np.array(v, copy=True)
            else:
                acc += v
        return self.zeros(length) if acc is None else acc

    # -- validation of vectors received from peers ------------------------------------------
    def check(self, vec: Any, length: int, *, sender: int | None = None) -> None:
        """Raise unless ``vec`` is a 1-D vector of this ring with ``length`` entries.

        Raises
        ------
        WrongRingError
            Wrong type or dtype (e.g. a ``uint64`` vector in a 32-bit session).
        WrongLengthError
            Not one-dimensional, or not ``length`` entries.
        """
        self._check_dtype(vec, sender=sender)
        shape = tuple(vec.shape)
        if len(shape) != 1 or shape[0] != length:
            raise WrongLengthError(
                f"vector has shape {shape}, the session's vectors have {length} entries",
                sender=sender,
            )

    def _check_dtype(self, vec: Any, *, sender: int | None = None) -> None:
        if is_torch(vec):
            if vec.dtype != self.torch_dtype:
                raise WrongRingError(
                    f"torch tensor of dtype {vec.dtype} is not in Z_2^{self.bits} "
                    f"(expected {self.torch_dtype})",
                    sender=sender,
                )
            return
        if not isinstance(vec, np.ndarray):
            raise WrongRingError(
                f"expected a numpy array or torch tensor, got {type(vec).__name__}", sender=sender
            )
        if vec.dtype != self.numpy_dtype:
            raise WrongRingError(
                f"array of dtype {vec.dtype} is not in Z_2^{self.bits} "
                f"(expected {self.numpy_dtype})",
                sender=sender,
            )

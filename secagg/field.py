"""The prime field GF(p) used for Shamir secret sharing, vectorised with numpy.

p = 2^32 - 5 = 4294967291, the largest prime below 2^32 (:data:`SHAMIR_PRIME`).

Why this prime: elements fit in ``uint32`` on the wire, and a product of two elements is below
(p-1)^2 < 2^64, so multiplication is one ``uint64`` multiply and one ``%`` in numpy, vectorised
over every share and every secret at once. A 32-byte secret is cut into 31-bit chunks
(each < 2^31 < p, so every chunk is a field element) and each chunk is shared with its own
independent random polynomial: the scheme is perfectly hiding per chunk, hence for the whole
secret. fcp's SecAgg also shares secrets in 31/32-bit pieces over a prime just above/below 2^31.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from secagg.errors import CryptoError
from secagg.randomness import RandomSource

__all__ = ["SHAMIR_PRIME", "PrimeField"]

SHAMIR_PRIME = (1 << 32) - 5
Array = npt.NDArray[np.uint64]


class PrimeField:
    """GF(p) for a prime p < 2^32; elements are ``uint64`` arrays with values in [0, p)."""

    def __init__(self, p: int = SHAMIR_PRIME) -> None:
        if not 2 < p < (1 << 32):
            raise CryptoError(f"prime must be in (2, 2^32) for uint64 products, got {p}")
        self.p = p
        self._p = np.uint64(p)

    def __repr__(self) -> str:
        return f"PrimeField({self.p})"

    def element(self, values: Any) -> Array:
        """Check and convert integers to field elements (raises unless 0 <= v < p)."""
        arr = np.asarray(values)
        if arr.size and (arr.min() < 0 or arr.max() >= self.p):
            raise CryptoError(f"values outside GF({self.p})")
        return arr.astype(np.uint64)

    def add(self, a: Array, b: Array) -> Array:
        return (a + b) % self._p  # a + b < 2^33: no overflow

    def sub(self, a: Array, b: Array) -> Array:
        return (a + (self._p - b)) % self._p

    def mul(self, a: Array, b: Array) -> Array:
        return (a * b) % self._p  # < (p-1)^2 < 2^64

    def pow(self, a: Array, e: int) -> Array:
        """a^e by square-and-multiply, vectorised over ``a``."""
        result = np.ones_like(a, dtype=np.uint64)
        base = np.asarray(a, dtype=np.uint64) % self._p
        while e:
            if e & 1:
                result = self.mul(result, base)
            base = self.mul(base, base)
            e >>= 1
        return result

    def inv(self, a: Array) -> Array:
        """Multiplicative inverse (Fermat: a^(p-2)); raises on zero."""
        a = np.asarray(a, dtype=np.uint64)
        if np.any(a % self._p == 0):
            raise CryptoError("zero has no inverse in GF(p)")
        return self.pow(a, self.p - 2)

    def prod(self, a: Array, axis: int = -1) -> Array:
        """Product along ``axis`` by pairwise (log-depth) reduction, reducing mod p each step."""
        a = np.moveaxis(np.asarray(a, dtype=np.uint64), axis, -1)
        while a.shape[-1] > 1:
            if a.shape[-1] % 2:
                a = np.concatenate([a, np.ones((*a.shape[:-1], 1), dtype=np.uint64)], axis=-1)
            a = self.mul(a[..., 0::2], a[..., 1::2])
        if a.shape[-1] == 0:
            return np.ones(a.shape[:-1], dtype=np.uint64)
        return a[..., 0]

    def random(self, shape: tuple[int, ...], rng: RandomSource) -> Array:
        """Uniform elements by rejection sampling 32-bit words (accepts w < p; p/2^32 > 1-2^-29)."""
        count = int(np.prod(shape, dtype=np.int64))
        out = np.empty(0, dtype=np.uint64)
        while out.size < count:
            need = count - out.size
            words = np.frombuffer(rng.random_bytes(4 * (need + 8)), dtype="<u4").astype(np.uint64)
            out = np.concatenate([out, words[words < self._p][:need]])
        return out.reshape(shape)

"""Shamir t-of-n secret sharing of byte strings over GF(2^32 - 5), vectorised.

Bonawitz et al. write SS.share(s, t, U) -> {(u, s_u)} and SS.recon({(u, s_u)}, t) -> s. Here:

* a secret of L bytes is read as a big-endian integer and cut into ``k = ceil(8L/31)`` chunks
  of 31 bits, each a field element (< 2^31 < p);
* each chunk j gets its own polynomial f_j of degree t-1 with f_j(0) = chunk j and t-1
  uniformly random coefficients (rejection-sampled from the injected RandomSource);
* the share of holder x is (f_1(x), ..., f_k(x)), 4k bytes on the wire (36 for 32-byte keys).

Any t shares determine every f_j (Lagrange interpolation at 0); any t-1 shares are
consistent with every possible secret (perfect hiding), tested in ``tests/test_shamir.py``.

Everything is vectorised over holders and over many secrets: split evaluates all
polynomials at all points with Horner's rule in numpy; reconstruction computes the Lagrange
coefficients once per holder set and applies them to every secret in one matrix operation.
When more than t shares are given, the extra ones are checked against the interpolated
polynomial and a mismatch raises :class:`InconsistentSharesError` with the disagreeing holders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from secagg.errors import (
    CryptoError,
    InconsistentSharesError,
    NotEnoughSharesError,
    ShamirError,
)
from secagg.field import SHAMIR_PRIME, PrimeField
from secagg.randomness import RandomSource

__all__ = ["CHUNK_BITS", "Shamir"]

CHUNK_BITS = 31
_CHUNK_MASK = (1 << CHUNK_BITS) - 1


class Shamir:
    """t-of-n sharing of ``secret_bytes``-long secrets.

    Parameters
    ----------
    threshold:
        t, the number of shares that reconstruct (>= 1). The polynomial degree is t - 1.
    secret_bytes:
        L, the length of every secret (32 for X25519 keys and PRG seeds).
    """

    def __init__(self, threshold: int, secret_bytes: int = 32) -> None:
        if not isinstance(threshold, int) or threshold < 1:
            raise CryptoError(f"Shamir threshold must be an int >= 1, got {threshold!r}")
        if not isinstance(secret_bytes, int) or secret_bytes < 1:
            raise CryptoError(f"secret length must be >= 1 byte, got {secret_bytes!r}")
        self.threshold = threshold
        self.secret_bytes = secret_bytes
        self.chunks = -(-8 * secret_bytes // CHUNK_BITS)
        self.field = PrimeField(SHAMIR_PRIME)

    @property
    def share_bytes(self) -> int:
        """Size of one holder's share of one secret on the wire."""
        return 4 * self.chunks

    def __repr__(self) -> str:
        return f"Shamir(threshold={self.threshold}, secret_bytes={self.secret_bytes})"

    # -- encoding -----------------------------------------------------------------------------
    def _to_chunks(self, secrets: Sequence[bytes]) -> npt.NDArray[np.uint64]:
        out = np.empty((len(secrets), self.chunks), dtype=np.uint64)
        for i, secret in enumerate(secrets):
            if not isinstance(secret, bytes) or len(secret) != self.secret_bytes:
                got = len(secret) if isinstance(secret, bytes) else type(secret).__name__
                raise CryptoError(f"secret must be {self.secret_bytes} bytes, got {got}")
            value = int.from_bytes(secret, "big")
            for j in range(self.chunks):
                out[i, j] = (value >> (CHUNK_BITS * j)) & _CHUNK_MASK
        return out

    def _from_chunks(self, chunks: npt.NDArray[np.uint64]) -> list[bytes]:
        secrets = []
        for row in chunks:
            if np.any(row > _CHUNK_MASK):
                raise InconsistentSharesError(
                    "reconstructed chunk exceeds 31 bits: the shares are corrupt"
                )
            value = 0
            for j in reversed(range(self.chunks)):
                value = (value << CHUNK_BITS) | int(row[j])
            if value.bit_length() > 8 * self.secret_bytes:
                raise InconsistentSharesError(
                    "reconstructed value is longer than the secret: the shares are corrupt"
                )
            secrets.append(value.to_bytes(self.secret_bytes, "big"))
        return secrets

    def share_to_bytes(self, share: npt.NDArray[Any]) -> bytes:
        """One holder's share of one secret (k chunks) as 4k big-endian bytes."""
        return np.asarray(share, dtype=">u4").tobytes()

    def share_from_bytes(self, data: bytes) -> npt.NDArray[np.uint64]:
        """Inverse of :meth:`share_to_bytes`; raises unless the length and values are valid."""
        if len(data) != self.share_bytes:
            raise ShamirError(f"a share is {self.share_bytes} bytes, got {len(data)}")
        share = np.frombuffer(data, dtype=">u4").astype(np.uint64)
        if np.any(share >= SHAMIR_PRIME):
            raise ShamirError(f"share value outside GF({SHAMIR_PRIME})")
        return share

    # -- split ----------------------------------------------------------------------------------
    def _check_points(self, xs: Sequence[int]) -> npt.NDArray[np.uint64]:
        points = [int(x) for x in xs]
        if len(set(points)) != len(points):
            raise CryptoError("share points must be distinct")
        if any(not 0 < x < SHAMIR_PRIME for x in points):
            raise CryptoError(f"share points must be in [1, {SHAMIR_PRIME})")
        return np.array(points, dtype=np.uint64)

    def split(
        self, secrets: Sequence[bytes], xs: Sequence[int], rng: RandomSource
    ) -> npt.NDArray[np.uint64]:
        """SS.share for every secret at every point.

        Parameters
        ----------
        secrets:
            m secrets of ``secret_bytes`` bytes each.
        xs:
            n distinct non-zero share points (holder ids, e.g. client index + 1), n >= t.
        rng:
            Source of the polynomial coefficients.

        Returns
        -------
        numpy.ndarray
            ``uint64`` array of shape (n, m, k): ``out[i, s]`` is holder ``xs[i]``'s share of
            secret ``s``.
        """
        points = self._check_points(xs)
        if len(points) < self.threshold:
            raise CryptoError(f"{len(points)} holders cannot hold a {self.threshold}-of-n sharing")
        f = self.field
        constant = self._to_chunks(secrets)  # (m, k)
        coeffs = f.random((self.threshold - 1, *constant.shape), rng)  # a_1 .. a_{t-1}
        x = points[:, None, None]
        acc = np.zeros((len(points), *constant.shape), dtype=np.uint64)
        for a in coeffs[::-1]:  # Horner: ((a_{t-1} x + a_{t-2}) x + ...) x + a_0
            acc = f.add(f.mul(acc, x), a[None])
        return f.add(f.mul(acc, x), constant[None])

    # -- reconstruct ----------------------------------------------------------------------------
    def _lagrange(self, xs: npt.NDArray[np.uint64], at: npt.NDArray[np.uint64]) -> Any:
        """Matrix L with L[z, i] = prod_{j != i} (at_z - x_j) / (x_i - x_j), for z not in xs."""
        f = self.field
        t = len(xs)
        diff = f.sub(xs[:, None], xs[None, :])  # x_i - x_j
        diff[np.arange(t), np.arange(t)] = 1
        w = f.inv(f.prod(diff, axis=1))  # barycentric weights
        dz = f.sub(at[:, None], xs[None, :])  # (z, i): z - x_i, never 0
        ell = f.prod(dz, axis=1)  # prod_j (z - x_j)
        return f.mul(f.mul(ell[:, None], w[None, :]), f.inv(dz))

    def reconstruct(self, xs: Sequence[int], shares: npt.NDArray[Any]) -> list[bytes]:
        """SS.recon for every secret from the shares held at ``xs``.

        Parameters
        ----------
        xs:
            The holders' points (distinct, non-zero), at least t of them.
        shares:
            Array of shape (len(xs), m, k), as returned by :meth:`split` (rows may be any
            subset of holders, in any order).

        Raises
        ------
        NotEnoughSharesError
            Fewer than t shares.
        InconsistentSharesError
            More than t shares that do not lie on one polynomial of degree t-1, or t shares
            that decode to an impossible secret.
        """
        points = self._check_points(xs)
        ys = np.asarray(shares, dtype=np.uint64)
        if ys.ndim != 3 or ys.shape[0] != len(points) or ys.shape[2] != self.chunks:
            raise ShamirError(
                f"shares must have shape ({len(points)}, m, {self.chunks}), got {ys.shape}"
            )
        if ys.size and ys.max() >= SHAMIR_PRIME:
            raise ShamirError(f"share value outside GF({SHAMIR_PRIME})")
        t = self.threshold
        if len(points) < t:
            raise NotEnoughSharesError(f"{len(points)} shares given, {t} needed")
        f = self.field
        base, extra = points[:t], points[t:]
        at = np.concatenate([np.zeros(1, dtype=np.uint64), extra])
        lam = self._lagrange(base, at)  # (1 + extra, t)
        # sum_i lam[z, i] * y_i: each term < 2^64 after reduction, a sum of t < 2^32 terms of
        # 32-bit values fits in uint64, so reduce once per term and once at the end.
        terms = f.mul(lam[:, :, None, None], ys[None, :t])  # (z, t, m, k)
        values = terms.sum(axis=1, dtype=np.uint64) % np.uint64(f.p)
        if len(extra):
            bad = np.any(values[1:] != ys[t:], axis=(1, 2))
            if bad.any():
                holders = [int(x) for x in extra[bad]]
                raise InconsistentSharesError(
                    f"shares of holders {holders} are not on the polynomial through the first "
                    f"{t} shares: at least one share is corrupt"
                )
        return self._from_chunks(values[0])

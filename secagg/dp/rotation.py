"""The public random rotation of distributed DP: x -> C D x, with D a diagonal of random
signs and C the orthonormal DCT-II.

Kairouz, Liu and Steinke (ICML 2021) rotate with a randomized Hadamard transform, which needs
the length padded to a power of two (up to 2x the upload). The orthonormal DCT-II (the real
form of the DFT the paper offers as the alternative) is orthogonal for every length d, so the
update keeps its length and its L2 norm, and each rotated entry is a signed sum with
coefficients of magnitude <= sqrt(2/d): a vector's mass is spread over all entries, so
conditional rounding and the modular wrap see entries of size about ||x|| / sqrt(d).

The signs are public: derived from the session id and round (``Label.DP_ROTATION``), so every
client and the server rotate alike, and a new round gets a new rotation. Privacy does not rest
on them (it rests on the L2 clip and the noise); they only keep a worst-case input from putting
its whole norm into one entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import fft

from secagg.primitives.kdf import Label, derive_key
from secagg.primitives.prg import keystream

__all__ = ["Rotation"]


class Rotation:
    """The rotation of one round. ``rotate`` and ``unrotate`` are inverse orthogonal maps."""

    def __init__(self, session_id: bytes, round: int, dim: int) -> None:
        key = derive_key(session_id, Label.DP_ROTATION, session=session_id, round=round)
        bits = keystream(key, dim, 32) & 1
        self.signs: npt.NDArray[np.float64] = 1.0 - 2.0 * bits.astype(np.float64)

    def rotate(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """C D x."""
        out: npt.NDArray[np.float64] = fft.dct(self.signs * x, type=2, norm="ortho")
        return out

    def unrotate(self, y: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """D C^T y (C^T is the orthonormal DCT-III)."""
        out: npt.NDArray[np.float64] = self.signs * fft.idct(y, type=2, norm="ortho")
        return out

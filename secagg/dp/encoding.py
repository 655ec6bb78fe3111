"""One client's distributed-DP encoding, and the decoding of a noisy sum.

Per client u (Kairouz, Liu, Steinke 2021, Algorithm 1; notation in :mod:`secagg.dp.config`)::

    x      = w * x_u * min(1, c / ||x_u||_2)               L2 clip, weight w in [0, 1]
    y      = C D x / gamma                                   rotate, scale (secagg.dp.rotation)
    r      = floor(y + U),  U uniform in [0, 1)^d            randomized rounding, drawn again
             until ||r||_2^2 <= floor(Delta_2^2)             while the norm is too large
    e_u    = (r + N_Z(0, sigma^2)^d) mod 2^b                 exact integer noise (sampling)

e_u is sent as its representative in [-2^(b-1), 2^(b-1)) (so an additive-HE slot of b + 1
bits holds it). The protocol sums the e_u in its ring Z_2^R (R >= b); since 2^b divides 2^R the
server reads S = (sum_u e_u mod 2^R) mod 2^b, centres it into [-2^(b-1), 2^(b-1)) and decodes
D C^T (gamma S): the sum of the clipped updates plus the sum of the noise shares (the
rounding and the noise are unbiased), unless the sum left the modulus (k = ``headroom``
standard deviations make that rare: about 6e-5 per entry at k = 4, so about d * 6e-5
entries a round, each then off by 2^b gamma).

Only the noise must be exact, and it is integer-only (:class:`IntegerSampler`); the rotation
and rounding are ordinary float64, and the norm check is exact integer arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from secagg.dp.config import MAX_ROUNDING_TRIES, DistributedDP, DPParameters
from secagg.dp.rotation import Rotation
from secagg.dp.sampling import IntegerSampler
from secagg.errors import InvalidInputError
from secagg.protocol import Session
from secagg.quantize import l2_clip_weighted
from secagg.randomness import RandomSource
from secagg.ring import Ring, RingVector, is_torch

__all__ = ["DPEncoder"]

_UNIT = 2.0**-53


class DPEncoder:
    """The encoder of one session: the :class:`~secagg.quantize.Quantizer` interface
    (``quantize``, ``dequantize``, ``ring``) with distributed DP.

    Parameters
    ----------
    dp:
        The DP configuration.
    num_clients:
        n, the most clients in the round.
    ring:
        The protocol's ring Z_2^R (R >= ``dp.bits``).
    session:
        The round: its id and number seed the public rotation, its ``dim`` is d.
    """

    def __init__(self, dp: DistributedDP, num_clients: int, ring: Ring, session: Session) -> None:
        self.dp = dp
        self.ring = ring
        self.params: DPParameters = dp.parameters(num_clients, session.dim)
        self.rotation = Rotation(session.id, session.round, session.dim)

    def quantize(self, x: Any, rng: RandomSource, *, weight: float = 1.0) -> RingVector:
        """Clip, rotate, round and noise one update; a ring vector like ``Quantizer``'s (numpy
        for numpy input, a signed tensor on the input's device for torch input)."""
        device = x.device if is_torch(x) else None
        y = self.scaled(x, weight=weight)
        sampler = IntegerSampler(rng)
        noisy = self.round(y, sampler) + sampler.discrete_gaussian(self.params.variance, y.size)
        encoded = self.ring.to_numpy(self.ring.from_signed(_centred(noisy, self.params.bits)))
        if device is None:
            return encoded
        import torch

        return torch.from_numpy(encoded.view(self.ring.signed_numpy_dtype)).to(device)

    def scaled(self, x: Any, *, weight: float = 1.0) -> npt.NDArray[np.float64]:
        """y = C D (w x min(1, c / ||x||)) / gamma: the update in integer units, unrounded."""
        v = l2_clip_weighted(x, self.dp.l2_clip, weight)
        if v.size != self.params.dim:
            raise InvalidInputError(f"expected {self.params.dim} entries, got {v.size}")
        return self.rotation.rotate(v) / self.params.gamma

    def round(self, y: npt.NDArray[np.float64], sampler: IntegerSampler) -> npt.NDArray[np.int64]:
        """Conditional randomized rounding: r_i in {floor(y_i), floor(y_i) + 1} with E[r] = y,
        drawn again until ||r||^2 <= floor(Delta_2^2) (checked in exact integer arithmetic)."""
        bound = self.params.norm_bound_sq
        for _ in range(MAX_ROUNDING_TRIES):
            u = (sampler.words(y.size) >> np.uint64(11)).astype(np.float64) * _UNIT
            r = np.floor(y + u).astype(np.int64)
            if int(np.square(r.astype(object)).sum()) <= bound:
                return r
        raise InvalidInputError(  # probability <= beta^1000 for a clipped input
            f"no rounding within the L2 bound after {MAX_ROUNDING_TRIES} tries"
        )

    def dequantize(self, ring_sum: RingVector) -> Any:
        """The noisy sum of the clipped updates, float64 (on ``ring_sum``'s device)."""
        device = None
        if is_torch(ring_sum):
            device = ring_sum.device
        raw = self.ring.to_numpy(ring_sum).astype(np.uint64)
        centred = _centred(raw, self.params.bits)
        total = self.rotation.unrotate(centred.astype(np.float64) * self.params.gamma)
        if device is None:
            return total
        import torch

        return torch.from_numpy(total).to(device)


def _centred(values: npt.NDArray[Any], bits: int) -> npt.NDArray[np.int64]:
    """values mod 2^b as the representative in [-2^(b-1), 2^(b-1))."""
    low = (values.astype(np.uint64) & np.uint64((1 << bits) - 1)).astype(np.int64)
    out: npt.NDArray[np.int64] = np.where(low >= 1 << (bits - 1), low - (1 << bits), low)
    return out

"""Continuous Gaussian noise shares for CKKS, which encodes real numbers.

**Floating point, not exact.** CKKS has no integer ring to add discrete noise in, so its
clients add N(0, (z c)^2 / m) per entry in float64 (Box-Muller on 53-bit uniforms from a
ChaCha20 stream keyed by the injected randomness), and CKKS adds its own approximation error
on top. Floating-point noise is what Mironov (CCS 2012) attacked for Laplace: its low-order
bits can depend on the value it hides. The accountant treats it as the ideal Gaussian
mechanism; the ring protocols' exact discrete Gaussian (:mod:`secagg.dp.sampling`) has no
such gap. ``Mechanism.CONTINUOUS_GAUSSIAN`` is accepted by ``ckks`` only, and refused
elsewhere.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from secagg.primitives.prg import keystream
from secagg.randomness import RandomSource

__all__ = ["gaussian_floats"]

_UNIT = 2.0**-53


def gaussian_floats(rng: RandomSource, std: float, count: int) -> npt.NDArray[np.float64]:
    """``count`` draws of N(0, std^2) in float64 (Box-Muller; floating point, see above)."""
    pairs = (count + 1) // 2
    words = keystream(rng.random_bytes(32), 2 * pairs, 64).reshape(pairs, 2)
    u1 = ((words[:, 0] >> np.uint64(11)).astype(np.float64) + 1.0) * _UNIT  # (0, 1]
    u2 = (words[:, 1] >> np.uint64(11)).astype(np.float64) * _UNIT
    radius = np.sqrt(-2.0 * np.log(u1))
    out = np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])
    result: npt.NDArray[np.float64] = out[:count] * std
    return result

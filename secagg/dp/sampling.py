"""Exact samplers of integer noise, in integer arithmetic only.

Canonne, Kamath and Steinke, "The Discrete Gaussian for Differential Privacy" (NeurIPS 2020),
Algorithms 1-3, vectorised over numpy arrays. Every probability the algorithms compare against
is a ratio of integers, and every comparison is exact:

* ``Bernoulli(p/q)``: a uniform integer U in [0, q) (rejection-sampled from 64-bit keystream
  words, so exactly uniform) and the test U < p. Numbers that may leave int64 (denominators
  above 2^62, the acceptance test's squares for sigma^2 >= 2^31 or a far tail) use Python
  integers (numpy object arrays), so nothing overflows or rounds.
* ``Bernoulli(exp(-p/q))``: Algorithm 1 (a von Neumann race; for gamma = p/q <= 1 draw
  A_K ~ Bernoulli(gamma/K) = Bernoulli(p/q) * Bernoulli(1/K) for K = 1, 2, ... until A_K = 0
  and return whether K is odd), and for gamma > 1 the product of floor(gamma) draws of
  Bernoulli(exp(-1)) and one of Bernoulli(exp(-(gamma - floor(gamma)))).
* the discrete Laplace with scale t (Algorithm 2 with s = 1) and the discrete Gaussian
  N_Z(0, sigma^2) for an integer sigma^2 (Algorithm 3: t = floor(sigma) + 1, accept a discrete
  Laplace candidate Y with probability exp(-(|Y| - sigma^2/t)^2 / (2 sigma^2))
  = exp(-(|Y| t - sigma^2)^2 / (2 sigma^2 t^2)), a ratio of integers).

Nothing here touches floating point, so the output distribution is the exact one; this is what
Mironov's 2012 attack on floating-point Laplace noise needs to be true. The only source of
randomness is a 32-byte key drawn once from the injected :class:`RandomSource`, expanded by
ChaCha20.

Paper notation -> ours: sigma^2 -> ``variance`` (an int; callers round it up, which only adds
noise), t -> ``scale`` of :meth:`IntegerSampler.discrete_laplace`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from secagg.errors import ConfigError
from secagg.randomness import RandomSource

__all__ = ["IntegerSampler"]

_SMALL = 1 << 62  # denominators below this take the int64 path

IntArray = npt.NDArray[Any]  # int64, or object (Python ints) where values may exceed 2^62


class IntegerSampler:
    """Exact uniform, Bernoulli, discrete Laplace and discrete Gaussian samples.

    Parameters
    ----------
    rng:
        Source of the 32-byte ChaCha20 key every draw is expanded from.
    """

    def __init__(self, rng: RandomSource) -> None:
        key = rng.random_bytes(32)
        self._stream = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()

    def __repr__(self) -> str:
        return "IntegerSampler(<key hidden>)"

    def __reduce__(self) -> Any:
        raise TypeError("IntegerSampler holds a secret key and cannot be pickled")

    def words(self, count: int) -> npt.NDArray[np.uint64]:
        """``count`` uniform 64-bit words."""
        raw = self._stream.update(bytes(8 * count))
        return np.frombuffer(raw, dtype="<u8").astype(np.uint64)

    # -- uniform integers ----------------------------------------------------------------

    def below(self, bounds: IntArray) -> npt.NDArray[np.int64]:
        """U_i uniform in [0, bounds_i), for int64 bounds in [1, 2^62]."""
        k = np.asarray(bounds, dtype=np.int64).astype(np.uint64)
        out = np.empty(k.size, dtype=np.int64)
        todo = np.arange(k.size)
        while todo.size:
            w = self.words(todo.size)
            kk = k[todo]
            skip = (np.uint64(0) - kk) % kk  # 2^64 mod k: [skip, 2^64) is k * floor(2^64/k) long
            ok = w >= skip
            out[todo[ok]] = (w[ok] % kk[ok]).astype(np.int64)
            todo = todo[~ok]
        return out

    def below_int(self, bound: int, size: int) -> IntArray:
        """``size`` integers uniform in [0, bound) for one Python int ``bound`` >= 1: int64 when
        bound <= 2^62, else Python ints (bits rejection-sampled from whole words)."""
        if bound <= _SMALL:
            return self.below(np.full(size, bound, dtype=np.int64))
        bits = bound.bit_length()
        per = -(-bits // 64)
        shift = per * 64 - bits
        out = np.empty(size, dtype=object)
        todo = np.arange(size)
        while todo.size:
            w = self.words(todo.size * per).reshape(todo.size, per)
            v = np.zeros(todo.size, dtype=object)
            for j in range(per):
                v = (v << 64) | w[:, j].astype(object)
            v = v >> shift
            ok = np.less(v, bound).astype(bool)
            out[todo[ok]] = v[ok]
            todo = todo[~ok]
        return out

    # -- Bernoulli -------------------------------------------------------------------------

    def bernoulli(self, num: IntArray, den: int) -> npt.NDArray[np.bool_]:
        """B_i ~ Bernoulli(num_i / den), 0 <= num_i <= den (exact)."""
        u = self.below_int(den, len(num))
        return np.less(u, num).astype(bool)

    def bernoulli_exp_fraction(self, num: IntArray, den: int) -> npt.NDArray[np.bool_]:
        """B_i ~ Bernoulli(exp(-num_i/den)) for 0 <= num_i <= den (CKS Algorithm 1)."""
        n = len(num)
        k = np.ones(n, dtype=np.int64)
        active = np.arange(n)
        while active.size:
            a = self.bernoulli(num[active], den) & (self.below(k[active]) == 0)
            active = active[a]
            k[active] += 1
        odd: npt.NDArray[np.bool_] = (k & 1) == 1
        return odd

    def bernoulli_exp(self, num: IntArray, den: int) -> npt.NDArray[np.bool_]:
        """B_i ~ Bernoulli(exp(-num_i/den)) for num_i >= 0 of any size (CKS Algorithm 1, with
        exp(-gamma) = exp(-1)^floor(gamma) * exp(-(gamma - floor(gamma))))."""
        whole = num // den
        result = self.bernoulli_exp_fraction(num - whole * den, den)
        pending = np.flatnonzero(result & np.greater(whole, 0).astype(bool))
        while pending.size:
            b = self.bernoulli_exp_fraction(np.ones(pending.size, dtype=np.int64), 1)
            result[pending[~b]] = False
            whole[pending] -= 1
            pending = pending[b]
            pending = pending[np.greater(whole[pending], 0).astype(bool)]
        return result

    # -- integer noise ---------------------------------------------------------------------

    def geometric_exp(self, count: int) -> npt.NDArray[np.int64]:
        """V_i = the number of Bernoulli(exp(-1)) successes before the first failure."""
        v = np.zeros(count, dtype=np.int64)
        alive = np.arange(count)
        while alive.size:
            b = self.bernoulli_exp_fraction(np.ones(alive.size, dtype=np.int64), 1)
            alive = alive[b]
            v[alive] += 1
        return v

    def discrete_laplace(self, scale: int, count: int) -> npt.NDArray[np.int64]:
        """Y_i with P(Y = y) proportional to exp(-|y|/t), t = ``scale`` >= 1 (CKS Algorithm 2)."""
        _check_positive_int(scale, "scale")
        out = np.empty(count, dtype=np.int64)
        todo = np.arange(count)
        while todo.size:
            u = self.below(np.full(todo.size, scale, dtype=np.int64))
            keep = self.bernoulli_exp_fraction(u, scale)
            u, idx = u[keep], todo[keep]
            x = u + scale * self.geometric_exp(u.size)
            negative = self.below(np.full(u.size, 2, dtype=np.int64)) == 1
            ok = ~(negative & (x == 0))
            out[idx[ok]] = np.where(negative, -x, x)[ok]
            done = np.zeros(todo.size, dtype=bool)
            done[np.flatnonzero(keep)[ok]] = True
            todo = todo[~done]
        return out

    def discrete_gaussian(self, variance: int, count: int) -> npt.NDArray[np.int64]:
        """X_i ~ N_Z(0, sigma^2): P(X = x) proportional to exp(-x^2 / (2 sigma^2)), for an
        integer sigma^2 = ``variance`` >= 1 (CKS Algorithm 3)."""
        _check_positive_int(variance, "variance")
        t = math.isqrt(variance) + 1
        den = 2 * variance * t * t
        out = np.empty(count, dtype=np.int64)
        todo = np.arange(count)
        while todo.size:
            y = self.discrete_laplace(t, todo.size)
            small = variance < 1 << 31 and int(np.abs(y).max()) < 1 << 46  # |y| t < 2^62
            a: IntArray = (
                np.abs(y) * t - variance if small else np.abs(y).astype(object) * t - variance
            )
            if small and (den > _SMALL or int(np.abs(a).max()) >= 1 << 31):  # a^2 > int64
                a = a.astype(object)
            accept = self.bernoulli_exp(a * a, den)
            out[todo[accept]] = y[accept]
            todo = todo[~accept]
        return out


def _check_positive_int(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an int >= 1, got {value!r}", parameter=name)

"""Fixed-point encoding of real updates into Z_{2^b}, and back for a sum.

Encoding (per entry, client weight w in [0, 1], clip c > 0, q quantization bits)::

    L      = 2^(q-1) - 1                       # levels on each side of zero
    scale  = L / c
    v      = w * clip(x, -c, c) * scale        # in [-L, L]
    e      = floor(v + u),  u ~ U[0, 1)        # stochastic rounding: E[e] = v, |e| <= L
    ring   = e mod 2^b                         # two's complement embedding

A sum of n encodings has |sum e| <= n L < 2^(b-1) whenever n * 2^q <= 2^b (checked by
:class:`QuantizationConfig`), so the centred representative of the ring sum is the exact
integer sum and ``dequantize`` is ``signed(ring_sum) / scale``. Per entry, the error of the
decoded sum against sum_i w_i clip(x_i) is below n / scale = n c / L (each rounding moves an
entry by < 1 level); its expectation is 0.

In float64, ``v + u`` is rounded: near the clip (v = L, u just below 1) it can round up to
L + 1 once L's spacing exceeds u's resolution (with probability about 2^(q-55) per clipped entry,
1 in 128 at q = 48), and ``w * clip(x) * scale`` can land an ulp beyond L. So e is clamped to
[-L, L] after rounding: the sum bound above holds for every q up to :data:`MAX_QUANT_BITS`,
and since the rounded sum never leaves {floor(v), floor(v) + 1}, clamping changes only those
edge cases (to the value exact arithmetic gives).

The dither u comes from the ChaCha20 keystream under a fresh key drawn from the injected
RandomSource: uint32 word i of the keystream gives u_i = word_i / 2^32 (a 32-bit uniform; the
rounding bias it leaves is below 2^-32 of a level). CPU and CUDA tensors quantize
bit-identically for the same key (the same IEEE-754 float64 operations in the same order),
and nothing touches a global RNG. On numpy the encoding runs block by block (each block's
float64 temporaries stay in cache) on :mod:`secagg.parallel`'s threads. (Flower's SecAgg+
uses an offset encoding in [0, 2^q) and accepts ``clipping_range <= 0``; we use the centred
one and reject it.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from secagg import parallel
from secagg.errors import ConfigError, InvalidInputError
from secagg.primitives.prg import keystream
from secagg.primitives.prg_torch import keystream_torch
from secagg.randomness import RandomSource
from secagg.ring import Ring, RingVector, is_torch

__all__ = [
    "MAX_QUANT_BITS",
    "Encoder",
    "QuantizationConfig",
    "Quantizer",
    "check_clients_and_clip",
    "check_quantization",
    "check_weight",
    "clip_weighted",
    "l2_clip_weighted",
]

MAX_QUANT_BITS = 53
"""Levels must be exact in float64 (53-bit significand)."""

_UNIFORM = 2.0**-32
_BLOCK = 1 << 15  # entries encoded at a time: a few float64 temporaries that stay in L2


@dataclass(frozen=True, slots=True)
class QuantizationConfig:
    """Validated quantization parameters.

    Parameters
    ----------
    clip:
        c > 0: every entry of every (weighted) update is clipped to [-c, c].
    quant_bits:
        q: entries are encoded as integers in [-(2^(q-1)-1), 2^(q-1)-1].
    ring_bits:
        b in {32, 64}: the ring Z_{2^b} sums live in.
    num_clients:
        n: the most encodings that will ever be summed.
    """

    clip: float
    quant_bits: int
    ring_bits: int
    num_clients: int

    def __post_init__(self) -> None:
        check_quantization(self.clip, self.quant_bits, self.ring_bits, self.num_clients)

    @property
    def levels(self) -> int:
        """L = 2^(q-1) - 1."""
        return (1 << (self.quant_bits - 1)) - 1

    @property
    def scale(self) -> float:
        """L / c: integer units per unit of input."""
        return self.levels / self.clip

    @property
    def ring(self) -> Ring:
        return Ring(self.ring_bits)  # type: ignore[arg-type]

    def sum_error_bound(self, n: int) -> float:
        """Worst-case per-entry error of a decoded sum of ``n`` encodings: n c / L."""
        return n / self.scale


def check_clients_and_clip(num_clients: int, clip: float) -> None:
    """Raise :class:`ConfigError` unless n >= 1 is an int and c > 0 is finite."""
    if isinstance(num_clients, bool) or not isinstance(num_clients, int) or num_clients < 1:
        raise ConfigError(
            f"num_clients must be an int >= 1, got {num_clients!r}", parameter="num_clients"
        )
    if isinstance(clip, bool) or not isinstance(clip, int | float) or not math.isfinite(clip):
        raise ConfigError(f"clip must be a finite number, got {clip!r}", parameter="clip")
    if clip <= 0:
        raise ConfigError(
            f"clip must be > 0 (entries are clipped to [-clip, clip]), got {clip!r}",
            parameter="clip",
        )


def check_quantization(clip: float, quant_bits: int, ring_bits: int, num_clients: int) -> None:
    """Raise :class:`ConfigError` naming the first bad parameter and what would work."""
    check_clients_and_clip(num_clients, clip)
    if ring_bits not in (32, 64) or isinstance(ring_bits, bool):
        raise ConfigError(f"ring_bits must be 32 or 64, got {ring_bits!r}", parameter="ring_bits")
    if isinstance(quant_bits, bool) or not isinstance(quant_bits, int):
        raise ConfigError(f"quant_bits must be an int, got {quant_bits!r}", parameter="quant_bits")
    if not 2 <= quant_bits <= MAX_QUANT_BITS:
        raise ConfigError(
            f"quant_bits must be in [2, {MAX_QUANT_BITS}], got {quant_bits}",
            parameter="quant_bits",
        )
    if num_clients * (1 << quant_bits) > (1 << ring_bits):
        max_q = ring_bits - math.ceil(math.log2(num_clients))
        max_n = 1 << (ring_bits - quant_bits)
        fixes = [f"quant_bits <= {max_q}" if max_q >= 2 else None, f"num_clients <= {max_n}"]
        if ring_bits == 32:
            fixes.append("ring_bits=64")
        raise ConfigError(
            f"the sum of {num_clients} clients x 2^{quant_bits} levels does not fit in "
            f"Z_2^{ring_bits} (need num_clients * 2^quant_bits <= 2^ring_bits); use "
            + " or ".join(f for f in fixes if f),
            parameter="quant_bits",
        )


def check_weight(weight: float) -> None:
    """Raise :class:`InvalidInputError` unless ``weight`` is a number in [0, 1]."""
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise InvalidInputError(f"weight must be a number in [0, 1], got {weight!r}")
    if not 0.0 <= weight <= 1.0:
        raise InvalidInputError(f"weight must be in [0, 1], got {weight!r}")


def _real_vector(x: Any) -> npt.NDArray[Any]:
    arr = np.asarray(x)
    if arr.ndim != 1 or arr.dtype.kind not in "fiu":
        raise InvalidInputError(
            f"expected a 1-D real array, got shape {arr.shape} and dtype {arr.dtype}"
        )
    return arr


def _finite_float64(x: Any) -> npt.NDArray[np.float64]:
    v = _real_vector(x).astype(np.float64, copy=False)
    if not np.isfinite(v).all():
        raise InvalidInputError("input contains NaN or infinity")
    return v


def clip_weighted(x: Any, clip: float, weight: float = 1.0) -> npt.NDArray[np.float64]:
    """w * clip(x, -c, c) as a float64 numpy array on the host (for schemes that encode
    real numbers: CKKS). ``x`` is a 1-D numpy array or torch tensor (any device)."""
    check_weight(weight)
    if is_torch(x):
        import torch

        if x.ndim != 1 or x.is_complex() or x.dtype == torch.bool:
            raise InvalidInputError(f"expected a 1-D real tensor, got shape {tuple(x.shape)}")
        x = x.detach().to("cpu", torch.float64).numpy()
    result: npt.NDArray[np.float64] = np.clip(_finite_float64(x), -clip, clip) * float(weight)
    return result


def l2_clip_weighted(x: Any, clip: float, weight: float = 1.0) -> npt.NDArray[np.float64]:
    """w * x * min(1, c / ||x||_2) as a float64 numpy array on the host: L2 clipping (the
    encodings of :mod:`secagg.dp`), validated as :func:`clip_weighted` validates."""
    check_weight(weight)
    v = clip_weighted(x, math.inf)  # a checked float64 host copy
    norm = float(np.linalg.norm(v))
    factor = weight * min(1.0, clip / norm) if norm > 0 else 0.0
    result: npt.NDArray[np.float64] = v * factor
    return result


class Encoder(Protocol):
    """What a client machine needs of its input encoding: :class:`Quantizer`, or with
    distributed DP a session's :class:`~secagg.dp.encoding.DPEncoder`."""

    ring: Ring

    def quantize(self, x: Any, rng: RandomSource, *, weight: float = 1.0) -> RingVector:
        """One client's update as a ring vector."""
        ...

    def dequantize(self, ring_sum: RingVector) -> Any:
        """A ring sum of encodings as float64."""
        ...


class Quantizer:
    """Encode one client's update into the ring and decode a sum of encodings."""

    def __init__(self, config: QuantizationConfig) -> None:
        self.config = config
        self.ring = config.ring

    def quantize(self, x: Any, rng: RandomSource, *, weight: float = 1.0) -> RingVector:
        """Encode a flat float vector (numpy, or torch on any device) as a ring vector.

        Parameters
        ----------
        x:
            1-D float array or tensor. Must be finite.
        rng:
            Source of the 32-byte dither key.
        weight:
            w in [0, 1], applied before clipping and rounding (weighted sums).

        Returns
        -------
        RingVector
            numpy uint32/uint64 for numpy input; int32/int64 on ``x.device`` for torch input.
        """
        check_weight(weight)
        cfg = self.config
        key = rng.random_bytes(32)
        if not is_torch(x):
            return self._quantize_numpy(_real_vector(x), key, weight * cfg.scale)
        import torch

        if x.ndim != 1 or x.is_complex() or x.dtype == torch.bool:
            raise InvalidInputError(f"expected a 1-D real tensor, got shape {tuple(x.shape)}")
        x = x.detach()
        if x.device.type != "cpu":
            return self._quantize_torch(x, key, weight * cfg.scale)
        if x.dtype not in (torch.float32, torch.float64):
            x = x.to(torch.float64)  # exact for every dtype numpy lacks (half, bfloat16)
        encoded = self._quantize_numpy(x.resolve_neg().numpy(), key, weight * cfg.scale)
        return torch.from_numpy(encoded.view(self.ring.signed_numpy_dtype))

    def _quantize_torch(self, x: Any, key: bytes, factor: float) -> RingVector:
        """The encoding computed by torch on ``x``'s device (a GPU): the numpy path's float64
        operations in the same order, so the same integers."""
        import torch

        cfg = self.config
        v = x.to(torch.float64)
        if not bool(torch.isfinite(v).all()):
            raise InvalidInputError("input contains NaN or infinity")
        bits = keystream_torch(key, v.numel(), 32, device=v.device)
        u = (bits.to(torch.int64) & 0xFFFFFFFF).to(torch.float64) * _UNIFORM
        e = torch.floor(v.clamp(-cfg.clip, cfg.clip) * factor + u)
        e = e.clamp(-cfg.levels, cfg.levels)  # float64 rounding near the clip: see above
        return self.ring.from_signed(e.to(torch.int64))

    def _quantize_numpy(self, x: npt.NDArray[Any], key: bytes, factor: float) -> RingVector:
        """e = clamp(floor(clip(x) * factor + u), -L, L) into the ring, in cache-sized blocks:
        the same float64 operations as the torch path, so the same integers."""
        cfg = self.config
        signed = self.ring.signed_numpy_dtype
        out = np.empty(x.size, dtype=signed)
        dither = keystream(key, x.size, 32)
        finite = [True]

        def encode(lo: int, hi: int) -> None:
            v = np.empty(min(_BLOCK, hi - lo), dtype=np.float64)
            u = np.empty_like(v)
            for start in range(lo, hi, _BLOCK):
                stop = min(start + _BLOCK, hi)
                vb, ub = v[: stop - start], u[: stop - start]
                vb[...] = x[start:stop]  # exact widening to float64
                with np.errstate(over="ignore", invalid="ignore"):
                    total = np.add.reduce(vb)  # a finite sum proves every entry finite
                if not math.isfinite(total) and not np.isfinite(vb).all():
                    finite[0] = False
                    return
                np.clip(vb, -cfg.clip, cfg.clip, out=vb)
                np.multiply(vb, factor, out=vb)
                np.multiply(dither[start:stop], _UNIFORM, out=ub)
                np.add(vb, ub, out=vb)
                np.floor(vb, out=vb)
                np.clip(vb, -cfg.levels, cfg.levels, out=vb)  # float64 rounding near the clip
                out[start:stop] = vb  # exact: an integer of at most b - 1 bits

        parallel.for_ranges(encode, x.size)
        if not finite[0]:
            raise InvalidInputError("input contains NaN or infinity")
        return out.view(self.ring.numpy_dtype)

    def dequantize(self, ring_sum: RingVector) -> Any:
        """Decode a ring sum of at most ``num_clients`` encodings to float64 (same device)."""
        signed: Any = self.ring.to_signed(ring_sum)
        if is_torch(signed):
            import torch

            return signed.to(torch.float64) / self.config.scale
        return signed.astype(np.float64) / self.config.scale

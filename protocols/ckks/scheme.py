"""CKKS through TenSEAL: encode, encrypt in slot-sized chunks, add, decrypt.

Every vector handed to TenSEAL fits one ciphertext (at most N / 2 values), so TenSEAL's
"does not fit in a single ciphertext" warning (printed on stdout by C++) never fires. Model
layers are flattened into one vector before chunking, so small layers share ciphertexts.

TenSEAL/SEAL draw encryption and key-generation randomness from SEAL's own CSPRNG (seeded
from the OS); it cannot be injected, so CKKS ciphertexts are not reproducible from a seed.
Decrypted sums agree with the exact sum within :meth:`CkksPreset.error_bound`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import tenseal as ts
import tenseal.sealapi  # registers the SEAL types that the parameter checks read

from secagg.dp import DistributedDP
from secagg.dp.continuous import gaussian_floats
from secagg.errors import (
    AbortError,
    CiphertextError,
    ConfigError,
    MissingSecretKeyError,
)
from secagg.protocol import KeyMaterial, SecretBytes
from secagg.quantize import clip_weighted, l2_clip_weighted
from secagg.randomness import RandomSource

from ..he.scheme import Accumulator, Scheme
from .presets import CkksPreset

__all__ = ["CkksAccumulator", "CkksScheme"]

_TENSEAL_ERRORS = (ValueError, RuntimeError, TypeError)


def _serialize(ctx: ts.Context, *, secret: bool) -> bytes:
    data: bytes = ctx.serialize(
        save_public_key=True,
        save_secret_key=secret,
        save_galois_keys=False,
        save_relin_keys=False,
    )
    return data


def keygen(preset: CkksPreset) -> KeyMaterial:
    """Fresh CKKS keys for ``preset``: no Galois keys (a sum needs no rotations, and they
    would add tens of MB to every copy of the public context)."""
    ctx = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=preset.poly_modulus_degree,
        coeff_mod_bit_sizes=list(preset.coeff_mod_bit_sizes),
    )
    ctx.global_scale = 2.0**preset.scale_bits
    secret = _serialize(ctx, secret=True)
    ctx.make_context_public()
    return KeyMaterial(_serialize(ctx, secret=False), SecretBytes(secret))


class CkksScheme(Scheme):
    """CKKS bound to one task's context.

    Parameters
    ----------
    preset:
        The task's parameters; a context made for other parameters is refused.
    keys:
        ``keys.public`` (participants, aggregator) or with ``keys.secret`` (decryptors).
    clip:
        c: entries are clipped to [-c, c] before weighting and encryption.
    num_clients:
        n, to bound sums: n c must stay below ``preset.max_abs_sum``.
    dp:
        Continuous distributed DP: L2 clip and float64 Gaussian shares (or None).
    """

    value_dtype = np.dtype(np.float64)

    def __init__(
        self,
        preset: CkksPreset,
        keys: KeyMaterial,
        clip: float,
        num_clients: int,
        dp: DistributedDP | None = None,
    ):
        self.preset = preset
        self._dp = dp
        self.slots = preset.slots
        self._clip = float(clip)
        self._num_clients = num_clients
        blob = keys.secret.reveal() if keys.secret is not None else keys.public
        try:
            ctx = ts.context_from(blob)
        except _TENSEAL_ERRORS as exc:
            raise ConfigError(f"not a TenSEAL context: {exc}", parameter="keys") from None
        parms = ctx.seal_context().data.key_context_data().parms()
        got = (
            parms.poly_modulus_degree(),
            tuple(q.bit_count() for q in parms.coeff_modulus()),
            str(parms.scheme()),
        )
        want = (preset.poly_modulus_degree, preset.coeff_mod_bit_sizes, str(ts.SCHEME_TYPE.CKKS))
        if got != want:
            raise ConfigError(
                f"the context has N={got[0]}, primes {got[1]}, {got[2]}; preset "
                f"{preset.name!r} needs N={want[0]}, primes {want[1]}, CKKS",
                parameter="keys",
            )
        ctx.global_scale = 2.0**preset.scale_bits
        self._ctx = ctx
        self._data_level = ctx.seal_context().data.first_parms_id()

    @property
    def can_decrypt(self) -> bool:
        private: bool = self._ctx.is_private()
        return private

    def encode(self, vector: Any, weight: float, rng: RandomSource) -> npt.NDArray[Any]:
        if self._dp is None:
            return clip_weighted(vector, self._clip, weight)
        dp = self._dp  # L2 clip, then this client's share of the noise (float64: see dp)
        x = l2_clip_weighted(vector, dp.l2_clip, weight)
        std = dp.noise_multiplier * dp.l2_clip / math.sqrt(dp.min_contributors)
        return x + gaussian_floats(rng, std, x.size)

    def encrypt(self, values: npt.NDArray[Any], rng: RandomSource) -> tuple[bytes, ...]:
        return tuple(
            ts.ckks_vector(self._ctx, values[i : i + self.slots]).serialize()
            for i in range(0, len(values), self.slots)
        )

    def load(self, chunk: bytes, length: int) -> ts.CKKSVector:
        """Parse one chunk and check it is a fresh-level, 2-polynomial ciphertext at the
        task's scale holding ``length`` values."""
        try:
            vec = ts.ckks_vector_from(self._ctx, chunk)
            parts = vec.ciphertext()
        except _TENSEAL_ERRORS as exc:
            raise CiphertextError(f"not a CKKS ciphertext of this task: {exc}") from None
        if vec.size() != length or len(parts) != 1:
            raise CiphertextError(f"chunk holds {vec.size()} values, expected {length}")
        (ct,) = parts
        if ct.size() != 2 or ct.parms_id() != self._data_level:
            raise CiphertextError("chunk is not a fresh 2-polynomial ciphertext at the data level")
        if ct.scale != 2.0**self.preset.scale_bits:
            raise CiphertextError(
                f"chunk has scale 2^{np.log2(ct.scale):.1f}, the task's is "
                f"2^{self.preset.scale_bits}"
            )
        return vec

    def load_all(self, chunks: tuple[bytes, ...], dim: int) -> list[ts.CKKSVector]:
        if len(chunks) != self.num_chunks(dim):
            raise CiphertextError(
                f"{len(chunks)} ciphertexts for {dim} values; expected {self.num_chunks(dim)}"
            )
        return [self.load(c, min(self.slots, dim - i * self.slots)) for i, c in enumerate(chunks)]

    def accumulator(self, dim: int) -> CkksAccumulator:
        return CkksAccumulator(self, dim)

    def decrypt(self, chunks: tuple[bytes, ...], dim: int) -> npt.NDArray[Any]:
        if not self.can_decrypt:
            raise MissingSecretKeyError("this CKKS context holds no secret key")
        parts = [np.asarray(v.decrypt(), dtype=np.float64) for v in self.load_all(chunks, dim)]
        return np.concatenate(parts)

    def finish(self, values: npt.NDArray[Any], num_inputs: int) -> npt.NDArray[Any]:
        limit = num_inputs * self._clip + self.preset.error_bound(num_inputs)
        worst = float(np.abs(values).max())
        if worst > limit:
            raise AbortError(
                "out-of-range-sum",
                f"|sum| reaches {worst:.6g}; {num_inputs} clipped inputs give at most {limit:.6g}",
            )
        return values

    def agree(self, a: npt.NDArray[Any], b: npt.NDArray[Any]) -> bool:
        tolerance = self.preset.error_bound(self._num_clients)
        return bool(np.abs(a - b).max() <= tolerance)


class CkksAccumulator(Accumulator):
    """Running sum: one ciphertext per chunk, added in place."""

    def __init__(self, scheme: CkksScheme, dim: int) -> None:
        super().__init__(dim)
        self._scheme = scheme

    def _parse(self, chunks: tuple[bytes, ...]) -> list[Any]:
        return self._scheme.load_all(chunks, self.dim)

    def _combine(self, total: list[Any], parts: list[Any]) -> list[Any]:
        for acc, part in zip(total, parts, strict=True):
            acc.add_(part)
        return total

    def _serialize(self, part: Any) -> bytes:
        data: bytes = part.serialize()
        return data

"""Paillier (phe + gmpy2) with slot packing.

Encoding (per entry; q, c, L = 2^(q-1) - 1 and the dither as in :mod:`secagg.quantize`)::

    e      = quantize(w clip(x))        in [-L, L]   (the same encoding as every masking protocol)
    v      = e + L                      in [0, 2L]   (offset: slots hold non-negative integers)
    slot   = w_s = q + ceil(log2 n) + g bits         (n inputs of < 2^q sum below 2^(w_s - g))
    m      = sum_j v_j 2^(j w_s)        k = floor((|N| - 1) / w_s) values per plaintext m < N
    c      = (1 + N)^m r^N mod N^2      phe's ``raw_encrypt``, r uniform in [1, N) from the rng

The aggregator multiplies ciphertexts mod N^2 (adds plaintexts); the decryptor returns the
slot sums S_j, and the aggregator checks S_j <= 2 |U| L (the g guard bits make an
out-of-range input show up here instead of carrying silently into the next slot) and turns
them into the ring sum sum_u e_u = S_j - |U| L, decoded as for every quantizing protocol.
"""

from __future__ import annotations

import math
from typing import Any

import gmpy2
import numpy as np
import numpy.typing as npt
from phe import paillier

from secagg.errors import (
    AbortError,
    CiphertextError,
    ConfigError,
    MissingSecretKeyError,
)
from secagg.protocol import KeyMaterial, SecretBytes
from secagg.quantize import Encoder
from secagg.randomness import RandomSource

from ..he.scheme import Accumulator, Scheme
from .packing import pack, unpack

__all__ = ["PaillierAccumulator", "PaillierScheme", "keygen", "slot_bits"]


def slot_bits(quant_bits: int, num_clients: int, guard_bits: int) -> int:
    """w_s = q + ceil(log2 n) + g: room for the sum of n offset encodings plus guard bits."""
    return quant_bits + math.ceil(math.log2(num_clients)) + guard_bits


def _random_prime(bits: int, rng: RandomSource) -> int:
    """A prime of exactly ``bits`` bits with its top two bits set (so p q has 2 bits)."""
    while True:
        candidate = int.from_bytes(rng.random_bytes(bits // 8), "big")
        candidate |= (0b11 << (bits - 2)) | 1
        prime = int(gmpy2.next_prime(candidate))
        if prime.bit_length() == bits:
            return prime


def keygen(key_bits: int, rng: RandomSource) -> KeyMaterial:
    """Paillier keys with a ``key_bits``-bit modulus N = p q (p, q from ``rng``)."""
    half = key_bits // 2
    p = _random_prime(half, rng)
    q = _random_prime(half, rng)
    while q == p:
        q = _random_prime(half, rng)
    n = p * q
    secret = p.to_bytes(half // 8, "big") + q.to_bytes(half // 8, "big")
    return KeyMaterial(n.to_bytes(key_bits // 8, "big"), SecretBytes(secret))


class PaillierScheme(Scheme):
    """Paillier bound to one task's key.

    Parameters
    ----------
    keys:
        ``keys.public`` (N, big-endian) and, for decryptors, ``keys.secret`` (p || q).
    key_bits:
        |N|; a key of another size is refused.
    quantizer:
        The input encoding (the task's quantizer, or a client's DP encoder): ``quantize``
        and ``ring``.
    levels:
        L: encodings lie in [-L, L] and are offset by L into [0, 2L].
    width:
        w_s, bits per slot (:func:`slot_bits`).
    """

    value_dtype = np.dtype(np.uint64)

    def __init__(
        self,
        keys: KeyMaterial,
        key_bits: int,
        quantizer: Encoder,
        *,
        levels: int,
        width: int,
    ) -> None:
        if len(keys.public) != key_bits // 8 or not keys.public[0] & 0x80:
            raise ConfigError(f"public key is not a {key_bits}-bit modulus", parameter="keys")
        n = int.from_bytes(keys.public, "big")
        self.public_key = paillier.PaillierPublicKey(n)
        self._private_key: paillier.PaillierPrivateKey | None = None
        if keys.secret is not None:
            raw = keys.secret.reveal()
            p, q = (
                int.from_bytes(raw[: len(raw) // 2], "big"),
                int.from_bytes(raw[len(raw) // 2 :], "big"),
            )
            if len(raw) != key_bits // 8 or p * q != n:
                raise ConfigError("secret key does not match the public modulus", parameter="keys")
            self._private_key = paillier.PaillierPrivateKey(self.public_key, p, q)
        self._key_bytes = key_bits // 8
        self.nsquare = gmpy2.mpz(self.public_key.nsquare)
        self._quantizer = quantizer
        self._levels = levels
        self.width = width
        self.slots = (key_bits - 1) // self.width

    @property
    def ciphertext_bytes(self) -> int:
        """2 |N| / 8: a ciphertext is an element of Z*_{N^2}, sent fixed-width."""
        return 2 * self._key_bytes

    @property
    def can_decrypt(self) -> bool:
        return self._private_key is not None

    def encode(self, vector: Any, weight: float, rng: RandomSource) -> npt.NDArray[Any]:
        ring = self._quantizer.ring
        encoded = ring.to_numpy(self._quantizer.quantize(vector, rng, weight=weight))
        signed = np.asarray(ring.to_signed(encoded), dtype=np.int64)
        return (signed + self._levels).astype(np.uint64)

    def _obfuscators(self, count: int, rng: RandomSource) -> list[int]:
        """r uniform in [1, N) (statistical distance < 2^-128), one per ciphertext."""
        n = self.public_key.n
        size = self._key_bytes + 16
        raw = rng.random_bytes(count * size)
        out = []
        for i in range(count):
            r = int.from_bytes(raw[i * size : (i + 1) * size], "big") % n
            while r == 0:  # probability 1/N
                r = int.from_bytes(rng.random_bytes(size), "big") % n
            out.append(r)
        return out

    def encrypt(self, values: npt.NDArray[Any], rng: RandomSource) -> tuple[bytes, ...]:
        plaintexts = pack(values, self.width, self.slots)
        rs = self._obfuscators(len(plaintexts), rng)
        size = self.ciphertext_bytes
        return tuple(
            int(self.public_key.raw_encrypt(m, r_value=r)).to_bytes(size, "big")
            for m, r in zip(plaintexts, rs, strict=True)
        )

    def parse(self, chunks: tuple[bytes, ...], dim: int) -> list[Any]:
        """Ciphertexts as gmpy2 integers, each checked to be a fixed-width element of
        [1, N^2)."""
        expected = self.num_chunks(dim)
        if len(chunks) != expected:
            raise CiphertextError(
                f"{len(chunks)} ciphertexts for {dim} values; expected {expected}"
            )
        out = []
        for i, chunk in enumerate(chunks):
            if len(chunk) != self.ciphertext_bytes:
                raise CiphertextError(
                    f"ciphertext {i} has {len(chunk)} bytes, expected {self.ciphertext_bytes}"
                )
            c = gmpy2.mpz(int.from_bytes(chunk, "big"))
            if not 0 < c < self.nsquare:
                raise CiphertextError(f"ciphertext {i} is not in [1, N^2)")
            out.append(c)
        return out

    def accumulator(self, dim: int) -> PaillierAccumulator:
        return PaillierAccumulator(self, dim)

    def decrypt(self, chunks: tuple[bytes, ...], dim: int) -> npt.NDArray[Any]:
        if self._private_key is None:
            raise MissingSecretKeyError("this Paillier key holds no private key")
        key = self._private_key
        plaintexts = [key.raw_decrypt(int(c)) for c in self.parse(chunks, dim)]
        return unpack(plaintexts, self.width, self.slots)[:dim]

    def finish(self, values: npt.NDArray[Any], num_inputs: int) -> npt.NDArray[Any]:
        limit = 2 * num_inputs * self._levels
        worst = int(values.max())
        if worst > limit:
            raise AbortError(
                "out-of-range-sum",
                f"a slot sum reaches {worst}; {num_inputs} encodings give at most {limit}",
            )
        signed = values.astype(np.int64) - num_inputs * self._levels
        ring = self._quantizer.ring
        return ring.to_numpy(ring.from_signed(signed))

    def agree(self, a: npt.NDArray[Any], b: npt.NDArray[Any]) -> bool:
        return bool(np.array_equal(a, b))


class PaillierAccumulator(Accumulator):
    """Running product of ciphertexts mod N^2 (the sum of the plaintexts)."""

    def __init__(self, scheme: PaillierScheme, dim: int) -> None:
        super().__init__(dim)
        self._scheme = scheme

    def _parse(self, chunks: tuple[bytes, ...]) -> list[Any]:
        return self._scheme.parse(chunks, self.dim)

    def _combine(self, total: list[Any], parts: list[Any]) -> list[Any]:
        nsq = self._scheme.nsquare
        return [a * c % nsq for a, c in zip(total, parts, strict=True)]

    def _serialize(self, part: Any) -> bytes:
        return int(part).to_bytes(self._scheme.ciphertext_bytes, "big")

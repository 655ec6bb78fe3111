"""CKKS parameter presets for a homomorphic *sum*, their security level and error bound.

A sum needs no multiplicative depth, so the coefficient modulus is one data prime q_0 (holding
Delta * |sum|) plus the special prime SEAL requires for key switching (TenSEAL always makes
relinearization keys). A fresh ciphertext lives at the data level: 2 polynomials of N
coefficients mod q_0, i.e. 16 N bytes for N / 2 values, 8x float32 whatever N is.
TenSEAL's tutorial parameters (two more 40-bit primes for depth 2) cost 20x.

Security: the largest total log2(q) that the HomomorphicEncryption.org standard allows for
ternary secrets at each level (SEAL's ``CoeffModulus.MaxBitCount``):

    ======  =======  =======  =======
    N       128-bit  192-bit  256-bit
    ======  =======  =======  =======
    4096    109      75       58
    8192    218      152      118
    ======  =======  =======  =======

Error (Cheon, Kim, Kim, Song 2017, Lemma 1): a fresh public-key encryption's noise has
canonical-embedding norm below ``B_clean = 8 sqrt(2) sigma N + 6 sigma sqrt(N) +
16 sigma sqrt(h N)`` with high probability (sigma = 3.2, SEAL's ternary secret has h about
2N/3); encoding rounds each coefficient by at most 1/2, adding at most N/2. Decrypted values
are scaled by 1/Delta and homomorphic additions add noises, so every entry of a decrypted sum
of m ciphertexts is within ``m (B_clean + N/2) / Delta`` of the exact sum
(:meth:`CkksPreset.error_bound`). The observed error is about 1000x smaller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_PRESET", "PRESETS", "CkksPreset"]

NOISE_SIGMA = 3.2
"""SEAL's standard deviation of the encryption error distribution."""


@dataclass(frozen=True, slots=True)
class CkksPreset:
    """One CKKS parameter set.

    Attributes
    ----------
    name:
        The preset's name (``protocols.get("ckks", preset=name)``).
    poly_modulus_degree:
        N; a ciphertext carries N / 2 real values (slots).
    coeff_mod_bit_sizes:
        Bit sizes of the primes of q; the last one is the special (key-switching) prime.
    scale_bits:
        log2(Delta), the fixed-point scale of the encoding.
    security_bits:
        Classical security level under the HE standard (checked against SEAL's table by a
        test).
    """

    name: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    scale_bits: int
    security_bits: int

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // 2

    @property
    def data_primes(self) -> int:
        return len(self.coeff_mod_bit_sizes) - 1

    @property
    def ciphertext_bytes(self) -> int:
        """Size of a fresh ciphertext before SEAL's compression: 2 polynomials of N
        coefficients, 8 bytes per prime each (compression gets close to the primes' bit
        sizes: little for a 60-bit prime, a third for 40-bit ones)."""
        return 2 * self.poly_modulus_degree * self.data_primes * 8

    @property
    def expansion(self) -> float:
        """Ciphertext bytes per float32 byte of a full chunk (before SEAL's compression)."""
        return self.ciphertext_bytes / (4 * self.slots)

    @property
    def max_abs_sum(self) -> float:
        """The largest |sum entry| that decrypts correctly, with a factor-4 margin below q_0/2
        (beyond it the plaintext wraps modulo q_0)."""
        data_bits = sum(self.coeff_mod_bit_sizes[:-1])
        return float(2 ** (data_bits - self.scale_bits - 3))

    def fresh_noise(self) -> float:
        """B_clean + N/2: the per-ciphertext error bound before scaling."""
        n = self.poly_modulus_degree
        h = 2 * n / 3
        b_clean = NOISE_SIGMA * (8 * math.sqrt(2) * n + 6 * math.sqrt(n) + 16 * math.sqrt(h * n))
        return b_clean + n / 2

    def error_bound(self, num_inputs: int) -> float:
        """Per-entry bound on |decrypted sum - exact sum| for a sum of ``num_inputs``."""
        return num_inputs * self.fresh_noise() / 2.0**self.scale_bits


PRESETS: dict[str, CkksPreset] = {
    p.name: p
    for p in (
        # Default: 256-bit security (109 <= 118), 4096 values per ciphertext, 8x float32.
        CkksPreset("n8192", 8192, (60, 49), 40, 256),
        # Compact: 128-bit security (109 <= 109), 2048 values per ciphertext, 8x float32;
        # half the ciphertext size, so less padding for small updates.
        CkksPreset("n4096", 4096, (60, 49), 40, 128),
        # TenSEAL's tutorial parameters (depth 2), for comparison: 128-bit, 20x float32.
        CkksPreset("tenseal-default", 8192, (60, 40, 40, 60), 40, 128),
    )
}
DEFAULT_PRESET = "n8192"

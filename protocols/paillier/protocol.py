"""The ``paillier`` protocol object and its config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from secagg.errors import ConfigError
from secagg.protocol import CommonConfig, KeyMaterial, QuantizedProtocol, Session
from secagg.randomness import RandomSource

from ..he.protocol import HEProtocol
from ..he.roles import KeyMode, check_roles
from .scheme import PaillierScheme, keygen, slot_bits

__all__ = ["MIN_KEY_BITS", "Paillier", "PaillierConfig"]

NAME = "paillier"
MIN_KEY_BITS = 2048
"""|N| >= 2048 (112-bit security, NIST SP 800-57 for factoring-based keys)."""


@dataclass(frozen=True, slots=True)
class PaillierConfig(CommonConfig):
    """:class:`~secagg.protocol.CommonConfig` plus the Paillier key, packing and roles.

    Parameters
    ----------
    key_bits:
        |N|, a multiple of 256 in [2048, 8192]. 2048 is about 112-bit security, 3072 128-bit.
    guard_bits:
        g >= 0 extra bits per slot beyond q + ceil(log2 n); an input outside [-L, L] then
        shows up as an out-of-range slot sum instead of carrying into the next slot.
    key_mode, min_survivors, allow_single_input, num_decryptors:
        As for ``ckks`` (see :class:`~secagg.protocols.he.KeyMode`): ``min_survivors``
        defaults to max(2, ceil(n / 2)), and 1 needs ``allow_single_input=True``.
    """

    key_bits: int = MIN_KEY_BITS
    guard_bits: int = 1
    key_mode: KeyMode | str = KeyMode.KEY_HOLDER
    min_survivors: int | None = None
    allow_single_input: bool = False
    num_decryptors: int = 1

    def __post_init__(self) -> None:
        CommonConfig.__post_init__(self)
        k = self.key_bits
        if isinstance(k, bool) or not isinstance(k, int) or k % 256 or not 2048 <= k <= 8192:
            raise ConfigError(
                f"key_bits must be a multiple of 256 in [{MIN_KEY_BITS}, 8192], got {k!r}",
                parameter="key_bits",
            )
        g = self.guard_bits
        if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g <= 8:
            raise ConfigError(
                f"guard_bits must be an int in [0, 8], got {g!r}", parameter="guard_bits"
            )
        if self.dp is not None and self.num_clients << self.dp.bits > 1 << self.ring_bits:
            raise ConfigError(
                f"with dp, {self.num_clients} sums of b={self.dp.bits}-bit encodings need "
                f"num_clients * 2^b <= 2^ring_bits; lower dp.bits or use ring_bits=64",
                parameter="dp",
            )
        if self.slot_bits > 63:
            raise ConfigError(
                f"a slot needs quant_bits + ceil(log2 num_clients) + guard_bits = "
                f"{self.slot_bits} bits; at most 63 are supported: lower quant_bits",
                parameter="quant_bits",
            )
        check_roles(self)

    @property
    def slot_bits(self) -> int:
        """w_s = q + ceil(log2 n) + g (q = dp.bits + 1 with dp)."""
        q = self.quant_bits if self.dp is None else self.dp.bits + 1
        return slot_bits(q, self.num_clients, self.guard_bits)

    @property
    def slots(self) -> int:
        """Entries packed into one ciphertext: floor((|N| - 1) / w_s)."""
        return (self.key_bits - 1) // self.slot_bits


class Paillier(HEProtocol, QuantizedProtocol[PaillierConfig]):
    """Sum of quantized vectors under Paillier (phe + gmpy2) with slot packing.

    The quantization and dither are those of ``plain`` and the masking protocols, so the
    same seed gives the same ring sum.
    """

    name: ClassVar[str] = NAME
    Config = PaillierConfig

    def keygen(self, rng: RandomSource | int | None = None) -> KeyMaterial:
        """Fresh keys; p and q come from ``rng`` (OS entropy by default)."""
        return keygen(self.config.key_bits, self._rng(rng))

    def scheme(self, keys: KeyMaterial, session: Session | None = None) -> PaillierScheme:
        """With ``dp``, slots hold the DP encoding's [-2^(b-1), 2^(b-1)): levels 2^(b-1) and
        b + 1 bits; clients need ``session`` (it seeds the DP rotation), the others do not."""
        cfg = self.config
        encoder = self.quantizer if session is None else self.encoder(session)
        levels = cfg.quantization.levels if cfg.dp is None else 1 << (cfg.dp.bits - 1)
        return PaillierScheme(keys, cfg.key_bits, encoder, levels=levels, width=cfg.slot_bits)

"""The distributed-DP configuration and the integer parameters it implies for a round.

Kairouz, Liu and Steinke, "The Distributed Discrete Gaussian Mechanism for Federated Learning
with Secure Aggregation" (ICML 2021), notation -> ours:

==============  =====================================  ==========================================
paper           meaning                                here
==============  =====================================  ==========================================
c               L2 clip of one client's update         ``DistributedDP.l2_clip``
gamma           granularity: one integer unit          ``DPParameters.gamma``
sigma^2         per-client discrete Gaussian param.    ``DPParameters.variance`` (integer units)
n               clients whose noise is in the sum      ``DistributedDP.min_contributors`` (m)
beta            conditional rounding parameter         ``DistributedDP.beta``
m (modulus)     2^b                                    ``DistributedDP.bits`` (b)
Delta_2         L2 sensitivity after rounding          sqrt(``DPParameters.sensitivity_sq``)
k               headroom in standard deviations        ``DistributedDP.headroom``
==============  =====================================  ==========================================

One client's noise share has variance (z c)^2 / m in input units, so m contributors together
add N(0, (z c)^2) worth of noise, z = ``noise_multiplier``. More contributors only add noise.
The integer parameter is rounded *up* (sigma^2 = ceil(((z c)^2 / m) / gamma^2)), so the noise
is never less than configured, and the accountant uses the rounded value.

gamma is chosen so that the sum stays inside [-2^(b-1), 2^(b-1)) with ``headroom`` standard
deviations to spare, as in the paper's Eq. 61 with the conservative ||sum|| <= n c:
k^2 (n^2 c^2 / d + n gamma^2 / 4 + n sigma^2 gamma^2) <= (2^(b-1) gamma)^2.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from secagg.errors import ConfigError

__all__ = ["DEFAULT_BETA", "DPParameters", "DistributedDP", "Mechanism"]

DEFAULT_BETA = math.exp(-0.5)
"""The paper's (and TFF's) conditional rounding parameter."""

MAX_ROUNDING_TRIES = 1000
"""Conditional rounding draws at most this many roundings (each fails with prob. <= beta)."""


class Mechanism(enum.Enum):
    """The integer noise the clients add."""

    DDG = "ddg"
    """The distributed discrete Gaussian (Kairouz, Liu, Steinke 2021): exact integer noise
    shares inside the ring (every protocol but ``ckks``)."""
    CONTINUOUS_GAUSSIAN = "continuous-gaussian"
    """``ckks`` only: float64 Gaussian shares, **not exact** (:mod:`secagg.dp.continuous`);
    accounted as the ideal Gaussian mechanism."""


@dataclass(frozen=True, slots=True)
class DPParameters:
    """The integer encoding of one round: what :class:`DistributedDP` implies for n and d."""

    dim: int
    num_clients: int
    gamma: float
    variance: int
    sensitivity_sq: float
    norm_bound_sq: int
    bits: int


@dataclass(frozen=True, slots=True)
class DistributedDP:
    """Distributed differential privacy inside the secure sum.

    Each client clips its update to L2 norm ``l2_clip``, rotates it (:mod:`secagg.dp.rotation`),
    scales it to integer units, rounds it conditionally and adds its share of discrete Gaussian
    noise (:mod:`secagg.dp.sampling`), modulo 2^``bits``. The server sees only the masked or
    encrypted sum, and decodes the noisy sum.

    Parameters
    ----------
    l2_clip:
        c > 0: each client's (weighted) update is scaled to L2 norm at most c.
    noise_multiplier:
        z > 0: ``min_contributors`` noise shares add up to noise of standard deviation z c.
    min_contributors:
        m >= 1: the fewest *honest* clients whose noise is in any sum the protocol finalizes.
        The protocol's config must guarantee it: ``min_survivors`` - floor(``corrupted_fraction``
        n) >= m for the masking protocols (a corrupt client knows, or omits, its own share),
        ``min_survivors`` >= m for the others (checked when the protocol is built).
    delta:
        delta in (0, 1) of the reported (epsilon, delta).
    bits:
        b: the noisy sum is computed modulo 2^b (at most the protocol's ``ring_bits``).
    beta:
        Conditional rounding: roundings whose L2 norm exceeds the bound that holds with
        probability 1 - beta are drawn again (0 disables it and uses the worst-case bound).
    headroom:
        k: gamma leaves k standard deviations of the sum inside the modulus.
    epsilon_budget:
        The epsilon (at ``delta``) after which drivers refuse to run another round, or None.
    """

    l2_clip: float
    noise_multiplier: float
    min_contributors: int
    delta: float
    bits: int = 20
    beta: float = DEFAULT_BETA
    headroom: float = 4.0
    epsilon_budget: float | None = None
    mechanism: Mechanism = Mechanism.DDG

    def __post_init__(self) -> None:
        _positive("l2_clip", self.l2_clip)
        _positive("noise_multiplier", self.noise_multiplier)
        _positive("headroom", self.headroom)
        m = self.min_contributors
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ConfigError(
                f"min_contributors must be an int >= 1, got {m!r}", parameter="min_contributors"
            )
        if not _number(self.delta) or not 0 < self.delta < 1:
            raise ConfigError(f"delta must be in (0, 1), got {self.delta!r}", parameter="delta")
        b = self.bits
        if isinstance(b, bool) or not isinstance(b, int) or not 4 <= b <= 62:
            raise ConfigError(f"bits must be an int in [4, 62], got {b!r}", parameter="bits")
        if not _number(self.beta) or not 0 <= self.beta < 1:
            raise ConfigError(f"beta must be in [0, 1), got {self.beta!r}", parameter="beta")
        if self.epsilon_budget is not None:
            _positive("epsilon_budget", self.epsilon_budget)
        if not isinstance(self.mechanism, Mechanism):
            raise ConfigError(
                f"mechanism must be a Mechanism, got {self.mechanism!r}", parameter="mechanism"
            )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields (a task spec carries them), the inverse of :meth:`from_dict`."""
        out: dict[str, object] = {f: getattr(self, f) for f in self.__dataclass_fields__}
        out["mechanism"] = self.mechanism.value
        return out

    @classmethod
    def from_dict(cls, fields: object) -> DistributedDP:
        """Parse :meth:`to_dict`'s output; anything else is a :class:`ConfigError`."""
        if not isinstance(fields, dict):
            raise ConfigError(f"dp must be an object, got {fields!r}", parameter="dp")
        unknown = sorted(set(fields) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"dp has no parameter {', '.join(unknown)}", parameter="dp")
        values = dict(fields)
        try:
            values["mechanism"] = Mechanism(values.get("mechanism", Mechanism.DDG.value))
            return cls(**values)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"malformed dp config: {exc}", parameter="dp") from exc

    def check_protocol(
        self,
        name: str,
        num_clients: int,
        min_survivors: int,
        ring_bits: int | None,
        corrupt: int = 0,
    ) -> None:
        """Raise :class:`ConfigError` unless every sum the protocol may finalize holds at least
        ``min_contributors`` honest noise shares: min_survivors - corrupt >= m, where
        ``corrupt`` clients (the protocol's ``floor(corrupted_fraction n)``) may be the
        adversary's and know their own share; and unless the modulus fits in the ring
        (``ring_bits`` None: a protocol of real numbers, CKKS, which takes only the continuous
        mechanism)."""
        m = self.min_contributors
        real = ring_bits is None
        if real != (self.mechanism is Mechanism.CONTINUOUS_GAUSSIAN):
            want = Mechanism.CONTINUOUS_GAUSSIAN if real else Mechanism.DDG
            raise ConfigError(
                f"{name} takes mechanism={want.value!r}, not {self.mechanism.value!r} "
                + (
                    "(it encodes real numbers: no ring for integer noise)"
                    if real
                    else "(floating-point noise is for ckks only)"
                ),
                parameter="mechanism",
            )
        if m > num_clients:
            raise ConfigError(
                f"min_contributors={m} exceeds num_clients={num_clients}",
                parameter="min_contributors",
            )
        honest = min_survivors - corrupt
        if honest < m:
            of = f", up to {corrupt} of them the adversary's" if corrupt else ""
            need = m + corrupt
            raise_it = (
                f"raise the protocol's minimum survivors to >= {need} (allowing at most "
                f"{num_clients - need} dropouts) or "
                if need <= num_clients
                else ""
            )
            raise ConfigError(
                f"{name} may finalize a sum of only {min_survivors} inputs{of}, leaving "
                f"{honest} honest noise shares, but the DP noise is calibrated for at least "
                f"min_contributors={m}: the sum would carry {max(honest, 0)}/{m} of the "
                f"calibrated variance; {raise_it}set min_contributors <= {max(honest, 0)}",
                parameter="min_contributors",
            )
        if ring_bits is not None and self.bits > ring_bits:
            raise ConfigError(
                f"bits={self.bits} exceeds the ring: {name} sums in Z_2^{ring_bits}",
                parameter="bits",
            )

    def parameters(self, num_clients: int, dim: int) -> DPParameters:
        """gamma, the integer noise variance and the sensitivity for n clients and length d."""
        if dim < 1:
            raise ConfigError(f"dim must be >= 1, got {dim}", parameter="dim")
        n, d, c, k = max(num_clients, self.min_contributors), dim, self.l2_clip, self.headroom
        share_var = (self.noise_multiplier * c) ** 2 / self.min_contributors
        room = 4.0 ** (self.bits - 1) - k * k * n / 4.0
        if room <= 0:
            raise ConfigError(
                f"bits={self.bits} leaves no room for {n} clients' rounding at headroom {k}; "
                f"use bits >= {math.ceil(math.log2(k * math.sqrt(n))) + 2}",
                parameter="bits",
            )
        gamma = k * math.sqrt(n * n * c * c / d + n * share_var) / math.sqrt(room)
        if c / gamma >= 2.0**50:  # y + u in float64 must still resolve the dither u
            raise ConfigError(
                f"bits={self.bits} makes one unit {c / gamma:.3g} times finer than the clip; "
                "float64 rounding cannot dither that finely: lower bits",
                parameter="bits",
            )
        variance = max(1, math.ceil(share_var / gamma**2))
        c_int = c / gamma
        worst = (c_int + math.sqrt(d)) ** 2
        if self.beta == 0:
            sensitivity_sq = worst
        else:
            likely = (
                c_int**2
                + d / 4.0
                + math.sqrt(2.0 * math.log(1.0 / self.beta)) * (c_int + math.sqrt(d) / 2.0)
            )
            sensitivity_sq = min(worst, likely)
        return DPParameters(
            dim=d,
            num_clients=n,
            gamma=gamma,
            variance=variance,
            sensitivity_sq=sensitivity_sq,
            norm_bound_sq=math.floor(sensitivity_sq),
            bits=self.bits,
        )


def _number(x: object) -> bool:
    return not isinstance(x, bool) and isinstance(x, int | float) and math.isfinite(x)


def _positive(name: str, x: object) -> None:
    if not _number(x) or x <= 0:  # type: ignore[operator]
        raise ConfigError(f"{name} must be a finite number > 0, got {x!r}", parameter=name)

"""Privacy accounting: epsilon(delta) after r rounds.

* Distributed discrete Gaussian: the RDP bound of Kairouz, Liu and Steinke (ICML 2021),
  Theorem 1 with Proposition 14 / Eq. 17 (the L1 term omitted, as in their experiments)::

      tau     = 10 * sum_{k=1}^{m-1} exp(-2 pi^2 sigma^2 k / (k + 1))
      s^2     = Delta_2^2 / (m sigma^2)                 (all in integer units)
      eps(a)  = min(a s^2 / 2 + tau d,  a/2 (s + sqrt(d) tau)^2)

  Every client takes part in every round here (on chain every member, over Flower every node
  the server picks), and the aggregator knows who did (U), so no amplification by sampling
  applies against it: :class:`PrivacyAccountant` composes full rounds. :func:`subsampled_rdp`
  (Zhu and Wang, ICML 2019, Theorem 6, for any mechanism with an RDP curve) is offered for a
  deployment that samples clients in secret from everyone the guarantee is against.
* The Gaussian mechanism (the central-DP reference: noise added once to the exact sum) and its
  subsampled form: ``dp-accounting``'s :class:`RdpAccountant`.
* RDP -> (epsilon, delta): ``dp-accounting``'s ``compute_epsilon`` (the conversion of Canonne,
  Kamath and Steinke 2020, Prop. 12, that it implements).

The neighbouring relation is user-level: one client's update is replaced by zero (its noise
share stays in the sum), composed over rounds.
"""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import numpy.typing as npt
from dp_accounting.rdp import rdp_privacy_accountant
from scipy import special

from secagg.dp.config import DistributedDP, DPParameters, Mechanism
from secagg.errors import ConfigError

__all__ = [
    "ORDERS",
    "PrivacyAccountant",
    "ddg_rdp",
    "gaussian_epsilon",
    "rdp_epsilon",
    "subsampled_rdp",
]

ORDERS: tuple[int, ...] = (*range(2, 65), 72, 80, 96, 128, 160, 192, 256, 384, 512, 1024)
"""Integer RDP orders (the subsampling theorem needs integers)."""


def ddg_tau(variance: int, contributors: int) -> float:
    """tau of Theorem 1 for m contributors of N_Z(0, sigma^2) shares (sigma^2 = ``variance``)."""
    return 10.0 * sum(
        math.exp(-2.0 * math.pi**2 * variance * k / (k + 1)) for k in range(1, contributors)
    )


def ddg_rdp(params: DPParameters, contributors: int) -> npt.NDArray[np.float64]:
    """One round's RDP eps(alpha) over :data:`ORDERS` (no sampling)."""
    tau = ddg_tau(params.variance, contributors)
    scale_sq = params.sensitivity_sq / (contributors * params.variance)
    a = np.asarray(ORDERS, dtype=np.float64)
    first = a * scale_sq / 2.0 + tau * params.dim
    second = a / 2.0 * (math.sqrt(scale_sq) + math.sqrt(params.dim) * tau) ** 2
    out: npt.NDArray[np.float64] = np.minimum(first, second)
    return out


def subsampled_rdp(rdp: npt.NDArray[np.float64], q: float) -> npt.NDArray[np.float64]:
    """Zhu and Wang (2019) Theorem 6: the RDP over :data:`ORDERS` of the mechanism run on a
    Poisson sample with probability q, for any mechanism whose RDP is ``rdp`` (min'd with
    ``rdp`` itself, which sampling cannot worsen)."""
    if q == 1.0:
        return rdp
    eps = dict(zip(ORDERS, (float(r) for r in rdp), strict=True))
    out = np.empty_like(rdp)
    for i, alpha in enumerate(ORDERS):
        terms = [0.0, math.log(special.comb(alpha, 2)) + 2 * math.log(q) + eps[2]]
        weights = [(1 - q) ** (alpha - 1) * (alpha * q - q + 1), (1 - q) ** (alpha - 2)]
        for ell in range(3, alpha + 1):
            terms.append(
                (ell - 1) * _rdp_at(eps, ell)
                + float(special.gammaln(alpha + 1) - special.gammaln(ell + 1))
                - float(special.gammaln(alpha - ell + 1))
                + (alpha - ell) * math.log1p(-q)
                + ell * math.log(q)
            )
            weights.append(3.0)
        bound = float(special.logsumexp(terms, b=weights)) / (alpha - 1)
        out[i] = min(bound, rdp[i])
    return out


def _rdp_at(eps: dict[int, float], order: int) -> float:
    """eps at an integer order: the curve is non-decreasing in the order, so a missing order
    takes the value of the next one present (an upper bound)."""
    if order in eps:
        return eps[order]
    above = [o for o in eps if o > order]
    return eps[min(above)] if above else math.inf


def rdp_epsilon(rdp: npt.NDArray[np.float64], delta: float) -> float:
    """epsilon at ``delta`` of an RDP curve over :data:`ORDERS`."""
    eps, _ = rdp_privacy_accountant.compute_epsilon(ORDERS, rdp, delta)
    return float(eps)


def gaussian_epsilon(noise_multiplier: float, rounds: int, delta: float, q: float = 1.0) -> float:
    """epsilon at ``delta`` of ``rounds`` Gaussian mechanisms with noise std = z * sensitivity
    (each on a Poisson sample with probability q), by ``dp-accounting``."""
    accountant = dp_accounting.rdp.RdpAccountant(list(ORDERS))
    event: dp_accounting.DpEvent = dp_accounting.GaussianDpEvent(noise_multiplier)
    if q < 1.0:
        event = dp_accounting.PoissonSampledDpEvent(q, event)
    accountant.compose(event, rounds)
    return float(accountant.get_epsilon(delta))


class PrivacyAccountant:
    """epsilon(delta) of a task after each round.

    Parameters
    ----------
    dp:
        The task's DP configuration.
    num_clients:
        n, the most clients in a round.
    dim:
        d, the length of the update.
    """

    def __init__(self, dp: DistributedDP, num_clients: int, dim: int) -> None:
        self.dp = dp
        self.round_rdp: npt.NDArray[np.float64]
        """One round's RDP over :data:`ORDERS` (composition adds these curves)."""
        if dp.mechanism is Mechanism.CONTINUOUS_GAUSSIAN:  # the Gaussian: alpha / (2 z^2)
            self.round_rdp = np.asarray(ORDERS, dtype=np.float64) / (2 * dp.noise_multiplier**2)
        else:
            self.params = dp.parameters(num_clients, dim)
            self.round_rdp = ddg_rdp(self.params, dp.min_contributors)

    def epsilon(self, rounds: int) -> float:
        """epsilon at ``dp.delta`` after ``rounds`` rounds (0 for none). The continuous
        mechanism (CKKS) is the Gaussian mechanism with noise multiplier z: m shares of
        variance (z c)^2 / m, sensitivity c (``dp-accounting``)."""
        if rounds < 0:
            raise ConfigError(f"rounds must be >= 0, got {rounds}", parameter="rounds")
        return 0.0 if rounds == 0 else rdp_epsilon(rounds * self.round_rdp, self.dp.delta)

    def rounds_within_budget(self, budget: float | None = None) -> int | None:
        """The most rounds whose epsilon stays within ``budget`` (the config's by default),
        or None when there is no budget."""
        budget = self.dp.epsilon_budget if budget is None else budget
        if budget is None:
            return None
        lo, hi = 0, 1
        while self.epsilon(hi) <= budget:
            lo, hi = hi, hi * 2
            if hi > 1 << 24:
                return lo
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.epsilon(mid) <= budget else (lo, mid)
        return lo

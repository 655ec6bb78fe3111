"""The accountant: the DDG bound against exact divergences, against dp-accounting's Gaussian,
the subsampling bound against the tight Gaussian one, and a published value."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from dp_accounting.rdp import rdp_privacy_accountant
from scipy.special import logsumexp

from secagg.dp import DistributedDP, DPParameters
from secagg.dp.accounting import (
    ORDERS,
    PrivacyAccountant,
    ddg_rdp,
    gaussian_epsilon,
    rdp_epsilon,
    subsampled_rdp,
)
from secagg.errors import ConfigError


def log_pmf_of_sum(variance: int, shares: int, width: int = 25) -> np.ndarray:
    """log P(X_1 + ... + X_m = k), X_i ~ N_Z(0, sigma^2), by exact convolution in log space."""
    k = np.arange(-width, width + 1)
    one = -(k.astype(np.float64) ** 2) / (2 * variance)
    one -= logsumexp(one)
    total = one
    for _ in range(shares - 1):
        out = np.full(len(total) + len(one) - 1, -np.inf)
        for i, v in enumerate(one):
            out[i : i + len(total)] = np.logaddexp(out[i : i + len(total)], total + v)
        total = out
    return total


def renyi(log_p: np.ndarray, log_q: np.ndarray, alpha: int) -> float:
    return float(logsumexp(alpha * log_p + (1 - alpha) * log_q) / (alpha - 1))


@pytest.mark.parametrize(("variance", "shares"), [(1, 2), (1, 3), (2, 2)])
def test_ddg_bound_covers_the_exact_divergence_of_a_sum_of_discrete_gaussians(
    variance: int, shares: int
) -> None:
    """A sum of m discrete Gaussians is not a discrete Gaussian: at sigma^2 = 1 its exact
    Renyi divergence under a shift of 1 exceeds the Gaussian alpha Delta^2 / (2 m sigma^2)
    (by 1.5e-7 at alpha = 8). Theorem 1's tau term must cover that at every order."""
    log_sum = log_pmf_of_sum(variance, shares)
    shifted = np.concatenate([[-np.inf], log_sum])
    plain = np.concatenate([log_sum, [-np.inf]])
    inner = slice(1, len(log_sum))  # where both are defined
    params = DPParameters(1, shares, 1.0, variance, 1.0, 1, 20)
    bound = dict(zip(ORDERS, ddg_rdp(params, shares), strict=True))
    exceeded_gaussian = False
    for alpha in (2, 8, 32):
        exact = max(
            renyi(shifted[inner], plain[inner], alpha), renyi(plain[inner], shifted[inner], alpha)
        )
        assert exact <= bound[alpha]
        exceeded_gaussian |= exact > alpha / (2 * shares * variance) + 1e-12
    assert exceeded_gaussian or variance > 1


def test_ddg_tends_to_the_gaussian_mechanism_of_dp_accounting() -> None:
    """At sigma^2 ~ 1e8 integer units tau is 0 in float64, and the DDG's epsilon is that of the
    continuous Gaussian mechanism with z = sqrt(m sigma^2 / Delta^2), computed by dp-accounting."""
    dp = DistributedDP(l2_clip=1.0, noise_multiplier=1.2, min_contributors=50, delta=1e-5)
    accountant = PrivacyAccountant(dp, 60, 5000)
    p = accountant.params
    z = math.sqrt(dp.min_contributors * p.variance / p.sensitivity_sq)
    assert 1.19 < z < 1.21  # rounding the variance up and Delta's rounding slack
    for rounds in (1, 10, 200):
        assert accountant.epsilon(rounds) == pytest.approx(
            gaussian_epsilon(z, rounds, dp.delta), rel=1e-9
        )


def test_general_subsampling_bound_is_sound_and_useful_on_the_gaussian() -> None:
    """Zhu-Wang Theorem 6 holds for every mechanism, so on the Gaussian's curve it must be at
    least dp-accounting's tight subsampled-Gaussian RDP, and it should not be much more."""
    z, q = 1.0, 0.01
    gauss = np.array([alpha / (2 * z * z) for alpha in ORDERS])
    general = subsampled_rdp(gauss, q)
    tight = rdp_privacy_accountant._compute_rdp_poisson_subsampled_gaussian(q, z, ORDERS)
    assert np.all(general >= tight * (1 - 1e-9))
    eps_general, eps_tight = rdp_epsilon(1000 * general, 1e-5), rdp_epsilon(1000 * tight, 1e-5)
    assert eps_tight <= eps_general < 1.5 * eps_tight


def test_published_value_abadi_et_al() -> None:
    """Abadi et al. (CCS 2016, Sec. 3.1): q = 0.01, sigma = 4, T = 10,000, delta = 1e-5 gives
    epsilon ~ 1.26 with the moments accountant; RDP with the improved conversion is tighter."""
    eps = gaussian_epsilon(4.0, 10_000, 1e-5, 0.01)
    assert 1.0 < eps <= 1.26


def test_epsilon_grows_with_rounds_and_the_budget_caps_them() -> None:
    dp = DistributedDP(
        l2_clip=1.0, noise_multiplier=1.0, min_contributors=10, delta=1e-3, epsilon_budget=8.0
    )
    accountant = PrivacyAccountant(dp, 10, 100)
    eps = [accountant.epsilon(r) for r in range(0, 6)]
    assert eps[0] == 0 and all(a < b for a, b in itertools.pairwise(eps))
    allowed = accountant.rounds_within_budget()
    assert allowed is not None
    assert accountant.epsilon(allowed) <= 8.0 < accountant.epsilon(allowed + 1)


def test_fewer_bits_cost_privacy_through_rounding() -> None:
    """Coarser units (small b) inflate the sensitivity by the rounding: epsilon rises."""
    eps = [
        PrivacyAccountant(
            DistributedDP(
                l2_clip=1.0, noise_multiplier=1.0, min_contributors=100, delta=1e-2, bits=b
            ),
            100,
            7850,
        ).epsilon(10)
        for b in (10, 12, 16, 20)
    ]
    assert eps[0] > eps[1] > eps[2] > eps[3]
    assert eps[3] == pytest.approx(gaussian_epsilon(1.0, 10, 1e-2), rel=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"l2_clip": 0.0}, "l2_clip"),
        ({"noise_multiplier": -1.0}, "noise_multiplier"),
        ({"min_contributors": 0}, "min_contributors"),
        ({"delta": 1.0}, "delta"),
        ({"bits": 3}, "bits"),
        ({"beta": 1.0}, "beta"),
        ({"epsilon_budget": 0.0}, "epsilon_budget"),
    ],
)
def test_bad_dp_configs_are_named(kwargs: dict[str, object], parameter: str) -> None:
    base: dict[str, object] = {
        "l2_clip": 1.0,
        "noise_multiplier": 1.0,
        "min_contributors": 3,
        "delta": 1e-5,
    }
    with pytest.raises(ConfigError) as err:
        DistributedDP(**{**base, **kwargs})  # type: ignore[arg-type]
    assert err.value.parameter == parameter


def test_bits_too_few_for_the_clients_are_refused_with_the_fix() -> None:
    dp = DistributedDP(l2_clip=1.0, noise_multiplier=1.0, min_contributors=3, delta=1e-5, bits=4)
    with pytest.raises(ConfigError, match=r"use bits >= \d+") as err:
        dp.parameters(1000, 10)
    assert err.value.parameter == "bits"


def test_there_is_no_sampling_rate_to_shrink_epsilon() -> None:
    """Every client takes part in every round and the aggregator knows U, so amplification by
    sampling does not hold against it: a config (a task spec, a Flower request) that asks for
    it is refused rather than believed."""
    fields = DistributedDP(
        l2_clip=1.0, noise_multiplier=1.0, min_contributors=3, delta=1e-5
    ).to_dict()
    with pytest.raises(ConfigError, match="no parameter sampling_rate") as err:
        DistributedDP.from_dict({**fields, "sampling_rate": 0.01})
    assert err.value.parameter == "dp"

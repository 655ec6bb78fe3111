"""The exact integer samplers against the exact distributions.

Each distribution test draws from a fixed seed and applies Pearson's chi-square test against
the exact probabilities, rejecting at p < 1e-4: with a fresh random seed an exact sampler
would fail a given test with probability 1e-4 (the false-alarm rate). The seeds are fixed, so
the outcome is deterministic. Each test is known to fail when the sampler is wrong: flipping
the parity in the Bernoulli(exp) race, adding instead of subtracting sigma^2/t in the
discrete Gaussian's acceptance, or dropping the discrete Laplace's rejection of "-0" all make
these tests fail (tried while writing them).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from secagg.dp.sampling import IntegerSampler
from secagg.errors import ConfigError
from secagg.randomness import SeededRandom

ALPHA = 1e-4
"""Rejection level of each chi-square test (its false-alarm rate for a random seed)."""


def chi_square(samples: np.ndarray, support: np.ndarray, pmf: np.ndarray) -> float:
    """p-value of the samples against ``pmf`` on ``support``, with one bin for the rest."""
    pmf = pmf / pmf.sum()
    counts = np.array([np.count_nonzero(samples == k) for k in support], dtype=np.float64)
    rest = len(samples) - counts.sum()
    expected = pmf * len(samples)
    observed = np.append(counts, rest)
    expected = np.append(expected, max(len(samples) - expected.sum(), 1e-9))
    keep = expected >= 5  # the chi-square approximation needs 5 expected per bin
    other = observed[~keep].sum(), expected[~keep].sum()
    observed = np.append(observed[keep], other[0])
    expected = np.append(expected[keep], other[1])
    if expected[-1] < 5:
        observed[-2] += observed[-1]
        expected[-2] += expected[-1]
        observed, expected = observed[:-1], expected[:-1]
    return float(stats.chisquare(observed, expected).pvalue)


def discrete_gaussian_pmf(variance: int, support: np.ndarray) -> np.ndarray:
    """exp(-x^2 / 2 sigma^2) normalised over Z (the mass outside ``support`` is < 1e-30)."""
    wide = np.arange(-60 * math.isqrt(variance) - 60, 60 * math.isqrt(variance) + 61)
    total = np.exp(-(wide.astype(np.float64) ** 2) / (2 * variance)).sum()
    return np.exp(-(support.astype(np.float64) ** 2) / (2 * variance)) / total


@pytest.mark.parametrize("variance", [1, 3, 50])
def test_discrete_gaussian_matches_the_exact_pmf(variance: int) -> None:
    sampler = IntegerSampler(SeededRandom(variance))
    x = sampler.discrete_gaussian(variance, 60_000)
    width = 6 * math.isqrt(variance) + 6
    support = np.arange(-width, width + 1)
    assert chi_square(x, support, discrete_gaussian_pmf(variance, support)) > ALPHA


def test_discrete_gaussian_with_python_int_arithmetic_has_the_right_moments() -> None:
    """sigma^2 = 3e14: the acceptance step's numbers exceed 2^62 and run on Python ints; the
    discrete Gaussian's variance is sigma^2 within 1e-100 here, so the sample variance must be
    within the 4-sigma band of a chi-square with 100,000 degrees of freedom."""
    variance = 3 * 10**14
    x = IntegerSampler(SeededRandom(7)).discrete_gaussian(variance, 100_000).astype(np.float64)
    n = len(x)
    assert abs(x.mean()) < 4 * math.sqrt(variance / n)
    assert abs(x.var() / variance - 1) < 4 * math.sqrt(2 / n)


@pytest.mark.parametrize("scale", [1, 4])
def test_discrete_laplace_matches_the_exact_pmf(scale: int) -> None:
    x = IntegerSampler(SeededRandom(100 + scale)).discrete_laplace(scale, 60_000)
    support = np.arange(-15 * scale, 15 * scale + 1)
    pmf = np.exp(-np.abs(support) / scale) * math.tanh(1 / (2 * scale))
    assert chi_square(x, support, pmf) > ALPHA


@pytest.mark.parametrize(("num", "den"), [(0, 1), (1, 3), (1, 1), (7, 3), (10**20 + 1, 10**20)])
def test_bernoulli_exp_has_probability_exp_minus_gamma(num: int, den: int) -> None:
    count = 100_000
    numerators = np.full(count, num, dtype=object if num > 2**62 else np.int64)
    b = IntegerSampler(SeededRandom(num % 1000 + den % 1000)).bernoulli_exp(numerators, den)
    p = math.exp(-num / den)
    ones = int(b.sum())
    assert stats.binomtest(ones, count, p).pvalue > ALPHA


def test_uniform_integers_below_a_big_bound_are_uniform() -> None:
    """U in [0, 3 * 2^70): its top part U // 2^70 must be uniform on {0, 1, 2}."""
    u = IntegerSampler(SeededRandom(3)).below_int(3 << 70, 30_000)
    top = np.array([int(v) >> 70 for v in u])
    assert top.max() == 2
    assert chi_square(top, np.arange(3), np.ones(3)) > ALPHA


def test_same_key_same_noise_and_no_pickling() -> None:
    a = IntegerSampler(SeededRandom(5)).discrete_gaussian(1000, 500)
    b = IntegerSampler(SeededRandom(5)).discrete_gaussian(1000, 500)
    np.testing.assert_array_equal(a, b)
    sampler = IntegerSampler(SeededRandom(5))
    assert "hidden" in repr(sampler)
    with pytest.raises(TypeError):
        __import__("pickle").dumps(sampler)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_variance_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(ConfigError) as err:
        IntegerSampler(SeededRandom(0)).discrete_gaussian(bad, 3)  # type: ignore[arg-type]
    assert err.value.parameter == "variance"


def test_uniform_integers_below_a_large_int64_bound_have_no_modulo_bias() -> None:
    """K = 3 * 2^61: 2^64 mod K = 2^61, so reducing words mod K without rejection would put
    U < 2^61 with probability 2/5 instead of 1/3."""
    k = 3 << 61
    u = IntegerSampler(SeededRandom(11)).below(np.full(30_000, k, dtype=np.int64))
    assert u.min() >= 0 and u.max() < k
    low = int(np.count_nonzero(u < (1 << 61)))
    assert stats.binomtest(low, len(u), 1 / 3).pvalue > ALPHA

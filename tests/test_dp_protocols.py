"""Distributed DP through the ring protocols: the decoding bound, the noise the aggregator
cannot remove, the survivor minimum the guarantee needs, and the refusals."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from secagg import protocols, simulate
from secagg.dp import DistributedDP, Mechanism
from secagg.dp.accounting import PrivacyAccountant, gaussian_epsilon
from secagg.dp.continuous import gaussian_floats
from secagg.dp.encoding import DPEncoder
from secagg.dp.sampling import IntegerSampler
from secagg.errors import AbortError, ConfigError
from secagg.protocol import Session
from secagg.randomness import SeededRandom

N, D, M = 10, 1024, 8
DP = DistributedDP(l2_clip=1.0, noise_multiplier=0.5, min_contributors=M, delta=1e-3, bits=20)


def inputs(n: int = N, d: int = D, scale: float = 0.05) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(0)
    return {u: rng.normal(size=d) * scale for u in range(n)}


def clipped(x: np.ndarray, c: float) -> np.ndarray:
    return x * min(1.0, c / float(np.linalg.norm(x)))


def test_decoded_sum_is_within_the_rounding_bound_of_sum_plus_noise() -> None:
    """decode(sum_u (r_u + z_u)) = sum_u clip(x_u) + gamma C^T-rotated noise + rounding, with
    the rounding part at most gamma * sum_u ||r_u - y_u|| <= gamma n sqrt(d) in L2 norm, each
    rounding within the conditional L2 bound."""
    proto = protocols.get("plain", num_clients=N, min_survivors=M, dp=DP)
    session = Session(bytes(range(16)), D, 3)
    enc: DPEncoder = proto.encoder(session)
    xs = inputs()
    ring = proto.quantizer.ring
    total = ring.zeros(D)
    noise = np.zeros(D, dtype=np.int64)
    rounding = 0.0
    for u, x in xs.items():
        sampler = IntegerSampler(SeededRandom(u))
        y = enc.scaled(x)
        r = enc.round(y, sampler)
        assert np.all(np.abs(r - y) < 1)
        assert int(np.square(r.astype(object)).sum()) <= enc.params.norm_bound_sq
        z = sampler.discrete_gaussian(enc.params.variance, D)
        noise += z
        rounding += float(np.linalg.norm(r - y))
        ring.add_(total, ring.from_signed(r + z))
    decoded = proto.decode(total, np.zeros(1), session)
    expected = sum(clipped(x, DP.l2_clip) for x in xs.values())
    expected = expected + enc.rotation.unrotate(noise * enc.params.gamma)
    error = float(np.linalg.norm(decoded - expected))
    assert error <= enc.params.gamma * rounding <= enc.params.gamma * N * math.sqrt(D)


@pytest.mark.parametrize("name", ["plain", "secagg", "secaggplus", "paillier"])
def test_every_ring_protocol_adds_the_calibrated_noise_and_reports_epsilon(name: str) -> None:
    """The aggregator's decoded sum carries noise of variance n sigma^2 gamma^2 per entry
    (n = 10 contributors), at least the configured (z c)^2: the curious aggregator's best
    estimate of the exact sum is off by that much. epsilon is the accountant's for one round."""
    dp = DistributedDP(l2_clip=1.0, noise_multiplier=0.5, min_contributors=M, delta=1e-3, bits=16)
    proto = protocols.get(name, num_clients=N, min_survivors=M, dp=dp)
    xs = inputs(d=2048 if name != "paillier" else 512)
    result = simulate(proto, xs, seed=4)
    d = len(xs[0])
    p = PrivacyAccountant(dp, N, d).params
    error = result.sum - sum(clipped(x, dp.l2_clip) for x in xs.values())
    predicted = math.sqrt(N * p.variance) * p.gamma
    assert predicted >= dp.noise_multiplier * dp.l2_clip * math.sqrt(N / M)
    assert error.std() == pytest.approx(predicted, rel=0.1)
    assert abs(error.mean()) < 4 * predicted / math.sqrt(d)
    assert result.epsilon == PrivacyAccountant(dp, N, d).epsilon(1)


def test_dropouts_down_to_the_minimum_keep_the_calibrated_noise() -> None:
    """Two of ten drop before masking: eight noise shares remain, which is what the guarantee
    was calibrated for (variance >= (z c)^2). (SecAgg's complete graph: on SecAgg+'s sparse
    graph at n = 10 two neighbours' dropouts can leave too few shares of a third.)"""
    proto = protocols.get("secagg", num_clients=N, min_survivors=M, dp=DP)
    masked = proto.phases[2]
    xs = inputs(d=2048)
    result = simulate(proto, xs, dropouts={0: masked, 1: masked}, seed=5)
    assert result.survivors == frozenset(range(2, N))
    p = PrivacyAccountant(DP, N, 2048).params
    error = result.sum - sum(clipped(xs[u], DP.l2_clip) for u in result.survivors)
    assert error.std() == pytest.approx(math.sqrt(M * p.variance) * p.gamma, rel=0.1)
    assert math.sqrt(M * p.variance) * p.gamma >= DP.noise_multiplier * DP.l2_clip


def test_a_sum_with_fewer_noise_shares_than_calibrated_is_never_released() -> None:
    """Three of ten drop: a sum of seven would carry 7/8 of the calibrated noise. The server
    aborts at the unmasking step instead of releasing it."""
    proto = protocols.get("secagg", num_clients=N, min_survivors=M, dp=DP)
    masked = proto.phases[2]
    with pytest.raises(AbortError) as info:
        simulate(proto, inputs(), dropouts={u: masked for u in range(3)}, seed=6)
    assert info.value.reason == "too-few-survivors"


@pytest.mark.parametrize("name", ["plain", "secaggplus", "paillier"])
def test_a_protocol_that_may_release_fewer_shares_is_refused_naming_the_numbers(name: str) -> None:
    with pytest.raises(ConfigError, match=r"only 7 inputs.*min_contributors=8") as err:
        protocols.get(name, num_clients=N, min_survivors=7, dp=DP)
    assert err.value.parameter == "min_contributors"


def test_a_modulus_larger_than_the_ring_is_refused() -> None:
    wide = DistributedDP(l2_clip=1.0, noise_multiplier=0.5, min_contributors=M, delta=1e-3, bits=40)
    with pytest.raises(ConfigError, match="Z_2\\^32") as err:
        protocols.get("secaggplus", num_clients=N, min_survivors=M, dp=wide)
    assert err.value.parameter == "bits"


def test_decoding_a_dp_sum_needs_its_session() -> None:
    proto = protocols.get("plain", num_clients=N, min_survivors=M, dp=DP)
    with pytest.raises(ConfigError) as err:
        proto.decode(np.zeros(4, dtype=np.uint32), np.zeros(1))
    assert err.value.parameter == "session"


def test_the_rotation_changes_every_round_and_the_noise_with_the_rng() -> None:
    proto: Any = protocols.get("plain", num_clients=N, min_survivors=M, dp=DP)
    x = inputs()[0]
    one, two = (proto.encoder(Session(bytes(16), D, r)) for r in (1, 2))
    assert not np.array_equal(one.rotation.signs, two.rotation.signs)
    a = one.quantize(x, SeededRandom(1))
    np.testing.assert_array_equal(a, one.quantize(x, SeededRandom(1)))
    assert not np.array_equal(a, one.quantize(x, SeededRandom(2)))


def test_corrupt_clients_noise_shares_do_not_count() -> None:
    """SecAgg+ at n = 100 is sized for floor(0.05 n) = 5 corrupt clients: a corrupt client
    knows (or omits) its own noise share, so a sum of 100 holds 95 honest ones, and noise
    calibrated for 100 is refused; calibrated for 95 it is accepted."""
    all_of_them = DistributedDP(l2_clip=1.0, noise_multiplier=1.0, min_contributors=100, delta=1e-2)
    with pytest.raises(ConfigError, match=r"up to 5 of them the adversary's, leaving 95") as err:
        protocols.get("secaggplus", num_clients=100, min_survivors=100, dp=all_of_them)
    assert err.value.parameter == "min_contributors"
    honest = DistributedDP(l2_clip=1.0, noise_multiplier=1.0, min_contributors=95, delta=1e-2)
    proto = protocols.get("secaggplus", num_clients=100, min_survivors=100, dp=honest)
    assert proto.dp == honest  # type: ignore[attr-defined]


def test_the_readme_dp_snippet_runs_as_written() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Differential privacy inside the sum", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)
    result = scope["result"]
    assert result.survivors == frozenset(range(10)) - {7}
    assert result.epsilon == pytest.approx(4.75, abs=0.01)


def test_ckks_adds_continuous_noise_and_each_mechanism_is_refused_where_it_does_not_fit() -> None:
    """CKKS clients L2-clip and add float64 Gaussian shares: the decrypted sum is off the
    exact one by noise of std z c sqrt(n / m), epsilon is dp-accounting's Gaussian. The exact
    discrete mechanism is refused on CKKS, the floating-point one on the ring protocols."""
    continuous = DistributedDP(
        l2_clip=1.0,
        noise_multiplier=0.5,
        min_contributors=M,
        delta=1e-3,
        mechanism=Mechanism.CONTINUOUS_GAUSSIAN,
    )
    proto = protocols.get("ckks", num_clients=N, min_survivors=M, dp=continuous)
    xs = inputs(d=4096)
    result = simulate(proto, xs, seed=8)
    error = result.sum - sum(clipped(x, 1.0) for x in xs.values())
    assert error.std() == pytest.approx(0.5 * math.sqrt(N / M), rel=0.05)
    assert result.epsilon == gaussian_epsilon(0.5, 1, 1e-3)
    with pytest.raises(ConfigError, match="continuous-gaussian") as err:
        protocols.get("ckks", num_clients=N, min_survivors=M, dp=DP)
    assert err.value.parameter == "mechanism"
    with pytest.raises(ConfigError, match="floating-point noise is for ckks only"):
        protocols.get("secaggplus", num_clients=N, min_survivors=M, dp=continuous)
    with pytest.raises(ConfigError, match="only 7 inputs"):
        protocols.get("ckks", num_clients=N, min_survivors=7, dp=continuous)


def test_continuous_shares_are_gaussian() -> None:
    """Kolmogorov-Smirnov against N(0, 4) at the 1e-4 level (the false-alarm rate)."""
    x = gaussian_floats(SeededRandom(9), 2.0, 100_001)
    assert len(x) == 100_001
    assert stats.kstest(x / 2.0, "norm").pvalue > 1e-4


def test_the_corrupt_allowance_is_the_masking_parameters_own_count() -> None:
    """At gamma = 0.29, n = 100 the graph is sized for floor((0.29 + eps) 100) = 29 corrupt
    clients (0.29 * 100 is 28.999... in float64): 71 honest shares, so m = 72 is refused."""
    dp = DistributedDP(l2_clip=1.0, noise_multiplier=1.0, min_contributors=72, delta=1e-5)
    with pytest.raises(ConfigError, match="up to 29 of them the adversary's, leaving 71"):
        protocols.get(
            "secaggplus", num_clients=100, min_survivors=100, corrupted_fraction=0.29, dp=dp
        )


def test_large_moduli_stay_exact_or_are_refused_by_name() -> None:
    """bits = 40 in a 64-bit ring: per-client sigma^2 ~ 2^70 runs the sampler's Python-int
    path and decodes with the calibrated noise; bits = 60 would need a finer dither than
    float64 resolves and is refused, naming bits."""
    xs = inputs(d=512)
    for bits, ok in ((40, True), (60, False)):
        dp = DistributedDP(
            l2_clip=1.0, noise_multiplier=0.5, min_contributors=M, delta=1e-5, bits=bits
        )
        proto = protocols.get("secagg", num_clients=N, min_survivors=M, ring_bits=64, dp=dp)
        if not ok:
            with pytest.raises(ConfigError, match="lower bits") as err:
                simulate(proto, xs, seed=1)
            assert err.value.parameter == "bits"
            continue
        p = PrivacyAccountant(dp, N, 512).params
        assert p.variance > 2**62  # beyond int64: the Python-int path
        error = simulate(proto, xs, seed=1).sum - sum(clipped(x, 1.0) for x in xs.values())
        assert error.std() == pytest.approx(math.sqrt(N * p.variance) * p.gamma, rel=0.1)

"""SecAgg and SecAgg+: the result is the exact ring sum of the survivors, or an AbortError."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

from secagg import protocols, simulate
from secagg.errors import AbortError, ConfigError
from secagg.graph import NeighbourGraph, graph_seed
from tests.masking_oracle import expected_outcome, session_id

MASKING = ["secagg", "secaggplus"]
LOOSE = {"dropout_rate": 0.0, "corrupted_fraction": 0.0, "adversary": "semi-honest"}


def _inputs(n: int, d: int, seed: int = 0) -> dict[int, Any]:
    rng = np.random.default_rng(seed)
    return {c: rng.uniform(-2, 2, d) for c in range(n)}


def _make(name: str, n: int, t: int, **kw: Any) -> Any:
    """A masking protocol with threshold t (k = 2t - 2 rounded to even, for secaggplus)."""
    if name == "secaggplus":
        kw.setdefault("num_neighbors", min(n - 1, 2 * t))
    return protocols.get(name, num_clients=n, threshold=t, **LOOSE, **kw)


def _plain_ring_sum(n: int, inputs: dict[int, Any], survivors: Any, seed: int, **kw: Any) -> Any:
    """The same clients' encodings summed in the clear (same seed, so the same dither)."""
    plain = protocols.get("plain", num_clients=n, **kw)
    return simulate(plain, {c: inputs[c] for c in survivors}, seed=seed).ring_sum


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(MASKING))
    n = draw(st.integers(3, 40))
    if name == "secaggplus":
        k = draw(st.sampled_from([*range(2, n - 1, 2), n - 1]))
    else:
        k = n - 1
    t = draw(st.integers(2, max(2, k)))
    if t > k:
        t = k
    check = draw(st.booleans())
    proto = protocols.get(
        name,
        num_clients=n,
        threshold=t,
        consistency_check=check,
        min_survivors=draw(st.none() | st.integers(t, n)),
        **LOOSE,
        **({"num_neighbors": k} if name == "secaggplus" else {}),
    )
    phases = proto.phases
    dropouts = draw(st.dictionaries(st.integers(0, n - 1), st.sampled_from(phases), max_size=n))
    return {
        "proto": proto,
        "n": n,
        "d": draw(st.integers(1, 40)),
        "dropouts": dropouts,
        "seed": draw(st.integers(0, 2**32)),
    }


PROPERTY_EXAMPLES = max(200, settings.default.max_examples)
"""At least 200 rounds in CI (about 30 s on 2 idle cores, 60 s on busy ones); the nightly
profile's count (`make nightly`) when that is higher."""


@settings(max_examples=PROPERTY_EXAMPLES)
@given(scenarios())
def test_result_is_the_exact_ring_sum_of_the_survivors_or_an_abort(case: dict[str, Any]) -> None:
    """The oracle (tests/masking_oracle.py) says from the graph, t and the dropouts whether
    recovery was possible: then the result is the exact ring sum over the predicted U3, else
    an AbortError with the predicted reason."""
    proto, n, d, dropouts, seed = (case[k] for k in ("proto", "n", "d", "dropouts", "seed"))
    inputs = _inputs(n, d, seed % 1000)
    want = expected_outcome(proto, inputs, dropouts, seed)
    event(f"{proto.name}: {want.reason or 'completes'}")
    try:
        result = simulate(proto, inputs, dropouts=dropouts, seed=seed)
    except AbortError as exc:
        assert exc.reason == want.reason, (exc, want)
        return
    assert want.completes, (want, result.survivors)
    assert result.session.id == session_id(seed)
    assert result.survivors == want.survivors
    expected = _plain_ring_sum(n, inputs, result.survivors, seed)
    np.testing.assert_array_equal(result.ring_sum, expected)


@pytest.mark.parametrize("name", MASKING)
def test_dropouts_at_every_phase_are_recovered(name: str) -> None:
    n = 12
    proto = _make(name, n, 5)
    inputs = _inputs(n, 64)
    for phase in proto.phases:
        result = simulate(proto, inputs, dropouts={3: phase}, seed=7)
        in_sum = phase.value in ("unmasking",)
        assert (3 in result.survivors) == in_sum
        expected = _plain_ring_sum(n, inputs, result.survivors, 7)
        np.testing.assert_array_equal(result.ring_sum, expected)
        want = sum(inputs[c] for c in result.survivors)
        bound = proto.config.quantization.sum_error_bound(len(result.survivors))
        assert np.max(np.abs(result.sum - want)) <= bound


@pytest.mark.parametrize("name", MASKING)
def test_too_few_survivors_abort_with_a_reason_never_a_wrong_sum(name: str) -> None:
    n = 6
    proto = _make(name, n, 4)
    phase = proto.phases[2]  # masked input: only 3 left, t = 4
    with pytest.raises(AbortError) as info:
        simulate(proto, _inputs(n, 8), dropouts={0: phase, 1: phase, 2: phase}, seed=1)
    assert info.value.reason == "too-few-survivors"


def test_a_neighbourhood_below_t_aborts_with_a_reason() -> None:
    proto = _make("secaggplus", 20, 3, num_neighbors=4)
    session = simulate(proto, _inputs(20, 4), seed=3).session
    graph = NeighbourGraph(range(20), 4, graph_seed(session.id, session.round))
    # two of client 0's four neighbours vanish after sharing keys: b_0 has 2 holders, t = 3
    victims = sorted(graph.neighbours(0))[:2]
    with pytest.raises(AbortError) as info:
        simulate(proto, _inputs(20, 4), seed=3, dropouts={v: proto.phases[2] for v in victims})
    assert info.value.reason == "too-few-shares"


def _neighbours_of_0(proto: Any, seed: int) -> list[int]:
    """Client 0's neighbours in a signed round (the graph is over all num_clients ids)."""
    seed_bytes = graph_seed(session_id(seed), 0)
    return sorted(
        NeighbourGraph(range(proto.num_clients), proto.num_neighbors, seed_bytes).neighbours(0)
    )


ABORTS = {
    # reason: (protocol, n, t, extra config, dropouts as {client: phase name})
    "too-few-clients": ("secagg", 6, 4, {}, dict.fromkeys(range(3), "ADVERTISE_KEYS")),
    "too-few-neighbours": ("secaggplus", 10, 3, {"num_neighbors": 4}, None),
    "too-few-survivors": ("secagg", 6, 4, {}, dict.fromkeys(range(3), "SHARE_KEYS")),
    "too-few-signatures": ("secagg", 10, 5, {}, dict.fromkeys(range(5), "CONSISTENCY_CHECK")),
    "too-few-shares": ("secagg", 8, 5, {}, dict.fromkeys(range(4), "UNMASKING")),
}


@pytest.mark.parametrize("reason", sorted(ABORTS))
def test_each_abort_reason_is_predicted_by_the_oracle(reason: str) -> None:
    """One round per abort reason (the property test above reaches some only rarely): the
    oracle and ``simulate`` agree on it. All signed, so every phase exists."""
    name, n, t, extra, drops = ABORTS[reason]
    proto = _make(name, n, t, consistency_check=True, **extra)
    if drops is None:  # two of client 0's four neighbours never advertise keys
        drops = dict.fromkeys(_neighbours_of_0(proto, 9)[:2], "ADVERTISE_KEYS")
    dropouts = {c: proto.Phase[phase] for c, phase in drops.items()}
    assert expected_outcome(proto, range(n), dropouts, 9).reason == reason
    with pytest.raises(AbortError) as info:
        simulate(proto, _inputs(n, 8), dropouts=dropouts, seed=9)
    assert info.value.reason == reason


@pytest.mark.parametrize("name", MASKING)
def test_weighted_sum_of_layer_lists(name: str) -> None:
    n = 5
    proto = protocols.get(name, num_clients=n, clip=4.0)
    rng = np.random.default_rng(1)
    inputs = {c: [rng.normal(size=(3, 4)), rng.normal(size=7)] for c in range(n)}
    weights = {c: (c + 1) / n for c in range(n)}
    result = simulate(proto, inputs, weights=weights, seed=2)
    bound = proto.config.quantization.sum_error_bound(n)
    for layer in range(2):
        want = sum(weights[c] * np.clip(inputs[c][layer], -4, 4) for c in range(n))
        assert result.sum[layer].shape == want.shape
        assert np.max(np.abs(result.sum[layer] - want)) <= bound


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("name", MASKING)
def test_torch_inputs_give_the_same_ring_sum_as_numpy(name: str, device: str) -> None:
    """The torch path (quantize and mask on the tensor's device, only the masked vector
    leaves it) is bit-identical to numpy: on the CPU device here, on CUDA where present."""
    n = 6
    proto = _make(name, n, 3)
    inputs = _inputs(n, 1031)
    as_numpy = simulate(proto, inputs, seed=4, dropouts={2: proto.phases[2]})
    as_torch = simulate(
        proto,
        {c: torch.from_numpy(x).to(device) for c, x in inputs.items()},
        seed=4,
        dropouts={2: proto.phases[2]},
    )
    np.testing.assert_array_equal(as_numpy.ring_sum, as_torch.ring_sum)
    assert isinstance(as_torch.sum, torch.Tensor)
    assert as_torch.sum.device.type == device


def test_64_bit_ring() -> None:
    proto = protocols.get("secaggplus", num_clients=8, ring_bits=64, quant_bits=40)
    inputs = _inputs(8, 33)
    result = simulate(proto, inputs, seed=5, dropouts={1: proto.phases[1]})
    assert result.ring_sum.dtype == np.uint64
    np.testing.assert_array_equal(
        result.ring_sum,
        _plain_ring_sum(8, inputs, result.survivors, 5, ring_bits=64, quant_bits=40),
    )


def test_upload_is_ring_bits_per_entry() -> None:
    d = 10_000
    proto = protocols.get("secaggplus", num_clients=5)
    result = simulate(proto, _inputs(5, d), seed=0)
    masked = result.stats["client"]["masked-input"]
    per_client = masked.bytes_sent / masked.messages_sent
    assert 4 * d <= per_client <= 4 * d + 128  # 4 bytes an entry plus a fixed header


def test_defaults_are_chosen_safely_and_exposed() -> None:
    plus = protocols.get("secaggplus", num_clients=1000)
    assert plus.num_neighbors < 100 and 2 * plus.threshold > plus.num_neighbors
    full = protocols.get("secagg", num_clients=10)
    assert full.num_neighbors == 9 and full.threshold == 5
    with pytest.raises(ConfigError) as info:
        protocols.get("secagg", num_clients=10, num_neighbors=4)
    assert info.value.parameter == "num_neighbors"
    with pytest.raises(ConfigError) as info:
        protocols.get("secagg", num_clients=10, threshold=2)
    assert info.value.parameter == "threshold"
    with pytest.raises(ConfigError) as info:
        protocols.get("secaggplus", num_clients=2)
    assert info.value.parameter == "num_clients"
    with pytest.raises(ConfigError) as info:
        protocols.get("secaggplus", num_clients=10, min_survivors=11)
    assert info.value.parameter == "min_survivors"
    with pytest.raises(ConfigError) as info:
        protocols.get("secaggplus", num_clients=10, adversary="malicious")
    assert info.value.parameter == "adversary"

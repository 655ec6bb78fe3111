"""secagg.simulate: the public API, on numpy, torch and lists of layers, with dropouts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from secagg import ConfigError, protocols, simulate
from secagg.errors import AbortError, InvalidInputError
from secagg.sim import INPUT_ENCODING


def _inputs(n: int, d: int, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {cid: rng.normal(scale=0.5, size=d) for cid in range(n)}


@given(
    n=st.integers(1, 12),
    d=st.integers(1, 40),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_sum_over_survivors_within_quantization_bound(
    n: int, d: int, seed: int, data: st.DataObject
) -> None:
    proto = protocols.get("plain", num_clients=n, clip=1.0, quant_bits=16)
    inputs = _inputs(n, d, seed)
    dropped = data.draw(st.sets(st.sampled_from(sorted(inputs)), max_size=n - 1))
    result = simulate(proto, inputs, dropouts={c: proto.phases[0] for c in dropped}, seed=seed)
    assert result.survivors == set(inputs) - dropped
    assert result.dropped == {c: "input" for c in dropped}
    exact = sum(np.clip(inputs[c], -1, 1) for c in result.survivors)
    bound = proto.config.quantization.sum_error_bound(len(result.survivors))
    assert np.all(np.abs(result.sum - exact) <= bound)


def test_same_seed_same_transcript_other_seed_other_dither() -> None:
    proto = protocols.get("plain", num_clients=5)
    inputs = _inputs(5, 100)
    a = simulate(proto, inputs, seed=1)
    b = simulate(proto, inputs, seed=1)
    c = simulate(proto, inputs, seed=2)
    np.testing.assert_array_equal(a.ring_sum, b.ring_sum)
    assert a.session == b.session != c.session
    assert not np.array_equal(a.ring_sum, c.ring_sum)


def test_weights_give_a_weighted_sum() -> None:
    proto = protocols.get("plain", num_clients=3, clip=2.0, quant_bits=20)
    inputs = {0: np.ones(4), 1: 2 * np.ones(4), 2: -np.ones(4)}
    result = simulate(proto, inputs, weights={0: 0.5, 1: 0.25, 2: 1.0}, seed=0)
    np.testing.assert_allclose(result.sum, np.full(4, 0.5 + 0.5 - 1.0), atol=3 * 2 / 2**19)


def test_torch_list_of_layers_comes_back_in_the_same_structure() -> None:
    proto = protocols.get("plain", num_clients=3, clip=1.0, quant_bits=20)
    layers = {
        cid: [torch.full((2, 3), 0.1 * (cid + 1), dtype=torch.float32), torch.full((4,), -0.2)]
        for cid in range(3)
    }
    result = simulate(proto, layers, seed=0)
    assert isinstance(result.sum, list) and len(result.sum) == 2
    w, b = result.sum
    assert isinstance(w, torch.Tensor) and w.shape == (2, 3) and w.dtype == torch.float32
    assert b.shape == (4,) and b.device.type == "cpu"
    torch.testing.assert_close(w, torch.full((2, 3), 0.6), atol=1e-5, rtol=0)
    torch.testing.assert_close(b, torch.full((4,), -0.6), atol=1e-5, rtol=0)


def test_numpy_array_in_numpy_array_out_with_shape() -> None:
    proto = protocols.get("plain", num_clients=2)
    result = simulate(
        proto, {0: np.ones((3, 2), np.float32), 1: np.ones((3, 2), np.float32)}, seed=0
    )
    assert isinstance(result.sum, np.ndarray)
    assert result.sum.shape == (3, 2) and result.sum.dtype == np.float32


@pytest.mark.cuda
def test_cuda_inputs_give_a_cuda_sum_equal_to_the_cpu_sum() -> None:
    proto = protocols.get("plain", num_clients=4)
    inputs = _inputs(4, 1000)
    cpu = simulate(proto, inputs, seed=3)
    gpu = simulate(proto, {c: torch.from_numpy(x).cuda() for c, x in inputs.items()}, seed=3)
    assert gpu.sum.device.type == "cuda"
    np.testing.assert_array_equal(gpu.ring_sum, cpu.ring_sum)


def test_stats_count_real_wire_bytes() -> None:
    n, d = 6, 250
    proto = protocols.get("plain", num_clients=n)
    result = simulate(proto, _inputs(n, d), dropouts={5: proto.phases[0]}, seed=0)
    client, server = result.stats["client"]["input"], result.stats["server"]["input"]
    per_message = 4 + 1 + 1 + 5 + 2 + 1 + (4 + 32) + 8 + 8 + (1 + 4 + 4 * d)
    assert client.messages_sent == server.messages_received == n - 1
    assert client.bytes_sent == server.bytes_received == (n - 1) * per_message
    assert result.bytes_per_client() == per_message
    assert result.stats["client"][INPUT_ENCODING].seconds > 0
    assert server.seconds > 0


def test_everyone_dropping_aborts() -> None:
    proto = protocols.get("plain", num_clients=2)
    with pytest.raises(AbortError, match="too-few-survivors"):
        simulate(proto, _inputs(2, 3), dropouts={0: proto.phases[0], 1: proto.phases[0]}, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"inputs": {}}, "inputs"),
        ({"inputs": {-1: np.zeros(2)}}, "inputs"),
        ({"inputs": {"a": np.zeros(2)}}, "inputs"),
        ({"inputs": {c: np.zeros(2) for c in range(5)}}, "inputs"),  # more than num_clients
        ({"dropouts": {9: "input"}}, "dropouts"),
        ({"dropouts": {0: "input"}}, "dropouts"),  # a string, not a Phase member
        ({"weights": {9: 1.0}}, "weights"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], parameter: str) -> None:
    proto = protocols.get("plain", num_clients=4)
    args: dict[str, Any] = {"inputs": {0: np.zeros(2), 1: np.zeros(2)}, "seed": 0}
    args.update(kwargs)
    with pytest.raises(ConfigError) as exc:
        simulate(proto, **args)
    assert exc.value.parameter == parameter


def test_mismatched_update_structures_are_refused() -> None:
    proto = protocols.get("plain", num_clients=2)
    with pytest.raises(InvalidInputError):
        simulate(proto, {0: np.zeros(3), 1: np.zeros(4)}, seed=0)
    with pytest.raises(InvalidInputError):
        simulate(proto, {0: np.zeros(3), 1: torch.zeros(3)}, seed=0)
    with pytest.raises(InvalidInputError):
        simulate(proto, {0: "abc", 1: "def"}, seed=0)

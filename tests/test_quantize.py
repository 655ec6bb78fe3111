"""Quantization: config validation, error bounds, unbiased rounding, CPU/torch agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from secagg.errors import ConfigError, InvalidInputError
from secagg.quantize import MAX_QUANT_BITS, QuantizationConfig, Quantizer
from secagg.randomness import SeededRandom


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"clip": 0.0}, "clip"),
        ({"clip": -1.0}, "clip"),  # Flower accepts clipping_range <= 0 silently; we do not
        ({"clip": math.nan}, "clip"),
        ({"clip": math.inf}, "clip"),
        ({"clip": "1"}, "clip"),
        ({"quant_bits": 1}, "quant_bits"),
        ({"quant_bits": 54}, "quant_bits"),
        ({"quant_bits": 8.0}, "quant_bits"),
        ({"ring_bits": 16}, "ring_bits"),
        ({"num_clients": 0}, "num_clients"),
        ({"num_clients": True}, "num_clients"),
        ({"num_clients": 5000, "quant_bits": 20}, "quant_bits"),  # 5000 * 2^20 > 2^32
    ],
)
def test_each_bad_parameter_is_named(kwargs: dict[str, object], parameter: str) -> None:
    base: dict[str, object] = {"clip": 1.0, "quant_bits": 16, "ring_bits": 32, "num_clients": 10}
    base.update(kwargs)
    with pytest.raises(ConfigError) as exc:
        QuantizationConfig(**base)  # type: ignore[arg-type]
    assert exc.value.parameter == parameter


def test_budget_error_says_what_to_change() -> None:
    with pytest.raises(ConfigError) as exc:
        QuantizationConfig(clip=1.0, quant_bits=24, ring_bits=32, num_clients=1000)
    message = str(exc.value)
    assert "quant_bits <= 22" in message
    assert "num_clients <= 256" in message
    assert "ring_bits=64" in message
    # the suggested fixes do work
    QuantizationConfig(clip=1.0, quant_bits=22, ring_bits=32, num_clients=1000)
    QuantizationConfig(clip=1.0, quant_bits=24, ring_bits=32, num_clients=256)
    QuantizationConfig(clip=1.0, quant_bits=24, ring_bits=64, num_clients=1000)


@given(
    n=st.integers(1, 50),
    q=st.integers(2, 24),
    clip=st.floats(1e-3, 1e3),
    ring_bits=st.sampled_from([32, 64]),
    seed=st.integers(0, 2**32),
    data=st.data(),
)
def test_sum_of_n_decodes_within_bound(
    n: int, q: int, clip: float, ring_bits: int, seed: int, data: st.DataObject
) -> None:
    if n * 2**q > 2**ring_bits:
        q = ring_bits - math.ceil(math.log2(n))
    cfg = QuantizationConfig(clip=clip, quant_bits=min(q, 24), ring_bits=ring_bits, num_clients=n)
    quantizer = Quantizer(cfg)
    d = data.draw(st.integers(1, 16))
    floats = st.floats(-4 * clip, 4 * clip, allow_nan=False)
    xs = [data.draw(hnp.arrays(np.float64, d, elements=floats)) for _ in range(n)]
    ws = [data.draw(st.floats(0.0, 1.0)) for _ in range(n)]
    rng = SeededRandom(seed)
    encoded = [quantizer.quantize(x, rng, weight=w) for x, w in zip(xs, ws, strict=True)]
    total = cfg.ring.sum(encoded, d)
    exact = sum(w * np.clip(x, -clip, clip) for x, w in zip(xs, ws, strict=True))
    decoded = quantizer.dequantize(total)
    assert np.all(np.abs(decoded - exact) <= cfg.sum_error_bound(n) * (1 + 1e-9))


def test_stochastic_rounding_is_unbiased() -> None:
    cfg = QuantizationConfig(clip=1.0, quant_bits=4, ring_bits=32, num_clients=1)  # 7 levels
    quantizer = Quantizer(cfg)
    x = np.full(200_000, 0.3)  # 0.3 * 7 = 2.1 levels: rounds to 2 or 3, mean must be 2.1
    decoded = quantizer.dequantize(quantizer.quantize(x, SeededRandom(0)))
    assert set(np.round(decoded * 7).astype(int)) == {2, 3}
    assert abs(decoded.mean() - 0.3) < 4 * (1 / 7) / math.sqrt(len(x))


def test_clipping_and_extremes_stay_in_range() -> None:
    cfg = QuantizationConfig(clip=2.0, quant_bits=8, ring_bits=32, num_clients=1)
    quantizer = Quantizer(cfg)
    e = quantizer.quantize(np.array([-1e9, -2.0, 2.0, 1e9]), SeededRandom(1))
    assert list(cfg.ring.to_signed(e)) == [-127, -127, 127, 127]


@given(
    q=st.integers(44, MAX_QUANT_BITS),
    clip=st.floats(1e-6, 1e6),
    weight=st.sampled_from([1.0, 0.999999, 0.5]) | st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
    torch_input=st.booleans(),
)
def test_every_entry_is_within_the_levels_up_to_the_largest_quant_bits(
    q: int, clip: float, weight: float, seed: int, torch_input: bool
) -> None:
    """|e| <= L = 2^(q-1) - 1 for every entry, up to q = MAX_QUANT_BITS: clipped entries
    (|v| = L) are where float64 rounding of v + u used to give L + 1 (about 1 in 128 clipped
    entries at q = 48, most of them at q = 53)."""
    cfg = QuantizationConfig(clip=clip, quant_bits=q, ring_bits=64, num_clients=1)
    big = np.full(2048, clip)
    x = np.concatenate([big, -big, big * (1 - 1e-12), -big * (1 - 1e-12), 2 * big, -2 * big])
    encoded = Quantizer(cfg).quantize(
        torch.from_numpy(x) if torch_input else x, SeededRandom(seed), weight=weight
    )
    e = cfg.ring.to_signed(cfg.ring.to_numpy(encoded)).astype(np.int64)
    assert int(np.abs(e).max()) <= cfg.levels
    v = np.clip(x, -clip, clip) * (weight * cfg.scale)  # e rounds v down or up, never further
    assert np.all(np.abs(e - v) < 1 + np.abs(v) * 2.0**-50)


@pytest.mark.parametrize("bad", [np.array([1.0, np.nan]), np.array([np.inf, 0.0])])
def test_non_finite_input_is_refused(bad: np.ndarray) -> None:
    quantizer = Quantizer(QuantizationConfig(1.0, 8, 32, 1))
    with pytest.raises(InvalidInputError):
        quantizer.quantize(bad, SeededRandom(0))
    with pytest.raises(InvalidInputError):
        quantizer.quantize(torch.from_numpy(bad), SeededRandom(0))


@pytest.mark.parametrize("weight", [-0.1, 1.5, math.nan, True])
def test_weight_outside_unit_interval_is_refused(weight: float) -> None:
    quantizer = Quantizer(QuantizationConfig(1.0, 8, 32, 1))
    with pytest.raises(InvalidInputError):
        quantizer.quantize(np.zeros(3), SeededRandom(0), weight=weight)


def test_wrong_shape_or_dtype_is_refused() -> None:
    quantizer = Quantizer(QuantizationConfig(1.0, 8, 32, 1))
    with pytest.raises(InvalidInputError):
        quantizer.quantize(np.zeros((2, 2)), SeededRandom(0))
    with pytest.raises(InvalidInputError):
        quantizer.quantize(np.array(["a"]), SeededRandom(0))


@pytest.mark.parametrize("ring_bits", [32, 64])
def test_torch_quantization_is_bit_identical_to_numpy(ring_bits: int) -> None:
    cfg = QuantizationConfig(clip=1.0, quant_bits=20, ring_bits=ring_bits, num_clients=10)
    quantizer = Quantizer(cfg)
    x = np.random.default_rng(0).normal(size=10_001)
    cpu = quantizer.quantize(x, SeededRandom(5), weight=0.75)
    tt = quantizer.quantize(torch.from_numpy(x), SeededRandom(5), weight=0.75)
    assert tt.dtype == cfg.ring.torch_dtype
    np.testing.assert_array_equal(cfg.ring.to_numpy(tt), cpu)
    # the GPU formula (CPU torch tensors take the numpy path), run here on the CPU
    key = SeededRandom(5).random_bytes(32)
    on_device = quantizer._quantize_torch(torch.from_numpy(x), key, 0.75 * cfg.scale)
    np.testing.assert_array_equal(cfg.ring.to_numpy(on_device), cpu)
    np.testing.assert_array_equal(quantizer.dequantize(tt).numpy(), quantizer.dequantize(cpu))


@pytest.mark.cuda
def test_cuda_quantization_is_bit_identical_to_numpy() -> None:
    cfg = QuantizationConfig(clip=1.0, quant_bits=20, ring_bits=32, num_clients=10)
    quantizer = Quantizer(cfg)
    x = np.random.default_rng(1).normal(size=100_003)
    cpu = quantizer.quantize(x, SeededRandom(6))
    gpu = quantizer.quantize(torch.from_numpy(x).cuda(), SeededRandom(6))
    assert gpu.device.type == "cuda"
    np.testing.assert_array_equal(cfg.ring.to_numpy(gpu), cpu)


@pytest.mark.cuda
def test_cuda_quantization_at_the_largest_quant_bits_stays_within_the_levels() -> None:
    """The clamp to [-L, L] acts on the device too, bit-identically to numpy."""
    cfg = QuantizationConfig(clip=1.0, quant_bits=MAX_QUANT_BITS, ring_bits=64, num_clients=1)
    quantizer = Quantizer(cfg)
    x = np.concatenate([np.full(50_000, 1.0), np.full(50_000, -1.0), np.linspace(-2, 2, 1001)])
    cpu = quantizer.quantize(x, SeededRandom(7))
    gpu = quantizer.quantize(torch.from_numpy(x).cuda(), SeededRandom(7))
    np.testing.assert_array_equal(cfg.ring.to_numpy(gpu), cpu)
    assert int(np.abs(cfg.ring.to_signed(cpu)).max()) <= cfg.levels

"""Bulk work split over threads and cache-sized blocks gives the same words as the plain
definition, for every length, ring and number of threads (``secagg.parallel``)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from secagg import parallel
from secagg.errors import ConfigError, CryptoError
from secagg.primitives.prg import BLOCK_BYTES, add_keystreams, keystream
from secagg.quantize import QuantizationConfig, Quantizer
from secagg.randomness import SeededRandom

KEYS = [(bytes([i]) * 32, 1 if i % 3 else -1) for i in range(1, 6)]


@pytest.fixture(params=[1, 2, 3], ids=lambda w: f"{w}-threads")
def threads(request: pytest.FixtureRequest) -> Iterator[int]:
    before = parallel.workers()
    parallel.set_workers(request.param)
    yield request.param
    parallel.set_workers(before)


def _one_key_at_a_time(acc: np.ndarray, keys: list[tuple[bytes, int]]) -> np.ndarray:
    out = acc.copy()
    for key, sign in keys:
        stream = keystream(key, len(acc), acc.dtype.itemsize * 8)
        out = out + stream if sign > 0 else out - stream
    return out


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize(
    "length",
    [0, 1, 15, 17, parallel.MIN_RANGE * 3 + 5, BLOCK_BYTES // 4 * 2 + 1, 1_000_003],
)
def test_blocked_keystreams_are_the_keystreams(threads: int, bits: int, length: int) -> None:
    dtype = np.uint32 if bits == 32 else np.uint64
    acc = np.random.default_rng(length).integers(0, 2**bits, length, dtype=dtype)
    expected = _one_key_at_a_time(acc, KEYS)
    add_keystreams(acc, KEYS)
    np.testing.assert_array_equal(acc, expected)


def test_keystreams_refuse_what_they_cannot_fill() -> None:
    with pytest.raises(CryptoError):
        add_keystreams(np.zeros(4, np.int32), KEYS)
    with pytest.raises(CryptoError):
        add_keystreams(np.zeros(8, np.uint32)[::2], KEYS)
    with pytest.raises(CryptoError):
        add_keystreams(np.zeros(4, np.uint32), [(bytes(31), 1)])
    with pytest.raises(CryptoError):
        add_keystreams(np.zeros(4, np.uint32), [(bytes(32), 2)])
    with pytest.raises(CryptoError, match="writeable"):
        add_keystreams(np.frombuffer(bytes(16), np.uint32), KEYS)


def test_ranges_cover_the_vector_once_on_block_boundaries() -> None:
    for length in (0, 5, parallel.MIN_RANGE, 10 * parallel.MIN_RANGE + 3):
        for parts in (1, 2, 7):
            ranges = parallel.split_ranges(length, parts, 16)
            assert ranges[0][0] == 0 and ranges[-1][1] == length
            assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
            assert all(lo % 16 == 0 for lo, _ in ranges)
            assert len(ranges) <= max(1, min(parts, length // parallel.MIN_RANGE))


def test_a_failing_range_raises_in_the_caller(threads: int) -> None:
    def fail(lo: int, hi: int) -> None:
        if lo > 0 or threads == 1:
            raise ValueError(f"range {lo}")

    with pytest.raises(ValueError, match="range"):
        parallel.for_ranges(fail, 4 * parallel.MIN_RANGE)


def test_a_failing_first_range_waits_for_the_others() -> None:
    """No thread may still write into the caller's buffer once the caller sees the error."""
    before = parallel.workers()
    parallel.set_workers(2)
    finished = threading.Event()

    def first_fails(lo: int, hi: int) -> None:
        if lo == 0:
            raise ValueError("range 0")
        time.sleep(0.2)
        finished.set()

    try:
        with pytest.raises(ValueError, match="range 0"):
            parallel.for_ranges(first_fails, 4 * parallel.MIN_RANGE)
        assert finished.is_set()
    finally:
        parallel.set_workers(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_the_number_of_threads_is_checked(bad: object) -> None:
    with pytest.raises(ConfigError):
        parallel.set_workers(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("ring_bits", [32, 64])
def test_quantization_does_not_depend_on_threads(threads: int, ring_bits: int) -> None:
    """The blocked encoding equals the one-pass definition written out in float64."""
    cfg = QuantizationConfig(clip=1.0, quant_bits=24, ring_bits=ring_bits, num_clients=100)
    x = np.random.default_rng(1).normal(size=300_007).astype(np.float32)
    got = Quantizer(cfg).quantize(x, SeededRandom(3), weight=0.5)
    key = SeededRandom(3).random_bytes(32)
    u = keystream(key, x.size, 32).astype(np.float64) * 2.0**-32
    v = np.floor(np.clip(x.astype(np.float64), -1.0, 1.0) * (0.5 * cfg.scale) + u)
    expected = np.clip(v, -cfg.levels, cfg.levels).astype(np.int64)
    np.testing.assert_array_equal(cfg.ring.to_signed(got), expected)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("ring_bits", [32, 64])
def test_the_device_batches_add_the_same_masks(
    ring_bits: int, device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GPU path (keys batched through one set of torch kernels, batches smaller than the
    key list here) adds what the host cipher adds; on a CPU-only machine the GPU code runs on
    the CPU."""
    import torch

    from secagg.protocols.secaggplus import masks
    from secagg.ring import Ring

    ring = Ring(ring_bits)
    monkeypatch.setattr(masks, "DEVICE_BATCH_WORDS", 2 * 1001)
    start = np.random.default_rng(2).integers(0, 2**ring_bits, 1001, dtype=ring.numpy_dtype)
    on_host = start.copy()
    masks.Masker(ring, 1001).apply_all(on_host, KEYS)
    tensor = ring.to_torch(start, device)
    masks.Masker(ring, 1001, like=tensor)._apply_on_device(tensor, KEYS)
    np.testing.assert_array_equal(ring.to_numpy(tensor), on_host)
    tensor = tensor.cpu()
    via_view = ring.to_torch(start)
    masks.Masker(ring, 1001, like=via_view).apply_all(via_view, KEYS)  # CPU: the host cipher
    np.testing.assert_array_equal(ring.to_numpy(via_view), on_host)
    assert torch.equal(via_view, tensor)

"""The torch keystream is bit-identical to the CPU (cryptography) keystream."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from secagg.primitives.prg import keystream
from secagg.primitives.prg_torch import keystream_torch

keys = st.binary(min_size=32, max_size=32)


def _as_numpy(t: torch.Tensor, bits: int) -> np.ndarray:
    return t.cpu().numpy().view(np.uint32 if bits == 32 else np.uint64)


@given(
    key=keys,
    length=st.integers(0, 300),
    bits=st.sampled_from([32, 64]),
    nonce=st.binary(min_size=12, max_size=12),
    counter=st.integers(0, (1 << 32) - 64),
)
def test_torch_keystream_equals_cpu_keystream(
    key: bytes, length: int, bits: int, nonce: bytes, counter: int
) -> None:
    expected = keystream(key, length, bits, nonce=nonce, counter=counter)
    got = keystream_torch(key, length, bits, nonce=nonce, counter=counter)
    assert got.dtype == (torch.int32 if bits == 32 else torch.int64)
    np.testing.assert_array_equal(_as_numpy(got, bits), expected)


@pytest.mark.parametrize("bits", [32, 64])
def test_torch_keystream_large_vector(bits: int) -> None:
    key = bytes(range(32))
    n = 100_003
    np.testing.assert_array_equal(
        _as_numpy(keystream_torch(key, n, bits), bits), keystream(key, n, bits)
    )


def test_torch_keystream_rfc8439_block() -> None:
    """RFC 8439 §2.3.2 block, straight from the torch implementation."""
    expected = bytes.fromhex(
        "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
        "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
    )
    nonce = bytes.fromhex("000000090000004a00000000")
    out = keystream_torch(bytes(range(32)), 16, 32, nonce=nonce, counter=1)
    assert _as_numpy(out, 32).astype("<u4").tobytes() == expected


@pytest.mark.cuda
@pytest.mark.parametrize("bits", [32, 64])
def test_cuda_keystream_equals_cpu_keystream(bits: int) -> None:
    key = bytes(range(1, 33))
    n = 1_000_003
    got = keystream_torch(key, n, bits, device="cuda")
    assert got.device.type == "cuda"
    np.testing.assert_array_equal(_as_numpy(got, bits), keystream(key, n, bits))

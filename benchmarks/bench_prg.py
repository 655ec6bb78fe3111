"""Mask generation: our keystream fill vs the raw ``cryptography`` cipher on the same bytes.

Target (issue #2): filling a 1M-entry uint32 vector runs at >= 0.8x the raw cipher's speed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from secagg.primitives.prg import keystream
from secagg.primitives.prg_torch import keystream_torch

D = 1_000_000
KEY = bytes(range(32))
NONCE16 = bytes(16)


def test_raw_cryptography_chacha20_4mb(benchmark: Any) -> None:
    """``encryptor.update(bytes(4 MB))``: the plain use of the library (allocates twice)."""
    benchmark.group = "keystream 1M uint32"

    def raw() -> bytes:
        return Cipher(algorithms.ChaCha20(KEY, NONCE16), mode=None).encryptor().update(bytes(4 * D))

    assert len(benchmark(raw)) == 4 * D


def test_raw_cryptography_chacha20_in_place_4mb(benchmark: Any) -> None:
    """Reference: the fastest raw form, ``update_into`` a zero buffer in place (same bytes)."""
    benchmark.group = "keystream 1M uint32"
    benchmark.extra_info["reference"] = True

    def raw_in_place() -> bytearray:
        buf = bytearray(4 * D)
        enc = Cipher(algorithms.ChaCha20(KEY, NONCE16), mode=None).encryptor()
        enc.update_into(buf, buf)
        return buf

    assert len(benchmark(raw_in_place)) == 4 * D


def test_secagg_keystream_uint32(benchmark: Any) -> None:
    benchmark.group = "keystream 1M uint32"
    out = benchmark(keystream, KEY, D, 32)
    assert out.dtype == np.uint32 and len(out) == D


def test_secagg_keystream_uint64_half_length(benchmark: Any) -> None:
    """Same 4 MB of keystream read as 500k uint64 words."""
    benchmark.group = "keystream 1M uint32"
    out = benchmark(keystream, KEY, D // 2, 64)
    assert out.dtype == np.uint64


def test_secagg_keystream_torch_cpu(benchmark: Any) -> None:
    """The torch ChaCha20 (the CUDA path) run on the CPU: for scale, not a target."""
    benchmark.group = "keystream 1M uint32"
    out = benchmark.pedantic(keystream_torch, args=(KEY, D, 32), rounds=5, iterations=1)
    assert out.dtype == torch.int32


if torch.cuda.is_available():

    def test_secagg_keystream_torch_cuda(benchmark: Any) -> None:
        benchmark.group = "keystream 1M uint32"

        def run() -> Any:
            out = keystream_torch(KEY, D, 32, device="cuda")
            torch.cuda.synchronize()
            return out

        assert run().device.type == "cuda"
        benchmark(run)

"""The ChaCha20 keystream of :mod:`secagg.primitives.prg`, computed by torch on any device.

A CUDA client masks its update where it lives: the mask is generated on the GPU and only the
masked vector is copied to the host. The definition is bit-for-bit the one in ``prg.py``
(known-answer tests run both against RFC 8439 and against each other on CPU; on a GPU the
same tests run with ``device="cuda"``).

Implementation: the 16-word ChaCha state of every block is held as four ``(4, blocks)``
int32 tensors (rows a, b, c, d of the 4x4 matrix), so one quarter-round call updates all four
columns of all blocks; diagonal rounds roll the rows. int32 addition wraps mod 2^32 with the
same bits as uint32; the logical right shift needed by the rotation is an arithmetic shift
with the sign-extended bits masked off.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from secagg.errors import CryptoError
from secagg.primitives.prg import NONCE_BYTES, check_request

__all__ = ["keystream_torch", "keystreams_torch"]

_SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"


def _i32(word: int) -> int:
    return word - (1 << 32) if word >= (1 << 31) else word


def _rotl(v: Any, n: int) -> Any:
    return (v << n) | ((v >> (32 - n)) & ((1 << n) - 1))


def _quarter_round(a: Any, b: Any, c: Any, d: Any) -> tuple[Any, Any, Any, Any]:
    a = a + b
    d = _rotl(d ^ a, 16)
    c = c + d
    b = _rotl(b ^ c, 12)
    a = a + b
    d = _rotl(d ^ a, 8)
    c = c + d
    b = _rotl(b ^ c, 7)
    return a, b, c, d


def _chacha20_words(
    keys: Sequence[bytes], nonce: bytes, counter: int, n_words: int, device: Any
) -> Any:
    """The first ``n_words`` little-endian uint32 keystream words under each key, as int32
    bits of shape ``(len(keys), n_words)``: all keys' blocks go through one set of kernels."""
    import torch

    n_blocks = -(-n_words // 16)
    n_keys = len(keys)
    key_words = [struct.unpack("<8I", key) for key in keys]
    nonce_words = struct.unpack("<3I", nonce)

    def rows(words: Sequence[Sequence[int]]) -> Any:
        # (rows, keys) -> (rows, keys * blocks): each key's words repeated for its blocks
        col = torch.tensor([[_i32(w) for w in ws] for ws in words], dtype=torch.int32)
        col = col.to(device)
        return col[:, :, None].expand(len(words), n_keys, n_blocks).reshape(len(words), -1)

    a0 = rows([[w] * n_keys for w in _SIGMA])
    b0 = rows(list(zip(*(kw[:4] for kw in key_words), strict=True)))
    c0 = rows(list(zip(*(kw[4:] for kw in key_words), strict=True)))
    # Row d: block counter (32-bit, may exceed 2^31 so built in int64 then wrapped) + nonce.
    ctr = torch.arange(counter, counter + n_blocks, dtype=torch.int64, device=device)
    ctr = torch.where(ctr >= (1 << 31), ctr - (1 << 32), ctr).to(torch.int32)
    d0 = torch.cat([ctr.repeat(n_keys)[None, :], rows([[w] * n_keys for w in nonce_words])])

    state = _block_function(a0, b0, c0, d0)  # (16, keys * blocks)
    return state.t().reshape(n_keys, -1)[:, :n_words]


def _block_function(a0: Any, b0: Any, c0: Any, d0: Any) -> Any:
    """ChaCha20's 20 rounds and the final addition, on rows a, b, c, d of every block."""
    import torch

    a, b, c, d = a0, b0, c0, d0
    for _ in range(10):
        a, b, c, d = _quarter_round(a, b, c, d)  # column round
        b, c, d = b.roll(-1, 0), c.roll(-2, 0), d.roll(-3, 0)
        a, b, c, d = _quarter_round(a, b, c, d)  # diagonal round
        b, c, d = b.roll(1, 0), c.roll(2, 0), d.roll(3, 0)
    return torch.cat([a + a0, b + b0, c + c0, d + d0], dim=0)


def keystreams_torch(
    keys: Sequence[bytes],
    length: int,
    bits: int = 32,
    *,
    device: Any = "cpu",
    nonce: bytes = bytes(NONCE_BYTES),
    counter: int = 0,
) -> Any:
    """:func:`keystream_torch` for several keys at once: a ``(len(keys), length)`` tensor.

    One batch runs the ~1,000 element-wise kernels of ChaCha20's 20 rounds once for every
    key, instead of once per key: on a GPU the rounds of a small vector are kernel-launch
    bound, so a client's k + 1 masks cost about what one does.
    """
    try:  # imported here, not with the core (secagg.ring says why)
        import torch
    except ImportError as exc:  # pragma: no cover
        raise CryptoError("torch is not installed") from exc
    if bits not in (32, 64):
        raise CryptoError(f"keystream word size must be 32 or 64 bits, got {bits}")
    if length < 0:
        raise CryptoError(f"keystream length must be >= 0, got {length}")
    for key in keys:
        check_request(key, nonce, length * bits // 8, counter)
    if not keys:
        return torch.empty((0, length), dtype=torch.int32 if bits == 32 else torch.int64)
    if bits == 32:
        return _chacha20_words(keys, nonce, counter, length, device)
    words = _chacha20_words(keys, nonce, counter, 2 * length, device).to(torch.int64)
    lo = words[:, 0::2] & 0xFFFFFFFF
    hi = words[:, 1::2]
    return lo | (hi << 32)


def keystream_torch(
    key: bytes,
    length: int,
    bits: int = 32,
    *,
    device: Any = "cpu",
    nonce: bytes = bytes(NONCE_BYTES),
    counter: int = 0,
) -> Any:
    """Same words as :func:`secagg.primitives.prg.keystream`, as a torch ring vector.

    Returns an ``int32`` (bits=32) or ``int64`` (bits=64) tensor on ``device`` whose bits are
    the uint32/uint64 keystream words (see :mod:`secagg.ring` for the representation).
    """
    return keystreams_torch([key], length, bits, device=device, nonce=nonce, counter=counter)[0]

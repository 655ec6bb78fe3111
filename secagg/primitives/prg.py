"""Keystream PRG: ChaCha20 (RFC 8439) read as a vector of uint32/uint64 words.

Masks in SecAgg are PRG(seed) expanded to d ring elements. Ours is the ChaCha20 keystream
under a 32-byte key (derived by :func:`secagg.primitives.kdf.derive_key` with a purpose label,
the session and the round), nonce = 12 zero bytes and block counter starting at 0 (a fresh
key per use, so a fixed nonce is safe). The keystream bytes are read little-endian:
``uint32`` word i is keystream bytes [4i, 4i+4); ``uint64`` word i is bytes [8i, 8i+8).

The same definition is implemented for torch tensors in :mod:`secagg.primitives.prg_torch`;
both are checked against RFC 8439 §2.3.2/§2.4.2 and against each other.

Mapping to the papers: Bonawitz et al. write PRG(s_{u,v}) and PRG(b_u); this is that PRG.
Flower folds the 32-byte seed into a 32-bit numpy seed; we do not.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from secagg import parallel
from secagg.errors import CryptoError

__all__ = [
    "KEY_BYTES",
    "MAX_KEYSTREAM_BYTES",
    "NONCE_BYTES",
    "add_keystreams",
    "chacha20_keystream",
    "keystream",
]

KEY_BYTES = 32
NONCE_BYTES = 12
MAX_KEYSTREAM_BYTES = 64 * (1 << 32)
"""RFC 8439's 32-bit block counter: at most 2^32 blocks of 64 bytes (256 GiB) per key."""

_WORD: dict[int, np.dtype[Any]] = {32: np.dtype("<u4"), 64: np.dtype("<u8")}


def check_request(key: bytes, nonce: bytes, nbytes: int, counter: int) -> None:
    """Raise :class:`CryptoError` unless the key, nonce and keystream range are valid."""
    if len(key) != KEY_BYTES:
        raise CryptoError(f"ChaCha20 key must be {KEY_BYTES} bytes, got {len(key)}")
    if len(nonce) != NONCE_BYTES:
        raise CryptoError(f"ChaCha20 nonce must be {NONCE_BYTES} bytes, got {len(nonce)}")
    if not 0 <= counter < (1 << 32):
        raise CryptoError(f"ChaCha20 block counter must be in [0, 2^32), got {counter}")
    if nbytes < 0 or 64 * counter + nbytes > MAX_KEYSTREAM_BYTES:
        raise CryptoError(
            f"{nbytes} keystream bytes from block {counter} exceed ChaCha20's 2^32 blocks per key"
        )


def chacha20_keystream(
    key: bytes, nbytes: int, *, nonce: bytes = bytes(NONCE_BYTES), counter: int = 0
) -> bytes:
    """``nbytes`` bytes of the RFC 8439 ChaCha20 keystream (for known-answer tests)."""
    check_request(key, nonce, nbytes, counter)
    cipher = Cipher(algorithms.ChaCha20(key, counter.to_bytes(4, "little") + nonce), mode=None)
    return cipher.encryptor().update(bytes(nbytes))


def keystream(
    key: bytes,
    length: int,
    bits: int = 32,
    *,
    nonce: bytes = bytes(NONCE_BYTES),
    counter: int = 0,
) -> npt.NDArray[Any]:
    """Fill a fresh ``uint32`` (bits=32) or ``uint64`` (bits=64) vector with keystream words.

    The cipher writes in place into the array's own buffer: no intermediate ``bytes`` of
    length 4d or 8d is allocated, which is why this runs at (or above) the speed of
    ``encryptor.update(bytes(n))`` on the same bytes (see ``benchmarks/bench_prg.py``).

    Parameters
    ----------
    key:
        32 bytes, already derived for this purpose (never a raw shared secret).
    length:
        Number of words d.
    bits:
        32 or 64, the ring's bit width.
    nonce, counter:
        RFC 8439 nonce (12 bytes) and initial block counter.
    """
    if bits not in _WORD:
        raise CryptoError(f"keystream word size must be 32 or 64 bits, got {bits}")
    if length < 0:
        raise CryptoError(f"keystream length must be >= 0, got {length}")
    dtype = _WORD[bits]
    check_request(key, nonce, length * dtype.itemsize, counter)
    out = np.zeros(length, dtype=dtype)
    buf = out.view(np.uint8).data
    cipher = Cipher(algorithms.ChaCha20(key, counter.to_bytes(4, "little") + nonce), mode=None)
    cipher.encryptor().update_into(buf, buf)  # zeros XOR keystream = keystream
    native: npt.NDArray[Any] = out.astype(dtype.newbyteorder("="), copy=False)
    return native


BLOCK_BYTES = 1 << 17
"""Bytes of keystream filled and added at a time by :func:`add_keystreams`: the accumulator's
block and the keystream's stay in the core's L2 cache while every key is applied to them."""

_CHACHA_BLOCK = 64
_BIG_ENDIAN = sys.byteorder == "big"


def add_keystreams(
    acc: npt.NDArray[Any],
    keys: Sequence[tuple[bytes, int]],
    *,
    nonce: bytes = bytes(NONCE_BYTES),
) -> None:
    """``acc += sum(sign * PRG(key))`` in place, mod 2^b, for a numpy ``uint32``/``uint64`` acc.

    The same words as adding :func:`keystream` ``(key, len(acc), bits)`` once per key, but
    computed block by block: for each cache-sized block of ``acc``, every key's keystream is
    filled into one small buffer and added while both are in cache, so ``acc`` crosses
    memory once instead of once per key. The vector is split into contiguous ranges (starting
    on 64-byte ChaCha20 block boundaries, so each range's cipher starts at its own block
    counter) run on :mod:`secagg.parallel`'s threads; the cipher and numpy release the GIL.

    Parameters
    ----------
    acc:
        1-D C-contiguous native-endian uint32 or uint64 array (a ring vector), written in place.
    keys:
        (32-byte PRG key, sign) pairs; sign is +1 (add) or -1 (subtract).
    nonce:
        RFC 8439 nonce (12 bytes), as for :func:`keystream`.
    """
    keys = tuple(keys)
    bits = acc.dtype.itemsize * 8
    bad = acc.ndim != 1 or bits not in _WORD or acc.dtype.kind != "u"
    if bad or not acc.dtype.isnative or not acc.flags.c_contiguous or not acc.flags.writeable:
        raise CryptoError(
            f"keystreams add into a writeable 1-D uint32/uint64 array, got {acc.dtype}"
        )
    itemsize = acc.dtype.itemsize
    for key, sign in keys:
        check_request(key, nonce, acc.nbytes, 0)
        if sign not in (1, -1):
            raise CryptoError(f"a keystream's sign is +1 or -1, got {sign!r}")
    if not keys or not len(acc):
        return
    block = BLOCK_BYTES // itemsize
    zeros = memoryview(bytes(BLOCK_BYTES))

    def fill_range(lo: int, hi: int) -> None:
        counter = (lo * itemsize // _CHACHA_BLOCK).to_bytes(4, "little")
        streams = [
            (Cipher(algorithms.ChaCha20(key, counter + nonce), mode=None).encryptor(), sign > 0)
            for key, sign in keys
        ]
        buf = np.empty(block, dtype=acc.dtype)
        for start in range(lo, hi, block):
            stop = min(start + block, hi)
            out, seg = buf[: stop - start], acc[start:stop]
            raw = out.view(np.uint8).data
            for encryptor, add in streams:
                encryptor.update_into(zeros[: len(raw)], raw)
                if _BIG_ENDIAN:  # pragma: no cover - the keystream words are little-endian
                    out.byteswap(inplace=True)
                if add:
                    np.add(seg, out, out=seg)
                else:
                    np.subtract(seg, out, out=seg)

    parallel.for_ranges(fill_range, len(acc), align=_CHACHA_BLOCK // itemsize)

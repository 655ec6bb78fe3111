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

from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from secagg.errors import CryptoError

__all__ = [
    "KEY_BYTES",
    "MAX_KEYSTREAM_BYTES",
    "NONCE_BYTES",
    "KeystreamBuffer",
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


class KeystreamBuffer:
    """Reusable keystream output of ``length`` words: :meth:`fill` writes PRG(key) into one
    preallocated array, reading from a preallocated zero buffer.

    Masking d entries for k neighbours needs k keystreams of d words; allocating (and page
    faulting) a fresh array for each costs more than the cipher on large d. The array returned
    by :meth:`fill` is overwritten by the next call.
    """

    def __init__(self, length: int, bits: int = 32) -> None:
        if bits not in _WORD:
            raise CryptoError(f"keystream word size must be 32 or 64 bits, got {bits}")
        if length < 0:
            raise CryptoError(f"keystream length must be >= 0, got {length}")
        self.length = length
        self._dtype = _WORD[bits]
        self._zeros = bytes(length * self._dtype.itemsize)
        self._out = np.empty(length, dtype=self._dtype)

    def fill(self, key: bytes, *, nonce: bytes = bytes(NONCE_BYTES)) -> npt.NDArray[Any]:
        """PRG(key): the first ``length`` words of the keystream (same as :func:`keystream`)."""
        check_request(key, nonce, len(self._zeros), 0)
        cipher = Cipher(algorithms.ChaCha20(key, bytes(4) + nonce), mode=None)
        cipher.encryptor().update_into(self._zeros, self._out.view(np.uint8).data)
        native: npt.NDArray[Any] = self._out.astype(self._dtype.newbyteorder("="), copy=False)
        return native

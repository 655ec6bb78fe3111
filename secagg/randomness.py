"""Injected randomness.

Nothing in ``secagg`` reads a global RNG. Every machine receives a :class:`RandomSource`:

* :class:`SystemRandom` (the default) draws from the OS via :func:`secrets.token_bytes`;
* :class:`SeededRandom` is a deterministic ChaCha20 stream for tests, pinned transcripts and
  reproducible simulations. It is as unpredictable as its seed and no more: never seed it
  from anything guessable in production.

``fork(label)`` gives an independent child stream, so a simulator can hand each client its
own source and the transcript does not depend on the order in which clients draw.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Protocol, TypeVar, runtime_checkable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from secagg.errors import ConfigError

__all__ = ["RandomSource", "SeededRandom", "SystemRandom", "as_random_source", "shuffled"]

T = TypeVar("T")


@runtime_checkable
class RandomSource(Protocol):
    """Anything that returns uniformly random bytes and can derive independent children."""

    def random_bytes(self, n: int) -> bytes:
        """Return ``n`` uniformly random bytes."""
        ...

    def fork(self, label: str) -> RandomSource:
        """Return an independent source for the sub-task named ``label``."""
        ...


class SystemRandom:
    """Operating-system entropy. ``fork`` returns another OS-backed source."""

    def random_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)

    def fork(self, label: str) -> SystemRandom:
        return self

    def __repr__(self) -> str:
        return "SystemRandom()"


class SeededRandom:
    """Deterministic stream: ChaCha20 keyed by SHA-256 of a domain tag and the seed.

    Parameters
    ----------
    seed:
        An ``int`` (>= 0) or ``bytes``. Equal seeds give equal streams.
    """

    _TAG = b"secagg/v1/seeded-random"

    def __init__(self, seed: int | bytes) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | bytes):
            raise ConfigError(f"seed must be int or bytes, got {type(seed).__name__}")
        if isinstance(seed, int):
            if seed < 0:
                raise ConfigError(f"seed must be >= 0, got {seed}")
            seed = seed.to_bytes((seed.bit_length() + 8) // 8, "big")
        self._seed = bytes(seed)
        key = hashlib.sha256(self._TAG + len(self._seed).to_bytes(4, "big") + self._seed).digest()
        self._stream = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()

    def random_bytes(self, n: int) -> bytes:
        if n < 0:
            raise ConfigError(f"cannot draw a negative number of bytes ({n})")
        return self._stream.update(bytes(n))

    def fork(self, label: str) -> SeededRandom:
        encoded = label.encode()
        return SeededRandom(self._seed + b"/" + len(encoded).to_bytes(4, "big") + encoded)

    def __repr__(self) -> str:
        return "SeededRandom(<seed hidden>)"


def as_random_source(rng: RandomSource | int | None) -> RandomSource:
    """Normalise the ``rng``/``seed`` argument of public functions.

    ``None`` means OS entropy, an ``int`` a :class:`SeededRandom`, a source is returned as is.
    """
    if rng is None:
        return SystemRandom()
    if isinstance(rng, int) and not isinstance(rng, bool):
        return SeededRandom(rng)
    if isinstance(rng, RandomSource):
        return rng
    raise ConfigError(f"rng must be a RandomSource, an int seed or None, got {type(rng).__name__}")


def shuffled(items: Iterable[T], rng: RandomSource) -> list[T]:
    """A uniformly random permutation of ``items``: Fisher-Yates with exact
    (rejection-sampled) uniform indices drawn from ``rng``."""
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        bound = (1 << 32) - ((1 << 32) % (i + 1))
        while True:
            r = int.from_bytes(rng.random_bytes(4), "big")
            if r < bound:
                break
        j = r % (i + 1)
        out[i], out[j] = out[j], out[i]
    return out

"""The content-addressed store interface (DESIGN.md §5).

A store maps a CID to bytes. ``get`` never returns bytes that do not match the CID it was
asked for: a store (or a daemon) that hands back other bytes raises
:class:`~secagg.store.errors.IntegrityError`. Large blobs (a CKKS update is hundreds of MB)
move as iterators of chunks with :meth:`Store.put_stream` and :meth:`Store.get_stream`.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

from . import cid as cids
from .errors import IntegrityError

CHUNK = 1 << 20  # bytes per chunk when streaming


class Store(ABC):
    """put / get / pin / has over CIDv1 (sha2-256)."""

    def put(self, data: bytes) -> str:
        """Stores ``data``; returns its CID (canonical base32 string)."""
        return self.put_stream([data])

    @abstractmethod
    def put_stream(self, chunks: Iterable[bytes]) -> str:
        """Stores the concatenation of ``chunks`` without holding it in memory."""

    def get(self, cid: str | bytes) -> bytes:
        """The bytes named by ``cid``, verified against it."""
        return b"".join(self.get_stream(cid))

    @abstractmethod
    def get_stream(self, cid: str | bytes) -> Iterator[bytes]:
        """The bytes named by ``cid`` as chunks.

        Every chunk is verified before it is yielded where the CID allows it (IPFS DAGs,
        block by block); for a ``raw`` CID the whole blob is hashed, so the last chunk is
        held back and :class:`IntegrityError` raised in its place if the hash is wrong:
        discard what was read when the iteration raises.
        """

    @abstractmethod
    def has(self, cid: str | bytes) -> bool:
        """Whether this store holds ``cid`` (without fetching it from elsewhere)."""

    @abstractmethod
    def pin(self, cid: str | bytes) -> None:
        """Keeps ``cid`` from garbage collection (raises NotFoundError if absent)."""


def verified_raw_stream(cid: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Yields ``chunks``, holding back the last one until sha256 of all matches ``cid``."""
    _, digest = cids.parse(cid)
    h = hashlib.sha256()
    held: bytes | None = None
    for chunk in chunks:
        if not chunk:
            continue
        if held is not None:
            yield held
        h.update(chunk)
        held = chunk
    if h.digest() != digest:
        raise IntegrityError(f"the bytes stored under {cid} do not hash to it")
    if held is not None:
        yield held

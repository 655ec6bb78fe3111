"""An in-process store: a dict from CID to bytes (the embedded default for tests)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from . import cid as cids
from .base import CHUNK, Store, verified_raw_stream
from .errors import NotFoundError


class MemoryStore(Store):
    """Blobs in memory, named by CIDv1 raw sha2-256."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._pinned: set[str] = set()

    def put_stream(self, chunks: Iterable[bytes]) -> str:
        h = hashlib.sha256()
        parts = []
        for chunk in chunks:
            h.update(chunk)
            parts.append(bytes(chunk))
        cid = cids.cid_of_digest(h.digest())
        self._blobs.setdefault(cid, b"".join(parts))
        return cid

    def get_stream(self, cid: str | bytes) -> Iterator[bytes]:
        key = cids.normalize(cid)
        try:
            blob = self._blobs[key]
        except KeyError:
            raise NotFoundError(f"{key} is not in this store") from None
        chunks = (blob[i : i + CHUNK] for i in range(0, max(len(blob), 1), CHUNK))
        return verified_raw_stream(key, chunks)

    def has(self, cid: str | bytes) -> bool:
        return cids.normalize(cid) in self._blobs

    def pin(self, cid: str | bytes) -> None:
        key = cids.normalize(cid)
        if key not in self._blobs:
            raise NotFoundError(f"{key} is not in this store")
        self._pinned.add(key)

    @property
    def pinned(self) -> frozenset[str]:
        return frozenset(self._pinned)

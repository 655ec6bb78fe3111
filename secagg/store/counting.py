"""A store wrapper that records what a party reads: CID -> bytes, for download measurements
(``benchmarks/participant_downloads.py``) and tests that check what a party never fetched."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .base import Store
from .cid import normalize

__all__ = ["CountingStore"]


class CountingStore(Store):
    """Passes everything to ``inner`` and adds each blob read to :attr:`reads`."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.reads: dict[str, int] = {}
        """CID (canonical string) -> bytes read, summed over reads."""

    @property
    def bytes_read(self) -> int:
        return sum(self.reads.values())

    def put_stream(self, chunks: Iterable[bytes]) -> str:
        return self.inner.put_stream(chunks)

    def get_stream(self, cid: str | bytes) -> Iterator[bytes]:
        key = normalize(cid)
        for chunk in self.inner.get_stream(cid):
            self.reads[key] = self.reads.get(key, 0) + len(chunk)
            yield chunk

    def has(self, cid: str | bytes) -> bool:
        return self.inner.has(cid)

    def pin(self, cid: str | bytes) -> None:
        self.inner.pin(cid)

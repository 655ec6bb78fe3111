"""A store in a directory: survives restarts, writes atomically.

Layout: ``<root>/blobs/<cid>`` holds the bytes, ``<root>/pins/<cid>`` marks a pin,
``<root>/tmp/`` holds writes in progress. A blob is written to ``tmp/`` while it is hashed,
flushed to disk, then renamed to its CID (``os.replace``, atomic on POSIX): a crash leaves at
worst an orphan in ``tmp/``, never a half-written file under a valid CID. Reads re-hash.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from . import cid as cids
from .base import CHUNK, Store, verified_raw_stream
from .errors import NotFoundError, StoreUnavailableError


class DirectoryStore(Store):
    """Blobs as files under ``root``, named by CIDv1 raw sha2-256."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        try:
            for sub in ("blobs", "pins", "tmp"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(f"cannot use {self.root} as a store: {exc}") from exc

    def _path(self, cid: str | bytes) -> Path:
        return self.root / "blobs" / cids.normalize(cid)

    def put_stream(self, chunks: Iterable[bytes]) -> str:
        h = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp", prefix="put-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            cid = cids.cid_of_digest(h.digest())
            os.replace(tmp, self._path(cid))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return cid

    def get_stream(self, cid: str | bytes) -> Iterator[bytes]:
        key = cids.normalize(cid)
        path = self._path(key)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"{key} is not in {self.root}") from None
        return verified_raw_stream(key, _read_chunks(handle))

    def has(self, cid: str | bytes) -> bool:
        return self._path(cid).is_file()

    def pin(self, cid: str | bytes) -> None:
        key = cids.normalize(cid)
        if not self.has(key):
            raise NotFoundError(f"{key} is not in {self.root}")
        (self.root / "pins" / key).touch()

    def pinned(self) -> frozenset[str]:
        return frozenset(p.name for p in (self.root / "pins").iterdir())


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk

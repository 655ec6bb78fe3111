"""A store in a directory: survives restarts, writes atomically.

Layout: ``<root>/blobs/<cid>`` holds the bytes, ``<root>/pins/<cid>`` marks a pin,
``<root>/tmp/`` holds writes in progress. A blob is written to ``tmp/`` while it is hashed,
flushed to disk, then renamed to its CID (``os.replace``, atomic on POSIX): a crash leaves at
worst an orphan in ``tmp/``, never a half-written file under a valid CID. Reads re-hash.

Each writer holds an exclusive ``flock`` on its file in ``tmp/`` until the rename; the kernel
drops it when the writer dies, even by SIGKILL. Opening a store removes the files in ``tmp/``
that nobody holds (what killed writers left), and leaves the ones another process (or another
store object) is still writing. POSIX only (``fcntl``).
"""

from __future__ import annotations

import fcntl
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
        self.removed_orphans = _remove_orphans(self.root / "tmp")
        """How many partial writes of dead writers opening the store removed from ``tmp/``."""

    def _path(self, cid: str | bytes) -> Path:
        return self.root / "blobs" / cids.normalize(cid)

    def _locked_tmp(self) -> tuple[int, Path]:
        """A new file in ``tmp/``, open and flock-ed by this writer. A store opened between
        the file's creation and the lock may have removed it as an orphan: then try again."""
        while True:
            fd, name = tempfile.mkstemp(dir=self.root / "tmp", prefix="put-")
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.stat(name).st_ino == os.fstat(fd).st_ino:
                    return fd, Path(name)
            except FileNotFoundError:
                pass
            os.close(fd)

    def put_stream(self, chunks: Iterable[bytes]) -> str:
        h = hashlib.sha256()
        fd, tmp = self._locked_tmp()
        try:
            with os.fdopen(fd, "wb") as out:  # closing it releases the lock: rename first
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


def _remove_orphans(tmp: Path) -> int:
    """Remove the files in ``tmp`` whose writer is gone (nobody holds their flock)."""
    removed = 0
    for path in tmp.iterdir():
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # renamed or removed meanwhile
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a live writer holds it
            os.close(fd)
            continue
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:  # not renamed away meanwhile
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
    return removed


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk

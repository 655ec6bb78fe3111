"""A store over any IPFS daemon's HTTP RPC API (kubo in production, js-ipfs in tests).

Plain HTTP with httpx (``ipfshttpclient.connect()`` refuses daemons >= 0.8 by version):
``POST /api/v0/add`` to store (CIDv1, raw leaves, pinned), ``/api/v0/block/get`` to read,
``/api/v0/block/stat`` for :meth:`IpfsStore.has`, ``/api/v0/pin/add`` to pin.

Reads never trust the daemon: a blob is fetched block by block and every block is checked
against the CID that names it before its links are followed or its bytes yielded
(:mod:`secagg.store.dagpb`). A blob that fits in one block (<= 256 KiB) has a ``raw`` CID, the
same as in the embedded stores; larger blobs have the ``dag-pb`` CID of their UnixFS root.

Every request has a timeout; connection failures and timeouts are retried a bounded number
of times with backoff, then raise :class:`StoreUnavailableError`. A streamed ``put`` is not
retried (its body cannot be replayed); ``put(bytes)`` is.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx

from . import cid as cids
from .base import Store
from .dagpb import parse_node
from .errors import (
    IntegrityError,
    NotFoundError,
    StoreError,
    StoreProtocolError,
    StoreUnavailableError,
)

# kubo: "block was not found locally (offline)"; js-ipfs: "... request timed out" (the
# lookup timeout of an offline daemon that does not hold the block)
_NOT_FOUND = ("not found", "could not find", "no such", "does not exist", "timed out")
MAX_DEPTH = 32  # a UnixFS tree of 256 KiB leaves and 174 links per node is ~5 deep for 1 TB


class IpfsStore(Store):
    """Blobs in an IPFS daemon reached at ``url`` (e.g. ``http://127.0.0.1:5001``).

    Parameters
    ----------
    url:
        The daemon's RPC API address.
    timeout:
        Seconds per request (connect, read and write each).
    retries:
        Further attempts after a connection failure or a timeout.
    backoff:
        Seconds before the first retry; doubled each time.
    lookup_timeout:
        Seconds the daemon may look for a block before it counts as absent. Kubo answers
        at once with ``offline=true``; js-ipfs ignores that and waits for the block, so the
        daemon's own ``timeout`` ends the wait.
    sleep:
        Injected for tests.
    transport:
        An httpx transport (default: plain HTTP), e.g. to route through a proxy.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        lookup_timeout: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self._lookup = {"offline": "true", "timeout": f"{int(lookup_timeout * 1000)}ms"}
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.url, timeout=httpx.Timeout(timeout), transport=transport
        )

    def close(self) -> None:
        self._http.close()

    # ---------------------------------------------------------------- interface

    def put(self, data: bytes) -> str:
        return str(self._with_retries(lambda: self.put_stream([data])))

    def put_stream(self, chunks: Iterable[bytes]) -> str:
        reader = _HashingReader(chunks)
        files = {"file": ("blob", reader, "application/octet-stream")}
        params = {"cid-version": "1", "raw-leaves": "true", "hash": "sha2-256", "pin": "true"}
        response = self._request("add", params, files=files, retry=False)
        cid = cids.normalize(_last_hash(response))
        codec, digest = cids.parse(cid)
        if codec == cids.RAW and digest != reader.digest():
            raise IntegrityError(f"the daemon named the blob {cid}, which is not its hash")
        return cid

    def get_stream(self, cid: str | bytes) -> Iterator[bytes]:
        root = cids.normalize(cid)
        block = self._block(root)  # fail here, not at the first next(), when it is missing
        return self._walk(root, 0, block)

    def has(self, cid: str | bytes) -> bool:
        try:
            self._request("block/stat", {"arg": cids.normalize(cid), **self._lookup})
        except NotFoundError:
            return False
        return True

    def pin(self, cid: str | bytes) -> None:
        self._request("pin/add", {"arg": cids.normalize(cid), **self._lookup})

    # ---------------------------------------------------------------- reading

    def _walk(self, cid: str, depth: int, block: bytes | None = None) -> Iterator[bytes]:
        if depth > MAX_DEPTH:
            raise StoreProtocolError(f"the DAG under {cid} is deeper than {MAX_DEPTH}")
        if block is None:
            block = self._block(cid)
        codec, _ = cids.parse(cid)
        if codec == cids.RAW:
            yield block
            return
        node = parse_node(block)
        if node.data:
            yield node.data
        for link in node.links:
            yield from self._walk(cids.normalize(link), depth + 1)

    def _block(self, cid: str) -> bytes:
        response = self._request("block/get", {"arg": cid, **self._lookup})
        cids.verify_block(cid, response.content)
        return response.content

    # ---------------------------------------------------------------- HTTP

    def _with_retries(self, attempt: Callable[[], Any]) -> Any:
        delay = self.backoff
        for remaining in range(self.retries, -1, -1):
            try:
                return attempt()
            except StoreUnavailableError:
                if remaining == 0:
                    raise
                self._sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _request(
        self,
        command: str,
        params: dict[str, str],
        *,
        files: dict[str, Any] | None = None,
        retry: bool = True,
    ) -> httpx.Response:
        def attempt() -> httpx.Response:
            try:
                response = self._http.post(f"/api/v0/{command}", params=params, files=files)
            except httpx.TimeoutException as exc:
                raise StoreUnavailableError(f"IPFS {command} timed out at {self.url}") from exc
            except httpx.TransportError as exc:
                raise StoreUnavailableError(f"no IPFS daemon answers at {self.url}: {exc}") from exc
            if response.status_code != 200:
                raise _error_of(command, response)
            return response

        return self._with_retries(attempt) if retry else attempt()


def _error_of(command: str, response: httpx.Response) -> StoreError:
    try:
        message = str(response.json().get("Message", ""))
    except (ValueError, AttributeError):
        return StoreProtocolError(
            f"IPFS {command} answered {response.status_code} with no JSON error: "
            f"{response.text[:200]!r}"
        )
    if any(marker in message.lower() for marker in _NOT_FOUND):
        return NotFoundError(f"IPFS {command}: {message}")
    return StoreError(f"IPFS {command} failed ({response.status_code}): {message}")


def _last_hash(response: httpx.Response) -> str:
    """The ``Hash`` of the last NDJSON line of an ``add`` response."""
    found = None
    for line in response.text.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise StoreProtocolError(f"IPFS add answered non-JSON: {line[:200]!r}") from exc
        if isinstance(entry, dict) and isinstance(entry.get("Hash"), str):
            found = entry["Hash"]
    if found is None:
        raise StoreProtocolError(f"IPFS add answered no hash: {response.text[:200]!r}")
    return str(found)


class _HashingReader:
    """A file-like view of an iterator of chunks (httpx streams it) that hashes what it
    hands out, without copying a large chunk more than once."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._current = memoryview(b"")
        self._hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        wanted = size
        while wanted != 0:
            if not self._current:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._current = memoryview(chunk)
                continue
            take = len(self._current) if wanted < 0 else min(wanted, len(self._current))
            parts.append(bytes(self._current[:take]))
            self._current = self._current[take:]
            if wanted > 0:
                wanted -= take
        out = b"".join(parts)
        self._hash.update(out)
        return out

    def digest(self) -> bytes:
        return self._hash.digest()

"""One suite for every store (memory, directory, a real js-ipfs daemon), then what is
particular to each: restarts, atomic writes, a daemon that stops or lies."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from secagg.store import (
    DirectoryStore,
    IntegrityError,
    InvalidCidError,
    IpfsNode,
    IpfsStore,
    MemoryStore,
    NotFoundError,
    Store,
    StoreProtocolError,
    StoreUnavailableError,
    cid_of,
    normalize,
    to_bytes,
)
from secagg.store import cid as cids

MB = 1 << 20


@pytest.fixture(scope="module")
def ipfs_node() -> Iterator[IpfsNode]:
    node = IpfsNode()
    node.start()
    yield node
    node.close()


@pytest.fixture(params=["memory", "directory", "ipfs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "directory":
        yield DirectoryStore(tmp_path / "store")
    else:
        node = request.getfixturevalue("ipfs_node")
        client = IpfsStore(node.url, lookup_timeout=0.5)
        yield client
        client.close()


def pseudo_random(size: int, seed: bytes = b"blob") -> Iterator[bytes]:
    """``size`` bytes in 1 MiB chunks (no two blocks alike, so IPFS cannot deduplicate),
    cheap to regenerate for comparison."""
    rng = random.Random(seed)
    for start in range(0, size, MB):
        yield rng.randbytes(min(MB, size - start))


def digest_of(chunks: Iterator[bytes]) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    for chunk in chunks:
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n


# ------------------------------------------------------------------- every store


@pytest.mark.parametrize("data", [b"", b"x", bytes(range(256)) * 4, b"\0" * 200_000])
def test_small_round_trip(store: Store, data: bytes) -> None:
    cid = store.put(data)
    assert cid == cid_of(data)  # CIDv1 raw sha2-256 in every store for one block
    assert store.get(cid) == data
    assert store.get(to_bytes(cid)) == data  # the binary form that goes on chain
    assert store.has(cid)
    store.pin(cid)


def test_100_mb_streams_through(store: Store) -> None:
    size = 100 * MB
    cid = store.put_stream(pseudo_random(size))
    assert digest_of(store.get_stream(cid)) == digest_of(pseudo_random(size))


def test_unknown_and_invalid_cids(store: Store) -> None:
    missing = cid_of(b"never stored")
    assert not store.has(missing)
    with pytest.raises(NotFoundError):
        store.get(missing)
    with pytest.raises(NotFoundError):
        store.pin(missing)
    for bad in ("hello", "bafkreigarbage", b"\x01\x55\x12\x20" + b"\0" * 5, 42):
        with pytest.raises(InvalidCidError):
            store.get(bad)  # type: ignore[arg-type]


def test_same_bytes_same_cid(store: Store) -> None:
    assert store.put(b"twice") == store.put(b"twice") == cid_of(b"twice")


# ------------------------------------------------------------------- CIDs


def test_cid_forms() -> None:
    cid = cid_of(b"hello world")
    assert cid == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"  # ipfs add
    assert len(to_bytes(cid)) == 36 and normalize(to_bytes(cid)) == cid
    v0 = "QmWATWQ7fVPP2EFGu71UkfnqhYXDYH566qy47CnJDgvs8u"  # kubo's CIDv0 of "hello world\n"
    assert cids.parse(v0)[0] == cids.DAG_PB
    with pytest.raises(InvalidCidError):  # an identity multihash, not sha2-256
        cids.parse(b"\x01\x55\x00\x05hello")


# ------------------------------------------------------------------- corruption


def test_memory_store_detects_tampering() -> None:
    store = MemoryStore()
    cid = store.put(b"honest")
    store._blobs[cid] = b"forged"
    with pytest.raises(IntegrityError):
        store.get(cid)


def test_directory_store_detects_a_corrupted_file(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    cid = store.put_stream(pseudo_random(3 * MB))
    path = tmp_path / "blobs" / cid
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    stream = store.get_stream(cid)
    assert len(next(stream)) == MB  # chunks before the last are handed out ...
    next(stream)
    with pytest.raises(IntegrityError):  # ... the last is held back until the hash is checked
        next(stream)


def test_directory_store_survives_a_restart_and_never_half_writes(tmp_path: Path) -> None:
    cid = DirectoryStore(tmp_path).put(b"kept")

    def failing() -> Iterator[bytes]:
        yield b"half a blob"
        raise OSError("disk full")

    store = DirectoryStore(tmp_path)  # a new process on the same directory
    assert store.get(cid) == b"kept"
    with pytest.raises(OSError, match="disk full"):
        store.put_stream(failing())
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == [cid]
    assert list((tmp_path / "tmp").iterdir()) == []
    store.pin(cid)
    assert store.pinned() == {cid}


_KILLED_WRITER = """
import sys, time
from secagg.store.directory import DirectoryStore

def chunks():
    for _ in range(4096):  # 4 GiB at most: it is killed long before
        yield bytes([0xAB]) * (1 << 20)
        time.sleep(0.002)

DirectoryStore(sys.argv[1]).put_stream(chunks())
"""


def _partial_write(tmp: Path, writer: subprocess.Popen[bytes], size: int = 4 * MB) -> Path:
    """The writer's file in ``tmp`` once it holds ``size`` bytes."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert writer.poll() is None, "the writer exited before it was killed"
        for path in tmp.iterdir():
            if path.stat().st_size >= size:
                return path
        time.sleep(0.01)
    raise AssertionError("the writer wrote nothing in 60 s")


def test_a_directory_store_killed_mid_write_leaves_no_blob_and_is_cleaned_when_opened(
    tmp_path: Path,
) -> None:
    """A real SIGKILL while a process writes a large blob: the partial file stays in ``tmp/``
    (no blob under any CID), a store opened while the writer lives leaves it alone, and the
    next store opened after the kill removes it."""
    kept = DirectoryStore(tmp_path).put(b"kept")
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)])
    try:
        partial = _partial_write(tmp_path / "tmp", writer)
        assert DirectoryStore(tmp_path).removed_orphans == 0  # a live writer's file stays
        assert partial.exists()
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(timeout=30) == -signal.SIGKILL
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert partial.stat().st_size >= 4 * MB  # what the kill left behind
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == [kept]
    store = DirectoryStore(tmp_path)  # the restart
    assert store.removed_orphans == 1
    assert list((tmp_path / "tmp").iterdir()) == []
    assert store.get(kept) == b"kept"
    assert store.get(store.put(b"after")) == b"after"


class LyingDaemon(httpx.BaseTransport):
    """Forwards to the real daemon and flips the last byte of every ``block/get`` body whose
    path matches ``target`` (all blocks when empty)."""

    def __init__(self, url: str, target: str = "") -> None:
        self._upstream = httpx.HTTPTransport()
        self.url, self.target = url, target

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._upstream.handle_request(request)
        response.read()
        if request.url.path.endswith("block/get") and self.target in str(request.url):
            body = bytearray(response.content)
            body[-1] ^= 1
            return httpx.Response(200, content=bytes(body))
        return httpx.Response(response.status_code, content=response.content)


def test_a_daemon_that_returns_other_bytes_is_caught(ipfs_node: IpfsNode) -> None:
    honest = IpfsStore(ipfs_node.url)
    small = honest.put(b"a single block")
    large = honest.put_stream(pseudo_random(3 * MB, b"dag"))
    assert cids.parse(large)[0] == cids.DAG_PB  # a UnixFS DAG of 256 KiB raw leaves
    lying = IpfsStore(ipfs_node.url, transport=LyingDaemon(ipfs_node.url))
    with pytest.raises(IntegrityError):
        lying.get(small)
    with pytest.raises(IntegrityError):  # the root block is checked before its links
        lying.get(large)
    root_links = [normalize(link) for link in _links(honest, large)]
    leaf_liar = IpfsStore(ipfs_node.url, transport=LyingDaemon(ipfs_node.url, root_links[5]))
    stream = leaf_liar.get_stream(large)
    with pytest.raises(IntegrityError):  # a leaf deep in the file is checked too
        for _ in stream:
            pass


def _links(store: IpfsStore, cid: str) -> tuple[bytes, ...]:
    from secagg.store.dagpb import parse_node

    return parse_node(store._block(cid)).links


def test_a_daemon_that_answers_garbage(ipfs_node: IpfsNode) -> None:
    def garbage(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/add"):
            return httpx.Response(200, text="<html>not json</html>")
        return httpx.Response(500, text="Internal Server Error")

    store = IpfsStore(ipfs_node.url, transport=httpx.MockTransport(garbage))
    with pytest.raises(StoreProtocolError):
        store.put(b"x")
    with pytest.raises(StoreProtocolError):
        store.get(cid_of(b"x"))

    def wrong_name(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"Name": "blob", "Hash": cid_of(b"other"), "Size": "9"})

    with pytest.raises(IntegrityError):
        IpfsStore(ipfs_node.url, transport=httpx.MockTransport(wrong_name)).put(b"x")


def test_a_stopped_daemon_is_a_named_error_and_loses_nothing(tmp_path: Path) -> None:
    node = IpfsNode(tmp_path / "repo")
    node.start()
    port = node.port
    waits: list[float] = []
    store = IpfsStore(node.url, retries=3, backoff=0.01, sleep=waits.append)
    kept = [store.put(b"first"), store.put_stream(pseudo_random(2 * MB, b"second"))]
    reading = store.get_stream(kept[1])
    next(reading)
    node.stop()  # mid-read
    with pytest.raises(StoreUnavailableError):
        for _ in reading:
            pass
    assert waits == [0.01, 0.02, 0.04]  # bounded retries with backoff, then the error
    with pytest.raises(StoreUnavailableError):
        store.get(kept[0])
    with pytest.raises(StoreUnavailableError):
        store.put(b"third")
    node.start(port=port)
    try:
        assert store.get(kept[0]) == b"first"
        assert digest_of(store.get_stream(kept[1])) == digest_of(pseudo_random(2 * MB, b"second"))
    finally:
        node.close()

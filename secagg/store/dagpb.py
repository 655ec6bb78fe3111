"""Just enough of IPFS's dag-pb and UnixFS protobufs to walk a file's DAG and verify it.

A file added to IPFS with ``raw-leaves`` and CIDv1 is a tree: ``raw`` leaves hold the bytes,
``dag-pb`` inner nodes list their children's CIDs (``PBNode.Links``) and carry a UnixFS
``Data`` message. :class:`~secagg.store.ipfs.IpfsStore` fetches each block, checks it against
its CID and then parses it here, so a daemon cannot substitute any part of a blob.

Schemas (https://ipld.io/specs/codecs/dag-pb/spec/, UnixFS v1):

    PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }
    PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }
    Data   { DataType Type = 1; optional bytes Data = 2; optional uint64 filesize = 3; ... }
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .errors import StoreProtocolError

UNIXFS_RAW = 0
UNIXFS_FILE = 2


@dataclass(frozen=True)
class Node:
    """A dag-pb node: its children's binary CIDs, in order, and the file bytes it holds."""

    links: tuple[bytes, ...]
    data: bytes


def parse_node(block: bytes) -> Node:
    """Parses a dag-pb block that is a UnixFS file node; anything else raises
    :class:`StoreProtocolError`."""
    links: list[bytes] = []
    unixfs: bytes | None = None
    for field, value in _fields(block):
        if field == 2 and isinstance(value, bytes):
            link_hash = next((v for f, v in _fields(value) if f == 1), None)
            if not isinstance(link_hash, bytes):
                raise StoreProtocolError("a dag-pb link without a hash")
            links.append(link_hash)
        elif field == 1 and isinstance(value, bytes):
            unixfs = value
    if unixfs is None:
        raise StoreProtocolError("a dag-pb node without UnixFS data is not a file")
    kind, data = None, b""
    for field, value in _fields(unixfs):
        if field == 1 and isinstance(value, int):
            kind = value
        elif field == 2 and isinstance(value, bytes):
            data = value
    if kind not in (UNIXFS_RAW, UNIXFS_FILE):
        raise StoreProtocolError(f"UnixFS node of type {kind} is not a file")
    return Node(tuple(links), data)


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: varints as int, length-delimited as
    bytes; fixed-width fields are skipped."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield field, value
        elif wire == 2:
            length, i = _varint(buf, i)
            if i + length > n:
                raise StoreProtocolError("truncated protobuf field")
            yield field, buf[i : i + length]
            i += length
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            if i > n:
                raise StoreProtocolError("truncated protobuf field")
        else:
            raise StoreProtocolError(f"protobuf wire type {wire} is not valid here")


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if i >= len(buf) or shift > 63:
            raise StoreProtocolError("truncated or overlong protobuf varint")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7

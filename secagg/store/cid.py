"""Content identifiers: CIDv1 with a sha2-256 multihash (py-cid does the multiformats).

Two codecs occur:

- ``raw`` (0x55): the digest is sha256 of the bytes themselves. The embedded stores name
  every blob this way, and IPFS names a blob that fits in one block (<= 256 KiB) the same.
- ``dag-pb`` (0x70): the root of an IPFS UnixFS DAG; the digest is sha256 of the root
  *block*, whose links name the next blocks. :class:`~secagg.store.ipfs.IpfsStore` verifies
  such a blob block by block.

CIDs are handled as their canonical string (multibase base32, ``bafk...``/``bafy...``);
:func:`to_bytes` gives the binary form that goes on chain.
"""

from __future__ import annotations

import hashlib
import hmac

import cid as pycid
import multihash

from .errors import IntegrityError, InvalidCidError

RAW = "raw"
DAG_PB = "dag-pb"


def cid_of(data: bytes) -> str:
    """The CIDv1 (raw, sha2-256) of ``data``."""
    return _encode(RAW, hashlib.sha256(data).digest())


def cid_of_digest(digest: bytes, codec: str = RAW) -> str:
    return _encode(codec, digest)


def _encode(codec: str, digest: bytes) -> str:
    mh = multihash.encode(digest, "sha2-256")
    return str(pycid.CIDv1(codec, mh).encode("base32").decode())


def parse(value: str | bytes) -> tuple[str, bytes]:
    """(codec, sha256 digest) of a CID string or binary CID (v1; v0 reads as dag-pb);
    anything else raises :class:`InvalidCidError`."""
    try:
        if isinstance(value, bytes):
            parsed = pycid.from_bytes(value)
        elif isinstance(value, str):
            parsed = pycid.make_cid(value)
        else:
            raise InvalidCidError(f"a CID is a str or bytes, got {type(value).__name__}")
        decoded = multihash.decode(parsed.multihash)
    except InvalidCidError:
        raise
    except Exception as exc:
        raise InvalidCidError(f"not a CID: {value!r:.80}: {exc}") from exc
    if decoded.name != "sha2-256" or len(decoded.digest) != 32:
        raise InvalidCidError(f"only sha2-256 CIDs are handled: {value!r:.80}")
    if parsed.version == 0:  # kubo's default "Qm..." names: dag-pb, same multihash
        return DAG_PB, bytes(decoded.digest)
    if parsed.codec not in (RAW, DAG_PB):
        raise InvalidCidError(f"codec {parsed.codec} is not raw or dag-pb: {value!r:.80}")
    return str(parsed.codec), bytes(decoded.digest)


def normalize(value: str | bytes) -> str:
    """The canonical string of a CID (base32), from any encoding of it."""
    codec, digest = parse(value)
    return _encode(codec, digest)


def to_bytes(value: str | bytes) -> bytes:
    """The binary CID (36 bytes), the form stored in contract events."""
    codec, digest = parse(value)
    return bytes(pycid.CIDv1(codec, multihash.encode(digest, "sha2-256")).buffer)


def verify_block(value: str, block: bytes) -> None:
    """Raises :class:`IntegrityError` unless sha256(``block``) is the CID's digest."""
    _, digest = parse(value)
    if not hmac.compare_digest(hashlib.sha256(block).digest(), digest):
        raise IntegrityError(f"the bytes returned for {value} do not hash to it")

"""Content-addressed storage: masked vectors, ciphertexts, share bundles and models live
here, and only their CIDs go on chain (DESIGN.md §5).

- :class:`MemoryStore`, :class:`DirectoryStore`: the embedded defaults (CIDv1, raw,
  sha2-256);
- :class:`IpfsStore`: any IPFS daemon's HTTP RPC API (kubo; :class:`IpfsNode` starts a
  js-ipfs one for tests and development).

``get`` verifies what it returns against the CID; a mismatch raises
:class:`~secagg.store.errors.IntegrityError`. Like :mod:`secagg.chain`, this package is a
driver layer that does I/O.
"""

from .base import Store
from .cid import cid_of, normalize, to_bytes
from .counting import CountingStore
from .directory import DirectoryStore
from .errors import (
    IntegrityError,
    InvalidCidError,
    NotFoundError,
    StoreError,
    StoreProtocolError,
    StoreUnavailableError,
)
from .ipfs import IpfsStore
from .ipfs_node import IpfsNode
from .memory import MemoryStore

__all__ = [
    "CountingStore",
    "DirectoryStore",
    "IntegrityError",
    "InvalidCidError",
    "IpfsNode",
    "IpfsStore",
    "MemoryStore",
    "NotFoundError",
    "Store",
    "StoreError",
    "StoreProtocolError",
    "StoreUnavailableError",
    "cid_of",
    "normalize",
    "to_bytes",
]

"""The model blob: global weights after a round, with what is needed to check them.

Layout (little-endian)::

    b"SAGM" | version u8 | header length u32 | header (canonical JSON) | d float32 weights

The header holds the round, the survivor ids U, FedAvg's denominator sum_{u in U} w_u and,
for HE tasks, the CID of the decrypted sum the key holder published (the step from the
previous model cannot be recomputed from ciphertexts without the secret key). Equal models
give equal bytes, so the sha256 on chain pins the weights and the header.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ModelFormatError

__all__ = ["ModelBlob"]

MAGIC = b"SAGM"
VERSION = 1
_HEAD = struct.Struct("<4sBI")
MAX_HEADER = 1 << 20


@dataclass(frozen=True, eq=False)
class ModelBlob:
    """Flat float32 weights of a round's global model.

    Parameters
    ----------
    round:
        The round that produced it (0: the initial model).
    weights:
        The flat parameters (float32).
    survivors:
        U of the round, as client ids (empty for round 0).
    survivor_weight:
        sum_{u in U} w_u, read from the secure sum (0.0 for round 0).
    aggregate:
        HE tasks: CID of the key holder's decrypted sum; None otherwise.
    """

    round: int
    weights: npt.NDArray[np.float32] = field(repr=False)
    survivors: tuple[int, ...] = ()
    survivor_weight: float = 0.0
    aggregate: str | None = None

    def header(self) -> dict[str, Any]:
        return {
            "aggregate": self.aggregate,
            "dim": len(self.weights),
            "round": self.round,
            "survivor_weight": self.survivor_weight,
            "survivors": list(self.survivors),
        }

    def encode(self) -> bytes:
        head = json.dumps(self.header(), sort_keys=True, separators=(",", ":")).encode()
        body = np.ascontiguousarray(self.weights, dtype="<f4").tobytes()
        return _HEAD.pack(MAGIC, VERSION, len(head)) + head + body

    def sha256(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()

    @classmethod
    def decode(cls, data: bytes) -> ModelBlob:
        if len(data) < _HEAD.size:
            raise ModelFormatError(f"a model blob has at least {_HEAD.size} bytes")
        magic, version, size = _HEAD.unpack_from(data)
        if magic != MAGIC or version != VERSION:
            raise ModelFormatError(f"not a version-{VERSION} model blob")
        if size > MAX_HEADER or _HEAD.size + size > len(data):
            raise ModelFormatError(f"header length {size} exceeds the blob")
        try:
            head = json.loads(data[_HEAD.size : _HEAD.size + size])
            dim, rnd = int(head["dim"]), int(head["round"])
            survivors = tuple(int(u) for u in head["survivors"])
            weight = float(head["survivor_weight"])
            aggregate = head["aggregate"]
        except (ValueError, TypeError, KeyError, OverflowError) as exc:  # "dim": Infinity
            raise ModelFormatError(f"malformed model header: {exc}") from exc
        body = data[_HEAD.size + size :]
        if len(body) != 4 * dim:
            raise ModelFormatError(f"expected {dim} float32 weights, got {len(body)} bytes")
        if aggregate is not None and not isinstance(aggregate, str):
            raise ModelFormatError("the aggregate CID must be a string")
        weights = np.frombuffer(body, dtype="<f4").astype(np.float32)
        return cls(rnd, weights, survivors, weight, aggregate)

"""Slot packing: many non-negative integers of ``width`` bits in one big integer.

Value j of a group of k sits at bits [j w, (j+1) w): the integer is sum_j v_j 2^(j w). Adding
packed integers adds every slot at once, as long as no slot sum reaches 2^w (no carry).
Packing goes through numpy bit arrays, a block of groups at a time, so no Python loop runs
per value.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["pack", "unpack"]

_BLOCK = 256
"""Groups packed per numpy pass (bounds the temporary bit array to a few MB)."""


def _blocks(count: int) -> Iterator[slice]:
    for start in range(0, count, _BLOCK):
        yield slice(start, min(start + _BLOCK, count))


def pack(values: npt.NDArray[np.uint64], width: int, per_int: int) -> list[int]:
    """Pack ``values`` (each < 2^width) into ceil(len / per_int) integers, zero-padded."""
    groups = -(-len(values) // per_int)
    padded = np.zeros(groups * per_int, dtype=np.uint64)
    padded[: len(values)] = values
    shifts = np.arange(width, dtype=np.uint64)
    out: list[int] = []
    for block in _blocks(groups):
        part = padded[block.start * per_int : block.stop * per_int]
        bits = ((part[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
        rows = np.packbits(bits.reshape(-1, per_int * width), axis=1, bitorder="little")
        out.extend(int.from_bytes(row.tobytes(), "little") for row in rows)
    return out


def unpack(ints: Sequence[int], width: int, per_int: int) -> npt.NDArray[np.uint64]:
    """Inverse of :func:`pack`: ``len(ints) * per_int`` slot values. Bits above the top slot
    (never set by honest packing) saturate that slot to 2^64 - 1, so a range check sees them.
    """
    nbytes = -(-(per_int * width) // 8)
    shifts = np.arange(width, dtype=np.uint64)
    out = np.empty(len(ints) * per_int, dtype=np.uint64)
    top = per_int * width
    for block in _blocks(len(ints)):
        chunk = ints[block]
        raw = b"".join((x & ((1 << top) - 1)).to_bytes(nbytes, "little") for x in chunk)
        rows = np.frombuffer(raw, dtype=np.uint8).reshape(len(chunk), nbytes)
        bits = np.unpackbits(rows, axis=1, count=top, bitorder="little")
        values = (bits.reshape(-1, width).astype(np.uint64) << shifts).sum(axis=1, dtype=np.uint64)
        for i, x in enumerate(chunk):
            if x >> top:
                values[(i + 1) * per_int - 1] = np.iinfo(np.uint64).max
        out[block.start * per_int : block.stop * per_int] = values
    return out

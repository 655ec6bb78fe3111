"""Checks shared by several test modules."""

from __future__ import annotations

from typing import Any

import numpy as np

SMALL_ORDER_POINT = bytes.fromhex(
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"
)
"""An X25519 public key of order 8 (RFC 7748 §6.1): every agreement with it is all zero."""


def near_zero_fraction(vector: np.ndarray[Any, Any], quant_bits: int) -> float:
    """How many ring entries lie where a plain encoding of a clipped value lies."""
    signed = vector.astype(np.uint32).view(np.int32).astype(np.int64)
    return float(np.mean(np.abs(signed) < 2 ** (quant_bits - 1)))

"""Checks shared by several test modules."""

from __future__ import annotations

from typing import Any

import numpy as np


def near_zero_fraction(vector: np.ndarray[Any, Any], quant_bits: int) -> float:
    """How many ring entries lie where a plain encoding of a clipped value lies."""
    signed = vector.astype(np.uint32).view(np.int32).astype(np.int64)
    return float(np.mean(np.abs(signed) < 2 ** (quant_bits - 1)))

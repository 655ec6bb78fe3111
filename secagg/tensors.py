"""Flatten model updates (an array, a tensor, or a list of them) to one vector and back.

Protocols work on one flat vector of d entries. Users hand in whatever their stack has: a
numpy array, a torch tensor on any device, or a list of tensors (one per model layer).
:func:`flatten` records the structure in a :class:`TensorSpec`; :func:`unflatten` rebuilds the
same structure, dtype and device from a flat float64 vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from secagg.errors import InvalidInputError
from secagg.ring import is_torch

__all__ = ["TensorSpec", "flatten", "unflatten"]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """The structure of an update: kind, per-part shapes and dtypes, device, list or single."""

    kind: str  # "numpy" | "torch"
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[Any, ...]
    device: Any
    is_sequence: bool

    @property
    def size(self) -> int:
        """d, the total number of entries."""
        return sum(int(np.prod(s, dtype=np.int64)) for s in self.shapes)


def _parts(update: Any) -> tuple[list[Any], bool]:
    if isinstance(update, np.ndarray) or is_torch(update):
        return [update], False
    if isinstance(update, Sequence) and not isinstance(update, str | bytes) and update:
        return list(update), True
    raise InvalidInputError(
        f"an update must be a numpy array, a torch tensor, or a non-empty list of them; "
        f"got {type(update).__name__}"
    )


def flatten(update: Any) -> tuple[Any, TensorSpec]:
    """One flat real vector (numpy, or torch on the update's device) and its spec.

    The vector is float32 when every part is float32 (the quantizer widens it exactly, so an
    update is not copied to float64 only to be read once), float64 otherwise. A single 1-D
    part is returned as it is, not copied: encoders only read it.
    """
    parts, is_seq = _parts(update)
    if all(is_torch(p) for p in parts):
        import torch

        devices = {p.device for p in parts}
        if len(devices) != 1:
            raise InvalidInputError(f"all tensors of an update must share a device, got {devices}")
        for p in parts:
            if p.is_complex() or p.dtype == torch.bool:
                raise InvalidInputError(f"update tensors must be real numbers, got {p.dtype}")
        wide = torch.float32 if all(p.dtype == torch.float32 for p in parts) else torch.float64
        if len(parts) == 1 and parts[0].ndim == 1 and parts[0].dtype == wide:
            flat = parts[0].detach()
        else:
            flat = torch.cat([p.detach().reshape(-1).to(wide) for p in parts])
        spec = TensorSpec(
            "torch",
            tuple(tuple(p.shape) for p in parts),
            tuple(p.dtype for p in parts),
            devices.pop(),
            is_seq,
        )
        return flat, spec
    if all(isinstance(p, np.ndarray) for p in parts):
        for p in parts:
            if p.dtype.kind not in "fiu":
                raise InvalidInputError(f"update arrays must be real numbers, got {p.dtype}")
        spec = TensorSpec(
            "numpy", tuple(p.shape for p in parts), tuple(p.dtype for p in parts), None, is_seq
        )
        same = all(p.dtype == np.float32 for p in parts)
        host: np.dtype[Any] = np.dtype(np.float32 if same else np.float64)
        if len(parts) == 1 and parts[0].ndim == 1 and parts[0].dtype == host:
            return parts[0], spec
        return np.concatenate([p.reshape(-1).astype(host, copy=False) for p in parts]), spec
    raise InvalidInputError("an update must not mix numpy arrays and torch tensors")


def unflatten(flat: Any, spec: TensorSpec) -> Any:
    """Rebuild the structure of ``spec`` from a flat vector of ``spec.size`` entries.

    Floating parts keep their dtype; integer parts become float64 (a sum of integers
    quantized in fixed point is not an integer).
    """
    if len(flat) != spec.size:
        raise InvalidInputError(f"flat vector has {len(flat)} entries, spec has {spec.size}")
    parts = []
    offset = 0
    for shape, dtype in zip(spec.shapes, spec.dtypes, strict=True):
        count = int(np.prod(shape, dtype=np.int64))
        chunk = flat[offset : offset + count].reshape(shape)
        offset += count
        if spec.kind == "torch":
            target = dtype if dtype.is_floating_point else chunk.dtype
            parts.append(chunk.to(device=spec.device, dtype=target))
        else:
            parts.append(chunk.astype(dtype if dtype.kind == "f" else np.float64))
    return parts if spec.is_sequence else parts[0]

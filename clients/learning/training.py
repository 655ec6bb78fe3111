"""Pluggable local training for ``secagg participant``, and the local data files it reads.

A training entry point is a function ``module:function`` with this signature (like Flower's
``@app.train()``: weights in, weights and example count out)::

    def train(weights: numpy.ndarray, data: pathlib.Path, context: TrainContext)
            -> tuple[numpy.ndarray, int]

``weights`` is the global model, flat float32 (the task's ``dim - 1`` entries); the function
returns its locally trained weights (same shape) and n_u, the number of examples it trained
on. ``data`` is the participant's ``--data`` path, untouched: the function reads it itself, and
nothing of it leaves the process. ``context`` says the round, a shuffling seed drawn from the
participant's secret randomness, and the task's public recipe (``context.spec``: model,
epochs, lr, batch size). The participant computes Delta_u = trained - weights and encodes it;
with distributed DP it clips Delta_u itself.

Without ``--train`` the participant runs the task's own recipe (``spec.model`` trained with
:class:`~secagg.clients.learning.trainer.Trainer`) on a shard file written by :func:`save_shard`
(``secagg data digits`` writes one per client).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ServiceError

if TYPE_CHECKING:
    import torch

    from ..agents.task import TaskSpec
    from .trainer import Shard

__all__ = ["TrainContext", "TrainFn", "load_shard", "load_train", "save_shard"]


@dataclass(frozen=True)
class TrainContext:
    """What a training entry point is told besides the weights and its data path.

    Attributes
    ----------
    round:
        The round being trained for (1-based).
    seed:
        A seed for data shuffling, from the participant's secret randomness.
    spec:
        The task's public description (model, epochs, lr, batch_size, total_samples).
    device:
        Where the participant trains (CUDA when available, unless told otherwise).
    """

    round: int
    seed: int
    spec: TaskSpec
    device: torch.device | None = None


TrainFn = Callable[[np.ndarray, Path, TrainContext], tuple[np.ndarray, int]]


def load_train(spec: str) -> TrainFn:
    """The function named ``module:function`` (``module`` importable from ``sys.path``).

    Raises
    ------
    ServiceError
        The name is malformed, the module does not import, or the attribute is not callable.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ServiceError(f"--train is module:function, not {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ServiceError(f"--train {spec}: cannot import {module_name}: {exc}") from exc
    fn: Any = getattr(module, attribute, None)
    if not callable(fn):
        raise ServiceError(f"--train {spec}: {module_name} has no function {attribute}")
    return fn  # type: ignore[no-any-return]


def save_shard(shard: Shard, path: str | Path) -> Path:
    """Writes ``shard`` as ``.npz`` with ``x`` (float32 images) and ``y`` (int64 labels)."""
    target = Path(path)
    with target.open("wb") as out:
        np.savez(out, x=shard.x.numpy().astype(np.float32), y=shard.y.numpy().astype(np.int64))
    return target


def load_shard(path: str | Path) -> Shard:
    """The shard in ``path`` (an ``.npz`` from :func:`save_shard`; no pickles are loaded).

    Raises
    ------
    ServiceError
        The file is missing or not two arrays ``x`` (n, ...) and ``y`` (n,).
    """
    import torch

    from .trainer import Shard

    try:
        with np.load(Path(path), allow_pickle=False) as data:
            x, y = np.asarray(data["x"], np.float32), np.asarray(data["y"], np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise ServiceError(f"cannot read the data shard {path}: {exc}") from exc
    if x.ndim < 2 or y.shape != (len(x),) or len(x) == 0:
        raise ServiceError(f"{path}: x is (n, ...) and y is (n,) with n >= 1")
    return Shard(torch.from_numpy(x), torch.from_numpy(y))

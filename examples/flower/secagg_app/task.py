"""The example's learning task: scikit-learn's digits (shipped offline), split non-IID across
the SuperNodes, and a small PyTorch MLP trained with local SGD (CUDA when available).

torch and the trainer are imported inside the functions, not at module import: under
``flwr run`` every message starts a fresh ClientApp process, and only the input phase trains.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from secagg.clients.learning.trainer import Federation

ALPHA = 0.5  # Dirichlet concentration of the split: small values give each node few classes


@cache
def federation(num_partitions: int, seed: int) -> Federation:
    from secagg.clients.learning.trainer import split_digits

    return split_digits(num_partitions, alpha=ALPHA, seed=seed)


def initial_weights(seed: int) -> list[np.ndarray]:
    from secagg.clients.learning.trainer import get_params, make_model

    return [p.numpy() for p in get_params(make_model("mlp", seed=seed))]


def train(
    weights: list[np.ndarray], partition: int, num_partitions: int, *, seed: int, round: int
) -> tuple[list[np.ndarray], int]:
    """Local SGD on one partition: (trained weights, number of examples)."""
    import torch

    from secagg.clients.learning.trainer import Trainer, make_model

    shard = federation(num_partitions, seed).clients[partition]
    start = [torch.from_numpy(w.copy()) for w in weights]
    trainer = Trainer(make_model("mlp", seed=seed))
    delta = trainer.local_update(start, shard, seed=seed * 100_003 + round * 1_009 + partition)
    trained = [(s + d.cpu()).numpy() for s, d in zip(start, delta, strict=True)]
    return trained, len(shard)


def accuracy(weights: list[np.ndarray], num_partitions: int, seed: int) -> float:
    import torch

    from secagg.clients.learning.trainer import Trainer, make_model

    trainer = Trainer(make_model("mlp", seed=seed))
    params = [torch.from_numpy(w.copy()) for w in weights]
    return float(trainer.accuracy(params, federation(num_partitions, seed).test))


def total_examples(num_partitions: int, seed: int) -> int:
    """N: the training examples of all nodes. Public here, as FedAvg's weights w_u = n_u / N
    need it; the secure sum then reveals only sum_U w_u, never one node's n_u."""
    return sum(len(s) for s in federation(num_partitions, seed).clients.values())

"""A deterministic training entry point for the multi-process tests (``--train
tests.multiprocess_training:full_batch``): the task's recipe with one batch of the whole
shard and a fixed shuffle seed, so plain FedAvg over the same survivors can be recomputed
exactly in the test process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from secagg.clients.learning.trainer import (
    Params,
    Trainer,
    flatten_params,
    make_model,
    unflatten_params,
)
from secagg.clients.learning.training import TrainContext, load_shard


def local_step(weights: np.ndarray, data: Path, model: str, epochs: int, lr: float) -> Params:
    shard = load_shard(data)
    trainer = Trainer(make_model(model), epochs=epochs, lr=lr, batch_size=len(shard),
                      device=torch.device("cpu"))  # fmt: skip
    like = [p.detach() for p in trainer.model.parameters()]
    start = unflatten_params(torch.from_numpy(np.array(weights)), like)
    return trainer.local_update(start, shard, seed=0)


def full_batch(weights: np.ndarray, data: Path, context: TrainContext) -> tuple[np.ndarray, int]:
    spec = context.spec
    delta = flatten_params(local_step(weights, data, spec.model, spec.epochs, spec.lr))
    return weights + delta.numpy(), len(load_shard(data))

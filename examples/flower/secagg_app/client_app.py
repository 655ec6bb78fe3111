"""The ClientApp: an ordinary Flower train function plus one mod, ``SecAggMod``.

Under ``flwr run`` each message is handled by a fresh ``flwr-clientapp`` process that imports
this module, so it imports only what every phase needs; the training code (torch, the trainer,
the digits split) is imported in :func:`train`, which runs in the protocol's input phase only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from secagg.clients.flower import SECURE_PROTOCOLS, SecAggMod


def train(msg: Message, context: Context) -> Message:
    """Local SGD on this node's partition; reply with the trained weights and n_u."""
    from secagg_app import task

    partition = int(context.node_config["partition-id"])
    num_partitions = int(context.node_config["num-partitions"])
    config = msg.content.config_records["config"]
    weights = msg.content.array_records["arrays"].to_numpy_ndarrays()
    trained, n = task.train(
        weights,
        partition,
        num_partitions,
        seed=int(config["data-seed"]),  # type: ignore[arg-type]
        round=int(config["round"]),  # type: ignore[arg-type]
    )
    content = RecordDict(
        {"arrays": ArrayRecord(trained), "metrics": MetricRecord({"num-examples": n})}
    )
    return Message(content, reply_to=msg)


@dataclass(frozen=True)
class SaveInput:
    """For run.py's comparison with ``secagg.simulate`` only: writes each node's (x, w) to
    ``<directory>/<round>-<client id>.npy``. The ServerApp never sees it."""

    directory: str

    def __call__(self, client_id: int, round: int, x: np.ndarray, w: float) -> None:
        np.save(Path(self.directory) / f"{round}-{client_id}.npy", np.append(x, w))


def make_client_app(
    *,
    seed: int | None = None,
    save_inputs: str | None = None,
    protocols: tuple[str, ...] = SECURE_PROTOCOLS,
) -> ClientApp:
    """``seed``: reproducible node secrets (fresh each round), to compare with
    ``secagg.simulate(seed=simulate_seed(seed, round))``;
    leave it None in a deployment (each node then draws its secrets from OS entropy).
    ``protocols``: what the nodes agree to run (``plain`` only when named here)."""
    tap = SaveInput(save_inputs) if save_inputs else None
    app = ClientApp(mods=[SecAggMod(protocols, seed=seed, on_input=tap)])
    app.train()(train)
    return app


app = make_client_app()  # a deployment's ClientApp: secrets from OS entropy

"""The ServerApp: FedAvg rounds, each one a secure aggregation over the Grid."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import task
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from secagg.clients.flower import FlowerRoundResult, SecureAggregation


@dataclass
class History:
    """What the ServerApp learnt, round by round (for run.py's report)."""

    results: list[FlowerRoundResult] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def make_server_app(
    protocol: str, *, num_nodes: int, rounds: int, seed: int, timeout: float, **config: Any
) -> tuple[ServerApp, History]:
    history = History()
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        while len(list(grid.get_node_ids())) < num_nodes:  # simulation: nodes come up
            time.sleep(0.1)
        secure = SecureAggregation(
            protocol,
            timeout=timeout,
            max_examples=task.total_examples(num_nodes, seed),  # w_u = n_u / N
            seed=seed,  # reproducible run; leave it out in a deployment
            **config,
        )
        arrays = ArrayRecord(task.initial_weights(seed))
        for rnd in range(rounds):
            t0 = time.perf_counter()
            result = secure.run_round(
                grid,
                arrays,
                round=rnd,
                train_config=ConfigRecord({"round": rnd, "data-seed": seed}),
            )
            history.seconds.append(time.perf_counter() - t0)
            arrays = result.arrays
            history.results.append(result)
            history.accuracy.append(task.accuracy(arrays.to_numpy_ndarrays(), num_nodes, seed))

    return app, history

"""One secure FedAvg round over Flower's simulation engine, timed round by round: Flower's
built-in SecAgg+ (``SecAggPlusWorkflow`` + ``secaggplus_mod``, legacy strategy API) and
``secagg.clients.flower`` with ``secaggplus``, on the same nodes, d, k and t.

Each run is its own simulation (a ``ClientApp`` is either legacy or Message API); the first
round, which starts the Ray workers, is not counted. The local "training" is a fixed random
step, so the rounds time the protocols and Flower's message plumbing, not PyTorch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.client import ClientApp as LegacyClientApp
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import ndarrays_to_parameters
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from secagg.clients.flower import SecAggMod, SecureAggregation

NUM_CPUS_PER_NODE = 1.0


def _step(shape: int, node: int, rnd: int) -> np.ndarray:
    return np.random.default_rng([node, rnd]).normal(0, 0.01, shape).astype(np.float32)


@dataclass
class RoundTimes:
    """Seconds per round, the warm-up round excluded."""

    seconds: list[float]

    @property
    def median(self) -> float:
        return float(np.median(self.seconds))


def _wait_for(grid: Grid, nodes: int) -> None:
    while len(list(grid.get_node_ids())) < nodes:
        time.sleep(0.05)


# -- Flower's own SecAgg+ -----------------------------------------------------------------


class _NumPyClient(NumPyClient):  # type: ignore[misc]
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> Any:
        rnd = int(config.get("round", 0))
        return [parameters[0] + _step(parameters[0].size, self.pid, rnd)], 10, {}


def _legacy_client(context: Context) -> Any:
    return _NumPyClient(int(context.node_config["partition-id"])).to_client()


class _TimedFedAvg(FedAvg):  # type: ignore[misc]
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.starts: dict[int, float] = {}
        self.ends: dict[int, float] = {}

    def configure_fit(self, server_round: int, parameters: Any, client_manager: Any) -> Any:
        self.starts[server_round] = time.perf_counter()
        out = super().configure_fit(server_round, parameters, client_manager)
        for _, fit_ins in out:
            fit_ins.config["round"] = server_round
        return out

    def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
        out = super().aggregate_fit(server_round, results, failures)
        self.ends[server_round] = time.perf_counter()
        return out


def flower_secaggplus(nodes: int, dim: int, k: int, t: int, rounds: int) -> RoundTimes:
    """Flower's SecAgg+ with ``num_shares = k + 1`` (k neighbours and itself) and ``t``."""
    strategy = _TimedFedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=nodes,
        min_available_clients=nodes,
        initial_parameters=ndarrays_to_parameters([np.zeros(dim, np.float32)]),
    )
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        _wait_for(grid, nodes)
        legacy = LegacyContext(
            context=context, config=ServerConfig(num_rounds=rounds + 1), strategy=strategy
        )
        workflow = DefaultWorkflow(
            fit_workflow=SecAggPlusWorkflow(num_shares=k + 1, reconstruction_threshold=t)
        )
        workflow(grid, legacy)

    client = LegacyClientApp(client_fn=_legacy_client, mods=[secaggplus_mod])
    _simulate(server, client, nodes)
    done = sorted(r for r in strategy.ends if r > 1)
    return RoundTimes([strategy.ends[r] - strategy.starts[r] for r in done])


# -- ours ---------------------------------------------------------------------------------


def _train(msg: Message, ctx: Context) -> Message:
    pid = int(ctx.node_config["partition-id"])
    rnd = int(msg.content.config_records["secagg"]["round"])  # type: ignore[arg-type]
    (weights,) = msg.content.array_records["arrays"].to_numpy_ndarrays()
    trained = weights + _step(weights.size, pid, rnd + 1)
    content = RecordDict(
        {"arrays": ArrayRecord([trained]), "metrics": MetricRecord({"num-examples": 10})}
    )
    return Message(content, reply_to=msg)


def secagg_secaggplus(nodes: int, dim: int, k: int, t: int, rounds: int) -> RoundTimes:
    times: list[float] = []
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        _wait_for(grid, nodes)
        secure = SecureAggregation(
            "secaggplus", timeout=600, max_examples=1000, num_neighbors=k, threshold=t
        )
        arrays = ArrayRecord([np.zeros(dim, np.float32)])
        for rnd in range(rounds + 1):
            t0 = time.perf_counter()
            arrays = secure.run_round(grid, arrays, round=rnd).arrays
            if rnd > 0:
                times.append(time.perf_counter() - t0)

    client = ClientApp(mods=[SecAggMod()])
    client.train()(_train)
    _simulate(server, client, nodes)
    return RoundTimes(times)


def _simulate(server: ServerApp, client: Any, nodes: int) -> None:
    run_simulation(
        server,
        client,
        num_supernodes=nodes,
        backend_config={"client_resources": {"num_cpus": NUM_CPUS_PER_NODE, "num_gpus": 0.0}},
    )

"""The ServerApp: FedAvg rounds, each one a secure aggregation over the Grid.

``app`` is the deployment's ServerApp (``flwr run``): it reads the run config
(``[tool.flwr.app.config]`` of ``pyproject.toml``, overridden with ``flwr run --run-config``),
waits for the SuperNodes, runs the rounds and prints one line a round::

    [secagg] round 0 finalized: 4 survivors of 4 nodes, accuracy 74.7%, 68.6 s (advertise-...)

Run config keys: ``num-server-rounds``; ``protocol`` (default ``secaggplus``); ``timeout``
(seconds each phase waits for replies); ``num-nodes`` (the SuperNodes to wait for, and the
number of partitions of the data); ``min-nodes`` (start with this many once ``wait-for-nodes``
seconds have passed); ``dropout-rate`` (the masking protocols' delta); ``seed`` (the data split
and the initial model only: node secrets and the round's session come from OS entropy);
``poll-interval`` (seconds between the ServerApp's polls for replies; Flower's own is 3 s).

:func:`make_server_app` is the simulation's ServerApp (``run.py``), seeded to compare with
``secagg.simulate``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.proto.node_pb2 import NodeInfo
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.run import Run

from secagg.clients.flower import FlowerRoundResult, SecureAggregation
from secagg.errors import SecAggError
from secagg_app import task

MASKING_PROTOCOLS = ("secagg", "secaggplus")  # the ones that take dropout_rate


@dataclass
class History:
    """What the ServerApp learnt, round by round (for run.py's report)."""

    results: list[FlowerRoundResult] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def run_rounds(
    grid: Grid,
    secure: SecureAggregation,
    *,
    rounds: int,
    num_nodes: int,
    seed: int,
    history: History,
    report: Callable[[int, FlowerRoundResult, float, float], None] | None = None,
) -> None:
    """``rounds`` secure FedAvg rounds from the seeded initial model, into ``history``."""
    arrays = ArrayRecord(task.initial_weights(seed))
    for rnd in range(rounds):
        t0 = time.perf_counter()
        result = secure.run_round(
            grid,
            arrays,
            round=rnd,
            train_config=ConfigRecord({"round": rnd, "data-seed": seed}),
        )
        seconds = time.perf_counter() - t0
        arrays = result.arrays
        accuracy = task.accuracy(arrays.to_numpy_ndarrays(), num_nodes, seed)
        history.seconds.append(seconds)
        history.results.append(result)
        history.accuracy.append(accuracy)
        if report is not None:
            report(rnd, result, accuracy, seconds)


def make_server_app(
    protocol: str, *, num_nodes: int, rounds: int, seed: int, timeout: float, **config: Any
) -> tuple[ServerApp, History]:
    """The simulation's ServerApp: seeded (``seed=``), so ``secagg.simulate`` can redo it."""
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
        run_rounds(grid, secure, rounds=rounds, num_nodes=num_nodes, seed=seed, history=history)

    return app, history


# -- the deployment's ServerApp (flwr run) ----------------------------------------------------


class PollingGrid(Grid):
    """``grid`` with a ``send_and_receive`` that polls for replies every ``interval`` seconds.

    Flower 1.42's deployment Grid polls every 3 s, and a secure round waits for every phase's
    replies: a shorter poll takes up to 3 s off each phase. Everything else is ``grid``'s."""

    def __init__(self, grid: Grid, interval: float) -> None:
        self.grid = grid
        self.interval = interval

    def set_run(self, run: Run) -> None:
        self.grid.set_run(run)

    @property
    def run(self) -> Run:
        return self.grid.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self.grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def get_nodes(self) -> Iterable[NodeInfo]:
        return self.grid.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        waiting = set(self.push_messages(messages))
        end = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while waiting:
            got = list(self.pull_messages(waiting))
            replies += got
            waiting -= {m.metadata.reply_to_message_id for m in got}
            if not waiting or (end is not None and time.monotonic() >= end):
                break
            time.sleep(self.interval)
        return replies


def say(text: str) -> None:
    """One line of the ServerApp's log (``flwr run --stream``, ``flwr log``)."""
    print(f"[secagg] {text}", flush=True)


def wait_for_nodes(grid: Grid, num_nodes: int, min_nodes: int, wait: float) -> list[int]:
    """The connected node ids once ``num_nodes`` are connected, or once ``wait`` seconds have
    passed and at least ``min_nodes`` are.

    Raises
    ------
    TimeoutError
        Fewer than ``min_nodes`` connected within ``wait`` seconds.
    """
    deadline = time.monotonic() + wait
    nodes = sorted(grid.get_node_ids())
    while len(nodes) < num_nodes and time.monotonic() < deadline:
        time.sleep(1.0)
        nodes = sorted(grid.get_node_ids())
    if len(nodes) < min_nodes:
        raise TimeoutError(
            f"{len(nodes)} SuperNodes connected after {wait:.0f} s; min-nodes is {min_nodes}"
        )
    return nodes


def _report(rnd: int, result: FlowerRoundResult, accuracy: float, seconds: float) -> None:
    asked = len(result.client_ids)
    phases = ", ".join(f"{name} {t.seconds:.1f} s" for name, t in result.traffic.items())
    say(
        f"round {rnd} finalized: {len(result.survivors)} survivors of {asked} nodes, "
        f"accuracy {accuracy:.1%}, {seconds:.1f} s ({phases})"
    )
    for node, phase in sorted(result.dropped.items()):
        say(f"round {rnd}: node {node} dropped at {phase}")
    for node, error in sorted(result.rejected.items()):
        say(f"round {rnd}: node {node} rejected: {type(error).__name__}: {error}")
    for node, why in sorted(result.refused.items()):
        say(f"round {rnd}: node {node} refused: {why}")


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    rounds = int(cfg.get("num-server-rounds", 3))
    protocol = str(cfg.get("protocol", "secaggplus"))
    timeout = float(cfg.get("timeout", 60.0))
    num_nodes = int(cfg.get("num-nodes", 4))
    min_nodes = int(cfg.get("min-nodes", num_nodes))
    wait = float(cfg.get("wait-for-nodes", 300.0))
    seed = int(cfg.get("seed", 0))
    poll = float(cfg.get("poll-interval", 0.5))
    grid = PollingGrid(grid, poll)
    config: dict[str, Any] = {}
    if protocol in MASKING_PROTOCOLS:
        config["dropout_rate"] = float(cfg.get("dropout-rate", 0.1))

    say(f"waiting for {num_nodes} SuperNodes (at least {min_nodes}, {wait:.0f} s)")
    t0 = time.perf_counter()
    nodes = wait_for_nodes(grid, num_nodes, min_nodes, wait)
    say(f"{len(nodes)} SuperNodes connected after {time.perf_counter() - t0:.1f} s")
    options = "".join(f", {key} {value}" for key, value in config.items())
    say(f"{protocol}, {rounds} rounds, timeout {timeout:g} s a phase{options}")
    secure = SecureAggregation(
        protocol,
        timeout=timeout,
        max_examples=task.total_examples(num_nodes, seed),  # w_u = n_u / N
        **config,  # no seed: the session and the server's randomness come from OS entropy
    )
    history = History()
    try:
        run_rounds(
            grid,
            secure,
            rounds=rounds,
            num_nodes=num_nodes,
            seed=seed,
            history=history,
            report=_report,
        )
    except SecAggError as exc:
        say(f"round {len(history.results)} aborted: {type(exc).__name__}: {exc}")
        raise
    say(f"done: {len(history.results)} rounds in {sum(history.seconds):.1f} s")

"""Flower apps for the Flower adapter's tests: a small ClientApp whose nodes can misbehave on
cue, a Grid that records every reply the ServerApp is handed, and a runner for Flower's
simulation engine (Ray) that returns each round's result.

The ClientApp is shipped to Ray's worker processes, so everything it holds is importable or
picklable: the input tap writes files, faults are plain dataclasses.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from secagg import wire
from secagg.clients.flower import (
    RECORD,
    FlowerRoundResult,
    IdentityFiles,
    SecAggMod,
    SecureAggregation,
)

NUM_NODES = 10
SEED = 11
SHAPES = ((6, 4), (5,))
MAX_EXAMPLES = 40


def initial_arrays() -> ArrayRecord:
    return ArrayRecord([np.zeros(SHAPES[0], dtype=np.float32), np.ones(SHAPES[1], np.float32)])


def train(msg: Message, ctx: Context) -> Message:
    """A stand-in for local training: a deterministic step per (node partition, round)."""
    pid = int(ctx.node_config["partition-id"])
    rnd = int(msg.content.config_records[RECORD]["round"])  # type: ignore[arg-type]
    rng = np.random.default_rng([pid, rnd])
    arrays = msg.content.array_records["arrays"].to_numpy_ndarrays()
    trained = [(a + rng.normal(0, 0.5, a.shape)).astype(a.dtype) for a in arrays]
    return Message(
        RecordDict(
            {
                "arrays": ArrayRecord(trained),
                "metrics": MetricRecord({"num-examples": 20 + 3 * pid, "train-loss": 0.5}),
            }
        ),
        reply_to=msg,
    )


@dataclass(frozen=True)
class FileTap:
    """Writes each node's (x, w) to ``<dir>/<round>-<client id>.npy`` (a test's window into
    the nodes; the ServerApp never reads it)."""

    directory: str

    def __call__(self, client_id: int, round: int, x: np.ndarray[Any, Any], w: float) -> None:
        np.save(Path(self.directory) / f"{round}-{client_id}.npy", np.append(x, w))


def tapped_inputs(directory: Path, round: int) -> tuple[dict[int, Any], dict[int, float]]:
    inputs, weights = {}, {}
    for path in directory.glob(f"{round}-*.npy"):
        v = np.load(path)
        cid = int(path.stem.split("-")[1])
        inputs[cid], weights[cid] = v[:-1], float(v[-1])
    return inputs, weights


@dataclass(frozen=True)
class Fault:
    """Node ``partition`` misbehaves in ``round`` when asked for ``phase``.

    kind: "sleep" (replies after the deadline), "crash" (the app raises), "truncate" (cuts
    the message bytes), "claim" (answers as another client id), "impersonate" (its message
    says another sender), "short" (one entry less), "replay" (resends its previous message).
    """

    round: int
    partition: int
    phase: str
    kind: str


@dataclass(frozen=True)
class FaultMod:
    """A Flower mod placed outside :class:`SecAggMod` that corrupts what the node sends."""

    faults: tuple[Fault, ...]
    sleep_seconds: float = 0.0

    def __call__(self, msg: Message, ctx: Context, call_next: ClientAppCallable) -> Message:
        request = msg.content.config_records.get(RECORD)
        if request is None:
            return call_next(msg, ctx)
        pid = int(ctx.node_config["partition-id"])
        fault = next(
            (
                f
                for f in self.faults
                if (f.round, f.partition, f.phase) == (request["round"], pid, request["phase"])
            ),
            None,
        )
        if fault is not None and fault.kind == "sleep":
            time.sleep(self.sleep_seconds)
        if fault is not None and fault.kind == "crash":
            raise RuntimeError("the node crashed")
        reply = call_next(msg, ctx)
        record = reply.content.config_records[RECORD]
        sent = record["message"]
        previous = ctx.state.config_records.get("test.previous")
        ctx.state.config_records["test.previous"] = ConfigRecord({"message": sent})
        if fault is None or fault.kind == "sleep":
            return reply
        assert isinstance(sent, bytes)
        if fault.kind == "truncate":
            record["message"] = sent[: len(sent) // 2]
        elif fault.kind == "claim":
            record["client_id"] = (int(record["client_id"]) + 1) % NUM_NODES  # type: ignore[arg-type]
        elif fault.kind == "impersonate":
            m = wire.decode(sent)
            other = (m.sender + 1) % NUM_NODES  # type: ignore[attr-defined]
            record["message"] = wire.encode(dataclasses.replace(m, sender=other))  # type: ignore[type-var]
        elif fault.kind == "short":
            m = wire.decode(sent)
            short = m.vector[:-1]  # type: ignore[attr-defined]
            record["message"] = wire.encode(dataclasses.replace(m, vector=short))  # type: ignore[type-var]
        elif fault.kind == "replay":
            assert previous is not None
            record["message"] = previous["message"]
        return reply


def client_app(
    tap_dir: Path,
    *,
    protocols: Sequence[str],
    faults: Iterable[Fault] = (),
    sleep_seconds: float = 0.0,
    identity: IdentityFiles | None = None,
) -> ClientApp:
    """``identity``: each node's signing key and the directory (signed rounds only, then)."""
    mods = [
        FaultMod(tuple(faults), sleep_seconds),
        SecAggMod(protocols, seed=SEED, on_input=FileTap(str(tap_dir)), identity=identity),
    ]
    app = ClientApp(mods=mods)  # type: ignore[arg-type]
    app.train()(train)
    return app


class RecordingGrid(Grid):
    """The ServerApp's Grid, recording every reply handed to it (what the server sees)."""

    def __init__(self, inner: Grid) -> None:
        self.inner = inner
        self.replies: list[Message] = []

    def set_run(self, run_id: int) -> None:
        self.inner.set_run(run_id)

    @property
    def run(self) -> Any:
        return self.inner.run

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        return self.inner.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        return self.inner.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        out = list(self.inner.pull_messages(message_ids))
        self.replies.extend(out)
        return out

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        out = list(self.inner.send_and_receive(messages, timeout=timeout))
        self.replies.extend(out)
        return out


@dataclass
class Outcome:
    """One round as the ServerApp saw it."""

    result: FlowerRoundResult | None
    error: Exception | None
    replies: list[Message]


Plan = Sequence[tuple[SecureAggregation, int]]
"""(aggregation, round) pairs, run in order by one ServerApp."""


def simulate_flower(app: ClientApp, plan: Plan) -> list[Outcome]:
    """Run ``plan`` in Flower's simulation engine with :data:`NUM_NODES` SuperNodes."""
    outcomes: list[Outcome] = []
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        deadline = time.monotonic() + 60
        while len(list(grid.get_node_ids())) < NUM_NODES and time.monotonic() < deadline:
            time.sleep(0.1)
        arrays = initial_arrays()
        for aggregation, rnd in plan:
            recording = RecordingGrid(grid)
            try:
                result = aggregation.run_round(recording, arrays, round=rnd)
            except Exception as exc:  # recorded for the test to assert on
                outcomes.append(Outcome(None, exc, recording.replies))
                continue
            outcomes.append(Outcome(result, None, recording.replies))

    run_simulation(
        server,
        app,
        num_supernodes=NUM_NODES,
        backend_config={"client_resources": {"num_cpus": 0.5, "num_gpus": 0.0}},  # 4 workers
    )
    assert len(outcomes) == len(plan), "the ServerApp did not finish its plan"
    return outcomes


def warm(protocol: str, **config: Any) -> SecureAggregation:
    """A generous deadline: the first message also starts the Ray workers."""
    return SecureAggregation(protocol, timeout=60, max_examples=MAX_EXAMPLES, seed=SEED, **config)


def phase_names(replies: Iterable[Message]) -> Callable[[], list[str]]:
    return lambda: [str(m.content.config_records[RECORD]["phase"]) for m in replies]

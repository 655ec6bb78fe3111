"""Every party in its own OS process (issue 20): ``secagg devnet`` (anvil with a 1 s block
time, a js-ipfs daemon), ``secagg deploy``, ``secagg task create``, then four ``secagg
participant`` processes and one ``secagg aggregator``, each with its own keystore, state
directory and data shard, started with ``subprocess`` and killed with SIGKILL:

- participant A is killed right after posting its shares in round 1 and restarted: the round
  goes on without it (U is the other three, its masks removed by dropout recovery), and the
  restarted process takes part in round 2;
- participant B is killed right after its commitment in round 2 and restarted: it reveals from
  its journal, so it is in U and not slashed;
- the aggregator is killed after fixing round 3's share bundles and restarted: it finalizes the
  round, and a fresh ``secagg verify`` process that knows only the chain and the store
  recomputes every round's model (the model an uninterrupted aggregator would post: the replay
  is deterministic) and finds the posted sha256;
- the final model's accuracy is plain FedAvg's over the same survivors within 1 point;
- no process is left behind (the devnet is stopped by PID, every role has exited).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from secagg.chain import Phase, find_anvil
from secagg.chain.errors import NodeError
from secagg.clients.agents.models import ModelBlob
from secagg.clients.learning.trainer import (
    Trainer,
    flatten_params,
    get_params,
    make_model,
    unflatten_params,
)
from secagg.clients.learning.training import load_shard
from secagg.store import IpfsStore
from secagg.store.errors import StoreUnavailableError
from secagg.store.ipfs_node import find_jsipfs

from .multiprocess_training import local_step

ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "correct horse battery staple"


def _nodes_available() -> bool:
    try:
        find_anvil()
        find_jsipfs()
    except (NodeError, StoreUnavailableError):
        return False
    return True


pytestmark = pytest.mark.skipif(not _nodes_available(), reason="anvil or js-ipfs not installed")


class Roles:
    """Runs ``secagg`` subcommands as processes in ``workdir``, with one environment."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.env = {**os.environ, "SECAGG_PASSPHRASE": PASSPHRASE, "PYTHONPATH": str(ROOT)}
        self.processes: list[subprocess.Popen[bytes]] = []

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "secagg.clients.cli", *args]

    def run(self, *args: str) -> str:
        done = subprocess.run(
            self.argv(*args), cwd=self.workdir, env=self.env, capture_output=True, timeout=300
        )
        assert done.returncode == 0, (args, done.stdout.decode(), done.stderr.decode())
        return done.stdout.decode()

    def spawn(self, log: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.workdir / log).open("ab") as out:
            process = subprocess.Popen(
                self.argv(*args), cwd=self.workdir, env=self.env, stdout=out, stderr=out
            )
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        path = self.workdir / name
        return path.read_text() if path.exists() else ""

    def devnet_up(self) -> None:
        """``secagg devnet up`` (1 s blocks); its URLs go to every later command."""
        exports = self.run("devnet", "up", "--dir", "net", "--block-time", "1")
        for line in exports.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            self.env[key] = value

    def enrol(self, names: list[str]) -> dict[str, str]:
        """A keystore per name (0600), ether for each, the deployment by ``owner``, and 1,000
        reward tokens each; name -> address."""
        address = {}
        for name in names:
            created = json.loads(self.run("account", "new", "--out", f"{name}.json", "--light-kdf"))
            address[name] = created["address"]
            assert (self.workdir / f"{name}.json").stat().st_mode & 0o777 == 0o600
        keystores = [f"{name}.json" for name in names]
        self.run("fund", "--to", *keystores, "--ether", "10")
        self.run("deploy", "--account", "owner.json", "--out", "deployment.json")
        self.env["SECAGG_DEPLOYMENT"] = "deployment.json"
        tokens = ["--ether", "0", "--tokens", "1000"]
        self.run("fund", "--account", "owner.json", "--to", *keystores, *tokens)
        return address

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_every_role_in_its_own_process_survives_sigkill(tmp_path: Path) -> None:
    roles = Roles(tmp_path)
    roles.devnet_up()
    try:
        _scenario(roles, tmp_path)
    finally:
        roles.kill_all()
        devnet = json.loads((tmp_path / "net" / "devnet.json").read_text())
        roles.run("devnet", "down", "--dir", "net")
    for pid in (devnet["anvil_pid"], devnet["ipfs_pid"]):  # stopped by PID: none left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert all(p.poll() is not None for p in roles.processes)


def _scenario(roles: Roles, tmp: Path) -> None:
    address = roles.enrol(["owner", "aggregator", "a", "b", "c", "d"])
    data = json.loads(roles.run("data", "digits", "--clients", "4", "--out", "data"))
    create = (
        "task create --account owner.json --aggregator aggregator.json --protocol secaggplus "
        "--clients 4 --rounds 3 --phase-blocks 15 --registration-blocks 180 "
        "--challenge-blocks 5 --epochs 5 --lr 0.5"
    ).split()
    config = ["--config", '{"dropout_rate": 0.25}', "--total-samples", str(data["total_samples"])]
    created = json.loads(roles.run(*create, *config))
    task = str(created["task"])
    clients = {"a": 0, "b": 1, "c": 2, "d": 3}  # shard of each participant

    def participant(name: str, log: str) -> subprocess.Popen[bytes]:
        return roles.spawn(
            log, "participant", "--account", f"{name}.json", "--task", task,
            "--data", f"data/shard-{clients[name]}.npz", "--state", f"state-{name}",
            "--train", "tests.multiprocess_training:full_batch",
            "--poll", "0.3", "--timeout", "500",
        )  # fmt: skip

    def aggregator(log: str) -> subprocess.Popen[bytes]:
        return roles.spawn(
            log, "aggregator", "--account", "aggregator.json", "--task", task,
            "--poll", "0.3", "--timeout", "500",
        )  # fmt: skip

    running = {name: participant(name, f"{name}.log") for name in clients}
    running["aggregator"] = aggregator("aggregator.log")

    # A dies once its round-1 shares are on chain, and comes back at once
    wait_for(lambda: "action=share_keys round=1" in roles.log("a.log"), "A's round-1 shares")
    running["a"].send_signal(signal.SIGKILL)
    running["a"].wait()
    running["a"] = participant("a", "a-restarted.log")
    # B dies once its round-2 commitment is on chain, and comes back at once
    wait_for(lambda: "action=commit round=2" in roles.log("b.log"), "B's round-2 commit")
    running["b"].send_signal(signal.SIGKILL)
    running["b"].wait()
    running["b"] = participant("b", "b-restarted.log")
    # the aggregator dies once it fixed round 3's share bundles, and comes back at once
    wait_for(
        lambda: 'action="declare (commit)" round=3' in roles.log("aggregator.log"),
        "the aggregator's round-3 declaration",
    )
    running["aggregator"].send_signal(signal.SIGKILL)
    running["aggregator"].wait()
    running["aggregator"] = aggregator("aggregator-restarted.log")

    for name, process in running.items():
        assert process.wait(timeout=400) == 0, (name, roles.log(f"{name}.log"))

    status = json.loads(roles.run("status", "--task", task, "--json"))
    ids = {m["address"]: m["id"] for m in status["members"]}
    a = ids[address["a"]]
    rounds = status["rounds_done"]
    assert [rounds[r]["outcome"] for r in ("1", "2", "3")] == ["finalized"] * 3
    assert rounds["1"]["survivors"] == sorted(set(range(4)) - {a})  # A sat round 1 out
    assert rounds["2"]["survivors"] == [0, 1, 2, 3]  # A back; B revealed from its journal
    assert rounds["3"]["survivors"] == [0, 1, 2, 3]
    assert "resumed" in roles.log("a-restarted.log")
    assert "action=share_keys round=2" in roles.log("a-restarted.log")
    assert "action=reveal round=2" in roles.log("b-restarted.log")
    assert "action=finalize round=3" in roles.log("aggregator-restarted.log")
    for m in status["members"]:  # nobody slashed: every stake came back, with rewards
        assert m["stake"] == 0 and m["balance"] > 1000 - 100
    assert status["bond"] == 0 and status["phase"] == "ENDED"

    for r in ("1", "2", "3"):  # a fresh process with only the chain and store URLs
        out = roles.run("verify", "--task", task, "--round", r)
        assert "verified" in out and rounds[r]["sha256"] in out

    # plain FedAvg over the same survivors, with the same deterministic local step
    store = IpfsStore(roles.env["SECAGG_STORE"].removeprefix("ipfs:"))
    model = ModelBlob.decode(store.get(rounds["3"]["model"]))
    by_id = {ids[address[name]]: shard for name, shard in clients.items()}
    reference = _plain_fedavg(tmp, rounds, by_id)
    test = load_shard(tmp / "data" / "test.npz")
    trainer = Trainer(make_model("mlp"), device=torch.device("cpu"))
    like = [p.detach() for p in trainer.model.parameters()]
    secure = trainer.accuracy(unflatten_params(torch.from_numpy(model.weights), like), test)
    plain = trainer.accuracy(unflatten_params(torch.from_numpy(reference), like), test)
    assert abs(secure - plain) <= 0.01, (secure, plain)


def _plain_fedavg(tmp: Path, rounds: dict[str, Any], by_id: dict[int, int]) -> np.ndarray:
    """FedAvg without encoding: w + sum_U n_u Delta_u / sum_U n_u, round after round."""
    weights = flatten_params(get_params(make_model("mlp", seed=0))).numpy()
    for r in ("1", "2", "3"):
        shards = {u: tmp / "data" / f"shard-{by_id[u]}.npz" for u in rounds[r]["survivors"]}
        sizes = {u: len(load_shard(path)) for u, path in shards.items()}
        step = sum(
            sizes[u] * flatten_params(local_step(weights, path, "mlp", 5, 0.5)).numpy()
            for u, path in shards.items()
        )
        weights = (weights + step / sum(sizes.values())).astype(np.float32)
    return weights


SCALE_ENV = "SECAGG_ROLES_PARTICIPANTS"


@pytest.mark.skipif(
    not os.environ.get(SCALE_ENV), reason=f"the nightly scale run (`make nightly` sets {SCALE_ENV})"
)
def test_many_participant_processes_report_where_the_seconds_go(tmp_path: Path) -> None:
    """n participant processes (``$SECAGG_ROLES_PARTICIPANTS``, 20 nightly) and an aggregator on
    anvil with 1 s blocks: every round finalizes with all n, and the seconds of each phase (from
    the blocks' timestamps) and of each role's own work (from the logs) are reported, to
    ``$SECAGG_ROLES_REPORT`` when set."""
    n = int(os.environ[SCALE_ENV])
    roles = Roles(tmp_path)
    roles.devnet_up()
    try:
        report = _scale(roles, n)
    finally:
        roles.kill_all()
        roles.run("devnet", "down", "--dir", "net")
    print(report)
    if target := os.environ.get("SECAGG_ROLES_REPORT"):
        Path(target).write_text(report)


def _scale(roles: Roles, n: int, rounds: int = 3, phase_blocks: int = 40) -> str:
    roles.enrol(["owner", "aggregator", *(f"p{u}" for u in range(n))])
    data = json.loads(roles.run("data", "digits", "--clients", str(n), "--out", "data"))
    create = (
        f"task create --account owner.json --aggregator aggregator.json --protocol secaggplus "
        f"--clients {n} --rounds {rounds} --phase-blocks {phase_blocks} "
        f"--registration-blocks 600 --challenge-blocks 5"
    ).split()
    config = ["--total-samples", str(data["total_samples"])]
    task = str(json.loads(roles.run(*create, *config))["task"])
    started = time.monotonic()
    processes = [
        roles.spawn(
            f"p{u}.log",
            "participant",
            "--account",
            f"p{u}.json",
            "--task",
            task,
            "--data",
            f"data/shard-{u}.npz",
            "--state",
            f"state-{u}",
            "--timeout",
            "3000",
            "--json",
        )
        for u in range(n)
    ]
    processes.append(
        roles.spawn(
            "aggregator.log",
            "aggregator",
            "--account",
            "aggregator.json",
            "--task",
            task,
            "--timeout",
            "3000",
            "--json",
        )
    )
    for process in processes:
        assert process.wait(timeout=3000) == 0, roles.log("aggregator.log")[-3000:]
    wall = time.monotonic() - started
    status = json.loads(roles.run("status", "--task", task, "--json"))
    for r in range(1, rounds + 1):
        assert status["rounds_done"][str(r)]["outcome"] == "finalized"
        assert status["rounds_done"][str(r)]["survivors"] == list(range(n))
    return _seconds_report(roles, int(task), n, rounds, phase_blocks, wall)


def _seconds_report(roles: Roles, task: int, n: int, rounds: int, blocks: int, wall: float) -> str:
    from secagg.chain import Chain, Contracts, Deployment

    chain = Chain.connect(roles.env["SECAGG_CHAIN"])
    deployment = json.loads((roles.workdir / "deployment.json").read_text())["deployment"]
    contracts = Contracts(chain, Deployment(**deployment))
    changes = []
    for e in contracts.events("PhaseChanged", task):
        block = chain.w3.eth.get_block(e.block_number)
        changes.append((e.args["round"], Phase(e.args["phase"]), block["timestamp"]))  # fmt: skip
    spent: dict[int, dict[str, float]] = {}
    for (r, phase, t0), (_, _, t1) in itertools.pairwise(changes):
        spent.setdefault(r, {})[phase.name.lower()] = t1 - t0
    work: dict[tuple[int, str], list[float]] = {}
    for u in range(n):
        for line in roles.log(f"p{u}.log").splitlines():
            entry = json.loads(line) if line.startswith("{") else {}
            if "seconds" in entry:
                work.setdefault((entry["round"], entry["action"]), []).append(entry["seconds"])
    phases = ["share_keys", "commit", "reveal", "unmask", "finalize"]
    lines = [
        f"# {n} participant processes + an aggregator, anvil 1 s blocks, IPFS (js-ipfs)",
        "",
        f"secaggplus, digits MLP (d = 4,811), {rounds} rounds, {blocks} blocks per phase; "
        f"{wall:.0f} s from the processes' start to the last exit (registration included).",
        "",
        "| round | " + " | ".join(phases) + " | round |",
        "|---:|" + "---:|" * (len(phases) + 1),
    ]
    for r in range(1, rounds + 1):
        row = [spent.get(r, {}).get(p, 0.0) for p in phases]
        lines.append(f"| {r} | " + " | ".join(f"{v:.0f}" for v in row) + f" | {sum(row):.0f} |")
    lines += ["", "Participants' own work per action (mean s over participants and rounds):", ""]
    for action in ("share_keys", "train", "commit", "reveal", "unmask"):
        values = [v for (r, a), vs in work.items() if a == action for v in vs]
        if values:
            lines.append(f"- {action}: {sum(values) / len(values):.3f} s")
    return "\n".join(lines) + "\n"

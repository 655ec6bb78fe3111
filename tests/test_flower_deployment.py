"""examples/flower deployed as a Flower App: a SuperLink, SuperNodes and ``flwr run``, each its
own OS process started as examples/flower/README.md tells a user to, on free local ports.

Flower 1.42 serves the SuperLink's Fleet, Control and Runtime APIs over HTTP on one port
(``--port``); each SuperNode serves its Runtime API on its own ``--port``. The ``flwr`` CLI
finds the SuperLink through ``$FLWR_HOME/config.toml``. Every message to a SuperNode is handled
by a fresh ``flwr-clientapp`` process, so a phase costs a poll of the SuperLink (up to 3 s),
the ClientApp's start (imports) and the ServerApp's poll (every 3 s): about 10 s here.

Every process a test starts is stopped by its id in the fixture's teardown (SIGTERM, then
SIGKILL), and so is every process those started (SuperExec, ServerApp, ClientApps), found by
walking /proc; the teardown fails if one is left.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "flower"
BIN = Path(sys.executable).parent
COMMANDS = (
    "flower-superlink",
    "flower-supernode",
    "flower-superexec",
    "flwr-serverapp",
    "flwr-clientapp",
    "flwr",
)
MISSING = [name for name in COMMANDS if not (BIN / name).is_file()]
pytestmark = pytest.mark.skipif(
    bool(MISSING),
    reason=f"Flower's deployment commands {MISSING} are not in {BIN} "
    "(pip install 'secagg[flower]' there)",
)

CONNECTION = "secagg-test"
FINALIZED = re.compile(
    r"\[secagg\] round (\d+) finalized: (\d+) survivors of (\d+) nodes, accuracy ([\d.]+)%, "
    r"([\d.]+) s \((.*)\)"
)
DROPPED = re.compile(r"\[secagg\] round (\d+): node (\d+) dropped at (\S+)")
SENT = "Sending: train message"  # a SuperNode's log line for each reply it pushes
RUN_TIMEOUT = 240.0  # seconds for one `flwr run --stream` (it returns when the run ends)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, alive: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive.poll() is not None:
            raise AssertionError(f"the SuperLink exited with {alive.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


# -- processes: started by us, stopped by id ---------------------------------------------------


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live (non-zombie) process, from /proc."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if state != "Z":
            out[int(entry.name)] = int(ppid)
    return out


def descendants(pid: int) -> set[int]:
    """The live processes below ``pid``."""
    parents = _parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    return pid in _parents()


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


@dataclass
class Deployment:
    """The processes of one test, their logs and their ``FLWR_HOME`` directories."""

    workdir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    orphans: set[int] = field(default_factory=set)  # below a process we killed: stop them too
    superlink_port: int = 0

    def env(self, name: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # flower-superexec etc.
                "FLWR_HOME": str(self.workdir / name / "flwr-home"),  # one per process:
                "FLWR_TELEMETRY_ENABLED": "0",  # each SuperNode installs the FAB in its own
                "FLWR_DISABLE_UPDATE_CHECK": "1",
                "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.1",  # default 1 s a task
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        (self.workdir / name / "flwr-home").mkdir(parents=True, exist_ok=True)
        with self.log(name).open("wb") as out:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=self.env(name),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs[name] = proc
        return proc

    def start_superlink(self, *extra: str) -> None:
        self.superlink_port = free_port()
        link = self.start(
            "superlink",
            [
                str(BIN / "flower-superlink"),
                "--insecure",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.superlink_port),  # Fleet, Control and Runtime HTTP APIs
                "--disable-runtime-dependency-installation",  # offline: no `uv sync`
                *extra,
            ],
        )
        wait_for_port(self.superlink_port, 60.0, link)
        home = self.workdir / "flwr" / "flwr-home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n'
            f"[superlink.{CONNECTION}]\n"
            f'address = "127.0.0.1:{self.superlink_port}"\n'
            "insecure = true\n"
        )

    def start_supernode(self, partition: int, num_partitions: int) -> str:
        name = f"supernode-{partition}"
        self.start(
            name,
            [
                str(BIN / "flower-supernode"),
                "--insecure",
                "--superlink",
                f"127.0.0.1:{self.superlink_port}",
                "--port",
                str(free_port()),  # its Runtime API, for the ClientApp processes
                "--node-config",
                f"partition-id={partition} num-partitions={num_partitions}",
            ],
        )
        return name

    def flwr_run(self, run_config: str) -> subprocess.Popen[bytes]:
        return self.start(
            "flwr",
            [
                str(BIN / "flwr"),
                "run",
                str(APP),
                CONNECTION,
                "--stream",
                "--run-config",
                run_config,
            ],
        )

    def kill(self, name: str) -> None:
        """SIGKILL one process (a SuperNode dropping out); what it started is stopped later."""
        proc = self.procs[name]
        self.orphans |= descendants(proc.pid)
        proc.kill()
        proc.wait(timeout=10)

    def output(self, name: str) -> str:
        return self.log(name).read_text(errors="replace")

    def tails(self, lines: int = 40) -> str:
        parts = []
        for name in self.procs:
            text = self.output(name).splitlines()[-lines:]
            parts.append(f"----- {name} (last {lines} lines)\n" + "\n".join(text))
        return "\n".join(parts)

    def stop(self) -> list[int]:
        """SIGTERM, then SIGKILL, every process started here and every process below them.

        Returns the ids of those still alive afterwards (none, unless something is wrong)."""
        below = set(self.orphans)
        for proc in self.procs.values():
            below |= descendants(proc.pid)
        for proc in reversed(list(self.procs.values())):  # flwr, SuperNodes, then SuperLink
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(list(self.procs.values())):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        # SuperExec and the app processes exit with their parent (Flower's --parent-pid
        # monitor); any that did not are stopped here, by id
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and any(alive(p) for p in below):
            time.sleep(0.1)
        for pid in below:
            if alive(pid):
                _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and any(alive(p) for p in below):
            time.sleep(0.1)
        for pid in below:
            if alive(pid):
                _signal(pid, signal.SIGKILL)
        time.sleep(0.2)
        return sorted(p for p in below if alive(p))


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    dep = Deployment(tmp_path)
    try:
        yield dep
    finally:
        left = dep.stop()
    assert not left, f"processes left behind: {left}"


@dataclass(frozen=True)
class Round:
    number: int
    survivors: int
    nodes: int
    accuracy: float
    seconds: float
    phases: dict[str, float]


def finalized(log: str) -> list[Round]:
    rounds = []
    for match in FINALIZED.finditer(log):
        phases = {}
        for part in match.group(6).split(", "):
            phase, seconds, _ = part.split(" ")
            phases[phase] = float(seconds)
        rounds.append(
            Round(
                int(match.group(1)),
                int(match.group(2)),
                int(match.group(3)),
                float(match.group(4)),
                float(match.group(5)),
                phases,
            )
        )
    return rounds


def wait_run(dep: Deployment, run: subprocess.Popen[bytes], timeout: float = RUN_TIMEOUT) -> str:
    try:
        run.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"`flwr run` still running after {timeout:.0f} s\n{dep.tails()}")
    return dep.output("flwr")


def test_a_secaggplus_round_on_three_supernodes(deployment: Deployment) -> None:
    """SuperLink, 3 SuperNodes and `flwr run`, all separate processes: the round is finalized
    with all 3 nodes' updates in the sum. At n = 3 SecAgg+ tolerates no dropout (its
    parameters need dropout-rate 0: t = 2 of k = 2 neighbours)."""
    deployment.start_superlink()
    for partition in range(3):
        deployment.start_supernode(partition, 3)
    run = deployment.flwr_run(
        "num-server-rounds=1 num-nodes=3 min-nodes=3 wait-for-nodes=60.0 timeout=60.0 "
        "dropout-rate=0.0"
    )
    log = wait_run(deployment, run)
    rounds = finalized(log)
    assert run.returncode == 0 and len(rounds) == 1, log[-4000:] + deployment.tails()
    (done,) = rounds
    assert (done.survivors, done.nodes) == (3, 3), log[-4000:]
    assert set(done.phases) == {"advertise-keys", "share-keys", "masked-input", "unmasking"}
    assert "[secagg] done: 1 rounds" in log
    print(f"\nround: {done.seconds:.1f} s, phases {done.phases}")


def test_a_secaggplus_round_survives_a_killed_supernode(deployment: Deployment) -> None:
    """4 SuperNodes with dropout-rate 0.2 (t = 2 of k = 3): one is killed with SIGKILL after
    it sent its share-keys reply, so it is missing from the masked-input phase on. The round
    is finalized with the other 3 updates: its pairwise masks are unmasked from the shares the
    survivors hold."""
    deployment.start_superlink()
    names = [deployment.start_supernode(partition, 4) for partition in range(4)]
    run = deployment.flwr_run(
        "num-server-rounds=1 num-nodes=4 min-nodes=4 wait-for-nodes=60.0 timeout=25.0 "
        "dropout-rate=0.2"
    )
    victim = names[-1]
    deadline = time.monotonic() + RUN_TIMEOUT
    while deployment.output(victim).count(SENT) < 2:  # advertise-keys and share-keys replies
        assert run.poll() is None, deployment.output("flwr")[-4000:] + deployment.tails()
        assert time.monotonic() < deadline, deployment.tails()
        time.sleep(0.1)
    time.sleep(1.0)  # the reply is on its way to the SuperLink
    deployment.kill(victim)
    log = wait_run(deployment, run)
    rounds = finalized(log)
    assert run.returncode == 0 and len(rounds) == 1, log[-4000:] + deployment.tails()
    (done,) = rounds
    assert (done.survivors, done.nodes) == (3, 4), log[-4000:]
    dropped = [m.group(3) for m in DROPPED.finditer(log)]
    assert len(dropped) == 1 and dropped[0] in ("share-keys", "masked-input"), log[-4000:]
    print(f"\nround: {done.seconds:.1f} s, phases {done.phases}, dropped at {dropped[0]}")

"""examples/flower deployed as a Flower App: a SuperLink, SuperNodes and ``flwr run``, each its
own OS process started as examples/flower/README.md tells a user to, on free local ports.

Flower 1.42 serves the SuperLink's Fleet, Control and Runtime APIs over HTTP on one port
(``--port``); each SuperNode serves its Runtime API on its own ``--port``. The ``flwr`` CLI
finds the SuperLink through ``$FLWR_HOME/config.toml``. Every message to a SuperNode is handled
by a fresh ``flwr-clientapp`` process, so a phase costs the SuperNode's poll of the SuperLink
(every 3 s when idle), the ClientApp's start (about 3.5 s of imports, torch among them) and
the ServerApp's poll (0.5 s, ``poll-interval``): 10 to 25 s with 4 nodes on 2 busy cores.

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
import threading
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
pytestmark = [
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"Flower's deployment commands {MISSING} are not in {BIN} "
        "(pip install 'secagg[flower]' there)",
    ),
    pytest.mark.skipif(
        not Path("/proc/self/stat").exists(),
        reason="finds the processes Flower starts through /proc (Linux)",
    ),
]

CONNECTION = "secagg-test"
FINALIZED = re.compile(
    r"\[secagg\] round (\d+) finalized: (\d+) survivors of (\d+) nodes, accuracy ([\d.]+)%, "
    r"([\d.]+) s \((.*)\)"
)
DROPPED = re.compile(r"\[secagg\] round (\d+): node (\d+) dropped at (\S+)")
SENT = "Sent successfully"  # a SuperNode's log line once a reply reached the SuperLink
RUN_TIMEOUT = 240.0  # seconds for one `flwr run --stream` (it returns when the run ends)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1 (all bound at once while they are picked)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


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
    readers: list[threading.Thread] = field(default_factory=list)
    ports: list[int] = field(default_factory=lambda: free_ports(8))
    t0: float = field(default_factory=time.monotonic)

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
        """Start ``argv``; its output goes to ``<name>.log``, each line stamped with the seconds
        since the deployment started (a reader thread: the processes stay separate)."""
        (self.workdir / name / "flwr-home").mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env(name),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.procs[name] = proc
        reader = threading.Thread(target=self._stamp, args=(proc, self.log(name)), daemon=True)
        reader.start()
        self.readers.append(reader)
        return proc

    def _stamp(self, proc: subprocess.Popen[bytes], path: Path) -> None:
        assert proc.stdout is not None
        with path.open("w") as out:
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                out.write(f"{time.monotonic() - self.t0:8.2f} {line}\n")
                out.flush()

    def start_superlink(self, *extra: str) -> None:
        self.superlink_port = self.ports.pop()
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
                str(self.ports.pop()),  # its Runtime API, for the ClientApp processes
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
        path = self.log(name)
        return path.read_text(errors="replace") if path.exists() else ""

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
        # monitor); any that did not, or that they started meanwhile, are stopped here, by id
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            for pid in list(below):
                below |= descendants(pid)
            for pid in below:
                if sig is not None and alive(pid):
                    _signal(pid, sig)
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and any(alive(p) for p in below):
                time.sleep(0.1)
        time.sleep(0.2)
        for reader in self.readers:
            reader.join(timeout=5)
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
        raise AssertionError(
            f"`flwr run` still running after {timeout:.0f} s\n{dep.tails()}"
        ) from None
    return dep.output("flwr")


def test_a_secaggplus_round_on_four_supernodes(deployment: Deployment) -> None:
    """SuperLink, 4 SuperNodes and `flwr run`, all separate processes: the round is finalized
    with all 4 nodes' updates in the sum. Four, not three: a SuperNode refuses rounds sized for
    dropout-rate < 0.1 (SecAggMod's ThreatFloor), and at n = 3 SecAgg+ has no safe parameters
    for 0.1; at n = 4 dropout-rate 0.1 budgets one dropout (t = 2 of k = 3)."""
    deployment.start_superlink()
    for partition in range(4):
        deployment.start_supernode(partition, 4)
    run = deployment.flwr_run(
        "num-server-rounds=1 num-nodes=4 min-nodes=4 wait-for-nodes=60.0 timeout=60.0 "
        "dropout-rate=0.1"
    )
    log = wait_run(deployment, run)
    rounds = finalized(log)
    assert run.returncode == 0 and len(rounds) == 1, log[-4000:] + deployment.tails()
    (done,) = rounds
    assert (done.survivors, done.nodes) == (4, 4), log[-4000:]
    assert set(done.phases) == {"advertise-keys", "share-keys", "masked-input", "unmasking"}
    assert "[secagg] done: 1 rounds" in log
    print(f"\nround: {done.seconds:.1f} s, phases {done.phases}")


def test_a_secaggplus_round_survives_a_killed_supernode(deployment: Deployment) -> None:
    """4 SuperNodes with dropout-rate 0.1 (one dropout budgeted: t = 2 of k = 3); one is
    killed with SIGKILL after it sent its share-keys reply, so it is missing from the
    masked-input phase on. The round is finalized with the other 3 updates: the survivors'
    masks shared with it are removed through the shares of its key the survivors hold."""
    deployment.start_superlink()
    names = [deployment.start_supernode(partition, 4) for partition in range(4)]
    run = deployment.flwr_run(
        "num-server-rounds=1 num-nodes=4 min-nodes=4 wait-for-nodes=60.0 timeout=45.0 "
        "dropout-rate=0.1"
    )
    victim = names[-1]
    deadline = time.monotonic() + RUN_TIMEOUT
    while deployment.output(victim).count(SENT) < 2:  # advertise-keys and share-keys replies
        assert run.poll() is None, deployment.output("flwr")[-4000:] + deployment.tails()
        assert time.monotonic() < deadline, deployment.tails()
        time.sleep(0.05)
    deployment.kill(victim)
    log = wait_run(deployment, run)
    rounds = finalized(log)
    assert run.returncode == 0 and len(rounds) == 1, log[-4000:] + deployment.tails()
    (done,) = rounds
    assert (done.survivors, done.nodes) == (3, 4), log[-4000:]
    victim_id = re.search(r"SuperNode ID: (\d+)", deployment.output(victim))
    assert victim_id is not None
    dropped = [(int(m.group(2)), m.group(3)) for m in DROPPED.finditer(log)]
    assert dropped == [(int(victim_id.group(1)), "masked-input")], log[-4000:]
    print(f"\nround: {done.seconds:.1f} s, phases {done.phases}, dropped at {dropped[0][1]}")

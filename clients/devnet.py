"""``secagg devnet``: a local chain and store for running every party as its own process.

``up`` starts anvil (with a block time, so time moves on its own as on a real chain) and a
js-ipfs daemon, each on 127.0.0.1 on a free port and in its own session so that it outlives
the command, and writes their URLs and PIDs to ``<dir>/devnet.json``. ``down`` stops both by
PID. anvil keeps its chain in ``<dir>/anvil-state.json`` and the IPFS repository stays in
``<dir>/ipfs``, so a devnet brought down and up again still holds the deployment, the tasks and
every blob, and its rounds can still be verified (the in-process ``secagg demo --chain anvil
--store ipfs`` deletes its nodes when it exits).
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

from secagg.chain import AnvilNode
from secagg.daemon import stop_pid
from secagg.store import IpfsNode

from .errors import ServiceError

__all__ = ["Devnet", "down", "read", "up"]

FILE = "devnet.json"


@dataclass(frozen=True)
class Devnet:
    """A running devnet: the URLs the roles take and the PIDs ``down`` stops."""

    chain: str
    store: str
    anvil_pid: int
    ipfs_pid: int


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or another user's: not ours
        return False
    return True


def read(directory: Path) -> Devnet | None:
    """The devnet recorded in ``directory``, or None."""
    try:
        return Devnet(**json.loads((directory / FILE).read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise ServiceError(f"unreadable {directory / FILE}: {exc}") from exc


def up(directory: Path, *, block_time: float = 1.0) -> Devnet:
    """Starts anvil and an IPFS daemon whose state lives in ``directory``.

    Raises
    ------
    ServiceError
        A devnet recorded there is still running.
    NodeError, StoreUnavailableError
        A daemon did not start (the other one is stopped again).
    """
    directory.mkdir(parents=True, exist_ok=True)
    running = read(directory)
    if running is not None and (_alive(running.anvil_pid) or _alive(running.ipfs_pid)):
        raise ServiceError(f"a devnet is up in {directory}: `secagg devnet down --dir {directory}`")
    with ExitStack() as undo:
        anvil = AnvilNode(state=directory / "anvil-state.json", block_time=block_time)
        anvil_pid = anvil.start_detached(directory / "anvil.log")
        undo.callback(stop_pid, anvil_pid)
        ipfs = IpfsNode(directory / "ipfs")
        ipfs_pid = ipfs.start_detached(directory / "ipfs.log")
        net = Devnet(f"http://127.0.0.1:{anvil.port}", f"ipfs:http://127.0.0.1:{ipfs.port}",
                     anvil_pid, ipfs_pid)  # fmt: skip
        (directory / FILE).write_text(json.dumps(asdict(net), indent=1) + "\n")
        undo.pop_all()
    return net


def down(directory: Path) -> list[str]:
    """Stops the devnet recorded in ``directory``; what was stopped, one line each."""
    net = read(directory)
    if net is None:
        raise ServiceError(f"no devnet in {directory}")
    lines = []
    for name, pid in (("IPFS daemon", net.ipfs_pid), ("anvil", net.anvil_pid)):
        lines.append(f"{name} (pid {pid}): {'stopped' if stop_pid(pid) else 'was not running'}")
    (directory / FILE).unlink()
    return lines

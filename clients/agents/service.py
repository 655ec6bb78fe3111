"""Each role as its own long-running process: the loop that drives one agent, and its log.

``secagg participant`` and ``secagg aggregator`` build one agent
(:class:`~secagg.clients.agents.participant.Participant`,
:class:`~secagg.clients.agents.aggregator.Aggregator`)
and hand it to :func:`serve`: the agent acts on the chain's current phase, ends the phase when
it is due (every role is a keeper: the first caller of ``advance`` wins, the others see the
phase moved on), and otherwise sleeps ``poll`` seconds. Nothing is kept in memory that the
chain, the store and the participant's journal do not also hold, so a process killed at any
point and started again with the same arguments goes on from where the chain is.

Every action is one log line (:class:`ActionLog`): time, role, task, round, phase, action,
transaction hash, gas, CID, bytes, seconds; ``--json`` prints the same as JSON objects.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from secagg.chain.errors import NodeUnavailableError
from secagg.store import StoreUnavailableError

from ..errors import ServiceError
from .keeper import KeeperAgent
from .metrics import Metrics

__all__ = ["ActionLog", "serve"]


class ActionLog(Metrics):
    """Metrics that also write one line per action and note.

    Parameters
    ----------
    role:
        ``"participant"`` or ``"aggregator"``: the first field of each line.
    task_id:
        The task followed.
    stream:
        Where lines go (standard output by default), flushed line by line.
    as_json:
        One JSON object per line instead of ``key=value`` text.
    """

    def __init__(
        self,
        role: str,
        task_id: int,
        *,
        stream: TextIO | None = None,
        as_json: bool = False,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__()
        self.role, self.task_id = role, task_id
        self.stream = stream or sys.stdout
        self.as_json = as_json
        self.now = now

    def emit(self, action: str, **fields: Any) -> None:
        """Writes one line: time, role, task, ``action`` and ``fields`` (None ones left out)."""
        line = {
            "time": self.now().isoformat(timespec="milliseconds"),
            "role": self.role,
            "task": self.task_id,
            "action": action,
            **{k: v for k, v in fields.items() if v is not None},
        }
        if "tx" in line:  # one spelling of transaction hashes, whoever logs them
            line["tx"] = "0x" + str(line["tx"]).removeprefix("0x")
        if self.as_json:
            text = json.dumps(line, sort_keys=False)
        else:
            text = " ".join(f"{k}={_shown(v)}" for k, v in line.items())
        print(text, file=self.stream, flush=True)

    def record(
        self,
        round: int,
        role: str,
        phase: str,
        actor: int,
        *,
        seconds: float = 0.0,
        bytes: int = 0,
        gas: int = 0,
        tx: str | None = None,
        cid: str | None = None,
    ) -> None:
        super().record(round, role, phase, actor, seconds=seconds, bytes=bytes, gas=gas)
        self.emit(
            phase,
            round=round,
            client=actor,
            tx=tx,
            gas=gas or None,
            cid=cid,
            bytes=bytes or None,
            seconds=round_seconds(seconds),
        )

    def note(self, round: int, text: str) -> None:
        super().note(round, text)
        self.emit("note", round=round, text=text)


def round_seconds(seconds: float) -> float:
    return float(f"{seconds:.4f}")


def _shown(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if " " in text or not text else text


def serve(
    agent: KeeperAgent,
    log: ActionLog,
    *,
    finished: Callable[[], bool],
    poll: float = 1.0,
    timeout: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Steps ``agent`` until ``finished()``, sleeping ``poll`` seconds whenever it had nothing
    to do. A node or store that does not answer makes it wait (one log line per outage).

    Raises
    ------
    ServiceError
        ``timeout`` seconds passed first.
    """
    deadline = None if timeout is None else clock() + timeout
    waiting: str | None = None
    while not finished():
        try:
            did = agent.step()
            waiting = None
        except (NodeUnavailableError, StoreUnavailableError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if reason != waiting:
                log.emit("waiting", reason=reason)
            waiting, did = reason, False
        if deadline is not None and clock() > deadline:
            raise ServiceError(f"the task did not end within --timeout {timeout:g} s")
        if not did:
            sleep(poll)

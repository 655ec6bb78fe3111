"""Local daemons for tests and development (anvil, an IPFS node): start, wait, stop by PID.

A driver helper like :mod:`secagg.chain` and :mod:`secagg.store`, not part of the sans-IO
core. Each daemon listens on 127.0.0.1 on a free port and is stopped by its PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self


def stop_pid(pid: int, *, timeout: float = 10.0) -> bool:
    """Stops a detached daemon by its PID: SIGTERM, then SIGKILL after ``timeout`` seconds.
    False when no such process was running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):  # gone, or reused by another user's process
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return True
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalDaemon(ABC):
    """A child process serving on 127.0.0.1:``port``; use as a context manager.

    Subclasses say how to run it (:meth:`command`) and how to tell that it answers
    (:meth:`answers`); failures raise ``error`` (a :class:`~secagg.errors.SecAggError`).
    """

    name = "daemon"

    def __init__(self, *, startup_timeout: float, error: type[Exception]) -> None:
        self.startup_timeout = startup_timeout
        self.port = 0
        self.log: Path | None = None
        """Detached daemons (:meth:`detach`) write their output here instead of a pipe."""
        self._error = error
        self._process: subprocess.Popen[bytes] | None = None

    @abstractmethod
    def command(self) -> list[str]:
        """The argv that runs the daemon on ``self.port``."""

    @abstractmethod
    def answers(self) -> bool:
        """Whether the daemon on ``self.port`` answers a request."""

    def environment(self) -> Mapping[str, str]:
        return os.environ

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, port: int | None = None) -> None:
        """Starts the daemon (on ``port``, or a free one) and waits until it answers."""
        reason = "not tried"
        for _ in range(1 if port else 3):  # a free port may be taken before the daemon binds it
            self.port = port or free_port()
            try:
                err = subprocess.PIPE if self.log is None else self.log.open("ab")
                self._process = subprocess.Popen(  # noqa: S603 (our binary, fixed arguments)
                    self.command(),
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    env=dict(self.environment()),
                    start_new_session=self.log is not None,  # outlives the starting process
                )
            except OSError as exc:
                raise self._error(f"cannot run {self.name}: {exc}") from exc
            if self._wait():
                return
            reason = self._failure()
            self.stop()
        raise self._error(f"{self.name} did not start on 127.0.0.1: {reason}")

    def _wait(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self.running:
                return False
            if self.answers():
                return True
            time.sleep(0.1)
        return False

    def _failure(self) -> str:
        process = self._process
        if process is None or process.poll() is None:
            return f"no answer within {self.startup_timeout} s"
        if process.stderr is not None:
            out = process.stderr.read()
        else:
            out = self.log.read_bytes() if self.log is not None and self.log.exists() else b""
        return out.decode(errors="replace").strip()[-2000:] or "it exited"

    def start_detached(self, log: Path) -> int:
        """Starts the daemon in its own session, its output appended to ``log``, and forgets
        it: it keeps running after this process exits. Returns its PID (stop it with
        :func:`stop_pid`)."""
        self.log = log
        self.start()
        process, self._process = self._process, None
        assert process is not None
        return process.pid

    def stop(self) -> None:
        """Stops the process by its PID (SIGTERM, then SIGKILL after 10 s)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

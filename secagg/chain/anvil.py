"""Starts and stops a local anvil node (Foundry), the real JSON-RPC node of the tests.

The binary comes from npm: ``npm ci --prefix contracts`` installs ``@foundry-rs/anvil``,
which ships ``node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil``. The node listens on
127.0.0.1 on a free port and is stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

from .errors import NodeError

ENV_VAR = "SECAGG_ANVIL"
_NPM_BIN = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")


def find_anvil(contracts_dir: Path | None = None) -> Path:
    """The anvil binary: ``$SECAGG_ANVIL``, then ``contracts/node_modules``, then ``PATH``."""
    if env := os.environ.get(ENV_VAR):
        return Path(env)
    root = contracts_dir or Path(__file__).resolve().parents[2] / "contracts"
    if (root / _NPM_BIN).is_file():
        return root / _NPM_BIN
    if found := shutil.which("anvil"):
        return Path(found)
    raise NodeError(
        "no anvil binary: run `npm ci --prefix contracts` (installs @foundry-rs/anvil) "
        f"or set {ENV_VAR}"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AnvilNode:
    """An anvil process on 127.0.0.1; use as a context manager.

    Parameters
    ----------
    binary:
        Path to anvil (default: :func:`find_anvil`).
    startup_timeout:
        Seconds to wait for the RPC to answer.
    """

    def __init__(self, binary: Path | None = None, *, startup_timeout: float = 30.0) -> None:
        self.binary = binary or find_anvil()
        self.startup_timeout = startup_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self._process is None:
            raise NodeError("anvil is not running")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> str:
        """Starts the node and waits until it answers; returns its URL."""
        reason = "not tried"
        for _ in range(3):  # another process may take the free port before anvil binds it
            self.port = free_port()
            try:
                self._process = subprocess.Popen(  # noqa: S603 (our binary, fixed arguments)
                    [
                        str(self.binary),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(self.port),
                        "--hardfork",
                        "prague",
                        "--silent",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            except OSError as exc:
                raise NodeError(f"cannot run anvil at {self.binary}: {exc}") from exc
            if self._wait_ready():
                return self.url
            reason = self._failure()
            self.stop()
        raise NodeError(f"anvil did not start on 127.0.0.1: {reason}")

    def _failure(self) -> str:
        process = self._process
        if process is None or process.poll() is None or process.stderr is None:
            return f"no answer within {self.startup_timeout} s"
        return process.stderr.read().decode(errors="replace").strip() or "it exited"

    def _wait_ready(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        request = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                httpx.post(f"http://127.0.0.1:{self.port}", json=request, timeout=1.0)
                return True
            except httpx.HTTPError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stops the process by its PID (SIGTERM, then SIGKILL after 5 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()

    def __enter__(self) -> AnvilNode:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

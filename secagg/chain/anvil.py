"""Starts and stops a local anvil node (Foundry), the real JSON-RPC node of the tests.

The binary comes from npm: ``npm ci --prefix contracts`` installs ``@foundry-rs/anvil``,
which ships ``node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil``. The node listens on
127.0.0.1 on a free port and is stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx

from secagg.daemon import LocalDaemon

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


class AnvilNode(LocalDaemon):
    """An anvil process on 127.0.0.1 (Prague rules); use as a context manager.

    Parameters
    ----------
    binary:
        Path to anvil (default: :func:`find_anvil`).
    startup_timeout:
        Seconds to wait for the RPC to answer.
    state:
        A file anvil loads its chain from at start (when it exists) and writes it to when it
        is stopped, so a restarted node goes on from the same chain. Default: none (memory).
    block_time:
        Seconds between blocks (anvil ``--block-time``): time moves on its own, as on a real
        chain, and transactions wait for the next block. Default: none (a block per
        transaction; :meth:`Chain.mine <secagg.chain.Chain.mine>` moves time).
    """

    name = "anvil"

    def __init__(
        self,
        binary: Path | None = None,
        *,
        startup_timeout: float = 30.0,
        state: str | os.PathLike[str] | None = None,
        block_time: float | None = None,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, error=NodeError)
        self.binary = binary or find_anvil()
        self.state = None if state is None else Path(state)
        self.block_time = block_time

    @property
    def url(self) -> str:
        if not self.running:
            raise NodeError("anvil is not running")
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        port = str(self.port)
        return [
            str(self.binary),
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--hardfork",
            "prague",
            "--silent",
            *(["--state", str(self.state)] if self.state is not None else []),
            *(["--block-time", f"{self.block_time:g}"] if self.block_time else []),
        ]

    def answers(self) -> bool:
        request = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        try:
            httpx.post(f"http://127.0.0.1:{self.port}", json=request, timeout=1.0)
        except httpx.HTTPError:
            return False
        return True

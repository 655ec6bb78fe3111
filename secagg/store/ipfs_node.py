"""A real IPFS daemon for tests and development: js-ipfs, offline, on 127.0.0.1.

No kubo binary can be installed here; js-ipfs (``npm install --prefix tools/ipfs`` installs
``ipfs@0.66.1``) speaks the same HTTP RPC API. On Node 20 it needs a
``Promise.withResolvers`` polyfill, loaded with ``NODE_OPTIONS=--require polyfill.cjs``. The
repository is initialised with ``--profile test`` (no bootstrap peers, no discovery), the API
bound to 127.0.0.1 on a free port, and the daemon runs ``--offline``; it is stopped by PID.
The repository stays on disk, so a stopped node restarted on it still holds what was added.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import httpx

from secagg.daemon import LocalDaemon

from .errors import StoreUnavailableError

ENV_VAR = "SECAGG_JSIPFS"
POLYFILL_VAR = "SECAGG_IPFS_POLYFILL"
TOOLS = Path(__file__).resolve().parents[2] / "tools" / "ipfs"


def find_jsipfs(tools_dir: Path = TOOLS) -> Path:
    """The ``jsipfs`` CLI: ``$SECAGG_JSIPFS``, then ``tools/ipfs/node_modules``."""
    if env := os.environ.get(ENV_VAR):
        return Path(env)
    found = tools_dir / "node_modules" / ".bin" / "jsipfs"
    if found.is_file():
        return found
    raise StoreUnavailableError(
        f"no js-ipfs: run `npm install --prefix tools/ipfs` (installs ipfs@0.66.1) or set {ENV_VAR}"
    )


class IpfsNode(LocalDaemon):
    """A js-ipfs daemon; use as a context manager.

    Parameters
    ----------
    repo:
        The IPFS repository directory (created and initialised when missing; a temporary
        directory by default, removed with the object).
    """

    name = "js-ipfs"

    def __init__(
        self, repo: str | os.PathLike[str] | None = None, *, startup_timeout: float = 60.0
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, error=StoreUnavailableError)
        self.cli = find_jsipfs()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if repo is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="secagg-ipfs-")
            repo = Path(self._tmp.name) / "repo"
        self.repo = Path(repo)

    @property
    def url(self) -> str:
        if not self.running:
            raise StoreUnavailableError("the IPFS node is not running")
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> Mapping[str, str]:
        polyfill = os.environ.get(POLYFILL_VAR) or str(TOOLS / "polyfill.cjs")
        options = f"{os.environ.get('NODE_OPTIONS', '')} --require {polyfill}".strip()
        return {**os.environ, "IPFS_PATH": str(self.repo), "NODE_OPTIONS": options}

    def start(self, *, port: int | None = None) -> None:
        self._configure()
        super().start(port=port)

    def _jsipfs(self, *args: str) -> None:
        try:
            result = subprocess.run(  # noqa: S603 (our CLI, fixed arguments)
                [str(self.cli), *args],
                env=dict(self.environment()),
                capture_output=True,
                timeout=120,
                check=False,
            )
        except OSError as exc:
            raise StoreUnavailableError(f"cannot run js-ipfs ({self.cli}): {exc}") from exc
        if result.returncode != 0:
            detail = result.stderr.decode(errors="replace").strip()[-500:]
            raise StoreUnavailableError(f"jsipfs {' '.join(args)} failed: {detail}")

    def _configure(self) -> None:
        if not (self.repo / "config").is_file():
            self.repo.mkdir(parents=True, exist_ok=True)
            self._jsipfs("init", "--profile", "test")
        (self.repo / "repo.lock").unlink(missing_ok=True)  # left by a killed daemon
        self._set_addresses(Swarm=[], RPC="/ip4/127.0.0.1/tcp/0", Gateway="/ip4/127.0.0.1/tcp/0")

    def _set_addresses(self, **addresses: object) -> None:
        """Updates ``Addresses`` in the repository's config file."""
        path = self.repo / "config"
        config = json.loads(path.read_text())
        config["Addresses"].update(addresses)
        path.write_text(json.dumps(config, indent=2))

    def command(self) -> list[str]:
        self._set_addresses(API=f"/ip4/127.0.0.1/tcp/{self.port}")  # the port of this attempt
        return [str(self.cli), "daemon", "--offline"]

    def answers(self) -> bool:
        try:
            response = httpx.post(f"http://127.0.0.1:{self.port}/api/v0/id", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def close(self) -> None:
        """Stops the daemon and removes a temporary repository."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

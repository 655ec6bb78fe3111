"""The demo against real parts: anvil (from npm) and a js-ipfs daemon over its HTTP RPC, both
started here on 127.0.0.1 and stopped by PID; then ``secagg verify`` checks the round from a
fresh process view of the same chain and store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secagg.chain import AnvilNode
from secagg.clients.cli import main
from secagg.store import IpfsNode


def test_one_round_on_anvil_and_ipfs_then_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with AnvilNode() as anvil, IpfsNode() as ipfs:
        chain, store = anvil.url, f"ipfs:{ipfs.url}"
        argv = ["--chain", chain, "--store", store]
        assert main(["demo", "--clients", "4", "--rounds", "1", "--out", str(tmp_path), *argv]) == 0
        results = json.loads((tmp_path / "results.json").read_text())
        (round_1,) = results["rounds"]
        assert round_1["outcome"] == "finalized" and round_1["verified"] is True
        assert round_1["survivors"] == [0, 1, 2, 3]
        capsys.readouterr()
        deployment = str(tmp_path / "results.json")
        common = [*argv, "--deployment", deployment, "--task", str(results["task_id"])]
        assert main(["verify", *common, "--round", "1"]) == 0
        assert "verified" in capsys.readouterr().out
        assert main(["verify", *common, "--round", "2"]) == 1  # no such round: a named error
        assert "VerificationError" in capsys.readouterr().out

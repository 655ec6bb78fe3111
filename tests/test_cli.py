"""The console script: help, the demo's outputs, refusals by name, and the bench stub."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from secagg.clients.cli import FAILED, main


def test_help_lists_demo_and_bench() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "secagg.clients.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "demo" in out and "bench" in out


def test_bench_quick_writes_the_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--grid", "quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "grid-quick.json").read_text())
    assert {r["protocol"] for r in data["rows"]} == {
        "plain",
        "secagg",
        "secaggplus",
        "ckks",
        "paillier",
    }
    table = (tmp_path / "grid-quick.md").read_text()
    assert "client/keystream" in table and "Per participant per round" in table
    assert (tmp_path / "cost_vs_d-quick.png").exists()


def test_demo_writes_tables_results_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["demo", "--clients", "4", "--rounds", "2", "--dropout", "0.25", "--seed", "1"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "seconds per phase" in out and "gas/client" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["round"] for r in results["rounds"]] == [1, 2]
    assert all(r["verified"] for r in results["rounds"])
    assert any("killed" in note for r in results["rounds"] for note in r["notes"])
    for png in ("accuracy.png", "phases.png"):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clients", "2"], "at least 3 clients"),
        (["--dropout", "1.5"], "dropout is a fraction"),
        (["--chain", "ftp://x"], "--chain is embedded"),
        (["--store", "s3:bucket"], "--store is memory"),
        (["--clients", "3"], "need --clients >= 4"),  # in the demo's terms, not t or gamma
        (["--dropout", "0.5"], "no number of clients allows --dropout 0.5"),
    ],
)
def test_demo_refuses_bad_arguments_by_name(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *args]) == FAILED
    assert message in capsys.readouterr().out


def test_verify_needs_a_readable_deployment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.json")
    args = ["verify", "--chain", "http://127.0.0.1:9", "--store", f"dir:{tmp_path}"]
    assert main([*args, "--deployment", missing, "--task", "1", "--round", "1"]) == FAILED
    assert "cannot read the deployment" in capsys.readouterr().out

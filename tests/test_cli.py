"""The console script: help lists the commands; stubs say they are not built."""

from __future__ import annotations

import subprocess
import sys

import pytest

from secagg.clients.cli import NOT_BUILT, main


def test_help_lists_demo_and_bench() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "secagg.clients.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "demo" in out and "bench" in out


def test_bench_says_it_is_not_built(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench"]) == NOT_BUILT
    assert "not built yet" in capsys.readouterr().err


def test_demo_runs_a_round_and_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--clients", "5", "--dropout", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "Not built yet" in out
    assert "survivors" in out

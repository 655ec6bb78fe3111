"""The DP comparison's code path end to end at toy size (``make bench-dp`` runs it full size)."""

from __future__ import annotations

from pathlib import Path

from secagg.clients.bench.dp import DPBenchConfig, run, write


def test_the_dp_comparison_runs_and_writes_its_table_and_plot(tmp_path: Path) -> None:
    cfg = DPBenchConfig(
        clients=10, rounds=1, epsilons=(8.0,), bits_sweep=(4, 16, 20), repeats=2, dp_sgd_repeats=1
    )
    results = run(cfg, log=lambda line: None)
    mechanisms = sorted({r["mechanism"] for r in results["runs"]})
    assert mechanisms == ["central", "clipped", "ddg", "dp-sgd", "none"]
    ddg = [r for r in results["runs"] if r["mechanism"] == "ddg"]
    assert len(ddg) == 4  # 2 repeats + the sweep's 4 and 16
    (tiny,) = [r for r in ddg if r["bits"] == 4]  # too few bits for any noise: recorded
    assert tiny["accuracy"] is None and "out of reach" in tiny["detail"]["unreachable"]
    write(results, tmp_path)
    table = (tmp_path / "table.md").read_text()
    assert "| 8 |" in table and "Smallest b within 1 point" in table and "± " in table
    assert "| 4 | — | out of reach" in table
    assert (tmp_path / "accuracy_vs_epsilon.png").stat().st_size > 10_000

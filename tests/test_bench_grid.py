"""The benchmark grid's plumbing: the grid, the cost model's cap, one real case, and the
ratios the report prints (computed from known figures)."""

from __future__ import annotations

from typing import Any

import pytest

from secagg.clients.bench.grid import (
    Case,
    GridRun,
    References,
    estimate_seconds,
    flower_key,
    grid,
    run_case,
)
from secagg.clients.bench.report import markdown
from secagg.errors import ConfigError


def test_the_grids_cover_what_the_issue_asks() -> None:
    quick, full = grid("quick"), grid("full")
    assert {c.protocol for c in quick} == {"plain", "secagg", "secaggplus", "ckks", "paillier"}
    assert {(c.d, c.n) for c in full if c.protocol == "ckks"} == {
        (d, n) for d in (10_000, 100_000, 1_000_000) for n in (10, 100)
    }
    assert {c.dropout for c in full} == {0.0, 0.1, 0.3}
    assert {c.n for c in full if c.protocol == "secaggplus"} == {10, 100, 1000}
    cuda = {c.protocol for c in grid("quick", cuda=True) if c.device == "cuda"}
    assert cuda == {"plain", "secagg", "secaggplus"}
    with pytest.raises(ConfigError, match="quick"):
        grid("medium")


def test_a_case_without_safe_parameters_is_reported_not_raised() -> None:
    row = run_case(Case("secagg", 5, 1000, 0.3))  # no safe (k, t) for 5 clients at 30%
    assert row["aborted"].startswith("no parameters:")


def test_the_cap_skips_paillier_at_a_million_entries() -> None:
    assert estimate_seconds(Case("paillier", 10, 1_000_000, 0.0)) > 120
    assert estimate_seconds(Case("secaggplus", 100, 1_000_000, 0.0)) < 120


def test_one_case_reports_consistent_figures() -> None:
    row = run_case(Case("secaggplus", 5, 1000, 0.2))
    assert row["aborted"] is None and row["survivors"] >= 4  # one of five dropped
    assert row["expansion"] == pytest.approx(row["bytes_per_client"] / 4000)
    assert row["client_total"] > 0 and row["server_total"] > 0
    assert set(row["server_seconds"]) == {
        "advertise-keys",
        "share-keys",
        "masked-input",
        "unmasking",
    }


def row(protocol: str, **figures: Any) -> dict[str, Any]:
    base = {"protocol": protocol, "n": 5, "d": 1000, "dropout": 0.0, "device": "cpu"}
    base.update(survivors=5, bytes_per_client=4000.0, expansion=1.0, peak_rss_mib=1.0)
    base.update(client_seconds={}, server_seconds={})
    return {**base, **figures}


def test_the_report_divides_by_the_right_references() -> None:
    masking, big = Case("secaggplus", 5, 1000, 0.0), Case("secaggplus", 1000, 1000, 0.0)
    refs = References(
        keystream={1000: 0.001},
        add={1000: 1e-4},
        tenseal={1000: 0.01},
        flower={
            # Flower's full round (all clients + server) at the case's n, d, k, t, dropouts
            flower_key(masking): {
                "status": "ok",
                "seconds": 0.03,
                "clients": 0.02,
                "server": 0.01,
                "n": 5,
                "k": 4,
                "t": 3,
            },
            flower_key(big): {
                "status": "skipped",
                "seconds": None,
                "estimate": 1400.0,
                "n": 1000,
                "k": 78,
                "t": 52,
            },
        },
    )
    rows = [
        row("plain", id="plain-n5", seconds=0.1, client_total=0.0005, server_total=0.0001),
        row(
            "secaggplus",
            id=masking.id,
            seconds=0.3,
            client_total=0.002,
            server_total=0.0005,
            compute_seconds=0.015,  # all clients + server
            client_seconds={"masked-input": 0.002},
            params={"num_neighbors": 4},
        ),
        row("secagg", seconds=0.2, aborted="too-few-shares"),
        row("ckks", seconds=0.5, client_total=0.02, server_total=0.001),
    ]
    table = markdown(GridRun("t", False, rows, [Case("paillier", 10, 1_000_000, 0.0)], refs, None))
    (line,) = [line for line in table.splitlines() if line.startswith("| secaggplus |")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    # client/keystream, server/add (5 inputs), /plain, vs Flower's full round (0.03 / 0.015)
    assert cells[5] == "2.0x" and cells[7] == "1.0x" and cells[8] == "3.0x" and cells[9] == "2.0x"
    (ckks,) = [line for line in table.splitlines() if line.startswith("| ckks")]
    assert [c.strip() for c in ckks.strip("|").split("|")][9] == "2.0x"  # vs TenSEAL alone
    assert "paillier-n10-d1000000-drop0-cpu" in table and "no GPU" in table
    assert "| secagg | 5 | 10^3 | 0% | aborted: too-few-shares" in table
    assert f"| {big.id} | 1000 | 78 | 52 " in table and "skipped (~1,400 s)" in table

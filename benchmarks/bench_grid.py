"""The benchmark grid (issue #8): every protocol over d, n and dropout, with references.

``SECAGG_BENCH=quick`` (the default: tiny sizes, seconds; CI's smoke test) or ``full``
(d in {1e4, 1e5, 1e6}, n in {10, 100} and 1000 for secaggplus, dropout in {0, 10%, 30%};
``make bench``). Cases whose estimated time exceeds ``SECAGG_BENCH_CAP`` seconds (default
120) are listed as skipped, with their estimate. Each secaggplus case is followed, outside
its timing, by its reference: Flower 1.42's full SecAgg+ round at the same n, d, k, t and
dropouts (``secagg.clients.bench.grid.flower_reference``; skipped with its estimate over the same
cap; about 5.5 min of the full grid). After the last case the module measures the per-d
references in the same run and writes ``grid-<kind>.{json,md}`` and the plots (the full grid
to ``benchmarks/grid/``, committed; the quick one to ``.benchmarks/``); the full grid also
rewrites the grid section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from secagg.clients.bench.grid import (
    DEFAULT_CAP,
    Case,
    estimate_seconds,
    finish_grid,
    flower_key,
    flower_reference,
    grid,
    run_case,
)
from secagg.clients.bench.report import write_grid_outputs

KIND = os.environ.get("SECAGG_BENCH", "quick")
CAP = float(os.environ.get("SECAGG_BENCH_CAP", DEFAULT_CAP))
CUDA = torch.cuda.is_available()
CASES = grid(KIND, cuda=CUDA)
RUN = [c for c in CASES if estimate_seconds(c) <= CAP]
SKIPPED = [c for c in CASES if estimate_seconds(c) > CAP]
ROWS: list[dict[str, Any]] = []
FLOWER: dict[str, dict[str, Any]] = {}
HERE = Path(__file__).parent


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if not ROWS:
        return
    paths = write_grid_outputs(
        finish_grid(KIND, CUDA, ROWS, RUN, SKIPPED, flower=FLOWER, cap=CAP),
        out=HERE / "grid" if KIND == "full" else HERE.parent / ".benchmarks",
        results_md=HERE / "RESULTS.md" if KIND == "full" else None,
    )
    print("\nwrote " + ", ".join(str(p) for p in paths))


@pytest.mark.parametrize("case", RUN, ids=lambda c: c.id)
def test_grid(benchmark: Any, case: Case) -> None:
    benchmark.group = f"grid {case.protocol}"
    row = benchmark.pedantic(run_case, args=(case,), rounds=1, iterations=1)
    benchmark.extra_info.update({k: v for k, v in row.items() if isinstance(v, int | float | str)})
    ROWS.append(row)
    if case.protocol == "secaggplus" and case.device == "cpu" and not row.get("aborted"):
        ref = FLOWER[flower_key(case)] = flower_reference(case, cap=CAP)
        benchmark.extra_info["flower_status"] = ref["status"]
        if ref["status"] == "ok":
            benchmark.extra_info["flower_round_seconds"] = ref["seconds"]
            benchmark.extra_info["flower_vs_ours"] = ref["seconds"] / row["compute_seconds"]
        elif "estimate" in ref:
            benchmark.extra_info["flower_estimate_seconds"] = ref["estimate"]

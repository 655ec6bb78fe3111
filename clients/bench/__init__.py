"""Benchmarks driven from Python: the protocol grid (:mod:`.grid`, ``secagg bench``) and its
report, the DP comparison (:mod:`.dp`, ``make bench-dp``) and its report, and Flower's own
SecAgg+ compute as a reference (:mod:`.flower_reference`).

The grid's names are re-exported, as ``secagg.clients.bench`` (the grid's module before the
package) offered them; its ``flower_reference`` function is :func:`.grid.flower_reference`
(the name here is the module).
"""

from .grid import (
    Case,
    GridRun,
    References,
    estimate_flower_case,
    estimate_seconds,
    finish_grid,
    flower_dropouts,
    flower_key,
    grid,
    measure_references,
    peak_rss_reset,
    run_case,
    warm_up,
)

__all__ = [
    "Case",
    "GridRun",
    "References",
    "estimate_flower_case",
    "estimate_seconds",
    "finish_grid",
    "flower_dropouts",
    "flower_key",
    "grid",
    "measure_references",
    "peak_rss_reset",
    "run_case",
    "warm_up",
]

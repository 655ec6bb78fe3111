"""Benchmark helpers: every group has one reference, and the summary prints ratios to it.

A benchmark whose ``extra_info["reference"]`` is true is the group's yardstick (raw
``cryptography`` keystream, TenSEAL alone, Flower's SecAgg+, ...); after the run every other
member of the group is reported as ``reference median / its median`` (speed relative to the
reference, 1.0 = as fast). Figures come from the same run on the same machine. A benchmark
that measures its own figure (``extra_info["median_seconds"]``, e.g. seconds per round inside a
simulation that pytest-benchmark can only time whole) is compared by that figure.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def _figure(bench: Any) -> float:
    return float(bench.extra_info.get("median_seconds", bench.stats.median))


def pytest_terminal_summary(terminalreporter: Any, config: Any) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups: dict[str, list[Any]] = defaultdict(list)
    for bench in session.benchmarks:
        if bench:  # has stats
            groups[bench.group or ""].append(bench)
    lines = []
    for group, benches in sorted(groups.items()):
        refs = [b for b in benches if b.extra_info.get("reference")]
        if len(refs) != 1:
            continue
        ref = _figure(refs[0])
        for b in benches:
            if b is refs[0]:
                continue
            lines.append(
                f"{group:<28} {b.name:<52} speed vs reference {ref / _figure(b):6.2f}x "
                f"(median {_figure(b) * 1e3:8.3f} ms, reference {ref * 1e3:8.3f} ms)"
            )
    if lines:
        terminalreporter.write_sep("-", "ratios to each group's reference (same run)")
        for line in lines:
            terminalreporter.write_line(line)

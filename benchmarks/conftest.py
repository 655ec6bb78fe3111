"""Benchmark helpers: every group has one reference, and the summary prints ratios to it.

A benchmark whose ``extra_info["reference"]`` is true is the group's yardstick (raw
``cryptography`` keystream, TenSEAL alone, Flower's SecAgg+, ...); after the run every other
member of the group is reported as ``reference median / its median`` (speed relative to the
reference, 1.0 = as fast). Figures come from the same run on the same machine.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any


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
        ref = refs[0].stats.median
        for b in benches:
            if b is refs[0]:
                continue
            lines.append(
                f"{group:<28} {b.name:<52} speed vs reference {ref / b.stats.median:6.2f}x "
                f"(median {b.stats.median * 1e3:8.3f} ms, reference {ref * 1e3:8.3f} ms)"
            )
    if lines:
        terminalreporter.write_sep("-", "ratios to each group's reference (same run)")
        for line in lines:
            terminalreporter.write_line(line)

"""secagg's Flower adapter vs Flower's built-in SecAgg+, in the same simulation engine.

Same 10 SuperNodes, same d, same k = 4 neighbours and t = 3 (what ``secaggplus`` chooses for
n = 10 at its defaults; Flower gets ``num_shares = k + 1``). The figure is the median seconds of
a whole round over 8 rounds after a warm-up round (Ray worker start-up excluded), as the
ServerApp sees it: every phase's messages, both sides' crypto and Flower's polling. The
reference is Flower's workflow; the summary prints Flower's median / ours.

pytest-benchmark times the whole simulation once (start-up included); the per-round figure
is in ``extra_info["median_seconds"]``, which the summary uses.
"""

from __future__ import annotations

from typing import Any

import pytest
from flower_rounds import RoundTimes, flower_secaggplus, secagg_secaggplus

NODES, K, T, ROUNDS = 10, 4, 3, 8


@pytest.mark.parametrize("dim", [10_000, 100_000, 1_000_000])
@pytest.mark.parametrize("side", ["flower-secaggplus-workflow", "secagg-flower-adapter"])
def test_secure_round_over_flower(benchmark: Any, side: str, dim: int) -> None:
    run = flower_secaggplus if side.startswith("flower") else secagg_secaggplus
    benchmark.group = f"flower-round-d{dim}"
    out: list[RoundTimes] = []
    benchmark.pedantic(lambda: out.append(run(NODES, dim, K, T, ROUNDS)), rounds=1, iterations=1)
    (times,) = out
    assert len(times.seconds) == ROUNDS
    benchmark.extra_info.update(
        reference=side.startswith("flower"),
        median_seconds=times.median,
        round_seconds=times.seconds,
        nodes=NODES,
        k=K,
        t=T,
    )

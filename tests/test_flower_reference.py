"""Flower's SecAgg+ round without its engine (``secagg.clients.bench.flower_reference``): it runs,
its self-check holds, and the self-check catches a wrong sum."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("flwr")

from secagg.clients.bench import flower_reference
from secagg.clients.bench.flower_reference import (
    STAGES,
    FlowerRoundHalted,
    FlowerSumMismatch,
    flower_num_shares,
    flower_round,
)


def test_a_round_with_a_dropped_client_sums_the_survivors() -> None:
    run = flower_round(6, 100, 4, 3, dropped=[2], seed=0)
    assert (run.num_shares, run.degree, run.survivors) == (5, 4, 5)
    assert run.dropped == (2,)
    assert set(run.client_seconds) == set(STAGES) == set(run.server_seconds)
    assert run.client_seconds["share-keys"] > 0 and run.server_seconds["unmask"] > 0
    assert run.total_seconds == pytest.approx(run.clients_total + run.server_total)
    assert run.as_dict()["total_seconds"] == run.total_seconds


def test_the_self_check_catches_a_wrong_sum(monkeypatch: Any) -> None:
    decode = flower_reference.bytes_to_ndarray

    def off_by_one(data: bytes) -> Any:  # the server reads every masked entry one too high
        return decode(data) + 1

    monkeypatch.setattr(flower_reference, "bytes_to_ndarray", off_by_one)
    with pytest.raises(FlowerSumMismatch, match="differs"):
        flower_round(6, 100, 4, 3, dropped=[2], seed=0)


def test_k_maps_to_flowers_num_shares_and_too_many_drops_halt() -> None:
    assert flower_num_shares(4, 100) == 5  # k neighbours + the client's own share
    assert flower_num_shares(9, 100) == 11  # odd k: Flower's ring has even degree
    assert flower_num_shares(9, 10) == 10  # complete graph
    with pytest.raises(FlowerRoundHalted):
        flower_round(5, 10, 4, 3, dropped=[0, 1, 2], seed=0)  # 2 survivors < t = 3

"""Local training on digits and FedAvg over the secure sum."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import secagg.protocols as protocols
from secagg import simulate
from secagg.clients.learning.trainer import (
    Federation,
    Trainer,
    fedavg_step,
    get_params,
    make_model,
    split_digits,
    weighted_sum,
)
from secagg.errors import ConfigError


def test_the_split_partitions_the_training_set() -> None:
    fed = split_digits(10, alpha=0.5, seed=3)
    sizes = [len(s) for s in fed.clients.values()]
    assert min(sizes) > 0
    assert sum(sizes) + len(fed.test) == 1797  # every digit once
    assert len(fed.test) == 359
    again = split_digits(10, alpha=0.5, seed=3)
    assert all(torch.equal(again.clients[u].y, fed.clients[u].y) for u in fed.clients)
    assert sum(fed.fedavg_weights().values()) == pytest.approx(1.0)


def _skew(fed: Federation) -> float:
    """Mean over clients of the share of their most common class."""
    return float(np.mean([np.bincount(s.y.numpy()).max() / len(s) for s in fed.clients.values()]))


def test_small_alpha_is_non_iid() -> None:
    assert _skew(split_digits(10, alpha=0.1, seed=0)) > 0.6
    assert _skew(split_digits(10, alpha=100.0, seed=0)) < 0.25


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [({"alpha": 0.0}, "alpha"), ({"test_fraction": 1.0}, "test_fraction")],
)
def test_bad_split_parameters(kwargs: dict[str, float], parameter: str) -> None:
    with pytest.raises(ConfigError) as info:
        split_digits(5, **kwargs)  # type: ignore[arg-type]
    assert info.value.parameter == parameter


def test_local_training_learns_and_returns_a_delta() -> None:
    fed = split_digits(3, alpha=100.0, seed=0)
    trainer = Trainer(make_model("mlp", seed=0), epochs=3, device=torch.device("cpu"))
    start = get_params(make_model("mlp", seed=0))
    assert all(
        torch.equal(d, torch.zeros_like(d))
        for d in Trainer(make_model(), epochs=0, device=torch.device("cpu")).local_update(
            start, fed.clients[0], seed=0
        )
    )
    delta = trainer.local_update(start, fed.clients[0], seed=0)
    assert [d.shape for d in delta] == [p.shape for p in start]
    after = [p + d for p, d in zip(start, delta, strict=True)]
    assert trainer.accuracy(after, fed.clients[0]) > trainer.accuracy(start, fed.clients[0]) + 0.3


def _fedavg(fed: Federation, rounds: int, proto_name: str | None) -> float:
    trainer = Trainer(make_model("mlp", seed=1), device=torch.device("cpu"))
    params = get_params(make_model("mlp", seed=1))
    weights = fed.fedavg_weights()
    for r in range(rounds):
        updates = {
            u: trainer.local_update(params, s, seed=100 * r + u) for u, s in fed.clients.items()
        }
        if proto_name is None:
            total = weighted_sum(updates, weights)
        else:
            proto = protocols.get(proto_name, num_clients=len(updates), clip=2.0, quant_bits=24)
            total = simulate(proto, updates, weights=weights, seed=r).sum
        params = fedavg_step(params, total, sum(weights.values()))
    return trainer.accuracy(params, fed.test)


def test_fedavg_over_the_secure_sum_matches_plain_fedavg() -> None:
    fed = split_digits(8, alpha=0.5, seed=0)
    plain = _fedavg(fed, 8, None)
    secure = _fedavg(fed, 8, "secaggplus")
    assert plain > 0.85
    assert abs(secure - plain) <= 0.01


@pytest.mark.cuda
def test_training_on_cuda_stays_on_the_device_and_agrees_with_the_cpu() -> None:
    fed = split_digits(2, alpha=100.0, seed=0)
    start = get_params(make_model("mlp", seed=0))
    results = {}
    for name in ("cpu", "cuda"):
        trainer = Trainer(make_model("mlp", seed=0), device=torch.device(name))
        delta = trainer.local_update(start, fed.clients[0], seed=0)
        assert all(d.device.type == name for d in delta)
        after = [p + d.cpu() for p, d in zip(start, delta, strict=True)]
        results[name] = trainer.accuracy(after, fed.test)
    assert abs(results["cpu"] - results["cuda"]) < 0.05  # float order differs, not the result

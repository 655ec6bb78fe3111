"""Example-level DP-SGD (Opacus) in the trainer, and MNIST from the installed package."""

from __future__ import annotations

import gzip
import io
import pickle

import numpy as np
import pytest
import torch

from secagg.clients.learning.datasets import _ArraysOnly, load_mnist
from secagg.clients.learning.trainer import (
    DPSGD,
    Trainer,
    dp_sgd_epsilon,
    get_params,
    make_model,
    split_digits,
    split_mnist,
)
from secagg.errors import ConfigError

CPU = torch.device("cpu")


def test_dp_sgd_trains_and_reports_a_growing_epsilon() -> None:
    """Three clients, three rounds of DP-SGD each (sigma = 1, C = 1): the model learns (well
    above 10 % chance), each client's example-level epsilon grows with its rounds, and a
    client that has not trained has spent nothing."""
    fed = split_digits(3, alpha=100.0, seed=0)
    trainer = Trainer(
        make_model("mlp", seed=0), epochs=1, lr=0.5, device=CPU, dp_sgd=DPSGD(1.0, 1.0, 1e-3)
    )
    params = get_params(make_model("mlp", seed=0))
    spent = []
    for r in range(3):
        deltas = [
            trainer.local_update(params, fed.clients[u], seed=r * 10 + u, client=u)
            for u in range(2)
        ]
        params = [p + (a + b) / 2 for p, a, b in zip(params, *deltas, strict=True)]
        spent.append(trainer.epsilon(0))
    assert trainer.accuracy(params, fed.test) > 0.5
    assert 0 < spent[0] < spent[1] < spent[2]
    assert trainer.epsilon(1) == pytest.approx(spent[2], rel=0.2)  # similar shard sizes
    assert trainer.epsilon(2) == 0.0


def test_dp_sgd_noise_comes_from_the_seed() -> None:
    fed = split_digits(2, alpha=100.0, seed=0)
    params = get_params(make_model("mlp", seed=0))

    def update(seed: int) -> torch.Tensor:
        t = Trainer(make_model("mlp", seed=0), epochs=1, device=CPU, dp_sgd=DPSGD(1.0, 1.0, 1e-3))
        return torch.cat([d.flatten() for d in t.local_update(params, fed.clients[0], seed=seed)])

    assert torch.equal(update(1), update(1))
    assert not torch.equal(update(1), update(2))


@pytest.mark.parametrize(
    ("sigma", "clip", "delta"), [(-1.0, 1.0, 1e-3), (1.0, 0.0, 1e-3), (1.0, 1.0, 1.0)]
)
def test_bad_dp_sgd_parameters_are_refused(sigma: float, clip: float, delta: float) -> None:
    with pytest.raises(ConfigError) as err:
        DPSGD(sigma, clip, delta)
    assert err.value.parameter == "dp_sgd"
    with pytest.raises(ConfigError):
        Trainer(make_model(), device=CPU).epsilon()


def test_mnist_loads_offline_and_splits_non_iid() -> None:
    images, labels, n_train = load_mnist()
    assert images.shape == (70_000, 784) and labels.shape == (70_000,) and n_train == 60_000
    assert images.dtype == np.float32 and 0 <= images.min() and images.max() <= 1
    assert np.bincount(labels).min() > 6000
    fed = split_mnist(20, alpha=0.5, seed=1)
    assert sum(len(s) for s in fed.clients.values()) == 60_000 and len(fed.test) == 10_000
    assert make_model("linear", inputs=784)(fed.test.x[:2]).shape == (2, 10)


def test_the_mnist_unpickler_runs_no_code() -> None:
    """A pickle that would call os.system is refused by name, before anything runs."""

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, ("echo pwned",))

    data = gzip.decompress(gzip.compress(pickle.dumps(Evil())))
    with pytest.raises(pickle.UnpicklingError, match="not a numpy array part"):
        _ArraysOnly(io.BytesIO(data)).load()


def test_the_recipe_epsilon_equals_opacus_live_accountant() -> None:
    """Participants report DP-SGD's epsilon from the recipe alone (so a restart cannot reset
    it): it must equal what Opacus's accountant counted while training."""
    fed = split_digits(3, alpha=100.0, seed=0)
    recipe = DPSGD(1.0, 1.0, 1e-3)
    trainer = Trainer(make_model("mlp", seed=0), epochs=2, batch_size=32, device=CPU, dp_sgd=recipe)
    params = get_params(make_model("mlp", seed=0))
    for r in range(1, 4):
        trainer.local_update(params, fed.clients[0], seed=r)
        counted = dp_sgd_epsilon(recipe, len(fed.clients[0]), batch_size=32, epochs=2, rounds=r)
        assert trainer.epsilon() == pytest.approx(counted, rel=1e-12)

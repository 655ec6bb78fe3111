"""Local PyTorch training on scikit-learn's digits, split non-IID across clients, and FedAvg.

The data ships with scikit-learn (nothing is downloaded). Clients get Dirichlet(alpha)
shares of each class (Hsu et al. 2019): small alpha gives each client few classes. A client's
update is the delta of its weights after local SGD, scaled by its FedAvg weight
n_u / sum_v n_v; the secure sum of those scaled deltas over the survivors U, divided by the
survivors' total weight, is FedAvg's step (McMahan et al. 2017):

    w_{t+1} = w_t + sum_{u in U} (n_u / N) Delta_u / sum_{u in U} (n_u / N)

Training runs on CUDA when it is available and on the CPU otherwise; randomness (split,
initialisation, shuffling) comes from explicit seeds.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from secagg.errors import ConfigError

Params = list[torch.Tensor]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Shard:
    """One client's (or the test set's) examples: 8x8 images in [0, 1] and labels."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Federation:
    """The digits split: one shard per client and a held-out test shard."""

    clients: dict[int, Shard]
    test: Shard

    def fedavg_weights(self, ids: Sequence[int] | None = None) -> dict[int, float]:
        """n_u / N over ``ids`` (all clients by default); each in [0, 1], summing to 1."""
        ids = list(self.clients) if ids is None else list(ids)
        total = sum(len(self.clients[u]) for u in ids)
        return {u: len(self.clients[u]) / total for u in ids}


def split_digits(
    num_clients: int, *, alpha: float = 0.5, test_fraction: float = 0.2, seed: int = 0
) -> Federation:
    """Splits digits into a test set and ``num_clients`` Dirichlet(``alpha``) shards.

    Every training example goes to exactly one client, and every client gets at least one
    example of some class (the proportions are redrawn until they do, as is usual).
    """
    if not 0 < test_fraction < 1:
        raise ConfigError("test_fraction must be in (0, 1)", parameter="test_fraction")
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)  # data split only; nothing secret comes from it
    order = rng.permutation(len(labels))
    n_test = round(test_fraction * len(labels))
    return split_dirichlet(images, labels, order[n_test:], order[:n_test], num_clients, alpha, rng)


def split_mnist(num_clients: int, *, alpha: float = 0.5, seed: int = 0) -> Federation:
    """MNIST (:func:`secagg.clients.learning.datasets.load_mnist`): its 60,000 training images split
    into ``num_clients`` Dirichlet(``alpha``) shards, and its 10,000 test images."""
    from .datasets import load_mnist

    images, labels, n_train = load_mnist()
    rng = np.random.default_rng(seed)  # data split only; nothing secret comes from it
    train = rng.permutation(n_train)
    test = np.arange(n_train, len(labels))
    return split_dirichlet(images, labels, train, test, num_clients, alpha, rng)


def split_dirichlet(
    images: np.ndarray,
    labels: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    num_clients: int,
    alpha: float,
    rng: np.random.Generator,
) -> Federation:
    """Each class's training examples split among clients by Dirichlet(alpha) proportions
    (Hsu et al. 2019); proportions are redrawn until no client is empty."""
    if num_clients < 1:
        raise ConfigError("num_clients must be >= 1", parameter="num_clients")
    if not alpha > 0:
        raise ConfigError("alpha must be > 0", parameter="alpha")
    if num_clients > len(train_idx):
        raise ConfigError("more clients than training examples", parameter="num_clients")
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(num_clients)]
        for cls in range(10):
            members = train_idx[labels[train_idx] == cls]
            members = members[rng.permutation(len(members))]
            shares = rng.dirichlet([alpha] * num_clients)
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for client, chunk in enumerate(np.split(members, cuts)):
                parts[client] += chunk.tolist()
        if min(len(p) for p in parts) > 0:
            break
    else:
        raise ConfigError(f"alpha={alpha} leaves a client empty; raise it", parameter="alpha")

    def shard(idx: Sequence[int]) -> Shard:
        index = np.asarray(sorted(idx), dtype=np.int64)
        return Shard(torch.from_numpy(images[index]), torch.from_numpy(labels[index]))

    return Federation({u: shard(p) for u, p in enumerate(parts)}, shard(test_idx.tolist()))


def make_model(kind: str = "mlp", *, seed: int = 0, inputs: int = 64) -> nn.Module:
    """A small classifier of ``inputs`` pixels (8x8 digits by default; 784 for MNIST):
    ``"mlp"`` (inputs-64-10), ``"linear"`` (softmax regression) or ``"cnn"`` (8x8 only)."""
    if kind not in ("mlp", "cnn", "linear"):
        raise ConfigError(
            f"unknown model {kind!r}; use 'mlp', 'linear' or 'cnn'", parameter="model"
        )
    if kind == "cnn" and inputs != 64:
        raise ConfigError("the cnn takes 8x8 digits (inputs=64)", parameter="model")
    with torch.random.fork_rng(devices=[]):  # seeds the initialisation, not the global RNG
        torch.manual_seed(seed)
        if kind == "linear":
            return nn.Sequential(nn.Linear(inputs, 10))
        if kind == "mlp":
            return nn.Sequential(nn.Linear(inputs, 64), nn.ReLU(), nn.Linear(64, 10))
        return nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 10),
        )


def get_params(model: nn.Module) -> Params:
    return [p.detach().clone() for p in model.parameters()]


def set_params(model: nn.Module, params: Params) -> None:
    with torch.no_grad():
        for p, value in zip(model.parameters(), params, strict=True):
            p.copy_(value)


@dataclass(frozen=True)
class DPSGD:
    """Example-level DP-SGD (Abadi et al. 2016) with Opacus: each client's own examples are
    protected, by per-example gradient clipping and Gaussian noise on every step.

    Parameters
    ----------
    noise_multiplier:
        sigma: the noise std over ``max_grad_norm`` (Opacus's ``noise_multiplier``).
    max_grad_norm:
        C: each example's gradient is clipped to this L2 norm.
    delta:
        delta of the reported epsilon (per client, over its own examples).

    Opacus draws batches by Poisson sampling (rate batch_size / n_u) and accounts with RDP. Its
    noise is floating-point Gaussian from a seeded ``torch.Generator`` (``secure_mode`` needs
    torchcsprng, which no registry here ships): this is the usual DP-SGD, not the integer
    noise of :mod:`secagg.dp`.
    """

    noise_multiplier: float
    max_grad_norm: float
    delta: float

    def __post_init__(self) -> None:
        if not self.noise_multiplier >= 0 or not self.max_grad_norm > 0:
            raise ConfigError("noise_multiplier >= 0 and max_grad_norm > 0", parameter="dp_sgd")
        if not 0 < self.delta < 1:
            raise ConfigError("delta must be in (0, 1)", parameter="dp_sgd")


def dp_sgd_epsilon(
    dp_sgd: DPSGD, examples: int, *, batch_size: int, epochs: int, rounds: int
) -> float:
    """The example-level epsilon of ``rounds`` rounds of ``epochs`` DP-SGD epochs over
    ``examples`` examples, as Opacus accounts them (Poisson rate 1 / ceil(n / batch), that
    many steps an epoch), from the recipe alone: it does not depend on a process's state, so
    it survives restarts."""
    from opacus.accountants import RDPAccountant

    steps = math.ceil(examples / batch_size)
    accountant = RDPAccountant()
    accountant.history = [(dp_sgd.noise_multiplier, 1.0 / steps, steps * epochs * rounds)]
    return float(accountant.get_epsilon(dp_sgd.delta))


class Trainer:
    """Local SGD on one client's shard (DP-SGD with ``dp_sgd``).

    Parameters
    ----------
    model:
        The architecture (its weights are overwritten by each call).
    epochs, lr, batch_size:
        Local training schedule.
    device:
        Where to train (default: CUDA when available).
    dp_sgd:
        Train with Opacus's DP-SGD; :meth:`epsilon` reports each client's example-level
        epsilon so far.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        epochs: int = 2,
        lr: float = 0.3,
        batch_size: int = 32,
        device: torch.device | None = None,
        dp_sgd: DPSGD | None = None,
    ) -> None:
        if epochs < 0 or lr <= 0 or batch_size < 1:
            raise ConfigError("epochs >= 0, lr > 0 and batch_size >= 1", parameter="trainer")
        self.device = device or default_device()
        self.model = model.to(self.device)
        self.epochs, self.lr, self.batch_size = epochs, lr, batch_size
        self.dp_sgd = dp_sgd
        self._accountants: dict[int, Any] = {}

    def epsilon(self, client: int = 0) -> float:
        """The example-level epsilon (at ``dp_sgd.delta``) of ``client``'s training so far."""
        if self.dp_sgd is None:
            raise ConfigError("epsilon needs dp_sgd", parameter="dp_sgd")
        accountant = self._accountants.get(client)
        return 0.0 if accountant is None else float(accountant.get_epsilon(self.dp_sgd.delta))

    def local_update(
        self, global_params: Params, data: Shard, *, seed: int, client: int = 0
    ) -> Params:
        """Delta_u = (weights after local training) - ``global_params``, on the device
        (``client`` keys the DP-SGD accountant)."""
        if self.dp_sgd is not None:
            return self._dp_sgd_update(global_params, data, seed=seed, client=client)
        start = [p.to(self.device) for p in global_params]
        set_params(self.model, start)
        optimizer = torch.optim.SGD(self.model.parameters(), lr=self.lr)
        x, y = data.x.to(self.device), data.y.to(self.device)
        shuffle = torch.Generator().manual_seed(seed)
        self.model.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(data), generator=shuffle).to(self.device)
            for i in range(0, len(data), self.batch_size):
                batch = order[i : i + self.batch_size]
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(self.model(x[batch]), y[batch])
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
        return [p.detach() - s for p, s in zip(self.model.parameters(), start, strict=True)]

    def _dp_sgd_update(
        self, global_params: Params, data: Shard, *, seed: int, client: int
    ) -> Params:
        from opacus import PrivacyEngine
        from opacus.accountants import RDPAccountant

        assert self.dp_sgd is not None
        start = [p.to(self.device) for p in global_params]
        model = copy.deepcopy(self.model)
        set_params(model, start)
        generator = torch.Generator().manual_seed(seed)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(data.x, data.y),
            batch_size=self.batch_size,
            generator=generator,
        )
        with warnings.catch_warnings():  # "Secure RNG turned off": see DPSGD's docstring
            warnings.filterwarnings("ignore", message="Secure RNG turned off")
            engine = PrivacyEngine(accountant="rdp")
        engine.accountant = self._accountants.setdefault(client, RDPAccountant())
        optimizer = torch.optim.SGD(model.parameters(), lr=self.lr)
        private, optimizer, loader = engine.make_private(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=self.dp_sgd.noise_multiplier,
            max_grad_norm=self.dp_sgd.max_grad_norm,
            poisson_sampling=True,
            noise_generator=generator,
        )
        private.train()
        with warnings.catch_warnings():  # Opacus's hooks on inputs that need no gradient
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            for _ in range(self.epochs):
                for x, y in loader:
                    optimizer.zero_grad()
                    if len(y):
                        loss = nn.functional.cross_entropy(
                            private(x.to(self.device)), y.to(self.device)
                        )
                        loss.backward()  # type: ignore[no-untyped-call]
                    optimizer.step()
        return [p.detach() - s for p, s in zip(model.parameters(), start, strict=True)]

    def accuracy(self, params: Params, data: Shard) -> float:
        set_params(self.model, [p.to(self.device) for p in params])
        self.model.eval()
        with torch.no_grad():
            logits = self.model(data.x.to(self.device))
        return float((logits.argmax(dim=1).cpu() == data.y).float().mean())


def fedavg_step(params: Params, weighted_sum: Params, survivor_weight: float) -> Params:
    """w + (sum_{u in U} w_u Delta_u) / sum_{u in U} w_u."""
    if not survivor_weight > 0:
        raise ConfigError("no survivor weight: nothing to average", parameter="survivors")
    return [p + s.to(p.device) / survivor_weight for p, s in zip(params, weighted_sum, strict=True)]


def weighted_sum(updates: Mapping[int, Params], weights: Mapping[int, float]) -> Params:
    """The plain (insecure) sum_u w_u Delta_u: the reference the secure sum must match."""
    first = next(iter(updates.values()))
    return [
        sum((weights[u] * update[i] for u, update in updates.items()), torch.zeros_like(layer))
        for i, layer in enumerate(first)
    ]


def flatten_params(params: Params) -> torch.Tensor:
    """The layers as one flat vector (on their device)."""
    return torch.cat([p.reshape(-1) for p in params])


def unflatten_params(flat: torch.Tensor, like: Params) -> Params:
    """Split ``flat`` into tensors shaped like ``like`` (the inverse of flatten_params)."""
    sizes = [p.numel() for p in like]
    if flat.numel() != sum(sizes):
        raise ConfigError(f"{flat.numel()} values for a model of {sum(sizes)} parameters")
    return [part.reshape(p.shape) for part, p in zip(torch.split(flat, sizes), like, strict=True)]

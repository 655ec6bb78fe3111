"""Distributed DP against central DP, local DP-SGD and no DP, at equal epsilon and rounds.

One run of :func:`run` trains FedAvg on MNIST split non-IID (Dirichlet) over n clients, every
client in every round (user-level DP over the n clients, delta = 1/n):

* ``none``: FedAvg of the raw updates, weighted by n_u (no DP);
* ``clipped``: each update L2-clipped to c, uniform average, no noise (DP-FedAvg without
  noise: what clipping alone costs);
* ``central``: the exact sum of clipped updates plus N(0, (z c)^2) once, by a trusted server
  (McMahan et al. 2018); z calibrated to epsilon by ``dp-accounting``;
* ``ddg``: the distributed discrete Gaussian through ``secaggplus`` (``secagg.dp``); z
  calibrated so that :class:`~secagg.dp.accounting.PrivacyAccountant` gives epsilon;
* ``dp-sgd``: every client trains with Opacus's DP-SGD for example-level epsilon over its own
  examples (delta_u = 1/n_u), FedAvg weighted by n_u: a different unit of privacy (examples,
  not users), reported beside the others as the issue asks.

It also sweeps the modulus bits b of ``ddg`` at the largest epsilon, and times one client's
DP encoding (rotation, rounding, sampling) against its masking work in the same round.
Reproduce with ``make bench-dp`` (writes ``benchmarks/dp/``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from secagg import protocols, simulate
from secagg.dp import DistributedDP
from secagg.dp.accounting import PrivacyAccountant, gaussian_epsilon
from secagg.dp.encoding import DPEncoder
from secagg.dp.sampling import IntegerSampler
from secagg.errors import ConfigError
from secagg.protocol import Session
from secagg.randomness import SeededRandom

from ..learning.trainer import (
    DPSGD,
    Federation,
    Params,
    Trainer,
    flatten_params,
    get_params,
    make_model,
    split_mnist,
    unflatten_params,
)

__all__ = ["DPBenchConfig", "calibrate", "main", "run", "write"]


@dataclass(frozen=True)
class DPBenchConfig:
    """What one comparison runs (defaults: the committed ``benchmarks/dp`` run)."""

    clients: int = 100
    rounds: int = 20
    alpha: float = 0.5
    model: str = "linear"
    local_epochs: int = 1
    lr: float = 0.5
    batch_size: int = 32
    clip: float = 1.0
    server_lr: float = 1.0
    epsilons: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    bits: int = 20
    bits_sweep: tuple[int, ...] = (8, 10, 12, 16, 20)
    repeats: int = 3
    dp_sgd_repeats: int = 1
    dp_sgd_clip: float = 1.0
    corrupted_fraction: float = 0.05
    seed: int = 0

    @property
    def delta(self) -> float:
        return 1.0 / self.clients

    @property
    def contributors(self) -> int:
        """Honest noise shares in every sum: all n survive (min_survivors = n), up to
        floor(corrupted_fraction n) of them the adversary's (SecAgg+'s threat model)."""
        return self.clients - math.floor(self.corrupted_fraction * self.clients)


@dataclass
class Run:
    mechanism: str
    epsilon: float | None
    accuracy: float | None
    noise_multiplier: float | None = None
    bits: int | None = None
    repeat: int = 0
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


def calibrate(epsilon_of: Callable[[float], float], target: float) -> float:
    """The smallest noise multiplier z (to 1e-4 relative) with epsilon_of(z) <= target;
    epsilon_of must decrease in z. :class:`ConfigError` when no z up to 2^20 reaches it (a
    modulus too small: the rounding of d entries alone outweighs all the noise it can hold)."""
    lo, hi = 1e-3, 1.0
    while epsilon_of(hi) > target:
        if hi >= 2.0**20:
            raise ConfigError(f"epsilon {target:g} is out of reach", parameter="epsilon")
        lo, hi = hi, hi * 2
    while hi / lo > 1 + 1e-4:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if epsilon_of(mid) <= target else (mid, hi)
    return hi


def _clip(v: torch.Tensor, c: float) -> torch.Tensor:
    norm = float(v.norm())
    return v * min(1.0, c / norm) if norm > 0 else v


class _Experiment:
    def __init__(self, cfg: DPBenchConfig, fed: Federation) -> None:
        self.cfg, self.fed = cfg, fed
        self.inputs = int(fed.test.x.shape[1])
        self.initial = get_params(make_model(cfg.model, seed=cfg.seed, inputs=self.inputs))
        self.device = torch.device("cpu")

    def trainer(self, dp_sgd: DPSGD | None = None) -> Trainer:
        cfg = self.cfg
        model = make_model(cfg.model, seed=cfg.seed, inputs=self.inputs)
        return Trainer(
            model,
            epochs=cfg.local_epochs,
            lr=cfg.lr,
            batch_size=cfg.batch_size,
            device=self.device,
            dp_sgd=dp_sgd,
        )

    def train(
        self,
        aggregate: Callable[[int, dict[int, torch.Tensor]], torch.Tensor],
        trainer: Trainer | None = None,
        repeat: int = 0,
    ) -> float:
        """FedAvg for cfg.rounds rounds; ``aggregate(round, flat updates)`` returns the flat
        step to add to the model. The final test accuracy. ``repeat`` changes every seed of
        local training (shuffles, DP-SGD noise)."""
        trainer = trainer or self.trainer()
        params: Params = [p.clone() for p in self.initial]
        for r in range(self.cfg.rounds):
            updates = {
                u: flatten_params(
                    trainer.local_update(
                        params, shard, seed=(repeat << 32) + 1000 * r + u, client=u
                    )
                ).double()
                for u, shard in self.fed.clients.items()
            }
            step = unflatten_params(aggregate(r, updates).float(), params)
            params = [p + s for p, s in zip(params, step, strict=True)]
        return trainer.accuracy(params, self.fed.test)

    def weighted(self, _: int, updates: dict[int, torch.Tensor]) -> torch.Tensor:
        w = self.fed.fedavg_weights()
        return sum((w[u] * x for u, x in updates.items()), torch.zeros_like(updates[0]))

    def clipped_mean(self, noise_std: float, seed: int) -> Callable[..., torch.Tensor]:
        cfg, gen = self.cfg, torch.Generator().manual_seed(seed)

        def aggregate(_: int, updates: dict[int, torch.Tensor]) -> torch.Tensor:
            total = sum(
                (_clip(x, cfg.clip) for x in updates.values()), torch.zeros_like(updates[0])
            )
            noise = torch.randn(total.shape, generator=gen, dtype=torch.float64) * noise_std
            return cfg.server_lr * (total + noise) / len(updates)

        return aggregate

    def ddg(self, dp: DistributedDP, repeat: int = 0) -> Callable[..., torch.Tensor]:
        cfg = self.cfg
        proto = protocols.get(
            "secaggplus",
            num_clients=cfg.clients,
            min_survivors=cfg.clients,
            corrupted_fraction=cfg.corrupted_fraction,
            dp=dp,
        )

        def aggregate(r: int, updates: dict[int, torch.Tensor]) -> torch.Tensor:
            inputs = {u: x.numpy() for u, x in updates.items()}
            result = simulate(proto, inputs, seed=(((cfg.seed << 8) + repeat) << 20) + r)
            return cfg.server_lr * torch.from_numpy(np.asarray(result.sum)) / len(updates)

        return aggregate


def _ddg_config(cfg: DPBenchConfig, dim: int, epsilon: float, bits: int) -> DistributedDP:
    def make(z: float) -> DistributedDP:
        return DistributedDP(
            l2_clip=cfg.clip,
            noise_multiplier=z,
            min_contributors=cfg.contributors,
            delta=cfg.delta,
            bits=bits,
        )

    z = calibrate(
        lambda z: PrivacyAccountant(make(z), cfg.clients, dim).epsilon(cfg.rounds), epsilon
    )
    return make(z)


def encoding_cost(cfg: DPBenchConfig, dp: DistributedDP, dim: int) -> dict[str, float]:
    """Seconds of one client's DP encoding by step, and the masking work per client of a
    ``secaggplus`` round with the same n and d (measured in the same process)."""
    session = Session(bytes(32), dim, 0)
    proto = protocols.get("secaggplus", num_clients=cfg.clients, min_survivors=cfg.clients, dp=dp)
    encoder = proto.encoder(session)
    assert isinstance(encoder, DPEncoder)
    x = np.random.default_rng(0).normal(size=dim) * 0.01
    reps = 20
    out = {"rotation": 0.0, "rounding": 0.0, "sampling": 0.0}
    for i in range(reps):
        sampler = IntegerSampler(SeededRandom(i))
        t0 = time.perf_counter()
        y = encoder.scaled(x)
        t1 = time.perf_counter()
        encoder.round(y, sampler)
        t2 = time.perf_counter()
        sampler.discrete_gaussian(encoder.params.variance, dim)
        t3 = time.perf_counter()
        out["rotation"] += (t1 - t0) / reps
        out["rounding"] += (t2 - t1) / reps
        out["sampling"] += (t3 - t2) / reps
    plain = protocols.get("secaggplus", num_clients=cfg.clients, min_survivors=cfg.clients)
    inputs = {u: np.random.default_rng(u).normal(size=dim) * 0.01 for u in range(cfg.clients)}
    stats = simulate(plain, inputs, seed=1).stats["client"]
    masking = sum(s.seconds for name, s in stats.items() if name != "input-encoding")
    out["masking"] = masking / cfg.clients
    out["quantize"] = stats["input-encoding"].seconds / cfg.clients
    out["dp_encoding"] = out["rotation"] + out["rounding"] + out["sampling"]
    return out


def run(cfg: DPBenchConfig, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every mechanism at every epsilon; returns what ``write`` stores."""
    fed = split_mnist(cfg.clients, alpha=cfg.alpha, seed=cfg.seed)
    exp = _Experiment(cfg, fed)
    dim = sum(p.numel() for p in exp.initial)
    runs: list[Run] = []

    def timed(result: Run, started: float) -> None:
        result.seconds = time.perf_counter() - started
        runs.append(result)
        log(
            f"{result.mechanism:8} eps={result.epsilon} bits={result.bits} "
            f"z={result.noise_multiplier} acc={result.accuracy} ({result.seconds:.0f} s)"
        )

    def ddg(eps: float, bits: int, repeat: int) -> None:
        t0 = time.perf_counter()
        try:
            dp = _ddg_config(cfg, dim, eps, bits)
        except ConfigError as exc:  # too few bits for this epsilon at any noise
            timed(Run("ddg", eps, None, None, bits, repeat, detail={"unreachable": str(exc)}), t0)
            return
        variance = dp.parameters(cfg.clients, dim).variance
        acc = exp.train(exp.ddg(dp, repeat), repeat=repeat)
        detail = {"variance": variance}
        timed(Run("ddg", eps, acc, dp.noise_multiplier, bits, repeat, detail=detail), t0)

    t0 = time.perf_counter()
    timed(Run("none", None, exp.train(exp.weighted)), t0)
    t0 = time.perf_counter()
    timed(Run("clipped", None, exp.train(exp.clipped_mean(0.0, cfg.seed))), t0)
    for eps in cfg.epsilons:
        z = calibrate(lambda z: gaussian_epsilon(z, cfg.rounds, cfg.delta), eps)
        for repeat in range(cfg.repeats):
            t0 = time.perf_counter()
            noise = exp.clipped_mean(z * cfg.clip, (cfg.seed << 8) + 1 + repeat)
            acc = exp.train(noise, repeat=repeat)
            timed(Run("central", eps, acc, z, repeat=repeat), t0)
            ddg(eps, cfg.bits, repeat)
            if repeat < cfg.dp_sgd_repeats:  # ~100 s a run: fewer repeats by default
                t0 = time.perf_counter()
                timed(_dp_sgd(exp, eps, repeat), t0)
    top = max(cfg.epsilons)
    for bits in cfg.bits_sweep:  # one repeat each (the grid's first repeat at cfg.bits)
        if bits != cfg.bits:
            ddg(top, bits, 0)
    cost = encoding_cost(cfg, _ddg_config(cfg, dim, top, cfg.bits), dim)
    return {
        "config": asdict(cfg),
        "dim": dim,
        "contributors": cfg.contributors,
        "runs": [asdict(r) for r in runs],
        "cost": cost,
    }


def _dp_sgd(exp: _Experiment, eps: float, repeat: int) -> Run:
    from opacus.accountants.utils import get_noise_multiplier

    cfg = exp.cfg
    sigmas = {}
    for u, shard in exp.fed.clients.items():
        rate = min(1.0, cfg.batch_size / len(shard))
        sigmas[u] = get_noise_multiplier(
            target_epsilon=eps,
            target_delta=1.0 / len(shard),
            sample_rate=rate,
            epochs=cfg.rounds * cfg.local_epochs,
            accountant="rdp",
        )
    trainers = {
        u: exp.trainer(DPSGD(sigma, cfg.dp_sgd_clip, 1.0 / len(exp.fed.clients[u])))
        for u, sigma in sigmas.items()
    }

    class PerClient(Trainer):
        def __init__(self) -> None:  # dispatches to each client's own DP-SGD trainer
            self._by = trainers

        def local_update(self, params: Params, data: Any, *, seed: int, client: int = 0) -> Params:
            return self._by[client].local_update(params, data, seed=seed, client=client)

        def accuracy(self, params: Params, data: Any) -> float:
            return next(iter(self._by.values())).accuracy(params, data)

    acc = exp.train(exp.weighted, PerClient(), repeat)
    spent = max(t.epsilon(u) for u, t in trainers.items())
    return Run(
        "dp-sgd",
        eps,
        acc,
        float(np.median(list(sigmas.values()))),
        repeat=repeat,
        detail={"example_epsilon_max": spent},
    )


def write(results: dict[str, Any], folder: Path) -> None:
    """results.json, accuracy_vs_epsilon.png and table.md in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    from .dp_report import plot, table

    plot(results, folder / "accuracy_vs_epsilon.png")
    (folder / "table.md").write_text(table(results))


def main() -> None:
    """``python -m secagg.clients.bench.dp [folder]``: run the comparison, write its outputs
    and the DP section of benchmarks/RESULTS.md."""
    import sys

    from .dp_report import DP_BEGIN, DP_END

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/dp")
    results = run(DPBenchConfig())
    write(results, folder)
    readme = folder.parent / "RESULTS.md"
    if readme.is_file():
        text = readme.read_text()
        if DP_BEGIN in text and DP_END in text:
            head, rest = text.split(DP_BEGIN, 1)
            _, tail = rest.split(DP_END, 1)
            body = (folder / "table.md").read_text()
            readme.write_text(f"{head}{DP_BEGIN}\n{body}{DP_END}{tail}")


if __name__ == "__main__":
    main()

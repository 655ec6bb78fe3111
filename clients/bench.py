"""The benchmark grid: the cost of every protocol over d, n and dropout, with references.

A grid case is one full in-process round (:func:`secagg.simulate`) of one protocol on
``n`` clients with ``d``-entry updates, a fraction of which vanish at random phases. Each
case reports, from the round's own statistics: client seconds per phase (mean per client),
server seconds per phase, bytes sent per client, the expansion over float32 (4 d bytes) and
the process's peak resident memory during the round.

Absolute seconds vary between machines; ratios much less. Every case is also reported against
references measured in the same run:

* ``keystream``: the raw ChaCha20 keystream (``cryptography``, in place) over d uint32 entries;
  a client's time in keystreams says how many mask-sized PRG fills it costs;
* ``add``: memory bandwidth, a numpy uint32 add of d entries; the server's time in adds;
* ``tenseal``: TenSEAL alone encrypting and serializing the same d values (CKKS rows);
* ``flower``: Flower's SecAgg+ client masking of the same d entries with the same number of
  neighbours (``secaggplus_utils.pseudo_rand_gen`` per mask, as ``secaggplus_mod`` does),
  when the ``flower`` extra is installed;
* ``plain``: the ``plain`` protocol's case with the same n, d and dropout (overhead vs no
  cryptography at all).

Cases whose estimated time is over a cap (``cap_seconds``) are listed as skipped with their
estimate rather than run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import secagg.protocols as protocols
from secagg import simulate
from secagg.errors import AbortError, ConfigError
from secagg.protocol import Protocol

__all__ = [
    "Case",
    "GridRun",
    "References",
    "estimate_seconds",
    "finish_grid",
    "grid",
    "measure_references",
    "peak_rss_reset",
    "run_case",
]

PROTOCOLS = ("plain", "secagg", "secaggplus", "ckks", "paillier")
DEFAULT_CAP = 120.0


@dataclass(frozen=True)
class Case:
    """One grid point."""

    protocol: str
    n: int
    d: int
    dropout: float
    device: str = "cpu"

    @property
    def id(self) -> str:
        return f"{self.protocol}-n{self.n}-d{self.d}-drop{int(100 * self.dropout)}-{self.device}"


def grid(kind: str, *, cuda: bool = False) -> list[Case]:
    """``"quick"``: tiny sizes (seconds, CI's smoke test). ``"full"``: d in {1e4, 1e5, 1e6},
    n in {10, 100} (and 1000 for secaggplus), dropout in {0, 10%, 30%}. With ``cuda``, the
    quantizing protocols also run on CUDA inputs."""
    if kind == "quick":
        ds, ns, drops = [1_000], [10], [0.0, 0.3]
    elif kind == "full":
        ds, ns, drops = [10_000, 100_000, 1_000_000], [10, 100], [0.0, 0.1, 0.3]
    else:
        raise ConfigError(f"grid is 'quick' or 'full', not {kind!r}", parameter="grid")
    cases = []
    for protocol in PROTOCOLS:
        sizes = [*ns, 1000] if protocol == "secaggplus" and kind == "full" else ns
        devices = ["cpu", "cuda"] if cuda and protocol not in ("ckks", "paillier") else ["cpu"]
        for device in devices:
            for d in ds:
                for n in sizes:
                    cases += [Case(protocol, n, d, drop, device) for drop in drops]
    return cases


def make_protocol(case: Case) -> Protocol[Any]:
    """The protocol of a case: clip 1, 16-bit quantization in Z_2^32 (n <= 65536); the
    masking protocols are configured for the case's dropout rate (at least their default
    10%), as a deployment expecting it would be."""
    kwargs: dict[str, Any] = {"num_clients": case.n, "clip": 1.0}
    if case.protocol != "ckks":
        kwargs["quant_bits"] = 16
    if case.protocol in ("secagg", "secaggplus"):
        kwargs["dropout_rate"] = max(0.1, case.dropout)
    proto: Protocol[Any] = protocols.get(case.protocol, **kwargs)
    return proto


def estimate_seconds(case: Case) -> float:
    """A rough cost model (2 cores, CPU) from this project's measurements, to skip cases over
    the cap before running them: seconds per client-entry times n d."""
    per_entry = {
        "plain": 2e-9,
        "ckks": 7e-7,  # TenSEAL encrypt ~6e-7 s per value, plus adds and decryption
        "paillier": 1.1e-4,  # phe raw_encrypt on 2048-bit keys, 81 values per ciphertext
    }
    if case.protocol in per_entry:
        return per_entry[case.protocol] * case.n * case.d
    try:
        k = int(make_protocol(case).num_neighbors)  # type: ignore[attr-defined]
    except ConfigError:
        return 0.0  # not configurable: run_case reports it at once
    return 2.5e-9 * (k + 1) * case.n * case.d + 2e-6 * case.n * k


class LazyInputs(Mapping[int, Any]):
    """Updates generated on demand, so a case never holds n x d floats."""

    def __init__(self, n: int, d: int, device: str) -> None:
        self.n, self.d, self.device = n, d, device

    def __getitem__(self, cid: int) -> Any:
        if not 0 <= cid < self.n:
            raise KeyError(cid)
        x = np.random.default_rng(cid).uniform(-1, 1, self.d).astype(np.float32)
        if self.device == "cpu":
            return x
        import torch

        return torch.from_numpy(x).to(self.device)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


def dropouts(case: Case, proto: Protocol[Any]) -> dict[int, Any]:
    """floor(dropout n) clients, each vanishing at a phase drawn at random (seeded)."""
    rng = np.random.default_rng(case.n * 7919 + case.d)
    k = math.floor(case.dropout * case.n)
    chosen = rng.choice(case.n, size=k, replace=False)
    return {int(u): proto.phases[int(rng.integers(len(proto.phases)))] for u in chosen}


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def peak_rss_reset() -> Callable[[], float]:
    """Reset the process's peak RSS (Linux ``clear_refs`` 5); returns a function giving the
    peak since then, in MiB above the RSS at the reset."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        base = _rss_kib("VmRSS")
    except OSError:
        return lambda: float("nan")
    return lambda: max(0.0, (_rss_kib("VmHWM") - base) / 1024)


def run_case(case: Case, *, clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Run one round of ``case``; the row of figures the report is made of."""
    row: dict[str, Any] = {**asdict(case), "id": case.id}
    try:
        proto = make_protocol(case)
    except ConfigError as exc:  # e.g. no safe (k, t) for this n at this dropout rate
        return {**row, "aborted": f"no parameters: {exc}", "seconds": 0.0}
    row["params"] = _params(proto)
    drops = dropouts(case, proto)
    peak = peak_rss_reset()
    t0 = clock()
    try:
        result = simulate(proto, LazyInputs(case.n, case.d, case.device), dropouts=drops, seed=1)
    except AbortError as exc:  # a result too: these dropouts defeat these parameters
        return {**row, "aborted": exc.reason, "seconds": clock() - t0}
    seconds = clock() - t0
    # mean per client that worked in the phase (dropped ones stop working)
    client = {p: s.seconds / (s.messages_sent or case.n) for p, s in result.stats["client"].items()}
    server = {p: s.seconds for p, s in result.stats["server"].items()}
    if "key_holder" in result.stats:
        server.update({f"key_holder:{p}": s.seconds for p, s in result.stats["key_holder"].items()})
    per_client = result.bytes_per_client()
    row.update(
        aborted=None,
        seconds=seconds,
        client_seconds=client,
        server_seconds=server,
        client_total=sum(client.values()),
        server_total=sum(server.values()),
        bytes_per_client=per_client,
        expansion=per_client / (4 * case.d),
        peak_rss_mib=peak(),
        survivors=len(result.survivors),
    )
    return row


def _params(proto: Protocol[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("num_neighbors", "threshold"):
        if hasattr(proto, name):
            out[name] = getattr(proto, name)
    return out


@dataclass
class References:
    """Seconds of each reference, by d (and by (n, d) for Flower), measured in this run."""

    keystream: dict[int, float]
    add: dict[int, float]
    tenseal: dict[int, float]
    flower: dict[str, float | None]  # by flower_key(d, k)


def _best(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def keystream_seconds(d: int) -> float:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    buf = np.zeros(d, dtype=np.uint32)
    view = buf.view(np.uint8).data
    key = bytes(range(32))

    def fill() -> None:
        Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor().update_into(view, view)

    return _best(fill)


def add_seconds(d: int) -> float:
    a = np.ones(d, dtype=np.uint32)
    b = np.arange(d, dtype=np.uint32)
    return _best(lambda: np.add(a, b, out=a))


def tenseal_seconds(d: int) -> float:
    import tenseal as ts

    context = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 49])
    context.global_scale = 2**40
    x = np.random.default_rng(0).uniform(-1, 1, d)

    def encrypt() -> None:
        for i in range(0, d, 4096):
            ts.ckks_vector(context, x[i : i + 4096].tolist()).serialize()

    return _best(encrypt, repeat=2)


def flower_seconds(k: int, d: int) -> float | None:
    """Flower's SecAgg+ client masking: k pairwise masks and a self mask, added mod 2^32."""
    try:
        from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen
    except ImportError:
        return None
    keys = [bytes([i % 256]) * 32 for i in range(k + 1)]

    def mask() -> None:
        acc = np.zeros(d, dtype=np.int64)
        for key in keys:
            acc = acc + pseudo_rand_gen(key, 1 << 32, [(d,)])[0]
        acc %= 1 << 32

    return _best(mask, repeat=2)


def flower_key(d: int, k: int) -> str:
    """Flower's reference is per (d, k): k masks of d entries plus the self mask."""
    return f"d={d},k={k}"


def measure_references(cases: list[Case]) -> References:
    ds = sorted({c.d for c in cases})
    flower: dict[str, float | None] = {}
    for c in cases:
        if c.protocol == "secaggplus" and c.device == "cpu":
            try:
                k = make_protocol(c).num_neighbors  # type: ignore[attr-defined]
            except ConfigError:
                continue
            if flower_key(c.d, k) not in flower:
                flower[flower_key(c.d, k)] = flower_seconds(k, c.d)
    return References(
        keystream={d: keystream_seconds(d) for d in ds},
        add={d: add_seconds(d) for d in ds},
        tenseal={d: tenseal_seconds(d) for d in ds},
        flower=flower,
    )


@dataclass
class GridRun:
    """A finished grid: its rows, what was skipped, the references and the gas table."""

    kind: str
    cuda: bool
    rows: list[dict[str, Any]]
    skipped: list[Case]
    references: References
    gas: str | None

    def as_json(self) -> dict[str, Any]:
        import platform

        out = asdict(self)
        out["machine"] = {"machine": platform.machine(), "python": platform.python_version()}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GridRun:
        refs = data["references"]
        return cls(
            kind=data["kind"],
            cuda=data["cuda"],
            rows=list(data["rows"]),
            skipped=[Case(**c) for c in data["skipped"]],
            references=References(
                keystream={int(d): v for d, v in refs["keystream"].items()},
                add={int(d): v for d, v in refs["add"].items()},
                tenseal={int(d): v for d, v in refs["tenseal"].items()},
                flower=dict(refs["flower"]),
            ),
            gas=data.get("gas"),
        )


def finish_grid(
    kind: str, cuda: bool, rows: list[dict[str, Any]], run: list[Case], skipped: list[Case]
) -> GridRun:
    """Measure the references (and the gas) in this run, after the cases."""
    from secagg.chain.gas import measure_gas

    gas = measure_gas(10, 2) if kind == "full" else measure_gas(4, 1)
    return GridRun(kind, cuda, rows, skipped, measure_references(run), gas.markdown())

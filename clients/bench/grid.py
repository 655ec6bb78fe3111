"""The benchmark grid: the cost of every protocol over d, n and dropout, with references.

A grid case is one full in-process round (:func:`secagg.simulate`) of one protocol on
``n`` clients with ``d``-entry updates, a fraction of which vanish at random phases. Each
case reports, from the round's own statistics: client seconds per phase (mean per client),
all clients' and the server's seconds (the round's compute), bytes sent per client, the
expansion over float32 (4 d bytes) and the round's own peak resident memory.

Absolute seconds vary between machines; ratios much less. Every case is also reported against
references measured in the same run:

* ``keystream``: the raw ChaCha20 keystream (``cryptography``, in place) over d uint32 entries;
  a client's time in keystreams says how many mask-sized PRG fills it costs;
* ``add``: memory bandwidth, a numpy uint32 add of d entries; the server's time in adds;
* ``tenseal``: TenSEAL alone encrypting and serializing the same d values (CKKS rows);
* ``flower``: Flower 1.42's full SecAgg+ round (every client and the server, compute only:
  :mod:`secagg.clients.bench.flower_reference`) at the case's n, d, k, t and dropouts, for each
  secaggplus case, when the ``flower`` extra is installed. Its dropouts are the case's (see
  :func:`flower_dropouts`). Rounds estimated over the cap are reported with their estimate;
* ``plain``: the ``plain`` protocol's case with the same n, d and dropout (overhead vs no
  cryptography at all).

How things are timed, so that a case and its references compare like with like: before its
first case, each protocol runs one small round, untimed (imports, lazy tables, thread pools);
each case is then one round, as in a deployment (and the round repeats each client's work n
times). A Flower reference is one round too, after one small untimed Flower round. The
per-d references (keystream, add, TenSEAL) are one untimed call and then the median of three:
a typical call, as a case is a typical round (the former best of 5 was the luckiest one).

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
    "estimate_flower_case",
    "estimate_seconds",
    "finish_grid",
    "flower_dropouts",
    "flower_key",
    "flower_reference",
    "grid",
    "measure_references",
    "peak_rss_reset",
    "run_case",
    "warm_up",
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


_WARM: set[tuple[str, str]] = set()


def warm_up(protocol: str, device: str = "cpu") -> None:
    """One small untimed round of ``protocol`` (n = 10, d = 1000), once per process: imports,
    lazy tables and thread pools are then not charged to the first measured case."""
    if (protocol, device) in _WARM:
        return
    _WARM.add((protocol, device))
    case = Case(protocol, 10, 1000, 0.0, device)
    try:
        simulate(make_protocol(case), LazyInputs(case.n, case.d, device), seed=0)
    except (AbortError, ConfigError):  # pragma: no cover - a warm-up is best effort
        pass


def run_case(case: Case, *, clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Run one round of ``case`` (after :func:`warm_up` of its protocol); the row of figures
    the report is made of."""
    row: dict[str, Any] = {**asdict(case), "id": case.id}
    try:
        proto = make_protocol(case)
    except ConfigError as exc:  # e.g. no safe (k, t) for this n at this dropout rate
        return {**row, "aborted": f"no parameters: {exc}", "seconds": 0.0}
    row["params"] = _params(proto)
    drops = dropouts(case, proto)
    warm_up(case.protocol, case.device)
    peak = peak_rss_reset()
    t0 = clock()
    try:
        result = simulate(proto, LazyInputs(case.n, case.d, case.device), dropouts=drops, seed=1)
    except AbortError as exc:  # a result too: these dropouts defeat these parameters
        return {**row, "aborted": exc.reason, "seconds": clock() - t0}
    seconds = clock() - t0
    # mean per client that worked in the phase (dropped ones stop working)
    stats = result.stats["client"]
    client = {p: s.seconds / (s.messages_sent or case.n) for p, s in stats.items()}
    server = {p: s.seconds for p, s in result.stats["server"].items()}
    if "key_holder" in result.stats:
        server.update({f"key_holder:{p}": s.seconds for p, s in result.stats["key_holder"].items()})
    clients_all = sum(s.seconds for s in stats.values())
    per_client = result.bytes_per_client()
    row.update(
        aborted=None,
        seconds=seconds,
        client_seconds=client,
        server_seconds=server,
        client_total=sum(client.values()),
        server_total=sum(server.values()),
        clients_all_seconds=clients_all,
        compute_seconds=clients_all + sum(server.values()),
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
    """Seconds of each reference, by d, and Flower's full round by case id, measured in this
    run. A Flower entry (:func:`flower_reference`) has ``status`` "ok" (and ``seconds``, all
    clients + server), "skipped" (``estimate`` over the cap), "halted" or "no flwr"."""

    keystream: dict[int, float]
    add: dict[int, float]
    tenseal: dict[int, float]
    flower: dict[str, dict[str, Any]]  # by flower_key(case)


def _typical(fn: Callable[[], object], repeat: int = 3) -> float:
    """One untimed call, then the median of ``repeat`` calls (see the module's docstring)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def keystream_seconds(d: int) -> float:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    buf = np.zeros(d, dtype=np.uint32)
    view = buf.view(np.uint8).data
    key = bytes(range(32))

    def fill() -> None:
        Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor().update_into(view, view)

    return _typical(fill)


def add_seconds(d: int) -> float:
    a = np.ones(d, dtype=np.uint32)
    b = np.arange(d, dtype=np.uint32)
    return _typical(lambda: np.add(a, b, out=a))


def tenseal_seconds(d: int) -> float:
    import tenseal as ts

    context = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 49])
    context.global_scale = 2**40
    x = np.random.default_rng(0).uniform(-1, 1, d)

    def encrypt() -> None:
        for i in range(0, d, 4096):
            ts.ckks_vector(context, x[i : i + 4096].tolist()).serialize()

    return _typical(encrypt)


def flower_key(case: Case) -> str:
    """The key of a case's Flower round in :attr:`References.flower`: the case's id."""
    return case.id


def flower_dropouts(case: Case, proto: Protocol[Any]) -> tuple[list[int], list[int], list[int]]:
    """The case's :func:`dropouts` as Flower's round takes them: ``(dropped,
    dropped_at_unmask, excluded)``.

    A client that vanishes at the input phase (shared its keys, sends no masked input) is
    Flower's ``dropped``; one that vanishes after it (masked input sent, no unmasking reply) is
    ``dropped_at_unmask``; one that vanishes before sharing keys is ``excluded``: Flower's
    workflow cannot finish a round with it (nobody holds its shares, and the server asks for
    t of every sampled node's shares, so it halts), so Flower's round runs without it, on the
    ``n - len(excluded)`` clients that reach share-keys, which is the work secagg does for it
    too: nothing to reconstruct."""
    phases = list(proto.phases)
    at_input = phases.index(proto.input_phase)
    dropped: list[int] = []
    late: list[int] = []
    excluded: list[int] = []
    for cid, phase in sorted(dropouts(case, proto).items()):
        index = phases.index(phase)
        (excluded if index < at_input else dropped if index == at_input else late).append(cid)
    return dropped, late, excluded


def _flower_args(case: Case) -> dict[str, Any] | str:
    try:
        proto = make_protocol(case)
    except ConfigError as exc:
        return f"no parameters: {exc}"
    dropped, late, excluded = flower_dropouts(case, proto)
    keep = [u for u in range(case.n) if u not in set(excluded)]
    index = {u: i for i, u in enumerate(keep)}
    return {
        "n": len(keep),
        "d": case.d,
        "k": int(proto.num_neighbors),  # type: ignore[attr-defined]
        "t": int(proto.threshold),  # type: ignore[attr-defined]
        "dropped": [index[u] for u in dropped],
        "dropped_at_unmask": [index[u] for u in late],
        "excluded": len(excluded),
    }


def estimate_flower_case(case: Case) -> float:
    """Estimated seconds of the case's Flower round (0 when it has no parameters or no flwr)."""
    args = _flower_args(case)
    if isinstance(args, str):
        return 0.0
    try:
        from .flower_reference import estimate_flower_seconds
    except ImportError:
        return 0.0
    try:
        return estimate_flower_seconds(
            args["n"],
            args["d"],
            args["k"],
            args["t"],
            len(args["dropped"]),
            len(args["dropped_at_unmask"]),
        )
    except ValueError:
        return 0.0


_FLOWER_WARM: list[bool] = []


def flower_reference(case: Case, *, cap: float = math.inf) -> dict[str, Any]:
    """Flower's full SecAgg+ round at the case's n, d, k, t and :func:`flower_dropouts`,
    measured now (one round, after one small untimed Flower round per process), or skipped
    with its estimate when that is over ``cap``. JSON-ready."""
    args = _flower_args(case)
    if isinstance(args, str):
        return {"status": "no parameters", "seconds": None, "reason": args}
    summary = {key: len(v) if isinstance(v, list) else v for key, v in args.items() if key != "d"}
    try:
        from .flower_reference import FlowerRoundHalted, flower_round
    except ImportError:
        return {**summary, "status": "no flwr", "seconds": None}
    estimate = estimate_flower_case(case)
    out: dict[str, Any] = {**summary, "estimate": estimate}
    if estimate > cap:
        return {**out, "status": "skipped", "seconds": None}
    if not _FLOWER_WARM:
        flower_round(6, 1000, 4, 3, dropped=[0])
        _FLOWER_WARM.append(True)
    try:
        run = flower_round(
            args["n"],
            args["d"],
            args["k"],
            args["t"],
            args["dropped"],
            seed=1,
            dropped_at_unmask=args["dropped_at_unmask"],
        )
    except (FlowerRoundHalted, ValueError) as exc:
        return {**out, "status": "halted", "seconds": None, "reason": str(exc)}
    return {
        **out,
        "status": "ok",
        "seconds": run.total_seconds,
        "clients": run.clients_total,
        "server": run.server_total,
        "degree": run.degree,
        "num_shares": run.num_shares,
        "client_seconds": dict(run.client_seconds),
        "server_seconds": dict(run.server_seconds),
        "peak_rss_mib": run.peak_rss_mib,
    }


def measure_references(
    cases: list[Case],
    *,
    flower: Mapping[str, dict[str, Any]] | None = None,
    cap: float = DEFAULT_CAP,
) -> References:
    """The per-d references over the cases' d, and Flower's round for each secaggplus CPU
    case (``flower``: those already measured, by :func:`flower_key`; the others are measured
    here, skipped over ``cap``)."""
    ds = sorted({c.d for c in cases})
    refs = dict(flower or {})
    for c in cases:
        if c.protocol == "secaggplus" and c.device == "cpu" and flower_key(c) not in refs:
            refs[flower_key(c)] = flower_reference(c, cap=cap)
    return References(
        keystream={d: keystream_seconds(d) for d in ds},
        add={d: add_seconds(d) for d in ds},
        tenseal={d: tenseal_seconds(d) for d in ds},
        flower=refs,
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
                # grids before issue 22 held Flower's client masking only, by "d=..,k=..":
                # not the same reference, so not carried over
                flower={k: v for k, v in refs["flower"].items() if isinstance(v, dict)},
            ),
            gas=data.get("gas"),
        )


def finish_grid(
    kind: str,
    cuda: bool,
    rows: list[dict[str, Any]],
    run: list[Case],
    skipped: list[Case],
    *,
    flower: Mapping[str, dict[str, Any]] | None = None,
    cap: float = DEFAULT_CAP,
) -> GridRun:
    """Measure the references (and the gas) in this run, after the cases; ``flower``: the
    Flower rounds already measured beside the cases (the others are measured here)."""
    from secagg.chain.gas import measure_gas

    gas = measure_gas(10, 2) if kind == "full" else measure_gas(4, 1)
    references = measure_references(run, flower=flower, cap=cap)
    return GridRun(kind, cuda, rows, skipped, references, gas.markdown())

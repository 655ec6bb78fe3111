"""Full masking rounds against the raw keystream and Flower's full compute (issue 22).

For each case, in one process and one run: secagg's ``simulate`` (all clients and the server;
every message through the wire codec) on 1 thread and on every core; the raw keystream bound,
n (k + 1) in-place fills of d uint32 (ChaCha20, the mask PRG; and AES-128-CTR for scale);
and Flower 1.42's own SecAgg+ compute at the same n, d, k, t and dropped set
(:mod:`secagg.clients.bench.flower_reference`: its primitives called as its mod and workflow call
them, no engine). Rounds are best of ``ROUNDS``; references best of 5 fills times the count.
Flower rounds whose estimate exceeds ``SECAGG_BENCH_FLOWER_CAP`` seconds (default 300) are
not run; their estimate is reported, marked "est.".

Also measured: input encoding of d = 10^6 entries against keystream fills of the same d, and
the server's cost per surviving input (decode, ring check, add) against a bare numpy add.

``SECAGG_BENCH=quick`` (default; tiny sizes) or ``full`` (the issue's table; ``make bench``,
which rewrites the rounds section of ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from secagg import parallel, protocols, simulate, wire
from secagg.clients.bench.grid import LazyInputs, peak_rss_reset
from secagg.primitives.prg import keystream
from secagg.protocols.secaggplus.messages import MaskedInput
from secagg.quantize import QuantizationConfig, Quantizer
from secagg.randomness import SeededRandom
from secagg.ring import Ring

KIND = os.environ.get("SECAGG_BENCH", "quick")
FLOWER_CAP = float(os.environ.get("SECAGG_BENCH_FLOWER_CAP", 300))
ROUNDS = 3 if KIND == "full" else 1
HERE = Path(__file__).parent
ROWS: list[dict[str, Any]] = []
EXTRA: dict[str, Any] = {}


@dataclass(frozen=True)
class RoundCase:
    protocol: str
    n: int
    d: int
    k: int | None  # None: the protocol's own (SecAgg: the complete graph)
    t: int | None
    dropped: float  # fraction of clients that vanish after ShareKeys (no masked input)

    @property
    def id(self) -> str:
        return f"{self.protocol}-n{self.n}-d{self.d:.0e}-drop{round(self.dropped * 100)}"


FULL = [
    RoundCase("secaggplus", 50, 10**6, 10, 7, 0.0),
    RoundCase("secaggplus", 100, 10**6, 26, 16, 0.1),
    RoundCase("secagg", 100, 10**5, None, None, 0.1),
    RoundCase("secaggplus", 1000, 10**5, 78, 52, 0.1),
]
QUICK = [
    RoundCase("secaggplus", 20, 10**4, 6, 4, 0.0),
    RoundCase("secagg", 10, 10**4, None, None, 0.1),
]
CASES = FULL if KIND == "full" else QUICK


def _best(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def chacha20_fill_seconds(d: int) -> float:
    """One in-place ChaCha20 fill of d uint32 (``update_into`` a zero buffer), best of 5."""
    buf = np.zeros(d, dtype=np.uint32).view(np.uint8).data
    key = bytes(range(32))
    return _best(
        lambda: Cipher(algorithms.ChaCha20(key, bytes(16)), None).encryptor().update_into(buf, buf)
    )


def aes_ctr_fill_seconds(d: int) -> float:
    """One in-place AES-128-CTR fill of d uint32, best of 5."""
    buf = np.zeros(d, dtype=np.uint32).view(np.uint8).data
    key = bytes(range(16))
    return _best(
        lambda: Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor().update_into(buf, buf)
    )


def _protocol(case: RoundCase) -> Any:
    if case.k is None:
        return protocols.get(case.protocol, num_clients=case.n)
    return protocols.get(case.protocol, num_clients=case.n, num_neighbors=case.k, threshold=case.t)


def _secagg_round(
    case: RoundCase, proto: Any, drops: dict[int, Any], inputs: dict[int, Any]
) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        result = simulate(proto, inputs, dropouts=drops, seed=1)
        best = min(best, time.perf_counter() - t0)
    return best, result


def _flower(case: RoundCase, k: int, t: int, dropped: list[int]) -> dict[str, Any]:
    from secagg.clients.bench.flower_reference import estimate_flower_seconds, flower_round

    estimate = estimate_flower_seconds(case.n, case.d, k, t, dropped=len(dropped))
    if estimate > FLOWER_CAP:
        return {"seconds": estimate, "estimated": True}

    run = flower_round(case.n, case.d, k, t, dropped=dropped, seed=1)
    return {
        "seconds": run.total_seconds,
        "estimated": False,
        "clients": run.clients_total,
        "server": run.server_total,
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_round(benchmark: Any, case: RoundCase) -> None:
    benchmark.group = "full rounds"
    proto = _protocol(case)
    k, t = proto.num_neighbors, proto.threshold
    dropped = list(range(math.floor(case.dropped * case.n)))
    drops = {u: proto.phases[2] for u in dropped}  # shared keys, then no masked input
    simulate(proto, LazyInputs(case.n, min(case.d, 1000), "cpu"), dropouts=drops, seed=1)
    # the clients' updates exist before the round, as a trained model's do (and as in
    # flower_reference, whose timed stages exclude making them): n x d float32 held at once
    lazy = LazyInputs(case.n, case.d, "cpu")
    inputs = {u: lazy[u] for u in lazy}
    before = parallel.workers()
    try:
        parallel.set_workers(1)
        one, _ = _secagg_round(case, proto, drops, inputs)
        parallel.set_workers(before)
        peak = peak_rss_reset()
        seconds = benchmark.pedantic(
            lambda: _secagg_round(case, proto, drops, inputs)[0], rounds=1, iterations=1
        )
        peak_mib = peak()
    finally:
        parallel.set_workers(before)
    fills = case.n * (k + 1)
    chacha = chacha20_fill_seconds(case.d) * fills
    aes = aes_ctr_fill_seconds(case.d) * fills
    flower = _flower(case, k, t, dropped)
    row = {
        **asdict(case),
        "id": case.id,
        "k": k,
        "t": t,
        "fills": fills,
        "threads": before,
        "secagg_1_thread": one,
        "secagg": seconds,
        "chacha20_bound": chacha,
        "aes_ctr_bound": aes,
        "flower": flower,
        "peak_mib": peak_mib,
        "input_mib": case.d * 4 / 2**20,
    }
    benchmark.extra_info.update({k: v for k, v in row.items() if isinstance(v, int | float)})
    ROWS.append(row)


def test_input_encoding(benchmark: Any) -> None:
    """Quantizing d float32 entries (clip, scale, dither, round, ring) vs keystream fills."""
    benchmark.group = "input encoding"
    d = 10**6 if KIND == "full" else 10**5
    x = np.random.default_rng(0).uniform(-1, 1, d).astype(np.float32)
    quantizer = Quantizer(QuantizationConfig(1.0, 16, 32, 100))
    before = parallel.workers()
    try:
        parallel.set_workers(1)
        one = _best(lambda: quantizer.quantize(x, SeededRandom(1)), 7)
    finally:
        parallel.set_workers(before)
    seconds = benchmark.pedantic(
        lambda: _best(lambda: quantizer.quantize(x, SeededRandom(1)), 7), rounds=1, iterations=1
    )
    fill = chacha20_fill_seconds(d)
    EXTRA["encoding"] = {"d": d, "one_thread": one, "threads": before, "seconds": seconds}
    EXTRA["encoding"]["fill"] = fill


def test_server_per_input(benchmark: Any) -> None:
    """The server's work per surviving input: decode the wire bytes, check the ring, add."""
    benchmark.group = "server per input"
    d = 10**6 if KIND == "full" else 10**5
    ring = Ring(32)
    vector = keystream(bytes(32), d, 32)
    data = wire.encode(MaskedInput(bytes(32), 1, 3, vector, ()))
    acc = ring.zeros(d)

    def receive() -> None:
        msg = wire.decode(data, protocol="secaggplus")
        assert isinstance(msg, MaskedInput)
        ring.check(msg.vector, d, sender=3)
        ring.add_(acc, msg.vector)

    seconds = benchmark.pedantic(lambda: _best(receive, 9), rounds=1, iterations=1)
    bare = _best(lambda: np.add(acc, vector, out=acc), 9)
    encode = _best(lambda: wire.encode(MaskedInput(bytes(32), 1, 3, vector, ())), 9)
    EXTRA["server_input"] = {"d": d, "seconds": seconds, "bare_add": bare, "encode": encode}


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if not ROWS:
        return
    out = HERE / "rounds" if KIND == "full" else HERE.parent / ".benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    data = {"kind": KIND, "machine": _machine(), "rows": ROWS, **EXTRA}
    (out / f"rounds-{KIND}.json").write_text(json.dumps(data, indent=1) + "\n")
    md = rounds_markdown(data)
    (out / f"rounds-{KIND}.md").write_text(md)
    if KIND == "full":
        _replace_section(HERE / "RESULTS.md", md)
    print("\n" + md)


def _machine() -> str:
    return (
        f"{platform.machine()} / Python {platform.python_version()} / "
        f"{len(os.sched_getaffinity(0))} cores"
    )


def _s(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def rounds_markdown(data: dict[str, Any]) -> str:
    """The rounds table and the per-input figures as markdown."""
    lines = [
        f"Rounds `{data['kind']}` on {data['machine']}; one process; secagg best of {ROUNDS}; "
        "bounds = best-of-5 single fills x n (k + 1).",
        "",
        "*secagg* is the wall time of `simulate` (every client and the server, every message "
        "through the wire codec), the updates made beforehand; *Flower full compute* is the "
        "sum of its clients' and server's stage times (its updates are made outside them); "
        "*peak MiB* is how far the process's peak RSS rose during the round above its RSS at "
        "the start (the n updates already held; pages freed by the previous round and reused "
        "are not counted).",
        "",
        "| case | k | t | secagg, 1 thread | secagg, all cores | ChaCha20 bound | "
        "AES-CTR bound | secagg / bound (1 thread, all) | Flower full compute | "
        "Flower / secagg | peak MiB (d x 4 B = MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["rows"]:
        fl = r["flower"]
        mark = " (est.)" if fl["estimated"] else ""
        lines.append(
            f"| {r['id']} | {r['k']} | {r['t']} | {_s(r['secagg_1_thread'])} | "
            f"{_s(r['secagg'])} ({r['threads']}) | {_s(r['chacha20_bound'])} | "
            f"{_s(r['aes_ctr_bound'])} | {r['secagg_1_thread'] / r['chacha20_bound']:.2f}x, "
            f"{r['secagg'] / r['chacha20_bound']:.2f}x | {_s(fl['seconds'])}{mark} | "
            f"{fl['seconds'] / r['secagg']:.1f}x{mark} | "
            f"{r['peak_mib']:.0f} ({r['input_mib']:.1f}) |"
        )
    enc = data.get("encoding")
    if enc:
        lines += [
            "",
            f"Input encoding of d = {enc['d']:.0e} float32: {_s(enc['one_thread'])} on 1 thread "
            f"= {enc['one_thread'] / enc['fill']:.2f} keystream fills of the same d "
            f"({_s(enc['fill'])}); {_s(enc['seconds'])} on {enc['threads']} threads "
            f"= {enc['seconds'] / enc['fill']:.2f} fills.",
        ]
    srv = data.get("server_input")
    if srv:
        lines.append(
            f"Server per surviving input, d = {srv['d']:.0e}: decode + ring check + add "
            f"{_s(srv['seconds'])} vs a bare numpy add {_s(srv['bare_add'])} "
            f"({srv['seconds'] / srv['bare_add']:.2f}x); encoding a MaskedInput "
            f"{_s(srv['encode'])}."
        )
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- rounds:begin (written by make bench) -->", "<!-- rounds:end -->"


def _replace_section(path: Path, md: str) -> None:
    text = path.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        path.write_text(head + BEGIN + "\n" + md + END + tail)

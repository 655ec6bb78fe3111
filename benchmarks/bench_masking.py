"""SecAgg / SecAgg+ masking costs, each against a reference measured in the same run.

* per neighbour at d = 1M: one pairwise mask generated and added, vs the raw keystream of the
  same bytes (target <= 1.5x), and vs Flower's mask generator (numpy Mersenne Twister seeded
  with 32 bits of the key, ``flwr.common.secure_aggregation.secaggplus_utils.pseudo_rand_gen``)
  plus its add: what Flower's ``secaggplus_mod`` does per neighbour;
* one client's masking for k neighbours plus its self mask (SecAgg+ n = 100 defaults);
* server unmasking, n = 100, d = 1M, 10% dropouts (from a full simulated round);
* a full simulated SecAgg+ round, n = 1000, d = 100k, 10% dropouts: seconds and the round's
  own peak RSS.

Peak memory (``extra_info["peak_rss_mib"]``) is the round's own: the process's peak RSS is
reset just before the round (Linux ``clear_refs`` 5,
:func:`secagg.clients.bench.grid.peak_rss_reset`)
and read right after it, less the RSS at the reset (imports, torch, earlier benchmarks' caches
are not counted). ``process_peak_rss_mib`` is the process's lifetime peak, for comparison
(what the earlier "405 MiB" was).
"""

from __future__ import annotations

import resource
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from secagg import protocols, simulate
from secagg.clients.bench.grid import peak_rss_reset
from secagg.protocols.secaggplus.masks import Masker
from secagg.ring import Ring

D = 1_000_000
KEY = bytes(range(32))
RING = Ring(32)


class LazyInputs(Mapping[int, Any]):
    """n updates generated on demand, so the benchmark never holds n x d floats."""

    def __init__(self, n: int, d: int) -> None:
        self.n, self.d = n, d

    def __getitem__(self, cid: int) -> Any:
        if not 0 <= cid < self.n:
            raise KeyError(cid)
        return np.random.default_rng(cid).uniform(-1, 1, self.d).astype(np.float32)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


def _raw_in_place(buf: np.ndarray) -> None:
    view = buf.view(np.uint8).data
    Cipher(algorithms.ChaCha20(KEY, bytes(16)), mode=None).encryptor().update_into(view, view)


def test_raw_keystream_1m(benchmark: Any) -> None:
    """Reference: the raw ChaCha20 keystream over 4 MB, in place."""
    benchmark.group = "mask per neighbour d=1M"
    benchmark.extra_info["reference"] = True
    buf = np.zeros(D, dtype=np.uint32)
    benchmark(_raw_in_place, buf)


def test_secagg_mask_per_neighbour_1m(benchmark: Any) -> None:
    """PRG(s_uv) generated and added into the masked vector (what a client does per peer)."""
    benchmark.group = "mask per neighbour d=1M"
    acc = np.zeros(D, dtype=np.uint32)
    masker = Masker(RING, D)
    benchmark(masker.apply, acc, KEY, 1)


def test_flower_mask_per_neighbour_1m(benchmark: Any) -> None:
    """Flower's per-neighbour work: pseudo_rand_gen (MT19937 from a 32-bit seed) plus add."""
    utils = pytest.importorskip("flwr.common.secure_aggregation.secaggplus_utils")
    benchmark.group = "mask per neighbour d=1M"
    acc = [np.zeros(D, dtype=np.int64)]

    def flower() -> None:
        mask = utils.pseudo_rand_gen(KEY, 1 << 32, [(D,)])
        acc[0] = acc[0] + mask[0]

    benchmark(flower)


def _client_masks(k: int) -> list[bytes]:
    return [bytes([i]) * 32 for i in range(k + 1)]


def test_flower_client_masking_n100_1m(benchmark: Any) -> None:
    """Reference: Flower's masking of one client, k neighbours + self mask, d = 1M."""
    utils = pytest.importorskip("flwr.common.secure_aggregation.secaggplus_utils")
    k = protocols.get("secaggplus", num_clients=100).num_neighbors
    benchmark.group = "client masking n=100 d=1M"
    benchmark.extra_info["reference"] = True
    benchmark.extra_info["k"] = k

    def flower() -> None:
        acc = np.zeros(D, dtype=np.int64)
        for key in _client_masks(k):
            acc = acc + utils.pseudo_rand_gen(key, 1 << 32, [(D,)])[0]
        acc %= 1 << 32

    benchmark.pedantic(flower, rounds=3, iterations=1)


def test_secagg_client_masking_n100_1m(benchmark: Any) -> None:
    k = protocols.get("secaggplus", num_clients=100).num_neighbors
    benchmark.group = "client masking n=100 d=1M"
    benchmark.extra_info["k"] = k

    def ours() -> None:
        acc = np.zeros(D, dtype=np.uint32)
        masker = Masker(RING, D)
        for i, key in enumerate(_client_masks(k)):
            masker.apply(acc, key, 1 if i % 2 else -1)

    benchmark.pedantic(ours, rounds=3, iterations=1)


def _round(n: int, d: int, benchmark: Any, name: str = "secaggplus") -> Any:
    proto = protocols.get(name, num_clients=n)
    inputs = LazyInputs(n, d)
    rng = np.random.default_rng(0)
    dropped = rng.choice(n, size=n // 10, replace=False)
    phases = proto.phases
    dropouts = {int(c): phases[int(rng.integers(0, len(phases)))] for c in dropped}
    peak = peak_rss_reset()
    result = benchmark.pedantic(
        simulate,
        args=(proto, inputs),
        kwargs={"dropouts": dropouts, "seed": 1},
        rounds=1,
        iterations=1,
    )
    round_peak = peak()
    benchmark.extra_info.update(
        k=proto.num_neighbors,
        t=proto.threshold,
        survivors=len(result.survivors),
        **{f"server_{p}_s": round(s.seconds, 3) for p, s in result.stats["server"].items()},
        **{f"clients_{p}_s": round(s.seconds, 3) for p, s in result.stats["client"].items()},
        bytes_per_client=round(result.bytes_per_client()),
        peak_rss_mib=round(round_peak, 1),
        process_peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    )
    return result


def test_secaggplus_round_n100_d1m_10pct_dropouts(benchmark: Any) -> None:
    benchmark.group = "full round"
    _round(100, D, benchmark)


def test_secaggplus_round_n1000_d100k_10pct_dropouts(benchmark: Any) -> None:
    benchmark.group = "full round"
    _round(1000, 100_000, benchmark)

"""Flower 1.42's SecAgg+ round: all of its computation, none of its engine.

:func:`flower_round` runs, in one process and one thread, what Flower's ``secaggplus_mod``
(``flwr.client.mod.secure_aggregation.secaggplus_mod``: stages ``setup``, ``share_keys``,
``collect_masked_vectors``, ``unmask``) computes on every one of ``n`` clients, and what
Flower's ``SecAggPlusWorkflow`` (``flwr.server.workflow.secure_aggregation``) computes on the
server, calling the same primitives from ``flwr.common.secure_aggregation`` and
``flwr.supercore.primitives.asymmetric`` in the same order with the same arguments:

* setup: the server draws the ring graph (shuffled node ids, ``num_shares >> 1`` on each
  side); each client makes two SECP384R1 key pairs and serializes them (PEM);
* share keys: the server sends each client its neighbours' public keys; each client checks
  them, draws its self-mask seed, Shamir-splits the seed and its first secret key
  (pycryptodome, ``create_shares``), and for every neighbour derives a key (ECDH + HKDF,
  ``generate_shared_key``) and Fernet-encrypts the pair of shares; the server routes them;
* collect masked vectors: each surviving client decrypts its shares, quantizes its update
  (``quantize``, stochastic rounding, the weight factor in front: ``factor_combine``), adds
  its self mask and one pairwise mask per neighbour (``pseudo_rand_gen``: numpy's Mersenne
  Twister seeded with 32 bits of the key), reduces mod 2^32 and serializes
  (``ndarray_to_bytes``); the server deserializes and sums;
* unmask: each survivor sends the seed shares of its surviving neighbours and the key shares
  of its dropped ones; the server combines every node's shares (``combine_shares``), removes
  the survivors' self masks and the dropped clients' pairwise masks, reduces, extracts the
  factor and dequantizes.

What is left out is Flower's plumbing: ``Message``/``ConfigRecord`` building, the ``Grid``,
the ``Context.state`` round trip of the client state, the legacy ``FitRes`` conversion, the
strategy's ``aggregate_fit`` (FedAvg over n copies of the aggregate) and Ray. The server sums
each masked vector as it arrives, so the process holds one vector at a time (Flower's own
workflow holds every reply, n x 8 d bytes, before summing; the timing is the same).

Parameters as secagg counts them: ``k`` neighbours (not counting the client itself) and a
reconstruction threshold ``t``. Flower's ``num_shares`` counts the client itself (each client
keeps one share), so ``num_shares = k + 1``: the ring then gives every client exactly ``k``
neighbours when ``k`` is even. Flower's ring only has even degrees: for an odd ``k``,
``num_shares = k + 2`` (degree ``k + 1``; Flower's own workflow would crash with an even
``num_shares``: it bumps the graph's share count after telling the clients the unbumped one).
When ``k + 1 >= n`` the graph is complete: ``num_shares = n``. :attr:`FlowerRound.degree` is
the degree used.

Quantization: clip 1, ``quantization_range = 2**16`` (secagg's q = 16), ``modulus_range =
2**32`` (b = 32), ``max_weight = 1`` and one example per client (weight factor 2^16 exactly,
so the weighting is exact and n up to 2^16 cannot overflow). Flower's defaults (clip 8,
2^22) overflow 2^32 at n > 1024 and cost the same.

The round checks itself: the unmasked sum, read modulo 2^32 before dequantization (the level
at which it is exact), must equal the integer sum of the survivors' quantized vectors (and
the factor entry the sum of their factors); the dequantized mean must be within one
quantization step of the survivors' float mean. A mismatch raises :class:`FlowerSumMismatch`.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.common import bytes_to_ndarray, ndarray_to_bytes, ndarrays_to_parameters
from flwr.common import parameters_to_ndarrays as _parameters_to_ndarrays
from flwr.common.secure_aggregation.crypto.shamir import combine_shares, create_shares
from flwr.common.secure_aggregation.crypto.symmetric_encryption import (
    decrypt,
    encrypt,
    generate_shared_key,
)
from flwr.common.secure_aggregation.ndarrays_arithmetic import (
    factor_combine,
    factor_extract,
    get_parameters_shape,
    parameters_addition,
    parameters_mod,
    parameters_multiply,
    parameters_subtraction,
)
from flwr.common.secure_aggregation.quantization import dequantize, quantize
from flwr.common.secure_aggregation.secaggplus_utils import (
    pseudo_rand_gen,
    share_keys_plaintext_concat,
    share_keys_plaintext_separate,
)
from flwr.supercore.primitives.asymmetric import (
    bytes_to_private_key,
    bytes_to_public_key,
    generate_key_pairs,
    private_key_to_bytes,
    public_key_to_bytes,
)

from .grid import peak_rss_reset

__all__ = [
    "STAGES",
    "FlowerRound",
    "FlowerRoundHalted",
    "FlowerSumMismatch",
    "estimate_flower_seconds",
    "flower_num_shares",
    "flower_round",
    "flower_round_seconds",
]

STAGES = ("setup", "share-keys", "collect-masked-vectors", "unmask")
"""Flower's four SecAgg+ stages (``Stage.SETUP``, ...), the keys of the per-stage seconds."""

CLIPPING_RANGE = 1.0
QUANTIZATION_RANGE = 1 << 16
MODULUS_RANGE = 1 << 32
MAX_WEIGHT = 1.0
NUM_EXAMPLES = 1
NUM_EXAMPLES_Q = round(NUM_EXAMPLES / MAX_WEIGHT * QUANTIZATION_RANGE)
"""A client's weight factor, ``round(num_examples / max_weight * quantization_range)``."""


class FlowerSumMismatch(AssertionError):
    """The round's unmasked sum is not the sum of the survivors' quantized inputs."""


class FlowerRoundHalted(RuntimeError):
    """Flower's workflow would halt this round (too few neighbours or shares for ``t``)."""


@dataclass(frozen=True)
class FlowerRound:
    """Seconds of one Flower SecAgg+ round, by role and stage (compute only).

    ``client_seconds[stage]`` is summed over all clients that worked in that stage;
    ``server_seconds[stage]`` is the server's. ``peak_rss_mib`` is the process's peak RSS
    during the call above its RSS at the start (nan where Linux's ``clear_refs`` is not
    available). ``wall_seconds`` is the whole call, including the untimed input generation
    and the correctness check.
    """

    n: int
    d: int
    k: int
    num_shares: int
    degree: int
    t: int
    dropped: tuple[int, ...]
    dropped_at_unmask: tuple[int, ...]
    survivors: int
    client_seconds: Mapping[str, float] = field(hash=False)
    server_seconds: Mapping[str, float] = field(hash=False)
    peak_rss_mib: float
    wall_seconds: float

    @property
    def clients_total(self) -> float:
        """All clients, all stages."""
        return sum(self.client_seconds.values())

    @property
    def server_total(self) -> float:
        return sum(self.server_seconds.values())

    @property
    def total_seconds(self) -> float:
        """All clients plus the server: the round's compute, as if on one core."""
        return self.clients_total + self.server_total

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures (totals included)."""
        return {
            "n": self.n,
            "d": self.d,
            "k": self.k,
            "num_shares": self.num_shares,
            "degree": self.degree,
            "t": self.t,
            "dropped": list(self.dropped),
            "dropped_at_unmask": list(self.dropped_at_unmask),
            "survivors": self.survivors,
            "client_seconds": dict(self.client_seconds),
            "server_seconds": dict(self.server_seconds),
            "clients_total": self.clients_total,
            "server_total": self.server_total,
            "total_seconds": self.total_seconds,
            "peak_rss_mib": self.peak_rss_mib,
            "wall_seconds": self.wall_seconds,
        }


def flower_num_shares(k: int, n: int) -> int:
    """Flower's ``num_shares`` for ``k`` neighbours (secagg's count) among ``n`` clients: k + 1
    (the client keeps one share), k + 2 for odd k (Flower's ring has even degree), n when that
    reaches n (complete graph)."""
    if k < 2:
        raise ValueError(f"Flower's SecAgg+ needs at least 2 neighbours, not k = {k}")
    shares = k + 1 if k % 2 == 0 else k + 2
    return min(shares, n)


def _degree(num_shares: int, n: int) -> int:
    return n - 1 if num_shares >= n else 2 * (num_shares >> 1)


@dataclass
class _Client:
    """What ``SecAggPlusState`` keeps for one client between stages."""

    nid: int
    sk1: bytes = b""
    pk1: bytes = b""
    sk2: bytes = b""
    pk2: bytes = b""
    rd_seed: bytes = b""
    rd_seed_share_dict: dict[int, bytes] = field(default_factory=dict)
    sk1_share_dict: dict[int, bytes] = field(default_factory=dict)
    ss2_dict: dict[int, bytes] = field(default_factory=dict)
    public_keys_dict: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)


def _client_input(seed: int, nid: int, d: int) -> np.ndarray:
    return np.random.default_rng([seed, nid]).uniform(-1, 1, d).astype(np.float32)


def _check_threshold(
    neighbours: Mapping[int, set[int]], sampled: Iterable[int], active: set[int], t: int, stage: str
) -> None:
    """``SecAggPlusWorkflow._check_threshold``: every node keeps t active neighbours."""
    for nid in sampled:
        if len(neighbours[nid] & active) < t:
            raise FlowerRoundHalted(f"{stage}: node {nid} has fewer than t = {t} active neighbours")


def flower_round(
    n: int,
    d: int,
    k: int,
    t: int,
    dropped: Collection[int] = (),
    seed: int = 0,
    *,
    dropped_at_unmask: Collection[int] = (),
    clock: Callable[[], float] = time.perf_counter,
) -> FlowerRound:
    """Run Flower 1.42's SecAgg+ round for ``n`` clients of ``d`` entries, compute only.

    Parameters
    ----------
    n, d:
        Clients (node ids ``0 .. n-1``) and entries per update.
    k:
        Neighbours per client, not counting itself (secagg's ``num_neighbors``); Flower gets
        :func:`flower_num_shares` ``(k, n)``.
    t:
        Reconstruction threshold (Flower's ``reconstruction_threshold``, shares counted with
        the holder's own).
    dropped:
        Clients that advertise their keys and send their share bundles, then vanish: no masked
        input, no unmasking reply; the server rebuilds their first secret keys to remove their
        neighbours' pairwise masks.
    seed:
        Inputs (``np.random.default_rng([seed, id])``, uniform in [-1, 1], float32), the
        graph's shuffle and Flower's stochastic rounding (numpy's global generator, restored
        afterwards). Keys and self-mask seeds come from the OS, as in Flower.
    dropped_at_unmask:
        Clients that send their masked input and vanish before unmasking (their self masks
        are rebuilt from their neighbours' shares).

    Raises
    ------
    FlowerRoundHalted
        Flower's workflow would stop: a node with fewer than ``t`` active neighbours or shares.
    FlowerSumMismatch
        The unmasked sum is wrong.
    ValueError
        Bad arguments (as Flower's ``SecAggPlusWorkflow`` would reject them).
    """
    start = clock()
    peak = peak_rss_reset()
    drop = frozenset(int(u) for u in dropped)
    late = frozenset(int(u) for u in dropped_at_unmask)
    if not drop | late <= set(range(n)):
        raise ValueError(f"dropped clients must be in 0..{n - 1}")
    if drop & late:
        raise ValueError("a client drops once: dropped and dropped_at_unmask overlap")
    if n < 2 or d < 1:
        raise ValueError("Flower's SecAgg+ needs n >= 2 clients and d >= 1")
    num_shares = flower_num_shares(k, n)
    if num_shares <= 2 or not 2 <= t < num_shares:
        raise ValueError(f"need 2 <= t < num_shares: t = {t}, num_shares = {num_shares}")

    client = dict.fromkeys(STAGES, 0.0)
    server = dict.fromkeys(STAGES, 0.0)
    saved = np.random.get_state()
    np.random.seed(seed % (1 << 32))
    try:
        recon, factor, expected, mean, float_sum, survivors = _round(
            n, d, num_shares, t, drop, late, seed, client, server, clock
        )
    finally:
        np.random.set_state(saved)

    # The check, at the exact level: the reduced sum before dequantization.
    if int(factor) != (NUM_EXAMPLES_Q * survivors) % MODULUS_RANGE or not np.array_equal(
        recon, expected % MODULUS_RANGE
    ):
        bad = int(np.count_nonzero(recon != expected % MODULUS_RANGE))
        raise FlowerSumMismatch(
            f"unmasked sum differs from the survivors' quantized sum in {bad} of {d} entries "
            f"(factor {int(factor)}, expected {NUM_EXAMPLES_Q * survivors})"
        )
    step = 2 * CLIPPING_RANGE / QUANTIZATION_RANGE
    error = float(np.max(np.abs(mean - float_sum / survivors)))
    if not error <= 1.01 * step:
        raise FlowerSumMismatch(f"dequantized mean off by {error:.3g} > one step {step:.3g}")
    return FlowerRound(
        n=n,
        d=d,
        k=k,
        num_shares=num_shares,
        degree=_degree(num_shares, n),
        t=t,
        dropped=tuple(sorted(drop)),
        dropped_at_unmask=tuple(sorted(late)),
        survivors=survivors,
        client_seconds=client,
        server_seconds=server,
        peak_rss_mib=peak(),
        wall_seconds=clock() - start,
    )


def _round(
    n: int,
    d: int,
    num_shares: int,
    threshold: int,
    drop: frozenset[int],
    late: frozenset[int],
    seed: int,
    client: dict[str, float],
    server: dict[str, float],
    clock: Callable[[], float],
) -> tuple[np.ndarray, Any, np.ndarray, np.ndarray, np.ndarray, int]:
    mod_range = MODULUS_RANGE
    # ---- server, setup_stage: parameters and the ring graph ----------------------------
    t0 = clock()
    sampled_node_ids = list(range(n))
    # Flower's workflow shuffles with `random` too (the graph is public); seeded here
    random.Random(seed).shuffle(sampled_node_ids)  # noqa: S311
    half_share = num_shares >> 1
    nid_to_neighbours = {
        nid: {sampled_node_ids[(idx + offset) % n] for offset in range(-half_share, half_share + 1)}
        for idx, nid in enumerate(sampled_node_ids)
    }
    sampled = set(sampled_node_ids)
    server["setup"] += clock() - t0

    # ---- clients, _setup: two key pairs each --------------------------------------------
    states: dict[int, _Client] = {}
    replies: dict[int, tuple[bytes, bytes]] = {}
    for nid in sampled_node_ids:
        t0 = clock()
        state = _Client(nid)
        sk1, pk1 = generate_key_pairs()
        sk2, pk2 = generate_key_pairs()
        state.sk1, state.pk1 = private_key_to_bytes(sk1), public_key_to_bytes(pk1)
        state.sk2, state.pk2 = private_key_to_bytes(sk2), public_key_to_bytes(pk2)
        states[nid] = state
        replies[nid] = (state.pk1, state.pk2)
        client["setup"] += clock() - t0

    t0 = clock()
    active = set(replies)
    nid_to_publickeys = {nid: [pk1, pk2] for nid, (pk1, pk2) in replies.items()}
    _check_threshold(nid_to_neighbours, sampled, active, threshold, "setup")
    server["setup"] += clock() - t0

    # ---- share_keys_stage: neighbours' keys out, encrypted shares back, routed -----------
    fwd_ciphertexts: dict[int, list[bytes]] = {nid: [] for nid in active}
    fwd_srcs: dict[int, list[int]] = {nid: [] for nid in active}
    for nid in sampled_node_ids:
        t0 = clock()
        neighbours = nid_to_neighbours[nid] & active
        cfg = {str(v): nid_to_publickeys[v] for v in neighbours}
        server["share-keys"] += clock() - t0

        t0 = clock()
        dsts, ciphertexts = _share_keys(states[nid], cfg, num_shares, threshold)
        client["share-keys"] += clock() - t0

        t0 = clock()
        for dst, ciphertext in zip(dsts, ciphertexts, strict=True):
            if dst in fwd_ciphertexts:
                fwd_ciphertexts[dst].append(ciphertext)
                fwd_srcs[dst].append(nid)
        server["share-keys"] += clock() - t0
    t0 = clock()
    _check_threshold(nid_to_neighbours, sampled, active, threshold, "share-keys")
    server["share-keys"] += clock() - t0

    # ---- collect_masked_vectors_stage ---------------------------------------------------
    masked_vector: list[np.ndarray] | None = None
    expected = np.zeros(d, dtype=np.int64)
    float_sum = np.zeros(d, dtype=np.float64)
    for nid in sampled_node_ids:
        t0 = clock()
        cfg_masked: dict[str, list[Any]] = {
            "ciphertexts": fwd_ciphertexts[nid],
            "srcs": fwd_srcs[nid],
        }
        server["collect-masked-vectors"] += clock() - t0
        if nid in drop:
            continue  # vanishes: never answers
        # the client app's training output, as the legacy client hands it to the mod
        x = _client_input(seed, nid, d)
        float_sum += x
        fit_parameters = ndarrays_to_parameters([x])
        del x

        t0 = clock()
        masked_bytes, quantized = _collect_masked_vectors(
            states[nid], cfg_masked, fit_parameters, threshold
        )
        client["collect-masked-vectors"] += clock() - t0
        expected += quantized[1]
        del quantized, fit_parameters

        t0 = clock()
        client_masked_vec = [bytes_to_ndarray(b) for b in masked_bytes]
        if masked_vector is None:
            masked_vector = client_masked_vec
        else:
            masked_vector = parameters_addition(masked_vector, client_masked_vec)
        server["collect-masked-vectors"] += clock() - t0
        del masked_bytes, client_masked_vec
    t0 = clock()
    del fwd_ciphertexts, fwd_srcs
    active = active - drop
    if masked_vector is None:
        raise FlowerRoundHalted("collect-masked-vectors: no masked input")
    masked_vector = parameters_mod(masked_vector, mod_range)
    _check_threshold(nid_to_neighbours, sampled, active, threshold, "collect-masked-vectors")
    server["collect-masked-vectors"] += clock() - t0

    # ---- unmask_stage -------------------------------------------------------------------
    active_nids = active
    dead_nids = sampled - active_nids
    collected_shares_dict: dict[int, list[bytes]] = {nid: [] for nid in sampled_node_ids}
    for nid in sampled_node_ids:
        if nid not in active_nids:
            continue
        t0 = clock()
        neighbours = nid_to_neighbours[nid]
        cfg_unmask = (list(neighbours & active_nids), list(neighbours & dead_nids))
        server["unmask"] += clock() - t0
        if nid in late:
            continue  # vanishes before unmasking
        t0 = clock()
        nids, shares = _unmask(states[nid], *cfg_unmask, threshold)
        client["unmask"] += clock() - t0

        t0 = clock()
        for owner_nid, share in zip(nids, shares, strict=True):
            collected_shares_dict[owner_nid].append(share)
        server["unmask"] += clock() - t0
    del states

    t0 = clock()
    for nid, share_list in collected_shares_dict.items():
        if len(share_list) < threshold:
            raise FlowerRoundHalted(f"unmask: {len(share_list)} shares of node {nid} < t")
        secret = combine_shares(share_list)
        if nid in active_nids:
            # The seed for PRG is the private mask seed of an active client.
            private_mask = pseudo_rand_gen(secret, mod_range, get_parameters_shape(masked_vector))
            masked_vector = parameters_subtraction(masked_vector, private_mask)
        else:
            # The seed for PRG is the secret key 1 of a dropped client.
            neighbours = nid_to_neighbours[nid]
            neighbours.remove(nid)
            for neighbor_nid in neighbours:
                shared_key = generate_shared_key(
                    bytes_to_private_key(secret),
                    bytes_to_public_key(nid_to_publickeys[neighbor_nid][0]),
                )
                pairwise_mask = pseudo_rand_gen(
                    shared_key, mod_range, get_parameters_shape(masked_vector)
                )
                if nid > neighbor_nid:
                    masked_vector = parameters_addition(masked_vector, pairwise_mask)
                else:
                    masked_vector = parameters_subtraction(masked_vector, pairwise_mask)
    recon_parameters = parameters_mod(masked_vector, mod_range)
    q_total_ratio, recon_parameters = factor_extract(recon_parameters)
    inv_dq_total_ratio = QUANTIZATION_RANGE / q_total_ratio
    aggregated_vector = dequantize(recon_parameters, CLIPPING_RANGE, QUANTIZATION_RANGE)
    offset = -(len(active_nids) - 1) * CLIPPING_RANGE
    for vec in aggregated_vector:
        vec += offset
        vec *= inv_dq_total_ratio
    server["unmask"] += clock() - t0
    return (
        recon_parameters[0],
        q_total_ratio,
        expected,
        aggregated_vector[0],
        float_sum,
        len(active_nids),
    )


def _share_keys(
    state: _Client, configs: Mapping[str, list[bytes]], share_num: int, threshold: int
) -> tuple[list[int], list[bytes]]:
    """``secaggplus_mod._share_keys``."""
    key_dict = {int(sid): (pk1, pk2) for sid, (pk1, pk2) in configs.items()}
    state.public_keys_dict = key_dict
    if len(state.public_keys_dict) < threshold:
        raise FlowerRoundHalted("Available neighbours number smaller than threshold")
    pk_list: list[bytes] = []
    for pk1, pk2 in state.public_keys_dict.values():
        pk_list.append(pk1)
        pk_list.append(pk2)
    if len(set(pk_list)) != len(pk_list):
        raise ValueError("Some public keys are identical")
    if (
        state.public_keys_dict[state.nid][0] != state.pk1
        or state.public_keys_dict[state.nid][1] != state.pk2
    ):
        raise ValueError("Own public keys are displayed in dict incorrectly")

    state.rd_seed = os.urandom(32)
    b_shares = create_shares(state.rd_seed, threshold, share_num)
    sk1_shares = create_shares(state.sk1, threshold, share_num)

    dsts: list[int] = []
    ciphertexts: list[bytes] = []
    for idx, (nid, (_, pk2)) in enumerate(state.public_keys_dict.items()):
        if nid == state.nid:
            state.rd_seed_share_dict[state.nid] = b_shares[idx]
            state.sk1_share_dict[state.nid] = sk1_shares[idx]
        else:
            shared_key = generate_shared_key(
                bytes_to_private_key(state.sk2), bytes_to_public_key(pk2)
            )
            state.ss2_dict[nid] = shared_key
            plaintext = share_keys_plaintext_concat(state.nid, nid, b_shares[idx], sk1_shares[idx])
            dsts.append(nid)
            ciphertexts.append(encrypt(shared_key, plaintext))
    return dsts, ciphertexts


def _collect_masked_vectors(
    state: _Client, configs: Mapping[str, list[Any]], updated_parameters: Any, threshold: int
) -> tuple[list[bytes], list[np.ndarray]]:
    """``secaggplus_mod._collect_masked_vectors``; also returns the quantized vectors (the
    correctness check's input; kept, not copied)."""
    available_clients: list[int] = []
    ciphertexts: list[bytes] = configs["ciphertexts"]
    srcs: list[int] = configs["srcs"]
    if len(ciphertexts) + 1 < threshold:
        raise FlowerRoundHalted("Not enough available neighbour clients.")
    for src, ciphertext in zip(srcs, ciphertexts, strict=True):
        shared_key = state.ss2_dict[src]
        plaintext = decrypt(shared_key, ciphertext)
        actual_src, dst, rd_seed_share, sk1_share = share_keys_plaintext_separate(plaintext)
        available_clients.append(src)
        if src != actual_src or dst != state.nid:
            raise ValueError(f"Node {state.nid}: misrouted share from {actual_src} to {dst}")
        state.rd_seed_share_dict[src] = rd_seed_share
        state.sk1_share_dict[src] = sk1_share

    ratio = NUM_EXAMPLES / MAX_WEIGHT
    q_ratio = round(ratio * QUANTIZATION_RANGE)
    dq_ratio = q_ratio / QUANTIZATION_RANGE

    parameters = _parameters_to_ndarrays(updated_parameters)
    parameters = parameters_multiply(parameters, dq_ratio)
    quantized_parameters = quantize(parameters, CLIPPING_RANGE, QUANTIZATION_RANGE)
    quantized_parameters = factor_combine(q_ratio, quantized_parameters)
    quantized = quantized_parameters
    dimensions_list: list[tuple[int, ...]] = [a.shape for a in quantized_parameters]

    private_mask = pseudo_rand_gen(state.rd_seed, MODULUS_RANGE, dimensions_list)
    quantized_parameters = parameters_addition(quantized_parameters, private_mask)
    for node_id in available_clients:
        shared_key = generate_shared_key(
            bytes_to_private_key(state.sk1),
            bytes_to_public_key(state.public_keys_dict[node_id][0]),
        )
        pairwise_mask = pseudo_rand_gen(shared_key, MODULUS_RANGE, dimensions_list)
        if state.nid > node_id:
            quantized_parameters = parameters_addition(quantized_parameters, pairwise_mask)
        else:
            quantized_parameters = parameters_subtraction(quantized_parameters, pairwise_mask)
    quantized_parameters = parameters_mod(quantized_parameters, MODULUS_RANGE)
    return [ndarray_to_bytes(arr) for arr in quantized_parameters], quantized


def _unmask(
    state: _Client, active_nids: list[int], dead_nids: list[int], threshold: int
) -> tuple[list[int], list[bytes]]:
    """``secaggplus_mod._unmask``."""
    if len(active_nids) < threshold:
        raise FlowerRoundHalted("Available neighbours number smaller than threshold")
    all_nids = active_nids + dead_nids
    shares = [state.rd_seed_share_dict[nid] for nid in active_nids]
    shares += [state.sk1_share_dict[nid] for nid in dead_nids]
    return all_nids, shares


def flower_round_seconds(
    n: int, d: int, k: int, t: int, dropped: Collection[int] = (), seed: int = 0, **kw: Any
) -> float:
    """:func:`flower_round`'s :attr:`FlowerRound.total_seconds` (all clients + server)."""
    return flower_round(n, d, k, t, dropped, seed, **kw).total_seconds


def estimate_flower_seconds(
    n: int, d: int, k: int, t: int, dropped: int = 0, dropped_at_unmask: int = 0
) -> float:
    """A cost model of :func:`flower_round` (seconds on this project's 2-core CPU), to skip
    rounds over a cap before running them. ``dropped`` and ``dropped_at_unmask`` are counts.

    It counts: two Shamir splits per client (pycryptodome, pure Python: 3 + 20 chunks of 16
    bytes, t x num_shares field products each), one Shamir combine per node over every share
    the server collected (chunks x (a m + b m^2): Lagrange with an inversion per share; 3
    chunks for a seed, 20 for a PEM key), key agreements (PEM parsing, P-384 ECDH, HKDF,
    Fernet: share-keys, masking, and the server's rebuilt masks of dropped clients), two key
    pairs per client, Mersenne-Twister masks of d int64 entries with their adds, and the
    per-entry work of quantizing, reducing and serializing an input."""
    num_shares = flower_num_shares(k, n)
    degree = _degree(num_shares, n)
    masked = n - dropped  # clients whose masked input is in the sum
    present = (masked - dropped_at_unmask) / n  # fraction that answers the unmask stage
    split = n * SPLIT_S * (3 + 20) * t * num_shares
    m_seed, m_key = (degree + 1) * present, degree * present
    combine = 3 * masked * _combine(m_seed) + 20 * dropped * _combine(m_key)
    agreements = (n + masked + dropped) * degree
    masks = masked * (degree + 2) + dropped * degree
    return (
        split
        + combine
        + AGREEMENT_S * agreements
        + KEYGEN_S * n
        + MASK_ENTRY_S * masks * (d + 1)
        + INPUT_ENTRY_S * masked * d
    )


def _combine(m: float) -> float:
    return COMBINE_LINEAR_S * m + COMBINE_SQUARE_S * m * m


# Cost model constants (seconds), fitted to flower_round runs on the project machine (2 cores,
# AMD EPYC, Python 3.11, pycryptodome's pure-Python GF(2^128)).
SPLIT_S = 8e-6  # Shamir.split, per chunk and per t x num_shares
COMBINE_LINEAR_S = 0.4e-3  # Shamir.combine, per chunk and share (an inversion each)
COMBINE_SQUARE_S = 25e-6  # Shamir.combine, per chunk and share^2
AGREEMENT_S = 0.65e-3  # PEM parsing + P-384 ECDH + HKDF (+ a Fernet box)
KEYGEN_S = 0.5e-3  # two P-384 key pairs, PEM
MASK_ENTRY_S = 6e-9  # pseudo_rand_gen, one int64 entry, and its add
INPUT_ENTRY_S = 40e-9  # quantize, mod, serialize an entry; the server's decode and add

"""In-process driver: run any protocol with dropouts injected at any phase.

Every message really crosses the wire format (``wire.encode`` on the sender's side,
``wire.decode`` on the receiver's), so the byte counts are the ones a network would carry and
the decoders are exercised on every run. A client whose message the server rejects (a
:class:`~secagg.errors.RemoteProtocolError`) is excluded and reported; the others go on.

This module is a driver: it may read the clock (injected, ``time.perf_counter`` by default).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from secagg import wire
from secagg.errors import ConfigError, InvalidInputError, RemoteProtocolError
from secagg.primitives.signing import SigningKey
from secagg.protocol import (
    CLIENT_ID_LIMIT,
    KEY_HOLDER,
    ClientMachine,
    Credentials,
    KeyHolderMachine,
    Protocol,
    Session,
)
from secagg.randomness import RandomSource, as_random_source
from secagg.tensors import TensorSpec, flatten, unflatten
from secagg.wire import Message

__all__ = ["PhaseStats", "SimulationResult", "simulate"]

INPUT_ENCODING = "input-encoding"
"""Stats key of the clients' local ``set_input`` work (quantization, masking prep)."""


@dataclass
class PhaseStats:
    """Totals over every member of one role in one phase."""

    messages_sent: int = 0
    bytes_sent: int = 0
    messages_received: int = 0
    bytes_received: int = 0
    seconds: float = 0.0


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Outcome of :func:`simulate`.

    Attributes
    ----------
    sum:
        Dequantized sum over ``survivors`` of the (weighted, clipped) inputs, in the inputs'
        structure, type and device.
    survivors:
        Ids whose input is in the sum.
    dropped:
        Id -> phase name (the ``Phase.value``) where an injected dropout made it vanish.
    rejected:
        Id -> the error the server raised for its message (it is excluded, the round goes on).
    stats:
        ``stats[role][phase]`` for role in {"client", "server"} (and "key_holder" for
        homomorphic-encryption protocols with a separate key holder): bytes and messages sent
        and received, seconds of compute (totals over the role's members).
    ring_sum:
        The raw sum as the server holds it (numpy): in Z_{2^b}, or float64 for CKKS.
    session:
        The session the round ran in.
    epsilon:
        With distributed DP (``proto.dp``): the round's epsilon at ``dp.delta`` for the
        released sum (one round of :class:`~secagg.dp.accounting.PrivacyAccountant`); None
        without. With ``plain`` the server also sees each input with one noise share: this
        epsilon is against those who see the sum, not against that server.
    """

    sum: Any
    survivors: frozenset[int]
    dropped: dict[int, str]
    rejected: dict[int, RemoteProtocolError]
    stats: dict[str, dict[str, PhaseStats]]
    ring_sum: Any
    session: Session = field(repr=False)
    epsilon: float | None = None

    def bytes_per_client(self) -> float:
        """Mean bytes sent per client over all phases."""
        total = sum(s.bytes_sent for s in self.stats["client"].values())
        senders = max((s.messages_sent for s in self.stats["client"].values()), default=0)
        return total / senders if senders else 0.0


def _check_ids(proto: Protocol[Any], inputs: Mapping[int, Any]) -> list[int]:
    if not isinstance(inputs, Mapping) or not inputs:
        raise ConfigError(
            "inputs must be a non-empty {client_id: update} mapping", parameter="inputs"
        )
    if len(inputs) > proto.num_clients:
        raise ConfigError(
            f"{len(inputs)} inputs but the protocol is configured for num_clients="
            f"{proto.num_clients}",
            parameter="inputs",
        )
    for cid in inputs:
        if isinstance(cid, bool) or not isinstance(cid, int) or not 0 <= cid < CLIENT_ID_LIMIT:
            raise ConfigError(
                f"client ids must be ints in [0, 2^31), got {cid!r}", parameter="inputs"
            )
    return sorted(inputs)


def _flatten_like(cid: int, update: Any, spec: TensorSpec | None) -> tuple[Any, TensorSpec]:
    flat, s = flatten(update)
    if spec is not None and (s.kind, s.shapes, str(s.device)) != (
        spec.kind,
        spec.shapes,
        str(spec.device),
    ):
        raise InvalidInputError(
            f"client {cid}'s update has structure {s.kind} {s.shapes} on {s.device}; "
            f"the first one has {spec.kind} {spec.shapes} on {spec.device}"
        )
    return flat, s


def _credentials(
    proto: Protocol[Any], ids: list[int], rng: RandomSource
) -> tuple[dict[int, Credentials], dict[int, bytes] | None]:
    """Long-term signing keys and their directory, for protocols that sign."""
    if not proto.requires_credentials:
        return {}, None
    keys = {cid: SigningKey.generate(rng.fork(f"identity/{cid}")) for cid in ids}
    directory = {cid: key.public for cid, key in keys.items()}
    return {cid: Credentials(key, directory) for cid, key in keys.items()}, directory


def simulate(
    proto: Protocol[Any],
    inputs: Mapping[int, Any],
    *,
    dropouts: Mapping[int, Any] | None = None,
    weights: Mapping[int, float] | None = None,
    seed: RandomSource | int | None = None,
    round: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> SimulationResult:
    """Run one round of ``proto`` in-process.

    Parameters
    ----------
    proto:
        From ``secagg.protocols.get(name, ...)``.
    inputs:
        ``{client_id: update}``; an update is a numpy array, a torch tensor (any device) or a
        list of them (model layers). All updates share one structure.
    dropouts:
        ``{client_id: phase}``: the client vanishes at that phase (sends nothing in it or
        after). ``phase`` is a member of ``proto.Phase`` (``proto.phases[k]``).
    weights:
        ``{client_id: w}`` with w in [0, 1]; the result is sum_u w_u clip(x_u). Default 1.
    seed:
        An int for a reproducible run, a RandomSource, or None for OS entropy.
    round:
        The round number bound into every key and message.
    clock:
        Time source for the stats.

    Returns
    -------
    SimulationResult

    Raises
    ------
    AbortError
        The protocol cannot produce a correct sum (e.g. too few survivors).
    ConfigError, InvalidInputError
        Bad arguments.
    """
    ids = _check_ids(proto, inputs)
    dropouts = dict(dropouts or {})
    weights = dict(weights or {})
    phases = proto.phases
    for cid, phase in dropouts.items():
        if cid not in inputs:
            raise ConfigError(f"dropout for unknown client {cid}", parameter="dropouts")
        if phase not in phases:
            raise ConfigError(
                f"dropout phase {phase!r} is not one of {[p.name for p in phases]}",
                parameter="dropouts",
            )
    for cid in weights:
        if cid not in inputs:
            raise ConfigError(f"weight for unknown client {cid}", parameter="weights")
    drop_at = {cid: phases.index(p) for cid, p in dropouts.items()}

    def alive(cid: int, phase_index: int) -> bool:
        return phase_index < drop_at.get(cid, len(phases) + 1)

    # The first input fixes the structure (and d); the others are read lazily, when each
    # client needs its input, so a lazy Mapping keeps the run from holding n x d at once.
    first, spec = _flatten_like(ids[0], inputs[ids[0]], None)
    rng = as_random_source(seed)
    session = Session(rng.fork("session").random_bytes(32), spec.size, round)
    stats: dict[str, dict[str, PhaseStats]] = {
        "client": {INPUT_ENCODING: PhaseStats(), **{p.value: PhaseStats() for p in phases}},
        "server": {p.value: PhaseStats() for p in phases},
    }
    credentials, directory = _credentials(proto, ids, rng.fork("credentials"))
    keys = proto.keygen(rng.fork("task-keys"))
    server = proto.server(
        session,
        rng.fork("server"),
        directory=directory,
        keys=keys.public_only() if keys is not None else None,
    )
    participant_keys = proto.participant_keys(keys)
    clients: dict[int, ClientMachine[Any]] = {
        cid: proto.client(
            cid,
            session,
            rng.fork(f"client/{cid}"),
            credentials=credentials.get(cid),
            keys=participant_keys,
        )
        for cid in ids
    }
    holder: KeyHolderMachine[Any] | None = None
    if keys is not None:
        holder = proto.key_holder(session, keys, rng.fork("key-holder"))
    if holder is not None:
        stats["key_holder"] = {p.value: PhaseStats() for p in phases}
    input_index = phases.index(proto.input_phase)

    def set_input(cid: int) -> None:
        flat = first if cid == ids[0] else _flatten_like(cid, inputs[cid], spec)[0]
        t0 = clock()
        clients[cid].set_input(flat, weight=weights.get(cid, 1.0))
        stats["client"][INPUT_ENCODING].seconds += clock() - t0

    rejected: dict[int, RemoteProtocolError] = {}
    # pending[cid]: the server message the client handles at the start of the next phase
    # (None: the first phase, where it calls start()).
    pending: dict[int, Message | None] = dict.fromkeys(ids)
    for k, phase in enumerate(phases):
        s_stats = stats["server"][phase.value]
        for cid, incoming in pending.items():
            if cid in rejected or not alive(cid, k):
                continue
            c_stats = stats["key_holder" if cid == KEY_HOLDER else "client"][phase.value]
            if k == input_index and cid != KEY_HOLDER:
                set_input(cid)
            t0 = clock()
            if cid == KEY_HOLDER:
                assert holder is not None and incoming is not None
                msg: Message | None = holder.receive(incoming)
            elif incoming is None:
                msg = clients[cid].start()
            else:
                msg = clients[cid].receive(incoming)
            c_stats.seconds += clock() - t0
            if msg is None:
                continue
            data = wire.encode(msg)
            del msg  # only the bytes travel: at most one client's message is alive at a time
            c_stats.messages_sent += 1
            c_stats.bytes_sent += len(data)
            s_stats.messages_received += 1
            s_stats.bytes_received += len(data)
            t0 = clock()
            try:
                server.receive(wire.decode(data, protocol=proto.wire_name))
            except RemoteProtocolError as exc:
                rejected[cid] = exc
            finally:
                s_stats.seconds += clock() - t0
        t0 = clock()
        try:
            replies = server.on_deadline(phase)
        finally:
            s_stats.seconds += clock() - t0
        pending = {}
        next_phase = phases[min(k + 1, len(phases) - 1)].value
        for cid, reply in sorted(replies.items()):
            data = wire.encode(reply)
            s_stats.messages_sent += 1
            s_stats.bytes_sent += len(data)
            reachable = cid in clients or (cid == KEY_HOLDER and holder is not None)
            if cid in rejected or not reachable or not alive(cid, k + 1):
                continue
            c_next = stats["key_holder" if cid == KEY_HOLDER else "client"][next_phase]
            c_next.messages_received += 1
            c_next.bytes_received += len(data)
            pending[cid] = wire.decode(data, protocol=proto.wire_name)
    for cid, incoming in pending.items():  # messages after the last phase: delivered, no reply
        if incoming is not None and cid in clients:
            clients[cid].receive(incoming)

    result = server.result
    total = unflatten(proto.decode(result.ring_sum, first, session), spec)
    dp = getattr(proto, "dp", None)
    epsilon = None
    if dp is not None:
        from secagg.dp.accounting import PrivacyAccountant

        epsilon = PrivacyAccountant(dp, proto.num_clients, session.dim).epsilon(1)
    return SimulationResult(
        sum=total,
        survivors=result.survivors,
        dropped={cid: phases[i].value for cid, i in drop_at.items()},
        rejected=rejected,
        stats=stats,
        ring_sum=result.ring_sum,
        session=session,
        epsilon=epsilon,
    )

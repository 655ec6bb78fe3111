"""The server side: run a secagg server machine over a Flower ``Grid``, phase by phase.

Inside a ``ServerApp``::

    secure = SecureAggregation("secaggplus", timeout=30, dropout_rate=0.2)

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        arrays = ArrayRecord(initial_weights)
        for rnd in range(num_rounds):
            arrays = secure.run_round(grid, arrays, round=rnd).arrays

One round: every node gets a START request (protocol, config, session, its client id); each
phase's replies go to the server machine; when all replies are in or ``timeout`` seconds have
passed (Flower's timeout is the phase's deadline) the machine's ``on_deadline`` closes the
phase and its messages go out as the next phase's STEP requests. A node that does not reply in
time has dropped out from that phase on; a reply that our checks refuse is recorded under its
node with the named error and that node is left out; the honest nodes' round goes on. The
``train`` function runs on the nodes in the protocol's input phase only, and what reaches the
ServerApp are wire bytes of masked vectors or ciphertexts.

Node ids (Flower's 64-bit ids) become client ids 0..n-1 in ascending node-id order. For the HE
protocols one node is the key holder (by default the lowest id): it makes the task keys once
(KEYGEN), decrypts only the aggregate each round (DECRYPT) and sends no update. In a signed
round (``consistency_check=True``, with ``directory=``) the client ids are the directory's
instead: each node says which entry holds its key (IDENTIFY), and checks it is addressed so.

This module is a driver: it reads the clock and does Flower I/O; the machines do neither.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.serverapp import Grid

import secagg.protocols as protocols
from secagg import wire
from secagg.dp import DistributedDP
from secagg.errors import (
    AbortError,
    ConfigError,
    RemoteProtocolError,
    RoutingError,
    SecAggError,
    UnknownSenderError,
    WireError,
)
from secagg.primitives.signing import verify
from secagg.protocol import KEY_HOLDER, KeyMaterial, Protocol, ServerMachine, Session
from secagg.protocols.he import HEProtocol, KeyMode
from secagg.randomness import RandomSource, SeededRandom, SystemRandom

from ..agents.task import build_protocol, uses_dp
from .client_mod import ARRAYS
from .envelope import RECORD, UNASSIGNED, Reply, Request, Setup, Stage, flatten_arrays
from .identity import checked_directory, identify_message

__all__ = ["FlowerRoundResult", "PhaseTraffic", "SecureAggregation"]

TRAIN_CONFIG = "config"


@dataclass
class PhaseTraffic:
    """What crossed the Grid in one phase (secagg payload bytes, excluding the model sent)."""

    requests: int = 0
    bytes_to_nodes: int = 0
    replies: int = 0
    bytes_from_nodes: int = 0
    seconds: float = 0.0


@dataclass(frozen=True, eq=False)
class FlowerRoundResult:
    """Outcome of :meth:`SecureAggregation.run_round`.

    Attributes
    ----------
    arrays:
        The next global model: ``arrays + Σ_U w_u Δ_u / Σ_U w_u`` (FedAvg), same keys.
    weighted_sum:
        The flat Σ_U w_u Δ_u (float64), what the protocol revealed besides ``total_weight``.
    total_weight:
        Σ_U w_u.
    survivors:
        Node ids whose update is in the sum.
    dropped:
        Node id -> the phase it did not reply in (Flower timeout or a Flower-level error).
    rejected:
        Node id -> the ``RemoteProtocolError`` our checks raised for its reply.
    refused:
        Node id -> ``"ErrorName: detail"``: the node refused the server's request.
    client_ids:
        Node id -> client id in this round (``KEY_HOLDER`` for the key holder).
    ring_sum, session:
        The raw sum the server machine holds, and the round's session.
    traffic:
        Phase name -> :class:`PhaseTraffic`.
    """

    arrays: ArrayRecord
    weighted_sum: npt.NDArray[np.float64]
    total_weight: float
    survivors: frozenset[int]
    dropped: dict[int, str]
    rejected: dict[int, RemoteProtocolError]
    refused: dict[int, str]
    client_ids: dict[int, int]
    ring_sum: Any
    session: Session = field(repr=False)
    traffic: dict[str, PhaseTraffic] = field(repr=False, default_factory=dict)


class SecureAggregation:
    """Secure FedAvg rounds over a Flower ``Grid`` with any secagg protocol.

    Parameters
    ----------
    protocol:
        A name from ``secagg.protocols.names()``; nodes refuse it unless their
        :class:`~secagg.clients.flower.SecAggMod` agreed to it.
    timeout:
        Seconds each phase waits for replies (its deadline).
    train_timeout:
        The deadline of the input phase, where nodes train (default: ``timeout``).
    max_examples:
        N_max of the weighting w_u = min(n_u, N_max) / N_max; 0 for w_u = 1.
    key_holder:
        HE protocols: the node that holds the secret key (default: the lowest node id).
    directory:
        Client id -> Ed25519 public key of every client: required by protocols that sign
        (``consistency_check=True``), which then run over the whole directory
        (``num_clients = len(directory)``; members that are not connected have dropped out).
        The nodes check signatures against their own copy (:mod:`.identity`).
    seed:
        Reproducible runs only: session and server randomness as ``secagg.simulate`` draws
        them with ``seed=simulate_seed(seed, round)``. Default: OS entropy.
    **config:
        Keyword arguments of ``protocols.get`` except ``num_clients`` (the number of
        participating nodes), sent to the nodes as JSON. ``dp=DistributedDP(...)`` adds
        distributed DP: nodes clip and add integer noise before masking, every node weighs 1
        (``max_examples`` plays no part) and the step divides by |U|.
    """

    def __init__(
        self,
        protocol: str,
        *,
        timeout: float = 60.0,
        train_timeout: float | None = None,
        max_examples: int = 0,
        key_holder: int | None = None,
        directory: Mapping[int, bytes] | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        **config: Any,
    ) -> None:
        if protocol not in protocols.names():
            raise ConfigError(f"unknown protocol {protocol!r}", parameter="protocol")
        if "num_clients" in config:
            raise ConfigError(
                "num_clients is the number of participating nodes; do not set it",
                parameter="num_clients",
            )
        if isinstance(config.get("dp"), DistributedDP):  # travels to the nodes as JSON
            config["dp"] = config["dp"].to_dict()
        if not timeout > 0 or (train_timeout is not None and not train_timeout > 0):
            raise ConfigError("timeouts must be > 0 seconds", parameter="timeout")
        if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 0:
            raise ConfigError("max_examples must be an int >= 0", parameter="max_examples")
        try:
            self.config_json = json.dumps(config, sort_keys=True)
        except TypeError:
            raise ConfigError("protocol config must be JSON values", parameter="config") from None
        self.protocol = protocol
        self.config = dict(config)
        self.timeout = float(timeout)
        self.train_timeout = float(train_timeout if train_timeout is not None else timeout)
        self.max_examples = max_examples
        self.key_holder_node = key_holder
        self.directory = None if directory is None else checked_directory(directory)
        self.seed = seed
        self.clock = clock
        self._public_keys: bytes | None = None  # HE: made once by the key holder ...
        self._keys_node: int | None = None  # ... on this node, which keeps the secret

    # -- one round ---------------------------------------------------------------------------

    def run_round(
        self,
        grid: Grid,
        arrays: ArrayRecord,
        *,
        round: int,
        node_ids: Iterable[int] | None = None,
        train_config: ConfigRecord | None = None,
    ) -> FlowerRoundResult:
        """Run one secure FedAvg round on ``node_ids`` (default: every connected node).

        Raises
        ------
        AbortError
            The protocol cannot produce a correct sum (too few survivors or shares).
        ConfigError
            Bad parameters, or too few nodes for the protocol.
        """
        nodes = sorted(set(grid.get_node_ids() if node_ids is None else node_ids))
        if not nodes:
            raise ConfigError("no nodes to aggregate over", parameter="node_ids")
        rng: RandomSource = SeededRandom(self.seed) if self.seed is not None else SystemRandom()
        n = len(self.directory) if self.directory is not None else len(nodes)
        probe = build_protocol(self.protocol, {**self.config, "num_clients": max(n, 1)})
        if probe.requires_credentials:
            return self._signed_round(probe, grid, arrays, nodes, rng, round, train_config)
        if self.directory is not None:
            raise ConfigError(
                f"directory is for protocols that sign; {self.protocol} as configured does not "
                "(consistency_check=True)",
                parameter="directory",
            )
        holder_node = self._pick_key_holder(probe, nodes)
        participants = [n for n in nodes if n != holder_node]
        if not participants:
            raise ConfigError("no participating nodes", parameter="node_ids")
        proto = (  # without a key holder every node participates: the probe is the protocol
            probe
            if holder_node is None
            else build_protocol(self.protocol, {**self.config, "num_clients": len(participants)})
        )
        config_json = json.dumps({**self.config, "num_clients": len(participants)}, sort_keys=True)
        _, _, flat_model = flatten_arrays(arrays)
        session = Session(rng.fork("session").random_bytes(32), flat_model.size + 1, round)

        run = _Round(self, grid, proto, session, config_json, arrays, train_config)
        run.node_of = {cid: node for cid, node in enumerate(participants)}
        if holder_node is not None:
            run.node_of[KEY_HOLDER] = holder_node
            public = self._keys(run)
            server = proto.server(session, rng.fork("server"), keys=KeyMaterial(public))
            run.public_keys = public
        else:
            server = proto.server(session, rng.fork("server"))
        return self._finish(run, server, arrays)

    def _signed_round(
        self,
        proto: Protocol[Any],
        grid: Grid,
        arrays: ArrayRecord,
        nodes: list[int],
        rng: RandomSource,
        round: int,
        train_config: ConfigRecord | None,
    ) -> FlowerRoundResult:
        """A round of a protocol that signs: over the directory, with the nodes' own ids."""
        if self.directory is None:
            raise ConfigError(
                f"{self.protocol} with consistency_check=True needs the directory of the "
                "clients' signing keys (SecureAggregation(directory=...))",
                parameter="directory",
            )
        config_json = json.dumps(
            {**self.config, "num_clients": len(self.directory)}, sort_keys=True
        )
        _, _, flat_model = flatten_arrays(arrays)
        session = Session(rng.fork("session").random_bytes(32), flat_model.size + 1, round)
        run = _Round(self, grid, proto, session, config_json, arrays, train_config)
        run.node_of = run.identify(nodes, self.directory)
        if not run.node_of:
            raise AbortError("too-few-survivors", f"no node identified; {run.summary()}")
        server = proto.server(session, rng.fork("server"), directory=self.directory)
        return self._finish(run, server, arrays)

    def _finish(
        self, run: _Round, server: ServerMachine[Any], arrays: ArrayRecord
    ) -> FlowerRoundResult:
        proto, session = run.proto, run.session
        ring_sum = run.drive(server)
        flat_sum = np.asarray(proto.decode(ring_sum, np.zeros(1), session), dtype=np.float64)
        weighted, total = flat_sum[:-1], float(flat_sum[-1])
        if uses_dp(proto):  # DP-FedAvg: nodes weigh 1 and append 0.0; divide by |U|
            total = float(len(server.result.survivors))
        survivors = frozenset(run.node_of[c] for c in server.result.survivors)
        return FlowerRoundResult(
            arrays=_fedavg(arrays, weighted, total),
            weighted_sum=weighted,
            total_weight=total,
            survivors=survivors,
            dropped=run.dropped,
            rejected=run.rejected,
            refused=run.refused,
            client_ids={node: cid for cid, node in run.node_of.items()},
            ring_sum=ring_sum,
            session=session,
            traffic=run.traffic,
        )

    def _pick_key_holder(self, proto: Protocol[Any], nodes: list[int]) -> int | None:
        if not isinstance(proto, HEProtocol):
            return None  # no task keys, no key holder
        if proto.key_mode is KeyMode.SHARED:
            raise ConfigError(
                "key_mode='shared' needs a dealer to hand every node the secret key; over "
                "Flower use the key-holder mode",
                parameter="key_mode",
            )
        holder = self.key_holder_node if self.key_holder_node is not None else min(nodes)
        if self._keys_node is not None:  # the keys were made: they live on that node
            holder = self._keys_node
        if holder not in nodes:
            raise ConfigError(
                f"key holder node {holder} is not connected (the task's secret key is there)",
                parameter="key_holder",
            )
        return holder

    def _keys(self, run: _Round) -> bytes:
        """The public HE context: asked of the key holder once, then reused every round."""
        if self._public_keys is None:
            self._public_keys = run.keygen()
            self._keys_node = run.node_of[KEY_HOLDER]
        return self._public_keys


def _fedavg(arrays: ArrayRecord, weighted: npt.NDArray[np.float64], total: float) -> ArrayRecord:
    keys, shapes, flat = flatten_arrays(arrays)
    step = flat + (weighted / total if total > 0 else 0.0)
    out: dict[str, Array] = {}
    offset = 0
    for key, shape in zip(keys, shapes, strict=True):
        size = int(np.prod(shape, dtype=np.int64))
        dtype = arrays[key].numpy().dtype
        out[key] = Array(step[offset : offset + size].reshape(shape).astype(dtype))
        offset += size
    return ArrayRecord(out)


class _Round:
    """The state of one round's drive: who is still in, and what each node said."""

    def __init__(
        self,
        owner: SecureAggregation,
        grid: Grid,
        proto: Protocol[Any],
        session: Session,
        config_json: str,
        arrays: ArrayRecord,
        train_config: ConfigRecord | None,
    ) -> None:
        self.owner = owner
        self.grid = grid
        self.proto = proto
        self.session = session
        self.config_json = config_json
        self.arrays = arrays
        self.train_config = train_config
        self.node_of: dict[int, int] = {}
        self.public_keys = b""
        self.dropped: dict[int, str] = {}
        self.rejected: dict[int, RemoteProtocolError] = {}
        self.refused: dict[int, str] = {}
        self.traffic: dict[str, PhaseTraffic] = {}

    def setup(self, cid: int) -> Setup:
        return Setup(
            protocol=self.proto.name,
            config=self.config_json,
            session=self.session.id,
            dim=self.session.dim,
            round=self.session.round,
            client_id=cid,
            max_examples=self.owner.max_examples,
        )

    def out(self, node: int) -> bool:
        return node in self.dropped or node in self.rejected or node in self.refused

    def summary(self) -> str:
        """Who is out of the round and why, for an abort's message."""
        parts = [f"node {n} dropped at {why}" for n, why in self.dropped.items()]
        parts += [f"node {n} rejected: {type(e).__name__}: {e}" for n, e in self.rejected.items()]
        parts += [f"node {n} refused: {why}" for n, why in self.refused.items()]
        return "; ".join(parts) if parts else "every node replied"

    def identify(self, nodes: list[int], directory: Mapping[int, bytes]) -> dict[int, int]:
        """Signed rounds: ask every node which directory entry holds its key; return client
        id -> node for the nodes that prove it (a signature over the id, session and round
        under that entry's key). Two nodes proving one id (one key on two nodes) are both
        rejected."""
        phase = Stage.IDENTIFY.value
        traffic = self.traffic.setdefault(phase, PhaseTraffic())
        t0 = self.owner.clock()
        request = Request(Stage.IDENTIFY, self.setup(UNASSIGNED), phase)
        messages = [
            Message(
                RecordDict({RECORD: request.to_record()}),
                dst_node_id=node,
                message_type=MessageType.TRAIN,
                group_id=str(self.session.round),
            )
            for node in nodes
        ]
        traffic.requests += len(messages)
        claims: dict[int, list[int]] = {}
        answered: set[int] = set()
        for reply in self.grid.send_and_receive(messages, timeout=self.owner.timeout):
            node = reply.metadata.src_node_id
            if node not in nodes or node in answered:
                continue
            answered.add(node)

            def proves_its_id(parsed: Reply, node: int = node) -> None:
                if parsed.phase != phase:
                    raise RoutingError(f"node {node} answered for phase {parsed.phase!r}")
                cid = parsed.client_id
                if cid not in directory:
                    raise UnknownSenderError(
                        f"node {node} claims client id {cid}, not in the directory"
                    )
                claimed = identify_message(cid, session=self.session.id, round=self.session.round)
                verify(directory[cid], claimed, parsed.message, sender=cid)

            parsed = self._accept(reply, node, UNASSIGNED, phase, traffic, proves_its_id)
            if parsed is not None:
                claims.setdefault(parsed.client_id, []).append(node)
        for node in nodes:
            if node not in answered:
                self.dropped[node] = phase
        node_of: dict[int, int] = {}
        for cid, claimants in sorted(claims.items()):
            if len(claimants) == 1:
                node_of[cid] = claimants[0]
                continue
            for node in claimants:
                self.rejected[node] = RoutingError(
                    f"nodes {sorted(claimants)} all claim client id {cid}", sender=cid
                )
        traffic.seconds += self.owner.clock() - t0
        return node_of

    def _accept(
        self,
        reply: Message,
        node: int,
        cid: int,
        phase: str,
        traffic: PhaseTraffic,
        check: Callable[[Reply], None],
    ) -> Reply | None:
        """A node's reply once ``check`` passes it, counted in ``traffic``; None when the node
        refused, failed at Flower's level (dropped) or sent a reply our checks refuse
        (rejected), each recorded under the node."""
        try:
            if reply.has_error():
                raise _NodeFailure(f"Flower error {reply.error.code}: {reply.error.reason}")
            if RECORD not in reply.content.config_records:
                raise WireError(f"node {node}'s reply has no {RECORD!r} record", sender=cid)
            parsed = Reply.from_record(reply.content.config_records[RECORD])
            if parsed.error:
                self.refused[node] = f"{parsed.error}: {parsed.detail}"
                return None
            check(parsed)
        except _NodeFailure as exc:
            self.dropped[node] = f"{phase} ({exc})"
            return None
        except RemoteProtocolError as exc:
            self.rejected[node] = exc
            return None
        traffic.replies += 1
        traffic.bytes_from_nodes += len(parsed.message)
        return parsed

    def keygen(self) -> bytes:
        request = Request(Stage.KEYGEN, self.setup(KEY_HOLDER), phase="keygen")
        replies = self.exchange({KEY_HOLDER: request}, "keygen", self.owner.timeout)
        if KEY_HOLDER not in replies or not replies[KEY_HOLDER]:
            node = self.node_of[KEY_HOLDER]
            why = self.refused.get(node) or self.dropped.get(node) or str(self.rejected.get(node))
            raise ConfigError(f"the key holder (node {node}) made no keys: {why}")
        return replies[KEY_HOLDER]

    def drive(self, server: ServerMachine[Any]) -> Any:
        phases = self.proto.phases
        pending: dict[int, Request] = {
            cid: Request(
                Stage.START,
                self.setup(cid),
                phases[0].value,
                public_keys=self.public_keys,
            )
            for cid in self.node_of
            if cid != KEY_HOLDER
        }
        for k, phase in enumerate(phases):
            timeout = (
                self.owner.train_timeout if phase == self.proto.input_phase else self.owner.timeout
            )
            replies = self.exchange(pending, phase.value, timeout)
            traffic = self.traffic[phase.value]
            for cid, data in replies.items():
                if not data:
                    continue  # the machine had nothing to send in this phase
                t0 = self.owner.clock()
                try:
                    msg = wire.decode(data, protocol=self.proto.wire_name)
                    if getattr(msg, "sender", None) != cid:
                        raise RoutingError(
                            f"node {self.node_of[cid]} is client {cid} but its message says "
                            f"sender {getattr(msg, 'sender', None)}",
                            sender=cid,
                        )
                    server.receive(msg)
                except RemoteProtocolError as exc:
                    self.rejected[self.node_of[cid]] = exc
                finally:
                    traffic.seconds += self.owner.clock() - t0
            t0 = self.owner.clock()
            try:
                outgoing = server.on_deadline(phase)
            except AbortError as exc:
                raise AbortError(exc.reason, f"{exc.detail}; {self.summary()}") from exc
            finally:
                traffic.seconds += self.owner.clock() - t0
            if k + 1 == len(phases):
                break
            nxt = phases[k + 1].value
            pending = {}
            for cid, reply_msg in sorted(outgoing.items()):
                node = self.node_of.get(cid)
                if node is None or self.out(node):
                    continue
                stage = Stage.DECRYPT if cid == KEY_HOLDER else Stage.STEP
                pending[cid] = Request(stage, self.setup(cid), nxt, wire.encode(reply_msg))
        return server.result.ring_sum

    def exchange(
        self, pending: Mapping[int, Request], phase: str, timeout: float
    ) -> dict[int, bytes]:
        """Send each request to its node; return client id -> message bytes of the valid
        replies that arrived before ``timeout``. Everyone else is recorded as out."""
        traffic = self.traffic.setdefault(phase, PhaseTraffic())
        t0 = self.owner.clock()
        messages = []
        for cid, request in pending.items():
            content = RecordDict({RECORD: request.to_record()})
            if phase == self.proto.input_phase.value and cid != KEY_HOLDER:
                content[ARRAYS] = self.arrays
                if self.train_config is not None:
                    content[TRAIN_CONFIG] = self.train_config
            traffic.requests += 1
            traffic.bytes_to_nodes += len(request.message) + len(request.public_keys)
            messages.append(
                Message(
                    content,
                    dst_node_id=self.node_of[cid],
                    message_type=MessageType.TRAIN,
                    group_id=str(self.session.round),
                )
            )
        got: dict[int, bytes] = {}
        cid_of = {node: cid for cid, node in self.node_of.items()}
        for reply in self.grid.send_and_receive(messages, timeout=timeout):
            node = reply.metadata.src_node_id
            asked = cid_of.get(node)
            if asked is None or asked not in pending or asked in got:
                continue  # not asked in this phase (Flower pairs replies with requests)
            cid = asked

            def as_asked(parsed: Reply, node: int = node, cid: int = cid) -> None:
                if parsed.client_id != cid or parsed.phase != phase:
                    raise RoutingError(
                        f"node {node} answered as client {parsed.client_id} for phase "
                        f"{parsed.phase!r}; it was asked as client {cid} for {phase!r}",
                        sender=cid,
                    )

            parsed = self._accept(reply, node, cid, phase, traffic, as_asked)
            if parsed is not None:
                got[cid] = parsed.message
        for cid in pending:
            silent = self.node_of[cid]
            if cid not in got and not self.out(silent):
                self.dropped[silent] = phase
        traffic.seconds += self.owner.clock() - t0
        return got


class _NodeFailure(SecAggError):
    """A Flower-level error reply: the node is treated as dropped for the round."""

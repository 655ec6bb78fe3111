"""The client side: a Flower mod that runs a secagg client machine over Flower messages.

Add it to an existing ``ClientApp`` and the app's ``train`` function is called only in the
phase that needs the update; every other phase is handled by the mod::

    app = ClientApp(mods=[SecAggMod()])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        ...                           # as before: reply with "arrays" and "metrics"

What the mod sends is the update Δ = (trained arrays - the arrays it was sent), flattened, with
1.0 appended, weighted by w_u = min(n_u, N_max) / N_max (``num-examples`` from the reply's
metrics; w_u = 1 when the server sets no N_max). The secure sum then yields
Σ_U w_u Δ_u and Σ_U w_u: a FedAvg step, with no node's weight revealed. The train function's
arrays and metrics never leave the node; the reply carries one protocol message.

State between messages
----------------------
Flower keeps nothing of a ``ClientApp`` between messages except its ``Context.state`` (under
``flwr run`` each message may be handled by a fresh process). A secagg client machine holds
secrets and is never pickled, so the mod stores what *determines* the machine instead, and
rebuilds it at every message:

- a 32-byte seed, drawn from OS entropy at START (the machine's only randomness, through
  :class:`~secagg.randomness.SeededRandom`); in seed mode derived from (seed, session, round)
  instead (:mod:`.seeding`), so no two rounds share a secret;
- the update and its weight, once trained;
- the server messages received so far, and the SHA-256 of each message sent.

Rebuilding replays the machine through the messages it already handled and checks that every
replayed output hashes to what was sent (:class:`FlowerStateError` otherwise). The price is
compute: at phase k the client redoes phases 0..k-1 (for SecAgg+ at UNMASKING, about two extra
maskings of d entries). The secret part of the node's state is the seed, and it lives where
Flower keeps node state: on the node.

The HE key holder keeps the task keys there too, and the (session, round) of every aggregate
it decrypted: a second DECRYPT for one session and round is refused whatever it claims, even
by a fresh process. This holds while the node handles one message at a time (a Flower 1.42
SuperNode pulls the next message only after pushing its reply; the simulation engine may hand
two messages for one node to two workers at once, each with a copy of the state).

Node policy
-----------
The server names the protocol and its parameters; the node decides what it accepts:
``protocols=`` (which protocols), ``min_survivors=`` and ``num_clients=`` (bounds on what
the request says), ``check=`` (anything else), ``identity=`` and ``require_signatures=``
(signed rounds, :mod:`.identity`).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp.typing import ClientAppCallable

import secagg.protocols as protocols
from secagg import wire
from secagg.dp import DistributedDP
from secagg.dp.accounting import PrivacyAccountant, rdp_epsilon
from secagg.errors import (
    ConfigError,
    InvalidInputError,
    OutOfPhaseError,
    RefusedRequestError,
    SecAggError,
    WrongSessionError,
)
from secagg.graph import Adversary
from secagg.protocol import (
    KEY_HOLDER,
    ClientMachine,
    Credentials,
    KeyMaterial,
    Protocol,
    SecretBytes,
    Session,
)
from secagg.protocols.secaggplus.config import SecAggPlusConfig
from secagg.randomness import RandomSource, SeededRandom, SystemRandom

from ..agents.task import build_protocol, uses_dp
from ..errors import FlowerStateError
from .envelope import RECORD, Reply, Request, Setup, Stage, flatten_arrays
from .identity import IdentitySource, NodeIdentity
from .seeding import round_seed

__all__ = ["SECURE_PROTOCOLS", "DPFloor", "InputTap", "SecAggMod", "ThreatFloor"]

SECURE_PROTOCOLS = ("secagg", "secaggplus", "ckks", "paillier")
"""What :class:`SecAggMod` agrees to run unless told otherwise (``plain`` hides nothing)."""
ROUND_STATE = "secagg.round"
INPUT_STATE = "secagg.input"
DP_SPENT = "secagg.dp-spent"
"""The node's composed RDP curve over the DP rounds it started in this run."""
KEY_STATE = "secagg.keys"
DECRYPTED_STATE = "secagg.decrypted"
ARRAYS = "arrays"
METRICS = "metrics"
NUM_EXAMPLES = "num-examples"

InputTap = Callable[[int, int, npt.NDArray[np.float64], float], None]
"""``(client_id, round, x, w)``: called with the vector the mod is about to encode."""


def _digest(msg: wire.Message | None) -> bytes:
    return b"" if msg is None else hashlib.sha256(wire.encode(msg)).digest()


def _round_tag(setup: Setup) -> bytes:
    """What the key holder records of a round it decrypted: H(session, round)."""
    data = len(setup.session).to_bytes(2, "big") + setup.session + setup.round.to_bytes(8, "big")
    return hashlib.sha256(b"secagg/flower/decrypted-round" + data).digest()


@functools.lru_cache(maxsize=64)
def _default_min_survivors(protocol: str, config: str) -> int:
    """The ``min_survivors`` that ``protocol`` chooses by itself for the parameters in the
    JSON ``config`` (with any ``min_survivors`` and ``allow_single_input`` left out)."""
    kwargs = json.loads(config)
    for chosen in ("min_survivors", "allow_single_input", "dp"):
        kwargs.pop(chosen, None)
    return int(protocols.get(protocol, **kwargs).config.min_survivors)


@dataclass(frozen=True, slots=True)
class DPFloor:
    """The least distributed DP a node accepts for its update, and its own budget.

    Over Flower the server announces the DP config with every round, and could leave it out
    or weaken it. A node with a floor refuses a round without ``dp`` or announced below the
    floor, and accounts for itself: every DP round it starts in this run (kept in the node's
    ``Context.state``) is composed at the node's ``delta``, and a round that would take it
    past ``epsilon_budget`` is refused. The server also announces n; a floor therefore needs
    ``SecAggMod(num_clients=...)`` or ``identity=`` (checked), so the node knows how many
    share the noise.

    Attributes
    ----------
    noise_multiplier:
        The least z a round may announce.
    min_contributors:
        The least m (honest noise shares) a round may be calibrated for.
    delta:
        The node's delta: a round announcing a larger one is refused, and the node's epsilon
        is at this delta.
    epsilon_budget:
        The most epsilon the node spends over the DP rounds it starts in this run (None: no
        cap).
    """

    noise_multiplier: float
    min_contributors: int
    delta: float
    epsilon_budget: float | None = None

    def check(self, dp: DistributedDP | None) -> None:
        """Raise :class:`RefusedRequestError` unless ``dp`` is at or above the floor."""
        if dp is None:
            raise RefusedRequestError("this node sends updates only with distributed DP (dp)")
        weaker = [
            f"{name}={got} (floor {want})"
            for name, got, want, low in (
                ("noise_multiplier", dp.noise_multiplier, self.noise_multiplier, True),
                ("min_contributors", dp.min_contributors, self.min_contributors, True),
                ("delta", dp.delta, self.delta, False),
            )
            if (got < want if low else got > want)
        ]
        if weaker:
            raise RefusedRequestError(f"the server announces DP below this node's floor: {weaker}")


@dataclass(frozen=True, slots=True)
class ThreatFloor:
    """The weakest threat model a node lets the server size a masking round for.

    The server announces the masking parameters; a weaker adversary, fewer corrupted
    clients or fewer dropouts give a smaller k, t and signature quorum. A node refuses a round
    announced for less than this floor, so the server cannot shrink them (with parameters at
    or above the floor, every t, k and quorum the config accepts is safe for the floor: the
    checks are monotone in gamma and delta).

    Attributes
    ----------
    adversary:
        ``"semi-malicious"`` (default): refuse ``"semi-honest"``; ``"malicious"``: refuse
        all but ``"malicious"`` (which needs signatures).
    corrupted_fraction, dropout_rate:
        gamma and delta: the least the server may announce (defaults: the library's, 0.05
        and 0.1).
    """

    adversary: str = Adversary.SEMI_MALICIOUS.value
    corrupted_fraction: float = 0.05
    dropout_rate: float = 0.1

    def __post_init__(self) -> None:
        try:
            Adversary(self.adversary)
        except ValueError:
            raise ConfigError(
                f"threat_floor.adversary must be an Adversary value, got {self.adversary!r}",
                parameter="threat_floor",
            ) from None
        for name in ("corrupted_fraction", "dropout_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
                raise ConfigError(f"threat_floor.{name} must be in [0, 1)", parameter=name)

    def check(self, config: SecAggPlusConfig) -> None:
        """Raise :class:`RefusedRequestError` when ``config`` is sized for less."""
        order = [Adversary.SEMI_HONEST, Adversary.SEMI_MALICIOUS, Adversary.MALICIOUS]
        asked = config.adversary_model
        if order.index(asked) < order.index(Adversary(self.adversary)):
            raise RefusedRequestError(
                f"the server sizes the round for a {asked.value} server; this node accepts "
                f"{self.adversary} or stronger"
            )
        for name in ("corrupted_fraction", "dropout_rate"):
            got, least = getattr(config, name), getattr(self, name)
            if got < least:
                raise RefusedRequestError(
                    f"the server sizes the round for {name}={got}; this node accepts "
                    f"{least} or more"
                )


class SecAggMod:
    """Flower mod: run a secagg client (or an HE key holder) inside a ``ClientApp``.

    Parameters
    ----------
    protocols:
        The protocols this node agrees to run. The server names the protocol; a name outside
        this set is refused (:class:`~secagg.errors.RefusedRequestError`), so a server cannot
        downgrade a node to ``plain``.
    check:
        Called with the protocol the server configured before anything is computed; raise a
        ``SecAggError`` to refuse it (e.g. a threshold lower than this node accepts).
    min_survivors:
        The fewest inputs a sum this node helps reveal may have: a request whose protocol
        has a lower ``min_survivors`` is refused. Default: what the protocol chooses by
        itself for the parameters the server announces (max(2, ceil(n / 2)) for ``ckks`` and
        ``paillier``, t for ``secagg`` and ``secaggplus``), so a server may raise
        ``min_survivors`` but neither lower it nor turn on ``allow_single_input``.
    threat_floor:
        The weakest adversary, gamma and delta a masking round may be sized for
        (:class:`ThreatFloor`; default: semi-malicious, 0.05, 0.1): a server announcing a
        semi-honest adversary or gamma = 0 to shrink t and the quorum is refused.
    dp_floor:
        Distributed DP this node insists on, and its own epsilon budget (:class:`DPFloor`);
        None: the node follows the server's DP config, if any.
    num_clients:
        When set, a request for any other number of clients is refused (the server also picks
        n, and n sets the default ``min_survivors`` and the key holder's largest sum).
    identity:
        This node's signing key and the directory of every client's key: a
        :class:`~secagg.clients.flower.identity.NodeIdentity`, or a callable that makes one
        from the node's ``Context`` (:class:`~secagg.clients.flower.identity.IdentityFiles`
        reads key files named in ``node_config``). Needed for protocols that sign
        (``consistency_check=True``); without it they are refused.
    require_signatures:
        Refuse every round that does not sign (unsigned masking, and the HE protocols), so a
        server cannot downgrade this node to an unsigned round. Default: True when
        ``identity`` is given, else False.
    seed:
        For reproducible runs only (tests, examples): the node's randomness in round r of
        session S becomes ``SeededRandom(round_seed(seed, S, r)).fork("client/<id>")``
        (:mod:`~secagg.clients.flower.seeding`), fresh every round; ``secagg.simulate``
        draws the same with ``seed=simulate_seed(seed, r)``. Anyone who knows the seed knows
        the node's keys.
    rng:
        Where per-round seeds come from when ``seed`` is None (default: OS entropy).
    on_input:
        Called with ``(client_id, round, x, w)`` just before x is encoded; a tap for tests and
        examples that compare against ``secagg.simulate``. Nothing of it leaves the node.
    """

    def __init__(
        self,
        protocols: Collection[str] = SECURE_PROTOCOLS,
        *,
        check: Callable[[Protocol[Any]], None] | None = None,
        min_survivors: int | None = None,
        num_clients: int | None = None,
        threat_floor: ThreatFloor | None = None,
        dp_floor: DPFloor | None = None,
        identity: NodeIdentity | IdentitySource | None = None,
        require_signatures: bool | None = None,
        seed: int | None = None,
        rng: RandomSource | None = None,
        on_input: InputTap | None = None,
    ) -> None:
        if seed is not None and (isinstance(seed, bool) or not 0 <= seed < 2**63):
            raise ConfigError("seed must be an int in [0, 2^63)", parameter="seed")
        for name, value in (("min_survivors", min_survivors), ("num_clients", num_clients)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{name} must be an int or None", parameter=name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}", parameter=name)
        if require_signatures is not None and not isinstance(require_signatures, bool):
            raise ConfigError("require_signatures must be a bool", parameter="require_signatures")
        self.protocols = frozenset(protocols)
        self.check = check
        self.min_survivors = min_survivors
        self.num_clients = num_clients
        self.threat_floor = ThreatFloor() if threat_floor is None else threat_floor
        if dp_floor is not None and num_clients is None and identity is None:
            raise ConfigError(
                "a dp_floor needs num_clients= or identity=: otherwise the server picks how "
                "many nodes share the noise",
                parameter="dp_floor",
            )
        self.dp_floor = dp_floor
        self.identity = identity
        self.require_signatures = (
            identity is not None if require_signatures is None else require_signatures
        )
        self.seed = seed
        self.rng: RandomSource = rng if rng is not None else SystemRandom()
        self.on_input = on_input

    # -- Flower entry point ------------------------------------------------------------------

    def __call__(self, msg: Message, ctx: Context, call_next: ClientAppCallable) -> Message:
        if not msg.has_content() or RECORD not in msg.content.config_records:
            return call_next(msg, ctx)  # not ours
        client_id, phase = -1, ""
        try:
            request = Request.from_record(msg.content.config_records[RECORD])
            client_id, phase = request.setup.client_id, request.phase
            handlers = {
                Stage.START: self._start,
                Stage.STEP: self._step,
                Stage.KEYGEN: self._keygen,
                Stage.DECRYPT: self._decrypt,
            }
            if request.stage is Stage.IDENTIFY:
                client_id, out = self._identify(request, ctx)
            else:
                out = handlers[request.stage](request, msg, ctx, call_next)
            reply = Reply(client_id, phase, out)
        except SecAggError as exc:
            reply = Reply(client_id, phase, error=type(exc).__name__, detail=str(exc))
        return Message(RecordDict({RECORD: reply.to_record()}), reply_to=msg)

    # -- participant -------------------------------------------------------------------------

    def _protocol(self, setup: Setup) -> Protocol[Any]:
        """The protocol the server asks for, once this node's policy agrees to it."""
        if setup.protocol not in self.protocols:
            raise RefusedRequestError(
                f"this node does not run {setup.protocol!r}; it agreed to {sorted(self.protocols)}"
            )
        proto: Protocol[Any] = build_protocol(setup.protocol, setup.kwargs())
        if self.require_signatures and not proto.requires_credentials:
            raise RefusedRequestError(
                f"this node runs signed rounds only; {setup.protocol} as asked does not sign "
                "(it needs consistency_check=True)"
            )
        if proto.requires_credentials and self.identity is None:
            raise RefusedRequestError(
                f"{setup.protocol} with signatures needs this node's signing key and the "
                "directory (SecAggMod(identity=...)); this node has none"
            )
        self._check_bounds(proto, setup)
        if self.dp_floor is not None:
            self.dp_floor.check(getattr(proto, "dp", None))
        if self.check is not None:
            self.check(proto)
        return proto

    def _spend_privacy(self, proto: Protocol[Any], setup: Setup, ctx: Context) -> None:
        """Compose this round into the node's own account (at the floor's delta); refuse it
        when that passes the node's budget. Counted when the round starts, so a round the
        node then drops out of is counted too (the safe side)."""
        floor, dp = self.dp_floor, getattr(proto, "dp", None)
        if floor is None or dp is None:
            return
        accountant = PrivacyAccountant(replace(dp, delta=floor.delta), proto.num_clients, setup.dim)
        record = ctx.state.array_records.get(DP_SPENT)
        spent = record["rdp"].numpy() if record is not None else 0.0
        total = spent + accountant.round_rdp
        epsilon = rdp_epsilon(total, floor.delta)
        if floor.epsilon_budget is not None and epsilon > floor.epsilon_budget:
            raise RefusedRequestError(
                f"this round would bring this node to epsilon {epsilon:.3f} at delta "
                f"{floor.delta:g}, past its budget {floor.epsilon_budget:g}"
            )
        ctx.state.array_records[DP_SPENT] = ArrayRecord({"rdp": Array(total)})

    def _check_bounds(self, proto: Protocol[Any], setup: Setup) -> None:
        """Refuse a num_clients or min_survivors outside this node's policy."""
        n = proto.num_clients
        if self.num_clients is not None and n != self.num_clients:
            raise RefusedRequestError(
                f"the server asks for num_clients={n}; this node is configured for "
                f"{self.num_clients}"
            )
        if isinstance(proto.config, SecAggPlusConfig):
            self.threat_floor.check(proto.config)
        asked = getattr(proto.config, "min_survivors", None)
        if asked is None:
            return
        floor = self.min_survivors
        if floor is None:
            floor = _default_min_survivors(setup.protocol, setup.config)
        if asked < floor:
            raise RefusedRequestError(
                f"the server asks for min_survivors={asked}; this node reveals no sum of fewer "
                f"than {floor} inputs"
            )

    def _node_identity(self, ctx: Context) -> NodeIdentity:
        if self.identity is None:
            raise RefusedRequestError("this node has no signing key (SecAggMod(identity=...))")
        if isinstance(self.identity, NodeIdentity):
            return self.identity
        return self.identity(ctx)

    def _credentials(self, proto: Protocol[Any], setup: Setup, ctx: Context) -> Credentials | None:
        """This node's credentials for a protocol that signs, once the request is addressed to
        the client id its key has in the directory; None for one that does not."""
        if not proto.requires_credentials:
            return None
        identity = self._node_identity(ctx)
        if setup.client_id != identity.client_id:
            raise RefusedRequestError(
                f"the server addresses this node as client {setup.client_id}; its signing key "
                f"is client {identity.client_id} in the directory"
            )
        self._check_directory(proto, identity)
        return Credentials(identity.signing_key, identity.directory)

    @staticmethod
    def _check_directory(proto: Protocol[Any], identity: NodeIdentity) -> None:
        if len(identity.directory) != proto.num_clients:
            raise RefusedRequestError(
                f"a signed round is over the whole directory ({len(identity.directory)} "
                f"clients); the server asks for num_clients={proto.num_clients}"
            )

    def _identify(self, request: Request, ctx: Context) -> tuple[int, bytes]:
        """IDENTIFY: (this node's client id in the directory, its signature claiming it in
        this session and round)."""
        setup = request.setup
        proto = self._protocol(setup)
        if not proto.requires_credentials:
            raise RefusedRequestError("IDENTIFY is asked only before a signed round")
        identity = self._node_identity(ctx)
        self._check_directory(proto, identity)
        session = Session(setup.session, setup.dim, setup.round)  # checks the round's range
        return identity.client_id, identity.claim(session=session.id, round=session.round)

    def _round_seed(self, setup: Setup) -> bytes:
        """32 bytes that determine this node's machine in this round: OS entropy, or in seed
        mode HKDF of the seed bound to the session and round."""
        if self.seed is None:
            return self.rng.random_bytes(32)
        return round_seed(self.seed, setup.session, setup.round)

    def _start(
        self, request: Request, msg: Message, ctx: Context, call_next: ClientAppCallable
    ) -> bytes:
        setup = request.setup
        proto = self._protocol(setup)
        credentials = self._credentials(proto, setup, ctx)
        self._check_phase(proto, request.phase, 0)
        previous = ctx.state.config_records.get(ROUND_STATE)
        if previous is not None and (previous["session"], previous["round"]) == (
            setup.session,
            setup.round,
        ):  # a second START would give this round a second set of keys and masks
            raise RefusedRequestError(
                f"this node already started round {setup.round} of this session; it does not "
                "start a round twice"
            )
        self._spend_privacy(proto, setup, ctx)
        state = ConfigRecord(
            {
                **setup.write(),
                "seed": self._round_seed(setup),
                "public_keys": request.public_keys,
                "inbox": [],
                "sent": [],
            }
        )
        machine = self._machine(proto, state, credentials)
        x, w = None, 1.0
        if proto.input_phase == proto.phases[0]:
            x, w = self._train(proto, setup, msg, ctx, call_next)
            machine.set_input(x, weight=w)
        out = machine.start()
        state["sent"] = [_digest(out)]
        ctx.state.config_records[ROUND_STATE] = state  # mutate last: only once all went well
        self._keep_input(ctx, x, w)
        return wire.encode(out)

    def _step(
        self, request: Request, msg: Message, ctx: Context, call_next: ClientAppCallable
    ) -> bytes:
        state = ctx.state.config_records.get(ROUND_STATE)
        if state is None:
            raise FlowerStateError("a STEP before START: this node has no round state")
        stored = Setup.read(state, "node state")
        if request.setup != stored:
            raise WrongSessionError(
                f"the request is for round {request.setup.round} of another session; this node "
                f"is in round {stored.round}"
            )
        proto = self._protocol(stored)
        credentials = self._credentials(proto, stored, ctx)
        inbox: list[bytes] = list(state["inbox"])  # type: ignore[arg-type]
        k = len(inbox) + 1
        self._check_phase(proto, request.phase, k)
        machine = self._replay(proto, state, ctx, credentials)
        incoming = wire.decode(request.message, protocol=proto.wire_name)
        x, w = None, 1.0
        if proto.phases[k] == proto.input_phase:
            x, w = self._train(proto, stored, msg, ctx, call_next)
            machine.set_input(x, weight=w)
        out = machine.receive(incoming)
        state["inbox"] = [*inbox, request.message]
        state["sent"] = [*state["sent"], _digest(out)]  # type: ignore[misc]
        if x is not None:
            self._keep_input(ctx, x, w)
        return b"" if out is None else wire.encode(out)

    @staticmethod
    def _check_phase(proto: Protocol[Any], phase: str, k: int) -> None:
        phases = proto.phases
        if k >= len(phases) or phase != phases[k].value:
            expected = phases[k].value if k < len(phases) else "nothing (the round is over)"
            raise OutOfPhaseError(f"asked for {phase!r}; this node's next phase is {expected}")

    def _machine(
        self, proto: Protocol[Any], state: ConfigRecord, credentials: Credentials | None
    ) -> ClientMachine[Any]:
        setup = Setup.read(state, "node state")
        session = Session(setup.session, setup.dim, setup.round)
        public = state["public_keys"]
        keys = KeyMaterial(public) if public else None  # type: ignore[arg-type]
        seed = state["seed"]
        rng = SeededRandom(seed).fork(f"client/{setup.client_id}")  # type: ignore[arg-type]
        return proto.client(setup.client_id, session, rng, keys=keys, credentials=credentials)

    def _replay(
        self,
        proto: Protocol[Any],
        state: ConfigRecord,
        ctx: Context,
        credentials: Credentials | None,
    ) -> ClientMachine[Any]:
        """The machine as it was after the last message it handled."""
        machine = self._machine(proto, state, credentials)
        inbox: list[bytes] = list(state["inbox"])  # type: ignore[arg-type]
        sent: list[bytes] = list(state["sent"])  # type: ignore[arg-type]
        for j, data in enumerate([b"", *inbox]):
            if proto.phases[j] == proto.input_phase:
                x, w = self._stored_input(ctx)
                machine.set_input(x, weight=w)
            out = machine.start() if j == 0 else machine.receive(wire.decode(data))
            if _digest(out) != sent[j]:
                raise FlowerStateError(
                    f"replaying phase {proto.phases[j].value} gave another message than was "
                    "sent: the node state is corrupt or the machine is not deterministic"
                )
        return machine

    def _train(
        self,
        proto: Protocol[Any],
        setup: Setup,
        msg: Message,
        ctx: Context,
        call_next: ClientAppCallable,
    ) -> tuple[npt.NDArray[np.float64], float]:
        """Run the app's train function; return x = (Δ, 1.0) and w_u."""
        sent_arrays = msg.content.array_records.get(ARRAYS)
        if sent_arrays is None:
            raise InvalidInputError(f"the {proto.input_phase.value} request carries no model")
        result = call_next(msg, ctx)
        if result.has_error():
            raise InvalidInputError(f"the train function failed: {result.error.reason}")
        trained = result.content.array_records.get(ARRAYS)
        if trained is None:
            raise InvalidInputError(f"the train function's reply has no {ARRAYS!r} ArrayRecord")
        keys0, shapes0, before = flatten_arrays(sent_arrays)
        keys1, shapes1, after = flatten_arrays(trained)
        if (keys0, shapes0) != (keys1, shapes1):
            raise InvalidInputError(
                "the train function returned arrays of another structure than the model sent"
            )
        dp = uses_dp(proto)  # DP-FedAvg: weight 1 and 0.0 appended (the server divides by |U|)
        x = np.append(after - before, 0.0 if dp else 1.0)
        if x.size != setup.dim:
            raise InvalidInputError(f"the update has {x.size} entries, the round {setup.dim}")
        w = 1.0 if dp else self._weight(setup, result.content.metric_records.get(METRICS))
        if self.on_input is not None:
            self.on_input(setup.client_id, setup.round, x, w)
        return x, w

    @staticmethod
    def _weight(setup: Setup, metrics: MetricRecord | None) -> float:
        if setup.max_examples <= 0:
            return 1.0
        n = None if metrics is None else metrics.get(NUM_EXAMPLES)
        if isinstance(n, bool) or not isinstance(n, int | float) or n < 0:
            raise InvalidInputError(
                f"FedAvg weighting needs {NUM_EXAMPLES!r} >= 0 in the train reply's metrics"
            )
        return min(float(n), float(setup.max_examples)) / setup.max_examples

    @staticmethod
    def _keep_input(ctx: Context, x: npt.NDArray[np.float64] | None, w: float) -> None:
        if x is None:
            ctx.state.array_records.pop(INPUT_STATE, None)
            return
        ctx.state.array_records[INPUT_STATE] = ArrayRecord([x, np.array([w])])

    @staticmethod
    def _stored_input(ctx: Context) -> tuple[npt.NDArray[np.float64], float]:
        record = ctx.state.array_records.get(INPUT_STATE)
        if record is None:
            raise FlowerStateError("the node's stored update is missing")
        x, w = record.to_numpy_ndarrays()
        return np.asarray(x, dtype=np.float64), float(w[0])

    # -- key holder (HE protocols) -----------------------------------------------------------

    def _keygen(self, request: Request, msg: Message, ctx: Context, _next: Any) -> bytes:
        setup = request.setup
        if setup.client_id != KEY_HOLDER:
            raise RefusedRequestError("KEYGEN is addressed to the key holder only")
        proto = self._protocol(setup)
        rng = SeededRandom(self.seed).fork("task-keys") if self.seed is not None else self.rng
        keys = proto.keygen(rng)
        if keys is None or keys.secret is None:
            raise RefusedRequestError(f"{setup.protocol} has no task keys to make")
        ctx.state.config_records[KEY_STATE] = ConfigRecord(
            {"protocol": setup.protocol, "public": keys.public, "secret": keys.secret.reveal()}
        )
        return keys.public

    def _decrypt(self, request: Request, msg: Message, ctx: Context, _next: Any) -> bytes:
        setup = request.setup
        stored = ctx.state.config_records.get(KEY_STATE)
        if stored is None:
            raise FlowerStateError("DECRYPT before KEYGEN: this node holds no task keys")
        if stored["protocol"] != setup.protocol or setup.client_id != KEY_HOLDER:
            raise RefusedRequestError("DECRYPT for another protocol or not to the key holder")
        proto = self._protocol(setup)
        keys = KeyMaterial(stored["public"], SecretBytes(stored["secret"]))  # type: ignore[arg-type]
        session = Session(setup.session, setup.dim, setup.round)
        done = ctx.state.config_records.get(DECRYPTED_STATE)
        decrypted: list[bytes] = [] if done is None else list(done["rounds"])  # type: ignore[arg-type]
        tag = _round_tag(setup)
        if tag in decrypted:  # whatever the request claims: labels are the server's word
            raise RefusedRequestError(
                f"this node already decrypted an aggregate in round {setup.round} of this "
                "session; the key holder decrypts one per round"
            )
        rng = SeededRandom(self.seed).fork("key-holder") if self.seed is not None else self.rng
        holder = proto.key_holder(session, keys, rng)
        if holder is None:
            raise RefusedRequestError(f"{setup.protocol} in this key mode has no key holder")
        incoming = wire.decode(request.message, protocol=proto.wire_name)
        reply = wire.encode(holder.receive(incoming))
        ctx.state.config_records[DECRYPTED_STATE] = ConfigRecord({"rounds": [*decrypted, tag]})
        return reply

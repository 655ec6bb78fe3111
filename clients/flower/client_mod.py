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
  :class:`~secagg.randomness.SeededRandom`);
- the update and its weight, once trained;
- the server messages received so far, and the SHA-256 of each message sent.

Rebuilding replays the machine through the messages it already handled and checks that every
replayed output hashes to what was sent (:class:`FlowerStateError` otherwise). The price is
compute: at phase k the client redoes phases 0..k-1 (for SecAgg+ at UNMASKING, about two extra
maskings of d entries). The secret part of the node's state is the seed, and it lives where
Flower keeps node state: on the node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import numpy.typing as npt
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp.typing import ClientAppCallable

import secagg.protocols as protocols
from secagg import wire
from secagg.errors import (
    ConfigError,
    InvalidInputError,
    OutOfPhaseError,
    RefusedRequestError,
    SecAggError,
    WrongSessionError,
)
from secagg.protocol import KEY_HOLDER, ClientMachine, KeyMaterial, Protocol, SecretBytes, Session
from secagg.randomness import RandomSource, SeededRandom, SystemRandom

from ..errors import FlowerStateError
from .envelope import RECORD, Reply, Request, Setup, Stage, flatten_arrays

__all__ = ["SECURE_PROTOCOLS", "InputTap", "SecAggMod"]

SECURE_PROTOCOLS = ("secagg", "secaggplus", "ckks", "paillier")
"""What :class:`SecAggMod` agrees to run unless told otherwise (``plain`` hides nothing)."""
ROUND_STATE = "secagg.round"
INPUT_STATE = "secagg.input"
KEY_STATE = "secagg.keys"
ARRAYS = "arrays"
METRICS = "metrics"
NUM_EXAMPLES = "num-examples"

InputTap = Callable[[int, int, npt.NDArray[np.float64], float], None]
"""``(client_id, round, x, w)``: called with the vector the mod is about to encode."""


def _digest(msg: wire.Message | None) -> bytes:
    return b"" if msg is None else hashlib.sha256(wire.encode(msg)).digest()


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
    seed:
        For reproducible runs only (tests, examples): the node's randomness becomes
        ``SeededRandom(seed).fork("client/<id>")``, exactly what ``secagg.simulate(seed=seed)``
        gives client ``<id>``. Anyone who knows the seed knows the node's keys.
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
        seed: int | None = None,
        rng: RandomSource | None = None,
        on_input: InputTap | None = None,
    ) -> None:
        if seed is not None and (isinstance(seed, bool) or not 0 <= seed < 2**63):
            raise ConfigError("seed must be an int in [0, 2^63)", parameter="seed")
        self.protocols = frozenset(protocols)
        self.check = check
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
            out = handlers[request.stage](request, msg, ctx, call_next)
            reply = Reply(client_id, phase, out)
        except SecAggError as exc:
            reply = Reply(client_id, phase, error=type(exc).__name__, detail=str(exc))
        return Message(RecordDict({RECORD: reply.to_record()}), reply_to=msg)

    # -- participant -------------------------------------------------------------------------

    def _protocol(self, setup: Setup) -> Protocol[Any]:
        if setup.protocol not in self.protocols:
            raise RefusedRequestError(
                f"this node does not run {setup.protocol!r}; it agreed to {sorted(self.protocols)}"
            )
        proto: Protocol[Any] = protocols.get(setup.protocol, **setup.kwargs())
        if proto.requires_credentials:
            raise RefusedRequestError(
                f"{setup.protocol} with signatures needs a PKI of signing keys; Flower has none"
            )
        if self.check is not None:
            self.check(proto)
        return proto

    def _round_seed(self) -> int | bytes:
        return self.seed if self.seed is not None else self.rng.random_bytes(32)

    def _start(
        self, request: Request, msg: Message, ctx: Context, call_next: ClientAppCallable
    ) -> bytes:
        setup = request.setup
        proto = self._protocol(setup)
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
        state = ConfigRecord(
            {
                **setup.write(),
                "seed": self._round_seed(),
                "public_keys": request.public_keys,
                "inbox": [],
                "sent": [],
            }
        )
        machine = self._machine(proto, state)
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
        inbox: list[bytes] = list(state["inbox"])  # type: ignore[arg-type]
        k = len(inbox) + 1
        self._check_phase(proto, request.phase, k)
        machine = self._replay(proto, state, ctx)
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

    def _machine(self, proto: Protocol[Any], state: ConfigRecord) -> ClientMachine[Any]:
        setup = Setup.read(state, "node state")
        session = Session(setup.session, setup.dim, setup.round)
        public = state["public_keys"]
        keys = KeyMaterial(public) if public else None  # type: ignore[arg-type]
        seed = state["seed"]
        rng = SeededRandom(seed).fork(f"client/{setup.client_id}")  # type: ignore[arg-type]
        return proto.client(setup.client_id, session, rng, keys=keys)

    def _replay(
        self, proto: Protocol[Any], state: ConfigRecord, ctx: Context
    ) -> ClientMachine[Any]:
        """The machine as it was after the last message it handled."""
        machine = self._machine(proto, state)
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
        x = np.append(after - before, 1.0)
        if x.size != setup.dim:
            raise InvalidInputError(f"the update has {x.size} entries, the round {setup.dim}")
        w = self._weight(setup, result.content.metric_records.get(METRICS))
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
        rng = SeededRandom(self.seed).fork("key-holder") if self.seed is not None else self.rng
        holder = proto.key_holder(session, keys, rng)
        if holder is None:
            raise RefusedRequestError(f"{setup.protocol} in this key mode has no key holder")
        incoming = wire.decode(request.message, protocol=proto.wire_name)
        return wire.encode(holder.receive(incoming))

"""The sans-IO protocol interface: sessions, machines, transition tables, the registry.

Model: h11 (``h11/_state.py``): a machine's state changes in exactly one place,
:meth:`_Machine._transition`, driven by one transition table per machine class; every
method validates first and mutates last, so a rejected message leaves the machine unchanged.

Roles and flow (one round)::

    client.set_input(update)                   # local: quantize (and later mask) the update
    msg = client.start()                       # first client -> server message
    server.receive(msg)                        # per client; raises RemoteProtocolError on bad input
    replies = server.on_deadline(phase)        # driver closes the phase: {client_id: message}
    msg = client.receive(replies[client_id])   # next client -> server message, or None
    ...
    server.result                              # AggregateResult once the server has FINISHED

Homomorphic-encryption protocols add a third role, the key holder (:class:`KeyHolderMachine`,
addressed as :data:`KEY_HOLDER`), and task key material (:class:`KeyMaterial`) made once by
:meth:`Protocol.keygen`: participants and the aggregator get the public part, only the key
holder (or, in the shared-key mode, the participants) the secret part.

Machines never do I/O and never read a clock: the driver moves the bytes (``secagg.wire``)
and decides when a phase's deadline has passed. Randomness comes from the injected
:class:`~secagg.randomness.RandomSource`.
"""

from __future__ import annotations

import dataclasses
import enum
from abc import ABC, abstractmethod
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy.typing as npt

from secagg.dp.config import DistributedDP
from secagg.errors import (
    ConfigError,
    DuplicateMessageError,
    LocalProtocolError,
    OutOfPhaseError,
    SecretPicklingError,
    UnknownSenderError,
    WrongSessionError,
)
from secagg.graph import corrupted_clients
from secagg.primitives.secret import SecretHolder
from secagg.primitives.signing import SigningKey
from secagg.quantize import (
    Encoder,
    QuantizationConfig,
    Quantizer,
    check_clients_and_clip,
    check_quantization,
)
from secagg.randomness import RandomSource, as_random_source
from secagg.wire import Message

__all__ = [
    "CLIENT_ID_LIMIT",
    "KEY_HOLDER",
    "SERVER",
    "AggregateResult",
    "BaseConfig",
    "ClientMachine",
    "CommonConfig",
    "Credentials",
    "Event",
    "KeyHolderMachine",
    "KeyMaterial",
    "Protocol",
    "QuantizedProtocol",
    "Registry",
    "SecretBytes",
    "ServerMachine",
    "Session",
    "Terminal",
    "check_min_survivors",
]

SERVER = (1 << 32) - 1
"""The ``sender`` of messages from the server."""
KEY_HOLDER = SERVER - 1
"""The address (and ``sender``) of the key holder of homomorphic-encryption protocols."""
CLIENT_ID_LIMIT = 1 << 31
"""Client ids are integers in [0, CLIENT_ID_LIMIT); id + 1 is a valid Shamir point."""


class Terminal(enum.Enum):
    """States after the last phase."""

    FINISHED = "finished"
    ABORTED = "aborted"


class Event(enum.Enum):
    """Local events in transition tables (messages are the other events)."""

    START = "start"
    DEADLINE = "deadline"
    ABORT = "abort"


State = TypeVar("State", bound=enum.Enum)


@dataclass(frozen=True, slots=True)
class Session:
    """What both sides of a round agree on before it starts.

    Parameters
    ----------
    id:
        Session id, 16..64 bytes, unique per task (on chain: derived from the task id).
        Every key, mask and message is bound to it.
    dim:
        d, the length of the flat update vector.
    round:
        The training round, 0 <= round < 2^64.
    """

    id: bytes
    dim: int
    round: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.id, bytes) or not 16 <= len(self.id) <= 64:
            raise ConfigError("session id must be 16..64 bytes", parameter="session")
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or not 1 <= self.dim < 2**32:
            raise ConfigError(f"dim must be an int in [1, 2^32), got {self.dim!r}", parameter="dim")
        if isinstance(self.round, bool) or not isinstance(self.round, int):
            raise ConfigError(f"round must be an int, got {self.round!r}", parameter="round")
        if not 0 <= self.round < 2**64:
            raise ConfigError(f"round must be in [0, 2^64), got {self.round}", parameter="round")


@dataclass(frozen=True, slots=True, eq=False)
class Credentials:
    """A client's long-term identity, for protocols that sign (Bonawitz's active variant).

    Parameters
    ----------
    signing_key:
        d_u^SK, this client's Ed25519 signing key.
    directory:
        d_v^PK for every participant v (a PKI; on chain the key registry plays this part).
    """

    signing_key: SigningKey
    directory: Mapping[int, bytes]


class SecretBytes(SecretHolder):
    """Serialized secret key material: hidden from ``repr``, never pickled.

    :meth:`reveal` hands the bytes out explicitly (to load them into the HE library, or to
    send them over an encrypted channel to the participants of a shared-key task).
    """

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        if not isinstance(data, bytes) or not data:
            raise ConfigError("secret key material must be non-empty bytes", parameter="keys")
        self._data = data

    def reveal(self) -> bytes:
        return self._data


@dataclass(frozen=True, slots=True, eq=False)
class KeyMaterial:
    """Key material of a homomorphic-encryption task, made once by :meth:`Protocol.keygen`.

    Parameters
    ----------
    public:
        The public context (scheme parameters and public key): participants encrypt under
        it, the aggregator adds under it; it may be published (on chain: by CID).
    secret:
        The decryption key, or None in the copies handed to parties that must not decrypt.
    """

    public: bytes
    secret: SecretBytes | None = None

    def public_only(self) -> KeyMaterial:
        """The copy for the aggregator (and, with a separate key holder, the participants)."""
        return KeyMaterial(self.public)


@dataclass(frozen=True, slots=True, eq=False)
class AggregateResult:
    """What the server learns: the sum of the survivors' encodings, and who they are.

    ``ring_sum`` is in Z_{2^b} (numpy uint32/uint64) for the quantizing protocols, and the
    float64 sum for CKKS, which encodes real numbers directly.
    """

    ring_sum: npt.NDArray[Any]
    survivors: frozenset[int]


@dataclass(frozen=True, slots=True)
class BaseConfig:
    """Parameters every protocol shares.

    Parameters
    ----------
    num_clients:
        n, the number of clients in a round (the most inputs ever summed).
    clip:
        c > 0: update entries are clipped to [-c, c], then weighted.
    """

    num_clients: int
    clip: float = 8.0

    def __post_init__(self) -> None:
        check_clients_and_clip(self.num_clients, self.clip)


def check_min_survivors(num_clients: int, min_survivors: int) -> None:
    """Raise :class:`ConfigError` unless 1 <= min_survivors <= num_clients (an int)."""
    m = min_survivors
    if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= num_clients:
        raise ConfigError(
            f"min_survivors must be an int in [1, num_clients={num_clients}], got {m!r}",
            parameter="min_survivors",
        )


@dataclass(frozen=True, slots=True)
class CommonConfig(BaseConfig):
    """:class:`BaseConfig` plus quantization into Z_{2^b} (every protocol but CKKS).

    Parameters
    ----------
    quant_bits:
        q: per-entry fixed-point precision (2^(q-1) - 1 levels on each side of zero).
    ring_bits:
        b in {32, 64}. The sum must fit: n * 2^q <= 2^b.
    dp:
        Distributed differential privacy (:class:`~secagg.dp.DistributedDP`), or None. With it,
        clients encode their updates with L2 clipping, rotation and integer noise instead of
        the per-entry ``clip`` and ``quant_bits`` (which then play no part), and the protocol
        checks that it never finalizes a sum of fewer than ``dp.min_contributors`` inputs.
    """

    quant_bits: int = 20
    ring_bits: int = 32
    dp: DistributedDP | None = None

    def __post_init__(self) -> None:
        check_quantization(self.clip, self.quant_bits, self.ring_bits, self.num_clients)
        if self.dp is not None and not isinstance(self.dp, DistributedDP):
            raise ConfigError(
                f"dp must be a DistributedDP or None, got {self.dp!r}", parameter="dp"
            )

    @property
    def quantization(self) -> QuantizationConfig:
        return QuantizationConfig(self.clip, self.quant_bits, self.ring_bits, self.num_clients)


C = TypeVar("C", bound=BaseConfig)
Q = TypeVar("Q", bound=CommonConfig)


class _Machine(Generic[State]):
    """State holder with one mutator driven by the class's transition table."""

    TRANSITIONS: ClassVar[Mapping[tuple[Any, Any], Any]]
    """The class's table; a machine whose phases depend on its config passes its own."""

    def __init__(
        self, initial: State, transitions: Mapping[tuple[Any, Any], Any] | None = None
    ) -> None:
        self._state: State | Terminal = initial
        self._table = self.TRANSITIONS if transitions is None else transitions

    @property
    def state(self) -> State | Terminal:
        """The current phase, or a :class:`Terminal` state."""
        return self._state

    @property
    def done(self) -> bool:
        return isinstance(self._state, Terminal)

    def _next_state(self, event: Any) -> State | Terminal:
        try:
            nxt: State | Terminal = self._table[(self._state, event)]
        except KeyError:
            raise LocalProtocolError(
                f"{type(self).__name__}: no transition from {self._state} on {event}"
            ) from None
        return nxt

    def _transition(self, event: Any) -> None:
        """The only place ``_state`` changes."""
        self._state = self._next_state(event)


class ClientMachine(_Machine[State], ABC):
    """A protocol's client. Subclasses define ``TRANSITIONS`` and the phase handlers."""

    def __init__(
        self,
        initial: State,
        identity: int,
        session: Session,
        transitions: Mapping[tuple[Any, Any], Any] | None = None,
    ) -> None:
        super().__init__(initial, transitions)
        if isinstance(identity, bool) or not isinstance(identity, int):
            raise ConfigError(f"client id must be an int, got {identity!r}", parameter="identity")
        if not 0 <= identity < CLIENT_ID_LIMIT:
            raise ConfigError(
                f"client id must be in [0, 2^31), got {identity}", parameter="identity"
            )
        self.identity = identity
        self.session = session

    @abstractmethod
    def set_input(self, vector: Any, *, weight: float = 1.0) -> None:
        """Provide this round's flat update (numpy or torch on any device) and its weight."""

    @abstractmethod
    def start(self) -> Message:
        """Produce the first client -> server message."""

    @abstractmethod
    def receive(self, message: Message) -> Message | None:
        """Process a server message; return the next message for the server, or None."""

    def __reduce__(self) -> Any:
        raise SecretPicklingError(f"{type(self).__name__} holds client secrets; not pickled")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.identity} state={self.state}>"


class ServerMachine(_Machine[State], ABC):
    """A protocol's server. Collects one message type per phase; the driver closes phases."""

    ACCEPTS: ClassVar[Mapping[Any, type[Message]]]
    """Which client message type each phase collects."""

    def __init__(
        self,
        initial: State,
        session: Session,
        transitions: Mapping[tuple[Any, Any], Any] | None = None,
    ) -> None:
        super().__init__(initial, transitions)
        self.session = session
        self._result: AggregateResult | None = None

    @abstractmethod
    def receive(self, message: Message) -> None:
        """Accept one client message of the current phase, or raise RemoteProtocolError."""

    @abstractmethod
    def on_deadline(self, phase: Any) -> dict[int, Message]:
        """Close ``phase``: returns the messages for the clients that go on.

        Raises AbortError (and moves to ABORTED) when the round cannot complete correctly.
        """

    @property
    def result(self) -> AggregateResult:
        if self._result is None:
            raise LocalProtocolError(f"no result: the server is in state {self.state}")
        return self._result

    def _check_room(self, received: int, limit: int, sender: int) -> None:
        """A phase collects at most ``limit`` inputs (num_clients); one more is refused."""
        if received >= limit:
            raise UnknownSenderError(
                f"already {limit} inputs (num_clients); client {sender} is one too many",
                sender=sender,
            )

    def _check_open_phase(self, phase: Any) -> None:
        if phase != self.state:
            raise LocalProtocolError(f"cannot close {phase}: the server is in {self.state}")

    def _check_incoming(
        self, message: Message, seen: Container[int], senders: Container[int] | None = None
    ) -> None:
        """Checks every server runs first: phase, session, round, sender, duplicate.

        ``senders``: who may send in this phase (default: any client id)."""
        sender = getattr(message, "sender", None)
        expected = self.ACCEPTS.get(self.state)
        if expected is None or type(message) is not expected:
            raise OutOfPhaseError(
                f"{type(message).__name__} is not accepted in {self.state}", sender=sender
            )
        if message.session != self.session.id:
            raise WrongSessionError("message is bound to another session", sender=sender)
        if message.round != self.session.round:
            raise WrongSessionError(
                f"message is for round {message.round}, this is round {self.session.round}",
                sender=sender,
            )
        if senders is not None and message.sender not in senders:
            raise UnknownSenderError(
                f"{message.sender} may not send in {self.state}", sender=sender
            )
        if senders is None and not 0 <= message.sender < CLIENT_ID_LIMIT:
            raise UnknownSenderError(f"{message.sender} is not a client id", sender=sender)
        if message.sender in seen:
            raise DuplicateMessageError(
                f"client {message.sender} already sent its {self.state} message", sender=sender
            )


class KeyHolderMachine(_Machine[State], ABC):
    """The key holder of a homomorphic-encryption protocol: decrypts the aggregate it is
    handed (once per round) and returns the plaintext sum. Addressed as :data:`KEY_HOLDER`."""

    def __init__(
        self,
        initial: State,
        session: Session,
        transitions: Mapping[tuple[Any, Any], Any] | None = None,
    ) -> None:
        super().__init__(initial, transitions)
        self.session = session

    @abstractmethod
    def receive(self, message: Message) -> Message:
        """Decrypt the aggregate in ``message``; the reply carries the plaintext sum."""

    def __reduce__(self) -> Any:
        raise SecretPicklingError(f"{type(self).__name__} holds a secret key; not pickled")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} state={self.state}>"


class Protocol(ABC, Generic[C]):
    """A protocol bound to a validated config: factories for its machines, and decoding.

    Subclasses set ``name``, ``version``, ``Phase`` (the client phases in order) and
    ``Config`` and implement :meth:`client`, :meth:`server` and :meth:`decode`.
    Homomorphic-encryption protocols also implement :meth:`keygen`,
    :meth:`participant_keys` and :meth:`key_holder`.
    """

    name: ClassVar[str]
    wire_name: ClassVar[str]
    """The protocol name in the wire header (protocols sharing one wire format share it)."""
    version: ClassVar[int]
    Phase: ClassVar[type[enum.Enum]]
    Config: ClassVar[type[BaseConfig]]

    def __init__(self, config: C) -> None:
        if not isinstance(config, self.Config):
            raise ConfigError(f"{self.name} needs a {self.Config.__name__}, got {config!r}")
        self.config: C = config

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Protocol[Any]:
        names = {f.name for f in dataclasses.fields(cls.Config)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise ConfigError(
                f"{cls.name} has no parameter {', '.join(unknown)}; it takes {sorted(names)}",
                parameter=unknown[0],
            )
        if "num_clients" not in kwargs:
            raise ConfigError(f"{cls.name} needs num_clients", parameter="num_clients")
        return cls(cls.Config(**kwargs))  # type: ignore[arg-type]

    @property
    def phases(self) -> tuple[Any, ...]:
        """The client phases in order (members of ``Phase``)."""
        return tuple(self.Phase)

    @property
    def num_clients(self) -> int:
        return self.config.num_clients

    @property
    def input_phase(self) -> Any:
        """The phase whose client message carries the (encoded) input: a driver may call
        ``set_input`` as late as just before the client produces that message."""
        return self.phases[0]

    @property
    def requires_credentials(self) -> bool:
        """Whether clients need :class:`Credentials` (signing keys and a directory)."""
        return False

    def keygen(self, rng: RandomSource | int | None = None) -> KeyMaterial | None:
        """The task's key material (homomorphic encryption); None for protocols without."""
        return None

    def participant_keys(self, keys: KeyMaterial | None) -> KeyMaterial | None:
        """What of ``keys`` a participant is given (the secret only in a shared-key mode)."""
        return None

    def key_holder(
        self, session: Session, keys: KeyMaterial, rng: RandomSource | int | None = None
    ) -> KeyHolderMachine[Any] | None:
        """The key holder's machine, or None where no separate key holder decrypts."""
        return None

    @abstractmethod
    def client(
        self,
        identity: int,
        session: Session,
        rng: RandomSource | int | None = None,
        *,
        credentials: Credentials | None = None,
        keys: KeyMaterial | None = None,
    ) -> ClientMachine[Any]:
        """A client machine for ``identity`` in ``session`` (``keys``: from
        :meth:`participant_keys`, for protocols with task keys)."""

    @abstractmethod
    def server(
        self,
        session: Session,
        rng: RandomSource | int | None = None,
        *,
        directory: Mapping[int, bytes] | None = None,
        keys: KeyMaterial | None = None,
    ) -> ServerMachine[Any]:
        """The server machine for ``session`` (``directory``: the clients' d_v^PK;
        ``keys``: the public key material, for protocols with task keys)."""

    @abstractmethod
    def decode(self, raw_sum: npt.NDArray[Any], like: Any, session: Session | None = None) -> Any:
        """The float64 sum of the survivors' (clipped, weighted) updates from
        :attr:`AggregateResult.ring_sum`, as numpy or as a torch tensor on ``like``'s device
        (``session``: the round, which protocols with distributed DP need to decode)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.config}>"

    @staticmethod
    def _rng(rng: RandomSource | int | None) -> RandomSource:
        return as_random_source(rng)

    def _no_keys(self, keys: KeyMaterial | None) -> None:
        if keys is not None:
            raise ConfigError(f"{self.name} has no task keys; pass keys=None", parameter="keys")


class QuantizedProtocol(Protocol[Q]):
    """A protocol that sums fixed-point encodings in Z_{2^b} (every one but CKKS)."""

    def __init__(self, config: Q) -> None:
        super().__init__(config)
        self.quantizer = Quantizer(config.quantization)
        if config.dp is not None:
            corrupt = corrupted_clients(
                config.num_clients, getattr(config, "corrupted_fraction", 0.0)
            )
            config.dp.check_protocol(
                self.name, config.num_clients, self.min_inputs, config.ring_bits, corrupt
            )

    @property
    def min_inputs(self) -> int:
        """The fewest inputs in any sum the server finalizes (``min_survivors``)."""
        return int(self.config.min_survivors)  # type: ignore[attr-defined]

    @property
    def dp(self) -> DistributedDP | None:
        """The distributed-DP configuration, or None."""
        return self.config.dp

    def encoder(self, session: Session) -> Encoder:
        """The input encoding of ``session``: the quantizer, or the session's
        :class:`~secagg.dp.DPEncoder` (its rotation is seeded by the session and round)."""
        if self.config.dp is None:
            return self.quantizer
        from secagg.dp.encoding import DPEncoder

        return DPEncoder(self.config.dp, self.config.num_clients, self.quantizer.ring, session)

    def decode_sum(self, ring_sum: Any, session: Session | None = None) -> Any:
        """The float64 sum of the survivors' (weighted, clipped) updates (with DP, plus the
        noise; then ``session`` is required: it seeds the rotation to undo)."""
        if self.config.dp is None:
            return self.quantizer.dequantize(ring_sum)
        if session is None:
            raise ConfigError(
                f"{self.name} with dp: decoding needs the session (its rotation)",
                parameter="session",
            )
        return self.encoder(session).dequantize(ring_sum)

    def decode(self, raw_sum: npt.NDArray[Any], like: Any, session: Session | None = None) -> Any:
        return self.decode_sum(self.quantizer.ring.like(raw_sum, like), session)


class Registry:
    """Name -> protocol class. ``get(name, **config)`` validates and binds the config."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Protocol[Any]]] = {}

    def register(self, cls: type[Protocol[Any]]) -> type[Protocol[Any]]:
        if cls.name in self._classes and self._classes[cls.name] is not cls:
            raise ConfigError(f"protocol {cls.name!r} is already registered")
        self._classes[cls.name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str, **config: Any) -> Protocol[Any]:
        try:
            cls = self._classes[name]
        except KeyError:
            raise ConfigError(
                f"unknown protocol {name!r}; available: {', '.join(self.names())}",
                parameter="name",
            ) from None
        return cls.from_kwargs(**config)

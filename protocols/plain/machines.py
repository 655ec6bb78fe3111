"""Client and server machines of ``plain``."""

from __future__ import annotations

from typing import Any, ClassVar

from secagg.errors import AbortError, LocalProtocolError, OutOfPhaseError
from secagg.protocol import (
    AggregateResult,
    ClientMachine,
    Event,
    ServerMachine,
    Session,
    Terminal,
)
from secagg.quantize import Encoder, Quantizer
from secagg.randomness import RandomSource
from secagg.ring import RingVector
from secagg.wire import Message

from .messages import Input, Phase


class PlainClient(ClientMachine[Phase]):
    """Quantizes its update and sends it as is."""

    TRANSITIONS: ClassVar = {(Phase.INPUT, Event.START): Terminal.FINISHED}

    def __init__(
        self, identity: int, session: Session, quantizer: Encoder, rng: RandomSource
    ) -> None:
        super().__init__(Phase.INPUT, identity, session)
        self._quantizer = quantizer
        self._rng = rng
        self._encoded: RingVector | None = None

    def set_input(self, vector: Any, *, weight: float = 1.0) -> None:
        if self.state is not Phase.INPUT:
            raise LocalProtocolError(f"input is set before the round starts, now {self.state}")
        if len(vector) != self.session.dim:
            raise LocalProtocolError(
                f"update has {len(vector)} entries, the session's dim is {self.session.dim}"
            )
        self._encoded = self._quantizer.quantize(vector, self._rng, weight=weight)

    def start(self) -> Message:
        self._next_state(Event.START)  # validate before mutating
        if self._encoded is None:
            raise LocalProtocolError("set_input() must be called before start()")
        vector = self._quantizer.ring.to_numpy(self._encoded)
        message: Message = Input(self.session.id, self.session.round, self.identity, vector)
        self._transition(Event.START)
        return message

    def receive(self, message: Message) -> Message | None:
        raise OutOfPhaseError(
            f"plain clients receive no messages (got {type(message).__name__} in {self.state})",
            sender=getattr(message, "sender", None),
        )


class PlainServer(ServerMachine[Phase]):
    """Adds the vectors it receives; the survivors are the clients whose vector arrived."""

    ACCEPTS: ClassVar = {Phase.INPUT: Input}
    TRANSITIONS: ClassVar = {
        (Phase.INPUT, Event.DEADLINE): Terminal.FINISHED,
        (Phase.INPUT, Event.ABORT): Terminal.ABORTED,
    }

    def __init__(self, session: Session, quantizer: Quantizer, min_survivors: int) -> None:
        super().__init__(Phase.INPUT, session)
        self._ring = quantizer.ring
        self._max_clients = quantizer.config.num_clients
        self._min_survivors = min_survivors
        self._sum = self._ring.zeros(session.dim)
        self._received: set[int] = set()

    def receive(self, message: Message) -> None:
        self._check_incoming(message, self._received)
        assert isinstance(message, Input)
        self._ring.check(message.vector, self.session.dim, sender=message.sender)
        self._check_room(len(self._received), self._max_clients, message.sender)
        self._ring.add_(self._sum, message.vector)
        self._received.add(message.sender)

    def on_deadline(self, phase: Any) -> dict[int, Message]:
        self._check_open_phase(phase)
        if len(self._received) < self._min_survivors:
            self._transition(Event.ABORT)
            raise AbortError(
                "too-few-survivors",
                f"{len(self._received)} inputs arrived, min_survivors={self._min_survivors}",
            )
        self._result = AggregateResult(self._sum, frozenset(self._received))
        self._transition(Event.DEADLINE)
        return {}


__all__ = ["PlainClient", "PlainServer"]

"""Participant, aggregator and key-holder machines of the HE protocols (any :class:`Scheme`).

One round::

    participant u:  EncryptedInput(Enc_pk(x_u))              -> aggregator     (INPUT)
    aggregator:     c = sum_{u in U} Enc_pk(x_u)  (homomorphic addition, no key)
    aggregator:     EncryptedSum(U, c)                        -> decryptor(s)   (DECRYPT)
    decryptor:      DecryptedSum(Dec_sk(c))                   -> aggregator
    aggregator:     result = the sum over U

The decryptor is the key holder (``KEY_HOLDER``) or, in the shared-key mode, up to
``num_decryptors`` surviving participants; when several answer, their answers must agree.
A decryptor decrypts once per round and only a sum of at least ``min_survivors`` inputs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from secagg.errors import (
    AbortError,
    CiphertextError,
    LocalProtocolError,
    OutOfPhaseError,
    RefusedRequestError,
    UnknownSenderError,
    WrongSessionError,
)
from secagg.protocol import (
    CLIENT_ID_LIMIT,
    KEY_HOLDER,
    SERVER,
    AggregateResult,
    ClientMachine,
    Event,
    KeyHolderMachine,
    ServerMachine,
    Session,
    Terminal,
)
from secagg.randomness import RandomSource, shuffled
from secagg.wire import Message

from .messages import DecryptedSum, EncryptedInput, EncryptedSum, Phase
from .scheme import Accumulator, Scheme

__all__ = ["HEClient", "HEKeyHolder", "HEServer"]


def _decrypt_request(
    scheme: Scheme,
    session: Session,
    message: Message,
    *,
    me: int,
    min_survivors: int,
    max_inputs: int,
) -> DecryptedSum:
    """What an honest decryptor checks before it decrypts an aggregate, and the reply."""
    sender = getattr(message, "sender", None)
    if not isinstance(message, EncryptedSum):
        raise OutOfPhaseError(
            f"a decryptor expects an EncryptedSum, got {type(message).__name__}", sender=sender
        )
    if message.session != session.id or message.round != session.round:
        raise WrongSessionError("aggregate is bound to another session or round", sender=sender)
    if message.sender != SERVER:
        raise UnknownSenderError("only the aggregator sends aggregates", sender=sender)
    survivors = message.survivors
    if list(survivors) != sorted(set(survivors)) or not all(
        0 <= u < CLIENT_ID_LIMIT for u in survivors
    ):
        raise RefusedRequestError("survivor set is not sorted distinct client ids", sender=sender)
    if not min_survivors <= len(survivors) <= max_inputs:
        raise RefusedRequestError(
            f"asked to decrypt a sum of {len(survivors)} inputs; an honest decryptor only "
            f"decrypts sums of {min_survivors}..{max_inputs} (min_survivors..num_clients)",
            sender=sender,
        )
    try:
        values = scheme.decrypt(message.chunks, session.dim)
    except CiphertextError as exc:
        exc.sender = sender
        raise
    return DecryptedSum(session.id, session.round, me, values)


class HEClient(ClientMachine[Phase]):
    """A participant: encrypts its update; in the shared-key mode it may be asked to decrypt.

    Parameters
    ----------
    scheme:
        The task's scheme with the public key (and the secret key in the shared-key mode).
    """

    def __init__(
        self,
        identity: int,
        session: Session,
        scheme: Scheme,
        rng: RandomSource,
        *,
        min_survivors: int,
        max_inputs: int,
    ) -> None:
        after_input = Phase.DECRYPT if scheme.can_decrypt else Terminal.FINISHED
        table = {
            (Phase.INPUT, Event.START): after_input,
            (Phase.DECRYPT, EncryptedSum): Terminal.FINISHED,
        }
        super().__init__(Phase.INPUT, identity, session, table)
        self._scheme = scheme
        self._rng = rng
        self._min_survivors = min_survivors
        self._max_inputs = max_inputs
        self._values: Any = None

    def set_input(self, vector: Any, *, weight: float = 1.0) -> None:
        if self.state is not Phase.INPUT:
            raise LocalProtocolError(f"input is set before the round starts, now {self.state}")
        if len(vector) != self.session.dim:
            raise LocalProtocolError(
                f"update has {len(vector)} entries, the session's dim is {self.session.dim}"
            )
        self._values = self._scheme.encode(vector, weight, self._rng)

    def start(self) -> Message:
        self._next_state(Event.START)
        if self._values is None:
            raise LocalProtocolError("set_input() must be called before start()")
        chunks = self._scheme.encrypt(self._values, self._rng)
        self._values = None
        self._transition(Event.START)
        return EncryptedInput(self.session.id, self.session.round, self.identity, chunks)

    def receive(self, message: Message) -> Message | None:
        if self.state is not Phase.DECRYPT:
            raise OutOfPhaseError(
                f"{type(message).__name__} in {self.state}: this participant decrypts nothing",
                sender=getattr(message, "sender", None),
            )
        reply = _decrypt_request(
            self._scheme,
            self.session,
            message,
            me=self.identity,
            min_survivors=self._min_survivors,
            max_inputs=self._max_inputs,
        )
        self._transition(EncryptedSum)
        return reply


class HEKeyHolder(KeyHolderMachine[Phase]):
    """The key holder: decrypts one aggregate per round, of at least ``min_survivors`` inputs."""

    TRANSITIONS: ClassVar = {(Phase.DECRYPT, EncryptedSum): Terminal.FINISHED}

    def __init__(
        self, session: Session, scheme: Scheme, *, min_survivors: int, max_inputs: int
    ) -> None:
        super().__init__(Phase.DECRYPT, session)
        if not scheme.can_decrypt:
            raise LocalProtocolError("the key holder needs the secret key")
        self._scheme = scheme
        self._min_survivors = min_survivors
        self._max_inputs = max_inputs

    def receive(self, message: Message) -> Message:
        if self.done:
            raise RefusedRequestError(
                "the key holder decrypts one aggregate per round and has done so",
                sender=getattr(message, "sender", None),
            )
        reply = _decrypt_request(
            self._scheme,
            self.session,
            message,
            me=KEY_HOLDER,
            min_survivors=self._min_survivors,
            max_inputs=self._max_inputs,
        )
        self._transition(EncryptedSum)
        return reply


class HEServer(ServerMachine[Phase]):
    """The aggregator: adds ciphertexts with the public context only; learns the sum.

    Parameters
    ----------
    scheme:
        The task's scheme holding only public material (checked).
    decryptors:
        ``None`` for a separate key holder; otherwise how many surviving participants are
        asked to decrypt (shared-key mode).
    """

    ACCEPTS: ClassVar = {Phase.INPUT: EncryptedInput, Phase.DECRYPT: DecryptedSum}
    TRANSITIONS: ClassVar = {
        (Phase.INPUT, Event.DEADLINE): Phase.DECRYPT,
        (Phase.INPUT, Event.ABORT): Terminal.ABORTED,
        (Phase.DECRYPT, Event.DEADLINE): Terminal.FINISHED,
        (Phase.DECRYPT, Event.ABORT): Terminal.ABORTED,
    }

    def __init__(
        self,
        session: Session,
        scheme: Scheme,
        rng: RandomSource,
        *,
        max_inputs: int,
        min_survivors: int,
        decryptors: int | None,
    ) -> None:
        super().__init__(Phase.INPUT, session)
        if scheme.can_decrypt:
            raise LocalProtocolError("the aggregator must not hold the secret key")
        self._scheme = scheme
        self._rng = rng
        self._max_inputs = max_inputs
        self._min_survivors = min_survivors
        self._num_decryptors = decryptors
        self._sum: Accumulator | None = scheme.accumulator(session.dim)
        self._received: set[int] = set()
        self._asked: frozenset[int] = frozenset()
        self._decrypted: dict[int, Any] = {}

    @property
    def survivors(self) -> frozenset[int]:
        """U: the participants whose ciphertext is in the sum so far."""
        return frozenset(self._received)

    def receive(self, message: Message) -> None:
        if self.state is Phase.DECRYPT:
            self._check_incoming(message, self._decrypted, self._asked)
            assert isinstance(message, DecryptedSum)
            self._scheme.check_decrypted(message.values, self.session.dim, message.sender)
            self._decrypted[message.sender] = message.values
            return
        self._check_incoming(message, self._received)
        assert isinstance(message, EncryptedInput) and self._sum is not None
        self._check_room(len(self._received), self._max_inputs, message.sender)
        self._sum.add(message.chunks, message.sender)
        self._received.add(message.sender)

    def on_deadline(self, phase: Any) -> dict[int, Message]:
        self._check_open_phase(phase)
        if phase is Phase.INPUT:
            return self._close_input()
        self._close_decrypt()
        return {}

    def _abort(self, reason: str, detail: str) -> AbortError:
        self._transition(Event.ABORT)
        self._sum = None
        return AbortError(reason, detail)

    def _close_input(self) -> dict[int, Message]:
        assert self._sum is not None
        if len(self._received) < self._min_survivors:
            raise self._abort(
                "too-few-survivors",
                f"{len(self._received)} inputs arrived, min_survivors={self._min_survivors}",
            )
        survivors = tuple(sorted(self._received))
        if self._num_decryptors is None:
            self._asked = frozenset({KEY_HOLDER})
        else:
            self._asked = frozenset(shuffled(survivors, self._rng)[: self._num_decryptors])
        request = EncryptedSum(
            self.session.id, self.session.round, SERVER, survivors, self._sum.chunks()
        )
        self._sum = None  # the request holds the only copy now
        self._transition(Event.DEADLINE)
        return dict.fromkeys(sorted(self._asked), request)

    def _close_decrypt(self) -> None:
        if not self._decrypted:
            raise self._abort(
                "no-decryption", f"none of the decryptors {sorted(self._asked)} answered"
            )
        first, *others = (self._decrypted[u] for u in sorted(self._decrypted))
        if not all(self._scheme.agree(first, other) for other in others):
            raise self._abort(
                "inconsistent-decryptions",
                f"decryptors {sorted(self._decrypted)} returned different sums",
            )
        try:
            total = self._scheme.finish(first, len(self._received))
        except AbortError:
            self._transition(Event.ABORT)
            raise
        self._result = AggregateResult(total, frozenset(self._received))
        self._transition(Event.DEADLINE)

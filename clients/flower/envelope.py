"""How secagg messages ride in Flower messages: one ``ConfigRecord`` per direction.

A Flower :class:`~flwr.app.Message` carries a ``RecordDict``. The server side puts one
:class:`Request` under :data:`RECORD` (and, in the phase whose reply carries the input, the
global model under ``"arrays"`` and the user's train config under ``"config"``, Flower's usual
names); the client mod answers with one :class:`Reply` under the same key and nothing else.
The protocol messages themselves are the canonical ``secagg.wire`` bytes, so Flower only ever
transports bytes it cannot read.

Both parsers are strict: a missing key, a wrong type or an unknown stage raises
:class:`~secagg.errors.WireError` naming the field, before anything else happens.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from flwr.app import ArrayRecord, ConfigRecord

from secagg.errors import WireError

__all__ = ["RECORD", "UNASSIGNED", "Reply", "Request", "Setup", "Stage", "flatten_arrays"]

RECORD = "secagg"
"""Key of the secagg ``ConfigRecord`` in a message's content (both directions)."""
MAX_CONFIG_CHARS = 4096
"""The protocol config travels as JSON; a longer one is refused before it is parsed."""
UNASSIGNED = -1
"""The ``client_id`` of an IDENTIFY request: the node says which client it is."""


class Stage(enum.Enum):
    """What a request asks a node to do.

    START: set up this round (protocol, session, client id) and send the first phase's message.
    STEP: handle the server's message and send the next phase's message.
    KEYGEN: (key holder of an HE protocol) make the task keys; reply with the public part.
    DECRYPT: (key holder) decrypt the aggregate in the message; reply with the plaintext sum.
    IDENTIFY: (signed rounds, before START) reply with this node's client id in the
    directory of signing keys (``Reply.client_id``) and its signature claiming that id in
    this session and round (``Reply.message``); the request's ``client_id`` is
    :data:`UNASSIGNED`.
    """

    START = "start"
    STEP = "step"
    KEYGEN = "keygen"
    DECRYPT = "decrypt"
    IDENTIFY = "identify"


def _field(record: ConfigRecord, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in record:
        raise WireError(f"{where}: missing field {key!r}")
    value = record[key]
    if isinstance(value, bool) and kind is int:
        raise WireError(f"{where}: field {key!r} must be int, got bool")
    if not isinstance(value, kind):
        raise WireError(f"{where}: field {key!r} has type {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Setup:
    """The round's public parameters, as the server announces them.

    Parameters
    ----------
    protocol:
        A name from ``secagg.protocols.names()``.
    config:
        JSON of the keyword arguments of ``protocols.get(protocol, **config)``.
    session, dim, round:
        The :class:`~secagg.protocol.Session` (id, d, round).
    client_id:
        The id this node has in the round (or ``KEY_HOLDER``).
    max_examples:
        FedAvg weighting: w_u = min(n_u, max_examples) / max_examples; 0 means w_u = 1.
    """

    protocol: str
    config: str
    session: bytes
    dim: int
    round: int
    client_id: int
    max_examples: int = 0

    def kwargs(self) -> dict[str, Any]:
        """The protocol's keyword arguments, parsed and checked to be a JSON object."""
        if len(self.config) > MAX_CONFIG_CHARS:
            raise WireError(f"protocol config is over {MAX_CONFIG_CHARS} characters")
        try:
            parsed = json.loads(self.config)
        except ValueError as exc:
            raise WireError(f"protocol config is not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise WireError("protocol config must be a JSON object")
        return parsed

    @staticmethod
    def read(record: ConfigRecord, where: str) -> Setup:
        return Setup(
            protocol=_field(record, "protocol", str, where),
            config=_field(record, "config", str, where),
            session=_field(record, "session", bytes, where),
            dim=_field(record, "dim", int, where),
            round=_field(record, "round", int, where),
            client_id=_field(record, "client_id", int, where),
            max_examples=_field(record, "max_examples", int, where),
        )

    def write(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "config": self.config,
            "session": self.session,
            "dim": self.dim,
            "round": self.round,
            "client_id": self.client_id,
            "max_examples": self.max_examples,
        }


@dataclass(frozen=True, slots=True)
class Request:
    """Server -> node.

    ``phase`` is the phase whose message the reply must carry; ``message`` the wire bytes of
    the server's message (STEP, DECRYPT); ``public_keys`` the HE public context (START).
    """

    stage: Stage
    setup: Setup
    phase: str
    message: bytes = b""
    public_keys: bytes = b""

    def to_record(self) -> ConfigRecord:
        return ConfigRecord(
            {
                "stage": self.stage.value,
                "phase": self.phase,
                "message": self.message,
                "public_keys": self.public_keys,
                **self.setup.write(),
            }
        )

    @staticmethod
    def from_record(record: Any) -> Request:
        where = "secagg request"
        if not isinstance(record, ConfigRecord):
            raise WireError(f"{where}: {RECORD!r} is not a ConfigRecord")
        stage = _field(record, "stage", str, where)
        try:
            parsed = Stage(stage)
        except ValueError:
            raise WireError(f"{where}: unknown stage {stage!r}") from None
        return Request(
            stage=parsed,
            setup=Setup.read(record, where),
            phase=_field(record, "phase", str, where),
            message=_field(record, "message", bytes, where),
            public_keys=_field(record, "public_keys", bytes, where),
        )


@dataclass(frozen=True, slots=True)
class Reply:
    """Node -> server: the wire bytes of the node's message for ``phase`` (b"" when the
    machine has nothing to send), or a refusal: ``error`` names the ``SecAggError`` subclass
    the node raised and ``detail`` is its message."""

    client_id: int
    phase: str
    message: bytes = b""
    error: str = ""
    detail: str = ""

    def to_record(self) -> ConfigRecord:
        return ConfigRecord(
            {
                "client_id": self.client_id,
                "phase": self.phase,
                "message": self.message,
                "error": self.error,
                "detail": self.detail,
            }
        )

    @staticmethod
    def from_record(record: Any) -> Reply:
        where = "secagg reply"
        if not isinstance(record, ConfigRecord):
            raise WireError(f"{where}: {RECORD!r} is not a ConfigRecord")
        return Reply(
            client_id=_field(record, "client_id", int, where),
            phase=_field(record, "phase", str, where),
            message=_field(record, "message", bytes, where),
            error=_field(record, "error", str, where),
            detail=_field(record, "detail", str, where),
        )


def flatten_arrays(
    record: ArrayRecord,
) -> tuple[list[str], list[tuple[int, ...]], npt.NDArray[np.float64]]:
    """(keys, shapes, one float64 vector): the order of an update's entries on both sides."""
    keys = list(record.keys())
    parts = [np.asarray(record[k].numpy(), dtype=np.float64) for k in keys]
    flat = np.concatenate([p.ravel() for p in parts]) if parts else np.zeros(0)
    return keys, [p.shape for p in parts], flat

"""The plain protocol's machines: every phase/message pair, and every bad message rejected
with a named error while the honest clients' round goes on (h11-style: two machines over a
fake network, everything through the wire format)."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from secagg import protocols, wire
from secagg.errors import (
    AbortError,
    DuplicateMessageError,
    LocalProtocolError,
    OutOfPhaseError,
    RemoteProtocolError,
    SecretPicklingError,
    UnknownSenderError,
    WrongLengthError,
    WrongRingError,
    WrongSessionError,
)
from secagg.protocol import SERVER, Session, Terminal
from secagg.protocols.plain import Input, Phase

D = 8
SESSION = Session(b"S" * 32, dim=D, round=2)


def _proto(**kw: Any) -> Any:
    return protocols.get("plain", num_clients=4, clip=1.0, quant_bits=16, **kw)


def _honest(proto: Any, cid: int, value: float) -> Input:
    client = proto.client(cid, SESSION, rng=cid)
    client.set_input(np.full(D, value))
    msg = client.start()
    assert client.state is Terminal.FINISHED
    back = wire.decode(wire.encode(msg), protocol="plain")
    assert isinstance(back, Input)
    return back


def _bad_messages(good: Input) -> list[tuple[Any, type[RemoteProtocolError]]]:
    s, r, v = good.session, good.round, good.vector
    return [
        (Input(b"T" * 32, r, 9, v), WrongSessionError),  # another session
        (Input(s, r - 1, 9, v), WrongSessionError),  # replay of last round
        (Input(s, r, SERVER, v), UnknownSenderError),  # claims to be the server
        (Input(s, r, 9, v.astype(np.uint64)), WrongRingError),
        (Input(s, r, 9, v[:-1]), WrongLengthError),
        (Input(s, r, 9, np.concatenate([v, v])), WrongLengthError),
    ]


def test_bad_messages_are_rejected_and_the_honest_round_completes() -> None:
    proto = _proto()
    server = proto.server(SESSION)
    honest = [_honest(proto, cid, 0.25 * (cid + 1)) for cid in range(3)]
    server.receive(honest[0])
    for bad, error in _bad_messages(honest[0]):
        with pytest.raises(error) as exc:
            server.receive(wire.decode(wire.encode(bad)))
        assert exc.value.sender == bad.sender
    with pytest.raises(DuplicateMessageError):  # client 0 again, even with another vector
        server.receive(Input(SESSION.id, SESSION.round, 0, honest[1].vector))
    for msg in honest[1:]:
        server.receive(msg)
    assert server.on_deadline(Phase.INPUT) == {}
    assert server.state is Terminal.FINISHED
    result = server.result
    assert result.survivors == {0, 1, 2}
    expected = proto.quantizer.ring.sum([m.vector for m in honest], D)
    np.testing.assert_array_equal(result.ring_sum, expected)
    np.testing.assert_allclose(proto.decode_sum(result.ring_sum), np.full(D, 1.5), atol=3 / 2**15)


def test_more_senders_than_num_clients_is_refused() -> None:
    proto = _proto()
    server = proto.server(SESSION)
    for cid in range(4):
        server.receive(_honest(proto, cid, 0.1))
    with pytest.raises(UnknownSenderError):
        server.receive(_honest(proto, 4, 0.1))
    server.on_deadline(Phase.INPUT)
    assert server.result.survivors == {0, 1, 2, 3}


def test_server_after_finish_rejects_messages_and_second_deadline() -> None:
    proto = _proto()
    server = proto.server(SESSION)
    server.receive(_honest(proto, 0, 0.5))
    server.on_deadline(Phase.INPUT)
    with pytest.raises(OutOfPhaseError):
        server.receive(_honest(proto, 1, 0.5))
    with pytest.raises(LocalProtocolError):
        server.on_deadline(Phase.INPUT)
    assert server.result.survivors == {0}


def test_too_few_survivors_aborts_with_reason() -> None:
    proto = _proto(min_survivors=2)
    server = proto.server(SESSION)
    server.receive(_honest(proto, 0, 0.5))
    with pytest.raises(AbortError) as exc:
        server.on_deadline(Phase.INPUT)
    assert exc.value.reason == "too-few-survivors"
    assert server.state is Terminal.ABORTED
    with pytest.raises(LocalProtocolError):
        _ = server.result
    with pytest.raises(OutOfPhaseError):
        server.receive(_honest(proto, 1, 0.5))


def test_client_misuse_is_a_local_error_and_changes_nothing() -> None:
    proto = _proto()
    client = proto.client(0, SESSION, rng=0)
    with pytest.raises(LocalProtocolError):
        client.start()  # no input yet
    assert client.state is Phase.INPUT
    with pytest.raises(LocalProtocolError):
        client.set_input(np.zeros(D + 1))
    client.set_input(np.zeros(D))
    client.start()
    with pytest.raises(LocalProtocolError):
        client.start()
    with pytest.raises(LocalProtocolError):
        client.set_input(np.zeros(D))


def test_client_rejects_any_server_message() -> None:
    proto = _proto()
    client = proto.client(0, SESSION, rng=0)
    with pytest.raises(OutOfPhaseError):
        client.receive(Input(SESSION.id, SESSION.round, SERVER, np.zeros(D, np.uint32)))


def test_closing_the_wrong_phase_is_local_misuse() -> None:
    server = _proto().server(SESSION)

    class Other:  # not a phase of this protocol
        pass

    with pytest.raises(LocalProtocolError):
        server.on_deadline(Other())
    assert server.state is Phase.INPUT


def test_client_machine_is_never_pickled() -> None:
    client = _proto().client(0, SESSION, rng=0)
    client.set_input(np.ones(D))
    with pytest.raises(SecretPicklingError):
        pickle.dumps(client)

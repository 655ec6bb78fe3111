"""Rounds rebuilt from public data: the chain's postings and the store's blobs, fed through
the protocol's server machine.

On chain nobody relays messages: every server -> client message of a round is a function of
public data, so each party computes the ones it needs itself, with the same code. The
participants compute their ForwardedShares, the aggregator the sum, and ``secagg verify``
the sum again. They agree by construction, and an aggregator that restarts loses nothing.

Pairwise masking (Bonawitz et al. 2017, Bell et al. 2020) maps onto the chain as follows:

==============================  =============================================================
on chain                        protocol machine
==============================  =============================================================
``register(c_u^PK)``            AdvertiseKeys.c_pk (long-term: the key registry is the PKI)
``shareKeys(s_u^PK, bundle)``   AdvertiseKeys.s_pk (fresh each round) and ShareKeys (the
                                bundle is the wire-encoded ShareKeys message)
(registry + events)             ServerKeys and ForwardedShares, recomputed by each client;
                                the graph is drawn over the registered roster
``commit``/``reveal(cid)``      MaskedInput (the blob at cid)
``survivors(task, round)``      U3: fixed on chain for everyone; replaces the server's
                                choice of U3 and the consistency check
``postUnmask(cid)``             UnmaskResponse
==============================  =============================================================

HE protocols: the revealed blobs are EncryptedInput; the key holder recomputes the
EncryptedSum from them itself (it never decrypts what the aggregator hands it) and publishes
the DecryptedSum. ``plain``: the revealed blobs are Input messages.

A blob that does not decode, is bound to another session or round, or names another sender
than the account that posted it is rejected with its :class:`RemoteProtocolError` and its
poster is left out, as the in-process driver does: a member of the on-chain U whose bundle
or input was rejected is not in U3, the set everyone unmasks for (:func:`unmask_request`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from secagg import wire
from secagg.errors import AbortError, RemoteProtocolError, UnknownSenderError
from secagg.graph import NeighbourGraph, graph_seed
from secagg.primitives.x25519 import key_point, validate_public_key
from secagg.protocol import KEY_HOLDER, SERVER, AggregateResult, KeyMaterial, Protocol, Session
from secagg.protocols.he import HEProtocol
from secagg.protocols.he.messages import DecryptedSum, EncryptedInput, EncryptedSum
from secagg.protocols.plain.messages import Input
from secagg.protocols.secaggplus import SecAggPlus
from secagg.protocols.secaggplus.messages import (
    AdvertiseKeys,
    ForwardedShares,
    MaskedInput,
    Phase,
    PublicKeys,
    ServerKeys,
    ShareKeys,
    UnmaskRequest,
    UnmaskResponse,
)
from secagg.wire import Message

__all__ = [
    "Replay",
    "RoundRecord",
    "decode_blob",
    "forwarded_shares",
    "input_message_type",
    "rejected_inputs",
    "replay",
    "server_keys",
    "unmask_request",
]


@dataclass(frozen=True, eq=False)
class RoundRecord:
    """The public data of one round, by client id (position in registration order).

    Parameters
    ----------
    session:
        The task's session for this round.
    agreement_keys:
        c_v^PK of every registered member (the roster is ``range(len(agreement_keys))``).
    masking_keys, bundles:
        s_v^PK and the ShareKeys blob of each member that posted shares this round;
        ``masking_keys`` in posting (chain) order, which decides who keeps a repeated key.
    inputs:
        The revealed blob of each member of U (masked input, ciphertexts or plain input).
    survivors:
        U, fixed on chain when Reveal closed.
    unmasks:
        The UnmaskResponse blob of each member of U that posted one.
    """

    session: Session
    agreement_keys: tuple[bytes, ...]
    masking_keys: Mapping[int, bytes] = field(default_factory=dict)
    bundles: Mapping[int, bytes] = field(default_factory=dict)
    inputs: Mapping[int, bytes] = field(default_factory=dict)
    survivors: frozenset[int] = frozenset()
    unmasks: Mapping[int, bytes] = field(default_factory=dict)

    @property
    def roster(self) -> range:
        return range(len(self.agreement_keys))


@dataclass(eq=False)
class Replay:
    """What a replay produced: the result (or, for HE before decryption, the encrypted sum),
    and the blobs it rejected, by client id."""

    result: AggregateResult | None = None
    encrypted_sum: EncryptedSum | None = None
    rejected: dict[int, RemoteProtocolError] = field(default_factory=dict)


def input_message_type(proto: Protocol[Any]) -> type[Message]:
    """The message a participant commits to and reveals."""
    kind: type[Message] = Input
    if isinstance(proto, SecAggPlus):
        kind = MaskedInput
    elif isinstance(proto, HEProtocol):
        kind = EncryptedInput
    return kind


def decode_blob(proto: Protocol[Any], data: bytes, expected: type[Message], sender: int) -> Message:
    """Decode a posted blob and check it is an ``expected`` message from ``sender``.

    Raises
    ------
    RemoteProtocolError
        (A subclass of it:) undecodable bytes, another type, or another sender.
    """
    message = wire.decode(data, protocol=proto.wire_name)
    if type(message) is not expected:
        raise RemoteProtocolError(
            f"posted {type(message).__name__}, expected {expected.__name__}", sender=sender
        )
    if message.sender != sender:
        raise UnknownSenderError(
            f"a blob posted by client {sender} claims sender {message.sender}", sender=sender
        )
    return message


def server_keys(proto: SecAggPlus, record: RoundRecord, me: int) -> ServerKeys:
    """Client ``me``'s ServerKeys: the roster and its neighbours' registered c_v^PK, with
    s_v^PK deferred (they are posted with the shares, see ``set_masking_keys``). A neighbour
    that registered a key nobody can agree with (a small-order point) is left out: it is not
    in U1 for anyone."""
    graph = _graph(proto, record)
    unusable = _unusable_agreement_keys(record)
    keys = tuple(
        PublicKeys(v, record.agreement_keys[v], b"", b"")
        for v in sorted(graph.neighbours(me))
        if v not in unusable
    )
    return ServerKeys(record.session.id, record.session.round, SERVER, graph.roster, keys)


def forwarded_shares(
    proto: SecAggPlus, record: RoundRecord, me: int
) -> tuple[ForwardedShares | None, dict[int, bytes]]:
    """Client ``me``'s ForwardedShares (None when ``me`` is not in U2) and the masking keys
    s_v^PK of its senders, computed from the round's postings.

    Raises
    ------
    AbortError
        Too few members advertised or shared keys for the round to go on.
    """
    server = _masking_until_inputs(proto, record, Replay())
    forwarded = server.on_deadline(Phase.SHARE_KEYS).get(me)
    if not isinstance(forwarded, ForwardedShares):
        return None, {}
    return forwarded, {s.peer: record.masking_keys[s.peer] for s in forwarded.shares}


def unmask_request(
    proto: SecAggPlus, record: RoundRecord, *, inputs_declared: bool = False
) -> UnmaskRequest:
    """The request to unmask U3: the members of the on-chain U whose shares were accepted
    (U2) and whose masked input is well formed. Every party computes the same U3 from public
    data, so a member that posted a malformed bundle or input is left out of the sum and the
    honest members' round goes on (no signatures are needed: the chain fixed U).

    ``inputs_declared``: the inputs of U are not in ``record`` (participants do not fetch
    them: n d-long vectors each). The aggregator declared every input it could not fetch or
    that does not decode (:func:`rejected_inputs`) unavailable on chain, so U less those is
    taken as well formed. Should the aggregator leave a malformed input of a member v in U,
    the participants answer for v as a survivor (a share of b_v, never also of s_v^SK) and
    the aggregator's own replay fails: the round cannot finalize, and nobody learns more.

    Raises
    ------
    AbortError
        Fewer than ``min_survivors`` inputs are left.
    """
    out = Replay()
    server = _masking_until_inputs(proto, record, out)
    server.on_deadline(Phase.SHARE_KEYS)
    s = record.session
    if inputs_declared:
        zero = proto.quantizer.ring.zeros(s.dim)  # stands for each input: only U3 is needed
        for u in sorted(record.survivors):
            try:
                server.receive(MaskedInput(s.id, s.round, u, zero))
            except RemoteProtocolError as exc:
                out.rejected[u] = exc
    else:
        _feed_inputs(proto, server, record, out)
    requests = server.on_deadline(Phase.MASKED_INPUT)
    request = next(iter(requests.values()), None)
    if not isinstance(request, UnmaskRequest):
        return UnmaskRequest(s.id, s.round, SERVER, (), ())
    return request


def rejected_inputs(proto: SecAggPlus, record: RoundRecord) -> dict[int, RemoteProtocolError]:
    """The members of U (``record.survivors``, all with their input in ``record``) whose input
    the server machine rejects: it does not decode, names another sender or round, has another
    length or ring, names impossible bad boxes, or comes from outside U2. The aggregator
    declares them unavailable with the inputs it could not fetch, so that participants need
    not fetch any input (``unmask_request(..., inputs_declared=True)``).

    Raises
    ------
    AbortError
        The round cannot go on to Unmask: too few members shared keys or sent well-formed
        inputs, or bad share boxes left a needed secret with fewer than t holders.
    """
    out = Replay()
    server = _masking_until_inputs(proto, record, out)
    server.on_deadline(Phase.SHARE_KEYS)
    out.rejected.clear()  # earlier stages: not about the inputs
    _feed_inputs(proto, server, record, out)
    # the unmask request from the real inputs: it aborts when too few are left, or when the
    # share boxes survivors named bad leave a secret that will be needed with fewer than t
    # holders (participants, who take every input as well formed, cannot see that)
    server.on_deadline(Phase.MASKED_INPUT)
    return {u: exc for u, exc in out.rejected.items() if u in record.survivors}


def replay(
    proto: Protocol[Any],
    record: RoundRecord,
    *,
    keys: KeyMaterial | None = None,
    decrypted: bytes | None = None,
) -> Replay:
    """Run the server machine over ``record``.

    Parameters
    ----------
    keys:
        HE tasks: the public key material.
    decrypted:
        HE tasks: the key holder's DecryptedSum blob; without it the replay stops at the
        encrypted sum (``Replay.encrypted_sum``).

    Raises
    ------
    AbortError
        The round cannot produce a correct sum (too few shares, a survivor's blob rejected,
        a corrupt share...).
    """
    out = Replay()
    if isinstance(proto, SecAggPlus):
        _replay_masking(proto, record, out)
    elif isinstance(proto, HEProtocol):
        _replay_he(proto, record, out, keys, decrypted)
    else:
        server = proto.server(record.session)
        _feed_inputs(proto, server, record, out)
        server.on_deadline(proto.phases[0])
        out.result = server.result
    return out


def _graph(proto: SecAggPlus, record: RoundRecord) -> NeighbourGraph:
    seed = graph_seed(record.session.id, record.session.round)
    return NeighbourGraph(record.roster, proto.num_neighbors, seed)


def _unusable_agreement_keys(record: RoundRecord) -> dict[int, RemoteProtocolError]:
    """Members whose registered c_v^PK nobody can use: a small-order point, or a copy of the
    key of a member who registered earlier (a lower id: ids are registration order)."""
    out: dict[int, RemoteProtocolError] = {}
    first: dict[bytes, int] = {}
    for v, key in enumerate(record.agreement_keys):
        try:
            validate_public_key(key, sender=v)
        except RemoteProtocolError as exc:
            out[v] = exc
            continue
        owner = first.setdefault(key_point(key), v)
        if owner != v:
            out[v] = RemoteProtocolError(
                f"client {v} registered client {owner}'s agreement key", sender=v
            )
    return out


def _copied_masking_keys(record: RoundRecord) -> dict[int, RemoteProtocolError]:
    """Members whose posted s_v^PK repeats a registered agreement key (registered before any
    posting) or a masking key posted before it this round (``masking_keys`` is in posting
    order): the first holder keeps a key, a copier is out of U1, whatever its id."""
    registered = {key_point(k) for k in record.agreement_keys}
    out: dict[int, RemoteProtocolError] = {}
    posted: dict[bytes, int] = {}
    for v, key in record.masking_keys.items():
        point = key_point(key)
        owner = posted.setdefault(point, v)
        if point in registered or owner != v:
            out[v] = RemoteProtocolError(
                f"client {v}'s masking key repeats a key posted or registered before it", sender=v
            )
    return out


def _advertised(record: RoundRecord, u: int) -> AdvertiseKeys:
    s = record.session
    if u not in record.roster:
        raise UnknownSenderError(f"client {u} is not registered", sender=u)
    return AdvertiseKeys(s.id, s.round, u, record.agreement_keys[u], record.masking_keys[u], b"")


def _masking_until_inputs(proto: SecAggPlus, record: RoundRecord, out: Replay) -> Any:
    server = proto.server(record.session, roster=record.roster)
    out.rejected.update(_unusable_agreement_keys(record))
    out.rejected.update(_copied_masking_keys(record))
    for u in sorted(record.masking_keys):
        if u in out.rejected:
            continue
        try:
            server.receive(_advertised(record, u))
        except RemoteProtocolError as exc:
            out.rejected[u] = exc
    server.on_deadline(Phase.ADVERTISE_KEYS)
    for u in sorted(record.bundles):
        if u in out.rejected:
            continue
        try:
            server.receive(decode_blob(proto, record.bundles[u], ShareKeys, u))
        except RemoteProtocolError as exc:
            out.rejected[u] = exc
    return server


def _replay_masking(proto: SecAggPlus, record: RoundRecord, out: Replay) -> None:
    server = _masking_until_inputs(proto, record, out)
    server.on_deadline(Phase.SHARE_KEYS)
    _feed_inputs(proto, server, record, out)
    server.on_deadline(Phase.MASKED_INPUT)
    for u in sorted(record.unmasks):
        try:
            server.receive(decode_blob(proto, record.unmasks[u], UnmaskResponse, u))
        except RemoteProtocolError as exc:
            out.rejected[u] = exc
    server.on_deadline(Phase.UNMASKING)
    out.result = server.result


def _feed_inputs(proto: Protocol[Any], server: Any, record: RoundRecord, out: Replay) -> None:
    """The revealed inputs of U; a rejected one is left out of the sum."""
    expected = input_message_type(proto)
    for u in sorted(record.survivors):
        try:
            server.receive(decode_blob(proto, record.inputs[u], expected, u))
        except RemoteProtocolError as exc:
            out.rejected[u] = exc


def _replay_he(
    proto: HEProtocol,
    record: RoundRecord,
    out: Replay,
    keys: KeyMaterial | None,
    decrypted: bytes | None,
) -> None:
    server = proto.server(record.session, keys=keys)
    _feed_inputs(proto, server, record, out)
    request = server.on_deadline(proto.phases[0])[KEY_HOLDER]
    assert isinstance(request, EncryptedSum)
    out.encrypted_sum = request
    if decrypted is None:
        return
    try:
        server.receive(decode_blob(proto, decrypted, DecryptedSum, KEY_HOLDER))
    except RemoteProtocolError as exc:
        out.rejected[KEY_HOLDER] = exc
        raise AbortError("bad-decryption", f"the key holder's decrypted sum: {exc}") from exc
    server.on_deadline(proto.phases[1])
    out.result = server.result

"""Attacks on SecAgg / SecAgg+ that must fail. Each test plays a malicious server or client
against honest machines, message by message (every message through the wire codec)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from scipy.stats import chisquare

from secagg import protocols, wire
from secagg.errors import (
    AbortError,
    AuthenticationError,
    DuplicateMessageError,
    LocalProtocolError,
    OutOfPhaseError,
    RefusedRequestError,
    UnknownSenderError,
    WrongLengthError,
    WrongRingError,
    WrongSessionError,
)
from secagg.primitives.shamir import Shamir
from secagg.primitives.signing import SigningKey
from secagg.primitives.x25519 import KeyPair
from secagg.protocol import SERVER, Credentials, Session
from secagg.protocols.secaggplus.masks import Masker, pairwise_key, pairwise_sign
from secagg.protocols.secaggplus.messages import (
    EncryptedShare,
    ForwardedShares,
    MaskedInput,
    SignatureOf,
    SurvivorsRequest,
    UnmaskRequest,
)
from secagg.randomness import SeededRandom

N, D = 7, 4096


def _wire(msg: Any) -> Any:
    return wire.decode(wire.encode(msg))


class Round:
    """Honest clients and the honest server machine, driven by hand up to a chosen phase."""

    def __init__(
        self,
        name: str = "secagg",
        *,
        consistency_check: bool = False,
        scale: float = 1.0,
        **kw: Any,
    ) -> None:
        self.proto = protocols.get(
            name, num_clients=N, consistency_check=consistency_check, dropout_rate=0.0, **kw
        )
        self.session = Session(b"attack-session-0" * 2, D, 0)
        rng = SeededRandom(11)
        signing = {c: SigningKey.generate(rng.fork(f"id/{c}")) for c in range(N)}
        self.directory = {c: k.public for c, k in signing.items()}
        creds = {c: Credentials(signing[c], self.directory) for c in range(N)}
        self.server = self.proto.server(
            self.session, directory=self.directory if consistency_check else None
        )
        self.clients = {
            c: self.proto.client(
                c,
                self.session,
                rng.fork(f"c/{c}"),
                credentials=creds[c] if consistency_check else None,
            )
            for c in range(N)
        }
        data = np.random.default_rng(0)
        self.inputs = {c: scale * data.uniform(-1, 1, D) for c in range(N)}
        for c, client in self.clients.items():
            client.set_input(self.inputs[c])
        self.encoded = {  # what each client's encoding is (same rng draw as inside the client)
            c: self.proto.quantizer.quantize(self.inputs[c], rng.fork(f"c/{c}")) for c in range(N)
        }
        self.masked: dict[int, np.ndarray] = {}

    def step(self, replies: dict[int, Any] | None) -> dict[int, Any]:
        """Deliver ``replies`` (or start), feed the answers to the server, close the phase."""
        phase = self.server.state
        for c, client in self.clients.items():
            if replies is None:
                out = client.start()
            elif c in replies:
                out = client.receive(_wire(replies[c]))
            else:
                continue
            if isinstance(out, MaskedInput):
                self.masked[c] = out.vector.copy()
            self.server.receive(_wire(out))
        return self.server.on_deadline(phase)

    def up_to_unmasking(self) -> dict[int, Any]:
        replies = self.step(None)  # advertise keys
        replies = self.step(replies)  # share keys
        return self.step(replies)  # masked input -> unmask (or survivors) requests


def test_server_claiming_a_live_client_dropped_learns_nothing_about_it() -> None:
    """The server got y_v, then tells everyone v dropped to collect s_v^SK shares. It can
    strip v's pairwise masks, but y_v still hides x_v under PRG(b_v): no honest client gives
    out a b_v share once it gave an s_v share, and a second request is refused."""
    r = Round()
    requests = r.up_to_unmasking()
    victim = 3
    lie = tuple(c for c in range(N) if c != victim)
    t = r.proto.threshold
    shamir = Shamir(t)
    s_shares, b_shares = [], []
    for c in lie:
        resp = r.clients[c].receive(_wire(replace(requests[c], survivors=lie)))
        assert all(s.owner != victim for s in resp.self_mask_shares)
        s_shares += [(c + 1, s.share) for s in resp.key_shares if s.owner == victim]
    assert len(s_shares) >= t  # the server really does rebuild s_v^SK ...
    xs = [x for x, _ in s_shares]
    ys = np.stack([shamir.share_from_bytes(y) for _, y in s_shares])[:, None, :]
    s_v = KeyPair.from_private_bytes(shamir.reconstruct(xs, ys)[0])
    # ... and strips every pairwise mask from y_v
    residue = r.masked[victim].copy()
    masker = Masker(r.proto.quantizer.ring, D)
    keys = {c: r.clients[c]._s.public for c in range(N)}  # public keys, as the server has them
    for w in range(N):
        if w != victim:
            key = pairwise_key(s_v.agree(keys[w]), victim, w, r.session)
            masker.apply(residue, key, -pairwise_sign(victim, w))
    # what is left is x_v + PRG(b_v): uniform on the ring, unrelated to x_v
    plain = r.encoded[victim]
    assert np.mean(residue == plain) < 0.01
    counts = np.bincount((residue >> 28).astype(np.int64), minlength=16)
    assert chisquare(counts).pvalue > 1e-4
    # asking again, now with v "alive", to get b_v shares: every client refuses
    for c in lie:
        with pytest.raises(OutOfPhaseError):
            r.clients[c].receive(_wire(requests[c]))
    assert not b_shares


def test_equivocating_server_cannot_collect_both_kinds_of_shares() -> None:
    """Without the consistency check, the server shows half the clients 'v dropped' and the
    others 'v survived'. With the semi-malicious threshold (t > k/2) one half is below t."""
    r = Round()
    requests = r.up_to_unmasking()
    victim, t = 0, r.proto.threshold
    everyone = tuple(range(N))
    without = tuple(c for c in everyone if c != victim)
    others = list(without)
    half_a, half_b = others[: len(others) // 2], others[len(others) // 2 :]
    got_s = got_b = 0
    for c in half_a:
        resp = r.clients[c].receive(_wire(replace(requests[c], survivors=without)))
        got_s += sum(s.owner == victim for s in resp.key_shares)
    for c in half_b:
        resp = r.clients[c].receive(_wire(requests[c]))
        got_b += sum(s.owner == victim for s in resp.self_mask_shares)
    assert min(got_s, got_b) < t


def test_consistency_check_exposes_a_server_showing_two_survivor_sets() -> None:
    r = Round(consistency_check=True)
    requests = r.up_to_unmasking()
    assert all(isinstance(m, SurvivorsRequest) for m in requests.values())
    victim = 0
    without = tuple(c for c in range(N) if c != victim)
    sigs_a, sigs_b = {}, {}
    for c in range(1, N):
        shown = without if c % 2 else requests[c].survivors
        sig = r.clients[c].receive(_wire(replace(requests[c], survivors=shown)))
        (sigs_a if c % 2 else sigs_b)[c] = sig.signature
    for c in range(1, N):
        shown = without if c % 2 else requests[c].survivors
        sigs = sigs_a if c % 2 else sigs_b
        req = UnmaskRequest(
            r.session.id,
            0,
            SERVER,
            shown,
            tuple(SignatureOf(u, s) for u, s in sorted(sigs.items())),
        )
        with pytest.raises(RefusedRequestError):  # fewer than t signatures on either set
            r.clients[c].receive(_wire(req))
        # forging the missing signatures does not help
        forged = tuple(SignatureOf(u, bytes(64)) for u in shown if u not in sigs)
        padded = replace(
            req, signatures=tuple(sorted(req.signatures + forged, key=lambda s: s.client))
        )
        with pytest.raises((AuthenticationError, RefusedRequestError)):
            r.clients[c].receive(_wire(padded))


def test_replayed_and_out_of_phase_messages_are_rejected_and_change_nothing() -> None:
    r = Round()
    replies = r.step(None)
    # a ServerKeys message of another session or round
    msg = replies[1]
    for bad in (replace(msg, session=b"another-session!" * 2), replace(msg, round=1)):
        with pytest.raises(WrongSessionError):
            r.clients[1].receive(_wire(bad))
    # an unmask request before the masked input
    with pytest.raises(OutOfPhaseError):
        r.clients[1].receive(UnmaskRequest(r.session.id, 0, SERVER, tuple(range(N)), ()))
    # a client replaying its AdvertiseKeys into the next phase
    with pytest.raises(LocalProtocolError):
        r.clients[2].start()  # already started: a second AdvertiseKeys is never produced
    # the round still completes with the exact sum
    replies = r.step(replies)
    replies = r.step(replies)
    r.step(replies)
    assert r.server.result.survivors == set(range(N))
    total = r.proto.quantizer.ring.sum(r.encoded.values(), D)
    np.testing.assert_array_equal(r.server.result.ring_sum, total)


def _substitute_keys(server_keys: Any, victim: int) -> Any:
    """The server's own X25519 keys in place of ``victim``'s (it would then hold s_{u,victim}
    and could decrypt the shares meant for the victim)."""
    mine = KeyPair.generate(SeededRandom(99))
    keys = tuple(
        replace(k, c_pk=mine.public, s_pk=KeyPair.generate(SeededRandom(98)).public)
        if k.client == victim
        else k
        for k in server_keys.keys
    )
    return replace(server_keys, keys=keys)


def test_a_server_substituting_a_clients_keys_is_caught_by_the_signatures() -> None:
    """With signatures (Bonawitz's active variant) every advertised key pair is signed by the
    owner's long-term key, so a substituted key is refused by name. Without signatures and
    without a chain, key substitution is outside the threat model (SECURITY.md): on chain the
    KeyRegistry binds c_u^PK to the account that sent it."""
    r = Round(consistency_check=True)
    requests = r.step(None)
    with pytest.raises(AuthenticationError):
        r.clients[0].receive(_wire(_substitute_keys(requests[0], victim=3)))
    assert r.clients[0].receive(_wire(requests[0])) is not None  # the real keys still work


def test_a_message_claiming_another_sender_is_rejected() -> None:
    r = Round(consistency_check=True)
    first = r.clients[0].start()
    forged = replace(r.clients[1].start(), sender=0)  # client 1 pretends to be client 0
    with pytest.raises(AuthenticationError):
        r.server.receive(_wire(forged))
    r.server.receive(_wire(first))
    with pytest.raises(DuplicateMessageError):
        r.server.receive(_wire(first))
    with pytest.raises(UnknownSenderError):
        r.server.receive(_wire(replace(first, sender=SERVER)))


def _corrupt_one_share(response: Any, kind: str, owner: int) -> Any:
    field = "self_mask_shares" if kind == "b" else "key_shares"
    shares = list(getattr(response, field))
    i = next(i for i, s in enumerate(shares) if s.owner == owner)
    shares[i] = replace(shares[i], share=bytes([shares[i].share[0] ^ 1]) + shares[i].share[1:])
    return replace(response, **{field: tuple(shares)})


def _close_unmasking(r: Round, abort: str | None, culprit: int, members: Any) -> None:
    """Close UNMASKING: an abort with reason ``abort``, or the exact sum of ``members`` with
    ``culprit`` named as the one corrupt share holder."""
    if abort is not None:
        with pytest.raises(AbortError) as info:
            r.server.on_deadline(r.server.state)
        assert info.value.reason == abort
        return
    r.server.on_deadline(r.server.state)
    assert r.server.corrupt_share_holders == {culprit}
    expected = sum(r.encoded[c].astype(np.uint64) for c in members) % 2**32
    assert np.array_equal(r.server.result.ring_sum.astype(np.uint64), expected)


@pytest.mark.parametrize("extra", [0, 1], ids=["exactly-t-shares", "t-plus-one-shares"])
def test_a_corrupt_self_mask_share_is_caught_never_a_wrong_sum(extra: int) -> None:
    """A share holder corrupts its share of a survivor's b_v. With exactly t shares no
    polynomial check sees it; the commitment h_v in ShareKeys does, and the round aborts.
    With t + 1 the server finds the set of t that rebuilds h_v's preimage, leaves the bad
    holder out, names it, and the sum is right."""
    r = Round("secagg")
    requests = r.up_to_unmasking()
    t = r.proto.threshold
    victim, *holders = sorted(requests)[: t + 1 + extra]  # b_victim: t + extra shares arrive
    for c in [victim, *holders]:
        out = r.clients[c].receive(_wire(requests[c]))
        if c == holders[0]:
            out = _corrupt_one_share(out, "b", victim)
        r.server.receive(_wire(out))
    _close_unmasking(r, "bad-self-mask-shares" if extra == 0 else None, holders[0], range(N))


@pytest.mark.parametrize("corrupt", [1, 2])
def test_corrupt_key_shares_of_a_dropped_client_are_caught(corrupt: int) -> None:
    """t + 1 shares of a dropped client's s_v^SK arrive (fewer would already leave some
    survivor's b_w short in the complete graph). One corrupt share: left out, its holder
    named, the sum right. Two: no t of them rebuild s_v^PK's key, and the round aborts."""
    r = Round("secagg")
    replies = r.step(None)
    replies = r.step(replies)
    dropped = max(replies)
    del r.clients[dropped]  # vanishes after sharing keys: its s_v^SK must be rebuilt
    requests = r.step(replies)
    t = r.proto.threshold
    holders = sorted(requests)[: t + 1]
    for c in holders:
        out = r.clients[c].receive(_wire(requests[c]))
        if c in holders[:corrupt]:
            out = _corrupt_one_share(out, "s", dropped)
        r.server.receive(_wire(out))
    survivors = [c for c in range(N) if c != dropped]
    _close_unmasking(r, "inconsistent-shares" if corrupt == 2 else None, holders[0], survivors)


def test_a_server_relabelling_share_boxes_is_caught_by_the_aead() -> None:
    r = Round()
    replies = r.step(None)
    forwards = r.step(replies)
    msg: ForwardedShares = forwards[0]
    a, b = msg.shares[0], msg.shares[1]
    swapped = replace(
        msg, shares=(EncryptedShare(a.peer, b.box), EncryptedShare(b.peer, a.box), *msg.shares[2:])
    )
    with pytest.raises(AuthenticationError):
        r.clients[0].receive(_wire(swapped))
    assert r.clients[0].state is r.proto.Phase.MASKED_INPUT  # unchanged; the real one still works
    assert isinstance(r.clients[0].receive(_wire(msg)), MaskedInput)


@pytest.mark.parametrize("name", ["secagg", "secaggplus"])
@pytest.mark.parametrize("defect", ["length", "ring"])
def test_a_wrong_vector_is_excluded_with_a_named_error_and_the_round_completes(
    name: str, defect: str
) -> None:
    r = Round(name, **({"num_neighbors": 4, "threshold": 3} if name == "secaggplus" else {}))
    replies = r.step(r.step(None))
    cheat = 4
    for c, client in r.clients.items():
        out = client.receive(_wire(replies[c]))
        if c == cheat:
            vector = out.vector[:-1] if defect == "length" else out.vector.astype(np.uint64)
            with pytest.raises(WrongLengthError if defect == "length" else WrongRingError) as info:
                r.server.receive(_wire(replace(out, vector=vector)))
            assert info.value.sender == cheat
            continue
        r.server.receive(_wire(out))
    requests = r.server.on_deadline(r.proto.Phase.MASKED_INPUT)
    assert cheat not in requests
    r.step(requests)
    result = r.server.result
    assert result.survivors == set(range(N)) - {cheat}
    want = r.proto.quantizer.ring.sum((r.encoded[c] for c in result.survivors), D)
    np.testing.assert_array_equal(result.ring_sum, want)


@pytest.mark.parametrize("scale", [0.0, 1.0])
def test_masked_vectors_are_uniform_and_independent_of_the_input(scale: float) -> None:
    """What the server sees of one client: chi-square on 64 buckets of the ring, for an
    all-zero input and for a full-scale random input, and no correlation with the input."""
    r = Round(scale=scale)
    r.up_to_unmasking()
    for c in range(N):
        y = r.masked[c]
        counts = np.bincount((y >> 26).astype(np.int64), minlength=64)
        assert chisquare(counts).pvalue > 1e-4
        enc = r.proto.quantizer.ring.to_signed(r.encoded[c]).astype(np.float64)
        if enc.std() > 0:
            assert abs(np.corrcoef(y.astype(np.float64), enc)[0, 1]) < 0.1

"""Attacks on SecAgg / SecAgg+ that must fail. Each test plays a malicious server or client
against honest machines, message by message (every message through the wire codec)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from scipy.stats import chisquare

from secagg import protocols, wire
from secagg.errors import (
    AbortError,
    AuthenticationError,
    ConfigError,
    CorruptShareError,
    DuplicateMessageError,
    LocalProtocolError,
    OutOfPhaseError,
    RefusedRequestError,
    RemoteProtocolError,
    UnknownSenderError,
    WeakKeyError,
    WrongLengthError,
    WrongRingError,
    WrongSessionError,
)
from secagg.primitives.aead import AeadKey
from secagg.primitives.shamir import Shamir
from secagg.primitives.signing import SigningKey
from secagg.primitives.x25519 import KeyPair
from secagg.protocol import SERVER, Credentials, Session
from secagg.protocols.secaggplus.masks import (
    Masker,
    pairwise_key,
    pairwise_sign,
    self_mask_key,
    share_commitment,
)
from secagg.protocols.secaggplus.messages import (
    EncryptedShare,
    ForwardedShares,
    MaskedInput,
    SignatureOf,
    SurvivorsRequest,
    UnmaskRequest,
)
from secagg.randomness import SeededRandom

from .helpers import SMALL_ORDER_POINT

N, D = 7, 4096


def _wire(msg: Any) -> Any:
    return wire.decode(wire.encode(msg))


class Round:
    """Honest clients and the honest server machine, driven by hand up to a chosen phase."""

    def __init__(
        self,
        name: str = "secagg",
        *,
        n: int = N,
        d: int = D,
        consistency_check: bool = False,
        scale: float = 1.0,
        **kw: Any,
    ) -> None:
        kw.setdefault("dropout_rate", 0.0)
        self.n, self.d = n, d
        self.proto = protocols.get(name, num_clients=n, consistency_check=consistency_check, **kw)
        self.session = Session(b"attack-session-0" * 2, d, 0)
        rng = SeededRandom(11)
        signing = {c: SigningKey.generate(rng.fork(f"id/{c}")) for c in range(n)}
        self.directory = {c: k.public for c, k in signing.items()}
        creds = {c: Credentials(signing[c], self.directory) for c in range(n)}
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
            for c in range(n)
        }
        data = np.random.default_rng(0)
        self.inputs = {c: scale * data.uniform(-1, 1, d) for c in range(n)}
        for c, client in self.clients.items():
            client.set_input(self.inputs[c])
        self.encoded = {  # what each client's encoding is (same rng draw as inside the client)
            c: self.proto.quantizer.quantize(self.inputs[c], rng.fork(f"c/{c}")) for c in range(n)
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

    def up_to_unmasking(self, forward: dict[int, set[int]] | None = None) -> dict[int, Any]:
        """Run the round honestly up to the unmask (or survivors) requests; ``forward`` makes
        the server forward to client c only the boxes of ``forward[c]`` (its partners)."""
        replies = self.step(None)  # advertise keys
        replies = self.step(replies)  # share keys
        for c, keep in (forward or {}).items():
            shares = tuple(s for s in replies[c].shares if s.peer in keep)
            replies[c] = replace(replies[c], shares=shares)
        self.partners = {c: {s.peer for s in msg.shares} for c, msg in replies.items()}
        return self.step(replies)  # masked input -> unmask (or survivors) requests

    def strip(self, victim: int, b_seed: bytes, s_keys: dict[int, KeyPair]) -> np.ndarray:
        """y_victim minus PRG(b_victim) and minus its pairwise mask with every w in
        ``s_keys`` (rebuilt s_w^SK): what an attacker holding those secrets computes."""
        residue = self.masked[victim].copy()
        masker = Masker(self.proto.quantizer.ring, self.d)
        masker.apply(residue, self_mask_key(b_seed, self.session), -1)
        s_pk = self.clients[victim]._s.public  # public: the server relays it
        for w, s_w in s_keys.items():
            key = pairwise_key(s_w.agree(s_pk), victim, w, self.session)
            masker.apply(residue, key, -pairwise_sign(victim, w))
        return residue


def _rebuild(t: int, shares: list[tuple[int, bytes]]) -> bytes:
    shamir = Shamir(t)
    xs = [x for x, _ in shares]
    ys = np.stack([shamir.share_from_bytes(y) for _, y in shares])[:, None, :]
    return shamir.reconstruct(xs, ys)[0]


@dataclass
class Equivocation:
    """What an equivocating server collected: the shares each honest client handed out when
    shown its own survivor set, and who refused."""

    b_shares: dict[int, list[tuple[int, bytes]]]
    s_shares: dict[int, list[tuple[int, bytes]]]
    refused: dict[int, type[Exception]]


def _equivocate(r: Round, requests: dict[int, Any], views: dict[int, tuple[int, ...]]) -> Any:
    """Show client c the survivor set ``views[c]``: with the consistency check, first for a
    signature, then with every signature gathered on that same set; without it, directly."""
    signatures: dict[tuple[int, ...], list[SignatureOf]] = {}
    refused: dict[int, type[Exception]] = {}
    if r.proto.config.consistency_check:
        for c, view in views.items():
            try:
                sig = r.clients[c].receive(_wire(SurvivorsRequest(*_server_header(r), view)))
            except RefusedRequestError as exc:
                refused[c] = type(exc)
                continue
            signatures.setdefault(view, []).append(SignatureOf(c, sig.signature))
    got = Equivocation({}, {}, refused)
    for c, view in views.items():
        if c in refused:
            continue
        request = UnmaskRequest(*_server_header(r), view, tuple(signatures.get(view, ())))
        if not r.proto.config.consistency_check:
            request = replace(requests[c], survivors=view)
        try:
            resp = r.clients[c].receive(_wire(request))
        except (RefusedRequestError, AuthenticationError) as exc:
            refused[c] = type(exc)
            continue
        for s in resp.self_mask_shares:
            got.b_shares.setdefault(s.owner, []).append((c + 1, s.share))
        for s in resp.key_shares:
            got.s_shares.setdefault(s.owner, []).append((c + 1, s.share))
    return got


def _server_header(r: Round) -> tuple[bytes, int, int]:
    return r.session.id, r.session.round, SERVER


def _learn(r: Round, victim: int, got: Equivocation) -> np.ndarray | None:
    """The attacker's reconstruction of x_victim: b_victim and s_w^SK of every partner w the
    victim masked with, each from t shares; None when some secret is short."""
    t = r.proto.threshold
    partners = r.partners[victim]
    if len(got.b_shares.get(victim, [])) < t:
        return None
    if any(len(got.s_shares.get(w, [])) < t for w in partners):
        return None
    b_seed = _rebuild(t, got.b_shares[victim])
    s_keys = {w: KeyPair.from_private_bytes(_rebuild(t, got.s_shares[w])) for w in partners}
    return r.strip(victim, b_seed, s_keys)


def _views_secaggplus(r: Round, victim: int, groups: int = 3) -> dict[int, tuple[int, ...]]:
    """The group attack on a Harary graph: clients are put in ``groups`` classes by their
    ring offset from the victim (mod ``groups``); class i is shown U3 = everyone except the
    victim's neighbours outside class i. Every neighbour sees the victim alive (b_victim
    shares), and each neighbour w is 'dropped' for the 2/3 of its own neighbours outside its
    class (s_w shares): with k = 26, t = 16 that is 18 >= t for every w."""
    graph = r.server.graph
    ring, n = graph._ring, r.n
    pos = {u: i for i, u in enumerate(ring)}
    offset = {u: (pos[u] - pos[victim] + n // 2) % n - n // 2 for u in ring}
    cls = {u: offset[u] % groups for u in ring}
    near = graph.neighbours(victim)
    return {u: tuple(v for v in range(n) if v not in near or cls[v] == cls[u]) for u in range(n)}


def _views_secagg(n: int, t: int) -> tuple[dict[int, set[int]], dict[int, tuple[int, ...]]]:
    """The complete-graph attack on client 0, n = 10, t = 6 (t = 6 > n/2 shows that even fcp's
    full-graph threshold, against which two halves shown two sets fail, does not stop it
    without signatures). Client 0 is forwarded the boxes of P = {1..6} only, so it masks with
    P alone. Each client is shown a set of exactly t that leaves out 4 members of P: 7, 8, 9
    leave out {1,2,3,4}, {3,4,5,6}, {1,2,5,6}; each p in P keeps only itself and the next
    member of P.
    Then each w in P is 'dropped' for 2 outsiders and 4 members of P (t = 6 s_w shares), and
    everyone sees client 0 alive (9 b_0 shares)."""
    assert (n, t) == (10, 6)
    members = [1, 2, 3, 4, 5, 6]
    out = {7: {1, 2, 3, 4}, 8: {3, 4, 5, 6}, 9: {1, 2, 5, 6}, 0: set()}
    for i, p in enumerate(members):
        out[p] = set(members) - {p, members[(i + 1) % len(members)]}
    views = {u: tuple(v for v in range(n) if v not in out[u]) for u in range(n)}
    return {0: set(members)}, views


def test_server_claiming_a_live_client_dropped_learns_nothing_about_it() -> None:
    """The server got y_v, then tells everyone v dropped to collect s_v^SK shares. It can
    strip v's pairwise masks, but y_v still hides x_v under PRG(b_v): no honest client gives
    out a b_v share once it gave an s_v share, and a second request is refused."""
    r = Round()
    requests = r.up_to_unmasking()
    victim = 3
    lie = tuple(c for c in range(N) if c != victim)
    t = r.proto.threshold
    s_shares, b_shares = [], []
    for c in lie:
        resp = r.clients[c].receive(_wire(replace(requests[c], survivors=lie)))
        assert all(s.owner != victim for s in resp.self_mask_shares)
        s_shares += [(c + 1, s.share) for s in resp.key_shares if s.owner == victim]
    assert len(s_shares) >= t  # the server really does rebuild s_v^SK ...
    s_v = KeyPair.from_private_bytes(_rebuild(t, s_shares))
    assert s_v.public == r.clients[victim]._s.public  # ... the victim's own key ...
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
            resp = r.clients[c].receive(_wire(requests[c]))
            b_shares += [s for s in resp.self_mask_shares if s.owner == victim]
    assert not b_shares


def _equivocation_round(name: str, signed: bool) -> tuple[Round, Equivocation]:
    if name == "secaggplus":
        r = Round(name, n=100, d=512, consistency_check=signed, dropout_rate=0.1)
        assert (r.proto.num_neighbors, r.proto.threshold) == (26, 16)
        requests = r.up_to_unmasking()
        views = _views_secaggplus(r, 0)
    else:
        r = Round(name, n=10, d=512, consistency_check=signed, dropout_rate=0.1, threshold=6)
        forward, views = _views_secagg(r.n, r.proto.threshold)
        requests = r.up_to_unmasking(forward)
    return r, _equivocate(r, requests, views)


@pytest.mark.parametrize("name", ["secagg", "secaggplus"])
def test_without_signatures_an_equivocating_server_reads_one_input(name: str) -> None:
    """The documented limit of the unsigned mode, for both graphs: a server that shows
    different clients different survivor sets collects b_0 and s_w^SK of every partner of
    client 0, and reads x_0 exactly. Hence 'malicious' requires the consistency check."""
    r, got = _equivocation_round(name, signed=False)
    # everyone goes along; on the complete graph the victim itself balks (its set lists 7, 8,
    # 9, whose boxes it was never forwarded), which costs the server nothing
    assert set(got.refused) == ({0} if name == "secagg" else set())
    learned = _learn(r, 0, got)
    assert learned is not None
    np.testing.assert_array_equal(learned, r.encoded[0])
    with pytest.raises(ConfigError) as info:
        protocols.get(name, num_clients=r.n, adversary="malicious")
    assert info.value.parameter == "adversary"


@pytest.mark.parametrize("name", ["secagg", "secaggplus"])
def test_with_signatures_an_equivocating_server_learns_nothing(name: str) -> None:
    """The same attacks with the consistency check: each set is signed only by those shown it
    (SecAgg+: about n/3 per set; SecAgg: one), fewer than the quorum floor((n + a)/2) + 1, so
    every client refuses to unmask and the server gets no share at all."""
    r, got = _equivocation_round(name, signed=True)
    assert r.proto.config.signature_quorum == {"secagg": 6, "secaggplus": 53}[name]
    assert got.refused == dict.fromkeys(range(r.n), RefusedRequestError)
    assert not got.b_shares and not got.s_shares
    assert _learn(r, 0, got) is None


def test_a_roster_packed_by_the_server_is_refused_with_signatures() -> None:
    """Signed mode draws the graph over the directory: a server that shows a client a roster of
    its choosing (to fill the client's neighbourhood with colluders) is refused by name."""
    r = Round(
        "secaggplus",
        n=20,
        d=64,
        num_neighbors=8,
        threshold=6,
        consistency_check=True,
        dropout_rate=0.1,
        corrupted_fraction=0.0,
    )
    requests = r.step(None)
    packed = replace(requests[0], roster=tuple(range(9)))
    with pytest.raises(RefusedRequestError, match="directory"):
        r.clients[0].receive(_wire(packed))
    assert r.clients[0].receive(_wire(requests[0])) is not None  # the real one still works


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


def _close_unmasking(r: Round, abort: str | None, members: Any) -> None:
    """Close UNMASKING: an abort with reason ``abort``, or the exact sum of ``members``."""
    if abort is not None:
        with pytest.raises(AbortError) as info:
            r.server.on_deadline(r.server.state)
        assert info.value.reason == abort
        assert info.value.culprits == frozenset()  # short of shares: nobody to accuse
        return
    r.server.on_deadline(r.server.state)
    expected = sum(r.encoded[c].astype(np.uint64) for c in members) % 2**32
    assert np.array_equal(r.server.result.ring_sum.astype(np.uint64), expected)


def _deliver_corrupt(r: Round, out: Any, kind: str, owner: int) -> None:
    """A holder reveals a share of ``owner``'s secret other than the one it was dealt: the
    server refuses its whole response by name (the share does not match the dealer's public
    commitment), and the response changes nothing."""
    with pytest.raises(CorruptShareError) as info:
        r.server.receive(_wire(_corrupt_one_share(out, kind, owner)))
    assert info.value.sender == out.sender


@pytest.mark.parametrize("extra", [0, 1], ids=["exactly-t-shares", "t-plus-one-shares"])
def test_a_corrupt_self_mask_share_is_caught_never_a_wrong_sum(extra: int) -> None:
    """A share holder corrupts its share of a survivor's b_v. The dealer's per-holder
    commitment in ShareKeys shows whose fault it is: the holder's response is refused by
    name. With t + 1 holders the other t give the exact sum; with exactly t the round is
    short of shares and aborts, never with a wrong sum and never blaming the dealer."""
    r = Round("secagg")
    requests = r.up_to_unmasking()
    t = r.proto.threshold
    victim, *holders = sorted(requests)[: t + 1 + extra]  # b_victim: t + extra shares arrive
    for c in [victim, *holders]:
        out = r.clients[c].receive(_wire(requests[c]))
        if c == holders[0]:
            _deliver_corrupt(r, out, "b", victim)
            continue
        r.server.receive(_wire(out))
    _close_unmasking(r, "too-few-shares" if extra == 0 else None, range(N))


@pytest.mark.parametrize("corrupt", [1, 2])
def test_corrupt_key_shares_of_a_dropped_client_are_caught(corrupt: int) -> None:
    """All six survivors (t + 2) answer for a dropped client's s_v^SK. A holder whose share is
    corrupt is refused by name, its whole response with it: with one such holder every secret
    still has t shares and the sum is right; with two, the survivors' own b_w (held by the
    other five) fall short and the round aborts."""
    r = Round("secagg")
    replies = r.step(None)
    replies = r.step(replies)
    dropped = max(replies)
    del r.clients[dropped]  # vanishes after sharing keys: its s_v^SK must be rebuilt
    requests = r.step(replies)
    holders = sorted(requests)
    assert len(holders) == r.proto.threshold + 2
    for c in holders:
        out = r.clients[c].receive(_wire(requests[c]))
        if c in holders[:corrupt]:
            _deliver_corrupt(r, out, "s", dropped)
            continue
        r.server.receive(_wire(out))
    survivors = [c for c in range(N) if c != dropped]
    _close_unmasking(r, "too-few-shares" if corrupt == 2 else None, survivors)


def _deal_badly(share_keys: Any, holder: int, dealer: Any, session: Session, commit: bool) -> Any:
    """Re-seal ``dealer``'s box for ``holder`` with a b-share off its polynomial; with
    ``commit`` the public commitment is to the bad share, else to the good one."""
    box = next(s for s in share_keys.shares if s.peer == holder)
    aead = AeadKey.from_shared_secret(
        dealer._c.agree(dealer._peers[holder].c_pk), session=session.id, round=session.round
    )
    plain = aead.open(
        box.box, sender=dealer.identity, receiver=holder, session=session.id, round=session.round
    )
    width = len(plain) // 2
    bad_b = bytes([plain[width] ^ 1]) + plain[width + 1 :]
    sealed = aead.seal(
        plain[:width] + bad_b,
        sender=dealer.identity,
        receiver=holder,
        session=session.id,
        round=session.round,
        rng=SeededRandom(5),
    )
    commitment = share_commitment(bad_b, "b", dealer.identity, holder, session)
    changed = replace(box, box=sealed, b_commitment=commitment if commit else box.b_commitment)
    return replace(
        share_keys, shares=tuple(changed if s.peer == holder else s for s in share_keys.shares)
    )


@pytest.mark.parametrize("commit", [True, False], ids=["committed-bad-share", "uncommitted"])
def test_a_dealer_cannot_frame_an_honest_holder(commit: bool) -> None:
    """Client 0 deals holder 1 a bad share of b_0 inside a box that opens. Committed to the
    good share, holder 1 sees the mismatch and names 0 in bad_boxes (it holds nothing of 0):
    the round gives the exact sum. Committed to the bad share, holder 1 cannot tell and
    reveals it; it matches the commitment, so the shares are the dealer's own and the round
    aborts ``bad-dealing`` naming 0, not the holder (before, the server named holder 1)."""
    r = Round("secagg")
    dealer, holder = 0, 1
    replies = r.step(None)
    phase = r.server.state
    for c, client in r.clients.items():
        out = client.receive(_wire(replies[c]))
        if c == dealer:
            out = _deal_badly(out, holder, client, r.session, commit)
        r.server.receive(_wire(out))
    forwards = r.server.on_deadline(phase)
    phase = r.server.state
    for c, client in r.clients.items():
        out = client.receive(_wire(forwards[c]))
        assert out.bad_boxes == ((dealer,) if c == holder and not commit else ())
        r.server.receive(_wire(out))
    requests = r.server.on_deadline(phase)
    for c, client in r.clients.items():
        r.server.receive(_wire(client.receive(_wire(requests[c]))))
    if not commit:
        _close_unmasking(r, None, range(N))
        return
    with pytest.raises(AbortError) as info:
        r.server.on_deadline(r.server.state)
    assert info.value.reason == "bad-dealing"
    assert info.value.culprits == {dealer}


def test_a_server_relabelling_share_boxes_is_caught_by_the_aead() -> None:
    """Boxes are AEAD-bound to sender and receiver: two swapped boxes open nothing, the
    receiver names both senders, holds none of their shares, and the round still gives the
    exact sum (their secrets have enough other holders)."""
    r = Round()
    replies = r.step(None)
    forwards = r.step(replies)
    msg: ForwardedShares = forwards[0]
    a, b = msg.shares[0], msg.shares[1]
    forwards[0] = replace(
        msg, shares=(EncryptedShare(a.peer, b.box), EncryptedShare(b.peer, a.box), *msg.shares[2:])
    )
    requests = r.step(forwards)
    assert r.server._bad_boxes == {0: {a.peer, b.peer}}
    assert set(r.clients[0]._held) == {s.peer for s in msg.shares} - {a.peer, b.peer}
    r.step(requests)
    assert r.server.result.survivors == set(range(N))
    np.testing.assert_array_equal(
        r.server.result.ring_sum, r.proto.quantizer.ring.sum(r.encoded.values(), D)
    )


def _spoil_boxes(share_keys: Any, receivers: set[int]) -> Any:
    """A ShareKeys whose boxes for ``receivers`` are garbage of the right size."""
    boxes = tuple(
        replace(s, box=bytes(len(s.box))) if s.peer in receivers else s for s in share_keys.shares
    )
    return replace(share_keys, shares=boxes)


@pytest.mark.parametrize("spoiled", ["one", "all-but-t-minus-one"])
def test_a_client_whose_share_boxes_do_not_open_cannot_abort_the_honest_receivers(
    spoiled: str,
) -> None:
    """Client 5 sends garbage boxes. Each receiver names it in its MaskedInput and goes on
    without its shares (it masks with it all the same). With one spoiled box the others hold
    enough of 5's shares: the round gives the exact sum with 5 in it. With all but t - 1
    spoiled, 5's self mask can never be rebuilt: the server aborts at MASKED_INPUT close,
    before asking for any share, with reason ``bad-share-boxes`` and culprit 5."""
    r = Round("secaggplus", num_neighbors=4, threshold=3)
    cheat, t = 5, r.proto.threshold
    replies = r.step(None)
    phase = r.server.state
    neighbours = sorted(r.server.graph.neighbours(cheat))
    spoil = set(neighbours[:1] if spoiled == "one" else neighbours[: len(neighbours) - t + 1])
    for c, client in r.clients.items():
        out = client.receive(_wire(replies[c]))
        r.server.receive(_wire(_spoil_boxes(out, spoil) if c == cheat else out))
    forwards = r.server.on_deadline(phase)
    phase = r.server.state
    for c, client in r.clients.items():
        out = client.receive(_wire(forwards[c]))
        assert out.bad_boxes == ((cheat,) if c in spoil else ())
        r.masked[c] = out.vector.copy()
        r.server.receive(_wire(out))
    if spoiled == "one":
        requests = r.server.on_deadline(phase)
        r.step(requests)
        assert r.server.result.survivors == set(range(N))
        np.testing.assert_array_equal(
            r.server.result.ring_sum, r.proto.quantizer.ring.sum(r.encoded.values(), D)
        )
        return
    with pytest.raises(AbortError) as info:
        r.server.on_deadline(phase)
    assert info.value.reason == "bad-share-boxes"
    assert info.value.culprits == {cheat}


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


def test_a_directory_larger_than_num_clients_is_refused() -> None:
    """The quorum is a strict majority of num_clients; among more signers than that two
    quorums could be disjoint, so a client refuses such a directory."""
    r = Round(consistency_check=True)
    key = SigningKey.generate(SeededRandom(1))
    directory = {**r.directory, N: key.public}
    with pytest.raises(LocalProtocolError, match="strict majority"):
        r.proto.client(0, r.session, 0, credentials=Credentials(key, directory))


@pytest.mark.parametrize("field", ["c_pk", "s_pk"])
def test_a_small_order_key_is_refused_where_it_arrives_and_the_round_completes(
    field: str,
) -> None:
    """A client advertising a small-order X25519 key would make every neighbour's agreement
    fail (and abort the round): the server refuses it by name, the client is out of U1, and
    the others get the exact sum. A server that passes such a key on is refused by clients."""
    r = Round("secaggplus", num_neighbors=4, threshold=3)
    cheat = 2
    phase = r.server.state
    for c, client in r.clients.items():
        out = client.start()
        if c == cheat:
            with pytest.raises(WeakKeyError) as info:
                r.server.receive(_wire(replace(out, **{field: SMALL_ORDER_POINT})))
            assert info.value.sender == cheat
            continue
        r.server.receive(_wire(out))
    replies = r.server.on_deadline(phase)
    assert cheat not in replies
    victim = min(replies)
    other = next(k for k in replies[victim].keys)
    forged = replace(
        replies[victim],
        keys=tuple(
            replace(k, **{field: SMALL_ORDER_POINT}) if k is other else k
            for k in replies[victim].keys
        ),
    )
    with pytest.raises(WeakKeyError):
        r.clients[victim].receive(_wire(forged))
    del r.clients[cheat]
    r.step(r.step(r.step(replies)))
    assert r.server.result.survivors == set(range(N)) - {cheat}
    want = r.proto.quantizer.ring.sum((r.encoded[c] for c in r.server.result.survivors), D)
    np.testing.assert_array_equal(r.server.result.ring_sum, want)


def test_a_copied_key_is_refused_even_with_bit_255_flipped() -> None:
    """X25519 ignores bit 255: a key differing from another client's only there is the same
    point, and the server refuses the later sender as a repeat; the owner stays in U1."""
    r = Round("secaggplus", num_neighbors=4, threshold=3)
    first = r.clients[0].start()
    r.server.receive(_wire(first))
    copy = bytearray(first.s_pk)
    copy[31] ^= 0x80
    copier = r.clients[1].start()
    with pytest.raises(RemoteProtocolError, match="repeat") as info:
        r.server.receive(_wire(replace(copier, s_pk=bytes(copy))))
    assert info.value.sender == 1
    r.server.receive(_wire(copier))  # its own keys still go through


def test_a_dealer_whose_shares_rebuild_another_secret_is_named() -> None:
    """Client 0 deals consistent shares of b_0 but publishes an h_0 that is not b_0's: every
    share matches its commitment and they agree, yet they rebuild a b_0 that h_0 refutes. That
    is the dealer's doing: ``bad-dealing`` naming 0, no holder blamed."""
    r = Round("secagg")
    replies = r.step(None)
    phase = r.server.state
    for c, client in r.clients.items():
        out = client.receive(_wire(replies[c]))
        if c == 0:
            out = replace(out, b_commitment=bytes(32))
        r.server.receive(_wire(out))
    requests = r.step(r.server.on_deadline(phase))  # masked inputs
    for c, client in r.clients.items():  # unmask responses: every share as dealt, none refused
        r.server.receive(_wire(client.receive(_wire(requests[c]))))
    with pytest.raises(AbortError) as info:
        r.server.on_deadline(r.server.state)
    assert info.value.reason == "bad-dealing"
    assert info.value.culprits == {0}

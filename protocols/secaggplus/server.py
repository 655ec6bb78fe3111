"""The server machine of SecAgg / SecAgg+ (Bonawitz et al. Fig. 4, server side; Bell et al.).

The server holds one accumulator of d ring elements: masked inputs are added as they arrive,
and masks are removed one PRG stream at a time, so no n x d matrix ever exists. Sets, in the
paper's names: U1 advertised keys, U2 shared keys, U3 sent masked inputs (the survivors whose
inputs are in the sum), U4 signed U3 (consistency check only), U5 sent unmasking shares.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection, Container, Mapping
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from secagg.errors import (
    AbortError,
    CorruptShareError,
    InconsistentSharesError,
    LocalProtocolError,
    RemoteProtocolError,
    RoutingError,
    ShamirError,
    UnknownSenderError,
    WrongLengthError,
)
from secagg.graph import NeighbourGraph, graph_seed
from secagg.primitives.aead import OVERHEAD
from secagg.primitives.shamir import Shamir
from secagg.primitives.signing import verify
from secagg.primitives.x25519 import KeyPair, key_point, validate_public_key
from secagg.protocol import SERVER, AggregateResult, Event, ServerMachine, Session, Terminal
from secagg.ring import Ring
from secagg.wire import Message

from .client import check_id_list, keys_message, survivors_message
from .config import SecAggPlusConfig
from .masks import (
    SHARE_COMMITMENT_BYTES,
    Masker,
    pairwise_key,
    pairwise_sign,
    self_mask_commitment,
    self_mask_key,
    share_commitment,
)
from .messages import (
    AdvertiseKeys,
    EncryptedShare,
    ForwardedShares,
    MaskedInput,
    Phase,
    PublicKeys,
    ServerKeys,
    ShareKeys,
    ShareOf,
    SignatureOf,
    SurvivorsRequest,
    SurvivorsSignature,
    UnmaskRequest,
    UnmaskResponse,
)

__all__ = ["SecAggPlusServer", "server_transitions"]

COMMITMENT_BYTES = 32
"""|h_u|: the commitment to b_u in ShareKeys."""


def server_transitions(consistency_check: bool) -> dict[tuple[Any, Any], Any]:
    """The server's transition table: (phase, event) -> next phase."""
    order = [p for p in Phase if consistency_check or p is not Phase.CONSISTENCY_CHECK]
    table: dict[tuple[Any, Any], Any] = {}
    for here, nxt in zip(order, [*order[1:], Terminal.FINISHED], strict=True):
        table[(here, Event.DEADLINE)] = nxt
        table[(here, Event.ABORT)] = Terminal.ABORTED
    return table


class SecAggPlusServer(ServerMachine[Phase]):
    """The aggregator. Untrusted for privacy; trusted only to deliver messages (liveness).

    Parameters
    ----------
    session:
        The session (id, d, round).
    config:
        The protocol config.
    ring:
        Z_{2^b} of the session.
    directory:
        The clients' signing keys d_v^PK; required with the consistency check (the server
        rejects unsigned or wrongly signed keys early; clients check again themselves).
    roster:
        The ids the neighbour graph is drawn over, when fixed before the round (on chain: the
        registered members, whose keys clients encrypt to before anyone's s_v^PK is known).
        U1 (those that advertise keys) must then be a subset. By default the graph is drawn
        over U1.
    """

    ACCEPTS: ClassVar = {
        Phase.ADVERTISE_KEYS: AdvertiseKeys,
        Phase.SHARE_KEYS: ShareKeys,
        Phase.MASKED_INPUT: MaskedInput,
        Phase.CONSISTENCY_CHECK: SurvivorsSignature,
        Phase.UNMASKING: UnmaskResponse,
    }

    def __init__(
        self,
        session: Session,
        config: SecAggPlusConfig,
        ring: Ring,
        directory: Mapping[int, bytes] | None = None,
        roster: Collection[int] | None = None,
    ) -> None:
        super().__init__(
            Phase.ADVERTISE_KEYS, session, server_transitions(config.consistency_check)
        )
        if config.consistency_check and directory is None:
            raise LocalProtocolError("consistency_check needs the clients' signing-key directory")
        self._config = config
        self._params = config.parameters
        self._ring = ring
        self._directory = directory
        if roster is None and config.consistency_check and directory is not None:
            roster = directory.keys()  # signed: the graph is drawn over the fixed directory
        self._roster = None if roster is None else frozenset(roster)
        self._shamir = Shamir(self._params.threshold)
        self._keys: dict[int, PublicKeys] = {}  # U1
        self._key_points: set[bytes] = set()  # key_point of every key in U1, for repeats
        self._graph: NeighbourGraph | None = None
        self._boxes: dict[int, dict[int, EncryptedShare]] = {}  # U2: sender -> receiver -> box
        self._b_commitments: dict[int, bytes] = {}  # U2: h_u
        self._u2: frozenset[int] = frozenset()
        self._sum = ring.zeros(session.dim)
        self._u3: set[int] = set()
        self._bad_boxes: dict[int, frozenset[int]] = {}  # u -> senders whose box failed at u
        self._survivors: tuple[int, ...] = ()
        self._signatures: dict[int, bytes] = {}  # U4
        self._responders: set[int] = set()  # U5
        # owner -> [(holder's Shamir point, parsed share)], filed as responses arrive
        self._b_shares: dict[int, list[tuple[int, npt.NDArray[np.uint64]]]] = {}
        self._s_shares: dict[int, list[tuple[int, npt.NDArray[np.uint64]]]] = {}

    # -- helpers -------------------------------------------------------------------------------
    @property
    def graph(self) -> NeighbourGraph:
        """The neighbour graph on U1 (after ADVERTISE_KEYS)."""
        if self._graph is None:
            raise LocalProtocolError("the graph is fixed when ADVERTISE_KEYS closes")
        return self._graph

    def _seen(self) -> Container[int]:
        seen: dict[Phase, Container[int]] = {
            Phase.ADVERTISE_KEYS: self._keys,
            Phase.SHARE_KEYS: self._boxes,
            Phase.MASKED_INPUT: self._u3,
            Phase.CONSISTENCY_CHECK: self._signatures,
            Phase.UNMASKING: self._responders,
        }
        return seen[self.state]  # type: ignore[index]

    def _require_member(self, sender: int, members: Any, what: str) -> None:
        if sender not in members:
            raise UnknownSenderError(f"client {sender} is not in {what}", sender=sender)

    def _abort(
        self, reason: str, detail: str, *, culprits: frozenset[int] = frozenset()
    ) -> AbortError:
        self._transition(Event.ABORT)
        return AbortError(reason, detail, culprits=culprits)

    def _header(self) -> tuple[bytes, int, int]:
        return self.session.id, self.session.round, SERVER

    # -- receive -------------------------------------------------------------------------------
    def receive(self, message: Message) -> None:
        self._check_incoming(message, self._seen())
        handler = {
            AdvertiseKeys: self._on_keys,
            ShareKeys: self._on_shares,
            MaskedInput: self._on_masked_input,
            SurvivorsSignature: self._on_signature,
            UnmaskResponse: self._on_unmask,
        }[type(message)]
        handler(message)  # type: ignore[operator]

    def _on_keys(self, msg: AdvertiseKeys) -> None:
        u = msg.sender
        if len(self._keys) >= self._config.num_clients:
            raise UnknownSenderError(
                f"already {self._config.num_clients} clients (num_clients); {u} is one too many",
                sender=u,
            )
        if self._roster is not None:
            self._require_member(u, self._roster, "the roster")
        if len(msg.c_pk) != 32 or len(msg.s_pk) != 32 or key_point(msg.c_pk) == key_point(msg.s_pk):
            raise RemoteProtocolError("c_pk and s_pk must be two distinct 32-byte keys", sender=u)
        for key in (msg.c_pk, msg.s_pk):  # a small-order key would fail every neighbour's
            validate_public_key(key, sender=u)  # agreement: refuse it before anyone uses it
        points = {key_point(msg.c_pk), key_point(msg.s_pk)}
        if points & self._key_points:
            raise RemoteProtocolError("public keys repeat another client's keys", sender=u)
        if self._directory is not None:
            self._require_member(u, self._directory, "the signing-key directory")
            verify(self._directory[u], keys_message(msg, u, self.session), msg.signature, sender=u)
        self._keys[u] = PublicKeys(u, msg.c_pk, msg.s_pk, msg.signature)
        self._key_points |= points

    def _on_shares(self, msg: ShareKeys) -> None:
        u = msg.sender
        self._require_member(u, self._keys, "U1 (it advertised no keys)")
        receivers = [share.peer for share in msg.shares]
        # one box per neighbour in U1; with a roster fixed in advance (on chain), boxes for
        # roster neighbours that then advertised no keys are allowed and never forwarded
        neighbours = self.graph.neighbours(u)
        required = neighbours & self._keys.keys()
        if len(set(receivers)) != len(receivers) or not required <= set(receivers) <= neighbours:
            raise RoutingError(
                "a ShareKeys message needs exactly one box per neighbour in U1", sender=u
            )
        size = OVERHEAD + 2 * self._shamir.share_bytes
        if any(len(share.box) != size for share in msg.shares):
            raise WrongLengthError(f"every share box is {size} bytes", sender=u)
        if len(msg.b_commitment) != COMMITMENT_BYTES:
            raise WrongLengthError(f"the commitment to b_u is {COMMITMENT_BYTES} bytes", sender=u)
        n = SHARE_COMMITMENT_BYTES
        if any(len(sh.s_commitment) != n or len(sh.b_commitment) != n for sh in msg.shares):
            raise WrongLengthError(f"every share commitment is {n} bytes", sender=u)
        self._boxes[u] = {share.peer: share for share in msg.shares}
        self._b_commitments[u] = msg.b_commitment

    def _on_masked_input(self, msg: MaskedInput) -> None:
        u = msg.sender
        self._require_member(
            u, self._u2, "U2 (it shared no keys, or too few of its neighbours did)"
        )
        self._ring.check(msg.vector, self.session.dim, sender=u)
        bad = check_id_list(msg.bad_boxes, "the senders of bad share boxes")
        if not bad <= self.graph.neighbours(u) & self._u2:
            raise RoutingError(
                f"bad share boxes named from {sorted(bad)}, but only N(u) ∩ U2 sent u boxes",
                sender=u,
            )
        self._ring.add_(self._sum, msg.vector)
        self._u3.add(u)
        if bad:
            self._bad_boxes[u] = bad

    def _on_signature(self, msg: SurvivorsSignature) -> None:
        u = msg.sender
        self._require_member(u, self._survivors, "U3")
        assert self._directory is not None
        verify(
            self._directory[u],
            survivors_message(self._survivors, self.session),
            msg.signature,
            sender=u,
        )
        self._signatures[u] = msg.signature

    def _on_unmask(self, msg: UnmaskResponse) -> None:
        u = msg.sender
        asked = self._signatures if self._config.consistency_check else self._survivors
        self._require_member(u, asked, "the clients asked to unmask")
        held = (self.graph.neighbours(u) & self._u2) - self._bad_boxes.get(u, frozenset())
        expected_b = sorted(held & self._u3)
        expected_s = sorted(held - self._u3)
        if [s.owner for s in msg.self_mask_shares] != expected_b or [
            s.owner for s in msg.key_shares
        ] != expected_s:
            raise RoutingError(
                f"expected b-shares of {expected_b} and s-shares of {expected_s}", sender=u
            )
        for kind, revealed in (("b", msg.self_mask_shares), ("s", msg.key_shares)):
            for one in revealed:
                self._check_committed(one, kind, u)
        parsed = [
            [(share.owner, self._parse_share(share, u)) for share in shares]
            for shares in (msg.self_mask_shares, msg.key_shares)
        ]
        for filed, shares in zip((self._b_shares, self._s_shares), parsed, strict=True):
            for owner, share in shares:
                filed.setdefault(owner, []).append((u + 1, share))
        self._responders.add(u)

    def _check_committed(self, share: ShareOf, kind: str, holder: int) -> None:
        """The share must be the one its dealer committed to for this holder in ShareKeys."""
        dealt = self._boxes[share.owner][holder]
        committed = dealt.s_commitment if kind == "s" else dealt.b_commitment
        got = share_commitment(share.share, kind, share.owner, holder, self.session)
        if not hmac.compare_digest(got, committed):
            raise CorruptShareError(
                f"client {holder}'s share of client {share.owner}'s "
                f"{'s_v^SK' if kind == 's' else 'b_v'} is not the one that client dealt it",
                sender=holder,
            )

    def _parse_share(self, share: ShareOf, holder: int) -> npt.NDArray[np.uint64]:
        try:
            return self._shamir.share_from_bytes(share.share)
        except ShamirError as exc:
            raise WrongLengthError(
                f"malformed share of {share.owner}: {exc}", sender=holder
            ) from exc

    # -- deadlines -----------------------------------------------------------------------------
    def on_deadline(self, phase: Any) -> dict[int, Message]:
        self._check_open_phase(phase)
        close = {
            Phase.ADVERTISE_KEYS: self._close_keys,
            Phase.SHARE_KEYS: self._close_shares,
            Phase.MASKED_INPUT: self._close_inputs,
            Phase.CONSISTENCY_CHECK: self._close_signatures,
            Phase.UNMASKING: self._close_unmasking,
        }[phase]
        replies = close()
        self._transition(Event.DEADLINE)
        return replies

    def _close_keys(self) -> dict[int, Message]:
        t, m = self._shamir.threshold, self._config.survivors_needed
        if len(self._keys) < max(m, t + 1):
            raise self._abort(
                "too-few-clients",
                f"{len(self._keys)} clients advertised keys, at least {max(m, t + 1)} needed",
            )
        seed = graph_seed(self.session.id, self.session.round)
        roster = self._keys if self._roster is None else self._roster
        self._graph = NeighbourGraph.shared(roster, self._params.num_neighbors, seed)
        return {
            u: ServerKeys(
                *self._header(),
                self._graph.roster,
                tuple(self._keys[v] for v in sorted(self._graph.neighbours(u) & set(self._keys))),
            )
            for u in sorted(self._keys)
        }

    def _close_shares(self) -> dict[int, Message]:
        # U2: clients that shared keys, as long as at least t of their neighbours did too
        # (otherwise their self mask could never be removed). Removing one can drop another
        # below t, so iterate to the fixed point.
        t = self._shamir.threshold
        u2 = set(self._boxes)
        while True:
            short = {u for u in u2 if len(self.graph.neighbours(u) & u2) < t}
            if not short:
                break
            u2 -= short
        if len(u2) < self._config.survivors_needed:
            raise self._abort(
                "too-few-survivors",
                f"{len(u2)} clients shared keys with enough live neighbours, "
                f"{self._config.survivors_needed} needed",
            )
        self._u2 = frozenset(u2)
        return {
            v: ForwardedShares(
                *self._header(),
                tuple(
                    replace(self._boxes[u][v], peer=u)
                    for u in sorted(self.graph.neighbours(v) & self._u2)
                ),
            )
            for v in sorted(self._u2)
        }

    def _close_inputs(self) -> dict[int, Message]:
        if len(self._u3) < self._config.survivors_needed:
            raise self._abort(
                "too-few-survivors",
                f"{len(self._u3)} masked inputs arrived, {self._config.survivors_needed} needed",
            )
        self._survivors = tuple(sorted(self._u3))
        self._check_dealers()
        if self._config.consistency_check:
            request: Message = SurvivorsRequest(*self._header(), self._survivors)
        else:
            request = UnmaskRequest(*self._header(), self._survivors, ())
        return {u: request for u in self._survivors}

    def _check_dealers(self) -> None:
        """Abort now, naming the dealer, when share boxes that failed at their receivers leave
        a secret that will be needed with fewer than t possible holders in U3 (the only ones
        asked to unmask): b_v for v in U3, s_v^SK for v in U2 minus U3 that some survivor masked
        with. No share has been asked for yet."""
        t = self._shamir.threshold
        spoiled = {v for bad in self._bad_boxes.values() for v in bad}
        short: dict[int, str] = {}
        for v in sorted(spoiled):
            neighbours = self.graph.neighbours(v)
            if v not in self._u3 and not neighbours & self._u3:
                continue  # dropped, and nobody's input holds a mask with it
            holders = {
                w for w in neighbours & self._u3 if v not in self._bad_boxes.get(w, frozenset())
            }
            if len(holders) < t:
                complained = sorted(w for w, bad in self._bad_boxes.items() if v in bad)
                short[v] = (
                    f"client {v}'s share boxes did not open at {complained}: "
                    f"{len(holders)} survivors hold its shares, t={t} needed"
                )
        if short:
            raise self._abort(
                "bad-share-boxes", "; ".join(short.values()), culprits=frozenset(short)
            )

    def _close_signatures(self) -> dict[int, Message]:
        quorum = self._config.signature_quorum
        if len(self._signatures) < quorum:
            raise self._abort(
                "too-few-signatures",
                f"{len(self._signatures)} clients signed the survivor set, {quorum} needed",
            )
        signatures = tuple(SignatureOf(u, sig) for u, sig in sorted(self._signatures.items()))
        request = UnmaskRequest(*self._header(), self._survivors, signatures)
        return {u: request for u in sorted(self._signatures)}

    def _close_unmasking(self) -> dict[int, Message]:
        survivors = self._survivors
        dropped = sorted(
            v for v in self._u2 - self._u3 if self.graph.neighbours(v) & self._u3
        )  # shared keys, then vanished, and some survivor masked with them
        b_seeds = self._reconstruct(
            survivors,
            self._b_shares,
            "self mask b_v",
            lambda v, b: hmac.compare_digest(
                self_mask_commitment(b, v, self.session), self._b_commitments[v]
            ),
        )
        s_keys = self._reconstruct(
            dropped,
            self._s_shares,
            "masking key s_v^SK",
            lambda v, s: KeyPair.from_private_bytes(s).public == self._keys[v].s_pk,
        )
        pairs: list[tuple[bytes, int]] = []
        for v in dropped:
            keypair = KeyPair.from_private_bytes(s_keys[v])  # 32 bytes: Shamir fixes the length
            for w in sorted(self.graph.neighbours(v) & self._u3):
                shared = keypair.agree(self._keys[w].s_pk, sender=w)
                # y_w holds Delta_{w,v} PRG(s_{w,v}); subtract it.
                pairs.append((pairwise_key(shared, w, v, self.session), -pairwise_sign(w, v)))
        self_masks = [(self_mask_key(b_seeds[v], self.session), -1) for v in survivors]
        Masker(self._ring, self.session.dim).apply_all(self._sum, self_masks + pairs)
        self._result = AggregateResult(self._sum, frozenset(survivors))
        return {}

    def _reconstruct(
        self,
        owners: Any,
        shares: dict[int, list[tuple[int, npt.NDArray[np.uint64]]]],
        what: str,
        matches: Callable[[int, bytes], bool],
    ) -> dict[int, bytes]:
        """Rebuild each owner's secret and check it against what the owner published
        (``matches``: h_v for b_v, s_v^PK for s_v^SK).

        Every share here matched the commitment its dealer published for that holder (a
        holder that revealed anything else was rejected with :class:`CorruptShareError`), so
        shares that disagree, or rebuild a value that does not match, are the dealer's doing:
        the round aborts ``bad-dealing`` naming it.
        """
        t = self._shamir.threshold
        out: dict[int, bytes] = {}
        for v in owners:
            got = shares.get(v, [])
            if len(got) < t:
                complained = any(v in bad for bad in self._bad_boxes.values())
                raise self._abort(
                    "too-few-shares",
                    f"{len(got)} shares of client {v}'s {what} arrived, t={t} needed",
                    culprits=frozenset({v}) if complained else frozenset(),
                )
            xs = [x for x, _ in got]
            ys = np.stack([share for _, share in got])[:, None, :]
            try:
                secret = self._shamir.reconstruct(xs, ys)[0]
            except InconsistentSharesError as exc:
                raise self._abort(
                    "bad-dealing",
                    f"client {v} dealt shares of its {what} that are not on one polynomial: {exc}",
                    culprits=frozenset({v}),
                ) from exc
            if not matches(v, secret):
                raise self._abort(
                    "bad-dealing",
                    f"client {v}'s committed shares rebuild a {what} that does not match what "
                    "it published",
                    culprits=frozenset({v}),
                )
            out[v] = secret
        return out

"""The client machine of SecAgg / SecAgg+ (Bonawitz et al. Fig. 4, user side; Bell et al.).

Every handler validates the whole server message first and mutates last, so a rejected
message (a :class:`~secagg.errors.RemoteProtocolError`) leaves the machine as it was.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

from secagg.errors import (
    AbortError,
    AuthenticationError,
    LocalProtocolError,
    OutOfPhaseError,
    RefusedRequestError,
    RemoteProtocolError,
    RoutingError,
    UnknownSenderError,
    WrongSessionError,
)
from secagg.graph import NeighbourGraph, graph_seed
from secagg.primitives.aead import AeadKey
from secagg.primitives.shamir import Shamir
from secagg.primitives.signing import SignedPurpose, signed_message, verify
from secagg.primitives.x25519 import KeyPair, key_point, validate_public_key
from secagg.protocol import SERVER, ClientMachine, Credentials, Event, Session, Terminal
from secagg.quantize import Encoder
from secagg.randomness import RandomSource
from secagg.ring import RingVector
from secagg.wire import Message

from .config import SecAggPlusConfig
from .masks import (
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
    SurvivorsRequest,
    SurvivorsSignature,
    UnmaskRequest,
    UnmaskResponse,
)

__all__ = ["SecAggPlusClient", "client_transitions"]

SEED_BYTES = 32


def client_transitions(consistency_check: bool) -> dict[tuple[Any, Any], Any]:
    """The client's transition table: (state, event or server message type) -> next state."""
    after_input = Phase.CONSISTENCY_CHECK if consistency_check else Phase.UNMASKING
    table: dict[tuple[Any, Any], Any] = {
        (Phase.ADVERTISE_KEYS, Event.START): Phase.SHARE_KEYS,
        (Phase.SHARE_KEYS, ServerKeys): Phase.MASKED_INPUT,
        (Phase.MASKED_INPUT, ForwardedShares): after_input,
        (Phase.UNMASKING, UnmaskRequest): Terminal.FINISHED,
    }
    if consistency_check:
        table[(Phase.CONSISTENCY_CHECK, SurvivorsRequest)] = Phase.UNMASKING
    for phase in Phase:
        table[(phase, Event.ABORT)] = Terminal.ABORTED
    return table


def check_id_list(ids: tuple[int, ...], what: str) -> frozenset[int]:
    """A strictly increasing list of ids (the canonical form on the wire) as a set."""
    if any(a >= b for a, b in pairwise(ids)):
        raise RemoteProtocolError(f"{what} must be strictly increasing client ids")
    return frozenset(ids)


def keys_message(keys: PublicKeys | AdvertiseKeys, client: int, session: Session) -> bytes:
    """What sigma_u signs: c_u^PK || s_u^PK || u, bound to the session and round."""
    return signed_message(
        SignedPurpose.ADVERTISED_KEYS,
        session=session.id,
        round=session.round,
        fields=(keys.c_pk, keys.s_pk, client),
    )


def survivors_message(survivors: tuple[int, ...], session: Session) -> bytes:
    """What a client signs in the consistency check: the sorted survivor set U3."""
    return signed_message(
        SignedPurpose.SURVIVORS, session=session.id, round=session.round, fields=survivors
    )


class SecAggPlusClient(ClientMachine[Phase]):
    """Client u. Holds c_u, s_u (X25519), b_u, and the shares its neighbours sent it.

    Parameters
    ----------
    identity:
        u, the client id (its Shamir point is u + 1).
    session:
        The session (id, d, round).
    config:
        The protocol config (t, k, consistency check, min survivors).
    quantizer:
        Encodes the update into Z_{2^b}.
    rng:
        Source of keys, b_u, Shamir coefficients, AEAD nonces and the quantization dither.
    credentials:
        Signing key and directory; required when ``config.consistency_check``.
    agreement_key:
        c_u, when it is long-term and registered elsewhere (on chain: the key registry);
        by default a fresh pair per round. s_u is always fresh: its private half is
        reconstructed when u drops out.

    Notes
    -----
    On chain, AdvertiseKeys is split: c_v^PK comes from the key registry before the round and
    s_v^PK arrives together with v's share bundle. The driver then hands :meth:`receive` a
    ServerKeys whose ``s_pk`` fields are empty, and the neighbours' s_v^PK through
    :meth:`set_masking_keys` before the ForwardedShares.
    """

    def __init__(
        self,
        identity: int,
        session: Session,
        config: SecAggPlusConfig,
        quantizer: Encoder,
        rng: RandomSource,
        credentials: Credentials | None = None,
        agreement_key: KeyPair | None = None,
    ) -> None:
        super().__init__(
            Phase.ADVERTISE_KEYS, identity, session, client_transitions(config.consistency_check)
        )
        if config.consistency_check and credentials is None:
            raise LocalProtocolError("consistency_check needs the client's credentials")
        if config.consistency_check and credentials is not None:
            if len(credentials.directory) > config.num_clients:
                raise LocalProtocolError(
                    f"the signing-key directory lists {len(credentials.directory)} clients, "
                    f"more than num_clients={config.num_clients}: the signature quorum, a "
                    "strict majority of num_clients, would no longer be unique"
                )
        self._config = config
        self._params = config.parameters
        self._quantizer = quantizer
        self._ring = quantizer.ring
        self._credentials = credentials
        self._rng = rng
        self._shamir = Shamir(self._params.threshold)
        self._c = agreement_key if agreement_key is not None else KeyPair.generate(rng.fork("c"))
        self._s = KeyPair.generate(rng.fork("s"))
        self._encoded: RingVector | None = None
        self._peers: dict[int, PublicKeys] = {}  # N(u) within U1, with their keys
        self._aeads: dict[int, AeadKey] = {}  # c_{u,v} per neighbour, derived in ShareKeys
        self._b_seed: bytes | None = None
        # N(u) ∩ U2 as u sees it: v -> (share of s_v^SK, share of b_v) that v sent u
        self._held: dict[int, tuple[bytes, bytes]] = {}
        self._partners: frozenset[int] = frozenset()  # N(u) ∩ U2: whom y_u is masked with
        self._survivors: tuple[int, ...] | None = None  # the U3 u signed
        self._revealed: dict[int, str] = {}  # owner -> "b" | "s": never both for one owner

    # -- local input ---------------------------------------------------------------------------
    def set_input(self, vector: Any, *, weight: float = 1.0) -> None:
        """Quantize the update; allowed until the client masks it (the MASKED_INPUT phase)."""
        if self.state not in (Phase.ADVERTISE_KEYS, Phase.SHARE_KEYS, Phase.MASKED_INPUT):
            raise LocalProtocolError(f"the input is already masked and sent (state {self.state})")
        if len(vector) != self.session.dim:
            raise LocalProtocolError(
                f"update has {len(vector)} entries, the session's dim is {self.session.dim}"
            )
        # The dither key is the first draw from rng itself (everything else uses forks), as
        # in ``plain``: for one seed, every protocol encodes a client's update identically.
        self._encoded = self._quantizer.quantize(vector, self._rng, weight=weight)

    # -- helpers -------------------------------------------------------------------------------
    def _check_header(self, message: Message) -> None:
        if message.sender != SERVER:
            raise UnknownSenderError(
                f"client messages come from the server, not {message.sender}",
                sender=message.sender,
            )
        if message.session != self.session.id or message.round != self.session.round:
            raise WrongSessionError("message is bound to another session or round")

    def _abort(self, reason: str, detail: str) -> AbortError:
        self._transition(Event.ABORT)
        return AbortError(reason, detail)

    # -- phases --------------------------------------------------------------------------------
    def start(self) -> Message:
        """AdvertiseKeys: send (c_u^PK, s_u^PK) and, with credentials, sigma_u."""
        self._next_state(Event.START)
        header = (self.session.id, self.session.round, self.identity)
        out = AdvertiseKeys(*header, self._c.public, self._s.public, b"")
        if self._credentials is not None:
            signature = self._credentials.signing_key.sign(
                keys_message(out, self.identity, self.session)
            )
            out = AdvertiseKeys(*header, self._c.public, self._s.public, signature)
        self._transition(Event.START)
        return out

    def receive(self, message: Message) -> Message | None:
        """Handle the server's message of the current phase; return this client's reply."""
        self._check_header(message)
        try:
            self._next_state(type(message))
        except LocalProtocolError:
            raise OutOfPhaseError(
                f"{type(message).__name__} is not expected in {self.state}", sender=SERVER
            ) from None
        handler = {
            ServerKeys: self._share_keys,
            ForwardedShares: self._masked_input,
            SurvivorsRequest: self._consistency_check,
            UnmaskRequest: self._unmask,
        }[type(message)]
        reply: Message = handler(message)  # type: ignore[operator]
        self._transition(type(message))
        return reply

    def _share_keys(self, msg: ServerKeys) -> ShareKeys:
        """Round 1: check the neighbours' keys, share s_u^SK and b_u among N(u)."""
        roster = check_id_list(msg.roster, "the roster")
        if self.identity not in roster:
            raise RefusedRequestError(f"client {self.identity} is not on the roster", sender=SERVER)
        if self._credentials is not None and msg.roster != tuple(
            sorted(self._credentials.directory)
        ):
            # signed mode: the graph is drawn over the fixed directory, so a server cannot pack
            # this client's neighbourhood by showing it a roster of its choosing
            raise RefusedRequestError(
                "the roster is not the directory of signing keys", sender=SERVER
            )
        graph = NeighbourGraph.shared(
            roster, self._params.num_neighbors, graph_seed(self.session.id, self.session.round)
        )
        all_neighbours = graph.neighbours(self.identity)
        got = [k.client for k in msg.keys]
        # neighbours whose keys are missing are out of U1 (they advertised none, or bad ones)
        check_id_list(tuple(got), "the neighbours' keys")
        neighbours = all_neighbours & frozenset(got)
        if len(neighbours) != len(got):
            raise RoutingError(
                f"keys of non-neighbours {sorted(set(got) - all_neighbours)}", sender=SERVER
            )
        deferred = [k.client for k in msg.keys if k.s_pk == b""]
        if deferred and (len(deferred) != len(msg.keys) or self._credentials is not None):
            raise RemoteProtocolError(
                "masking keys may be deferred only for every neighbour, and never with signatures"
            )
        seen = {key_point(self._c.public), key_point(self._s.public)}
        for keys in msg.keys:
            if len(keys.c_pk) != 32 or len(keys.s_pk) not in ((0,) if deferred else (32,)):
                raise RemoteProtocolError(f"client {keys.client}'s keys are not 32 bytes")
            c_point, s_point = key_point(keys.c_pk), key_point(keys.s_pk)
            if c_point in seen or s_point in seen or c_point == s_point:
                raise RemoteProtocolError(f"client {keys.client}'s keys repeat other keys")
            for key in (keys.c_pk, keys.s_pk) if keys.s_pk else (keys.c_pk,):
                validate_public_key(key, sender=SERVER)  # the server let a weak key through
            seen |= {c_point, s_point} - {b""}
            if self._credentials is not None:
                directory = self._credentials.directory
                if keys.client not in directory:
                    raise UnknownSenderError(f"client {keys.client} is not in the directory")
                verify(
                    directory[keys.client],
                    keys_message(keys, keys.client, self.session),
                    keys.signature,
                    sender=keys.client,
                )
        if len(neighbours) < self._shamir.threshold:
            raise self._abort(
                "too-few-neighbours",
                f"{len(neighbours)} neighbours in U1, threshold t={self._shamir.threshold}",
            )
        b_seed = self._rng.fork("b").random_bytes(SEED_BYTES)
        holders = sorted(neighbours)
        shares = self._shamir.split(
            [self._s.private_bytes(), b_seed], [v + 1 for v in holders], self._rng.fork("shamir")
        )
        boxes = []
        nonce_rng = self._rng.fork("nonces")
        for i, keys in enumerate(msg.keys):
            s_share = self._shamir.share_to_bytes(shares[i, 0])
            b_share = self._shamir.share_to_bytes(shares[i, 1])
            plaintext = s_share + b_share
            aead = AeadKey.from_shared_secret(
                self._c.agree(keys.c_pk, sender=keys.client),
                session=self.session.id,
                round=self.session.round,
            )
            self._aeads[keys.client] = aead  # c_{u,v} opens v's box to u too: agree once
            box = aead.seal(
                plaintext,
                sender=self.identity,
                receiver=keys.client,
                session=self.session.id,
                round=self.session.round,
                rng=nonce_rng,
            )
            u, v = self.identity, keys.client
            boxes.append(
                EncryptedShare(
                    v,
                    box,
                    share_commitment(s_share, "s", u, v, self.session),
                    share_commitment(b_share, "b", u, v, self.session),
                )
            )
        self._peers = {keys.client: keys for keys in msg.keys}
        self._b_seed = b_seed
        commitment = self_mask_commitment(b_seed, self.identity, self.session)
        return ShareKeys(
            self.session.id, self.session.round, self.identity, tuple(boxes), commitment
        )

    def set_masking_keys(self, keys: Mapping[int, bytes]) -> None:
        """Learn neighbours' s_v^PK after ServerKeys (on chain: from their share postings).

        Only keys the ServerKeys deferred (empty) can be set, each once; a neighbour whose
        key never arrives cannot be in this client's N(u) ∩ U2.

        Raises
        ------
        LocalProtocolError
            Outside MASKED_INPUT, for a non-neighbour, or a key already known.
        RemoteProtocolError
            A key that is not 32 bytes or repeats another key.
        """
        if self.state is not Phase.MASKED_INPUT:
            raise LocalProtocolError(f"masking keys are set in MASKED_INPUT, not {self.state}")
        taken = {key_point(k) for p in self._peers.values() for k in (p.c_pk, p.s_pk)}
        taken |= {key_point(self._c.public), key_point(self._s.public)}
        for v, s_pk in keys.items():
            peer = self._peers.get(v)
            if peer is None or peer.s_pk != b"":
                raise LocalProtocolError(f"client {v}'s masking key is not awaited")
            if len(s_pk) != 32 or key_point(s_pk) in taken:
                raise RemoteProtocolError(
                    f"client {v}'s masking key is not a fresh 32-byte key", sender=v
                )
            validate_public_key(s_pk, sender=v)
            taken.add(key_point(s_pk))
        for v, s_pk in keys.items():
            peer = self._peers[v]
            self._peers[v] = PublicKeys(v, peer.c_pk, s_pk, peer.signature)

    def _masked_input(self, msg: ForwardedShares) -> MaskedInput:
        """Round 2: decrypt the shares held for N(u) ∩ U2, send y_u."""
        if self._encoded is None:
            raise LocalProtocolError("set_input() must be called before the masked-input phase")
        senders = [share.peer for share in msg.shares]
        if len(set(senders)) != len(senders) or not set(senders) <= set(self._peers):
            raise RoutingError("forwarded shares must come once each from this client's neighbours")
        unkeyed = sorted(v for v in senders if self._peers[v].s_pk == b"")
        if unkeyed:
            raise RoutingError(f"no masking key s_v^PK for senders {unkeyed}", sender=SERVER)
        t = self._shamir.threshold
        if len(senders) < t:
            raise RefusedRequestError(
                f"only {len(senders)} neighbours shared keys, fewer than t={t}", sender=SERVER
            )
        held = {}
        bad = []  # senders whose box fails here: named to the server, their shares not held
        width = self._shamir.share_bytes
        for share in msg.shares:
            try:
                plaintext = self._open(share)
            except AuthenticationError:
                bad.append(share.peer)
                continue
            pair = (plaintext[:width], plaintext[width:])
            if len(plaintext) != 2 * width or not self._as_committed(share, *pair):
                bad.append(share.peer)
                continue
            held[share.peer] = pair
        assert self._b_seed is not None
        u = self.identity
        masks = [(self_mask_key(self._b_seed, self.session), +1)]
        for v in sorted(senders):  # every agreement is checked before the input is touched
            shared = self._s.agree(self._peers[v].s_pk, sender=v)
            masks.append((pairwise_key(shared, u, v, self.session), pairwise_sign(u, v)))
        y = self._encoded  # masked in place: the plain encoding never exists outside y
        Masker(self._ring, self.session.dim, like=y).apply_all(y, masks)
        vector = self._ring.to_numpy(y)  # only the masked vector leaves the device
        self._held = held
        self._partners = frozenset(senders)
        self._encoded = None
        header = (self.session.id, self.session.round, self.identity)
        return MaskedInput(*header, vector, tuple(sorted(bad)))

    def _as_committed(self, share: EncryptedShare, s_share: bytes, b_share: bytes) -> bool:
        """Whether the opened shares are the ones their dealer committed to in public: a share
        the dealer did not commit to is a bad box (and would otherwise frame this holder)."""
        v, u = share.peer, self.identity
        return hmac.compare_digest(
            share_commitment(s_share, "s", v, u, self.session), share.s_commitment
        ) and hmac.compare_digest(
            share_commitment(b_share, "b", v, u, self.session), share.b_commitment
        )

    def _open(self, share: EncryptedShare) -> bytes:
        return self._aeads[share.peer].open(
            share.box,
            sender=share.peer,
            receiver=self.identity,
            session=self.session.id,
            round=self.session.round,
        )

    def _check_survivors(self, survivors: tuple[int, ...]) -> frozenset[int]:
        """The checks on U3 an honest client makes before signing or unmasking."""
        u3 = check_id_list(survivors, "the survivor set")
        if self.identity not in u3:
            raise RefusedRequestError(
                f"the survivor set omits client {self.identity}, which sent its masked input",
                sender=SERVER,
            )
        if len(u3) < self._config.survivors_needed:
            raise RefusedRequestError(
                f"refusing to unmask a sum of {len(u3)} inputs "
                f"(at least {self._config.survivors_needed} needed)",
                sender=SERVER,
            )
        strangers = (u3 & set(self._peers)) - self._partners
        if strangers:
            raise RefusedRequestError(
                f"neighbours {sorted(strangers)} are listed as survivors but never shared keys "
                "with this client",
                sender=SERVER,
            )
        return u3

    def _consistency_check(self, msg: SurvivorsRequest) -> SurvivorsSignature:
        """Round 3: sign U3."""
        self._check_survivors(msg.survivors)
        assert self._credentials is not None
        signature = self._credentials.signing_key.sign(
            survivors_message(msg.survivors, self.session)
        )
        self._survivors = msg.survivors
        return SurvivorsSignature(self.session.id, self.session.round, self.identity, signature)

    def _unmask(self, msg: UnmaskRequest) -> UnmaskResponse:
        """Round 4: reveal b_v shares for surviving neighbours, s_v^SK shares for the others."""
        u3 = self._check_survivors(msg.survivors)
        if self._config.consistency_check:
            self._check_signatures(msg)
        reveal: dict[int, str] = {v: ("b" if v in u3 else "s") for v in self._held}
        both = [v for v, kind in reveal.items() if self._revealed.get(v, kind) != kind]
        if both:
            raise RefusedRequestError(
                f"revealing shares of {both} now would give out both b and s_SK shares",
                sender=SERVER,
            )
        self_mask = tuple(ShareOf(v, self._held[v][1]) for v in sorted(reveal) if v in u3)
        keys = tuple(ShareOf(v, self._held[v][0]) for v in sorted(reveal) if v not in u3)
        self._revealed.update(reveal)
        return UnmaskResponse(self.session.id, self.session.round, self.identity, self_mask, keys)

    def _check_signatures(self, msg: UnmaskRequest) -> None:
        if msg.survivors != self._survivors:
            raise RefusedRequestError(
                "the survivor set differs from the one this client signed", sender=SERVER
            )
        assert self._credentials is not None
        directory: Mapping[int, bytes] = self._credentials.directory
        signers = [s.client for s in msg.signatures]
        if len(set(signers)) != len(signers) or not set(signers) <= set(msg.survivors):
            raise RefusedRequestError(
                "signatures must come once each from survivors", sender=SERVER
            )
        quorum = self._config.signature_quorum
        if len(signers) < quorum:
            raise RefusedRequestError(
                f"{len(signers)} signatures of the survivor set, {quorum} needed (more than "
                "(n + floor(gamma n)) / 2: only then is it the round's one survivor set)",
                sender=SERVER,
            )
        signed = survivors_message(msg.survivors, self.session)
        for s in msg.signatures:
            if s.client not in directory:
                raise UnknownSenderError(f"signer {s.client} is not in the directory")
            verify(directory[s.client], signed, s.signature, sender=s.client)

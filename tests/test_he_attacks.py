"""Attacks on the HE protocols that must fail: malformed and out-of-range ciphertexts from
participants, an aggregator fishing for single decryptions, bad answers from decryptors.
Every message crosses the wire codec."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from secagg import protocols, wire
from secagg.errors import (
    AbortError,
    CiphertextError,
    DuplicateMessageError,
    OutOfPhaseError,
    RefusedRequestError,
    UnknownSenderError,
    WrongLengthError,
    WrongRingError,
    WrongSessionError,
)
from secagg.protocol import KEY_HOLDER, SERVER, Session
from secagg.protocols.he import DecryptedSum, EncryptedInput, EncryptedSum, Phase
from secagg.randomness import SeededRandom

HE = ["ckks", "paillier"]
D = 50


def _wire(msg: Any) -> Any:
    return wire.decode(wire.encode(msg))


class HERound:
    """Honest participants, aggregator and key holder, driven by hand."""

    def __init__(self, name: str, n: int = 4, **kw: Any) -> None:
        self.proto = protocols.get(name, num_clients=n, **kw)
        self.keys = self.proto.keygen(0)
        self.session = Session(b"s" * 32, D)
        self.server = self.proto.server(self.session, 1, keys=self.keys.public_only())
        participant = self.proto.participant_keys(self.keys)
        self.clients = {
            u: self.proto.client(u, self.session, 10 + u, keys=participant) for u in range(n)
        }
        self.holder = self.proto.key_holder(self.session, self.keys)
        rng = np.random.default_rng(0)
        self.inputs = {u: rng.uniform(-1, 1, D) for u in range(n)}
        self.sent: dict[int, EncryptedInput] = {}

    def input(self, u: int) -> EncryptedInput:
        self.clients[u].set_input(self.inputs[u])
        msg: EncryptedInput = _wire(self.clients[u].start())
        self.sent[u] = msg
        return msg

    def send_all(self, ids: Any = None) -> None:
        for u in self.clients if ids is None else ids:
            self.server.receive(self.input(u))

    def ciphertext_of(self, values: np.ndarray) -> tuple[bytes, ...]:
        """What a malicious participant encrypts: raw scheme values, no clipping."""
        scheme = self.proto.scheme(self.keys.public_only())
        return scheme.encrypt(values, SeededRandom(99))


# --- malicious participants ------------------------------------------------------------------
@pytest.mark.parametrize("name", HE)
def test_malformed_ciphertexts_are_rejected_and_the_round_goes_on(name: str) -> None:
    r = HERound(name)
    good = r.input(0)
    bad_chunks = [
        (),  # no ciphertext
        good.chunks + good.chunks,  # too many
        (b"\x00" * len(good.chunks[0]),),  # zeros: not a ciphertext
        (b"garbage",),
        (good.chunks[0][:-7],),  # truncated
    ]
    for i, chunks in enumerate(bad_chunks):
        with pytest.raises(CiphertextError) as info:
            r.server.receive(_wire(replace(good, sender=1, chunks=chunks)))
        assert info.value.sender == 1, i
    r.server.receive(good)
    r.send_all([1, 2, 3])  # client 1 can still send its real input: nothing was recorded
    out = r.server.on_deadline(Phase.INPUT)
    reply = (r.holder or r.clients[0]).receive(_wire(next(iter(out.values()))))
    r.server.receive(_wire(reply))
    r.server.on_deadline(Phase.DECRYPT)
    expected = sum(r.inputs.values())
    total = r.proto.decode(r.server.result.ring_sum, expected)
    np.testing.assert_allclose(total, expected, atol=1e-4)


def test_ckks_ciphertexts_under_other_parameters_are_rejected() -> None:
    r = HERound("ckks")
    other = HERound("ckks", preset="n4096").input(0)
    with pytest.raises(CiphertextError):
        r.server.receive(replace(other, session=r.session.id))
    paillier = HERound("paillier").input(0)
    with pytest.raises(CiphertextError):
        r.server.receive(paillier)  # one wire format, but not a CKKS ciphertext


def test_ckks_ciphertext_at_another_scale_is_rejected() -> None:
    import tenseal as ts

    r = HERound("ckks")
    ctx = ts.context_from(r.keys.public)
    ctx.global_scale = 2.0**30  # same keys, a scale that would corrupt the sum
    chunk = ts.ckks_vector(ctx, np.ones(D)).serialize()
    with pytest.raises(CiphertextError, match="scale"):
        r.server.receive(EncryptedInput(r.session.id, 0, 1, (chunk,)))


def test_paillier_ciphertext_outside_z_n_squared_is_rejected() -> None:
    r = HERound("paillier")
    good = r.input(0)
    n_squared = int.from_bytes(r.keys.public, "big") ** 2
    too_big = n_squared.to_bytes(len(good.chunks[0]), "big")
    with pytest.raises(CiphertextError, match="N\\^2"):
        r.server.receive(replace(good, chunks=(too_big,)))


@pytest.mark.parametrize("name", HE)
def test_out_of_range_input_aborts_instead_of_corrupting_the_sum(name: str) -> None:
    r = HERound(name)
    r.send_all([0, 1, 2])
    if name == "paillier":
        # 2^(q + log2 n) lands in the guard bit: no carry, but out of range
        scheme = r.proto.scheme(r.keys.public_only())
        evil = np.full(D, 1 << (scheme.width - 1), dtype=np.uint64)
    else:
        evil = np.full(D, 1e4)  # far beyond n * clip
    r.server.receive(EncryptedInput(r.session.id, 0, 3, r.ciphertext_of(evil)))
    out = r.server.on_deadline(Phase.INPUT)
    assert r.holder is not None
    r.server.receive(_wire(r.holder.receive(_wire(out[KEY_HOLDER]))))
    with pytest.raises(AbortError) as info:
        r.server.on_deadline(Phase.DECRYPT)
    assert info.value.reason == "out-of-range-sum"


def _scheme_values(r: HERound, x: float) -> np.ndarray:
    """The raw values a participant encrypts for entries equal to ``x``, without clipping
    (CKKS: x itself; Paillier: x quantized, offset by the levels L to be non-negative)."""
    if r.proto.name == "ckks":
        return np.full(D, x)
    levels = 2 ** (r.proto.config.quant_bits - 1) - 1
    q = round(x / r.proto.config.clip * levels)
    return np.full(D, q + levels, dtype=np.uint64)


@pytest.mark.parametrize("name", HE)
def test_one_participant_may_exceed_the_clip_by_the_headroom_the_others_leave(name: str) -> None:
    """Only the decrypted *total* is range-checked (|sum| <= |U| c per entry): without range
    proofs a participant's share of it is not. With c = 8 and 10 participants a 72.0 entry
    (9 c) is accepted while the 9 others send 0.0, and the round aborts once they send 1.0
    each (total 81 > 80)."""
    for honest in (0.0, 1.0):
        r = HERound(name, n=10)
        assert r.proto.config.clip == 8.0
        r.inputs = {u: np.full(D, honest) for u in range(10)}
        r.send_all(range(9))
        evil = r.ciphertext_of(_scheme_values(r, 72.0))
        r.server.receive(_wire(EncryptedInput(r.session.id, 0, 9, evil)))
        out = r.server.on_deadline(Phase.INPUT)
        assert r.holder is not None
        r.server.receive(_wire(r.holder.receive(_wire(out[KEY_HOLDER]))))
        if honest == 0.0:
            r.server.on_deadline(Phase.DECRYPT)
            total = r.proto.decode(r.server.result.ring_sum, np.zeros(D))
            np.testing.assert_allclose(total, np.full(D, 72.0), atol=1e-4)  # undetected
            continue
        with pytest.raises(AbortError) as info:
            r.server.on_deadline(Phase.DECRYPT)
        assert info.value.reason == "out-of-range-sum"


# --- a curious aggregator --------------------------------------------------------------------
@pytest.mark.parametrize("name", HE)
def test_key_holder_refuses_to_decrypt_a_single_input(name: str) -> None:
    r = HERound(name, min_survivors=3)
    victim = r.input(2)
    assert r.holder is not None
    fishing = EncryptedSum(r.session.id, 0, SERVER, (2,), victim.chunks)
    with pytest.raises(RefusedRequestError):
        r.holder.receive(_wire(fishing))
    lying = replace(fishing, survivors=(2, 2, 2))  # padding the count with repeats
    with pytest.raises(RefusedRequestError):
        r.holder.receive(_wire(lying))


@pytest.mark.parametrize("name", HE)
def test_by_default_no_decryption_reveals_a_single_input(name: str) -> None:
    """Default config (no min_survivors given): the aggregator gets neither a decryption of
    one participant's ciphertext nor a round that ends with one input in the "sum"."""
    for key_mode in ("key-holder", "shared"):
        r = HERound(name, n=2, key_mode=key_mode)
        assert r.proto.config.min_survivors == 2
        victim = r.input(0)
        fishing = _wire(EncryptedSum(r.session.id, 0, SERVER, (0,), victim.chunks))
        decryptor = r.holder if r.holder is not None else r.clients[1]
        if r.holder is None:
            r.clients[1].set_input(r.inputs[1])
            r.clients[1].start()  # a participant decrypts after sending its own input
        with pytest.raises(RefusedRequestError, match="sums of 2"):
            decryptor.receive(fishing)
        r.server.receive(victim)  # the other participant drops out
        with pytest.raises(AbortError) as info:
            r.server.on_deadline(Phase.INPUT)
        assert info.value.reason == "too-few-survivors"


@pytest.mark.parametrize("name", HE)
def test_key_holder_decrypts_once_per_round(name: str) -> None:
    r = HERound(name)
    r.send_all()
    request = _wire(r.server.on_deadline(Phase.INPUT)[KEY_HOLDER])
    assert r.holder is not None
    r.holder.receive(request)
    with pytest.raises(RefusedRequestError):
        r.holder.receive(request)


@pytest.mark.parametrize("name", HE)
def test_decryptors_refuse_replays_and_impostors(name: str) -> None:
    r = HERound(name, key_mode="shared")
    r.send_all()
    request = _wire(next(iter(r.server.on_deadline(Phase.INPUT).values())))
    decryptor = r.clients[3]
    for bad, error in [
        (replace(request, round=1), WrongSessionError),
        (replace(request, session=b"t" * 32), WrongSessionError),
        (replace(request, sender=1), UnknownSenderError),
        (replace(request, survivors=(3, 1, 2, 0)), RefusedRequestError),
        (r.sent[0], OutOfPhaseError),
    ]:
        with pytest.raises(error):
            decryptor.receive(bad)
    assert decryptor.receive(request) is not None  # the honest request still works


def test_participants_in_key_holder_mode_decrypt_nothing() -> None:
    r = HERound("paillier")
    r.send_all()
    request = _wire(r.server.on_deadline(Phase.INPUT)[KEY_HOLDER])
    with pytest.raises(OutOfPhaseError):
        r.clients[0].receive(request)


# --- bad decryptors --------------------------------------------------------------------------
@pytest.mark.parametrize("name", HE)
def test_aggregator_checks_what_decryptors_return(name: str) -> None:
    r = HERound(name, key_mode="shared", num_decryptors=2)
    r.send_all()
    requests = r.server.on_deadline(Phase.INPUT)
    asked = sorted(requests)
    outsider = next(u for u in r.clients if u not in asked)
    dtype = np.float64 if name == "ckks" else np.uint64
    wrong_dtype = np.uint32 if name == "ckks" else np.float64
    honest = _wire(r.clients[asked[0]].receive(_wire(requests[asked[0]])))
    sid = r.session.id
    for bad, error in [
        (DecryptedSum(sid, 0, outsider, np.zeros(D, dtype)), UnknownSenderError),
        (DecryptedSum(sid, 0, asked[1], np.zeros(D + 1, dtype)), WrongLengthError),
        (DecryptedSum(sid, 0, asked[1], np.zeros(D, wrong_dtype)), WrongRingError),
        (r.sent[outsider], OutOfPhaseError),
    ]:
        with pytest.raises(error):
            r.server.receive(bad)
    r.server.receive(honest)
    with pytest.raises(DuplicateMessageError):
        r.server.receive(honest)
    # the second decryptor lies: the answers disagree and the round aborts
    lie = honest.values.copy()
    lie[0] += 1
    r.server.receive(DecryptedSum(sid, 0, asked[1], lie))
    with pytest.raises(AbortError) as info:
        r.server.on_deadline(Phase.DECRYPT)
    assert info.value.reason == "inconsistent-decryptions"

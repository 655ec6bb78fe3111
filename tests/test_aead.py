"""Share encryption: round trips, and every binding (sender, receiver, session, round) enforced."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secagg.errors import AuthenticationError, CryptoError, SecretPicklingError
from secagg.primitives.aead import OVERHEAD, AeadKey
from secagg.primitives.x25519 import KeyPair
from secagg.randomness import SeededRandom

SESSION = bytes(range(32))


def _pair_keys() -> tuple[AeadKey, AeadKey]:
    rng = SeededRandom(7)
    u, v = KeyPair.generate(rng), KeyPair.generate(rng)
    ku = AeadKey.from_shared_secret(u.agree(v.public), session=SESSION, round=3)
    kv = AeadKey.from_shared_secret(v.agree(u.public), session=SESSION, round=3)
    return ku, kv


@given(plaintext=st.binary(max_size=512))
def test_round_trip_between_two_clients(plaintext: bytes) -> None:
    ku, kv = _pair_keys()
    box = ku.seal(plaintext, sender=1, receiver=2, session=SESSION, round=3, rng=SeededRandom(1))
    assert len(box) == len(plaintext) + OVERHEAD
    assert kv.open(box, sender=1, receiver=2, session=SESSION, round=3) == plaintext


@given(position=st.integers(0, 8 * (32 + OVERHEAD) - 1))
def test_any_flipped_bit_is_rejected(position: int) -> None:
    ku, kv = _pair_keys()
    box = bytearray(
        ku.seal(bytes(32), sender=1, receiver=2, session=SESSION, round=3, rng=SeededRandom(2))
    )
    box[position // 8] ^= 1 << (position % 8)
    with pytest.raises(AuthenticationError):
        kv.open(bytes(box), sender=1, receiver=2, session=SESSION, round=3)


@pytest.mark.parametrize(
    "binding",
    [
        {"sender": 9},  # the server claims another sender
        {"receiver": 9},  # redirected to another client
        {"session": bytes(32)},  # replayed into another session
        {"round": 4},  # replayed into the next round
    ],
)
def test_box_is_bound_to_sender_receiver_session_round(binding: dict[str, object]) -> None:
    ku, kv = _pair_keys()
    box = ku.seal(b"share", sender=1, receiver=2, session=SESSION, round=3, rng=SeededRandom(3))
    args: dict[str, object] = {"sender": 1, "receiver": 2, "session": SESSION, "round": 3}
    args.update(binding)
    with pytest.raises(AuthenticationError):
        kv.open(box, **args)  # type: ignore[arg-type]


def test_key_of_other_round_cannot_open() -> None:
    rng = SeededRandom(8)
    u, v = KeyPair.generate(rng), KeyPair.generate(rng)
    k3 = AeadKey.from_shared_secret(u.agree(v.public), session=SESSION, round=3)
    k4 = AeadKey.from_shared_secret(v.agree(u.public), session=SESSION, round=4)
    box = k3.seal(b"x", sender=1, receiver=2, session=SESSION, round=3, rng=rng)
    with pytest.raises(AuthenticationError):
        k4.open(box, sender=1, receiver=2, session=SESSION, round=3)


def test_short_box_and_bad_key() -> None:
    ku, _ = _pair_keys()
    with pytest.raises(AuthenticationError):
        ku.open(b"short", sender=1, receiver=2, session=SESSION, round=3)
    with pytest.raises(CryptoError):
        AeadKey(bytes(16))


def test_secret_holders_hide_and_refuse_pickling() -> None:
    ku, _ = _pair_keys()
    pair = KeyPair.generate(SeededRandom(1))
    for secret in (ku, pair):
        assert "hidden" in repr(secret)
        assert pair.private_bytes().hex() not in repr(secret)
        with pytest.raises(SecretPicklingError):
            pickle.dumps(secret)

"""Shamir t-of-n: any t shares reconstruct, fewer reveal nothing, corruption is caught."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from secagg.errors import CryptoError, InconsistentSharesError, NotEnoughSharesError, ShamirError
from secagg.field import SHAMIR_PRIME, PrimeField
from secagg.primitives.shamir import Shamir
from secagg.randomness import SeededRandom


def test_shamir_prime_is_the_documented_prime() -> None:
    p = SHAMIR_PRIME
    assert p == 2**32 - 5
    limit = int(p**0.5) + 1
    candidates = np.arange(2, limit, dtype=np.uint64)
    assert not np.any(np.uint64(p) % candidates == 0), "2^32 - 5 must be prime"
    assert (p - 1) ** 2 < 2**64  # products fit in uint64


@st.composite
def sharing(draw: st.DrawFn) -> tuple[int, int, list[bytes], list[int], int]:
    n = draw(st.integers(1, 40))
    t = draw(st.integers(1, n))
    m = draw(st.integers(1, 4))
    length = draw(st.sampled_from([1, 16, 32, 33]))
    secrets = [draw(st.binary(min_size=length, max_size=length)) for _ in range(m)]
    xs = draw(st.lists(st.integers(1, 2**31), min_size=n, max_size=n, unique=True))
    return n, t, secrets, xs, draw(st.integers(0, 2**32))


@given(case=sharing(), data=st.data())
def test_any_t_shares_reconstruct(
    case: tuple[int, int, list[bytes], list[int], int], data: st.DataObject
) -> None:
    n, t, secrets, xs, seed = case
    scheme = Shamir(t, len(secrets[0]))
    shares = scheme.split(secrets, xs, SeededRandom(seed))
    assert shares.shape == (n, len(secrets), scheme.chunks)
    k = data.draw(st.integers(t, n))
    pick = data.draw(st.permutations(range(n)))[:k]
    assert scheme.reconstruct([xs[i] for i in pick], shares[pick]) == secrets


@given(case=sharing(), data=st.data())
def test_fewer_than_t_shares_are_refused(
    case: tuple[int, int, list[bytes], list[int], int], data: st.DataObject
) -> None:
    _, t, secrets, xs, seed = case
    scheme = Shamir(t, len(secrets[0]))
    shares = scheme.split(secrets, xs, SeededRandom(seed))
    k = data.draw(st.integers(0, t - 1))
    with pytest.raises(NotEnoughSharesError):
        scheme.reconstruct(xs[:k], shares[:k])


@given(
    t=st.integers(2, 12),
    secret=st.binary(min_size=32, max_size=32),
    other=st.binary(min_size=32, max_size=32),
    seed=st.integers(0, 2**32),
)
def test_t_minus_1_shares_fit_every_secret(t: int, secret: bytes, other: bytes, seed: int) -> None:
    """Perfect hiding, constructively: for the t-1 shares an attacker holds and ANY other
    secret, a valid sharing of that other secret contains exactly those t-1 shares."""
    scheme = Shamir(t)
    xs = list(range(1, t + 2))
    shares = scheme.split([secret], xs, SeededRandom(seed))
    seen_x, seen_y = xs[: t - 1], shares[: t - 1]
    # Interpolate through the t-1 seen points and (0, other): t points fix a degree t-1 polynomial.
    other_chunks = scheme._to_chunks([other])[0]
    f = scheme.field
    pts = np.array([0, *seen_x], dtype=np.uint64)
    lam = scheme._lagrange(pts, np.array(xs[t - 1 :], dtype=np.uint64))  # at unseen points
    ys = np.concatenate([other_chunks[None, None, :], seen_y], axis=0)
    unseen = f.mul(lam[:, :, None, None], ys[None]).sum(axis=1, dtype=np.uint64) % np.uint64(f.p)
    forged = np.concatenate([seen_y, unseen], axis=0)
    # The forged sharing agrees with the attacker's view and reconstructs to the other secret.
    np.testing.assert_array_equal(forged[: t - 1], seen_y)
    assert scheme.reconstruct(xs[:t], forged[:t]) == [other]
    assert scheme.reconstruct(xs, forged) == [other]


def test_corrupted_share_is_detected_with_redundancy() -> None:
    scheme = Shamir(3)
    xs = [1, 2, 3, 4, 5]
    shares = scheme.split([bytes(range(32))], xs, SeededRandom(0))
    shares[4, 0, 2] = (shares[4, 0, 2] + 1) % SHAMIR_PRIME
    with pytest.raises(InconsistentSharesError, match=r"\[5\]"):
        scheme.reconstruct(xs, shares)
    assert scheme.reconstruct(xs[:3], shares[:3]) == [bytes(range(32))]


def test_corrupt_top_chunk_is_caught_by_the_length_check() -> None:
    """With exactly t shares, a corrupt top chunk decodes to more bits than the secret has."""
    scheme = Shamir(2, 32)
    shares = scheme.split([bytes(32)], [1, 2], SeededRandom(1))
    shares[0, 0, 8] = (shares[0, 0, 8] + 12345) % SHAMIR_PRIME  # top chunk: 256 = 8*31+8 bits
    with pytest.raises(InconsistentSharesError):
        scheme.reconstruct([1, 2], shares)


def test_share_bytes_round_trip_and_validation() -> None:
    scheme = Shamir(2)
    shares = scheme.split([b"k" * 32], [1, 2], SeededRandom(2))
    data = scheme.share_to_bytes(shares[0, 0])
    assert len(data) == scheme.share_bytes == 36
    np.testing.assert_array_equal(scheme.share_from_bytes(data), shares[0, 0])
    with pytest.raises(ShamirError):
        scheme.share_from_bytes(data[:-1])
    with pytest.raises(ShamirError):
        scheme.share_from_bytes(b"\xff" * 36)  # 2^32 - 1 >= p


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("init", (0,)),
        ("split_points", [0, 1]),
        ("split_points", [1, 1]),
        ("split_points", [1, SHAMIR_PRIME]),
        ("split_few", [1]),
        ("secret_len", None),
    ],
)
def test_bad_parameters_raise_crypto_error(call: str, args: object) -> None:
    with pytest.raises(CryptoError):
        if call == "init":
            Shamir(*args)  # type: ignore[misc]
        elif call == "split_points":
            Shamir(1).split([bytes(32)], args, SeededRandom(0))  # type: ignore[arg-type]
        elif call == "split_few":
            Shamir(2).split([bytes(32)], args, SeededRandom(0))  # type: ignore[arg-type]
        else:
            Shamir(1).split([bytes(31)], [1], SeededRandom(0))


def test_field_random_is_in_range_and_inverse_works() -> None:
    f = PrimeField()
    a = f.random((10_000,), SeededRandom(3))
    assert a.max() < SHAMIR_PRIME
    a = a[a != 0]
    np.testing.assert_array_equal(f.mul(a, f.inv(a)), np.ones_like(a))
    with pytest.raises(CryptoError):
        f.inv(np.zeros(1, dtype=np.uint64))

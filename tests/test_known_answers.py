"""Known-answer tests for every primitive, with the source of each vector."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from secagg.errors import AuthenticationError, CryptoError, RemoteProtocolError, WeakKeyError
from secagg.primitives.kdf import hkdf_sha256
from secagg.primitives.prg import chacha20_keystream, keystream
from secagg.primitives.x25519 import SMALL_ORDER_KEYS, KeyPair, validate_public_key

h = bytes.fromhex


# --- RFC 7748 (X25519) ---------------------------------------------------------------------
def test_x25519_rfc7748_section_6_1_diffie_hellman() -> None:
    """RFC 7748 §6.1: Alice and Bob's keys and shared secret."""
    alice = KeyPair.from_private_bytes(
        h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    )
    bob = KeyPair.from_private_bytes(
        h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    )
    assert alice.public == h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert bob.public == h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    shared = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    assert alice.agree(bob.public) == shared
    assert bob.agree(alice.public) == shared


def test_x25519_rfc7748_section_5_2_scalar_mult() -> None:
    """RFC 7748 §5.2, first test vector (scalar, u-coordinate -> u-coordinate)."""
    scalar = KeyPair.from_private_bytes(
        h("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    )
    u = h("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    assert scalar.agree(u) == h("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")


def test_x25519_rfc7748_iterated_once_and_1000_times() -> None:
    """RFC 7748 §5.2: k = u = 9, k, u = X25519(k, u), k after 1 and 1000 iterations."""
    k = u = (9).to_bytes(32, "little")
    expected = {
        1: h("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"),
        1000: h("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"),
    }
    for i in range(1, 1001):
        k, u = KeyPair.from_private_bytes(k).agree(u), k
        if i in expected:
            assert k == expected[i]


def test_x25519_rejects_low_order_point() -> None:
    """The all-zero u-coordinate gives an all-zero shared secret: refused (RFC 7748 §6.1)."""
    me = KeyPair.from_private_bytes(bytes(range(32)))
    with pytest.raises(AuthenticationError):
        me.agree(bytes(32))
    with pytest.raises(RemoteProtocolError):
        me.agree(bytes(31))


def _zero_secret(public: bytes) -> bool:
    """``cryptography``'s own verdict: an agreement with ``public`` is all zero."""
    probe = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    try:
        probe.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:
        return True
    return False


def test_the_small_order_list_is_exactly_the_keys_with_a_zero_agreement() -> None:
    """Every listed key (bit 255 clear or set) gives a zero agreement and is refused; keys
    next to them, around p and 0, and random keys give a nonzero one and pass."""
    assert len(SMALL_ORDER_KEYS) == 7
    for key in SMALL_ORDER_KEYS:
        for variant in (key, key[:-1] + bytes([key[-1] | 0x80])):
            assert _zero_secret(variant)
            with pytest.raises(WeakKeyError):
                validate_public_key(variant)
    p = (1 << 255) - 19
    near = [(p + i) % (1 << 255) for i in range(-64, 19)] + list(range(64))
    rng = np.random.default_rng(7)
    randoms = [int.from_bytes(rng.bytes(32), "little") for _ in range(300)]
    for u in near + randoms:
        key = u.to_bytes(32, "little")
        assert _zero_secret(key) == (key[:-1] + bytes([key[-1] & 0x7F]) in SMALL_ORDER_KEYS)


# --- RFC 5869 (HKDF-SHA256) ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("ikm", "salt", "info", "length", "okm"),
    [
        (  # RFC 5869 A.1, Test Case 1
            h("0b" * 22),
            h("000102030405060708090a0b0c"),
            h("f0f1f2f3f4f5f6f7f8f9"),
            42,
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        ),
        (  # RFC 5869 A.2, Test Case 2 (long inputs)
            bytes(range(0x00, 0x50)),
            bytes(range(0x60, 0xB0)),
            bytes(range(0xB0, 0x100)),
            82,
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
            "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
            "cc30c58179ec3e87c14c01d5c1f3434f1d87",
        ),
        (  # RFC 5869 A.3, Test Case 3 (empty salt and info)
            h("0b" * 22),
            None,
            b"",
            42,
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        ),
    ],
)
def test_hkdf_sha256_rfc5869(
    ikm: bytes, salt: bytes | None, info: bytes, length: int, okm: str
) -> None:
    assert hkdf_sha256(ikm, salt=salt, info=info, length=length) == h(okm)


def test_hkdf_sha256_equals_cryptographys_hkdf() -> None:
    """Our one-shot HMAC composition against ``cryptography``'s HKDF, every salt kind and
    lengths across block boundaries."""
    rng = np.random.default_rng(3)
    for length in (1, 16, 31, 32, 33, 64, 65, 100, 255 * 32):
        for salt in (None, b"", rng.bytes(13), rng.bytes(80)):
            ikm, info = rng.bytes(int(rng.integers(16, 90))), rng.bytes(int(rng.integers(0, 70)))
            ours = hkdf_sha256(ikm, salt=salt, info=info, length=length)
            theirs = HKDF(hashes.SHA256(), length, salt, info).derive(ikm)
            assert ours == theirs, (length, salt)
    with pytest.raises(CryptoError):
        hkdf_sha256(b"k" * 32, salt=None, info=b"", length=255 * 32 + 1)


# --- RFC 8439 (ChaCha20) -------------------------------------------------------------------
def test_chacha20_rfc8439_a1_test_vector_1() -> None:
    """RFC 8439 A.1, test vector #1: all-zero key and nonce, counter 0."""
    expected = h(
        "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
        "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
    )
    assert chacha20_keystream(bytes(32), 64) == expected
    words = keystream(bytes(32), 16, 32)
    assert words.tobytes() == expected  # uint32 word i = keystream bytes [4i, 4i+4), LE
    assert words[0] == 0xADE0B876


def test_chacha20_rfc8439_2_3_2_block_function() -> None:
    """RFC 8439 §2.3.2: key 00..1f, nonce 000000090000004a00000000, block counter 1."""
    expected = h(
        "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
        "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
    )
    key, nonce = bytes(range(32)), h("000000090000004a00000000")
    assert chacha20_keystream(key, 64, nonce=nonce, counter=1) == expected
    assert keystream(key, 16, 32, nonce=nonce, counter=1).tobytes() == expected
    assert keystream(key, 8, 64, nonce=nonce, counter=1).tobytes() == expected


def test_chacha20_rfc8439_2_4_2_encryption() -> None:
    """RFC 8439 §2.4.2: the sunscreen plaintext, counter 1: keystream = ciphertext XOR plaintext."""
    plaintext = (
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
        b"the future, sunscreen would be it."
    )
    ciphertext = h(
        "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
        "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
        "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
        "5af90bbf74a35be6b40b8eedf2785e42874d"
    )
    key, nonce = bytes(range(32)), h("000000000000004a00000000")
    stream = chacha20_keystream(key, len(plaintext), nonce=nonce, counter=1)
    assert bytes(a ^ b for a, b in zip(stream, plaintext, strict=True)) == ciphertext


def test_keystream_rejects_bad_parameters() -> None:
    with pytest.raises(CryptoError):
        keystream(bytes(31), 4)
    with pytest.raises(CryptoError):
        keystream(bytes(32), 4, bits=16)
    with pytest.raises(CryptoError):
        keystream(bytes(32), 4, nonce=bytes(8))
    with pytest.raises(CryptoError):  # past the 2^32-block counter limit
        keystream(bytes(32), 32, counter=(1 << 32) - 1)
    assert keystream(bytes(32), 0).dtype == np.uint32

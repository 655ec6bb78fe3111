"""Pinned transcripts: a seeded run must reproduce these digests on any machine, any version.

A change here means the session derivation, the dither keystream, the quantizer or the ring
encoding changed: a wire- and result-breaking change that needs a version bump, not a re-pin.
"""

from __future__ import annotations

import hashlib

import numpy as np

from secagg import protocols, simulate
from secagg.randomness import SeededRandom


def test_plain_round_with_a_dropout_is_pinned() -> None:
    proto = protocols.get("plain", num_clients=4, clip=1.0, quant_bits=16)
    inputs = {c: np.linspace(-1.5, 1.5, 33) * (c + 1) / 4 for c in range(4)}
    result = simulate(proto, inputs, dropouts={2: proto.phases[0]}, seed=0)
    assert result.survivors == {0, 1, 3}
    assert result.session.id.hex() == (
        "d9291b6479b9e2e60f9a906103f9643195d628e2119ff1e34366c34609b23da5"
    )
    digest = hashlib.sha256(result.ring_sum.astype("<u4").tobytes()).hexdigest()
    assert digest == "a0019f12c99e64e6ab5a9b76a6ea2c4f8aaa119d82a22bc4bbe7946790247b54"


def test_seeded_random_stream_is_pinned() -> None:
    """SeededRandom = ChaCha20 keyed by SHA-256(tag || len || seed); forks by label."""
    assert SeededRandom(0).random_bytes(16).hex() == "ba003ef5a507b1b22b98d31e18f84a5b"
    assert SeededRandom(0).fork("client/1").random_bytes(16).hex() == (
        "65b3755518e99bde88b547cd99841667"
    )

"""Pinned transcripts: a seeded run must reproduce these digests on any machine, any version.

A change here means the session derivation, the dither keystream, the quantizer, the ring
encoding, a key or mask derivation or the wire format changed: a wire- and result-breaking
change that needs a version bump, not a silent re-pin.

The four protocol transcripts (``secagg``, ``secaggplus``, ``ckks``, ``paillier``) are pinned
in ``tests/transcripts.json``. After a deliberate change (with its version bump), rewrite them
with one command and review the diff::

    SECAGG_REPIN=1 .venv/bin/python -m pytest -q tests/test_transcripts.py

With ``SECAGG_REPIN=1`` each case writes its fresh values into the JSON file and prints what
changed instead of failing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secagg import protocols, simulate, wire
from secagg.randomness import SeededRandom
from secagg.wire import Message

PINS = Path(__file__).with_name("transcripts.json")
REPIN = os.environ.get("SECAGG_REPIN") == "1"
# Explicit parameters (not the finder's defaults), so a change of the parameter finder does
# not move the pins; rates 0 make any (k, t) with t >= 2 acceptable.
LOOSE = {"dropout_rate": 0.0, "corrupted_fraction": 0.0, "adversary": "semi-honest"}
CASES: dict[str, dict[str, Any]] = {
    # Bonawitz with the consistency check: signatures are in the transcript too.
    "secagg": {
        "config": {
            "num_clients": 5,
            "quant_bits": 16,
            "threshold": 3,
            "consistency_check": True,
            **LOOSE,
        },
        "dropout": ("MASKED_INPUT", 2),  # s_2^SK is rebuilt from key shares
    },
    "secaggplus": {
        "config": {"num_clients": 8, "quant_bits": 16, "num_neighbors": 4, "threshold": 2, **LOOSE},
        "dropout": ("UNMASKING", 3),  # 3's input stays in the sum: b_3 from self-mask shares
    },
    # TenSEAL draws its own randomness: only the session, the sizes and the structure pin.
    "ckks": {"config": {"num_clients": 4}, "dropout": ("INPUT", 2), "randomized": True},
    "paillier": {"config": {"num_clients": 4, "quant_bits": 16}, "dropout": ("INPUT", 2)},
}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Message, bytes]]]:
    """Every message ``simulate`` puts on the wire, in order, with its bytes."""
    log: list[tuple[Message, bytes]] = []
    encode = wire.encode

    def recording(msg: Message) -> bytes:
        data = encode(msg)
        log.append((msg, data))
        return data

    monkeypatch.setattr(wire, "encode", recording)
    yield log


def _transcript(name: str, log: list[tuple[Message, bytes]]) -> dict[str, Any]:
    """What is pinned of a run whose wire traffic is ``log``."""
    proto = protocols.get(name, clip=1.0, **CASES[name]["config"])
    n = proto.num_clients
    inputs = {c: np.linspace(-1.5, 1.5, 33) * (c + 1) / n for c in range(n)}
    phase, client = CASES[name]["dropout"]
    log.clear()
    result = simulate(proto, inputs, dropouts={client: proto.Phase[phase]}, seed=0)
    pinned: dict[str, Any] = {
        "session": result.session.id.hex(),
        "survivors": sorted(result.survivors),
        # message type, sender, size: the structure of the round and every message's size
        "messages": [f"{type(m).__name__} {m.sender} {len(data)}" for m, data in log],
    }
    if CASES[name].get("randomized"):
        return pinned
    first = {type(m).__name__: data for m, data in reversed(log) if m.sender == 0}
    if name in ("secagg", "secaggplus"):
        pinned["share_keys"] = _digest(first["ShareKeys"])  # client 0's share bundle
        pinned["masked_input"] = _digest(first["MaskedInput"])  # y_0: every mask derivation
    else:
        pinned["encrypted_input"] = _digest(first["EncryptedInput"])
    ring_sum = np.asarray(result.ring_sum)
    pinned["ring_sum"] = _digest(ring_sum.astype(ring_sum.dtype.newbyteorder("<")).tobytes())
    pinned["transcript"] = _digest(b"".join(len(d).to_bytes(8, "big") + d for _, d in log))
    return pinned


def _repin(name: str, got: dict[str, Any], pins: dict[str, Any]) -> None:
    changed = sorted(
        k for k in got.keys() | pins.get(name, {}).keys() if got.get(k) != pins.get(name, {}).get(k)
    )
    pins[name] = got
    PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
    print(f"repinned {name} in {PINS.name}: {', '.join(changed) or 'nothing changed'}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_protocol_round_with_a_dropout_is_pinned(
    name: str, recorded: list[tuple[Message, bytes]]
) -> None:
    """Session id, client 0's ShareKeys bundle and masked vector (or ciphertext), the ring sum,
    the whole wire transcript, and each message's type, sender and size; for CKKS (randomized
    by TenSEAL) the session, sizes and structure only."""
    got = _transcript(name, recorded)
    pins = json.loads(PINS.read_text()) if PINS.exists() else {}
    if REPIN:
        _repin(name, got, pins)
        return
    assert name in pins, f"no pins for {name}: run SECAGG_REPIN=1 (see this module's docstring)"
    for key, value in pins[name].items():
        assert got.get(key) == value, f"{name}: {key} changed (re-pin only with a version bump)"
    assert got.keys() == pins[name].keys()


def test_plain_round_with_a_dropout_is_pinned() -> None:
    proto = protocols.get("plain", num_clients=4, clip=1.0, quant_bits=16)
    inputs = {c: np.linspace(-1.5, 1.5, 33) * (c + 1) / 4 for c in range(4)}
    result = simulate(proto, inputs, dropouts={2: proto.phases[0]}, seed=0)
    assert result.survivors == {0, 1, 3}
    assert result.session.id.hex() == (
        "d9291b6479b9e2e60f9a906103f9643195d628e2119ff1e34366c34609b23da5"
    )
    digest = hashlib.sha256(result.ring_sum.astype("<u4").tobytes()).hexdigest()
    assert digest == "daa25dcba31e61e8f81b519f9b88c5c84195b7f99915d50fa9c3c3870de0b98a"


def test_seeded_random_stream_is_pinned() -> None:
    """SeededRandom = ChaCha20 keyed by SHA-256(tag || len || seed); forks by label."""
    assert SeededRandom(0).random_bytes(16).hex() == "ba003ef5a507b1b22b98d31e18f84a5b"
    assert SeededRandom(0).fork("client/1").random_bytes(16).hex() == (
        "65b3755518e99bde88b547cd99841667"
    )

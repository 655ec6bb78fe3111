"""The agents' own blobs: the model blob and the task spec decode strictly, by name."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from secagg.clients.agents.models import ModelBlob
from secagg.clients.agents.task import TaskSpec, session_id, spec_cid
from secagg.clients.errors import ModelFormatError
from secagg.errors import ConfigError
from secagg.store import cid_of

WEIGHTS = np.linspace(-1, 1, 11, dtype=np.float32)


def test_a_model_blob_round_trips_canonically() -> None:
    blob = ModelBlob(3, WEIGHTS, (0, 2, 5), 0.75, "bafkreiexample")
    again = ModelBlob.decode(blob.encode())
    assert again.encode() == blob.encode()
    assert (again.round, again.survivors, again.survivor_weight) == (3, (0, 2, 5), 0.75)
    np.testing.assert_array_equal(again.weights, WEIGHTS)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"SAG", "at least"),
        (b"XXXX\x01" + struct.pack("<I", 2) + b"{}", "not a version-1"),
        (b"SAGM\x01" + struct.pack("<I", 2**32 - 1) + b"{}", "exceeds the blob"),
        (b"SAGM\x01" + struct.pack("<I", 2) + b"[]", "malformed model header"),
        (b"SAGM\x01" + struct.pack("<I", 5) + b"nope!", "malformed model header"),
    ],
)
def test_malformed_model_blobs_are_refused_by_name(data: bytes, message: str) -> None:
    with pytest.raises(ModelFormatError, match=message):
        ModelBlob.decode(data)


def test_a_model_blob_with_missing_weights_is_refused() -> None:
    data = ModelBlob(1, WEIGHTS).encode()
    with pytest.raises(ModelFormatError, match="expected 11 float32"):
        ModelBlob.decode(data[:-4])


def spec(**overrides: object) -> TaskSpec:
    fields: dict[str, object] = {
        "protocol": "secaggplus",
        "config": {"num_clients": 4},
        "model": "mlp",
        "dim": 12,
        "total_samples": 100,
    }
    return TaskSpec(**{**fields, **overrides})  # type: ignore[arg-type]


def test_the_spec_is_found_from_its_hash_alone() -> None:
    s = spec()
    assert TaskSpec.decode(s.encode()) == s
    assert spec_cid(s.sha256) == cid_of(s.encode())
    assert s.build_protocol().num_clients == 4


@pytest.mark.parametrize(
    "data", [b"", b"[1, 2]", b'{"protocol": "secaggplus"}', b'{"unknown": 1}', b"\xff"]
)
def test_malformed_specs_are_config_errors(data: bytes) -> None:
    with pytest.raises(ConfigError, match="malformed task spec"):
        TaskSpec.decode(data)


def test_specs_refuse_unknown_protocols_and_bad_sizes() -> None:
    with pytest.raises(ConfigError, match="unknown protocol"):
        spec(protocol="rot13")
    with pytest.raises(ConfigError, match="dim"):
        spec(dim=1)


def test_session_ids_bind_chain_coordinator_and_task() -> None:
    a = "0x" + "11" * 20
    ids = {
        session_id(1, a, 1),
        session_id(2, a, 1),
        session_id(1, "0x" + "22" * 20, 1),
        session_id(1, a, 2),
    }
    assert len(ids) == 4 and all(len(i) == 32 for i in ids)

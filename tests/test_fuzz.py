"""Fuzzing every parser of untrusted input: only the named error each parser documents escapes
(``WireError`` from the wire decoder and the Flower envelope, ``ModelFormatError``,
``InvalidCidError``, ...), nothing hangs, nothing allocates much.

Targets: the wire decoder, the Flower envelope (both directions), the model blob and task
spec decoders, CID parsing and block verification, the dag-pb walker, the IPFS RPC response
parsers and the contracts' revert decoder. Each gets random bytes and mutations of a valid
input (a flipped, cut or extended valid encoding reaches deeper than noise).

Size: ``SECAGG_FUZZ_EXAMPLES`` examples per target and strategy (default 200: CI). The nightly
run, ``make fuzz``, sets 50,000: 12 targets x 2 strategies = 1.2M inputs. Each example runs
under ``tracemalloc`` and must peak below :data:`MEMORY_LIMIT`; a hypothesis deadline catches
hangs.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from flwr.app import ConfigRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secagg import wire
from secagg.chain.artifacts import decode_revert, error_selectors
from secagg.clients.agents.models import _HEAD, MAGIC, VERSION, ModelBlob
from secagg.clients.agents.task import TaskSpec
from secagg.clients.errors import ModelFormatError
from secagg.clients.flower import Reply, Request, Setup, Stage
from secagg.errors import ConfigError, SecAggError, WireError
from secagg.protocols.secaggplus.messages import EncryptedShare, ShareKeys
from secagg.store import IntegrityError, InvalidCidError, StoreProtocolError
from secagg.store import cid as cids
from secagg.store.dagpb import parse_node
from secagg.store.ipfs import _error_of, _last_hash

EXAMPLES = int(os.environ.get("SECAGG_FUZZ_EXAMPLES", "200"))
MEMORY_LIMIT = 64 * 2**20
"""Peak Python allocation per input; a 2^32 length field must not come near it."""
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=2000,  # ms per input: a hang fails the test
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=EXAMPLES <= 1000,  # CI: reproducible; nightly: new inputs every night
)


def _valid_wire() -> bytes:
    session = bytes(range(32))
    boxes = tuple(EncryptedShare(p, bytes([p]) * 90) for p in range(3))
    return wire.encode(ShareKeys(session, 3, 7, boxes, bytes(32)))


def _valid_blob() -> bytes:
    weights = np.linspace(-1, 1, 17, dtype=np.float32)
    return ModelBlob(2, weights, (0, 1, 3), 0.75, None).encode()


def _valid_spec() -> bytes:
    return TaskSpec("secaggplus", {"num_clients": 5}, "mlp", 4811, 1000).encode()


def _valid_request_record() -> dict[str, Any]:
    setup = Setup("secaggplus", '{"num_clients": 4}', bytes(32), 8, 0, 1, 0)
    return dict(Request(Stage.STEP, setup, "share-keys", b"\x00" * 40).to_record())


def _record(data: bytes) -> ConfigRecord:
    """A ConfigRecord from fuzz bytes: a valid request with one field replaced by junk."""
    fields = _valid_request_record()
    keys = sorted(fields)
    if data:
        key = keys[data[0] % len(keys)]
        rest = data[1:]
        choice = data[0] // len(keys) % 5
        fields[key] = [rest, rest.decode("latin-1"), len(rest), -len(rest), 2**62][choice]
        if choice == 0 and len(data) > 2 and data[1] % 3 == 0:
            del fields[key]
    return ConfigRecord(fields)


def _request(data: bytes) -> None:
    Request.from_record(_record(data)).setup.kwargs()


def _reply(data: bytes) -> None:
    Reply.from_record(_record(data))


def _setup_config(data: bytes) -> None:
    Setup("x", data.decode("utf-8", "replace"), bytes(32), 1, 0, 0).kwargs()


def _ipfs_add_response(data: bytes) -> None:
    _last_hash(httpx.Response(200, content=data))


def _ipfs_error_response(data: bytes) -> None:
    error = _error_of("cat", httpx.Response(500, content=data))
    assert isinstance(error, SecAggError)  # it returns the error to raise


def _revert(data: bytes) -> None:
    selector = sorted(error_selectors())[data[0] % len(error_selectors())] if data else b""
    for payload in (data, selector + data[1:]):
        error = decode_revert(payload)
        assert error is None or isinstance(error, SecAggError)


def _verify_block(data: bytes) -> None:
    cids.verify_block(cids.cid_of(b"block"), data)


def _cid_text(data: bytes) -> None:
    text = data.decode("latin-1")
    cids.normalize(text)
    cids.to_bytes(data)


@dataclass(frozen=True)
class Target:
    name: str
    parse: Callable[[bytes], Any]
    seed: bytes  # a valid input, mutated by the second strategy
    refuses: type[SecAggError] | None  # the named error its docs promise; None: never raises


TARGETS = [
    Target("wire.decode", wire.decode, _valid_wire(), WireError),
    Target("ModelBlob.decode", ModelBlob.decode, _valid_blob(), ModelFormatError),
    Target("TaskSpec.decode", TaskSpec.decode, _valid_spec(), ConfigError),
    Target("flower Request", _request, b"\x00", WireError),
    Target("flower Reply", _reply, b"\x00", WireError),
    Target(
        "flower Setup.kwargs", _setup_config, json.dumps({"num_clients": 4}).encode(), WireError
    ),
    Target("cid parse", _cid_text, cids.cid_of(b"x").encode(), InvalidCidError),
    Target("verify_block", _verify_block, b"block", IntegrityError),
    Target(
        "dag-pb parse_node",
        parse_node,
        bytes.fromhex("0a0808021202686918") + b"\x02",
        StoreProtocolError,
    ),
    Target(
        "IPFS add response",
        _ipfs_add_response,
        b'{"Name":"a","Hash":"bafk","Size":"1"}\n',
        StoreProtocolError,
    ),
    # these two return the error to raise; they raise nothing themselves
    Target("IPFS error response", _ipfs_error_response, b'{"Message":"not found","Code":0}', None),
    Target("revert data", _revert, b"\x00" * 36, None),
]


def _run(target: Target, data: bytes) -> None:
    tracemalloc.start()
    try:
        target.parse(data)
    except SecAggError as exc:
        # the one allowed way to refuse: the parser's own named error, nothing broader
        assert target.refuses is not None and isinstance(exc, target.refuses), repr(exc)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"{target.name} allocated {peak / 2**20:.0f} MiB"


@st.composite
def mutations(draw: st.DrawFn, seed: bytes) -> bytes:
    """A valid input with bytes flipped, cut, inserted or a length field set huge."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "huge"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(max_size=16))
        else:
            data[i : i + 4] = b"\xff\xff\xff\xff"
    return bytes(data)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes_raise_only_the_parsers_named_error(target: Target, data: bytes) -> None:
    _run(target, data)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
@FUZZ
@given(data=st.data())
def test_mutated_valid_inputs_raise_only_the_parsers_named_error(
    target: Target, data: st.DataObject
) -> None:
    _run(target, data.draw(mutations(target.seed)))


@pytest.mark.parametrize("target", TARGETS[:3], ids=lambda t: t.name)
def test_the_valid_seeds_parse(target: Target) -> None:
    """The mutation strategy starts from inputs that parse (else it fuzzes only the header)."""
    target.parse(target.seed)


@pytest.mark.parametrize(
    "header",
    [
        {"dim": float("inf")},  # JSON's Infinity: int() overflows
        {"survivor_weight": 10**400},  # float() overflows
    ],
)
def test_a_model_header_with_overflowing_numbers_is_a_model_format_error(
    header: dict[str, Any],
) -> None:
    valid = ModelBlob.decode(_valid_blob())
    head = json.dumps({**valid.header(), **header}).encode()
    data = _HEAD.pack(MAGIC, VERSION, len(head)) + head + valid.weights.astype("<f4").tobytes()
    with pytest.raises(ModelFormatError):
        ModelBlob.decode(data)

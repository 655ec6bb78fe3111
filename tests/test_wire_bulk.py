"""Wire codec on bulk fields: what its fast paths must keep true.

The generated codecs (``secagg.wire._message_codec``) must write the bytes the format in
``secagg/wire.py``'s docstring describes (checked against a slow reference encoder written
from that description), decode arrays as read-only views without copying ``bytes``, copy a
mutable buffer once, check every element of a packed ``tuple[int, ...]``, and refuse every
truncated or over-long input with :class:`WireError` before allocating.

Timings (not a test): ``.venv/bin/python -m tests.test_wire_bulk`` prints encode/decode
times of a 10^6-word ``MaskedInput``, a ``ShareKeys`` of 78 boxes and rosters of 1000 ids.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import sys
import tracemalloc
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

import secagg.protocols  # noqa: F401  (registers every protocol's messages)
from secagg import wire
from secagg.errors import LocalProtocolError, WireError
from secagg.protocols.secaggplus.messages import (
    EncryptedShare,
    MaskedInput,
    ServerKeys,
    ShareKeys,
    SurvivorsRequest,
)
from secagg.wire import Message
from tests.test_wire import REGISTERED, _instances


class Mood(enum.IntEnum):
    CALM = 0
    ODD = 3


@dataclass(frozen=True, slots=True)
class Leaf:
    mood: Mood
    ok: bool
    note: bytes | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Labelled:  # keyword-only: the generated decoder passes keywords
    label: str
    weight: float


UNLUCKY = 0x9E3779B97F4A7C15  # one arbitrary u64: generated instances never hit it


@dataclass(frozen=True, slots=True)
class Checked:
    value: int

    def __post_init__(self) -> None:
        if self.value == UNLUCKY:
            raise ValueError("this value is unlucky")


@wire.message("test-wire-bulk", 1, tag=1)
@dataclass(frozen=True, slots=True, eq=False)
class Bulk(Message):
    """One field of every kind, nested kinds included."""

    ids: tuple[int, ...]
    vector: npt.NDArray[Any]
    leaves: tuple[Leaf, ...]
    labelled: Labelled | None
    chunks: tuple[bytes, ...]
    checked: tuple[Checked, ...]
    ratio: float


@dataclass(frozen=True, slots=True)
class _Names:  # field names that look like the generated code's own names
    i1: int
    i: int
    _2: int
    buf: bytes
    pos: int
    end: tuple[int, ...]
    exc: str


@wire.message("test-wire-bulk", 1, tag=2)
@dataclass(frozen=True, slots=True, eq=False)
class Awkward(Message):
    parts: tuple[_Names, ...]
    ap: bool
    msg: float
    type: int


@dataclass(frozen=True, slots=True)
class Node:  # a struct that contains itself has no finite wire layout
    children: tuple[Node, ...]


def _bulk(**changes: Any) -> Bulk:
    fields: dict[str, Any] = {
        "session": b"s" * 8,
        "round": 2,
        "sender": 9,
        "ids": (0, 5, 2**64 - 1),
        "vector": np.arange(6, dtype=np.uint64),
        "leaves": (Leaf(Mood.CALM, True, None), Leaf(Mood.ODD, False, b"xy")),
        "labelled": Labelled(label="é", weight=0.5),
        "chunks": (b"", b"abc"),
        "checked": (Checked(1), Checked(2)),
        "ratio": -1.25,
    }
    fields.update(changes)
    return Bulk(**fields)


# --- the bytes: a reference encoder written from the format description -------------------
def _reference_field(tp: Any, value: Any) -> bytes:
    """The wire bytes of one value of annotated type ``tp``, the slow and obvious way."""
    origin = typing.get_origin(tp)
    for alias in (tp, origin):
        if type(alias).__name__ == "TypeAliasType":
            return _reference_field(alias.__value__, value)
    if tp is bool:
        return b"\x01" if value else b"\x00"
    if tp is int:
        return int(value).to_bytes(8, "big")
    if tp is bytes:
        return len(value).to_bytes(4, "big") + bytes(value)
    if tp is str:
        return _reference_field(bytes, value.encode("utf-8"))
    if tp is float:
        return struct.pack(">d", float(value))
    if tp is np.ndarray or origin is np.ndarray:
        code = {np.dtype(np.uint32): 1, np.dtype(np.uint64): 2, np.dtype(np.float64): 3}
        words = value.astype(value.dtype.newbyteorder("<")).tobytes()
        return bytes([code[value.dtype]]) + len(value).to_bytes(4, "big") + words
    if isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        return bytes([int(value)])
    if origin is tuple:
        (item, _) = typing.get_args(tp)
        body = b"".join(_reference_field(item, v) for v in value)
        return len(value).to_bytes(4, "big") + body
    if origin in (typing.Union, typing.get_origin(int | None)):
        (present,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return b"\x00" if value is None else b"\x01" + _reference_field(present, value)
    assert dataclasses.is_dataclass(tp), tp
    hints = typing.get_type_hints(tp)
    return b"".join(
        _reference_field(hints[f.name], getattr(value, f.name)) for f in dataclasses.fields(tp)
    )


def _reference(msg: Message) -> bytes:
    name = msg.PROTOCOL.encode("ascii")
    header = wire.MAGIC + bytes([wire.WIRE_VERSION, len(name)]) + name
    header += msg.VERSION.to_bytes(2, "big") + bytes([msg.TAG])
    return header + _reference_field(type(msg), msg)


@pytest.mark.parametrize(
    "cls", [*REGISTERED, Bulk, Awkward], ids=lambda c: f"{c.PROTOCOL}.{c.__name__}"
)
@given(data=st.data())
def test_encoding_matches_the_reference_encoder(cls: type[Message], data: st.DataObject) -> None:
    msg = data.draw(_instances(cls))
    raw = wire.encode(msg)
    assert raw == _reference(msg)
    assert wire.encode(wire.decode(raw)) == raw


def test_bulk_message_round_trips() -> None:
    msg = _bulk()
    raw = wire.encode(msg)
    assert raw == _reference(msg)
    back = wire.decode(raw, protocol="test-wire-bulk")
    assert isinstance(back, Bulk)
    assert (back.ids, back.leaves, back.labelled, back.chunks, back.checked, back.ratio) == (
        msg.ids,
        msg.leaves,
        msg.labelled,
        msg.chunks,
        msg.checked,
        msg.ratio,
    )
    assert all(type(i) is int for i in back.ids)  # Python ints, not numpy scalars
    np.testing.assert_array_equal(back.vector, msg.vector)
    assert back.vector.dtype == np.uint64


def test_field_names_do_not_clash_with_generated_names() -> None:
    names = _Names(1, 2, 3, b"4", 5, (6, 7), "8")
    msg = Awkward(b"", 0, 0, (names, _Names(9, 10, 11, b"", 12, (), "")), True, 13.0, 14)
    raw = wire.encode(msg)
    assert raw == _reference(msg)
    back = wire.decode(raw)
    assert isinstance(back, Awkward)
    assert (back.parts, back.ap, back.msg, back.type) == (msg.parts, True, 13.0, 14)


# --- arrays: views of received bytes, one copy of a mutable buffer -------------------------
@pytest.mark.parametrize("dtype", [np.uint32, np.uint64, np.float64])
def test_a_decoded_array_is_a_read_only_view_of_the_bytes(dtype: type[np.generic]) -> None:
    vector = np.arange(1000).astype(dtype)
    raw = wire.encode(MaskedInput(b"s" * 32, 0, 1, vector))
    back = wire.decode(raw)
    assert isinstance(back, MaskedInput)
    assert back.vector.dtype == dtype and back.vector.dtype.isnative
    np.testing.assert_array_equal(back.vector, vector)
    assert not back.vector.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        back.vector[0] = 1
    if sys.byteorder == "little":
        assert np.shares_memory(back.vector, np.frombuffer(raw, np.uint8))


def test_a_big_endian_host_gets_one_read_only_native_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wire's words in the other byte order than the host's: what a big-endian host
    sees (here emulated by swapping which order the wire claims)."""
    foreign = np.dtype(np.uint32).newbyteorder("S")
    monkeypatch.setitem(wire._ARRAY_DTYPES, 1, foreign)
    raw = wire.encode(MaskedInput(b"s" * 32, 0, 1, np.arange(4, dtype=np.uint32)))
    back = wire.decode(raw)
    assert isinstance(back, MaskedInput)
    words = raw[-4 - 16 : -4]  # the vector, before bad_boxes' count
    np.testing.assert_array_equal(back.vector, np.frombuffer(words, foreign))
    assert back.vector.dtype.isnative and not back.vector.flags.writeable
    assert not np.shares_memory(back.vector, np.frombuffer(raw, np.uint8))


@pytest.mark.parametrize(
    "wrap",
    [lambda b: b, memoryview, lambda b: memoryview(b).toreadonly()],
    ids=["bytearray", "memoryview", "read-only view of a bytearray"],
)
def test_a_mutable_buffer_is_copied(wrap: Any) -> None:
    msg = _bulk(vector=np.arange(50, dtype=np.uint32))
    raw = wire.encode(msg)
    buffer = bytearray(raw)
    back = wire.decode(wrap(buffer))
    buffer[:] = bytes(len(buffer))  # the caller reuses its buffer
    assert isinstance(back, Bulk)
    np.testing.assert_array_equal(back.vector, np.arange(50, dtype=np.uint32))
    assert back.chunks == (b"", b"abc") and back.ids == msg.ids and back.session == msg.session
    assert wire.encode(back) == raw


def test_a_slice_of_a_larger_buffer_decodes() -> None:
    raw = wire.encode(_bulk())
    framed = memoryview(b"head" + raw + b"tail")[4:-4]
    assert wire.encode(wire.decode(framed)) == raw


def test_a_strided_vector_encodes_its_entries() -> None:
    strided = np.arange(20, dtype=np.uint32)[::2]
    raw = wire.encode(MaskedInput(b"", 0, 0, strided))
    assert raw == wire.encode(MaskedInput(b"", 0, 0, strided.copy()))
    assert raw == _reference(MaskedInput(b"", 0, 0, strided))


# --- packed tuple[int, ...] ----------------------------------------------------------------
@pytest.mark.parametrize(
    "bad", [True, False, -1, 2**64, 1.0, "1", None, np.int64(-3), np.float64(2.0)]
)
def test_packed_ids_refuse_a_bad_element(bad: Any) -> None:
    for ids in ((bad,), (1, 2, bad), (bad, 5)):
        with pytest.raises(LocalProtocolError, match="as u64"):
            wire.encode(SurvivorsRequest(b"", 0, 0, ids))


def test_packed_ids_accept_numpy_integers_and_int_subclasses() -> None:
    plain = wire.encode(SurvivorsRequest(b"", 0, 0, (0, 3, 2**64 - 1)))
    mixed = (np.uint8(0), Mood.ODD, np.uint64(2**64 - 1))
    assert wire.encode(SurvivorsRequest(b"", 0, 0, mixed)) == plain


def test_a_roster_round_trips_as_python_ints() -> None:
    roster = tuple(range(0, 3000, 3))
    raw = wire.encode(ServerKeys(b"s", 0, 0, roster, ()))
    back = wire.decode(raw)
    assert isinstance(back, ServerKeys)
    assert back.roster == roster and all(type(i) is int for i in back.roster)
    assert raw == _reference(back)


# --- strictness of every field kind ---------------------------------------------------------
def test_every_truncation_and_extension_is_refused() -> None:
    raw = wire.encode(_bulk())
    for cut in range(len(raw)):
        with pytest.raises(WireError):
            wire.decode(raw[:cut])
    for extra in (b"\x00", b"\x01" * 9):
        with pytest.raises(WireError, match="trailing"):
            wire.decode(raw + extra)


def _count_offsets(msg: Bulk) -> dict[str, int]:
    """Offsets of the u32 counts in the encoding of ``msg`` (by field kind)."""
    raw = wire.encode(msg)
    at = len(raw) - len(_reference_field(Bulk, msg)) + 4 + len(msg.session) + 16
    offsets = {"ids": at}
    at += 4 + 8 * len(msg.ids)
    offsets["array"] = at + 1
    at += 5 + msg.vector.itemsize * len(msg.vector)
    offsets["leaves"] = at
    at += len(_reference_field(tuple[Leaf, ...], msg.leaves))
    offsets["str"] = at + 1  # after the Labelled's presence flag
    at += len(_reference_field(Labelled | None, msg.labelled))
    offsets["chunks"] = at
    offsets["bytes"] = at + 4  # the first chunk's length
    return offsets


@pytest.mark.parametrize("kind", ["ids", "array", "leaves", "str", "chunks", "bytes"])
@pytest.mark.parametrize("claim", [2**32 - 1, 2**31, 1000])
def test_an_over_long_count_is_refused_before_allocating(kind: str, claim: int) -> None:
    msg = _bulk()
    raw = bytearray(wire.encode(msg))
    at = _count_offsets(msg)[kind]
    assert raw[at : at + 4] != claim.to_bytes(4, "big")
    raw[at : at + 4] = claim.to_bytes(4, "big")
    data = bytes(raw)
    tracemalloc.start()
    try:
        with pytest.raises(WireError, match=r"claims|truncated"):
            wire.decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024


def test_the_count_offsets_are_right() -> None:
    msg = _bulk()
    raw = wire.encode(msg)
    offsets = _count_offsets(msg)
    read = {k: int.from_bytes(raw[at : at + 4], "big") for k, at in offsets.items()}
    assert read == {
        "ids": 3,
        "array": 6,
        "leaves": 2,
        "str": len("é".encode()),
        "chunks": 2,
        "bytes": 0,
    }


def _patched(msg: Bulk, old: bytes, new: bytes) -> bytes:
    raw = wire.encode(msg)
    assert raw.count(old) == 1
    return raw.replace(old, new)


def test_nested_bools_enums_flags_and_utf8_are_strict() -> None:
    leaf = Leaf(Mood.ODD, True, None)
    msg = _bulk(leaves=(leaf,), labelled=None, chunks=(), checked=())
    body = _reference_field(Leaf, leaf)
    assert body == b"\x03\x01\x00"
    cases = {
        b"\x02\x01\x00": "not a valid Mood",
        b"\x03\x02\x00": "bool",
        b"\x03\x01\x02": "bool",  # an optional's presence flag is a bool too
    }
    for bad, match in cases.items():
        with pytest.raises(WireError, match=match):
            wire.decode(_patched(msg, body, bad))
    text = _bulk(labelled=Labelled(label="ab", weight=0.0))
    with pytest.raises(WireError, match="UTF-8"):
        wire.decode(_patched(text, b"\x00\x00\x00\x02ab", b"\x00\x00\x00\x02a\xff"))


def test_a_struct_that_refuses_its_values_is_a_wire_error() -> None:
    raw = _patched(
        _bulk(), (2).to_bytes(8, "big") + b"\xbf\xf4", UNLUCKY.to_bytes(8, "big") + b"\xbf\xf4"
    )
    with pytest.raises(WireError, match="invalid Checked: this value is unlucky"):
        wire.decode(raw)


def test_decoding_any_prefix_of_a_roster_message_is_refused() -> None:
    raw = wire.encode(ServerKeys(b"s", 0, 0, tuple(range(100)), ()))
    for cut in range(len(raw) - 1, 0, -37):
        with pytest.raises(WireError):
            wire.decode(raw[:cut])


# --- encoding misuse ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        {"ids": [1, 2]},  # a list is not a tuple
        {"vector": [1, 2]},
        {"vector": np.zeros(2, np.int32)},
        {"leaves": (Labelled(label="", weight=0.0),)},
        {"leaves": (Leaf(3, True, None),)},  # type: ignore[arg-type]
        {"leaves": (Leaf(Mood.CALM, 1, None),)},  # type: ignore[arg-type]
        {"leaves": (Leaf(Mood.CALM, True, bytearray(b"x")),)},  # type: ignore[arg-type]
        {"labelled": Labelled(label=b"x", weight=0.0)},  # type: ignore[arg-type]
        {"labelled": Labelled(label="\ud800", weight=0.0)},  # a lone surrogate
        {"labelled": Labelled(label="", weight=True)},
        {"labelled": Labelled(label="", weight=10**400)},
        {"chunks": ("text",)},
        {"checked": (Checked(-1),)},
        {"ratio": "1.0"},
        {"round": True},
    ],
)
def test_encoding_misuse_of_every_kind_is_a_local_error(changes: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        wire.encode(_bulk(**changes))


def test_numbers_encode_like_their_python_values() -> None:
    plain = wire.encode(_bulk(ratio=2.0, round=3))
    assert wire.encode(_bulk(ratio=2, round=np.uint16(3))) == plain
    assert wire.encode(_bulk(ratio=np.float64(2.0), round=Mood.ODD)) == plain


def test_unencodable_struct_layouts_fail_at_registration() -> None:
    with pytest.raises(TypeError, match="cannot contain itself"):

        @wire.message("test-wire-bulk-bad", 1, tag=1)
        @dataclass(frozen=True, slots=True, eq=False)
        class Tree(Message):
            root: Node


# --- the codec's cost does not grow per struct beyond constructing it ----------------------
def _python_calls(fn: Any) -> int:
    """The Python-level function calls ``fn()`` makes (C functions not counted)."""
    calls = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        calls += event == "call"

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def _share_keys(k: int) -> bytes:
    boxes = tuple(EncryptedShare(p, bytes(100), b"s" * 16, b"b" * 16) for p in range(k))
    return wire.encode(ShareKeys(b"s" * 32, 1, 7, boxes, b"h" * 32))


def test_a_share_bundle_decodes_with_one_python_call_per_box() -> None:
    """Building each EncryptedShare (its dataclass ``__init__``) is the only Python-level
    call per box: the fields are read inline by the generated decoder."""
    small, large = _share_keys(10), _share_keys(78)
    extra = _python_calls(lambda: wire.decode(large)) - _python_calls(lambda: wire.decode(small))
    assert extra == 78 - 10


def test_a_roster_costs_a_constant_number_of_python_calls() -> None:
    def roster(n: int) -> SurvivorsRequest:
        return SurvivorsRequest(b"s", 0, 0, tuple(range(n)))

    short, long = roster(10), roster(1000)
    raw_short, raw_long = wire.encode(short), wire.encode(long)
    assert _python_calls(lambda: wire.decode(raw_long)) == _python_calls(
        lambda: wire.decode(raw_short)
    )
    assert _python_calls(lambda: wire.encode(long)) == _python_calls(lambda: wire.encode(short))


def test_the_generated_source_is_kept_for_reading() -> None:
    source = wire._CODECS[ShareKeys].source
    assert "def decode(buf, pos, end):" in source and "def encode(msg):" in source
    compile(source, "<check>", "exec")


# --- timings -------------------------------------------------------------------------------
def _benchmark() -> None:  # pragma: no cover (run by hand)
    import timeit

    from secagg.protocols.secaggplus.messages import PublicKeys

    session = bytes(range(32))
    rng = np.random.default_rng(0)
    vector = rng.integers(0, 2**32, 10**6, dtype=np.uint32)
    boxes = tuple(EncryptedShare(p, bytes([p]) * 100, b"s" * 16, b"b" * 16) for p in range(78))
    keys = tuple(PublicKeys(p, b"c" * 32, b"s" * 32, b"") for p in range(78))
    cases: dict[str, Message] = {
        "MaskedInput d=10^6 uint32": MaskedInput(session, 1, 7, vector),
        "ShareKeys k=78": ShareKeys(session, 1, 7, boxes, b"h" * 32),
        "SurvivorsRequest n=1000": SurvivorsRequest(session, 1, 0, tuple(range(0, 3000, 3))),
        "ServerKeys roster 1000, 78 keys": ServerKeys(session, 1, 0, tuple(range(1000)), keys),
    }
    for name, msg in cases.items():
        raw = wire.encode(msg)
        ops = {"encode": lambda m=msg: wire.encode(m), "decode": lambda r=raw: wire.decode(r)}
        for op, fn in ops.items():
            timer = timeit.Timer(fn)
            number, _ = timer.autorange()
            best = min(timer.repeat(7, number)) / number
            print(f"{name:32s} {op}  {best * 1e3:8.4f} ms  ({len(raw)} bytes)")


if __name__ == "__main__":
    _benchmark()

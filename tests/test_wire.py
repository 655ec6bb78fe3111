"""Wire format: round trips, canonical form, and a strict decoder that only raises WireError."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from secagg import wire
from secagg.errors import LocalProtocolError, SecAggError, WireError
from secagg.protocols.plain import Input
from secagg.wire import Message


class Colour(enum.IntEnum):
    RED = 1
    BLUE = 7


@dataclass(frozen=True, slots=True)
class Entry:
    receiver: int
    box: bytes


@wire.message("test-wire", 3, tag=1)
@dataclass(frozen=True, slots=True, eq=False)
class Everything(Message):
    flag: bool
    name: str
    ratio: float
    colour: Colour
    vector: npt.NDArray[Any]
    entries: tuple[Entry, ...]
    ids: tuple[int, ...]
    maybe: bytes | None


@wire.message("test-wire", 3, tag=2)
@dataclass(frozen=True, slots=True, eq=False)
class Small(Message):
    value: int


u64 = st.integers(0, 2**64 - 1)
vectors = st.one_of(
    hnp.arrays(np.uint32, st.integers(0, 50)), hnp.arrays(np.uint64, st.integers(0, 50))
)
everything = st.builds(
    Everything,
    session=st.binary(max_size=64),
    round=u64,
    sender=u64,
    flag=st.booleans(),
    name=st.text(max_size=20),
    ratio=st.floats(allow_nan=False),
    colour=st.sampled_from(Colour),
    vector=vectors,
    entries=st.lists(st.builds(Entry, receiver=u64, box=st.binary(max_size=40)), max_size=5).map(
        tuple
    ),
    ids=st.lists(u64, max_size=5).map(tuple),
    maybe=st.none() | st.binary(max_size=10),
)


@given(msg=everything)
def test_round_trip(msg: Everything) -> None:
    data = wire.encode(msg)
    back = wire.decode(data)
    assert isinstance(back, Everything)
    assert wire.same(back, msg)
    assert back.vector.dtype == msg.vector.dtype
    np.testing.assert_array_equal(back.vector, msg.vector)
    assert back.entries == msg.entries and back.maybe == msg.maybe and back.name == msg.name


@given(data=st.binary(max_size=200))
def test_random_bytes_raise_only_secagg_errors(data: bytes) -> None:
    try:
        msg = wire.decode(data)
    except SecAggError:
        return
    assert wire.encode(msg) == data  # anything that decodes is canonical


@given(msg=everything, data=st.data())
def test_mutated_messages_raise_only_secagg_errors_or_stay_canonical(
    msg: Everything, data: st.DataObject
) -> None:
    raw = bytearray(wire.encode(msg))
    edits = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), min_size=1, max_size=4
        )
    )
    for pos, value in edits:
        raw[pos] = value
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut]), bytes(raw) + b"\x00"):
        try:
            back = wire.decode(candidate)
        except SecAggError:
            continue
        assert wire.encode(back) == candidate


def _header(protocol: bytes = b"test-wire", version: int = 3, tag: int = 2) -> bytes:
    return (
        wire.MAGIC
        + bytes([wire.WIRE_VERSION, len(protocol)])
        + protocol
        + version.to_bytes(2, "big")
        + bytes([tag])
    )


def _small(value: int = 5) -> bytes:
    return wire.encode(Small(b"s" * 32, 1, 2, value))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"XXXX" + _small()[4:], "magic"),
        (_small()[:4] + b"\x09" + _small()[5:], "wire format version"),
        (_header(protocol=b"nope") + _small()[len(_header()) :], "unknown protocol"),
        (_header(version=4) + _small()[len(_header()) :], "version 4"),
        (_header(tag=99) + _small()[len(_header()) :], "unknown message tag"),
        (_small() + b"\x00", "trailing"),
        (_small()[:-1], "truncated"),
        (b"", "truncated"),
    ],
)
def test_decoder_names_what_is_wrong(data: bytes, match: str) -> None:
    with pytest.raises(WireError, match=match):
        wire.decode(data)


def test_protocol_filter() -> None:
    with pytest.raises(WireError, match="expected 'plain'"):
        wire.decode(_small(), protocol="plain")


def test_huge_length_field_does_not_allocate() -> None:
    """A u32 count of 2^32 - 1 array entries (16 GiB of uint32) is refused before allocation."""
    vec = np.zeros(1, dtype=np.uint32)
    raw = bytearray(wire.encode(Input(b"s" * 32, 0, 1, vec)))
    count_at = len(raw) - 4 - 4  # u32 count precedes the 4 data bytes
    raw[count_at : count_at + 4] = (2**32 - 1).to_bytes(4, "big")
    with pytest.raises(WireError, match="claims 4294967295 items"):
        wire.decode(bytes(raw))


def test_bool_and_enum_are_strict() -> None:
    msg = Everything(b"", 0, 0, True, "", 0.0, Colour.RED, np.zeros(0, np.uint32), (), (), None)
    raw = bytearray(wire.encode(msg))
    flag_at = len(_header(tag=1)) + 4 + 8 + 8
    raw[flag_at] = 2
    with pytest.raises(WireError, match="bool"):
        wire.decode(bytes(raw))
    raw[flag_at] = 1
    colour_at = flag_at + 1 + 4 + 8
    raw[colour_at] = 3
    with pytest.raises(WireError, match="Colour"):
        wire.decode(bytes(raw))


def test_invalid_utf8_is_refused() -> None:
    msg = Everything(b"", 0, 0, True, "ab", 0.0, Colour.RED, np.zeros(0, np.uint32), (), (), None)
    raw = bytearray(wire.encode(msg))
    name_at = len(_header(tag=1)) + 4 + 8 + 8 + 1 + 4
    raw[name_at] = 0xFF
    with pytest.raises(WireError, match="UTF-8"):
        wire.decode(bytes(raw))


def test_encoding_misuse_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        wire.encode(Small(b"", 0, -1, 0))  # negative ints have no u64 encoding
    with pytest.raises(LocalProtocolError):
        wire.encode(Input(b"", 0, 0, np.zeros(3, dtype=np.float32)))  # not a ring vector
    with pytest.raises(LocalProtocolError):
        wire.encode(Input(b"", 0, 0, np.zeros((2, 2), dtype=np.uint32)))


def test_registration_rejects_unsupported_fields_and_clashes() -> None:
    with pytest.raises(TypeError):

        @wire.message("test-wire-bad", 1, tag=1)
        @dataclass(frozen=True, slots=True, eq=False)
        class Bad(Message):
            payload: dict[str, int]

    with pytest.raises(TypeError):

        @wire.message("test-wire", 4, tag=9)  # same protocol, other version
        @dataclass(frozen=True, slots=True, eq=False)
        class OtherVersion(Message):
            value: int

    with pytest.raises(TypeError):

        @wire.message("test-wire", 3, tag=2)  # tag already taken by Small
        @dataclass(frozen=True, slots=True, eq=False)
        class Clash(Message):
            value: int


def test_every_registered_message_round_trips_its_layout() -> None:
    assert Input in wire.registered("plain")
    msg = Input(b"s" * 32, 7, 3, np.arange(5, dtype=np.uint32))
    data = wire.encode(msg)
    # magic, wire version, name, version, tag, session, round, sender, vector
    assert len(data) == 4 + 1 + 1 + 5 + 2 + 1 + (4 + 32) + 8 + 8 + (1 + 4 + 4 * 5)
    assert wire.same(wire.decode(data, protocol="plain"), msg)

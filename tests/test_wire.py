"""Wire format: round trips, canonical form, and a strict decoder that only raises WireError."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from typing_extensions import TypeAliasType

import secagg.protocols  # noqa: F401  (registers every protocol's messages)
from secagg import wire
from secagg.errors import LocalProtocolError, WireError
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


_Scalar = typing.TypeVar("_Scalar", bound=np.generic)
AliasedVector = TypeAliasType(
    "AliasedVector", np.ndarray[Any, np.dtype[_Scalar]], type_params=(_Scalar,)
)  # how numpy >= 2.5 defines NDArray


@wire.message("test-wire-alias", 1, tag=1)
@dataclass(frozen=True, slots=True, eq=False)
class Aliased(Message):
    values: AliasedVector[Any]  # type: ignore[valid-type]


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
def test_random_bytes_raise_only_wire_errors(data: bytes) -> None:
    try:
        msg = wire.decode(data)
    except WireError:
        return
    assert wire.encode(msg) == data  # anything that decodes is canonical


@given(msg=everything, data=st.data())
def test_mutated_messages_raise_only_wire_errors_or_stay_canonical(
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
        except WireError:
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


def _values(tp: Any) -> st.SearchStrategy[Any]:
    """Values of one wire field type (the types ``wire`` encodes)."""
    origin = typing.get_origin(tp)
    for alias in (tp, origin):
        if isinstance(alias, TypeAliasType) or type(alias).__name__ == "TypeAliasType":
            return _values(alias.__value__)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return u64
    if tp is bytes:
        return st.binary(max_size=40)
    if tp is str:
        return st.text(max_size=10)
    if tp is float:
        return st.floats(allow_nan=False)
    if tp is np.ndarray or origin is np.ndarray:
        return st.one_of(vectors, hnp.arrays(np.float64, st.integers(0, 20)))
    if isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        return st.sampled_from(tp)
    if origin is tuple:
        return st.lists(_values(typing.get_args(tp)[0]), max_size=3).map(tuple)
    if origin in (typing.Union, types.UnionType):
        (present,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return st.none() | _values(present)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _instances(tp)
    raise AssertionError(f"no strategy for wire field type {tp!r}")


def _instances(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: _values(hints[f.name]) for f in dataclasses.fields(cls)})


REGISTERED = wire.registered()


def test_the_registry_holds_every_protocols_messages() -> None:
    protocols_seen = {cls.PROTOCOL for cls in REGISTERED}
    assert {"plain", "secaggplus", "he"} <= protocols_seen
    assert len(wire.registered("secaggplus")) >= 9


@pytest.mark.parametrize("cls", REGISTERED, ids=lambda c: f"{c.PROTOCOL}.{c.__name__}")
@given(data=st.data())
def test_every_registered_message_round_trips_its_layout(
    cls: type[Message], data: st.DataObject
) -> None:
    """An instance of every registered message class (every field filled from its type)
    decodes to an equal message of the same class, behind the header of its protocol,
    version and tag, and re-encodes to the same bytes."""
    msg = data.draw(_instances(cls))
    raw = wire.encode(msg)
    name = cls.PROTOCOL.encode()
    header = wire.MAGIC + bytes([wire.WIRE_VERSION, len(name)]) + name
    assert raw.startswith(header + cls.VERSION.to_bytes(2, "big") + bytes([cls.TAG]))
    back = wire.decode(raw, protocol=cls.PROTOCOL)
    assert type(back) is cls
    assert wire.same(back, msg)
    assert (back.session, back.round, back.sender) == (msg.session, msg.round, msg.sender)
    assert wire.encode(back) == raw


def test_plain_input_layout_is_byte_exact() -> None:
    assert Input in wire.registered("plain")
    msg = Input(b"s" * 32, 7, 3, np.arange(5, dtype=np.uint32))
    data = wire.encode(msg)
    # magic, wire version, name, version, tag, session, round, sender, vector
    assert len(data) == 4 + 1 + 1 + 5 + 2 + 1 + (4 + 32) + 8 + 8 + (1 + 4 + 4 * 5)
    assert wire.same(wire.decode(data, protocol="plain"), msg)


def test_a_type_alias_field_encodes_as_its_value() -> None:
    """numpy >= 2.5 defines ``NDArray`` as a PEP 695 alias (``TypeAliasType``): a field
    annotated with one encodes as what it stands for (``Aliased``, through typing_extensions)."""
    msg = Aliased(b"s", 1, 2, np.arange(3, dtype=np.uint64))
    raw = wire.encode(msg)
    assert raw.endswith(b"\x02" + (3).to_bytes(4, "big") + msg.values.astype("<u8").tobytes())
    assert wire.same(wire.decode(raw, protocol="test-wire-alias"), msg)

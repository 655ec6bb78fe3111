"""Canonical, versioned binary encoding of protocol messages. No pickle, no JSON.

Layout of every message::

    magic      4 bytes   b"SAGG"
    wire       u8        wire-format version (WIRE_VERSION)
    protocol   u8 n + n ASCII bytes   protocol name ("plain", "secagg", ...)
    version    u16       protocol version
    tag        u8        message type within the protocol
    fields     the dataclass fields in declaration order (session, round, sender first)

Field encodings (big-endian integers):

    int         u64                     bool   u8 (0 or 1 only)
    bytes       u32 n + n bytes         str    u32 n + n UTF-8 bytes (strict)
    float       IEEE-754 binary64       Enum   u8 (an IntEnum's value)
    ndarray     u8 dtype (1 = uint32, 2 = uint64, 3 = float64) + u32 count + count
                little-endian words (float64 only for decrypted CKKS sums)
    tuple[T, ...]  u32 count + count T  T | None  u8 (0 absent, 1 present) + T
    dataclass   its fields, in order (a nested struct)

The encoding is canonical: ``encode(decode(b)) == b`` for every ``b`` that decodes. Decoding
is strict: a wrong magic, wire version, protocol, protocol version or tag, a truncated or
over-long buffer, a bool that is not 0/1, invalid UTF-8, an unknown enum value, or a count
larger than the bytes left raises :class:`~secagg.errors.WireError` before anything is
allocated (a length field of 2^32 never allocates 16 GB). Nothing else escapes the decoder.

Messages are frozen, slotted dataclasses registered with :func:`message`. Their equality is
by encoding (:func:`same`), because numpy arrays have no boolean ``==``.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from secagg.errors import LocalProtocolError, SecAggError, WireError

__all__ = [
    "MAGIC",
    "WIRE_VERSION",
    "Message",
    "decode",
    "encode",
    "message",
    "registered",
    "same",
]

MAGIC = b"SAGG"
WIRE_VERSION = 1
_U64_MAX = (1 << 64) - 1
_ARRAY_DTYPES: dict[int, np.dtype[Any]] = {
    1: np.dtype("<u4"),
    2: np.dtype("<u8"),
    3: np.dtype("<f8"),
}
_ARRAY_CODES = {np.dtype(np.uint32): 1, np.dtype(np.uint64): 2, np.dtype(np.float64): 3}


@dataclass(frozen=True, slots=True, eq=False)
class Message:
    """Base of every protocol message: the header fields every message carries.

    Attributes
    ----------
    session:
        The session id (binds the message to one task/run).
    round:
        The training round.
    sender:
        The sending client's id, or :data:`secagg.protocol.SERVER` for the server.
    """

    session: bytes
    round: int
    sender: int

    PROTOCOL: ClassVar[str] = ""
    VERSION: ClassVar[int] = 0
    TAG: ClassVar[int] = 0


M = TypeVar("M", bound=Message)


# --- reading ---------------------------------------------------------------------------------
class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> memoryview:
        if n > self.left:
            raise WireError(
                f"truncated message: need {n} bytes at offset {self.pos}, {self.left} left"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def count(self, min_item: int, what: str) -> int:
        n = self.uint(4)
        if n * min_item > self.left:
            raise WireError(f"{what} claims {n} items but only {self.left} bytes are left")
        return n


Encoder = Callable[[Any, bytearray], None]
Decoder = Callable[[_Reader], Any]


@dataclass(frozen=True, slots=True)
class _FieldCodec:
    encode: Encoder
    decode: Decoder
    min_size: int


def _enc_int(v: Any, out: bytearray) -> None:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or not 0 <= v <= _U64_MAX:
        raise LocalProtocolError(f"cannot encode {v!r} as u64")
    out += int(v).to_bytes(8, "big")


def _enc_bool(v: Any, out: bytearray) -> None:
    if not isinstance(v, bool):
        raise LocalProtocolError(f"cannot encode {v!r} as bool")
    out.append(1 if v else 0)


def _dec_bool(r: _Reader) -> bool:
    b = r.uint(1)
    if b > 1:
        raise WireError(f"bool must be 0 or 1, got {b}")
    return b == 1


def _enc_bytes(v: Any, out: bytearray) -> None:
    if not isinstance(v, bytes):
        raise LocalProtocolError(f"cannot encode {type(v).__name__} as bytes")
    if len(v) > 0xFFFFFFFF:
        raise LocalProtocolError("bytes field longer than 2^32 - 1")
    out += len(v).to_bytes(4, "big") + v


def _dec_bytes(r: _Reader) -> bytes:
    return bytes(r.take(r.count(1, "bytes field")))


def _enc_str(v: Any, out: bytearray) -> None:
    if not isinstance(v, str):
        raise LocalProtocolError(f"cannot encode {type(v).__name__} as str")
    _enc_bytes(v.encode("utf-8"), out)


def _dec_str(r: _Reader) -> str:
    raw = _dec_bytes(r)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(f"invalid UTF-8 in string field: {exc.reason}") from exc


def _enc_float(v: Any, out: bytearray) -> None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise LocalProtocolError(f"cannot encode {v!r} as float")
    out += struct.pack(">d", float(v))


def _dec_float(r: _Reader) -> float:
    value: float = struct.unpack(">d", r.take(8))[0]
    return value


def _enc_array(v: Any, out: bytearray) -> None:
    if not isinstance(v, np.ndarray) or v.ndim != 1 or v.dtype not in _ARRAY_CODES:
        got = f"{v.dtype} {v.shape}" if isinstance(v, np.ndarray) else type(v).__name__
        raise LocalProtocolError(f"only 1-D uint32/uint64/float64 arrays go on the wire, got {got}")
    if len(v) > 0xFFFFFFFF:
        raise LocalProtocolError("array longer than 2^32 - 1 entries")
    code = _ARRAY_CODES[v.dtype]
    out.append(code)
    out += len(v).to_bytes(4, "big")
    out += np.ascontiguousarray(v, dtype=_ARRAY_DTYPES[code]).tobytes()


def _dec_array(r: _Reader) -> np.ndarray[Any, Any]:
    code = r.uint(1)
    if code not in _ARRAY_DTYPES:
        raise WireError(f"unknown array dtype code {code}")
    dtype = _ARRAY_DTYPES[code]
    n = r.count(dtype.itemsize, "array")
    return np.frombuffer(r.take(n * dtype.itemsize), dtype=dtype).astype(dtype.newbyteorder("="))


def _codec_for(tp: Any, owner: str) -> _FieldCodec:
    """Build the codec of one annotated type (fails at registration for unsupported types)."""
    origin = typing.get_origin(tp)
    for alias in (tp, origin):  # a PEP 695 alias, e.g. numpy >= 2.5's NDArray: its value
        if type(alias).__name__ == "TypeAliasType":
            return _codec_for(alias.__value__, owner)
    if tp is bool:
        return _FieldCodec(_enc_bool, _dec_bool, 1)
    if tp is int:
        return _FieldCodec(_enc_int, lambda r: r.uint(8), 8)
    if tp is bytes:
        return _FieldCodec(_enc_bytes, _dec_bytes, 4)
    if tp is str:
        return _FieldCodec(_enc_str, _dec_str, 4)
    if tp is float:
        return _FieldCodec(_enc_float, _dec_float, 8)
    if tp is np.ndarray or origin is np.ndarray:
        return _FieldCodec(_enc_array, _dec_array, 5)
    if isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        return _enum_codec(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"{owner}: only homogeneous tuple[T, ...] fields are supported")
        return _tuple_codec(_codec_for(args[0], owner))
    if origin in (typing.Union, types.UnionType):
        present = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(present) != 1 or len(typing.get_args(tp)) != 2:
            raise TypeError(f"{owner}: only `T | None` unions are supported")
        return _optional_codec(_codec_for(present[0], owner))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _struct_codec(tp)
    raise TypeError(f"{owner}: type {tp!r} has no wire encoding")


def _enum_codec(tp: type[enum.IntEnum]) -> _FieldCodec:
    if any(not 0 <= m.value <= 255 for m in tp):
        raise TypeError(f"{tp.__name__}: wire enums must have values in [0, 255]")

    def enc(v: Any, out: bytearray) -> None:
        if not isinstance(v, tp):
            raise LocalProtocolError(f"cannot encode {v!r} as {tp.__name__}")
        out.append(int(v))

    def dec(r: _Reader) -> Any:
        raw = r.uint(1)
        try:
            return tp(raw)
        except ValueError as exc:
            raise WireError(f"{raw} is not a valid {tp.__name__}") from exc

    return _FieldCodec(enc, dec, 1)


def _tuple_codec(item: _FieldCodec) -> _FieldCodec:
    def enc(v: Any, out: bytearray) -> None:
        if not isinstance(v, tuple):
            raise LocalProtocolError(f"cannot encode {type(v).__name__} as a tuple")
        out += len(v).to_bytes(4, "big")
        for x in v:
            item.encode(x, out)

    def dec(r: _Reader) -> tuple[Any, ...]:
        n = r.count(item.min_size, "tuple")
        return tuple(item.decode(r) for _ in range(n))

    return _FieldCodec(enc, dec, 4)


def _optional_codec(item: _FieldCodec) -> _FieldCodec:
    def enc(v: Any, out: bytearray) -> None:
        if v is None:
            out.append(0)
        else:
            out.append(1)
            item.encode(v, out)

    def dec(r: _Reader) -> Any:
        return item.decode(r) if _dec_bool(r) else None

    return _FieldCodec(enc, dec, 1)


_STRUCTS: dict[type, tuple[tuple[str, _FieldCodec], ...]] = {}


def _struct_fields(cls: type) -> tuple[tuple[str, _FieldCodec], ...]:
    if cls not in _STRUCTS:
        hints = typing.get_type_hints(cls)
        fields = tuple(
            (f.name, _codec_for(hints[f.name], f"{cls.__name__}.{f.name}"))
            for f in dataclasses.fields(cls)
        )
        if not fields:
            raise TypeError(f"{cls.__name__}: a wire struct needs at least one field")
        _STRUCTS[cls] = fields
    return _STRUCTS[cls]


def _build(cls: type, r: _Reader) -> Any:
    values = {name: codec.decode(r) for name, codec in _struct_fields(cls)}
    try:
        return cls(**values)
    except SecAggError:
        raise
    except Exception as exc:  # a __post_init__ check of the message itself
        raise WireError(f"invalid {cls.__name__}: {exc}") from exc


def _struct_codec(cls: type) -> _FieldCodec:
    fields = _struct_fields(cls)

    def enc(v: Any, out: bytearray) -> None:
        if not isinstance(v, cls):
            raise LocalProtocolError(f"cannot encode {type(v).__name__} as {cls.__name__}")
        for name, codec in fields:
            codec.encode(getattr(v, name), out)

    return _FieldCodec(enc, lambda r: _build(cls, r), sum(c.min_size for _, c in fields))


# --- registry --------------------------------------------------------------------------------
_MESSAGES: dict[tuple[str, int], type[Message]] = {}
_VERSIONS: dict[str, int] = {}


def message(protocol: str, version: int, tag: int) -> Callable[[type[M]], type[M]]:
    """Class decorator: register a frozen dataclass message type of ``protocol``.

    Use below ``@dataclass(frozen=True, slots=True, eq=False)``::

        @wire.message("plain", version=1, tag=1)
        @dataclass(frozen=True, slots=True, eq=False)
        class Input(Message):
            vector: npt.NDArray[np.uint32]
    """
    if not protocol.isascii() or not 0 < len(protocol) < 256:
        raise TypeError(f"protocol name must be 1..255 ASCII characters, got {protocol!r}")
    if not 0 <= version <= 0xFFFF or not 0 <= tag <= 255:
        raise TypeError("version must fit u16 and tag u8")

    def register(cls: type[M]) -> type[M]:
        if not (dataclasses.is_dataclass(cls) and issubclass(cls, Message)):
            raise TypeError(f"{cls.__name__} must be a dataclass subclass of Message")
        if _VERSIONS.setdefault(protocol, version) != version:
            raise TypeError(f"protocol {protocol!r} is registered with another version")
        key = (protocol, tag)
        if key in _MESSAGES and _MESSAGES[key].__qualname__ != cls.__qualname__:
            raise TypeError(f"tag {tag} of {protocol!r} already names {_MESSAGES[key].__name__}")
        cls.PROTOCOL, cls.VERSION, cls.TAG = protocol, version, tag
        _struct_fields(cls)  # fail now, not on the first message, for unsupported field types
        _MESSAGES[key] = cls
        return cls

    return register


def registered(protocol: str | None = None) -> list[type[Message]]:
    """The registered message types (of one protocol, or all)."""
    return [c for (p, _), c in sorted(_MESSAGES.items()) if protocol in (None, p)]


def encode(msg: Message) -> bytes:
    """The canonical bytes of ``msg``. Misuse (wrong field types) raises LocalProtocolError."""
    cls = type(msg)
    if _MESSAGES.get((cls.PROTOCOL, cls.TAG)) is not cls:
        raise LocalProtocolError(f"{cls.__name__} is not a registered wire message")
    name = cls.PROTOCOL.encode("ascii")
    out = bytearray(MAGIC)
    out.append(WIRE_VERSION)
    out.append(len(name))
    out += name
    out += cls.VERSION.to_bytes(2, "big")
    out.append(cls.TAG)
    for field_name, codec in _struct_fields(cls):
        codec.encode(getattr(msg, field_name), out)
    return bytes(out)


def decode(data: bytes, *, protocol: str | None = None) -> Message:
    """Parse canonical bytes into a message; raise :class:`WireError` on anything else.

    Parameters
    ----------
    data:
        The received bytes.
    protocol:
        When given, a message of any other protocol is rejected.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError(f"expected bytes, got {type(data).__name__}")
    r = _Reader(bytes(data))
    if bytes(r.take(len(MAGIC))) != MAGIC:
        raise WireError("not a secagg message (bad magic)")
    wire_version = r.uint(1)
    if wire_version != WIRE_VERSION:
        raise WireError(f"wire format version {wire_version}, this build speaks {WIRE_VERSION}")
    raw_name = bytes(r.take(r.uint(1)))
    if not raw_name.isascii():
        raise WireError("protocol name is not ASCII")
    name = raw_name.decode("ascii")
    if protocol is not None and name != protocol:
        raise WireError(f"message of protocol {name!r}, expected {protocol!r}")
    if name not in _VERSIONS:
        raise WireError(f"unknown protocol {name!r}")
    version = r.uint(2)
    if version != _VERSIONS[name]:
        raise WireError(f"{name} message version {version}, this build speaks {_VERSIONS[name]}")
    tag = r.uint(1)
    cls = _MESSAGES.get((name, tag))
    if cls is None:
        raise WireError(f"unknown message tag {tag} for protocol {name!r}")
    msg = _build(cls, r)
    if r.left:
        raise WireError(f"{r.left} trailing bytes after {cls.__name__}")
    result: Message = msg
    return result


def same(a: Message, b: Message) -> bool:
    """Message equality: same canonical encoding."""
    return encode(a) == encode(b)

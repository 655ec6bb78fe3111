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

How the codec runs (the format above does not depend on it):

- Registration compiles, once per message class, one decoder and one encoder function from
  generated Python source (:func:`_message_codec`; the source is kept in
  ``_CODECS[cls].source`` and shows in tracebacks). Every field is read or written inline
  with local variables, nested structs and tuples of structs included, so a tuple of k
  structs costs one loop and k dataclass constructions, not k * fields function calls.
  Consecutive fixed-size values (ints, bools, floats, enums, length prefixes) are read or
  written with one precompiled :class:`struct.Struct` call.
- ``tuple[int, ...]`` (rosters, survivor sets) is read with one :mod:`struct` call and
  written with one, after checking every element.
- Decoding works on the received ``bytes`` without copying them. A decoded ``ndarray`` is a
  **read-only view** into those bytes (on a little-endian host; a big-endian host makes the
  one byte-swapped copy, also read-only): a machine that wants to change a received vector
  copies it first. A ``bytearray`` or ``memoryview`` is copied once on entry, because the
  caller may change it after ``decode`` returns. The view keeps the whole received buffer
  alive, and its words are only as aligned as their offset in the message.
- Encoding collects the parts of a message in a list and joins them once, so a large vector
  is copied once, into the returned ``bytes``.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import linecache
import struct
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

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
_U32_MAX = (1 << 32) - 1
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


# --- run-time helpers of the generated code --------------------------------------------------
# Decoding: ``buf`` is the received bytes, ``pos`` the offset of the next field, ``end`` is
# ``len(buf)``. The error builders return the WireError; the generated code raises it.
def _truncated(need: int, pos: int, end: int) -> WireError:
    return WireError(f"truncated message: need {need} bytes at offset {pos}, {end - pos} left")


def _overclaim(what: str, count: int, left: int) -> WireError:
    return WireError(f"{what} claims {count} items but only {left} bytes are left")


def _bad_bool(value: int) -> WireError:
    return WireError(f"bool must be 0 or 1, got {value}")


def _bad_enum(value: int, tp: type[enum.IntEnum]) -> WireError:
    return WireError(f"{value} is not a valid {tp.__name__}")


def _bad_utf8(exc: UnicodeDecodeError) -> WireError:
    return WireError(f"invalid UTF-8 in string field: {exc.reason}")


def _invalid(cls: type, exc: Exception) -> WireError:
    """A dataclass refused the decoded values (a ``__post_init__`` check of the message)."""
    return WireError(f"invalid {cls.__name__}: {exc}")


def _dec_array(
    buf: bytes, pos: int, end: int, code: int, count: int
) -> tuple[npt.NDArray[Any], int]:
    """The array of ``count`` words of dtype ``code`` at ``pos``, as a read-only view of
    ``buf`` (a read-only copy on a big-endian host), and the offset after it."""
    dtype = _ARRAY_DTYPES.get(code)
    if dtype is None:
        raise WireError(f"unknown array dtype code {code}")
    size = count * dtype.itemsize
    if size > end - pos:
        raise _overclaim("array", count, end - pos)
    words = np.frombuffer(buf, dtype, count, pos)  # bytes are immutable: read-only, no copy
    if not dtype.isnative:
        words = words.astype(dtype.newbyteorder("="))
        words.flags.writeable = False
    return words, pos + size


def _dec_u64s(buf: bytes, pos: int, count: int) -> tuple[int, ...]:
    """``count`` big-endian u64 at ``pos``, with one ``struct`` call (the caller checked
    that they are there)."""
    values: tuple[int, ...] = struct.unpack_from(f">{count}Q", buf, pos)
    return values


# Encoding: the fast paths are inlined (``type(v) is int`` ...); these are the slow paths,
# which either return the value in the form the encoder writes or raise LocalProtocolError.
def _refuse(value: Any, what: str) -> LocalProtocolError:
    return LocalProtocolError(f"cannot encode {value!r} as {what}")


def _refuse_type(value: Any, what: str) -> LocalProtocolError:
    return LocalProtocolError(f"cannot encode {type(value).__name__} as {what}")


def _u64(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or not 0 <= v <= _U64_MAX:
        raise _refuse(v, "u64")
    return int(v)


def _u64_words(values: tuple[Any, ...]) -> bytes:
    """The big-endian u64 words of a ``tuple[int, ...]``, every element checked as
    :func:`_u64` checks it: plain ints in one pass over their types and one ``struct``
    call (which refuses any out of range), anything else one by one."""
    layout = f">{len(values)}Q"
    if set(map(type, values)) == {int}:
        try:
            return struct.pack(layout, *values)
        except struct.error:
            pass  # some int out of range: _u64 names it
    return struct.pack(layout, *map(_u64, values))


def _f64(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _refuse(v, "float")
    try:
        return float(v)
    except OverflowError as exc:  # an int beyond the float range
        raise _refuse(v, "float") from exc


def _bytes_field(v: Any) -> bytes:
    if not isinstance(v, bytes):
        raise _refuse_type(v, "bytes")
    if len(v) > _U32_MAX:
        raise LocalProtocolError("bytes field longer than 2^32 - 1")
    return v


def _str_field(v: Any) -> bytes:
    if not isinstance(v, str):
        raise _refuse_type(v, "str")
    try:
        return _bytes_field(v.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate
        raise LocalProtocolError(f"cannot encode {v!r} as UTF-8: {exc.reason}") from exc


def _tuple_field(v: Any) -> tuple[Any, ...]:
    if not isinstance(v, tuple):
        raise _refuse_type(v, "a tuple")
    if len(v) > _U32_MAX:
        raise LocalProtocolError("tuple longer than 2^32 - 1 items")
    return v


def _array_words(v: Any) -> tuple[int, npt.NDArray[Any]]:
    """The dtype code and the contiguous little-endian words of an array field (the same
    array, not a copy, when it already is one: the final join copies it once)."""
    if not isinstance(v, np.ndarray) or v.ndim != 1 or v.dtype not in _ARRAY_CODES:
        got = f"{v.dtype} {v.shape}" if isinstance(v, np.ndarray) else type(v).__name__
        raise LocalProtocolError(f"only 1-D uint32/uint64/float64 arrays go on the wire, got {got}")
    if len(v) > _U32_MAX:
        raise LocalProtocolError("array longer than 2^32 - 1 entries")
    code = _ARRAY_CODES[v.dtype]
    return code, np.ascontiguousarray(v, dtype=_ARRAY_DTYPES[code])


_RUNTIME: dict[str, Any] = {
    "_SecAggError": SecAggError,
    "_array_words": _array_words,
    "_bad_bool": _bad_bool,
    "_bad_enum": _bad_enum,
    "_bad_utf8": _bad_utf8,
    "_bytes_field": _bytes_field,
    "_dec_array": _dec_array,
    "_dec_u64s": _dec_u64s,
    "_f64": _f64,
    "_invalid": _invalid,
    "_join": b"".join,
    "_overclaim": _overclaim,
    "_refuse": _refuse,
    "_refuse_type": _refuse_type,
    "_str_field": _str_field,
    "_truncated": _truncated,
    "_tuple_field": _tuple_field,
    "_u64": _u64,
    "_u64_words": _u64_words,
}
"""The globals every generated function sees (plus its own constants)."""


# --- code generation -------------------------------------------------------------------------
class _Names:
    """The globals of one message's generated functions, and fresh identifiers for them."""

    def __init__(self) -> None:
        self.globals: dict[str, Any] = dict(_RUNTIME)
        self._ids = itertools.count()

    def fresh(self, hint: str) -> str:
        """A new local variable name. The ``_<n>`` suffix (n never repeats) keeps it apart
        from every other generated name and from the fixed ones (``buf``, ``pos``, ...)."""
        return f"{hint}_{next(self._ids)}"

    def const(self, value: Any, hint: str) -> str:
        """Make ``value`` a global of the generated code; return its name. Classes, structs
        and byte strings enter the source only this way, never as text."""
        name = f"_{hint}_{next(self._ids)}"
        self.globals[name] = value
        return name


class _Source:
    """The body of one generated function, built statement by statement.

    Fixed-size reads (decoder) or writes (encoder) are held back and merged into one
    precompiled :class:`struct.Struct` call, emitted by :meth:`flush` before the next
    statement that needs them and before every change of indentation.
    """

    def __init__(self, names: _Names) -> None:
        self.names = names
        self.lines: list[str] = []
        self._depth = 1
        self._fmt = ""
        self._pending: list[str] = []

    def line(self, text: str) -> None:
        """Emit one statement after the held-back fixed-size values."""
        self.flush()
        self._emit(text)

    def open(self, header: str) -> None:
        """Emit a compound statement's header (``for ...:``, ``if ...:``) and indent."""
        self.line(header)
        self._depth += 1

    def close(self) -> None:
        """End the innermost block."""
        self.flush()
        self._depth -= 1

    def hold(self, code: str, name: str) -> None:
        """Hold back one fixed-size value: ``code`` is its :mod:`struct` format character."""
        self._fmt += code
        self._pending.append(name)

    def flush(self) -> None:
        if self._fmt:
            layout = struct.Struct(">" + self._fmt)
            pending = ", ".join(self._pending)
            self._fmt, self._pending = "", []
            self._emit_fixed(layout, pending)

    def _emit(self, text: str) -> None:
        self.lines.append("    " * self._depth + text)

    def _emit_fixed(self, layout: struct.Struct, pending: str) -> None:
        raise NotImplementedError

    def function(self, signature: str) -> str:
        """The source of the whole function."""
        self.flush()
        return "\n".join([f"def {signature}:", *self.lines]) + "\n"


class _DecoderSource(_Source):
    """A decoder body: reads at ``pos`` in ``buf`` (``end == len(buf)``) and advances ``pos``."""

    def read(self, code: str, hint: str) -> str:
        """Read one fixed-size value; return the local it is bound to (once flushed)."""
        name = self.names.fresh(hint)
        self.hold(code, name)
        return name

    def _emit_fixed(self, layout: struct.Struct, pending: str) -> None:
        unpack = self.names.const(layout.unpack_from, "unpack")
        self._emit(f"if end - pos < {layout.size}:")
        self._emit(f"    raise _truncated({layout.size}, pos, end)")
        self._emit(f"{pending}, = {unpack}(buf, pos)")
        self._emit(f"pos += {layout.size}")


class _EncoderSource(_Source):
    """An encoder body: appends byte strings (or arrays) to ``parts`` through ``ap``."""

    def check(self, text: str) -> None:
        """Emit a statement that validates or loads a value but writes nothing: it does
        not flush, so the fixed-size values around it still merge."""
        self._emit(text)

    def write(self, code: str, expr: str) -> None:
        """Write the value of ``expr`` as one fixed-size value."""
        self.hold(code, expr)

    def part(self, expr: str) -> None:
        """Append the bytes of ``expr`` (a bytes-like object)."""
        self.line(f"ap({expr})")

    def _emit_fixed(self, layout: struct.Struct, pending: str) -> None:
        pack = self.names.const(layout.pack, "pack")
        self._emit(f"ap({pack}({pending}))")


class _Kind:
    """How values of one annotated field type are read and written by generated code."""

    min_size: int = 1
    """The fewest bytes a value takes on the wire (bounds the count of a tuple)."""

    def decode(self, src: _DecoderSource) -> str:
        """Emit code that reads one value at ``pos``; return the local bound to it."""
        raise NotImplementedError

    def encode(self, src: _EncoderSource, value: str) -> None:
        """Emit code that checks the local ``value`` and writes its bytes. It may rebind
        ``value`` (to the checked form) before the first write."""
        raise NotImplementedError


class _Int(_Kind):
    min_size = 8

    def decode(self, src: _DecoderSource) -> str:
        return src.read("Q", "i")

    def encode(self, src: _EncoderSource, value: str) -> None:
        src.check(
            f"if type({value}) is not int or not 0 <= {value} <= {_U64_MAX}: "
            f"{value} = _u64({value})"
        )
        src.write("Q", value)


class _Bool(_Kind):
    def decode(self, src: _DecoderSource) -> str:
        raw, flag = src.read("B", "raw"), src.names.fresh("flag")
        src.line(f"if {raw} > 1: raise _bad_bool({raw})")
        src.line(f"{flag} = {raw} == 1")
        return flag

    def encode(self, src: _EncoderSource, value: str) -> None:
        src.check(f"if type({value}) is not bool: raise _refuse({value}, 'bool')")
        src.write("B", value)


class _Float(_Kind):
    min_size = 8

    def decode(self, src: _DecoderSource) -> str:
        return src.read("d", "f")

    def encode(self, src: _EncoderSource, value: str) -> None:
        src.check(f"if type({value}) is not float: {value} = _f64({value})")
        src.write("d", value)


class _Enum(_Kind):
    def __init__(self, tp: type[enum.IntEnum]) -> None:
        if any(not 0 <= m.value <= 255 for m in tp):
            raise TypeError(f"{tp.__name__}: wire enums must have values in [0, 255]")
        self.tp = tp
        self.members = tuple(self._member(tp, raw) for raw in range(256))

    @staticmethod
    def _member(tp: type[enum.IntEnum], raw: int) -> enum.IntEnum | None:
        try:
            return tp(raw)
        except ValueError:
            return None

    def decode(self, src: _DecoderSource) -> str:
        raw, member = src.read("B", "raw"), src.names.fresh("member")
        table, tp = src.names.const(self.members, "members"), src.names.const(self.tp, "enum")
        src.line(f"{member} = {table}[{raw}]")
        src.line(f"if {member} is None: raise _bad_enum({raw}, {tp})")
        return member

    def encode(self, src: _EncoderSource, value: str) -> None:
        tp = src.names.const(self.tp, "enum")
        src.check(f"if not isinstance({value}, {tp}): raise _refuse({value}, {tp}.__name__)")
        src.write("B", value)


def _dec_sized(src: _DecoderSource, hint: str) -> str:
    """Emit the read of a u32-length-prefixed byte string; return the local holding it."""
    size, raw = src.read("I", "size"), src.names.fresh(hint)
    src.line(f"if {size} > end - pos: raise _overclaim('bytes field', {size}, end - pos)")
    src.line(f"{raw} = buf[pos:pos + {size}]")
    src.line(f"pos += {size}")
    return raw


class _Bytes(_Kind):
    min_size = 4

    def decode(self, src: _DecoderSource) -> str:
        return _dec_sized(src, "b")

    def encode(self, src: _EncoderSource, value: str) -> None:
        src.check(
            f"if type({value}) is not bytes or len({value}) > {_U32_MAX}: "
            f"{value} = _bytes_field({value})"
        )
        src.write("I", f"len({value})")
        src.part(value)


class _Str(_Kind):
    min_size = 4

    def decode(self, src: _DecoderSource) -> str:
        raw, text = _dec_sized(src, "utf8"), src.names.fresh("s")
        src.open("try:")
        src.line(f"{text} = {raw}.decode('utf-8')")
        src.close()
        src.open("except UnicodeDecodeError as exc:")
        src.line("raise _bad_utf8(exc) from exc")
        src.close()
        return text

    def encode(self, src: _EncoderSource, value: str) -> None:
        raw = src.names.fresh("utf8")
        src.check(f"{raw} = _str_field({value})")
        src.write("I", f"len({raw})")
        src.part(raw)


class _Array(_Kind):
    min_size = 5

    def decode(self, src: _DecoderSource) -> str:
        code, count, words = src.read("B", "code"), src.read("I", "count"), src.names.fresh("a")
        src.line(f"{words}, pos = _dec_array(buf, pos, end, {code}, {count})")
        return words

    def encode(self, src: _EncoderSource, value: str) -> None:
        code, words = src.names.fresh("code"), src.names.fresh("words")
        src.check(f"{code}, {words} = _array_words({value})")
        src.write("B", code)
        src.write("I", f"len({words})")
        src.part(words)


class _Tuple(_Kind):
    min_size = 4

    def __init__(self, item: _Kind) -> None:
        self.item = item

    def decode(self, src: _DecoderSource) -> str:
        count, out = src.read("I", "count"), src.names.fresh("t")
        room = f"{count} * {self.item.min_size} > end - pos"
        src.line(f"if {room}: raise _overclaim('tuple', {count}, end - pos)")
        if isinstance(self.item, _Int):
            src.line(f"{out} = _dec_u64s(buf, pos, {count})")
            src.line(f"pos += 8 * {count}")
            return out
        items = src.names.fresh("items")
        src.line(f"{items} = []")
        src.open(f"for _ in range({count}):")
        src.line(f"{items}.append({self.item.decode(src)})")
        src.close()
        src.line(f"{out} = tuple({items})")
        return out

    def encode(self, src: _EncoderSource, value: str) -> None:
        src.check(
            f"if type({value}) is not tuple or len({value}) > {_U32_MAX}: "
            f"{value} = _tuple_field({value})"
        )
        if isinstance(self.item, _Int):
            words = src.names.fresh("words")
            src.check(f"{words} = _u64_words({value})")
            src.write("I", f"len({value})")
            src.part(words)
            return
        src.write("I", f"len({value})")
        each = src.names.fresh("each")
        src.open(f"for {each} in {value}:")
        self.item.encode(src, each)
        src.close()


class _Optional(_Kind):
    def __init__(self, item: _Kind) -> None:
        self.item = item

    def decode(self, src: _DecoderSource) -> str:
        flag, out = src.read("B", "present"), src.names.fresh("o")
        src.open(f"if {flag} == 1:")
        src.line(f"{out} = {self.item.decode(src)}")
        src.close()
        src.open(f"elif {flag}:")
        src.line(f"raise _bad_bool({flag})")
        src.close()
        src.open("else:")
        src.line(f"{out} = None")
        src.close()
        return out

    def encode(self, src: _EncoderSource, value: str) -> None:
        src.open(f"if {value} is None:")
        src.write("B", "0")
        src.close()
        src.open("else:")
        src.write("B", "1")
        self.item.encode(src, value)
        src.close()


class _Struct(_Kind):
    """A dataclass: its fields in order, inlined into the code of whatever contains it."""

    def __init__(self, cls: type, fields: tuple[tuple[str, _Kind], ...]) -> None:
        if not fields:
            raise TypeError(f"{cls.__name__}: a wire struct needs at least one field")
        self.cls = cls
        self.fields = fields
        self.min_size = sum(kind.min_size for _, kind in fields)
        # Pass the fields positionally (cheaper) when __init__ takes them all, in order;
        # else by keyword (a field left out of __init__ then fails as a WireError).
        self.positional = all(f.init and not f.kw_only for f in dataclasses.fields(cls))

    def decode(self, src: _DecoderSource) -> str:
        values = [
            kind.decode(src) if self.positional else f"{name}={kind.decode(src)}"
            for name, kind in self.fields
        ]
        cls, out = src.names.const(self.cls, "cls"), src.names.fresh("obj")
        src.open("try:")
        src.line(f"{out} = {cls}({', '.join(values)})")
        src.close()
        src.open("except _SecAggError:")
        src.line("raise")
        src.close()
        src.open("except Exception as exc:")  # a __post_init__ check of the dataclass
        src.line(f"raise _invalid({cls}, exc) from exc")
        src.close()
        return out

    def encode(self, src: _EncoderSource, value: str, *, checked: bool = False) -> None:
        if not checked:
            cls = src.names.const(self.cls, "cls")
            src.check(
                f"if not isinstance({value}, {cls}): raise _refuse_type({value}, {cls}.__name__)"
            )
        for name, kind in self.fields:
            local = src.names.fresh(name)
            src.check(f"{local} = {value}.{name}")
            kind.encode(src, local)


_STRUCTS: dict[type, _Struct] = {}
_BUILDING: set[type] = set()  # structs whose fields are being resolved (a cycle is an error)


def _struct_kind(cls: type) -> _Struct:
    """The (cached) kind of a dataclass; fails for a field type without a wire encoding."""
    kind = _STRUCTS.get(cls)
    if kind is None:
        if cls in _BUILDING:
            raise TypeError(f"{cls.__name__}: a wire struct cannot contain itself")
        _BUILDING.add(cls)
        try:
            hints = typing.get_type_hints(cls)
            fields = tuple(
                (f.name, _kind_for(hints[f.name], f"{cls.__name__}.{f.name}"))
                for f in dataclasses.fields(cls)
            )
        finally:
            _BUILDING.discard(cls)
        kind = _STRUCTS[cls] = _Struct(cls, fields)
    return kind


def _kind_for(tp: Any, owner: str) -> _Kind:
    """The kind of one annotated type (fails at registration for unsupported types)."""
    origin = typing.get_origin(tp)
    for alias in (tp, origin):  # a PEP 695 alias, e.g. numpy >= 2.5's NDArray: its value
        if type(alias).__name__ == "TypeAliasType":
            return _kind_for(alias.__value__, owner)
    if tp is bool:
        return _Bool()
    if tp is int:
        return _Int()
    if tp is bytes:
        return _Bytes()
    if tp is str:
        return _Str()
    if tp is float:
        return _Float()
    if tp is np.ndarray or origin is np.ndarray:
        return _Array()
    if isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        return _Enum(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"{owner}: only homogeneous tuple[T, ...] fields are supported")
        return _Tuple(_kind_for(args[0], owner))
    if origin in (typing.Union, types.UnionType):
        present = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(present) != 1 or len(typing.get_args(tp)) != 2:
            raise TypeError(f"{owner}: only `T | None` unions are supported")
        return _Optional(_kind_for(present[0], owner))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _struct_kind(tp)
    raise TypeError(f"{owner}: type {tp!r} has no wire encoding")


@dataclass(frozen=True, slots=True)
class _MessageCodec:
    """The generated functions of one registered message class.

    Attributes
    ----------
    header:
        The message's constant header (magic to tag).
    encode:
        ``encode(msg) -> bytes``: the whole message, header included.
    decode:
        ``decode(buf, pos, end) -> (msg, pos)``: the fields at ``pos`` (after the header).
    source:
        The generated Python source of both.
    """

    header: bytes
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes, int, int], tuple[Any, int]]
    source: str


def _header(cls: type[Message]) -> bytes:
    name = cls.PROTOCOL.encode("ascii")
    version = cls.VERSION.to_bytes(2, "big")
    return MAGIC + bytes([WIRE_VERSION, len(name)]) + name + version + bytes([cls.TAG])


def _message_codec(cls: type[Message]) -> _MessageCodec:
    """Generate and compile the decoder and encoder of a message class."""
    kind = _struct_kind(cls)
    header = _header(cls)
    names = _Names()
    dec = _DecoderSource(names)
    dec.line(f"return {kind.decode(dec)}, pos")
    enc = _EncoderSource(names)
    enc.line(f"parts = [{names.const(header, 'header')}]")
    enc.line("ap = parts.append")
    kind.encode(enc, "msg", checked=True)  # encode() checked the type
    enc.line("return _join(parts)")
    source = dec.function("decode(buf, pos, end)") + "\n\n" + enc.function("encode(msg)")
    filename = f"<secagg.wire codec of {cls.__module__}.{cls.__qualname__}>"
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    # The source comes from the templates above only; values enter it through `names`.
    exec(code, names.globals)  # noqa: S102
    return _MessageCodec(header, names.globals["encode"], names.globals["decode"], source)


# --- registry --------------------------------------------------------------------------------
_MESSAGES: dict[tuple[str, int], type[Message]] = {}
_VERSIONS: dict[str, int] = {}
_CODECS: dict[type[Message], _MessageCodec] = {}
_HEADERS: dict[bytes, type[Message]] = {}  # a registered message's header -> its class


def message(protocol: str, version: int, tag: int) -> Callable[[type[M]], type[M]]:
    """Class decorator: register a frozen dataclass message type of ``protocol``.

    Use below ``@dataclass(frozen=True, slots=True, eq=False)``::

        @wire.message("plain", version=1, tag=1)
        @dataclass(frozen=True, slots=True, eq=False)
        class Input(Message):
            vector: npt.NDArray[np.uint32]

    Registration compiles the class's decoder and encoder; a field type without a wire
    encoding raises :class:`TypeError` here, not on the first message.
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
        codec = _message_codec(cls)
        _CODECS[cls] = codec
        _HEADERS[codec.header] = cls
        _MESSAGES[key] = cls
        return cls

    return register


def registered(protocol: str | None = None) -> list[type[Message]]:
    """The registered message types (of one protocol, or all)."""
    return [c for (p, _), c in sorted(_MESSAGES.items()) if protocol in (None, p)]


def encode(msg: Message) -> bytes:
    """The canonical bytes of ``msg``.

    Raises
    ------
    LocalProtocolError
        ``msg`` is not of a registered message class, or a field holds a value its type
        cannot encode (a negative or bool ``int``, a 2-D array, ...).
    """
    cls = type(msg)
    codec = _CODECS.get(cls)
    if codec is None or _MESSAGES.get((cls.PROTOCOL, cls.TAG)) is not cls:
        raise LocalProtocolError(f"{cls.__name__} is not a registered wire message")
    return codec.encode(msg)


def decode(data: bytes | bytearray | memoryview, *, protocol: str | None = None) -> Message:
    """Parse canonical bytes into a message; raise :class:`WireError` on anything else.

    Parameters
    ----------
    data:
        The received bytes. ``bytes`` are not copied: array fields of the message are
        read-only views into them. A ``bytearray`` or ``memoryview`` is copied once.
    protocol:
        When given, a message of any other protocol is rejected.

    Returns
    -------
    Message
        An instance of the registered class the header names.

    Raises
    ------
    WireError
        ``data`` is not the canonical encoding of a registered message (of ``protocol``).
    """
    if not isinstance(data, bytes):
        if not isinstance(data, bytearray | memoryview):
            raise WireError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)  # the one copy: the caller may change its buffer later
    end = len(data)
    cls = _HEADERS.get(data[: 9 + data[5]]) if end > 5 else None
    if cls is None:
        cls = _parse_header(data, protocol)  # names what is wrong
    elif protocol is not None and cls.PROTOCOL != protocol:
        raise WireError(f"message of protocol {cls.PROTOCOL!r}, expected {protocol!r}")
    codec = _CODECS[cls]
    msg, pos = codec.decode(data, len(codec.header), end)
    if pos != end:
        raise WireError(f"{end - pos} trailing bytes after {cls.__name__}")
    result: Message = msg
    return result


def _parse_header(buf: bytes, protocol: str | None) -> type[Message]:
    """Read the header field by field; raise a WireError naming the first wrong one."""
    end = len(buf)

    def take(pos: int, n: int) -> bytes:
        if end - pos < n:
            raise _truncated(n, pos, end)
        return buf[pos : pos + n]

    if take(0, len(MAGIC)) != MAGIC:
        raise WireError("not a secagg message (bad magic)")
    wire_version = take(4, 1)[0]
    if wire_version != WIRE_VERSION:
        raise WireError(f"wire format version {wire_version}, this build speaks {WIRE_VERSION}")
    raw_name = take(6, take(5, 1)[0])
    if not raw_name.isascii():
        raise WireError("protocol name is not ASCII")
    name = raw_name.decode("ascii")
    if protocol is not None and name != protocol:
        raise WireError(f"message of protocol {name!r}, expected {protocol!r}")
    if name not in _VERSIONS:
        raise WireError(f"unknown protocol {name!r}")
    pos = 6 + len(raw_name)
    version = int.from_bytes(take(pos, 2), "big")
    if version != _VERSIONS[name]:
        raise WireError(f"{name} message version {version}, this build speaks {_VERSIONS[name]}")
    tag = take(pos + 2, 1)[0]
    cls = _MESSAGES.get((name, tag))
    if cls is None:
        raise WireError(f"unknown message tag {tag} for protocol {name!r}")
    return cls


def same(a: Message, b: Message) -> bool:
    """Message equality: same canonical encoding."""
    return encode(a) == encode(b)

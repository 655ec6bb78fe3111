"""Base class for objects that hold secret material: hidden ``repr``, never pickled."""

from __future__ import annotations

from typing import NoReturn

from secagg.errors import SecretPicklingError

__all__ = ["SecretHolder"]


class SecretHolder:
    """Mixin: ``repr`` shows the type only; ``pickle``/``copy`` refuse with an error.

    Secrets stay in the process that created them; a driver that must persist a client's state
    has to do so explicitly (and encrypt it), never by pickling a machine by accident.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} (secret hidden)>"

    def __reduce__(self) -> NoReturn:
        raise SecretPicklingError(f"{type(self).__name__} holds secret material; not pickled")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        self.__reduce__()
        raise AssertionError("unreachable")  # pragma: no cover

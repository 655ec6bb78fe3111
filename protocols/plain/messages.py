"""Phases and messages of ``plain``."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from secagg import wire
from secagg.wire import Message

NAME = "plain"
VERSION = 2  # 2: the quantizer's dither is read from 32-bit keystream words (issue 22)


class Phase(enum.Enum):
    """Client phases of ``plain``: one, in which the client sends its encoded update."""

    INPUT = "input"


@wire.message(NAME, VERSION, tag=1)
@dataclass(frozen=True, slots=True, eq=False)
class Input(Message):
    """Client -> server: the quantized update y_u in Z_{2^b}^d, unmasked."""

    vector: npt.NDArray[Any]

"""The ``secagg`` protocol object: SecAgg+ on the complete graph."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..secaggplus.config import SecAggPlusConfig
from ..secaggplus.protocol import SecAggPlus

__all__ = ["SecAgg", "SecAggConfig"]


@dataclass(frozen=True, slots=True)
class SecAggConfig(SecAggPlusConfig):
    """:class:`~secagg.protocols.secaggplus.SecAggPlusConfig` with k fixed to n - 1.

    The default threshold is the least safe one on the complete graph: against a
    semi-malicious server t > (n - 1 + floor(gamma n)) / 2, so that honest clients, each
    revealing one kind of share per peer, never hand out t shares of both b_u and s_u^SK.
    """

    COMPLETE_GRAPH: ClassVar[bool] = True


class SecAgg(SecAggPlus):
    """SecAgg (Bonawitz et al. 2017): every client masks with every other client."""

    name: ClassVar[str] = "secagg"
    Config = SecAggConfig

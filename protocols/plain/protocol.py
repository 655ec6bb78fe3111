"""The ``plain`` protocol object and its config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from secagg.protocol import (
    CommonConfig,
    Credentials,
    KeyMaterial,
    QuantizedProtocol,
    Session,
    check_min_survivors,
)
from secagg.randomness import RandomSource

from .machines import PlainClient, PlainServer
from .messages import NAME, VERSION, Phase


@dataclass(frozen=True, slots=True)
class PlainConfig(CommonConfig):
    """:class:`~secagg.protocol.CommonConfig` plus the fewest inputs a round needs.

    Parameters
    ----------
    min_survivors:
        The round aborts when fewer inputs arrive (1 <= min_survivors <= num_clients).
    """

    min_survivors: int = 1

    def __post_init__(self) -> None:
        CommonConfig.__post_init__(self)
        check_min_survivors(self.num_clients, self.min_survivors)


class Plain(QuantizedProtocol[PlainConfig]):
    """Insecure sum through the common interface (the overhead baseline)."""

    name: ClassVar[str] = NAME
    wire_name: ClassVar[str] = NAME
    version: ClassVar[int] = VERSION
    Phase = Phase
    Config = PlainConfig

    def client(
        self,
        identity: int,
        session: Session,
        rng: RandomSource | int | None = None,
        *,
        credentials: Credentials | None = None,
        keys: KeyMaterial | None = None,
    ) -> PlainClient:
        self._no_keys(keys)
        return PlainClient(identity, session, self.encoder(session), self._rng(rng))

    def server(
        self,
        session: Session,
        rng: RandomSource | int | None = None,
        *,
        directory: Mapping[int, bytes] | None = None,
        keys: KeyMaterial | None = None,
    ) -> PlainServer:
        self._no_keys(keys)
        return PlainServer(session, self.quantizer, self.config.min_survivors)

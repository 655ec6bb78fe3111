"""The ``secaggplus`` protocol object (and the base of ``secagg``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, ClassVar

from secagg.primitives.x25519 import KeyPair
from secagg.protocol import Credentials, KeyMaterial, QuantizedProtocol, Session
from secagg.randomness import RandomSource

from .client import SecAggPlusClient
from .config import SecAggPlusConfig
from .messages import NAME, VERSION, Phase
from .server import SecAggPlusServer

__all__ = ["SecAggPlus"]


class SecAggPlus(QuantizedProtocol[SecAggPlusConfig]):
    """SecAgg+ (Bell et al. 2020): pairwise masking on a sparse random Harary graph.

    ``protocols.get("secaggplus", num_clients=n)`` picks k and t for sigma = 40, eta = 20;
    read them as ``proto.num_neighbors`` and ``proto.threshold``.
    """

    name: ClassVar[str] = NAME
    wire_name: ClassVar[str] = NAME
    version: ClassVar[int] = VERSION
    Phase = Phase
    Config = SecAggPlusConfig

    @property
    def phases(self) -> tuple[Any, ...]:
        """ADVERTISE_KEYS, SHARE_KEYS, MASKED_INPUT, [CONSISTENCY_CHECK], UNMASKING."""
        return tuple(
            p for p in Phase if self.config.consistency_check or p is not Phase.CONSISTENCY_CHECK
        )

    @property
    def input_phase(self) -> Any:
        return Phase.MASKED_INPUT

    @property
    def requires_credentials(self) -> bool:
        return self.config.consistency_check

    @property
    def threshold(self) -> int:
        """t, the Shamir threshold among a client's neighbours."""
        return self.config.parameters.threshold

    @property
    def num_neighbors(self) -> int:
        """k, each client's degree (num_clients - 1 on the complete graph)."""
        return self.config.parameters.num_neighbors

    def client(
        self,
        identity: int,
        session: Session,
        rng: RandomSource | int | None = None,
        *,
        credentials: Credentials | None = None,
        keys: KeyMaterial | None = None,
        agreement_key: KeyPair | None = None,
    ) -> SecAggPlusClient:
        """``agreement_key``: a registered long-term c_u (on chain); fresh per round if None."""
        self._no_keys(keys)
        return SecAggPlusClient(
            identity,
            session,
            self.config,
            self.encoder(session),
            self._rng(rng),
            credentials,
            agreement_key,
        )

    def server(
        self,
        session: Session,
        rng: RandomSource | int | None = None,
        *,
        directory: Mapping[int, bytes] | None = None,
        keys: KeyMaterial | None = None,
        roster: Collection[int] | None = None,
    ) -> SecAggPlusServer:
        """``roster``: the ids the graph is drawn over when fixed in advance (on chain)."""
        self._no_keys(keys)
        return SecAggPlusServer(session, self.config, self.quantizer.ring, directory, roster)

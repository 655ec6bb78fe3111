"""The protocol object shared by ``ckks`` and ``paillier``: keys, roles and machine factories."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from secagg.errors import ConfigError
from secagg.protocol import Credentials, KeyMaterial, Protocol, Session
from secagg.randomness import RandomSource

from .machines import HEClient, HEKeyHolder, HEServer
from .messages import NAME, VERSION, Phase
from .roles import KeyMode
from .scheme import Scheme

__all__ = ["HEProtocol"]


class HEProtocol(Protocol[Any]):
    """An additively homomorphic sum: participants encrypt, the aggregator adds with the
    public context only, the key holder (or, with ``key_mode="shared"``, participants)
    decrypts the sum.

    Key material comes from :meth:`keygen`; hand :meth:`participant_keys` to participants and
    ``keys.public_only()`` to the aggregator (the server factory refuses a secret key).
    """

    wire_name: ClassVar[str] = NAME
    version: ClassVar[int] = VERSION
    Phase = Phase

    @property
    def key_mode(self) -> KeyMode:
        mode: KeyMode = self.config.key_mode
        return mode

    @abstractmethod
    def scheme(self, keys: KeyMaterial, session: Session | None = None) -> Scheme:
        """The scheme bound to ``keys`` (able to decrypt only when ``keys.secret`` is set);
        a client's is also bound to its ``session`` (distributed DP's rotation)."""

    @abstractmethod
    def keygen(self, rng: RandomSource | int | None = None) -> KeyMaterial:
        """Fresh task keys (the key holder, or in the shared-key mode a dealer, runs this)."""

    def participant_keys(self, keys: KeyMaterial | None) -> KeyMaterial:
        keys = self._require_keys(keys, "participants")
        return keys if self.key_mode is KeyMode.SHARED else keys.public_only()

    def key_holder(
        self, session: Session, keys: KeyMaterial, rng: RandomSource | int | None = None
    ) -> HEKeyHolder | None:
        if self.key_mode is KeyMode.SHARED:
            return None
        keys = self._require_keys(keys, "the key holder")
        if keys.secret is None:
            raise ConfigError("the key holder needs the secret key material", parameter="keys")
        return HEKeyHolder(
            session,
            self.scheme(keys),
            min_survivors=self.config.min_survivors,
            max_inputs=self.num_clients,
        )

    def client(
        self,
        identity: int,
        session: Session,
        rng: RandomSource | int | None = None,
        *,
        credentials: Credentials | None = None,
        keys: KeyMaterial | None = None,
    ) -> HEClient:
        keys = self._require_keys(keys, "participants")
        if keys.secret is not None and self.key_mode is KeyMode.KEY_HOLDER:
            raise ConfigError(
                "with a separate key holder, participants get keys.public_only()",
                parameter="keys",
            )
        if keys.secret is None and self.key_mode is KeyMode.SHARED:
            raise ConfigError(
                "key_mode='shared': participants need the secret key material", parameter="keys"
            )
        return HEClient(
            identity,
            session,
            self.scheme(keys, session),
            self._rng(rng),
            min_survivors=self.config.min_survivors,
            max_inputs=self.num_clients,
        )

    def server(
        self,
        session: Session,
        rng: RandomSource | int | None = None,
        *,
        directory: Mapping[int, bytes] | None = None,
        keys: KeyMaterial | None = None,
    ) -> HEServer:
        keys = self._require_keys(keys, "the aggregator")
        if keys.secret is not None:
            raise ConfigError(
                "the aggregator must not hold the secret key: pass keys.public_only()",
                parameter="keys",
            )
        shared = self.key_mode is KeyMode.SHARED
        return HEServer(
            session,
            self.scheme(keys),
            self._rng(rng),
            max_inputs=self.num_clients,
            min_survivors=self.config.min_survivors,
            decryptors=self.config.num_decryptors if shared else None,
        )

    def _require_keys(self, keys: KeyMaterial | None, who: str) -> KeyMaterial:
        if not isinstance(keys, KeyMaterial):
            raise ConfigError(
                f"{self.name}: {who} need the task's key material (from proto.keygen())",
                parameter="keys",
            )
        return keys

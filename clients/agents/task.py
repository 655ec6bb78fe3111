"""A task's public description: what every agent must agree on before round 1.

The task owner writes a :class:`TaskSpec` to the store and puts its sha256 on chain as the
task's ``paramsHash``; the spec is a small raw blob, so its CID is the raw CIDv1 of that
digest and any agent finds it from the chain alone (:func:`spec_cid`). The session id binds
every key, mask and message of the task to this chain, this coordinator and this task id.

Client ids are positions in the task's registration order (``KeyRegistry.participants``):
id ``i`` is the ``i``-th account that registered, so ``i + 1`` is its Shamir point.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import secagg.protocols as protocols
from secagg.dp import DistributedDP
from secagg.errors import ConfigError
from secagg.protocol import Protocol
from secagg.store.cid import cid_of_digest

if TYPE_CHECKING:
    from ..learning.trainer import DPSGD

__all__ = ["SPEC_VERSION", "TaskSpec", "build_protocol", "session_id", "spec_cid", "uses_dp"]

SPEC_VERSION = 1
DPSGD_FIELDS = ("delta", "max_grad_norm", "noise_multiplier")
_SESSION_LABEL = b"secagg/v1/onchain-session"


@dataclass(frozen=True)
class TaskSpec:
    """The public parameters of a training task.

    Parameters
    ----------
    protocol:
        A name from ``secagg.protocols.names()``.
    config:
        The keyword arguments of ``protocols.get(protocol, **config)`` (JSON values; ``dp``
        as :meth:`DistributedDP.to_dict <secagg.dp.DistributedDP.to_dict>`).
    model:
        The architecture (``"mlp"`` or ``"cnn"``, see
        :func:`~secagg.clients.learning.trainer.make_model`).
    dim:
        d: the number of model parameters plus one. Clients append 1.0 to their update, so
        the secure sum also yields sum_{u in U} w_u, FedAvg's denominator, without anyone
        revealing its own weight.
    total_samples:
        N, the examples of all participants; a client's weight is w_u = n_u / N.
    epochs, lr, batch_size:
        The local training schedule every participant follows.
    he_context:
        CID of the public HE context (CKKS/Paillier), written by the key holder; else None.
    dp_sgd:
        Example-level DP-SGD in every participant's local training (Opacus): the fields of
        :class:`~secagg.clients.learning.trainer.DPSGD` (``noise_multiplier``, ``max_grad_norm``,
        ``delta``), or None.
    """

    protocol: str
    config: dict[str, Any]
    model: str
    dim: int
    total_samples: int
    epochs: int = 2
    lr: float = 0.3
    batch_size: int = 32
    he_context: str | None = None
    dp_sgd: dict[str, float] | None = None
    version: int = field(default=SPEC_VERSION)

    def __post_init__(self) -> None:
        if self.protocol not in protocols.names():
            raise ConfigError(f"unknown protocol {self.protocol!r}", parameter="protocol")
        if self.dim < 2 or self.total_samples < 1:
            raise ConfigError("dim >= 2 and total_samples >= 1", parameter="spec")
        if self.version != SPEC_VERSION:
            raise ConfigError(f"task spec version {self.version} is not {SPEC_VERSION}")
        if self.dp_sgd is not None:
            self.training_dp()  # a malformed dp_sgd entry fails here, named

    def training_dp(self) -> DPSGD | None:
        """The DP-SGD recipe of local training, or None."""
        from ..learning.trainer import DPSGD  # torch: only where training happens

        if self.dp_sgd is None:
            return None
        if not isinstance(self.dp_sgd, dict) or set(self.dp_sgd) != set(DPSGD_FIELDS):
            raise ConfigError(f"dp_sgd needs exactly {DPSGD_FIELDS}", parameter="dp_sgd")
        return DPSGD(**{k: float(v) for k, v in self.dp_sgd.items()})

    def build_protocol(self) -> Protocol[Any]:
        return build_protocol(self.protocol, self.config)

    def encode(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces): equal specs give equal bytes."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()

    @classmethod
    def decode(cls, data: bytes) -> TaskSpec:
        """Parse a spec blob; any malformation is a :class:`ConfigError`."""
        try:
            fields = json.loads(data)
            if not isinstance(fields, dict):
                raise TypeError("not an object")
            return cls(**fields)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"malformed task spec: {exc}", parameter="spec") from exc


def build_protocol(name: str, config: dict[str, Any]) -> Protocol[Any]:
    """``protocols.get(name, **config)`` from JSON values: a ``"dp"`` entry is a
    :meth:`DistributedDP.to_dict <secagg.dp.DistributedDP.to_dict>` object."""
    config = dict(config)
    if config.get("dp") is not None:
        config["dp"] = DistributedDP.from_dict(config["dp"])
    proto: Protocol[Any] = protocols.get(name, **config)
    return proto


def uses_dp(proto: Protocol[Any]) -> bool:
    """Whether ``proto`` adds distributed-DP noise: clients then weigh 1 and append 0.0,
    and the aggregator divides by |U| (:func:`~secagg.clients.agents.aggregator.next_model`)."""
    return getattr(proto, "dp", None) is not None


def spec_cid(params_hash: bytes) -> str:
    """The CID of the spec whose sha256 is the task's on-chain ``paramsHash``."""
    return cid_of_digest(params_hash)


def session_id(chain_id: int, coordinator: str, task_id: int) -> bytes:
    """32 bytes binding a task's rounds to one chain, coordinator and task id."""
    address = bytes.fromhex(coordinator.removeprefix("0x"))
    return hashlib.sha256(
        _SESSION_LABEL + chain_id.to_bytes(32, "big") + address + task_id.to_bytes(32, "big")
    ).digest()

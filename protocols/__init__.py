"""Protocol modules, installed as ``secagg.protocols``.

``secagg.protocols.get(name, **config)`` returns a protocol bound to a validated config::

    from secagg import protocols
    proto = protocols.get("plain", num_clients=10)

Available: ``plain``, ``secagg``, ``secaggplus`` (pairwise masking) and ``ckks``, ``paillier``
(homomorphic encryption).
"""

from __future__ import annotations

from typing import Any

from secagg.protocol import Protocol, Registry

from .ckks import CKKS
from .paillier import Paillier
from .plain import Plain
from .secagg import SecAgg
from .secaggplus import SecAggPlus

registry = Registry()
for _cls in (Plain, SecAgg, SecAggPlus, CKKS, Paillier):
    registry.register(_cls)


def get(name: str, **config: Any) -> Protocol[Any]:
    """The protocol ``name`` with ``config`` validated (unknown names/keys: ConfigError)."""
    return registry.get(name, **config)


def names() -> list[str]:
    """Registered protocol names."""
    return registry.names()


__all__ = ["Protocol", "get", "names", "registry"]

"""secagg: secure aggregation for federated learning.

The public API is small on purpose::

    from secagg import protocols, simulate
    proto = protocols.get("plain", num_clients=10)
    result = simulate(proto, inputs, dropouts={3: proto.phases[0]}, seed=0)
    result.sum, result.survivors, result.stats

``secagg.protocols`` is the top-level ``protocols/`` folder and ``secagg.clients`` the
``clients/`` folder, mapped into this namespace by setuptools' ``package-dir``.
"""

from secagg.errors import (
    AbortError,
    ConfigError,
    LocalProtocolError,
    RemoteProtocolError,
    SecAggError,
)
from secagg.protocol import Session
from secagg.randomness import SeededRandom, SystemRandom
from secagg.sim import SimulationResult, simulate

__version__ = "0.1.0"

__all__ = [
    "AbortError",
    "ConfigError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "SecAggError",
    "SeededRandom",
    "Session",
    "SimulationResult",
    "SystemRandom",
    "__version__",
    "simulate",
]

"""Run any secagg protocol inside Flower (``pip install 'secagg[flower]'``).

- :class:`SecAggMod` (client side): a Flower mod for a ``ClientApp``; it runs the protocol's
  client machine (or an HE key holder) and calls the app's ``train`` only in the input phase.
- :class:`SecureAggregation` (server side): drives the protocol's server machine over the
  ``Grid`` of a ``ServerApp``, phase by phase, and returns the FedAvg step.

See ``examples/flower/`` and the README's Flower section.
"""

from .client_mod import SECURE_PROTOCOLS, InputTap, SecAggMod
from .envelope import RECORD, Reply, Request, Setup, Stage
from .server import FlowerRoundResult, PhaseTraffic, SecureAggregation

__all__ = [
    "RECORD",
    "SECURE_PROTOCOLS",
    "FlowerRoundResult",
    "InputTap",
    "PhaseTraffic",
    "Reply",
    "Request",
    "SecAggMod",
    "SecureAggregation",
    "Setup",
    "Stage",
]

"""Run any secagg protocol inside Flower (``pip install 'secagg[flower]'``).

- :class:`SecAggMod` (client side): a Flower mod for a ``ClientApp``; it runs the protocol's
  client machine (or an HE key holder) and calls the app's ``train`` only in the input phase.
- :class:`SecureAggregation` (server side): drives the protocol's server machine over the
  ``Grid`` of a ``ServerApp``, phase by phase, and returns the FedAvg step.
- :mod:`.identity`: signing keys and the directory of them, for signed rounds.
- :mod:`.seeding`: seed mode (tests, examples) and :func:`simulate_seed` to check it.

See ``examples/flower/`` and the README's Flower section.
"""

from .client_mod import SECURE_PROTOCOLS, DPFloor, InputTap, SecAggMod, ThreatFloor
from .envelope import RECORD, Reply, Request, Setup, Stage
from .identity import (
    IdentityFiles,
    NodeIdentity,
    load_directory,
    load_signing_key,
    write_directory,
    write_signing_key,
)
from .seeding import round_seed, simulate_seed
from .server import FlowerRoundResult, PhaseTraffic, SecureAggregation

__all__ = [
    "RECORD",
    "SECURE_PROTOCOLS",
    "DPFloor",
    "FlowerRoundResult",
    "IdentityFiles",
    "InputTap",
    "NodeIdentity",
    "PhaseTraffic",
    "Reply",
    "Request",
    "SecAggMod",
    "SecureAggregation",
    "Setup",
    "Stage",
    "ThreatFloor",
    "load_directory",
    "load_signing_key",
    "round_seed",
    "simulate_seed",
    "write_directory",
    "write_signing_key",
]

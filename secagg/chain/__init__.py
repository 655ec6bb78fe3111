"""On-chain coordination: typed web3 bindings for the round contracts, an embedded chain
(eth-tester + py-evm) and a launcher for a real node (anvil).

This package is a driver layer: unlike the sans-IO core it talks to nodes and processes.
"""

from .anvil import AnvilNode, find_anvil
from .contracts import (
    Contracts,
    Deployment,
    Event,
    EventCursor,
    Member,
    Model,
    Phase,
    Status,
    TaskParams,
    TaskState,
    commitment,
    deploy,
    protocol_id,
)
from .node import ETHER, Chain

__all__ = [
    "ETHER",
    "AnvilNode",
    "Chain",
    "Contracts",
    "Deployment",
    "Event",
    "EventCursor",
    "Member",
    "Model",
    "Phase",
    "Status",
    "TaskParams",
    "TaskState",
    "commitment",
    "deploy",
    "find_anvil",
    "protocol_id",
]

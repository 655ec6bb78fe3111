"""Errors of the agents, under the one root :class:`~secagg.errors.SecAggError`."""

from __future__ import annotations

from secagg.errors import SecAggError

__all__ = [
    "AgentError",
    "FlowerStateError",
    "KeystoreError",
    "ModelFormatError",
    "ServiceError",
    "VerificationError",
]


class AgentError(SecAggError):
    """An agent cannot act on what the chain and the store say."""


class FlowerStateError(AgentError):
    """A Flower node's saved round state is missing, stale or does not replay."""


class KeystoreError(AgentError):
    """A keystore cannot be created, read or decrypted (wrong passphrase, loose permissions)."""


class ServiceError(AgentError):
    """A role's process cannot start: its deployment, task, data or state directory is not
    what the command line says."""


class ModelFormatError(AgentError):
    """A model blob is malformed (bad magic, header or length)."""


class VerificationError(AgentError):
    """The aggregate posted on chain does not follow from the round's public data."""

    def __init__(self, task_id: int, round: int, reason: str) -> None:
        super().__init__(f"task {task_id} round {round}: {reason}")
        self.task_id = task_id
        self.round = round
        self.reason = reason

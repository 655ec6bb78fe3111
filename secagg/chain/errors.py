"""Errors of the chain layer: a revert surfaces as the contract's own named error.

Every custom error declared by our contracts has a subclass of :class:`ContractError` here
(a test checks the ABIs against this table); reverts from other code (OpenZeppelin's ERC-20
errors, for instance) become a plain :class:`ContractError` that still carries the name.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

from secagg.errors import SecAggError

__all__ = [
    "AggregatorCannotJoinError",
    "AlreadyFlaggedError",
    "AlreadyRegisteredError",
    "AvailabilityFixedError",
    "AvailabilityPendingError",
    "BlobWithheldError",
    "BondAlreadyPostedError",
    "CannotLeaveNowError",
    "ChainError",
    "ContractError",
    "DeadlinePassedError",
    "DuplicateCommitError",
    "DuplicateSubmissionError",
    "EjectedError",
    "InsufficientFundsError",
    "InsufficientStakeError",
    "InvalidParameterError",
    "MalformedCidError",
    "ModelAlreadyRecordedError",
    "NoModelError",
    "NodeError",
    "NodeUnavailableError",
    "NotAggregatorError",
    "NotAllowedError",
    "NotCommittedError",
    "NotCoordinatorError",
    "NotFlaggableError",
    "NotRegisteredError",
    "NotSurvivorError",
    "NotTaskOwnerError",
    "NotWithholdableError",
    "NothingToWithdrawError",
    "PhaseStillOpenError",
    "RevealMismatchError",
    "SharesMissingError",
    "TaskFullError",
    "TransactionError",
    "UnknownTaskError",
    "UnsupportedTokenError",
    "WrongPhaseError",
    "error_class",
]


class ChainError(SecAggError):
    """Root of everything that goes wrong on or with the chain."""


class NodeError(ChainError):
    """A node could not be started, reached or spoken to."""


class NodeUnavailableError(NodeError):
    """The node did not answer (stopped, restarting, unreachable): nothing was done, retry."""


class TransactionError(ChainError):
    """A transaction failed without a decodable reason (out of gas, reverted on inclusion)."""


class ContractError(ChainError):
    """A contract call reverted with a named custom error.

    Attributes
    ----------
    error_name:
        The Solidity error's name, e.g. ``"RevealMismatch"``.
    arguments:
        The error's decoded arguments by parameter name.
    """

    solidity_name: ClassVar[str] = ""
    _by_name: ClassVar[dict[str, type[ContractError]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.solidity_name:
            ContractError._by_name[cls.solidity_name] = cls

    def __init__(self, error_name: str, arguments: dict[str, Any]) -> None:
        shown = ", ".join(f"{k}={_show(v)}" for k, v in arguments.items())
        super().__init__(f"{error_name}({shown})")
        self.error_name = error_name
        self.arguments = arguments


def error_class(name: str) -> type[ContractError]:
    """The subclass raised for the Solidity error ``name`` (``ContractError`` if none)."""
    return ContractError._by_name.get(name, ContractError)


def _show(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return value.name  # a phase or status by name, not its number
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


class UnknownTaskError(ContractError):
    solidity_name = "UnknownTask"


class InvalidParameterError(ContractError):
    solidity_name = "InvalidParameter"


class WrongPhaseError(ContractError):
    solidity_name = "WrongPhase"


class DeadlinePassedError(ContractError):
    solidity_name = "DeadlinePassed"


class PhaseStillOpenError(ContractError):
    solidity_name = "PhaseStillOpen"


class NotRegisteredError(ContractError):
    solidity_name = "NotRegistered"


class AlreadyRegisteredError(ContractError):
    solidity_name = "AlreadyRegistered"


class TaskFullError(ContractError):
    solidity_name = "TaskFull"


class InsufficientStakeError(ContractError):
    solidity_name = "InsufficientStake"


class InsufficientFundsError(ContractError):
    solidity_name = "InsufficientFunds"


class BondAlreadyPostedError(ContractError):
    """The task's bond is posted already, or the task asks for none."""

    solidity_name = "BondAlreadyPosted"


class UnsupportedTokenError(ContractError):
    """The token delivered another amount than was transferred (fee-on-transfer, rebasing)."""

    solidity_name = "UnsupportedToken"


class NotFlaggableError(ContractError):
    """The round is not finalized, or its challenge window has closed (or it has none)."""

    solidity_name = "NotFlaggable"


class AlreadyFlaggedError(ContractError):
    """The caller flagged this round already."""

    solidity_name = "AlreadyFlagged"


class MalformedCidError(ContractError):
    """A posted CID is not a binary CIDv1 with a sha2-256 digest (raw or dag-pb): agents
    parse every CID posted, so the contract refuses it before it reaches an event."""

    solidity_name = "MalformedCid"


class AggregatorCannotJoinError(ContractError):
    """The task's aggregator cannot register as one of its participants."""

    solidity_name = "AggregatorCannotJoin"


class CannotLeaveNowError(ContractError):
    """The caller committed in the current round and has not revealed, or is in U during
    Unmask: it cannot leave before that is over."""

    solidity_name = "CannotLeaveNow"


class NotAllowedError(ContractError):
    """The task has an allowlist and the proof does not put the caller in it."""

    solidity_name = "NotAllowed"


class EjectedError(ContractError):
    """Slashing and absence fees took the caller's stake to zero: it can no longer act."""

    solidity_name = "Ejected"


class AvailabilityPendingError(ContractError):
    """The aggregator has not yet fixed which blobs of this stage were unavailable."""

    solidity_name = "AvailabilityPending"


class AvailabilityFixedError(ContractError):
    """The aggregator fixed this stage's unavailable blobs already (once per stage)."""

    solidity_name = "AvailabilityFixed"


class NotWithholdableError(ContractError):
    """The declared index did not post the blob of this stage in this round."""

    solidity_name = "NotWithholdable"


class BlobWithheldError(ContractError):
    """The aggregator declared the caller's share bundle unavailable: it cannot commit."""

    solidity_name = "BlobWithheld"


class DuplicateSubmissionError(ContractError):
    solidity_name = "DuplicateSubmission"


class SharesMissingError(ContractError):
    solidity_name = "SharesMissing"


class DuplicateCommitError(ContractError):
    solidity_name = "DuplicateCommit"


class NotCommittedError(ContractError):
    solidity_name = "NotCommitted"


class RevealMismatchError(ContractError):
    solidity_name = "RevealMismatch"


class NotSurvivorError(ContractError):
    solidity_name = "NotSurvivor"


class NotAggregatorError(ContractError):
    solidity_name = "NotAggregator"


class NotTaskOwnerError(ContractError):
    solidity_name = "NotTaskOwner"


class NothingToWithdrawError(ContractError):
    solidity_name = "NothingToWithdraw"


class NotCoordinatorError(ContractError):
    solidity_name = "NotCoordinator"


class ModelAlreadyRecordedError(ContractError):
    solidity_name = "ModelAlreadyRecorded"


class NoModelError(ContractError):
    solidity_name = "NoModel"

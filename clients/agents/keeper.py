"""Phase advancement without a trusted keeper: every agent calls ``advance`` once the current
phase is due (its deadline block has passed, or everyone who may act in it has acted).

The first caller wins; the others find the phase moved on (their call reverts with
``WrongPhase`` or ``PhaseStillOpen``, or their ledger already shows the next phase) and carry
on. The caller of an ``advance`` that walks over the members (the end of Reveal, or a round
failing at ShareKeys) is credited the task's ``keeperFee`` from the owner's pool.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from eth_account.signers.local import LocalAccount

from secagg.chain import Contracts, Phase
from secagg.chain.errors import ChainError

from .ledger import TaskLedger

__all__ = ["KeeperAgent", "advance_if_due", "phase_is_due"]


def phase_is_due(contracts: Contracts, ledger: TaskLedger) -> bool:
    """Whether anyone may end the task's current phase now."""
    if ledger.phase in (Phase.NONE, Phase.ENDED):
        return False
    if contracts.chain.block_number > ledger.deadline:
        return True
    return contracts.everyone_acted(ledger.task_id)


def advance_if_due(contracts: Contracts, ledger: TaskLedger, account: LocalAccount) -> bool:
    """Ends the current phase if it is due; True when this call did."""
    if not phase_is_due(contracts, ledger):
        return False
    try:
        contracts.advance(account, ledger.task_id)
    except ChainError:  # someone else was first
        return False
    ledger.sync()
    return True


class KeeperAgent(ABC):
    """An agent with an account on chain: it acts on the current phase and, when it has
    nothing to do, ends the phase if it is due (every such agent is a keeper)."""

    contracts: Contracts
    ledger: TaskLedger
    account: LocalAccount  # signs the agent's transactions

    @abstractmethod
    def act(self) -> bool:
        """Act on the chain's current phase if not done yet; True when something was done."""

    def step(self) -> bool:
        """Act on the current phase, else end it if it is due; True when something was done."""
        return self.act() or self.keep()

    def keep(self) -> bool:
        """End the current phase if it is due (:func:`advance_if_due`); True when this call
        ended it."""
        return advance_if_due(self.contracts, self.ledger, self.account)

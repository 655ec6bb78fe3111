"""Typed bindings for the round contracts (``contracts/src``).

:func:`deploy` puts a token and a :class:`RoundCoordinator` (which deploys its
``KeyRegistry`` and ``ModelRegistry``) on a chain and returns :class:`Contracts`, whose
methods are the on-chain steps of a round. Each write is signed by the account passed in;
each revert raises the contract's named error (:mod:`secagg.chain.errors`).

Notation (Bonawitz et al. CCS'17 -> here): c_u^PK = ``agreement_key`` (registered once per
task), s_u^PK = ``masking_key`` (posted each round with the share bundle), U = the
accounts whose reveal was valid (:meth:`Contracts.survivors`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from secagg.errors import ConfigError

from .node import Chain


class Phase(enum.IntEnum):
    """``RoundCoordinator.Phase`` (same order)."""

    NONE = 0
    REGISTRATION = 1
    SHARE_KEYS = 2
    COMMIT = 3
    REVEAL = 4
    UNMASK = 5
    FINALIZE = 6
    ENDED = 7


class Status(enum.IntEnum):
    """``RoundCoordinator.Status``: a participant's progress in the current round."""

    NONE = 0
    SHARED = 1
    COMMITTED = 2
    REVEALED = 3
    UNMASKED = 4
    SLASHED = 5
    SHARES_WITHHELD = 6  # the aggregator declared its share bundle unavailable
    INPUT_WITHHELD = 7  # the aggregator declared its revealed input unavailable: out of U


class Availability(enum.IntEnum):
    """``RoundCoordinator.Availability``: what the aggregator has fixed of a round's data
    availability (:meth:`Contracts.declare_unavailable`)."""

    OPEN = 0
    SHARES_FIXED = 1
    INPUTS_FIXED = 2
    UNMASKS_FIXED = 3


def protocol_id(name: str) -> bytes:
    """A protocol's name as the contract's ``bytes32`` id (UTF-8, zero-padded)."""
    raw = name.encode()
    if not 0 < len(raw) <= 32:
        raise ConfigError("a protocol id is 1 to 32 bytes of UTF-8", parameter="protocol_id")
    return raw.ljust(32, b"\0")


@dataclass(frozen=True)
class TaskParams:
    """``RoundCoordinator.TaskParams``; durations are in blocks, amounts in token units.

    ``share_blocks = 0`` and ``unmask_blocks = 0`` drop those phases (HE tasks).
    ``absence_fee`` (at most ``slash_amount``) is taken from a member that does not act in a
    round's first phase; ``allowlist_root`` (32 zero bytes: open task) is the Merkle root of
    the accounts allowed to register (:mod:`secagg.chain.allowlist`). ``keeper_fee`` (at most
    ``reward_per_round``) pays, from the pool, whoever calls the ``advance`` that walks over
    the members; ``challenge_blocks`` (0: none) is the window after a finalize in which
    members may flag the round and its rewards cannot be claimed yet.
    """

    protocol_id: bytes
    params_hash: bytes
    aggregator: str
    min_participants: int
    max_participants: int
    threshold: int
    num_rounds: int = 1
    registration_blocks: int = 20
    share_blocks: int = 20
    commit_blocks: int = 20
    reveal_blocks: int = 20
    unmask_blocks: int = 20
    finalize_blocks: int = 20
    stake: int = 100
    slash_amount: int = 50
    reward_per_round: int = 100
    reward_pool: int = 1000
    aggregator_bond: int = 0
    absence_fee: int = 0
    allowlist_root: bytes = bytes(32)
    keeper_fee: int = 0
    challenge_blocks: int = 0

    def as_abi(self) -> tuple[Any, ...]:
        return astuple(self)

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> TaskParams:
        return cls(*values)


@dataclass(frozen=True)
class TaskState:
    """``RoundCoordinator.State``: where a task is."""

    phase: Phase
    round: int
    deadline: int
    expected: int
    acted: int
    survivors: int
    has_share_keys: bool
    last_paid: int
    unmask_complete: bool
    availability: Availability

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> TaskState:
        phase, round_, deadline, expected, acted, survivors, shares, paid, complete, fixed = values
        return cls(
            Phase(phase), round_, deadline, expected, acted, survivors, shares, paid, complete,
            Availability(fixed),
        )  # fmt: skip


@dataclass(frozen=True)
class Member:
    """``RoundCoordinator.Member``: registration index (1-based), round of ``status``, stake,
    the last round whose reward the member has claimed, and whether it was ejected (its stake
    reached zero: it can no longer act in the task)."""

    index: int
    round: int
    status: Status
    stake: int
    claimed_through: int
    ejected: bool = False


@dataclass(frozen=True)
class Model:
    cid: bytes
    sha256: bytes
    block_number: int


@dataclass(frozen=True)
class Event:
    """A decoded contract event, with its place in the chain."""

    name: str
    args: dict[str, Any]
    block_number: int
    log_index: int = 0


@dataclass(frozen=True)
class Deployment:
    """The addresses of one deployment (what agents need to find the contracts)."""

    token: str
    coordinator: str
    key_registry: str
    model_registry: str

    def as_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def commitment(
    cid: bytes,
    salt: bytes,
    sender: str,
    round: int,
    *,
    task_id: int,
    coordinator: str,
    chain_id: int,
) -> bytes:
    """keccak256(abi.encode(chain id, coordinator, task id, round, sender, keccak256(cid),
    salt)), as ``RoundCoordinator.commitmentFor``: it opens only in the deployment, task and
    round it was made for, and only by ``sender``."""
    if len(salt) != 32:
        raise ConfigError("the commitment salt is 32 bytes", parameter="salt")
    words = (
        chain_id.to_bytes(32, "big"),
        _address_word(coordinator),
        task_id.to_bytes(32, "big"),
        round.to_bytes(32, "big"),
        _address_word(sender),
        keccak(cid),
        salt,
    )
    return keccak(b"".join(words))


def _address_word(address: str) -> bytes:
    return bytes.fromhex(address.removeprefix("0x")).rjust(32, b"\0")


def deploy(chain: Chain, deployer: LocalAccount, *, token: str | None = None) -> Contracts:
    """Deploys a :class:`RoundCoordinator` (and a fresh ``RewardToken`` owned by
    ``deployer`` unless ``token`` is the address of an existing ERC-20).

    The gas of each deployment is in :attr:`Contracts.deploy_gas`.
    """
    deploy_gas = {}
    if token is None:
        contract, receipt = chain.deploy(
            deployer, "RewardToken", "secagg reward", "SAR", deployer.address
        )
        token = contract.address
        deploy_gas["RewardToken"] = int(receipt["gasUsed"])
    coordinator, receipt = chain.deploy(deployer, "RoundCoordinator", token)
    deploy_gas["RoundCoordinator"] = int(receipt["gasUsed"])
    contracts = Contracts(
        chain,
        Deployment(
            token=token,
            coordinator=coordinator.address,
            key_registry=chain.call(coordinator.functions.keyRegistry()),
            model_registry=chain.call(coordinator.functions.modelRegistry()),
        ),
    )
    contracts.deploy_gas = deploy_gas
    return contracts


class Contracts:
    """The contracts of one deployment, with one method per on-chain step."""

    def __init__(self, chain: Chain, deployment: Deployment) -> None:
        self.chain = chain
        self.deployment = deployment
        self.token: Contract = chain.contract("RewardToken", deployment.token)
        self.coordinator: Contract = chain.contract("RoundCoordinator", deployment.coordinator)
        self.keys: Contract = chain.contract("KeyRegistry", deployment.key_registry)
        self.models: Contract = chain.contract("ModelRegistry", deployment.model_registry)
        self.deploy_gas: dict[str, int] = {}  # gasUsed per deployed contract, set by deploy()

    # --------------------------------------------------------------- token

    def mint(self, owner: LocalAccount, to: str, amount: int) -> TxReceipt:
        return self.chain.transact(owner, self.token.functions.mint(to, amount))

    def approve(self, account: LocalAccount, amount: int) -> TxReceipt:
        """Lets the coordinator pull ``amount`` (stake or reward pool) from ``account``."""
        fn = self.token.functions.approve(self.coordinator.address, amount)
        return self.chain.transact(account, fn)

    def balance_of(self, address: str) -> int:
        return int(self.chain.call(self.token.functions.balanceOf(address)))

    # --------------------------------------------------------------- task owner

    def create_task(
        self,
        owner: LocalAccount,
        params: TaskParams,
        initial_model_cid: bytes,
        initial_model_sha256: bytes,
        *,
        approve: bool = True,
    ) -> int:
        """Creates a task (approving its reward pool first); returns the task id."""
        if approve:
            self.approve(owner, params.reward_pool)
        fn = self.coordinator.functions.createTask(
            params.as_abi(), initial_model_cid, initial_model_sha256
        )
        receipt = self.chain.transact(owner, fn)
        (event,) = self.coordinator.events.TaskCreated().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["taskId"])

    def post_bond(
        self, aggregator: LocalAccount, task_id: int, *, approve: bool = True
    ) -> TxReceipt:
        """The aggregator's bond for the task (approving it first unless ``approve=False``)."""
        if approve:
            self.approve(aggregator, self.params(task_id).aggregator_bond)
        return self.chain.transact(aggregator, self.coordinator.functions.postBond(task_id))

    def withdraw_bond(self, aggregator: LocalAccount, task_id: int) -> TxReceipt:
        return self.chain.transact(aggregator, self.coordinator.functions.withdrawBond(task_id))

    def withdraw_pool(self, owner: LocalAccount, task_id: int) -> TxReceipt:
        return self.chain.transact(owner, self.coordinator.functions.withdrawPool(task_id))

    # --------------------------------------------------------------- participants

    def register(
        self,
        account: LocalAccount,
        task_id: int,
        agreement_key: bytes,
        he_context_cid: bytes = b"",
        *,
        proof: Sequence[bytes] = (),
        approve: bool = True,
    ) -> TxReceipt:
        """Registers ``account`` with its X25519 agreement key c_u^PK (and, for HE tasks,
        the public context's CID), approving the stake first. ``proof``: the account's
        Merkle proof for a task with an allowlist (:func:`secagg.chain.allowlist.proof`)."""
        if approve:
            self.approve(account, self.params(task_id).stake)
        fn = self.coordinator.functions.register(
            task_id, agreement_key, he_context_cid, list(proof)
        )
        return self.chain.transact(account, fn)

    def share_keys(
        self, account: LocalAccount, task_id: int, masking_key: bytes, bundle_cid: bytes
    ) -> TxReceipt:
        fn = self.coordinator.functions.shareKeys(task_id, masking_key, bundle_cid)
        return self.chain.transact(account, fn)

    def commitment(self, task_id: int, round: int, sender: str, cid: bytes, salt: bytes) -> bytes:
        """The commitment ``sender`` posts for ``cid`` in this deployment's task and round
        (computed here, as ``RoundCoordinator.commitmentFor`` does on chain)."""
        return commitment(
            cid,
            salt,
            sender,
            round,
            task_id=task_id,
            coordinator=self.deployment.coordinator,
            chain_id=self.chain.chain_id,
        )

    def commit(self, account: LocalAccount, task_id: int, value: bytes) -> TxReceipt:
        return self.chain.transact(account, self.coordinator.functions.commit(task_id, value))

    def reveal(self, account: LocalAccount, task_id: int, cid: bytes, salt: bytes) -> TxReceipt:
        return self.chain.transact(account, self.coordinator.functions.reveal(task_id, cid, salt))

    def post_unmask(self, account: LocalAccount, task_id: int, cid: bytes) -> TxReceipt:
        return self.chain.transact(account, self.coordinator.functions.postUnmask(task_id, cid))

    def claim_rewards(self, account: LocalAccount, task_id: int) -> TxReceipt:
        return self.chain.transact(account, self.coordinator.functions.claimRewards(task_id))

    def leave(self, account: LocalAccount, task_id: int) -> TxReceipt:
        """The escape hatch: ``account`` pays the absence fee, takes the rest of its stake back
        now and is ejected from the task."""
        return self.chain.transact(account, self.coordinator.functions.leave(task_id))

    def withdraw_stake(self, account: LocalAccount, task_id: int) -> TxReceipt:
        return self.chain.transact(account, self.coordinator.functions.withdrawStake(task_id))

    # --------------------------------------------------------------- aggregator, anyone

    def finalize_round(
        self, aggregator: LocalAccount, task_id: int, model_cid: bytes, model_sha256: bytes
    ) -> TxReceipt:
        fn = self.coordinator.functions.finalizeRound(task_id, model_cid, model_sha256)
        return self.chain.transact(aggregator, fn)

    def declare_unavailable(
        self, aggregator: LocalAccount, task_id: int, withheld: Sequence[int] = ()
    ) -> TxReceipt:
        """The aggregator fixes which posted blobs of the current stage it could not fetch
        (client ids = 0-based registration indices): share bundles in Commit, revealed inputs
        in Unmask (Finalize for tasks without Unmask)."""
        fn = self.coordinator.functions.declareUnavailable(task_id, list(withheld))
        return self.chain.transact(aggregator, fn)

    def flag_round(self, account: LocalAccount, task_id: int, round: int) -> TxReceipt:
        """A member disputes a finalized round within its challenge window."""
        return self.chain.transact(account, self.coordinator.functions.flagRound(task_id, round))

    def advance(self, account: LocalAccount, task_id: int) -> TxReceipt:
        return self.chain.transact(account, self.coordinator.functions.advance(task_id))

    def advance_when_possible(self, account: LocalAccount, task_id: int) -> TxReceipt:
        """Dev chains: advances at once when everyone who may act in the phase has acted,
        otherwise after mining past its deadline."""
        state = self.state(task_id)
        if not self.everyone_acted(task_id, state):
            self.chain.mine(max(0, state.deadline - self.chain.block_number + 1))
        return self.advance(account, task_id)

    def everyone_acted(self, task_id: int, state: TaskState | None = None) -> bool:
        """Whether the current phase may close before its deadline, as ``advance`` decides:
        everyone who may act in it has (Registration also needs the aggregator's bond)."""
        state = state or self.state(task_id)
        if state.expected == 0 or state.acted < state.expected:
            return False
        if state.phase is Phase.REGISTRATION and self.params(task_id).aggregator_bond:
            return self.bond_of(task_id) != 0
        return True

    # --------------------------------------------------------------- views

    def params(self, task_id: int) -> TaskParams:
        return TaskParams.from_abi(self.chain.call(self.coordinator.functions.taskParams(task_id)))

    def state(self, task_id: int) -> TaskState:
        return TaskState.from_abi(self.chain.call(self.coordinator.functions.taskState(task_id)))

    def member(self, task_id: int, address: str) -> Member:
        index, round_, status, stake, claimed, ejected = self.chain.call(
            self.coordinator.functions.memberOf(task_id, address)
        )
        return Member(index, round_, Status(status), stake, claimed, ejected)

    def status(self, task_id: int, address: str) -> Status:
        """``address``'s status in the task's current round (NONE if it has not acted in it)."""
        member = self.member(task_id, address)
        return member.status if member.round == self.state(task_id).round else Status.NONE

    def survivors(self, task_id: int, round: int) -> list[str]:
        """U of ``round``, in registration order (empty before its Reveal phase closed): the
        contract's bitmap over registration indices, read as addresses."""
        words = self.chain.call(self.coordinator.functions.survivorBits(task_id, round))
        if not words:
            return []
        return [
            address
            for i, address in enumerate(self.participants(task_id))
            if words[i >> 8] >> (i & 255) & 1
        ]

    def participants(self, task_id: int) -> list[str]:
        return list(self.chain.call(self.keys.functions.participants(task_id)))

    def keys_of(self, task_id: int, address: str) -> tuple[bytes, bytes]:
        """(c_u^PK, HE context CID) registered by ``address``."""
        agreement, he_cid = self.chain.call(self.keys.functions.keysOf(task_id, address))
        return bytes(agreement), bytes(he_cid)

    def model(self, task_id: int, round: int) -> Model:
        cid, digest, block = self.chain.call(self.models.functions.modelOf(task_id, round))
        return Model(bytes(cid), bytes(digest), int(block))

    def credit_of(self, task_id: int, address: str) -> int:
        return int(self.chain.call(self.coordinator.functions.creditOf(task_id, address)))

    def flags_of(self, task_id: int, round: int) -> int:
        """How many members flagged ``round`` in its challenge window."""
        return int(self.chain.call(self.coordinator.functions.flagsOf(task_id, round)))

    def pool_of(self, task_id: int) -> int:
        return int(self.chain.call(self.coordinator.functions.poolOf(task_id)))

    def bond_of(self, task_id: int) -> int:
        """The aggregator's bond still held for the task."""
        return int(self.chain.call(self.coordinator.functions.bondOf(task_id)))

    def slashed_of(self, task_id: int) -> int:
        """Slashed stake not yet paid to survivors (locked for good once the task ended)."""
        return int(self.chain.call(self.coordinator.functions.slashedOf(task_id)))

    def commitment_of(self, task_id: int, address: str, round: int) -> bytes:
        return bytes(
            self.chain.call(self.coordinator.functions.commitmentOf(task_id, address, round))
        )

    def events(self, name: str, task_id: int, from_block: int = 0) -> list[Event]:
        """Events ``name`` of ``task_id`` from ``from_block`` on, oldest first.

        ``ModelPublished`` is read from the model registry, every other event from the
        coordinator. Agents follow these logs rather than polling storage.
        """
        contract = self.models if name == "ModelPublished" else self.coordinator
        logs = getattr(contract.events, name)().get_logs(
            from_block=from_block, argument_filters={"taskId": task_id}
        )
        return [_event(log) for log in logs]

    def follow(self, task_id: int, from_block: int = 0) -> EventCursor:
        """A cursor over every event of ``task_id`` (all contracts), for agents."""
        return EventCursor(self, task_id, from_block)


class EventCursor:
    """Each event of one task once, in chain order: call :meth:`poll` whenever.

    One ``eth_getLogs`` per poll over the coordinator and the model registry, filtered by
    the task id (the first indexed argument of every event of ours).
    """

    def __init__(self, contracts: Contracts, task_id: int, from_block: int = 0) -> None:
        self.contracts = contracts
        self.task_id = task_id
        self.next_block = from_block
        self._decoders = {
            event.topic: event
            for contract in (contracts.coordinator, contracts.models)
            for event in contract.all_events()
        }

    def poll(self) -> list[Event]:
        """The events mined since the last poll, oldest first."""
        latest = self.contracts.chain.block_number
        if latest < self.next_block:
            return []
        logs = self.contracts.chain.w3.eth.get_logs(
            {
                "address": [self.contracts.coordinator.address, self.contracts.models.address],
                "fromBlock": self.next_block,
                "toBlock": latest,
                "topics": [None, "0x" + self.task_id.to_bytes(32, "big").hex()],
            }
        )
        self.next_block = latest + 1
        events = []
        for log in logs:
            decoder = self._decoders.get("0x" + bytes(log["topics"][0]).hex())
            if decoder is not None:
                events.append(_event(decoder.process_log(log)))
        return sorted(events, key=lambda e: (e.block_number, e.log_index))


def _event(log: Any) -> Event:
    return Event(log["event"], dict(log["args"]), int(log["blockNumber"]), int(log["logIndex"]))

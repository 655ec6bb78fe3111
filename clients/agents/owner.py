"""The task owner's steps: the on-chain parameters of a task, and publishing it.

``secagg task create`` and the demo both go through :func:`publish_task`: the initial model
and the spec go to the store, the spec's sha256 becomes the task's ``paramsHash`` (so every
agent finds the spec from the chain alone), and the owner funds the reward pool.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount

from secagg.chain import Contracts, TaskParams, protocol_id
from secagg.errors import ConfigError
from secagg.protocol import Protocol
from secagg.protocols.secaggplus import SecAggPlus
from secagg.store import Store, to_bytes

from .models import ModelBlob
from .task import TaskSpec

__all__ = ["Economics", "chain_threshold", "publish_task", "task_params"]


@dataclass(frozen=True)
class Economics:
    """A task's token amounts (in token units) and its challenge window (blocks).

    ``keeper_fee`` is paid, from the pool, to whoever calls the ``advance`` that walks over
    the members; the pool holds ``(reward_per_round + keeper_fee) * rounds``.
    ``challenge_blocks`` None: as long as a phase.
    """

    stake: int = 100
    slash: int = 50
    absence_fee: int = 10
    keeper_fee: int = 5
    reward_per_round: int = 100
    aggregator_bond: int = 200
    challenge_blocks: int | None = None

    def __post_init__(self) -> None:
        amounts = (self.stake, self.slash, self.absence_fee, self.keeper_fee)
        if min(*amounts, self.reward_per_round, self.aggregator_bond) < 0:
            raise ConfigError("token amounts are >= 0", parameter="economics")
        if not self.absence_fee <= self.slash <= self.stake:
            raise ConfigError("absence fee <= slash <= stake", parameter="economics")
        if self.keeper_fee > self.reward_per_round:
            raise ConfigError("the keeper fee is at most the reward per round", parameter="keeper")


def chain_threshold(proto: Protocol[Any]) -> int:
    """The fewest members a round needs past ShareKeys and Reveal (the contract's threshold)."""
    if isinstance(proto, SecAggPlus):
        params = proto.config.parameters
        return int(max(params.min_survivors, params.threshold + 1))
    return int(getattr(proto.config, "min_survivors", 1))


def task_params(
    spec: TaskSpec,
    aggregator: str,
    *,
    rounds: int,
    phase_blocks: int,
    registration_blocks: int | None = None,
    economics: Economics = Economics(),
    allowlist_root: bytes = bytes(32),
) -> TaskParams:
    """The on-chain parameters of ``spec``'s task: every phase ``phase_blocks`` long (masking
    tasks have ShareKeys and Unmask, the others not) but Registration (``registration_blocks``,
    default the same), room for the protocol's clients.

    Registration, ShareKeys and Unmask close as soon as everyone who may act has; Commit and
    Reveal always run to their deadline (the contract keeps no counter for them), so a round
    lasts at least two phases: choose ``phase_blocks`` from the block time and the time local
    training takes."""
    registration_blocks = registration_blocks or phase_blocks
    if rounds < 1 or phase_blocks < 1 or registration_blocks < 1:
        raise ConfigError("rounds >= 1 and phase lengths >= 1", parameter="phase_blocks")
    proto = spec.build_protocol()
    has_shares = isinstance(proto, SecAggPlus)
    e = economics
    return TaskParams(
        protocol_id=protocol_id(spec.protocol),
        params_hash=spec.sha256,
        aggregator=aggregator,
        min_participants=chain_threshold(proto),
        max_participants=proto.num_clients,
        threshold=chain_threshold(proto),
        num_rounds=rounds,
        registration_blocks=registration_blocks,
        share_blocks=phase_blocks if has_shares else 0,
        commit_blocks=phase_blocks,
        reveal_blocks=phase_blocks,
        unmask_blocks=phase_blocks if has_shares else 0,
        finalize_blocks=phase_blocks,
        stake=e.stake,
        slash_amount=e.slash,
        reward_per_round=e.reward_per_round,
        reward_pool=(e.reward_per_round + e.keeper_fee) * rounds,
        aggregator_bond=e.aggregator_bond,
        absence_fee=e.absence_fee,
        keeper_fee=e.keeper_fee,
        challenge_blocks=phase_blocks if e.challenge_blocks is None else e.challenge_blocks,
        allowlist_root=allowlist_root,
    )


def publish_task(
    contracts: Contracts,
    store: Store,
    owner: LocalAccount,
    spec: TaskSpec,
    initial: ModelBlob,
    params: TaskParams,
) -> int:
    """Stores the initial model and the spec, approves the reward pool and creates the task;
    returns its id.

    Raises
    ------
    ConfigError
        ``params`` is not for ``spec`` (another paramsHash), or the model has another size.
    """
    if params.params_hash != spec.sha256:
        raise ConfigError("the task parameters name another spec", parameter="params_hash")
    if len(initial.weights) + 1 != spec.dim:
        raise ConfigError(
            f"the initial model has {len(initial.weights)} weights, the spec {spec.dim - 1}",
            parameter="dim",
        )
    blob = initial.encode()
    cid = store.put(blob)
    store.put(spec.encode())
    return contracts.create_task(owner, params, to_bytes(cid), hashlib.sha256(blob).digest())

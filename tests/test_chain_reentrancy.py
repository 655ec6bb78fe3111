"""Reentrancy through the reward token: a hostile ERC-20 calls back into the coordinator from
inside every transfer the coordinator makes or pulls. Each call back must hit the reentrancy
guard (not some later check), and the outer call's accounting must hold.

The token is ``contracts/test/HostileToken.sol``, compiled here with the pinned solcjs
(``node contracts/build.js --fixture``); it is a test fixture and never ships.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_utils import keccak

from secagg.chain import Chain
from secagg.chain.errors import NothingToWithdrawError

from .chain_world import World, deploy_fixture, fixture_artifact

GUARD = keccak(text="ReentrancyGuardReentrantCall()")[:4]


@pytest.fixture(scope="module")
def hostile_artifact() -> dict[str, Any]:
    return fixture_artifact("HostileToken.sol", "HostileToken")


@pytest.fixture
def hostile_world(hostile_artifact: dict[str, Any]) -> tuple[World, Any]:
    chain = Chain.embedded()
    token = deploy_fixture(chain, hostile_artifact)
    return World.build(chain, token=token.address), token


def _arm(world: World, token: Any, payload: bytes) -> None:
    coordinator = world.contracts.coordinator.address
    world.chain.transact(world.outsider, token.functions.arm(coordinator, payload))


def _call(world: World, fn_name: str, task: int) -> bytes:
    data = world.contracts.coordinator.encode_abi(fn_name, args=[task])
    return bytes.fromhex(data[2:])


def _ended_task(world: World) -> int:
    """A task with one finished round (credits to pay) and then ended (stakes to return)."""
    task = world.create_task(num_rounds=1)
    world.register(task)
    world.contracts.advance(world.outsider, task)
    world.run_round(task)  # finalizes: the only round, so the task ends
    return task


CASES: dict[str, Callable[[World, int], Any]] = {
    "claimRewards": lambda w, t: w.contracts.claim_rewards(w.participants[0], t),
    "withdrawStake": lambda w, t: w.contracts.withdraw_stake(w.participants[0], t),
    "withdrawPool": lambda w, t: w.contracts.withdraw_pool(w.owner, t),
}


@pytest.mark.parametrize("outer", list(CASES))
@pytest.mark.parametrize("inner", ["claimRewards", "withdrawStake", "withdrawPool"])
def test_a_token_reentering_a_payout_hits_the_guard(
    hostile_world: tuple[World, Any], outer: str, inner: str
) -> None:
    world, token = hostile_world
    task = _ended_task(world)
    payee = world.owner if outer == "withdrawPool" else world.participants[0]
    before = world.contracts.balance_of(payee.address)
    held = world.contracts.balance_of(world.contracts.coordinator.address)
    _arm(world, token, _call(world, inner, task))
    CASES[outer](world, task)
    assert world.chain.call(token.functions.attempts()) == 1
    assert world.chain.call(token.functions.successes()) == 0
    assert bytes(world.chain.call(token.functions.lastRevert()))[:4] == GUARD
    paid = world.contracts.balance_of(payee.address) - before
    assert paid > 0
    assert world.contracts.balance_of(world.contracts.coordinator.address) == held - paid
    with pytest.raises(NothingToWithdrawError):  # paid once
        CASES[outer](world, task)


@pytest.mark.parametrize("inner", ["claimRewards", "withdrawStake"])
def test_a_token_reentering_while_a_stake_is_pulled_hits_the_guard(
    hostile_world: tuple[World, Any], inner: str
) -> None:
    world, token = hostile_world
    task = world.create_task()
    _arm(world, token, _call(world, inner, task))
    world.contracts.register(world.participants[0], task, b"\x01" * 32)
    assert world.chain.call(token.functions.attempts()) == 1
    assert world.chain.call(token.functions.successes()) == 0
    assert bytes(world.chain.call(token.functions.lastRevert()))[:4] == GUARD
    assert world.contracts.participants(task) == [world.participants[0].address]

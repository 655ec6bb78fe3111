"""Every contract function on the embedded chain: its happy path and each revert path.

Reverts must surface as the contract's named error (a ``ContractError`` subclass carrying
the Solidity name and arguments), never as a web3 or eth-tester exception.
"""

from __future__ import annotations

import hashlib

import pytest

from secagg.chain import Chain, Model, Phase, Status, commitment
from secagg.chain.errors import (
    AlreadyRegisteredError,
    BondAlreadyPostedError,
    ContractError,
    DeadlinePassedError,
    DuplicateCommitError,
    DuplicateSubmissionError,
    InsufficientFundsError,
    InsufficientStakeError,
    InvalidParameterError,
    MalformedCidError,
    NoModelError,
    NotAggregatorError,
    NotCommittedError,
    NotCoordinatorError,
    NothingToWithdrawError,
    NotRegisteredError,
    NotSurvivorError,
    NotTaskOwnerError,
    PhaseStillOpenError,
    RevealMismatchError,
    SharesMissingError,
    TaskFullError,
    UnknownTaskError,
    UnsupportedTokenError,
    WrongPhaseError,
)

from .chain_world import (
    TOKENS,
    World,
    cid,
    deploy_fixture,
    fixture_artifact,
    registered_task,
    salt,
)

MIN_PHASE, MAX_PHASE = 5, 100_800  # RoundCoordinator.MIN_PHASE_BLOCKS, MAX_PHASE_BLOCKS


# ----------------------------------------------------------------------------- createTask


def test_create_task_records_params_pool_and_initial_model(world: World) -> None:
    c = world.contracts
    before = c.balance_of(world.owner.address)
    task = world.create_task()
    assert c.params(task) == world.params()
    state = c.state(task)
    assert (state.phase, state.round, state.has_share_keys) == (Phase.REGISTRATION, 0, True)
    assert c.pool_of(task) == 1000
    assert c.balance_of(world.owner.address) == before - 1000
    assert c.model(task, 0).cid == cid("model-0")
    (event,) = c.events("TaskCreated", task)
    assert event.args["aggregator"] == world.aggregator.address
    assert world.create_task() == task + 1


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"aggregator": "0x" + "00" * 20}, "aggregator"),
        ({"threshold": 0}, "threshold"),
        ({"min_participants": 2}, "minParticipants"),
        ({"max_participants": 2, "min_participants": 3}, "maxParticipants"),
        ({"max_participants": 513}, "maxParticipants"),
        ({"num_rounds": 0}, "numRounds"),
        ({"registration_blocks": 0}, "registrationBlocks"),
        ({"commit_blocks": 0}, "commitBlocks"),
        ({"reveal_blocks": 0}, "revealBlocks"),
        ({"finalize_blocks": 0}, "finalizeBlocks"),
        # an owner may not shorten a phase until honest members cannot act in it (and are
        # slashed), nor lengthen one until stakes are frozen
        ({"reveal_blocks": MIN_PHASE - 1}, "revealBlocks"),
        ({"commit_blocks": MIN_PHASE - 1}, "commitBlocks"),
        ({"share_blocks": MIN_PHASE - 1}, "shareBlocks"),
        ({"unmask_blocks": MIN_PHASE - 1}, "unmaskBlocks"),
        ({"registration_blocks": MIN_PHASE - 1}, "registrationBlocks"),
        ({"finalize_blocks": MIN_PHASE - 1}, "finalizeBlocks"),
        ({"reveal_blocks": MAX_PHASE + 1}, "revealBlocks"),
        ({"share_blocks": 0}, "unmaskBlocks"),  # shares without an Unmask phase
        ({"slash_amount": 101}, "slashAmount"),
        # 6 stakes slashed in full would overflow the slashed-stake counter (uint128)
        ({"stake": 2**128 // 6, "slash_amount": 0}, "stake"),
        ({"stake": 2**125, "slash_amount": 0, "reward_pool": 2**127}, "stake"),
        ({"reward_per_round": 1001}, "rewardPerRound"),
    ],
)
def test_create_task_rejects_each_bad_parameter(
    world: World, overrides: dict[str, object], name: str
) -> None:
    with pytest.raises(InvalidParameterError) as info:
        world.create_task(**overrides)
    assert info.value.arguments == {"name": name}


def test_create_task_needs_an_initial_model_and_the_pool(world: World) -> None:
    c = world.contracts
    for malformed in (b"", b"\1" * 36, cid(0)[:-1], bytes([1, 0x71]) + cid(0)[2:]):
        with pytest.raises(MalformedCidError):  # not a binary CIDv1, sha2-256, raw or dag-pb
            c.create_task(world.owner, world.params(), malformed, b"\0" * 32)
    c.create_task(world.owner, world.params(), cid(0, codec=0x70), b"\0" * 32)
    with pytest.raises(InsufficientFundsError) as info:
        c.create_task(world.owner, world.params(reward_pool=TOKENS + 1), cid(0), b"\0" * 32)
    assert info.value.arguments["required"] == TOKENS + 1
    with pytest.raises(InsufficientFundsError):  # enough tokens, no allowance
        c.create_task(world.outsider, world.params(), cid(0), b"\0" * 32, approve=False)


def test_unknown_task_is_a_named_error(world: World) -> None:
    with pytest.raises(UnknownTaskError):
        world.contracts.state(99)
    with pytest.raises(UnknownTaskError):
        world.contracts.advance(world.outsider, 99)
    with pytest.raises(UnknownTaskError):
        world.contracts.register(world.participants[0], 99, b"\1" * 32, approve=False)


# ----------------------------------------------------------------------------- register


def test_register_binds_keys_to_the_sender_and_locks_the_stake(world: World) -> None:
    c = world.contracts
    task = world.create_task()
    alice = world.participants[0]
    c.register(alice, task, b"\xaa" * 32, cid("he-context"))
    assert c.keys_of(task, alice.address) == (b"\xaa" * 32, cid("he-context"))
    assert c.member(task, alice.address).index == 1
    assert c.member(task, alice.address).stake == 100
    assert c.balance_of(alice.address) == TOKENS - 100
    assert c.participants(task) == [alice.address]
    (event,) = c.events("Registered", task)
    assert event.args["participant"] == alice.address
    with pytest.raises(NotRegisteredError):
        c.keys_of(task, world.outsider.address)


def test_nobody_can_write_keys_but_the_coordinator(world: World) -> None:
    """The aggregator cannot substitute a participant's key in the registry."""
    task = world.create_task()
    world.register(task, world.participants[:1])
    victim = world.participants[0].address
    record = world.contracts.keys.functions.record(task, victim, b"\xee" * 32, b"")
    with pytest.raises(NotCoordinatorError):
        world.chain.transact(world.aggregator, record)
    assert world.contracts.keys_of(task, victim)[0] == b"\x01" * 32


def test_register_reverts(world: World) -> None:
    c = world.contracts
    task = world.create_task(max_participants=4)
    alice, bob = world.participants[:2]
    c.register(alice, task, b"\1" * 32)
    with pytest.raises(AlreadyRegisteredError):
        c.register(alice, task, b"\2" * 32)
    with pytest.raises(InsufficientStakeError) as info:
        c.register(bob, task, b"\2" * 32, approve=False)
    assert info.value.arguments["required"] == 100
    poor = world.chain.new_account(7)
    with pytest.raises(InsufficientStakeError):
        c.register(poor, task, b"\6" * 32)
    world.register(task, world.participants[1:4])
    with pytest.raises(TaskFullError):
        c.register(world.participants[4], task, b"\5" * 32)
    c.advance(world.outsider, task)  # full: Registration closes early
    with pytest.raises(WrongPhaseError) as wrong:
        c.register(world.participants[5], task, b"\7" * 32)
    assert wrong.value.arguments["expected"] == Phase.REGISTRATION
    assert wrong.value.arguments["actual"] == Phase.SHARE_KEYS


def test_register_after_the_deadline(world: World) -> None:
    task = world.create_task()
    world.chain.mine(31)
    with pytest.raises(DeadlinePassedError):
        world.contracts.register(world.participants[0], task, b"\1" * 32)


def test_a_call_is_checked_against_the_block_that_will_include_it(world: World) -> None:
    """At the last block of a phase, a transaction lands one block too late: the named
    error must come from the pre-flight check, not a bare failed receipt."""
    task = world.create_task()
    deadline = world.contracts.state(task).deadline
    world.chain.mine(deadline - 1 - world.chain.block_number)
    with pytest.raises(DeadlinePassedError):  # approve mines block `deadline`
        world.contracts.register(world.participants[0], task, b"\1" * 32)


@pytest.mark.parametrize("late", [0, 1], ids=["in-the-deadline-block", "one-block-after"])
def test_commit_and_reveal_deadlines_are_inclusive_to_the_block(world: World, late: int) -> None:
    """A transaction included in block == deadline counts; one block later it reverts with
    DeadlinePassed, and the honest commitments and reveals stand."""
    task = registered_task(world)
    rnd = world.contracts.state(task).round
    first, last = world.participants[:-1], world.participants[-1]
    world.share(task, world.participants)
    world.finish_phase(task)
    world.commit(task, first)
    deadline = world.contracts.state(task).deadline
    world.chain.mine(deadline - 1 + late - world.chain.block_number)  # next tx: deadline + late
    if late:
        with pytest.raises(DeadlinePassedError):
            world.commit(task, [last])
    else:
        world.commit(task, [last])
    world.finish_phase(task)
    assert world.phase(task) == Phase.REVEAL
    committed = first if late else world.participants
    world.reveal(task, committed[:-1])
    deadline = world.contracts.state(task).deadline
    world.chain.mine(deadline - 1 + late - world.chain.block_number)
    if late:
        with pytest.raises(DeadlinePassedError):
            world.reveal(task, committed[-1:])
    else:
        world.reveal(task, committed[-1:])
    world.finish_phase(task)
    revealed = committed[:-1] if late else committed
    assert world.contracts.survivors(task, rnd) == [a.address for a in revealed]


# ----------------------------------------------------------------------------- advance


def test_advance_waits_for_the_deadline_or_everyone(world: World) -> None:
    c = world.contracts
    task = world.create_task()
    world.register(task, world.participants[:3])
    with pytest.raises(PhaseStillOpenError):
        c.advance(world.outsider, task)
    world.finish_phase(task)
    state = c.state(task)
    assert (state.phase, state.round, state.expected) == (Phase.SHARE_KEYS, 1, 3)
    world.share(task, world.participants[:3])
    c.advance(world.outsider, task)  # all three shared: early
    assert world.phase(task) == Phase.COMMIT
    world.commit(task, world.participants[:3])
    with pytest.raises(PhaseStillOpenError):  # Commit runs to its deadline
        c.advance(world.outsider, task)
    phases = [e.args["phase"] for e in c.events("PhaseChanged", task)]
    assert phases == [Phase.REGISTRATION, Phase.SHARE_KEYS, Phase.COMMIT]


def test_too_few_registrations_end_the_task_and_refund(world: World) -> None:
    c = world.contracts
    task = world.create_task()
    world.register(task, world.participants[:2])
    world.finish_phase(task)
    assert world.phase(task) == Phase.ENDED
    with pytest.raises(WrongPhaseError):
        c.advance(world.outsider, task)
    c.withdraw_stake(world.participants[0], task)
    assert c.balance_of(world.participants[0].address) == TOKENS
    c.withdraw_pool(world.owner, task)
    assert c.balance_of(world.owner.address) == TOKENS


def test_a_round_with_too_few_shares_fails_and_the_next_begins(world: World) -> None:
    c = world.contracts
    task = registered_task(world)
    world.share(task, world.participants[:2])
    world.finish_phase(task)
    (failed,) = c.events("RoundFailed", task)
    assert failed.args == {"taskId": task, "round": 1, "phase": Phase.SHARE_KEYS}
    assert (c.state(task).phase, c.state(task).round) == (Phase.SHARE_KEYS, 2)
    world.share(task, world.participants[:2])  # statuses are per round
    assert c.status(task, world.participants[0].address) == Status.SHARED


# ----------------------------------------------------------------------------- shareKeys


def test_share_keys(world: World) -> None:
    c = world.contracts
    task = registered_task(world)
    alice = world.participants[0]
    c.share_keys(alice, task, b"\x5a" * 32, cid("bundle"))
    (event,) = c.events("SharesPosted", task)
    assert event.args["maskingKey"] == b"\x5a" * 32
    assert event.args["bundleCid"] == cid("bundle")
    assert c.status(task, alice.address) == Status.SHARED
    with pytest.raises(DuplicateSubmissionError):
        c.share_keys(alice, task, b"\x5b" * 32, cid("bundle2"))
    with pytest.raises(NotRegisteredError):
        c.share_keys(world.outsider, task, b"\x5a" * 32, cid("x"))
    world.share(task, world.participants[1:3])
    world.chain.mine(31)
    with pytest.raises(DeadlinePassedError):
        c.share_keys(world.participants[3], task, b"\x5a" * 32, cid("late"))
    c.advance(world.outsider, task)
    with pytest.raises(WrongPhaseError):
        c.share_keys(world.participants[3], task, b"\x5a" * 32, cid("late"))


# ----------------------------------------------------------------------------- commit


def test_commit(world: World) -> None:
    c = world.contracts
    task = registered_task(world)
    a, b, d = world.participants[:3]
    with pytest.raises(WrongPhaseError):
        world.commit(task, [a])
    world.share(task, [a, b, d])
    world.finish_phase(task)
    world.commit(task, [a])
    assert c.status(task, a.address) == Status.COMMITTED
    value = c.commitment(task, 1, a.address, *world.reveals[(task, 1, a.address)])
    assert c.commitment_of(task, a.address, 1) == value
    assert c.commitment_of(task, a.address, 2) == bytes(32)  # another round's: none
    (event,) = c.events("Committed", task)
    assert event.args["commitment"] == value
    with pytest.raises(DuplicateCommitError):
        c.commit(a, task, b"\1" * 32)
    with pytest.raises(SharesMissingError):  # registered, but posted no share bundle
        c.commit(world.participants[4], task, b"\1" * 32)
    with pytest.raises(NotRegisteredError):
        c.commit(world.outsider, task, b"\1" * 32)
    world.chain.mine(31)
    with pytest.raises(DeadlinePassedError):
        c.commit(b, task, b"\1" * 32)


def test_he_tasks_commit_without_share_bundles(world: World) -> None:
    c = world.contracts
    task = registered_task(world, share_blocks=0, unmask_blocks=0)
    assert c.state(task).phase == Phase.COMMIT
    world.commit(task, world.participants[:3])
    world.finish_phase(task)
    world.reveal(task, world.participants[:3])
    world.finish_phase(task)
    assert world.phase(task) == Phase.FINALIZE  # no Unmask phase


def test_python_and_solidity_commitments_agree(world: World) -> None:
    c = world.contracts
    fn = c.coordinator.functions.commitmentFor
    for n in (0, 1, 34, 36, 100):
        blob = bytes(range(n))
        on_chain = world.chain.call(fn(7, n, world.outsider.address, blob, salt(n)))
        assert on_chain == c.commitment(7, n, world.outsider.address, blob, salt(n))
    opening = (world.outsider.address, cid(0), salt(0))
    here = c.commitment(7, 1, *opening)

    def made(*, coordinator: str, chain_id: int) -> bytes:
        return commitment(
            cid(0), salt(0), world.outsider.address, 1,
            task_id=7, coordinator=coordinator, chain_id=chain_id,
        )  # fmt: skip

    chain_id = world.chain.chain_id
    assert here == made(coordinator=c.coordinator.address, chain_id=chain_id)
    bound = {
        "task": c.commitment(8, 1, *opening),
        "round": c.commitment(7, 2, *opening),
        "coordinator": made(coordinator=world.owner.address, chain_id=chain_id),
        "chain": made(coordinator=c.coordinator.address, chain_id=chain_id + 1),
    }
    assert all(value != here for value in bound.values())


def test_a_commitment_opens_only_in_the_task_it_was_made_for(world: World) -> None:
    """A member of two tasks posts, in the second, the commitment it made in the first (a
    masked input committed once, replayed): the opening is refused there."""
    c = world.contracts
    first, second = registered_task(world), registered_task(world)
    a = world.participants[0]
    for task in (first, second):
        world.share(task, world.participants)
        world.finish_phase(task)
    world.commit(first, [a])
    world.declare(second)
    c.commit(a, second, c.commitment_of(first, a.address, 1))
    world.finish_phase(first)
    world.finish_phase(second)
    opening = world.reveals[(first, 1, a.address)]
    with pytest.raises(RevealMismatchError):
        c.reveal(a, second, *opening)
    c.reveal(a, first, *opening)


# ----------------------------------------------------------------------------- reveal


def to_reveal(world: World, committers: int = 4) -> int:
    task = registered_task(world)
    world.share(task, world.participants)
    world.finish_phase(task)
    world.commit(task, world.participants[:committers])
    world.finish_phase(task)
    return task


def test_reveal(world: World) -> None:
    c = world.contracts
    task = to_reveal(world)
    a, b, f = world.participants[0], world.participants[1], world.participants[4]
    world.reveal(task, [a])
    assert c.status(task, a.address) == Status.REVEALED
    (event,) = c.events("Revealed", task)
    assert event.args["cid"] == world.reveals[(task, 1, a.address)][0]
    with pytest.raises(DuplicateSubmissionError):
        world.reveal(task, [a])
    cid_b, salt_b = world.reveals[(task, 1, b.address)]
    with pytest.raises(RevealMismatchError):
        c.reveal(b, task, cid_b, salt(b"wrong"))
    with pytest.raises(RevealMismatchError):
        c.reveal(b, task, cid("another input"), salt_b)
    with pytest.raises(NotCommittedError):
        c.reveal(f, task, cid("f"), salt("f"))  # shared, never committed
    with pytest.raises(NotRegisteredError):
        c.reveal(world.outsider, task, cid_b, salt_b)
    world.chain.mine(31)
    with pytest.raises(DeadlinePassedError):
        c.reveal(b, task, cid_b, salt_b)


def test_a_copied_commitment_cannot_be_opened_by_the_copier(world: World) -> None:
    """Commitments bind the sender: B replays A's commitment, then A's opening; it fails."""
    c = world.contracts
    task = registered_task(world)
    a, b = world.participants[:2]
    world.share(task, world.participants)
    world.finish_phase(task)
    world.commit(task, [a])
    stolen = c.commitment_of(task, a.address, 1)
    c.commit(b, task, stolen)
    world.finish_phase(task)
    with pytest.raises(RevealMismatchError):
        c.reveal(b, task, *world.reveals[(task, 1, a.address)])


def test_reveal_close_fixes_u_and_slashes_who_did_not_reveal(world: World) -> None:
    """The slashed stake is held for the survivors, not added to the owner's pool."""
    c = world.contracts
    task = to_reveal(world, committers=5)
    revealers = world.participants[:4]
    world.reveal(task, revealers)
    pool = c.pool_of(task)
    assert c.slashed_of(task) == 0
    world.finish_phase(task)
    assert c.survivors(task, 1) == [p.address for p in revealers]
    assert c.state(task).survivors == 4
    cheater = world.participants[4]
    assert c.member(task, cheater.address).stake == 100 - 60
    assert c.member(task, cheater.address).status == Status.SLASHED
    assert c.pool_of(task) == pool
    assert c.slashed_of(task) == 60
    (slashed,) = c.events("Slashed", task)
    assert (slashed.args["participant"], slashed.args["amount"]) == (cheater.address, 60)
    # the one who never committed (participants[5]) is a dropout, not a cheater
    assert c.member(task, world.participants[5].address).stake == 100


def test_too_few_reveals_fail_the_round(world: World) -> None:
    c = world.contracts
    task = to_reveal(world)
    world.reveal(task, world.participants[:2])
    world.finish_phase(task)
    (failed,) = c.events("RoundFailed", task)
    assert failed.args["phase"] == Phase.REVEAL
    assert (c.state(task).phase, c.state(task).round) == (Phase.SHARE_KEYS, 2)
    assert len(c.events("Slashed", task)) == 2


# ----------------------------------------------------------------------------- postUnmask


def test_post_unmask_only_from_u(world: World) -> None:
    c = world.contracts
    task = to_reveal(world, committers=5)
    world.reveal(task, world.participants[:4])
    with pytest.raises(WrongPhaseError):
        world.unmask(task, world.participants[:1])
    world.finish_phase(task)
    world.unmask(task, world.participants[:1])
    assert c.status(task, world.participants[0].address) == Status.UNMASKED
    with pytest.raises(DuplicateSubmissionError):
        world.unmask(task, world.participants[:1])
    for outside_u in world.participants[4:]:  # slashed cheater, non-committer
        with pytest.raises(NotSurvivorError):
            world.unmask(task, [outside_u])
    with pytest.raises(NotRegisteredError):
        world.unmask(task, [world.outsider])
    world.unmask(task, world.participants[1:4])
    c.advance(world.outsider, task)  # all of U posted: closes early
    assert world.phase(task) == Phase.FINALIZE


# ----------------------------------------------------------------------------- finalizeRound


def to_finalize(world: World, **overrides: object) -> int:
    task = registered_task(world, **overrides)
    world.run_round(
        task, commit=world.participants[:5], reveal=world.participants[:4], finalize=False
    )
    assert world.phase(task) == Phase.FINALIZE
    return task


def test_finalize_records_the_model_and_credits_u(world: World) -> None:
    c = world.contracts
    task = to_finalize(world)
    pool = c.pool_of(task)
    digest = hashlib.sha256(b"aggregate").digest()
    c.finalize_round(world.aggregator, task, cid("aggregate"), digest)
    assert c.model(task, 1) == Model(cid("aggregate"), digest, world.chain.block_number)
    assert world.chain.call(c.models.functions.latestRound(task)) == 1
    per = (90 + 60) // 4  # the round's reward and the cheater's slashed 60, split among U
    credits = [c.credit_of(task, p.address) for p in world.participants]
    assert credits == [per] * 4 + [0, 0]
    assert c.pool_of(task) == pool - (4 * per - 60)  # slashed stake is paid first
    assert c.slashed_of(task) == 0
    (done,) = c.events("RoundFinalized", task)
    assert (done.args["survivors"], done.args["rewardPerSurvivor"]) == (4, per)
    assert (c.state(task).phase, c.state(task).round) == (Phase.SHARE_KEYS, 2)


def test_finalize_reverts(world: World) -> None:
    c = world.contracts
    task = to_finalize(world)
    for impostor in (world.owner, world.participants[0], world.outsider):
        with pytest.raises(NotAggregatorError):
            c.finalize_round(impostor, task, cid("fake"), b"\0" * 32)
    world.declare(task)
    with pytest.raises(MalformedCidError):
        c.finalize_round(world.aggregator, task, b"", b"\0" * 32)
    world.chain.mine(31)
    with pytest.raises(DeadlinePassedError):
        c.finalize_round(world.aggregator, task, cid("late"), b"\0" * 32)
    c.advance(world.outsider, task)  # no model in time: the round fails, nobody is paid
    assert c.events("RoundFailed", task)[0].args["phase"] == Phase.FINALIZE
    assert c.credit_of(task, world.participants[0].address) == 0
    with pytest.raises(WrongPhaseError):
        c.finalize_round(world.aggregator, task, cid("late"), b"\0" * 32)
    with pytest.raises(NoModelError):
        c.model(task, 1)


def test_only_the_coordinator_writes_models(world: World) -> None:
    task = world.create_task()
    record = world.contracts.models.functions.record(task, 1, cid("forged"), b"\0" * 32)
    with pytest.raises(NotCoordinatorError):
        world.chain.transact(world.aggregator, record)
    with pytest.raises(NoModelError):  # a task that does not exist has no initial model
        world.chain.call(world.contracts.models.functions.latestRound(task + 1))
    assert world.chain.call(world.contracts.models.functions.latestRound(task)) == 0


# ----------------------------------------------------------------------------- payouts


def test_rewards_are_paid_once(world: World) -> None:
    c = world.contracts
    task = to_finalize(world)
    c.finalize_round(world.aggregator, task, cid("aggregate"), b"\1" * 32)
    alice = world.participants[0]
    before = c.balance_of(alice.address)
    c.claim_rewards(alice, task)
    assert c.balance_of(alice.address) == before + (90 + 60) // 4
    with pytest.raises(NothingToWithdrawError):
        c.claim_rewards(alice, task)
    with pytest.raises(NothingToWithdrawError):  # not in U
        c.claim_rewards(world.participants[5], task)


def test_stakes_and_pool_come_back_after_the_end(world: World) -> None:
    c = world.contracts
    task = to_finalize(world, num_rounds=1)
    with pytest.raises(WrongPhaseError):
        c.withdraw_stake(world.participants[0], task)
    with pytest.raises(WrongPhaseError):
        c.withdraw_pool(world.owner, task)
    c.finalize_round(world.aggregator, task, cid("aggregate"), b"\1" * 32)
    assert world.phase(task) == Phase.ENDED
    honest, cheater = world.participants[0], world.participants[4]
    c.withdraw_stake(honest, task)
    c.withdraw_stake(cheater, task)
    assert c.balance_of(honest.address) == TOKENS  # stake back, reward still to claim
    assert c.balance_of(cheater.address) == TOKENS - 60
    with pytest.raises(NothingToWithdrawError):
        c.withdraw_stake(honest, task)
    with pytest.raises(NotTaskOwnerError):
        c.withdraw_pool(world.aggregator, task)
    c.withdraw_pool(world.owner, task)
    per = (90 + 60) // 4  # the cheater's 60 went to U, none of it to the owner
    assert c.balance_of(world.owner.address) == TOKENS - (4 * per - 60)
    with pytest.raises(NothingToWithdrawError):
        c.withdraw_pool(world.owner, task)


def test_claims_walk_the_rounds_finalized_since_the_last_claim(world: World) -> None:
    """Round 1: U = p0..p3 (p4 committed and did not reveal: slashed 60, paid to U); round 2:
    U = all six. Each claim pays the finalized rounds whose U holds the caller, once."""
    c = world.contracts
    p = world.participants
    task = to_finalize(world)
    c.finalize_round(world.aggregator, task, cid("aggregate-1"), b"\1" * 32)
    first = (90 + 60) // 4
    c.claim_rewards(p[0], task)
    assert c.member(task, p[0].address).claimed_through == 1
    with pytest.raises(NothingToWithdrawError):  # nothing finalized since
        c.claim_rewards(p[0], task)
    world.run_round(task)
    second = 90 // 6
    assert c.state(task).last_paid == 2
    paid = {}
    for who in (p[0], p[1], p[4], p[5]):
        before = c.balance_of(who.address)
        c.claim_rewards(who, task)
        paid[who] = c.balance_of(who.address) - before
    assert paid == {p[0]: second, p[1]: first + second, p[4]: second, p[5]: second}
    unclaimed = first + second
    assert [c.credit_of(task, who.address) for who in p] == [0, 0, unclaimed, unclaimed, 0, 0]
    with pytest.raises(NothingToWithdrawError):  # never registered
        c.claim_rewards(world.outsider, task)


def test_slashed_stake_pays_the_next_finalized_round_not_the_owner(world: World) -> None:
    """Round 1 slashes a cheater and then fails at Finalize; its 60 waits in `slashed` and
    is paid to round 2's survivors. The owner, who set the slashing rules, gets none of it."""
    c = world.contracts
    task = to_finalize(world)
    world.finish_phase(task)  # no model by the Finalize deadline: the round fails
    assert (c.slashed_of(task), c.pool_of(task)) == (60, 1000)
    world.run_round(task)  # round 2: all six in U
    per = (90 + 60) // 6
    assert [c.credit_of(task, p.address) for p in world.participants] == [per] * 6
    assert (c.slashed_of(task), c.pool_of(task)) == (0, 1000 - (6 * per - 60))
    assert world.phase(task) == Phase.ENDED
    c.withdraw_pool(world.owner, task)
    assert c.balance_of(world.owner.address) == TOKENS - (6 * per - 60)


def test_slashed_stake_no_round_pays_out_is_burned(world: World) -> None:
    """The only round slashes a cheater and fails at Finalize: the 60 stays locked in the
    coordinator when the task ends; the owner gets back exactly its deposit."""
    c = world.contracts
    task = to_finalize(world, num_rounds=1)
    world.finish_phase(task)  # no model by the Finalize deadline: the round fails
    assert world.phase(task) == Phase.ENDED
    (burned,) = c.events("SlashedStakeBurned", task)
    assert burned.args["amount"] == 60
    c.withdraw_pool(world.owner, task)
    assert c.balance_of(world.owner.address) == TOKENS
    for p in world.participants[:6]:
        c.withdraw_stake(p, task)
    assert c.balance_of(c.coordinator.address) == 60
    assert c.slashed_of(task) == 60


def test_a_fee_on_transfer_token_is_refused() -> None:
    """A token that delivers less than was sent would leave the books above the balance (the
    last withdrawal would revert): the coordinator refuses it when it pulls the deposit."""
    chain = Chain.embedded()
    token = deploy_fixture(chain, fixture_artifact("FeeToken.sol", "FeeToken"))
    world = World.build(chain, token=token.address)
    with pytest.raises(UnsupportedTokenError) as info:
        world.create_task()
    assert info.value.arguments == {"token": token.address, "expected": 1000, "received": 990}
    assert world.contracts.balance_of(world.owner.address) == TOKENS  # nothing was taken


# ----------------------------------------------------------------------------- bond

BOND = 300


def bonded_task(world: World, **overrides: object) -> int:
    """A task whose aggregator posted a bond of ``BOND``, registered and in round 1."""
    c = world.contracts
    c.mint(world.deployer, world.aggregator.address, TOKENS)
    task = world.create_task(aggregator_bond=BOND, **overrides)
    c.post_bond(world.aggregator, task)
    world.register(task)
    c.advance(world.outsider, task)  # full: closes early
    return task


def test_an_aggregator_that_withholds_a_complete_round_loses_its_bond(world: World) -> None:
    """Round 1: everyone in U posted its unmask shares, so the aggregator had all it needed,
    and it posts no model: its whole bond goes to round 1's survivors; nobody gets round 1's
    reward (no model). Round 2 is finalized as usual."""
    c = world.contracts
    task = bonded_task(world)
    assert c.bond_of(task) == BOND
    world.run_round(task, finalize=False)
    assert c.state(task).unmask_complete
    world.finish_phase(task)  # no model by the Finalize deadline
    (forfeit,) = c.events("BondForfeited", task)
    assert (forfeit.args["round"], forfeit.args["rewardPerSurvivor"]) == (1, BOND // 6)
    assert c.events("RoundFailed", task)[0].args["phase"] == Phase.FINALIZE
    assert c.bond_of(task) == 0
    assert [c.credit_of(task, p.address) for p in world.participants] == [BOND // 6] * 6
    world.run_round(task)
    assert [c.credit_of(task, p.address) for p in world.participants] == [BOND // 6 + 15] * 6
    with pytest.raises(NothingToWithdrawError):
        c.withdraw_bond(world.aggregator, task)


def test_an_incomplete_unmask_does_not_cost_the_aggregator_its_bond(world: World) -> None:
    """One survivor posts no unmask shares: the aggregator may lack what it needs, so a
    missed Finalize is not held against it; the bond comes back after the task."""
    c = world.contracts
    task = bonded_task(world, num_rounds=1)
    # Unmask runs to its deadline: one share set is missing
    world.run_round(task, unmask=world.participants[:5], finalize=False)
    assert world.phase(task) == Phase.FINALIZE and not c.state(task).unmask_complete
    world.finish_phase(task)  # no model by the Finalize deadline
    assert c.events("BondForfeited", task) == [] and world.phase(task) == Phase.ENDED
    before = c.balance_of(world.aggregator.address)
    c.withdraw_bond(world.aggregator, task)
    assert c.balance_of(world.aggregator.address) == before + BOND


def test_a_task_whose_aggregator_posts_no_bond_never_starts(world: World) -> None:
    c = world.contracts
    c.mint(world.deployer, world.aggregator.address, TOKENS)
    task = world.create_task(aggregator_bond=BOND)
    with pytest.raises(NotAggregatorError):
        c.post_bond(world.owner, task)
    world.register(task)
    with pytest.raises(PhaseStillOpenError):  # full, but unbonded: no early close (a griefer
        c.advance(world.outsider, task)  # taking the last seat cannot end it before the bond)
    world.finish_phase(task)  # the deadline passed with no bond: the task ends
    assert world.phase(task) == Phase.ENDED
    with pytest.raises(WrongPhaseError):  # too late to bond now
        c.post_bond(world.aggregator, task)
    c.withdraw_stake(world.participants[0], task)
    assert c.balance_of(world.participants[0].address) == TOKENS
    unbonded = world.create_task()
    with pytest.raises(BondAlreadyPostedError):  # the task asks for no bond
        c.post_bond(world.aggregator, unbonded, approve=False)
    bonded = world.create_task(aggregator_bond=BOND)
    c.post_bond(world.aggregator, bonded)
    with pytest.raises(BondAlreadyPostedError):
        c.post_bond(world.aggregator, bonded)


def test_foreign_reverts_keep_their_name(world: World) -> None:
    """OpenZeppelin's errors have no subclass of ours but still carry their name."""
    mint = world.contracts.token.functions.mint(world.outsider.address, 1)
    with pytest.raises(ContractError) as info:
        world.chain.transact(world.outsider, mint)
    assert info.value.error_name == "OwnableUnauthorizedAccount"
    assert info.value.arguments == {"account": world.outsider.address}


def test_an_event_cursor_sees_each_event_once_in_chain_order(world: World) -> None:
    c = world.contracts
    task = world.create_task(num_rounds=1)
    other = world.create_task()
    cursor = c.follow(task)
    first = cursor.poll()
    assert [e.name for e in first] == ["TaskCreated", "ModelPublished", "PhaseChanged"]
    assert cursor.poll() == []
    world.register(task, world.participants[:3])
    world.register(other, world.participants[3:4])  # another task's events stay out
    world.finish_phase(task)
    world.run_round(task, share=world.participants[:3])
    names = [e.name for e in cursor.poll()]
    assert names.count("Registered") == 3 and names.count("Revealed") == 3
    assert names[-4:] == ["ModelPublished", "RoundFinalized", "PhaseChanged", "TaskEnded"]
    assert cursor.poll() == []

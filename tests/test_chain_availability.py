"""Issue 19 §1-§2 on the contract: data availability fixed once on chain by the aggregator,
the absence fee and ejection that make Sybils pay, and the owner's allowlist. Each attack is
driven through the contract's own functions by the party that would mount it."""

from __future__ import annotations

import pytest

from secagg.chain import Phase, Status
from secagg.chain.allowlist import proof, root
from secagg.chain.contracts import Availability
from secagg.chain.errors import (
    AlreadyFlaggedError,
    AvailabilityFixedError,
    AvailabilityPendingError,
    BlobWithheldError,
    CannotLeaveNowError,
    EjectedError,
    InvalidParameterError,
    MalformedCidError,
    NotAggregatorError,
    NotAllowedError,
    NotFlaggableError,
    NothingToWithdrawError,
    NotRegisteredError,
    NotWithholdableError,
    TaskFullError,
    WrongPhaseError,
)

from .chain_world import World, registered_task

STAKE, SLASH, FEE = 100, 60, 30  # World.params' stake and slash; the absence fee used here


started = registered_task  # a task with every participant registered, in round 1's first phase


# ----------------------------------------------------------------- data availability (§1)


def test_nobody_commits_before_the_bundles_availability_is_fixed(world: World) -> None:
    c, p = world.contracts, world.participants
    task = started(world)
    world.share(task, p)
    world.finish_phase(task)
    with pytest.raises(AvailabilityPendingError):
        c.commit(p[0], task, b"\1" * 32)
    with pytest.raises(NotAggregatorError):  # only the task's aggregator declares
        c.declare_unavailable(world.outsider, task, [])
    c.declare_unavailable(world.aggregator, task, [5])
    assert c.state(task).availability is Availability.SHARES_FIXED
    with pytest.raises(AvailabilityFixedError):  # once: no second view for late committers
        c.declare_unavailable(world.aggregator, task, [])
    with pytest.raises(BlobWithheldError):
        c.commit(p[5], task, b"\1" * 32)
    assert c.status(task, p[5].address) is Status.SHARES_WITHHELD
    world.commit(task, p[:5])
    (event,) = c.events("Unavailable", task)
    assert (event.args["phase"], list(event.args["withheld"])) == (Phase.COMMIT, [5])


def test_a_declaration_names_only_members_that_posted_the_stage_blob(world: World) -> None:
    c, p = world.contracts, world.participants
    task = started(world)
    world.share(task, p[:5])  # 5 posted no bundle
    world.finish_phase(task)
    for bad in ([5], [9], [1, 1]):  # no bundle; no such member; named twice
        with pytest.raises(NotWithholdableError):
            c.declare_unavailable(world.aggregator, task, bad)
    assert c.state(task).availability is Availability.OPEN  # a reverted declaration fixes nothing


def test_a_withheld_input_leaves_u_is_not_paid_and_not_slashed(world: World) -> None:
    """Member 5 reveals a valid commitment to a blob nobody can fetch: the aggregator declares
    it, 5 leaves U before any unmask share is accepted, the others finalize and are paid; 5
    earns nothing and keeps its stake (the chain cannot tell it from a censored member)."""
    c, p = world.contracts, world.participants
    task = started(world)
    world.reveal_round(task)
    world.finish_phase(task)
    assert c.state(task).survivors == 6
    with pytest.raises(AvailabilityPendingError):
        c.post_unmask(p[0], task, b"\1" * 36)
    c.declare_unavailable(world.aggregator, task, [5])
    state = c.state(task)
    assert (state.survivors, state.expected) == (5, 5)
    assert c.survivors(task, 1) == [a.address for a in p[:5]]
    assert c.status(task, p[5].address) is Status.INPUT_WITHHELD
    world.unmask(task, p[:5])
    world.finish_phase(task)  # closes early: all of U posted
    world.finalize(task)
    assert [c.credit_of(task, a.address) for a in p] == [90 // 5] * 5 + [0]
    assert c.member(task, p[5].address).stake == STAKE


def test_withheld_inputs_below_the_threshold_fail_the_round_at_once(world: World) -> None:
    c, p = world.contracts, world.participants
    task = started(world)
    world.reveal_round(task, reveal=p[:4])
    world.finish_phase(task)
    assert c.state(task).phase is Phase.UNMASK
    world.declare(task, (0, 1))  # U = {2, 3} < threshold 3
    assert c.state(task).round == 2
    (failed,) = c.events("RoundFailed", task)
    assert (failed.args["round"], failed.args["phase"]) == (1, Phase.UNMASK)


def test_he_tasks_fix_the_inputs_before_the_model(world: World) -> None:
    c, p = world.contracts, world.participants
    task = started(world, share_blocks=0, unmask_blocks=0)
    world.commit(task, p)
    world.finish_phase(task)
    world.reveal(task, p)
    world.finish_phase(task)
    assert c.state(task).phase is Phase.FINALIZE
    with pytest.raises(AvailabilityPendingError):
        c.finalize_round(world.aggregator, task, b"\1" * 36, b"\1" * 32)
    world.declare(task, (2,))
    world.finalize(task)
    assert c.survivors(task, 1) == [a.address for i, a in enumerate(p) if i != 2]


# ------------------------------------------------------------- Sybils: absence fee (§2)


def test_sybils_that_never_act_pay_the_absence_fee_until_ejected(world: World) -> None:
    """Three of six members register and never act. Each round they skip costs each the fee
    (charged when Reveal closes, paid with that round's reward to its survivors); at zero
    stake they are ejected and the ShareKeys phase stops waiting for them."""
    c, p = world.contracts, world.participants
    honest, sybils = p[:3], p[3:]
    task = started(world, absence_fee=FEE, num_rounds=5)
    world.run_round(task, share=honest)
    charged = c.events("AbsenceCharged", task)
    assert sorted(e.args["participant"] for e in charged) == sorted(a.address for a in sybils)
    assert all(e.args["amount"] == FEE for e in charged)
    assert [c.credit_of(task, a.address) for a in honest] == [(90 + 3 * FEE) // 3] * 3
    for _ in range(3):  # 100 = 30 + 30 + 30 + 10
        world.run_round(task, share=honest)
    assert [c.member(task, a.address).stake for a in sybils] == [0, 0, 0]
    assert [c.member(task, a.address).ejected for a in sybils] == [True] * 3
    ejected = c.events("MemberEjected", task)
    assert sorted(e.args["participant"] for e in ejected) == sorted(a.address for a in sybils)
    assert c.state(task).expected == 3  # ShareKeys waits for the three active members only
    with pytest.raises(EjectedError):
        world.share(task, sybils[:1])
    # the Sybils' whole stakes went to the honest survivors: 3 x (30 + 30 + 30 + 10)
    assert [c.credit_of(task, a.address) for a in honest] == [(4 * 90 + 3 * STAKE) // 3] * 3


def test_a_round_failed_by_absentees_still_charges_them(world: World) -> None:
    c, p = world.contracts, world.participants
    task = started(world, absence_fee=FEE, threshold=4, min_participants=4)
    world.share(task, p[:3])  # 3 < threshold: the round fails at ShareKeys
    world.finish_phase(task)
    (failed,) = c.events("RoundFailed", task)
    assert failed.args["phase"] == Phase.SHARE_KEYS
    assert [c.member(task, a.address).stake for a in p] == [STAKE] * 3 + [STAKE - FEE] * 3
    assert c.slashed_of(task) == 3 * FEE


def test_the_absence_fee_is_bounded_by_the_slash_amount(world: World) -> None:
    with pytest.raises(InvalidParameterError, match="absenceFee"):
        world.create_task(absence_fee=SLASH + 1)


# ------------------------------------------------------------------ allowlist (§2)


def test_only_allowlisted_accounts_register(world: World) -> None:
    """The owner approves four accounts by a Merkle root: a Sybil (the outsider) is refused
    with or without a borrowed proof, and cannot fill the task; every approved one gets in."""
    c, p = world.contracts, world.participants
    allowed = [a.address for a in p[:4]]
    task = world.create_task(allowlist_root=root(allowed), max_participants=4)
    with pytest.raises(NotAllowedError):
        c.register(world.outsider, task, b"\7" * 32)
    with pytest.raises(NotAllowedError):  # p[0]'s proof does not open for the outsider
        c.register(world.outsider, task, b"\7" * 32, proof=proof(allowed, allowed[0]))
    for i, account in enumerate(p[:4]):
        c.register(account, task, bytes([i + 1]) * 32, proof=proof(allowed, account.address))
    assert c.participants(task) == allowed
    with pytest.raises(TaskFullError):
        c.register(p[4], task, b"\5" * 32, proof=proof(allowed, allowed[0]))


# -------------------------------------------------- challenge window and keepers (§3)


def test_rewards_wait_out_the_challenge_window_in_which_members_flag(world: World) -> None:
    """After a finalize, members may flag the round until ``challengeBlocks`` have passed
    (once each, outsiders not at all); no reward of the round can be claimed before."""
    c, p = world.contracts, world.participants
    task = started(world, challenge_blocks=10)
    world.run_round(task)
    assert c.credit_of(task, p[0].address) == 0
    with pytest.raises(NothingToWithdrawError):
        c.claim_rewards(p[0], task)
    c.flag_round(p[1], task, 1)
    with pytest.raises(AlreadyFlaggedError):
        c.flag_round(p[1], task, 1)
    with pytest.raises(NotRegisteredError):
        c.flag_round(world.outsider, task, 1)
    with pytest.raises(NotFlaggableError):  # not finalized
        c.flag_round(p[2], task, 2)
    c.flag_round(p[2], task, 1)
    assert c.flags_of(task, 1) == 2
    events = c.events("RoundFlagged", task)
    assert [(e.args["member"], e.args["flags"]) for e in events] == [
        (p[1].address, 1),
        (p[2].address, 2),
    ]
    world.chain.mine(10)
    with pytest.raises(NotFlaggableError):  # the window has closed
        c.flag_round(p[3], task, 1)
    assert c.credit_of(task, p[0].address) == 90 // 6
    c.claim_rewards(p[0], task)


def test_a_claim_stops_at_the_first_round_still_in_its_window(world: World) -> None:
    c, p = world.contracts, world.participants
    task = started(world, challenge_blocks=50, num_rounds=2)
    world.run_round(task)
    world.run_round(task)  # Commit and Reveal run 30 blocks each: 1's window closed, 2's open
    c.claim_rewards(p[0], task)
    assert c.member(task, p[0].address).claimed_through == 1
    world.chain.mine(50)
    assert c.credit_of(task, p[0].address) == 90 // 6


def test_the_caller_of_the_walk_is_paid_the_keeper_fee_from_the_pool(world: World) -> None:
    c, p = world.contracts, world.participants
    task = started(world, keeper_fee=7)
    pool = c.pool_of(task)
    world.reveal_round(task)
    c.advance_when_possible(p[4], task)  # the end of Reveal: the walk over the members
    assert c.pool_of(task) == pool - 7
    assert c.credit_of(task, p[4].address) == 7
    (event,) = c.events("KeeperCredited", task)
    assert (event.args["keeper"], event.args["amount"]) == (p[4].address, 7)
    world.unmask(task, p)
    c.advance_when_possible(world.outsider, task)  # advances that walk nothing pay nothing
    assert c.credit_of(task, world.outsider.address) == 0
    with pytest.raises(InvalidParameterError, match="keeperFee"):
        world.create_task(keeper_fee=91)  # above rewardPerRound
    with pytest.raises(InvalidParameterError, match="challengeBlocks"):
        world.create_task(challenge_blocks=4)


def test_a_member_leaves_a_stalled_task_with_its_stake_less_the_fee(world: World) -> None:
    """The escape hatch: any time after Registration a member may leave, paying the absence
    fee; it is ejected, may withdraw the rest of its stake at once, and ShareKeys stops
    waiting for it. Not with an unopened commitment (that would dodge the slash), and not
    twice."""
    c, p = world.contracts, world.participants
    waiting = world.create_task(absence_fee=FEE)
    world.register(waiting, p[:2])
    with pytest.raises(WrongPhaseError):  # Registration: nothing to escape from yet
        c.leave(p[0], waiting)
    task = started(world, absence_fee=FEE)
    with pytest.raises(NotRegisteredError):
        c.leave(world.outsider, task)
    before = c.balance_of(p[0].address)
    world.share(task, p[1:])
    c.leave(p[0], task)
    c.withdraw_stake(p[0], task)  # at once, before the task ends
    assert c.balance_of(p[0].address) == before + STAKE - FEE
    member = c.member(task, p[0].address)
    assert (member.stake, member.ejected) == (0, True)
    state = c.state(task)
    assert state.acted == state.expected == 5  # ShareKeys may close early now
    with pytest.raises(EjectedError):
        c.leave(p[0], task)
    world.finish_phase(task)
    world.commit(task, p[1:])
    with pytest.raises(CannotLeaveNowError):
        c.leave(p[1], task)
    world.finish_phase(task)
    world.reveal(task, p[1:])
    c.leave(p[1], task)  # opened (and not yet in Unmask): free to go, still in this round's U
    world.finish_phase(task)
    with pytest.raises(CannotLeaveNowError):  # a member of U in Unmask stays until it is over
        c.leave(p[2], task)
    world.unmask(task, p[2:])
    world.finish_phase(task)
    world.finalize(task)
    assert c.slashed_of(task) == 0  # both fees went to round 1's survivors
    assert c.credit_of(task, p[1].address) == (90 + 2 * FEE) // 5


def test_a_malformed_cid_never_reaches_an_event(world: World) -> None:
    """Agents parse every CID they read from events; one that does not parse would stop every
    agent of the task (review of issue 19). The contract refuses it at every entry point."""
    c, p = world.contracts, world.participants
    bad = b"\x01"  # a member's posting: anything but a binary CIDv1 (sha2-256, raw or dag-pb)
    task = world.create_task()
    with pytest.raises(MalformedCidError):
        c.register(p[0], task, b"\1" * 32, bad)
    world.register(task)
    c.advance(world.outsider, task)
    with pytest.raises(MalformedCidError):
        c.share_keys(p[0], task, b"\2" * 32, bad)
    world.share(task, p)
    world.finish_phase(task)
    world.declare(task)
    opening = (bad, b"\3" * 32)
    c.commit(p[0], task, c.commitment(task, 1, p[0].address, *opening))
    world.commit(task, p[1:])
    world.finish_phase(task)
    with pytest.raises(MalformedCidError):
        c.reveal(p[0], task, *opening)
    world.reveal(task, p[1:])
    world.finish_phase(task)
    world.declare(task)
    with pytest.raises(MalformedCidError):
        c.post_unmask(p[1], task, bad)
    assert not [e for e in c.events("SharesPosted", task) if e.args["bundleCid"] == bad]

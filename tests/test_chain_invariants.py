"""Hypothesis stateful test of the round contracts: random calls by random accounts.

Whatever the sequence (registrations, shares, honest and dishonest commits and reveals,
unmask posts, advances, mined blocks, finalizations by anyone, claims and withdrawals),
every rejected call is a named contract error and these stay true:

- U of every closed round is exactly the set of valid reveals less the inputs the aggregator
  declared unavailable, a subset of the committers;
- each account is paid at most what its rounds in U earned (claimed + credit == earned);
- the token supply is conserved, and the coordinator holds exactly stakes + credits + pool +
  slashed stake not yet paid out;
- a participant's stake is only ever reduced by slashing for a commit it did not reveal, or
  paid out (withdrawn after the end, or after it left);
- the owner's pool never grows (slashing pays the survivors, not the one who sets its rules);
- past a phase's deadline, `advance` always succeeds until the task has ended (no bricking).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from secagg.chain import Chain, Phase, Status
from secagg.chain.errors import ContractError

from .chain_world import World, cid, salt

_WORLD: World | None = None


def world() -> World:
    global _WORLD
    if _WORLD is None:
        _WORLD = World.build(Chain.embedded(), num_participants=4)
    return _WORLD


ACTORS = st.integers(min_value=0, max_value=5)  # 4 participants, the outsider, the aggregator


class RoundMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.w = world()
        self.snapshot = self.w.chain.snapshot()
        self.c = self.w.contracts
        self.supply = self.w.chain.call(self.c.token.functions.totalSupply())
        self.committers: dict[int, set[str]] = defaultdict(set)
        self.valid_reveals: dict[int, set[str]] = defaultdict(set)
        self.withheld: dict[int, set[str]] = defaultdict(set)  # inputs declared unavailable
        self.openings: dict[tuple[int, str], tuple[bytes, bytes]] = {}
        self.claimed: dict[str, int] = defaultdict(int)
        self.earned: dict[str, int] = defaultdict(int)
        self.slashes: dict[str, int] = defaultdict(int)
        self.withdrawn: set[str] = set()
        self.rejected = 0

    def teardown(self) -> None:
        self.w.chain.revert(self.snapshot)

    def actor(self, i: int):  # type: ignore[no-untyped-def]
        return [*self.w.participants, self.w.outsider, self.w.aggregator][i]

    def attempt(self, fn, *args) -> bool:  # type: ignore[no-untyped-def]
        try:
            fn(*args)
        except ContractError:
            self.rejected += 1
            return False
        return True

    @initialize(registered=st.integers(3, 4), first=st.sampled_from([None, 0, 1, 2, "random"]))
    def create(self, registered: int, first: int | str | None) -> None:
        """A task with 3-4 members; most examples then run round 1 whole (one member may
        skip its reveal), so that random calls start from a task that has finalized or
        slashed; the rest start at Registration."""
        self.task = self.w.create_task(
            max_participants=5,
            min_participants=2,
            threshold=2,
            num_rounds=3,
            registration_blocks=8,
            share_blocks=8,
            commit_blocks=8,
            reveal_blocks=8,
            unmask_blocks=8,
            finalize_blocks=8,
            reward_per_round=100,
            reward_pool=250,
        )
        self.stake = self.c.params(self.task).stake
        self.slash = self.c.params(self.task).slash_amount
        self.reward = self.c.params(self.task).reward_per_round
        for who in range(registered):
            self.register(who)
        if first != "random":
            self.progress_round(first if isinstance(first, int) else None)

    @property
    def round(self) -> int:
        return self.c.state(self.task).round

    def register(self, who: int) -> None:
        self.attempt(self.c.register, self.actor(who), self.task, bytes([who + 1]) * 32)

    def share(self, who: int) -> None:
        self.attempt(self.c.share_keys, self.actor(who), self.task, b"\x07" * 32, cid(who))

    def commit(self, who: int, nonce: int) -> None:
        account, round_ = self.actor(who), self.round
        opening = (cid(f"{who}/{round_}/{nonce}"), salt((who, round_, nonce)))
        value = self.c.commitment(self.task, round_, account.address, *opening)
        if self.attempt(self.c.commit, account, self.task, value):
            self.committers[round_].add(account.address)
            self.openings[(round_, account.address)] = opening

    def reveal(self, who: int, honest: bool) -> None:
        account, round_ = self.actor(who), self.round
        opening = self.openings.get((round_, account.address), (cid("none"), salt("none")))
        if not honest:
            opening = (opening[0], hashlib.sha256(opening[1]).digest())
        if self.attempt(self.c.reveal, account, self.task, *opening):
            assert honest, "a reveal that does not open the commitment was accepted"
            self.valid_reveals[round_].add(account.address)

    def unmask(self, who: int) -> None:
        self.attempt(self.c.post_unmask, self.actor(who), self.task, cid(f"u{who}"))

    def declare(self, withheld: set[int]) -> None:
        """The aggregator fixes the current stage's unavailable blobs (members by index)."""
        state = self.c.state(self.task)
        ids = sorted(withheld)
        if self.attempt(self.c.declare_unavailable, self.w.aggregator, self.task, ids):
            if state.phase == Phase.UNMASK:  # inputs: those members leave U (Finalize: unmasks)
                self.withheld[state.round] |= {self.actor(i).address for i in ids}
                event("an input was declared unavailable" if ids else "inputs declared")

    def finalize(self, who: int) -> None:
        round_, pool = self.round, self.c.pool_of(self.task)
        slashed = self.c.slashed_of(self.task)
        if self.attempt(self.c.finalize_round, self.actor(who), self.task, cid("agg"), b"\1" * 32):
            event("a round was finalized")
            survivors = self.valid_reveals[round_] - self.withheld[round_]
            for address in survivors:  # reward + unpaid slashed stake, split equally among U
                self.earned[address] += (min(self.reward, pool) + slashed) // len(survivors)

    def advance(self, who: int) -> bool:
        before = self.c.state(self.task)
        advanced = self.attempt(self.c.advance, self.actor(who), self.task)
        if advanced and before.phase == Phase.REVEAL:
            for address in self.committers[before.round] - self.valid_reveals[before.round]:
                self.slashes[address] += 1
                event("a participant was slashed")
        return advanced

    @rule(
        dropouts=st.sets(ACTORS, max_size=2),
        cheaters=st.sets(ACTORS, max_size=1),
        finalizer=st.sampled_from([5, 5, 5, 0, 4]),
        close=st.booleans(),
        withheld=st.sets(st.integers(0, 3), max_size=1),
    )
    def progress(
        self,
        dropouts: set[int],
        cheaters: set[int],
        finalizer: int,
        close: bool,
        withheld: set[int],
    ) -> None:
        """The aggregator fixes the stage's availability (maybe calling one blob withheld;
        rejected unless that member posted it); everyone but the dropouts does what the current
        phase asks (the outsider and the aggregator are rejected, cheaters reveal a wrong
        opening); then, maybe, blocks are mined past the deadline and the phase advanced."""
        phase = self.c.state(self.task).phase
        if phase in (Phase.COMMIT, Phase.UNMASK, Phase.FINALIZE):
            self.declare(withheld)
            self.declare(set())  # a rejected declaration above leaves the stage open
            phase = self.c.state(self.task).phase  # too few left in U: the round failed
        steps = {
            Phase.REGISTRATION: self.register,
            Phase.SHARE_KEYS: self.share,
            Phase.COMMIT: lambda who: self.commit(who, 0),
            Phase.REVEAL: lambda who: self.reveal(who, who not in cheaters),
            Phase.UNMASK: self.unmask,
        }
        group = set(range(6)) - dropouts
        if phase == Phase.FINALIZE:
            self.finalize(finalizer)
        elif phase in steps:
            for who in sorted(group):
                steps[phase](who)
        if close:
            blocks = self.c.state(self.task).deadline - self.w.chain.block_number + 1
            self.w.chain.mine(max(blocks, 0))
            ended = self.c.state(self.task).phase == Phase.ENDED
            assert self.advance(4) or ended, "advance reverted past the deadline: task bricked"

    @rule(skips_reveal=st.sampled_from([None, 0, 1, 2, 3]))
    def progress_round(self, skips_reveal: int | None) -> None:
        """A whole round at once: everyone does what each phase asks (but one member may
        commit and not reveal), the aggregator declares nothing withheld and finalizes, and
        each phase is closed. Rules are drawn uniformly, so without it few examples would get
        through the six phases of a round to Finalize and to slashing."""
        start = self.round
        for _ in range(6):
            state = self.c.state(self.task)
            if state.round != start or state.phase == Phase.ENDED:
                break
            reveal = state.phase == Phase.REVEAL and skips_reveal is not None
            self.progress({skips_reveal} if reveal else set(), set(), 5, True, set())

    @rule(who=ACTORS, action=st.integers(0, 12), honest=st.booleans(), nonce=st.integers(0, 3))
    def stray(self, who: int, action: int, honest: bool, nonce: int) -> None:
        """Any call (payouts included) by anyone at any time: most are rejected with a named
        error."""
        calls = [
            lambda: self.register(who),
            lambda: self.share(who),
            lambda: self.commit(who, nonce),
            lambda: self.reveal(who, honest),
            lambda: self.unmask(who),
            lambda: self.finalize(who),
            lambda: self.advance(who),
            lambda: self.w.chain.mine(nonce + 1),
            lambda: self.payout(who, 0),
            lambda: self.payout(who, 1),
            lambda: self.payout(who, 2),
            lambda: self.declare({who % 4}),
            lambda: self.leave(who),
        ]
        calls[action]()

    def leave(self, who: int) -> None:
        """The escape hatch: the member is ejected and may withdraw its stake at once (the
        machine's tasks charge no absence fee, so the stake stays whole until then)."""
        self.attempt(self.c.leave, self.actor(who), self.task)

    def payout(self, who: int, kind: int) -> None:
        account = self.actor(who)
        if kind == 0:
            credit = self.c.credit_of(self.task, account.address)
            if self.attempt(self.c.claim_rewards, account, self.task):
                self.claimed[account.address] += credit
        elif kind == 1:
            if self.attempt(self.c.withdraw_stake, account, self.task):
                self.withdrawn.add(account.address)
        else:
            self.attempt(self.c.withdraw_pool, self.w.owner, self.task)

    @invariant()
    def invariants_hold(self) -> None:
        if not hasattr(self, "task"):
            return
        block = self.w.chain.block_number
        if block == getattr(self, "checked_at", None):
            return  # nothing was mined: nothing changed on chain
        self.checked_at = block
        self.u_is_the_set_of_valid_reveals()
        self.payouts_and_custody()

    def u_is_the_set_of_valid_reveals(self) -> None:
        state = self.c.state(self.task)
        closed = state.round - 1 if state.phase.value <= Phase.REVEAL.value else state.round
        for round_ in range(1, closed + 1):
            survivors = set(self.c.survivors(self.task, round_))
            assert survivors <= self.committers[round_]
            assert survivors == self.valid_reveals[round_] - self.withheld[round_]

    def payouts_and_custody(self) -> None:
        pool = self.c.pool_of(self.task)
        assert pool <= getattr(self, "last_pool", pool), "the owner's pool grew"
        self.last_pool = pool
        held = pool + self.c.slashed_of(self.task) + self.c.bond_of(self.task)
        for account in [*self.w.participants, self.w.outsider, self.w.aggregator]:
            address = account.address
            credit = self.c.credit_of(self.task, address)
            assert self.claimed[address] + credit == self.earned[address], (
                "paid twice or not at all"
            )
            member = self.c.member(self.task, address)
            if member.index == 0:
                continue
            expected = max(0, self.stake - self.slash * self.slashes[address])
            if address in self.withdrawn:
                assert member.stake == 0
            else:
                assert member.stake == expected, "a stake changed other than by slashing"
            if member.status == Status.SLASHED:
                assert self.slashes[address] > 0
            held += credit + member.stake
        assert self.c.balance_of(self.c.coordinator.address) == held
        assert self.w.chain.call(self.c.token.functions.totalSupply()) == self.supply


RoundMachine.TestCase.settings = settings(max_examples=10, stateful_step_count=60, deadline=None)
TestRoundInvariants = RoundMachine.TestCase

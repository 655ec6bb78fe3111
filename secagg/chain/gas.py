"""Gas per contract function and per participant per round, measured on the embedded chain.

``python -m secagg.chain.gas`` prints the table committed as ``contracts/GAS.md``
(``make gas``). The goal of the design: share-bundle CID + commit + reveal <= 120k gas per
participant per round.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount

from secagg.randomness import SeededRandom

from .contracts import Contracts, TaskParams, deploy, protocol_id
from .node import Chain

GOAL = 120_000
PER_ROUND = ("shareKeys", "commit", "reveal")
WORST = (
    "advance (end of reveal, everyone slashed)",
    "advance (end of share_keys, everyone absent and ejected)",
)
TX_CAP = 16_777_216  # EIP-7825's per-transaction gas cap (Fusaka)


def _cid(label: str) -> bytes:
    return bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(label.encode()).digest()


@dataclass
class GasReport:
    """gasUsed of every transaction of a run, by function."""

    num_participants: int
    num_rounds: int
    worst: bool = False
    used: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def per_participant_round(self) -> list[int]:
        """share + commit + reveal of each participant in each round (none in the worst
        case, where nobody reveals)."""
        if self.worst:
            return []
        return [sum(t) for t in zip(*(self.used[f] for f in PER_ROUND), strict=True)]

    def markdown(self) -> str:
        n, r = self.num_participants, self.num_rounds
        lines = [
            "| function | calls | min | mean | max |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, values in self.used.items():
            mean = round(statistics.fmean(values))
            lines.append(
                f"| `{name}` | {len(values)} | {min(values):,} | {mean:,} | {max(values):,} |"
            )
        totals = self.per_participant_round()
        if not totals:
            return "\n".join(lines)
        lines += [
            "",
            f"Per participant per round (share-bundle CID + commit + reveal), {n} participants, "
            f"{r} rounds: min {min(totals):,}, max {max(totals):,} gas "
            f"(goal <= {GOAL:,}: {'met' if max(totals) <= GOAL else 'NOT met'}).",
        ]
        return "\n".join(lines)


def measure_gas(
    num_participants: int = 10, num_rounds: int = 2, *, worst: bool = False
) -> GasReport:
    """Runs a task on a fresh embedded chain: every participant honest, or (``worst``) the
    two rounds whose end-of-phase loops write most: in round 1 everyone shares and commits
    and nobody reveals (everyone slashed), in round 2 nobody shares (everyone charged the
    absence fee, which takes the rest of every stake: everyone ejected)."""
    chain = Chain.embedded()
    rng = SeededRandom(b"gas")
    deployer = chain.new_account(rng.fork("deployer"))
    report = GasReport(num_participants, num_rounds, worst)
    contracts = deploy(chain, deployer)
    report.used["deploy RewardToken"].append(contracts.deploy_gas["RewardToken"])
    report.used["deploy RoundCoordinator (+ registries)"].append(
        contracts.deploy_gas["RoundCoordinator"]
    )
    aggregator = chain.new_account(rng.fork("aggregator"))
    people = [chain.new_account(rng.fork(f"p{i}")) for i in range(num_participants)]
    for account in [deployer, *people]:
        contracts.mint(deployer, account.address, 10**6)
    params = TaskParams(
        protocol_id=protocol_id("secaggplus"),
        params_hash=hashlib.sha256(b"config").digest(),
        aggregator=aggregator.address,
        min_participants=num_participants,
        max_participants=num_participants,
        threshold=max(1, num_participants // 2),
        num_rounds=num_rounds,
        registration_blocks=2 * num_participants + 2,
        share_blocks=2 * num_participants + 2,
        commit_blocks=2 * num_participants + 2,
        unmask_blocks=2 * num_participants + 2,
        reveal_blocks=2 * num_participants + 2,
        reward_per_round=10 * num_participants,  # every survivor earns 10 a round
        reward_pool=10 * num_participants * num_rounds,
        absence_fee=50,
    )

    def record(name: str, receipt: object) -> None:
        report.used[name].append(int(receipt["gasUsed"]))  # type: ignore[index]

    def close_phase() -> None:
        phase = contracts.state(task).phase.name.lower()
        record(f"advance (end of {phase})", contracts.advance_when_possible(aggregator, task))

    contracts.approve(deployer, params.reward_pool)
    fn = contracts.coordinator.functions.createTask(params.as_abi(), _cid("model-0"), b"\0" * 32)
    record("createTask", chain.transact(deployer, fn))
    task = contracts.coordinator.functions.taskCount().call()
    for i, account in enumerate(people):
        record("register", contracts.register(account, task, (i + 1).to_bytes(32, "big")))
    close_phase()
    if worst:
        _worst_rounds(contracts, task, aggregator, people, record, close_phase)
        return report
    for round_ in range(1, num_rounds + 1):
        for account in people:
            bundle = _cid(f"bundle/{round_}/{account.address}")
            record("shareKeys", contracts.share_keys(account, task, b"\x11" * 32, bundle))
        close_phase()
        record("declareUnavailable", contracts.declare_unavailable(aggregator, task))
        openings = {}
        for account in people:
            opening = (_cid(f"masked/{round_}/{account.address}"), hashlib.sha256(b"s").digest())
            openings[account.address] = opening
            value = contracts.commitment(task, round_, account.address, *opening)
            record("commit", contracts.commit(account, task, value))
        close_phase()
        for account in people:
            record("reveal", contracts.reveal(account, task, *openings[account.address]))
        close_phase()
        record("declareUnavailable", contracts.declare_unavailable(aggregator, task))
        for account in people:
            record("postUnmask", contracts.post_unmask(account, task, _cid(f"unmask/{round_}")))
        close_phase()
        model = _cid(f"model-{round_}")
        record("finalizeRound", contracts.finalize_round(aggregator, task, model, b"\1" * 32))
        if round_ < num_rounds:  # everyone claims between rounds
            for account in people:
                record("claimRewards", contracts.claim_rewards(account, task))
    for account in people:
        record("claimRewards", contracts.claim_rewards(account, task))
        record("withdrawStake", contracts.withdraw_stake(account, task))
    return report


def _worst_rounds(
    contracts: Contracts,
    task: int,
    aggregator: LocalAccount,
    people: list[LocalAccount],
    record: Callable[[str, object], None],
    close_phase: Callable[[], None],
) -> None:
    for account in people:
        record("shareKeys", contracts.share_keys(account, task, b"\x11" * 32, _cid("b")))
    close_phase()
    record("declareUnavailable", contracts.declare_unavailable(aggregator, task))
    for account in people:
        opening = (_cid(f"masked/{account.address}"), hashlib.sha256(b"s").digest())
        record(
            "commit",
            contracts.commit(
                account, task, contracts.commitment(task, 1, account.address, *opening)
            ),
        )
    close_phase()  # commit
    record(
        "advance (end of reveal, everyone slashed)",
        contracts.advance_when_possible(aggregator, task),
    )
    record(
        "advance (end of share_keys, everyone absent and ejected)",
        contracts.advance_when_possible(aggregator, task),
    )


def largest(report: GasReport) -> tuple[str, int]:
    """The costliest single transaction of a run after deployment (name, gas)."""
    return max(
        ((name, max(v)) for name, v in report.used.items() if not name.startswith("deploy")),
        key=lambda item: item[1],
    )


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10, 100, 512]
    print("# Gas per function\n")
    print(
        "Measured by `make gas` (`python -m secagg.chain.gas`) on the embedded chain "
        "(eth-tester + py-evm, Prague rules). Deployment, `register` and the loops in "
        "`advance` are paid once per task or by whoever advances; the per-round cost of a "
        "participant is `shareKeys` + `commit` + `reveal` (+ `postUnmask` in masking tasks); "
        "the aggregator adds two `declareUnavailable` per round. The honest run has every "
        "participant act and claim after each round; the worst case is the two rounds whose "
        "end-of-phase walks write most (round 1: everyone commits and nobody reveals, so "
        "everyone is slashed; round 2: nobody shares, so everyone pays the absence fee, which "
        "takes the rest of every stake, and is ejected).\n"
    )
    honest = [measure_gas(n, 2) for n in sizes]
    worst = [measure_gas(n, 2, worst=True) for n in sizes]
    print("## Largest single transaction\n")
    print(f"EIP-7825 caps a transaction at {TX_CAP:,} gas; the goal is under 50% of it.\n")
    print("| participants | honest run | worst case | share of the cap |")
    print("|---:|---|---|---:|")
    for h, w in zip(honest, worst, strict=True):
        (hn, hg), (wn, wg) = largest(h), largest(w)
        top = max(hg, wg)
        print(f"| {h.num_participants} | `{hn}` {hg:,} | `{wn}` {wg:,} | {top / TX_CAP:.1%} |")
    print()
    for report in honest:
        print(f"## {report.num_participants} participants, 2 rounds, honest\n")
        print(report.markdown())
        print()
    for report in worst:
        print(f"## {report.num_participants} participants, worst case\n")
        print(report.markdown())
        print()
    if len(honest) >= 2:
        small, large = honest[0], honest[-1]
        extra = large.num_participants - small.num_participants
        print("## What grows with the number of participants\n")
        print("| paid by the caller of | gas per extra participant |")
        print("|---|---:|")
        for name in ("advance (end of reveal)", "finalizeRound", "claimRewards"):
            slope = (max(large.used[name]) - max(small.used[name])) / extra
            print(f"| `{name}` (largest call) | {slope:,.0f} |")
        for name in WORST:
            slope = (max(worst[-1].used[name]) - max(worst[0].used[name])) / extra
            print(f"| `{name}` | {slope:,.0f} |")
        print(
            "\nThe walk over the members when Reveal closes (U's bitmap, slashing, absence "
            "fees) is the only per-participant loop in a transaction (it also runs when a "
            "round fails at ShareKeys, to charge the absent). `finalizeRound` records the "
            "round's reward per survivor and writes nothing per survivor; each survivor's "
            "`claimRewards` walks the rounds finalized since its last claim (`MAX_ROUNDS` = "
            "1000 bounds the walk)."
        )


if __name__ == "__main__":
    main()

"""The gas goal of the contracts: share-bundle CID + commit + reveal <= 120k per participant
per round (gas is deterministic on the embedded chain, so this is a measurement, not a
timing)."""

from __future__ import annotations

from secagg.chain.gas import GOAL, PER_ROUND, TX_CAP, WORST, measure_gas

MAX_PARTICIPANTS = 512  # RoundCoordinator.MAX_PARTICIPANTS


def test_per_participant_round_gas_meets_the_goal() -> None:
    report = measure_gas(num_participants=4, num_rounds=2)
    totals = report.per_participant_round()
    assert len(totals) == 4 * 2
    assert max(totals) <= GOAL, report.markdown()
    for name in PER_ROUND:  # each step is a real, separate transaction
        assert all(21_000 < g < GOAL for g in report.used[name])
    assert "GOAL" not in report.markdown() and "met" in report.markdown()


def test_finalize_costs_the_same_whatever_the_number_of_participants() -> None:
    """No per-survivor write at finalize: the largest call of a task with many participants
    is the end-of-Reveal loop alone (survivors claim their share lazily)."""
    small, large = measure_gas(num_participants=3, num_rounds=1), measure_gas(12, 1)
    assert large.used["finalizeRound"] == small.used["finalizeRound"]
    assert large.used["claimRewards"] == small.used["claimRewards"][:1] * 12


def test_the_largest_transaction_at_max_participants_is_under_half_the_cap() -> None:
    """The worst walks (everyone slashed; everyone absent and ejected) grow linearly with the
    members; extrapolated from 4 and 12 to MAX_PARTICIPANTS they stay under 50% of EIP-7825's
    cap (GAS.md measures 512 itself)."""
    small, large = measure_gas(4, 2, worst=True), measure_gas(12, 2, worst=True)
    for name in WORST:
        slope = (large.used[name][0] - small.used[name][0]) / 8
        assert slope > 0
        at_max = large.used[name][0] + slope * (MAX_PARTICIPANTS - 12)
        assert at_max < TX_CAP / 2, (name, at_max)

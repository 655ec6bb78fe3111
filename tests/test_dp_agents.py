"""Distributed DP on chain: participants encode with the task's DP config, the aggregator's
model is verified from public data, epsilon is reported per round, and participants refuse
the round that would pass the task's budget."""

from __future__ import annotations

import pytest

from secagg.clients.agents.task import build_protocol
from secagg.clients.demo.run import Demo, DemoConfig
from secagg.clients.learning.trainer import DPSGD, dp_sgd_epsilon
from secagg.dp import DistributedDP, Mechanism
from secagg.dp.accounting import PrivacyAccountant, gaussian_epsilon
from secagg.errors import ConfigError


def config(**kwargs: object) -> DemoConfig:
    base: dict[str, object] = {"protocol": "secaggplus", "clients": 5, "rounds": 3, "seed": 7}
    return DemoConfig(**{**base, "dp_noise": 0.8, **kwargs})  # type: ignore[arg-type]


def test_participants_stop_at_the_budget_and_dp_rounds_verify() -> None:
    """The budget lies between epsilon after 2 and after 3 rounds: rounds 1 and 2 finalize
    and verify from public data (the noisy sum decodes with the round's public rotation);
    every participant refuses round 3 before sharing keys, so it fails in its first phase."""
    probe = config()
    dp = probe.dp()
    assert dp is not None
    dim = 64 * 64 + 64 + 64 * 10 + 10 + 1  # the digits MLP plus the appended entry
    accountant = PrivacyAccountant(dp, probe.clients, dim)
    budget = (accountant.epsilon(2) + accountant.epsilon(3)) / 2
    with Demo(config(dp_budget=budget)) as demo:
        result = demo.run()
    outcomes = [r.outcome for r in result.rounds]
    assert outcomes == ["finalized", "finalized", "failed at SHARE_KEYS"]
    assert [r.verified for r in result.rounds[:2]] == [True, True]
    assert [r.epsilon for r in result.rounds] == [accountant.epsilon(r) for r in (1, 2, 3)]
    notes = " ".join(result.rounds[2].notes)
    assert notes.count("privacy-budget") == probe.clients


def test_without_masking_participants_stop_at_the_budget_when_the_round_opens() -> None:
    """``plain`` has no SHARE_KEYS: its round opens at COMMIT, where every participant
    refuses the round past the budget; with no commitment the contract fails round 2 when
    its REVEAL phase ends (as for participants killed at Commit, SECURITY.md's fault matrix)."""
    probe = config(protocol="plain", rounds=2)
    dp = probe.dp()
    assert dp is not None
    accountant = PrivacyAccountant(dp, probe.clients, 64 * 64 + 64 + 64 * 10 + 10 + 1)
    budget = (accountant.epsilon(1) + accountant.epsilon(2)) / 2
    with Demo(config(protocol="plain", rounds=2, dp_budget=budget)) as demo:
        result = demo.run()
    assert [r.outcome for r in result.rounds] == ["finalized", "failed at REVEAL"]
    assert " ".join(result.rounds[1].notes).count("privacy-budget") == probe.clients


def test_a_dp_task_spec_round_trips_and_refuses_a_bad_dp_entry() -> None:
    cfg = config()
    proto = build_protocol(cfg.protocol, cfg.protocol_config())
    assert proto.dp == cfg.dp()  # type: ignore[attr-defined]
    assert proto.min_inputs == cfg.dp().min_contributors  # type: ignore[attr-defined, union-attr]
    with pytest.raises(ConfigError) as err:
        build_protocol("plain", {"num_clients": 5, "dp": {"l2_clip": 1.0, "sigma": 2}})
    assert err.value.parameter == "dp"
    assert DistributedDP.from_dict(cfg.dp().to_dict()) == cfg.dp()  # type: ignore[union-attr]


def test_ckks_on_chain_takes_the_continuous_mechanism_and_verifies() -> None:
    """CKKS encodes reals: the demo gives it the (floating-point) continuous Gaussian, the
    round finalizes and verifies, and epsilon is the Gaussian mechanism's."""
    cfg = config(protocol="ckks", clients=4, rounds=1)
    dp = cfg.dp()
    assert dp is not None and dp.mechanism is Mechanism.CONTINUOUS_GAUSSIAN
    with Demo(cfg) as demo:
        result = demo.run()
    (only,) = result.rounds
    assert (only.outcome, only.verified) == ("finalized", True)
    assert only.epsilon == gaussian_epsilon(dp.noise_multiplier, 1, dp.delta)


def test_dp_sgd_in_the_task_recipe_reports_example_epsilon_beside_the_tasks() -> None:
    """The task spec's DP-SGD recipe reaches every participant's trainer; each round reports
    the largest participant's example-level epsilon (from the recipe: restart-proof) beside
    the distributed DP's, and the rounds still verify."""
    cfg = config(rounds=2, dp_sgd_noise=1.0, dp_sgd_clip=1.0)
    with Demo(cfg) as demo:
        result = demo.run()
        sizes = [len(s) for s in demo.federation.clients.values()]
    recipe = DPSGD(1.0, 1.0, 1.0 / sum(sizes))

    def spent(n: int, r: int) -> float:
        return dp_sgd_epsilon(recipe, n, batch_size=cfg.batch_size, epochs=cfg.epochs, rounds=r)

    expected = [max(spent(n, r) for n in sizes) for r in (1, 2)]
    assert [r.outcome for r in result.rounds] == ["finalized", "finalized"]
    assert [r.verified for r in result.rounds] == [True, True]
    assert [r.example_epsilon for r in result.rounds] == pytest.approx(expected, rel=1e-12)
    assert all(r.epsilon is not None for r in result.rounds)

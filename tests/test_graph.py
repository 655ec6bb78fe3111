"""The SecAgg+ neighbour graph and the parameter finder."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secagg.errors import ConfigError, RemoteProtocolError
from secagg.graph import (
    Adversary,
    NeighbourGraph,
    check_parameters,
    correctness_threshold,
    find_parameters,
    graph_seed,
    security_threshold,
    stays_connected,
)

SEED = graph_seed(b"s" * 32, 0)


@given(
    roster=st.sets(st.integers(0, 2**31 - 1), min_size=3, max_size=60),
    half=st.integers(1, 30),
    seed=st.binary(min_size=32, max_size=32),
)
def test_harary_graph_is_k_regular_symmetric_and_loop_free(
    roster: set[int], half: int, seed: bytes
) -> None:
    graph = NeighbourGraph(roster, 2 * half, seed)
    k = graph.degree
    assert k == min(2 * half, len(roster) - 1)
    for u in roster:
        nu = graph.neighbours(u)
        assert len(nu) == k and u not in nu and nu <= roster
        assert all(u in graph.neighbours(v) for v in nu)


def test_graph_depends_only_on_roster_degree_and_seed() -> None:
    roster = range(100, 150)
    a, b = NeighbourGraph(roster, 6, SEED), NeighbourGraph(reversed(roster), 6, SEED)
    assert all(a.neighbours(u) == b.neighbours(u) for u in roster)
    other = NeighbourGraph(roster, 6, graph_seed(b"t" * 32, 0))
    assert any(a.neighbours(u) != other.neighbours(u) for u in roster)
    next_round = NeighbourGraph(roster, 6, graph_seed(b"s" * 32, 1))
    assert any(a.neighbours(u) != next_round.neighbours(u) for u in roster)


def test_graph_rejects_odd_sparse_degree_and_unknown_clients() -> None:
    with pytest.raises(ConfigError):
        NeighbourGraph(range(10), 3, SEED)
    with pytest.raises(RemoteProtocolError):
        NeighbourGraph(range(10), 4, SEED).neighbours(99)
    assert NeighbourGraph(range(5), 9, SEED).complete


@pytest.mark.parametrize("n", [10, 40, 100, 1000])
@pytest.mark.parametrize("delta,gamma", [(0.0, 0.0), (0.1, 0.0), (0.1, 0.05), (0.3, 0.0)])
@pytest.mark.parametrize("adversary", list(Adversary))
def test_found_parameters_meet_their_own_bounds(
    n: int, delta: float, gamma: float, adversary: Adversary
) -> None:
    p = find_parameters(n, delta, gamma, adversary)
    k, t = p.num_neighbors, p.threshold
    assert k == n - 1 or (k % 2 == 0 and 2 <= k <= n - 2)
    assert stays_connected(n, k, delta, gamma)
    assert security_threshold(n, k, gamma, adversary) <= t <= correctness_threshold(n, k, delta)
    # k is the smallest even degree that works
    for smaller in range(2, min(k, n - 2), 2):
        ok = stays_connected(n, smaller, delta, gamma) and security_threshold(
            n, smaller, gamma, adversary
        ) <= correctness_threshold(n, smaller, delta)
        assert not ok


def test_sparse_graphs_grow_logarithmically() -> None:
    k1000 = find_parameters(1000, 0.1, 0.05).num_neighbors
    k10000 = find_parameters(10000, 0.1, 0.05).num_neighbors
    assert k1000 < 100 and k10000 < 2 * k1000
    assert k10000 < 10 * math.log2(10000)


def test_semi_malicious_threshold_exceeds_half_the_neighbourhood() -> None:
    """Against a server that lies about dropouts, honest neighbours must never be able to
    hand out t shares of both kinds: 2 (t - corrupted) > k - corrupted."""
    for n in (10, 100, 1000):
        p = find_parameters(n, 0.1, 0.05, Adversary.SEMI_MALICIOUS)
        assert 2 * p.threshold > p.num_neighbors


def test_no_safe_choice_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        find_parameters(10, 0.8, 0.0, Adversary.SEMI_HONEST)
    assert info.value.parameter == "dropout_rate"
    with pytest.raises(ConfigError) as info:
        find_parameters(100, 0.5, 0.0)  # gamma + 2 delta > 0.9
    assert info.value.parameter == "dropout_rate"
    with pytest.raises(ConfigError):
        find_parameters(2)
    # 3 clients, one may drop: its 2 peers leave 1 share holder, but t >= 2
    with pytest.raises(ConfigError):
        find_parameters(3, 0.1, 0.0, Adversary.SEMI_HONEST)
    assert find_parameters(3, 0.0, 0.0).threshold == 2


def test_explicit_choices_are_checked_for_security() -> None:
    check_parameters(40, 39, 20, 0.1, 0.0)
    with pytest.raises(ConfigError) as info:
        check_parameters(40, 39, 5, 0.1, 0.0)  # a lying server could get both kinds of shares
    assert info.value.parameter == "threshold"
    with pytest.raises(ConfigError) as info:
        check_parameters(1000, 4, 3, 0.1, 0.0)  # 100 dropouts can cut a 4-regular ring
    assert info.value.parameter == "num_neighbors"
    with pytest.raises(ConfigError):
        check_parameters(40, 7, 4, 0.0, 0.0)  # odd sparse degree

"""What a SecAgg / SecAgg+ round in ``secagg.simulate`` must end in, computed from the graph.

:func:`expected_outcome` replays the server's set rules (``protocols/secaggplus/server.py``)
and the client checks that can abort (``client.py``) on the neighbour graph of the session,
without running any cryptography, and says whether the round completes (and with which U3) or
aborts (and with which ``AbortError.reason``). Tests compare ``simulate`` against it, so a
protocol that aborts when recovery was possible, or completes when it was not, fails.

Dropouts follow ``simulate``: ``dropouts={client: phase}`` makes the client send nothing in
that phase or after. In phase order the round checks, and aborts at the first failure:

1. ADVERTISE_KEYS closes: U1 (keys advertised) needs max(survivors needed, t + 1) members
   (``too-few-clients``). The graph is drawn over U1, or with the consistency check over the
   whole directory of signing keys (every client of the simulation).
2. Each client of U1 still alive in SHARE_KEYS needs t neighbours in U1
   (``too-few-neighbours``, raised by the client itself).
3. SHARE_KEYS closes: U2 is the fixed point of "shared keys and has >= t neighbours in U2";
   it needs the survivors needed (``too-few-survivors``).
4. MASKED_INPUT closes: U3 = members of U2 alive in MASKED_INPUT; same count
   (``too-few-survivors``).
5. CONSISTENCY_CHECK (when enabled) closes: U4 = members of U3 alive in it, needs the
   signature quorum (``too-few-signatures``).
6. UNMASKING closes: the responders R are U4 (or U3) alive in UNMASKING. Every v in U3 needs
   t responders among N(v) (b_v), then every v in U2 \\ U3 with a neighbour in U3 needs t
   responders among N(v) (s_v^SK) (``too-few-shares``).

"Survivors needed" is ``config.survivors_needed`` (``min_survivors``, and with the
consistency check at least the signature quorum) and the quorum ``config.signature_quorum``.
Keep this module in step with the server when a rule changes: the property test in
``tests/test_masking.py`` fails until it is.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from secagg.graph import NeighbourGraph, graph_seed
from secagg.randomness import SeededRandom

__all__ = ["Outcome", "expected_outcome", "session_id"]


@dataclass(frozen=True)
class Outcome:
    """The predicted end of a round.

    Attributes
    ----------
    survivors:
        U3 when the round completes (the ids whose input is in the sum), else None.
    reason:
        The ``AbortError.reason`` when the round aborts, else None.
    sets:
        The sets computed on the way (``"U1"``, ``"U2"``, ...), for failure messages.
    """

    survivors: frozenset[int] | None
    reason: str | None
    sets: dict[str, frozenset[int]]

    @property
    def completes(self) -> bool:
        """Whether recovery was possible."""
        return self.survivors is not None


def session_id(seed: int) -> bytes:
    """The session id ``simulate(..., seed=seed)`` draws (the ``"session"`` fork of its rng).

    Tests that run a round check ``result.session.id`` against it, so a change of the
    simulator's derivation shows up as that, not as a wrong prediction.
    """
    return SeededRandom(seed).fork("session").random_bytes(32)


def expected_outcome(
    proto: Any,
    clients: Collection[int],
    dropouts: Mapping[int, Any],
    seed: int,
    round: int = 0,
) -> Outcome:
    """Predict ``simulate(proto, {c: ... for c in clients}, dropouts=dropouts, seed=seed)``.

    Parameters
    ----------
    proto:
        A ``secagg`` or ``secaggplus`` protocol from ``protocols.get``.
    clients:
        The ids that have an input.
    dropouts:
        ``{client: phase}`` as given to ``simulate``.
    seed:
        The int seed given to ``simulate`` (it fixes the session id, hence the graph).
    round:
        The round number given to ``simulate``.

    Returns
    -------
    Outcome
    """
    config = proto.config
    t, k = proto.threshold, proto.num_neighbors
    needed = config.survivors_needed
    phases = list(proto.phases)
    drop_at = {c: phases.index(p) for c, p in dropouts.items()}
    ids = frozenset(clients)

    def alive_in(phase: Any) -> frozenset[int]:
        i = phases.index(phase)
        return frozenset(c for c in ids if i < drop_at.get(c, len(phases)))

    Phase = proto.Phase
    sets: dict[str, frozenset[int]] = {}

    def abort(reason: str) -> Outcome:
        return Outcome(None, reason, sets)

    u1 = sets["U1"] = alive_in(Phase.ADVERTISE_KEYS)
    if len(u1) < max(needed, t + 1):
        return abort("too-few-clients")
    roster = ids if config.consistency_check else u1
    graph = NeighbourGraph(roster, k, graph_seed(session_id(seed), round))

    def n(v: int) -> frozenset[int]:
        return graph.neighbours(v)

    sharing = u1 & alive_in(Phase.SHARE_KEYS)
    if any(len(n(u) & u1) < t for u in sharing):
        return abort("too-few-neighbours")
    u2 = set(sharing)
    while short := {u for u in u2 if len(n(u) & u2) < t}:
        u2 -= short
    sets["U2"] = frozenset(u2)
    if len(u2) < needed:
        return abort("too-few-survivors")
    u3 = sets["U3"] = frozenset(u2) & alive_in(Phase.MASKED_INPUT)
    if len(u3) < needed:
        return abort("too-few-survivors")
    asked = u3
    if config.consistency_check:
        asked = sets["U4"] = u3 & alive_in(Phase.CONSISTENCY_CHECK)
        if len(asked) < config.signature_quorum:
            return abort("too-few-signatures")
    responders = sets["U5"] = asked & alive_in(Phase.UNMASKING)
    dropped = {v for v in u2 - u3 if n(v) & u3}
    if any(len(n(v) & responders) < t for v in [*u3, *dropped]):
        return abort("too-few-shares")
    return Outcome(u3, None, sets)

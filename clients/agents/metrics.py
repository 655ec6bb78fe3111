"""Per-round, per-phase costs the agents record: seconds, bytes stored, gas."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

__all__ = ["AGGREGATOR", "Cost", "Metrics"]

AGGREGATOR = "aggregator"
PARTICIPANTS = "participants"
KEY_HOLDER = "key-holder"


@dataclass
class Cost:
    """Totals over the actors of one role in one phase of one round."""

    seconds: float = 0.0
    bytes: int = 0
    gas: int = 0
    actors: set[int] = field(default_factory=set)

    @property
    def bytes_per_actor(self) -> float:
        return self.bytes / len(self.actors) if self.actors else 0.0

    @property
    def gas_per_actor(self) -> float:
        return self.gas / len(self.actors) if self.actors else 0.0


class Metrics:
    """``costs[round][role][phase]``; phases are lower-case names (``"commit"``, ``"train"``)."""

    def __init__(self) -> None:
        self.costs: defaultdict[int, defaultdict[str, defaultdict[str, Cost]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(Cost))
        )
        self.notes: defaultdict[int, list[str]] = defaultdict(list)

    def record(
        self,
        round: int,
        role: str,
        phase: str,
        actor: int,
        *,
        seconds: float = 0.0,
        bytes: int = 0,
        gas: int = 0,
        tx: str | None = None,
        cid: str | None = None,
    ) -> None:
        """Adds one action's costs; ``tx`` (its transaction hash) and ``cid`` (what it
        posted) are for logs (:class:`~secagg.clients.agents.service.ActionLog`), not totals."""
        cost = self.costs[round][role][phase]
        cost.seconds += seconds
        cost.bytes += bytes
        cost.gas += gas
        cost.actors.add(actor)

    def note(self, round: int, text: str) -> None:
        """Something that happened in ``round`` (a rejection, an abort, a slashing)."""
        self.notes[round].append(text)

    def participants_total(self, round: int) -> Cost:
        """All participant phases of ``round`` summed (actors: anyone who acted)."""
        total = Cost()
        for cost in self.costs[round][PARTICIPANTS].values():
            total.seconds += cost.seconds
            total.bytes += cost.bytes
            total.gas += cost.gas
            total.actors |= cost.actors
        return total

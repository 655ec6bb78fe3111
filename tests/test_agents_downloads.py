"""What a participant downloads (issue 20): never another member's masked input (n of them,
d entries each), whatever the others post; the aggregator declares every input it could not
fetch or decode, and U less those is U3 for everyone."""

from __future__ import annotations

from secagg.clients.agents.aggregator import Aggregator
from secagg.clients.demo.run import Demo, DemoConfig
from secagg.store import CountingStore, Store

from .test_agents import ShortInput

CONFIG = DemoConfig(protocol="secaggplus", clients=6, rounds=1, seed=3)


def run_recorded(**kwargs: object) -> tuple[Demo, dict[int, CountingStore], CountingStore]:
    readers: dict[int, CountingStore] = {}

    def participant_store(u: int, store: Store) -> Store:
        return readers.setdefault(u, CountingStore(store))

    aggregator = {}

    def aggregator_store(store: Store) -> Store:
        return aggregator.setdefault("store", CountingStore(store))

    with Demo(CONFIG, participant_store=participant_store, aggregator_store=aggregator_store,
              **kwargs) as demo:  # type: ignore[arg-type]  # fmt: skip
        demo.result = demo.run()  # type: ignore[attr-defined]
    return demo, readers, aggregator["store"]


def test_participants_fetch_no_input_and_the_round_verifies() -> None:
    demo, readers, aggregator = run_recorded()
    (r,) = demo.result.rounds  # type: ignore[attr-defined]
    assert r.outcome == "finalized" and r.verified and r.survivors == list(range(6))
    inputs = set(demo.ledger.postings(1).reveals.values())
    assert len(inputs) == 6
    assert inputs <= set(aggregator.reads)  # the aggregator reads them all...
    for u, store in readers.items():
        assert not inputs & set(store.reads), f"client {u} fetched a masked input"


def test_a_malformed_input_is_declared_and_nobody_else_fetches_it() -> None:
    """Client 5 posts a short input: the aggregator names it (fined as withheld), U3 is the
    other five for every party, and no participant fetched any input to learn that."""
    demo, readers, _ = run_recorded(participant_classes={5: ShortInput})
    (r,) = demo.result.rounds  # type: ignore[attr-defined]
    assert r.outcome == "finalized" and r.verified, r.notes
    assert r.survivors == [0, 1, 2, 3, 4]
    assert demo.ledger.postings(1).withheld_inputs == {demo.ledger.member(5)}
    assert any("client 5's input is malformed: WrongLengthError" in n for n in r.notes), r.notes
    inputs = set(demo.ledger.postings(1).reveals.values())
    for store in readers.values():
        assert not inputs & set(store.reads)


class SilentAggregator(Aggregator):
    """Fetches every input but names none as malformed (a lazy or dishonest aggregator)."""

    def _malformed_inputs(self, r: int, unavailable: set[int]) -> list[int]:
        return []


def test_an_undeclared_malformed_input_fails_the_aggregators_round_and_costs_its_bond() -> None:
    """The participants take U3 = U (nothing declared) and answer for client 5 as a survivor;
    the aggregator's own replay rejects 5's input, so it lacks s_5^SK shares and cannot
    finalize: the round fails at Finalize and, every unmask share being posted, its bond goes
    to U. No participant fetched an input on the way."""
    demo, readers, _ = run_recorded(
        participant_classes={5: ShortInput}, aggregator_class=SilentAggregator
    )
    (r,) = demo.result.rounds  # type: ignore[attr-defined]
    assert r.outcome == "failed at FINALIZE", r.notes
    assert demo.ledger.postings(1).withheld_inputs == set()
    assert demo.contracts.events("BondForfeited", demo.task_id)
    inputs = set(demo.ledger.postings(1).reveals.values())
    for store in readers.values():
        assert not inputs & set(store.reads)

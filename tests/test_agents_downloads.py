"""What a participant downloads (issue 20): never another member's masked input (n of them,
d entries each), whatever the others post; the aggregator declares every input it could not
fetch or decode, and U less those is U3 for everyone."""

from __future__ import annotations

import dataclasses
import os

from secagg.chain import Phase
from secagg.clients.agents.aggregator import Aggregator
from secagg.clients.agents.participant import Participant
from secagg.clients.demo.run import Demo, DemoConfig
from secagg.protocols.secaggplus.messages import ShareKeys
from secagg.store import CountingStore, Store
from secagg.wire import Message

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


class BadBoxes(Participant):
    """Posts share boxes of the right size that open for nobody (random bytes), then masks
    and reveals a well-formed input: its neighbours name it in their inputs' ``bad_boxes``."""

    def encode_posting(self, phase: Phase, message: Message) -> bytes:
        if phase is Phase.SHARE_KEYS and isinstance(message, ShareKeys):
            junk = tuple(dataclasses.replace(s, box=os.urandom(len(s.box))) for s in message.shares)
            message = dataclasses.replace(message, shares=junk)
        return super().encode_posting(phase, message)


def test_a_dealer_of_bad_boxes_cannot_make_the_aggregator_forfeit_its_bond() -> None:
    """Client 5's boxes open for nobody, so b_5 has no holder: the round cannot be unmasked.
    Participants, who take every input as well formed, cannot see that; the aggregator checks
    the real inputs before fixing them, finds the abort (naming 5), and fixes nothing: nobody
    posts an unmask share, the round fails, and the bond stays with the aggregator."""
    demo, _, _ = run_recorded(participant_classes={5: BadBoxes})
    (r,) = demo.result.rounds  # type: ignore[attr-defined]
    postings = demo.ledger.postings(1)
    assert r.outcome == "failed at FINALIZE", r.notes
    assert not postings.inputs_fixed and postings.unmasks == {}
    assert not demo.contracts.events("BondForfeited", demo.task_id)
    assert any("cannot be unmasked" in n and "bad-share-boxes" in n for n in r.notes), r.notes

"""Withheld blobs (issue 19 §1), attacked with the real agents on the embedded chain and the
store: a participant posts the CID of a blob it serves to nobody, or to the aggregator only;
a dishonest aggregator calls an honest member's input unavailable. The aggregator fixes on
chain, once per stage, which blobs it could not fetch; every party leaves exactly those out.
The oracle throughout is what was revealed: no member's self-mask seed b_v and masking key
s_v^SK are both ever shared out, and never b_v of a member outside the final U."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from secagg import wire
from secagg.chain import Phase
from secagg.clients.agents.participant import Participant
from secagg.clients.demo.run import (
    ABSENCE_FEE,
    REWARD_PER_ROUND,
    STAKE,
    Demo,
    DemoConfig,
    DemoResult,
)
from secagg.protocols.secaggplus.messages import MaskedInput, UnmaskResponse
from secagg.store import MemoryStore, NotFoundError, Store
from secagg.wire import Message

CONFIG = DemoConfig(protocol="secaggplus", clients=6, rounds=1, seed=3)
CHEAT = 5  # the withholder's client index (= its id: everyone registers in order)


class SplitStore(Store):
    """A party's view of the network: ``shared`` (what everyone is served), then ``extra``
    (what only this party is served). ``divert`` sends the next put to ``extra`` only."""

    def __init__(self, shared: Store, extra: Store) -> None:
        self.shared, self.extra = shared, extra
        self.divert = False

    def put_stream(self, chunks: Any) -> str:
        target, self.divert = (self.extra if self.divert else self.shared), False
        return target.put_stream(chunks)

    def get_stream(self, cid: str | bytes) -> Iterator[bytes]:
        store = self.shared if self.shared.has(cid) else self.extra
        return store.get_stream(cid)

    def has(self, cid: str | bytes) -> bool:
        return self.shared.has(cid) or self.extra.has(cid)

    def pin(self, cid: str | bytes) -> None:
        self.shared.pin(cid)


class Withholder(Participant):
    """Posts on chain the CID of its ``phase`` blob but serves the blob only from its own
    node (``private``): nobody else can fetch it unless someone it serves republishes it."""

    phase: ClassVar[Phase]
    private: ClassVar[MemoryStore]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.store = SplitStore(self.store, self.private)

    def encode_posting(self, phase: Phase, message: Message) -> bytes:
        assert isinstance(self.store, SplitStore)
        self.store.divert = phase is self.phase
        return super().encode_posting(phase, message)


def withholder(phase: Phase) -> type[Withholder]:
    return type(
        "Withholds" + phase.name.title(), (Withholder,), {"phase": phase, "private": MemoryStore()}
    )


def run(
    cheat: type[Participant] = Participant, wrap: Any = lambda store: store
) -> tuple[DemoResult, dict[int, set[str]]]:
    """One round with ``cheat`` as client 5 and the aggregator's store wrapped by ``wrap``;
    returns the result and, per member v, the kinds of share of v that were revealed in the
    posted unmask responses ("b": self-mask seed b_v, "s": masking key s_v^SK)."""
    with Demo(CONFIG, participant_classes={CHEAT: cheat}, aggregator_store=wrap) as demo:
        result = demo.run()
        assert demo.store is not None
        revealed: dict[int, set[str]] = {}
        for cid in demo.ledger.postings(1).unmasks.values():
            if not demo.store.has(cid):
                continue  # a withheld answer reveals nothing to anyone
            response = wire.decode(demo.store.get(cid), protocol=demo.proto.wire_name)
            assert isinstance(response, UnmaskResponse)
            for kind, shares in (("b", response.self_mask_shares), ("s", response.key_shares)):
                for share in shares:
                    revealed.setdefault(share.owner, set()).add(kind)
    return result, revealed


def assert_one_kind_each(revealed: dict[int, set[str]], survivors: list[int]) -> None:
    assert all(len(kinds) == 1 for kinds in revealed.values()), revealed
    assert all("b" not in revealed.get(v, set()) for v in range(6) if v not in survivors), revealed


def assert_input_left_u(result: DemoResult, revealed: dict[int, set[str]]) -> None:
    """Client 5's input was declared unavailable: the other five finalize and verify, only
    s_5^SK shares are revealed (never b_5), and 5 is not paid and pays the absence fee (the
    chain cannot tell a withholder from a censored member)."""
    (r,) = result.rounds
    assert r.outcome == "finalized" and r.verified, r.notes
    assert r.survivors == [0, 1, 2, 3, 4]
    assert revealed[CHEAT] == {"s"}
    assert_one_kind_each(revealed, r.survivors)
    assert CHEAT not in result.round_rewards and result.absence_fees == {CHEAT: ABSENCE_FEE}


def test_a_withheld_bundle_costs_the_withholder_its_round_not_the_others() -> None:
    """Before: honest members could not fetch 5's bundle, left the round, and it failed at
    REVEAL for free. Now the aggregator declares it unavailable before anyone commits; 5 cannot
    commit; the other five finalize and verify, and 5 earns nothing and pays the absence fee
    (to the five)."""
    result, revealed = run(withholder(Phase.SHARE_KEYS))
    (r,) = result.rounds
    assert r.outcome == "finalized" and r.verified, r.notes
    assert r.survivors == [0, 1, 2, 3, 4]
    assert any(f"client {CHEAT}'s blob" in n and "unavailable" in n for n in r.notes), r.notes
    assert CHEAT not in revealed  # not in U2 for anyone: nobody holds or reveals its shares
    assert result.round_rewards == dict.fromkeys(range(5), (REWARD_PER_ROUND + ABSENCE_FEE) // 5)
    assert result.absence_fees == {CHEAT: ABSENCE_FEE}
    assert result.stakes_returned[CHEAT] == STAKE - ABSENCE_FEE


def test_a_withheld_input_leaves_u_and_the_aggregator_does_not_crash() -> None:
    """Before: the aggregator crashed on NotFoundError. Now 5 leaves U by the declaration; its
    pairwise masks are removed with its s_5 shares; nobody reveals b_5."""
    result, revealed = run(withholder(Phase.COMMIT))
    assert_input_left_u(result, revealed)


def test_a_bundle_served_to_the_aggregator_only_is_served_to_everyone_by_it() -> None:
    """The split-view attack: 5 serves its bundle to the aggregator and to nobody else. The
    aggregator fetched it, so it declares it available and publishes it again: every member
    gets the same bundle and the round goes on with all six."""
    cheat = withholder(Phase.SHARE_KEYS)
    result, revealed = run(cheat, lambda store: SplitStore(store, cheat.private))
    (r,) = result.rounds
    assert r.outcome == "finalized" and r.verified, r.notes
    assert r.survivors == [0, 1, 2, 3, 4, 5]
    assert_one_kind_each(revealed, r.survivors)
    assert not result.absence_fees


def test_a_withheld_unmask_blob_costs_nobody_the_round() -> None:
    """5 posts the CID of an unmask response nobody can fetch. Before: honest members fetched
    every unmask blob at Unmask and left the round, or the aggregator crashed. Now members
    never fetch others' answers, and the aggregator declares that blob unavailable and
    unmasks with the others' shares: the round finalizes with all six in the sum."""
    result, revealed = run(withholder(Phase.UNMASK))
    (r,) = result.rounds
    assert r.outcome == "finalized" and r.verified, r.notes
    assert r.survivors == [0, 1, 2, 3, 4, 5]
    assert any(f"client {CHEAT}'s blob" in n and "unavailable" in n for n in r.notes), r.notes
    assert_one_kind_each(revealed, r.survivors)


class HidesFromAggregator(SplitStore):
    """The aggregator's view when 5 serves its masked input to every member but the
    aggregator (or when a dishonest aggregator claims it could not fetch it)."""

    def get_stream(self, cid: str | bytes) -> Iterator[bytes]:
        data = b"".join(self.shared.get_stream(cid))
        try:
            message = wire.decode(data, protocol="secaggplus")
        except Exception:
            message = None
        if isinstance(message, MaskedInput) and message.sender == CHEAT:
            raise NotFoundError(f"{cid} is not served to the aggregator")
        yield data


def test_an_input_called_unavailable_is_never_unmasked_whoever_was_served_it() -> None:
    """Member 5 is honest and its masked input y_5 is in everyone's store, but the aggregator
    says it could not fetch it (it lies, or 5 serves everyone else). Every honest member acts
    on the one U fixed on chain: y_5 leaves the sum, its masking key is shared out so its
    pairwise masks cancel, and nobody reveals a share of its self-mask seed b_5, so y_5 stays
    masked for an aggregator that does hold it. The round finalizes with the other five."""

    result, revealed = run(wrap=lambda store: HidesFromAggregator(store, MemoryStore()))
    assert_input_left_u(result, revealed)  # not paid, fee charged: as for a withholder

"""Full rounds on chain: participants and the aggregator only talk through the embedded chain
and the store. Faults (clients and the aggregator killed), cheaters and a dishonest
aggregator attack the claims; every posted model is recomputed by ``verify_round``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from secagg import wire
from secagg.chain import Phase
from secagg.clients.agents.aggregator import Aggregator
from secagg.clients.agents.models import ModelBlob
from secagg.clients.agents.participant import Participant
from secagg.clients.agents.task import TaskSpec
from secagg.clients.agents.verify import verify_round
from secagg.clients.demo.run import (
    ABSENCE_FEE,
    REWARD_PER_ROUND,
    SLASH,
    STAKE,
    Demo,
    DemoConfig,
    DemoResult,
    Fault,
)
from secagg.clients.errors import VerificationError
from secagg.protocol import AggregateResult, Protocol, Session
from secagg.protocols.he.messages import DecryptedSum, EncryptedInput
from secagg.protocols.plain.messages import Input
from secagg.protocols.secaggplus.messages import MaskedInput, ShareKeys, UnmaskResponse
from secagg.store import Store
from secagg.wire import Message

from .helpers import SMALL_ORDER_POINT, near_zero_fraction

SMALL = {"protocol": "secaggplus", "clients": 6, "rounds": 2, "seed": 3}


def run(**kwargs: Any) -> DemoResult:
    extra = {k: kwargs.pop(k) for k in list(kwargs) if k in _DEMO_ARGS}
    with Demo(DemoConfig(**kwargs), **extra) as demo:
        return demo.run()


_DEMO_ARGS = {"aggregator_class", "aggregator_store", "participant_classes"}


def reward(result: DemoResult, survivors: int, slashed: int = 0) -> int:
    """Each survivor's credit for a round: the round's reward plus the stake slashed in it
    (slashed stake goes to the survivors, never to the task owner), divided equally."""
    return (REWARD_PER_ROUND + slashed) // survivors


@pytest.fixture(scope="module")
def baseline() -> DemoResult:
    return run(**SMALL)


def test_rounds_finalize_verify_and_settle(baseline: DemoResult) -> None:
    for r in baseline.rounds:
        assert r.outcome == "finalized" and r.verified
        assert r.survivors == list(range(6))
        assert r.accuracy is not None and r.plain_accuracy is not None
        assert abs(r.accuracy - r.plain_accuracy) <= 0.01
    assert baseline.slashed == {}
    assert baseline.stakes_returned == dict.fromkeys(range(6), STAKE)
    assert baseline.round_rewards == dict.fromkeys(range(6), 2 * reward(baseline, 6))
    assert baseline.final_accuracy > baseline.initial_accuracy + 0.2


def test_default_demo_is_within_one_point_of_plain_fedavg() -> None:
    result = run(protocol="secaggplus")  # 10 clients, 5 rounds: `secagg demo`'s defaults
    assert all(r.verified for r in result.rounds)
    assert abs(result.final_accuracy - result.plain_final_accuracy) <= 0.01
    assert result.final_accuracy >= 0.8


@pytest.mark.parametrize("protocol", ["plain", "secagg", "ckks", "paillier"])
def test_every_protocol_runs_on_chain(protocol: str) -> None:
    result = run(protocol=protocol, clients=4, rounds=1, seed=1)
    (r,) = result.rounds
    assert r.outcome == "finalized" and r.verified, r.notes
    assert r.survivors == [0, 1, 2, 3]
    assert r.accuracy is not None and r.plain_accuracy is not None
    assert abs(r.accuracy - r.plain_accuracy) <= 0.01


@pytest.mark.parametrize(
    "phase", [Phase.SHARE_KEYS, Phase.COMMIT, Phase.REVEAL, Phase.UNMASK], ids=lambda p: p.name
)
def test_a_client_killed_at_any_phase_is_recovered(phase: Phase) -> None:
    result = run(**{**SMALL, "rounds": 1}, faults=(Fault(1, 2, phase),))
    (r,) = result.rounds
    assert r.outcome == "finalized" and r.verified, r.notes
    in_sum = phase is Phase.UNMASK  # it revealed: its input is in the sum, recovered by b-shares
    assert r.survivors == ([0, 1, 2, 3, 4, 5] if in_sum else [0, 1, 3, 4, 5])
    assert r.accuracy is not None and r.plain_accuracy is not None
    assert abs(r.accuracy - r.plain_accuracy) <= 0.01
    slashed = {2: SLASH} if phase is Phase.REVEAL else {}  # committed, never revealed
    # posted nothing, or shared keys and never committed: the absence fee
    absent = {2: ABSENCE_FEE} if phase in (Phase.SHARE_KEYS, Phase.COMMIT) else {}
    assert result.slashed == slashed
    assert result.absence_fees == absent
    assert result.stakes_returned[2] == STAKE - slashed.get(2, 0) - absent.get(2, 0)
    paid = reward(result, len(r.survivors), sum(slashed.values()) + sum(absent.values()))
    assert result.round_rewards == {u: paid for u in r.survivors}


def test_too_few_reveals_fail_the_round_cleanly_and_the_next_one_goes_on() -> None:
    killed = tuple(Fault(1, u, Phase.COMMIT) for u in (0, 1, 2))  # 3 left, threshold 4
    result = run(**SMALL, faults=killed)
    first, second = result.rounds
    assert first.outcome == "failed at REVEAL" and first.verified is None
    assert second.outcome == "finalized" and second.verified
    assert result.slashed == {}  # they never committed: they shared keys, so each pays the fee
    assert result.absence_fees == dict.fromkeys((0, 1, 2), ABSENCE_FEE)
    assert result.round_rewards == dict.fromkeys(range(6), reward(result, 6, 3 * ABSENCE_FEE))


def test_too_few_unmask_shares_abort_and_nobody_is_paid_for_the_round() -> None:
    killed = tuple(Fault(1, u, Phase.UNMASK) for u in (0, 1, 2))  # 3 responders, t = 3
    result = run(**SMALL, faults=killed)
    first, second = result.rounds
    assert first.outcome == "failed at FINALIZE"
    assert any("too-few-shares" in note for note in first.notes), first.notes
    assert second.outcome == "finalized" and second.verified
    assert result.slashed == {}  # they revealed: dropping later is not slashed
    assert result.round_rewards == dict.fromkeys(range(6), reward(result, 6))


@pytest.mark.parametrize(
    "phase",
    [Phase.SHARE_KEYS, Phase.COMMIT, Phase.REVEAL, Phase.UNMASK, Phase.FINALIZE],
    ids=lambda p: p.name,
)
def test_a_restarted_aggregator_posts_the_same_models(baseline: DemoResult, phase: Phase) -> None:
    result = run(**SMALL, aggregator_crashes=((1, phase), (2, phase)))
    assert [r.model_sha256 for r in result.rounds] == [r.model_sha256 for r in baseline.rounds]
    assert all(any("aggregator killed" in n for n in r.notes) for r in result.rounds)


class RecordingStore(Store):
    """Passes through to ``inner`` and keeps every blob read."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.read: list[bytes] = []

    def put(self, data: bytes) -> str:
        return self.inner.put(data)

    def put_stream(self, chunks: Any) -> str:
        return self.inner.put_stream(chunks)

    def get(self, cid: str | bytes) -> bytes:
        data = self.inner.get(cid)
        self.read.append(data)
        return data

    def get_stream(self, cid: str | bytes) -> Iterator[bytes]:
        data = self.get(cid)
        yield data

    def has(self, cid: str | bytes) -> bool:
        return self.inner.has(cid)

    def pin(self, cid: str | bytes) -> None:
        self.inner.pin(cid)


def classify(data: bytes, wire_name: str) -> Message | ModelBlob | TaskSpec:
    try:
        return wire.decode(data, protocol=wire_name)
    except Exception:
        pass
    try:
        return ModelBlob.decode(data)
    except Exception:
        return TaskSpec.decode(data)


def aggregator_reads(protocol: str) -> tuple[list[Any], DemoResult]:
    """What the aggregator's store handed it in one round, decoded (the HE task's public
    context appears as ``"public context"``)."""
    recorders: list[RecordingStore] = []

    def wrap(store: Store) -> Store:
        recorders.append(RecordingStore(store))
        return recorders[-1]

    config = DemoConfig(protocol=protocol, clients=5, rounds=1, seed=2)
    with Demo(config, aggregator_store=wrap) as demo:
        result = demo.run()
        context = demo.keys.public if demo.keys is not None else None
    (recorder,) = recorders
    wire_name = demo.proto.wire_name
    reads = [
        "public context" if blob == context else classify(blob, wire_name) for blob in recorder.read
    ]
    return reads, result


def test_the_aggregator_is_handed_only_masked_vectors_shares_and_models() -> None:
    reads, result = aggregator_reads("secaggplus")
    assert result.rounds[0].verified
    kinds = {type(x) for x in reads}
    assert kinds <= {ShareKeys, MaskedInput, UnmaskResponse, ModelBlob, TaskSpec}, kinds
    masked = [x for x in reads if isinstance(x, MaskedInput)]
    assert len(masked) == 5
    for message in masked:  # uniform in Z_{2^32}: about 2^24 / 2^32 = 0.4% near zero
        assert near_zero_fraction(message.vector, 24) < 0.05


def test_the_ckks_aggregator_is_handed_only_ciphertexts_and_the_decrypted_sum() -> None:
    reads, result = aggregator_reads("ckks")
    assert result.rounds[0].verified
    kinds = {type(x) for x in reads if x != "public context"}
    assert kinds <= {EncryptedInput, DecryptedSum, ModelBlob, TaskSpec}, kinds
    assert sum(isinstance(x, EncryptedInput) for x in reads) == 5
    assert sum(isinstance(x, DecryptedSum) for x in reads) == 1


def test_the_near_zero_check_does_flag_unmasked_inputs() -> None:
    reads, _ = aggregator_reads("plain")
    inputs = [x for x in reads if isinstance(x, Input)]
    assert len(inputs) == 5
    assert all(near_zero_fraction(m.vector, 24) == 1.0 for m in inputs)


class SkewingAggregator(Aggregator):
    """Posts FedAvg's step plus a small bias on one weight."""

    def model_for(
        self,
        proto: Protocol[Any],
        previous: ModelBlob,
        result: AggregateResult,
        round: int,
        aggregate: str | None,
        session: Session | None = None,
    ) -> ModelBlob:
        honest = super().model_for(proto, previous, result, round, aggregate, session)
        weights = honest.weights.copy()
        weights[0] += np.float32(0.01)
        return ModelBlob(round, weights, honest.survivors, honest.survivor_weight, aggregate)


@pytest.mark.parametrize("protocol", ["secaggplus", "ckks"])
def test_verify_catches_a_wrong_aggregate(protocol: str) -> None:
    with Demo(
        DemoConfig(protocol=protocol, clients=4, rounds=1, seed=4),
        aggregator_class=SkewingAggregator,
    ) as demo:
        result = demo.run()
        assert result.rounds[0].outcome == "finalized"
        assert result.rounds[0].verified is False
        assert demo.store is not None
        with pytest.raises(VerificationError, match="not the FedAvg step"):
            verify_round(demo.contracts, demo.store, demo.task_id, 1)


class GarbageBundle(Participant):
    def encode_posting(self, phase: Phase, message: Message) -> bytes:
        return (
            b"\x00not a bundle"
            if phase is Phase.SHARE_KEYS
            else super().encode_posting(phase, message)
        )


class ShortInput(Participant):
    def encode_posting(self, phase: Phase, message: Message) -> bytes:
        if phase is Phase.COMMIT and isinstance(message, MaskedInput):
            message = MaskedInput(
                message.session, message.round, message.sender, message.vector[:-1]
            )
        return super().encode_posting(phase, message)


class Impostor(Participant):
    """Posts its masked input under another client's id."""

    def encode_posting(self, phase: Phase, message: Message) -> bytes:
        if phase is Phase.COMMIT and isinstance(message, MaskedInput):
            message = MaskedInput(message.session, message.round, 0, message.vector)
        return super().encode_posting(phase, message)


class SpoiledBox(Participant):
    """Posts a bundle whose first share box is garbage of the right size."""

    def encode_posting(self, phase: Phase, message: Message) -> bytes:
        if phase is Phase.SHARE_KEYS and isinstance(message, ShareKeys):
            first, *rest = message.shares
            spoiled = replace(first, box=bytes(len(first.box)))
            message = replace(message, shares=(spoiled, *rest))
        return super().encode_posting(phase, message)


def test_a_share_box_that_does_not_open_costs_its_receiver_nothing_on_chain() -> None:
    """Client 5's box for one neighbour is garbage: that neighbour names 5 in its revealed
    masked input and goes on; 5's other holders rebuild its self mask; the round finalizes with
    all six in the sum and verifies (before, the receiver left the round at COMMIT)."""
    result = run(**{**SMALL, "rounds": 1}, participant_classes={5: SpoiledBox})
    (r,) = result.rounds
    assert r.outcome == "finalized" and r.verified, r.notes
    assert r.survivors == [0, 1, 2, 3, 4, 5]
    assert not any("left at" in n for n in r.notes), r.notes


class WeakAgreementKey(Participant):
    """Registers a small-order c_u^PK: no neighbour can encrypt a share box to it."""

    def register(self) -> None:
        real = self.identity.agreement_key
        self.identity = replace(self.identity, agreement_key=_PublicOnly(SMALL_ORDER_POINT))
        try:
            super().register()
        finally:
            self.identity = replace(self.identity, agreement_key=real)


class _PublicOnly:
    def __init__(self, public: bytes) -> None:
        self.public = public


class PostsOtherMaskingKey(Participant):
    """Posts :meth:`masking_key` with its shares instead of its own s_u^PK (the contracts are
    wrapped; everything else goes through unchanged)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        contracts, me = self.contracts, self

        class Posting:
            def __getattr__(self, name: str) -> Any:
                return getattr(contracts, name)

            def share_keys(self, account: Any, task_id: int, _key: bytes, cid: bytes) -> Any:
                return contracts.share_keys(account, task_id, me.masking_key(), cid)

        self.contracts = Posting()  # type: ignore[assignment]

    def masking_key(self) -> bytes:
        raise NotImplementedError


class WeakMaskingKey(PostsOtherMaskingKey):
    """Posts a small-order s_u^PK with its shares: nobody's pairwise mask with it would be
    secret, and every neighbour's agreement with it fails."""

    def masking_key(self) -> bytes:
        return SMALL_ORDER_POINT


class CopiedMaskingKey(PostsOtherMaskingKey):
    """Client 0 posts client 5's registered agreement key as its own masking key."""

    def masking_key(self) -> bytes:
        record = self.ledger.record(self.store, self.ledger.round, shares=False, outcome=False)
        return record.agreement_keys[5]


def test_a_copied_key_costs_the_copier_its_place_not_the_owner() -> None:
    """Keys are first come, first kept: client 0 (the lowest id, which the replay used to
    serve first) posts client 5's registered c_5^PK as its s_0^PK. Every party leaves 0 out
    of U1 by name; 5 and the others finalize and verify."""
    result = run(**{**SMALL, "rounds": 1}, participant_classes={0: CopiedMaskingKey})
    (r,) = result.rounds
    assert r.outcome == "finalized" and r.verified, r.notes
    assert r.survivors == [1, 2, 3, 4, 5]
    assert any("client 0" in n and "repeats a key" in n for n in r.notes), r.notes


@pytest.mark.parametrize(
    ("cheater", "error"),
    [
        (GarbageBundle, "WireError"),
        (ShortInput, "WrongLengthError"),
        (Impostor, "UnknownSenderError"),
        (WeakAgreementKey, "WeakKeyError"),
        (WeakMaskingKey, "WeakKeyError"),
    ],
)
def test_a_cheaters_blob_is_rejected_by_name_and_the_honest_round_goes_on(
    cheater: type[Participant], error: str
) -> None:
    result = run(**{**SMALL, "rounds": 1}, participant_classes={5: cheater})
    (r,) = result.rounds
    assert r.outcome == "finalized" and r.verified, r.notes
    assert r.survivors == [0, 1, 2, 3, 4]
    assert any("client 5" in n and error in n for n in r.notes), r.notes
    assert r.accuracy is not None and r.plain_accuracy is not None
    assert abs(r.accuracy - r.plain_accuracy) <= 0.01

"""The Flower adapter: secagg protocols run inside Flower's simulation engine (Ray, 10
SuperNodes), compared with ``secagg.simulate`` on the same inputs and seed; dropouts and
misbehaving nodes; what the ServerApp is handed; and the mod's own checks, called directly."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.app.metadata import Metadata

from secagg import protocols, simulate, wire
from secagg.clients.errors import FlowerStateError
from secagg.clients.flower import (
    RECORD,
    Reply,
    Request,
    SecAggMod,
    SecureAggregation,
    Setup,
    Stage,
)
from secagg.clients.flower.client_mod import ROUND_STATE
from secagg.errors import (
    AbortError,
    ConfigError,
    OutOfPhaseError,
    RefusedRequestError,
    RoutingError,
    WireError,
    WrongLengthError,
    WrongSessionError,
)
from secagg.protocol import Session
from secagg.protocols.he.messages import DecryptedSum, EncryptedInput
from secagg.protocols.plain.messages import Input
from secagg.protocols.secaggplus.messages import MaskedInput, Phase

from .flower_apps import (
    MAX_EXAMPLES,
    NUM_NODES,
    SEED,
    Fault,
    Outcome,
    client_app,
    initial_arrays,
    simulate_flower,
    tapped_inputs,
    warm,
)
from .helpers import near_zero_fraction

HONEST_ROUNDS = {"secaggplus": 0, "secagg": 1, "ckks": 2, "paillier": 3, "plain": 4}


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Outcome], Path]:
    """One simulation, one round of each protocol (nodes here also agree to ``plain``, for
    the control that shows the unmasked-input check can fail)."""
    tap = tmp_path_factory.mktemp("honest-inputs")
    app = client_app(tap, protocols=tuple(HONEST_ROUNDS))
    plan = [(warm(name), rnd) for name, rnd in HONEST_ROUNDS.items()]
    return simulate_flower(app, plan), tap


@pytest.mark.parametrize("protocol", ["secaggplus", "secagg", "ckks", "paillier"])
def test_a_flower_round_equals_simulate_on_the_same_inputs_and_seed(
    honest: tuple[list[Outcome], Path], protocol: str
) -> None:
    outcomes, tap = honest
    rnd = HONEST_ROUNDS[protocol]
    outcome = outcomes[rnd]
    assert outcome.error is None, outcome.error
    result = outcome.result
    assert result is not None
    inputs, weights = tapped_inputs(tap, rnd)
    he = protocol in ("ckks", "paillier")
    assert len(inputs) == NUM_NODES - he  # the HE key holder sends no update
    assert not result.dropped and not result.rejected and not result.refused
    proto = protocols.get(protocol, num_clients=len(inputs))
    expected = simulate(proto, inputs, weights=weights, seed=SEED, round=rnd)
    assert expected.session == result.session
    assert expected.survivors == {result.client_ids[node] for node in result.survivors}
    if protocol == "ckks":  # approximate arithmetic: equal up to CKKS noise
        np.testing.assert_allclose(result.ring_sum, expected.ring_sum, rtol=0, atol=1e-6)
    else:
        assert np.array_equal(result.ring_sum, expected.ring_sum)
    # FedAvg: the next model is the weighted mean update added to the model sent.
    x = np.stack([inputs[c] for c in sorted(inputs)])
    w = np.array([weights[c] for c in sorted(inputs)])
    assert 0 < w.max() <= 1 and result.total_weight == pytest.approx(w.sum(), abs=1e-3)
    step = (w @ x)[:-1] / w.sum()
    flat = np.concatenate([a.ravel() for a in initial_arrays().to_numpy_ndarrays()])
    new = np.concatenate([a.ravel() for a in result.arrays.to_numpy_ndarrays()])
    np.testing.assert_allclose(new, flat + step, atol=1e-3)


def _reply_messages(outcome: Outcome, wire_name: str) -> list[Any]:
    """Every protocol message the ServerApp was handed (besides an HE public context), after
    checking each reply carries the secagg record and nothing else (no arrays, no metrics)."""
    messages = []
    for reply in outcome.replies:
        content = reply.content
        assert list(content.config_records) == [RECORD]
        assert not content.array_records and not content.metric_records
        parsed = Reply.from_record(content.config_records[RECORD])
        if parsed.phase == "keygen":  # the key holder's public HE context, not a message
            continue
        if parsed.message:
            messages.append(wire.decode(parsed.message, protocol=wire_name))
    return messages


@pytest.mark.parametrize("protocol", ["secaggplus", "secagg"])
def test_the_serverapp_sees_only_masked_vectors(
    honest: tuple[list[Outcome], Path], protocol: str
) -> None:
    outcome = honest[0][HONEST_ROUNDS[protocol]]
    messages = _reply_messages(outcome, "secaggplus")
    masked = [m for m in messages if isinstance(m, MaskedInput)]
    assert len(masked) == NUM_NODES
    for m in masked:  # a uniform vector has about 2^19 / 2^32 = 0.01% there
        assert near_zero_fraction(m.vector, 20) < 0.05


@pytest.mark.parametrize("protocol", ["ckks", "paillier"])
def test_the_serverapp_sees_only_ciphertexts_and_the_decrypted_sum(
    honest: tuple[list[Outcome], Path], protocol: str
) -> None:
    outcome = honest[0][HONEST_ROUNDS[protocol]]
    kinds = [
        type(m) for m in _reply_messages(outcome, protocols.get(protocol, num_clients=3).wire_name)
    ]
    assert kinds.count(EncryptedInput) == NUM_NODES - 1
    assert kinds.count(DecryptedSum) == 1
    assert set(kinds) == {EncryptedInput, DecryptedSum}


def test_the_masked_vector_check_does_flag_plain_inputs(
    honest: tuple[list[Outcome], Path],
) -> None:
    outcome = honest[0][HONEST_ROUNDS["plain"]]
    inputs = [m for m in _reply_messages(outcome, "plain") if isinstance(m, Input)]
    assert len(inputs) == NUM_NODES
    assert all(near_zero_fraction(m.vector, 20) == 1.0 for m in inputs)


# -- dropouts and misbehaving nodes ------------------------------------------------------

CHEATS = {  # round -> (partition, what it does with its MASKED_INPUT message)
    1: ((3, "truncate"), (4, "claim"), (5, "impersonate")),
    2: ((6, "short"), (7, "replay")),
}
DROPOUT_ROUND = 3  # after the cheats: a sleeper's late reply writes back stale node state
DOWNGRADE_ROUND = 4  # the server asks for ``plain``
FAULTS = (
    Fault(DROPOUT_ROUND, 1, Phase.MASKED_INPUT.value, "sleep"),
    Fault(DROPOUT_ROUND, 2, Phase.UNMASKING.value, "sleep"),
    Fault(DROPOUT_ROUND, 3, Phase.SHARE_KEYS.value, "crash"),
    *(
        Fault(rnd, partition, Phase.MASKED_INPUT.value, kind)
        for rnd, cheats in CHEATS.items()
        for partition, kind in cheats
    ),
)
CONFIG = {"dropout_rate": 0.3}  # k and t sized for 3 of the 10 nodes missing


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Outcome], Path]:
    tap = tmp_path_factory.mktemp("faulty-inputs")
    app = client_app(tap, protocols=("secaggplus",), faults=FAULTS, sleep_seconds=3.0)
    quick = SecureAggregation(
        "secaggplus", timeout=2.0, max_examples=MAX_EXAMPLES, seed=SEED, **CONFIG
    )  # a sleeper blocks one of the 4 Ray workers past the deadline, 3 workers go on
    plan = [(warm("secaggplus", **CONFIG), 0), *((quick, rnd) for rnd in CHEATS)]
    plan.append((quick, DROPOUT_ROUND))
    plan.append((warm("plain"), DOWNGRADE_ROUND))
    return simulate_flower(app, plan), tap


def _expected_sum(outcome: Outcome, tap: Path, rnd: int, dropouts: dict[int, Any]) -> Any:
    result = outcome.result
    assert result is not None
    cids = sorted(c for c in result.client_ids.values())
    inputs, weights = tapped_inputs(tap, rnd)
    dim = result.session.dim
    full = {c: inputs.get(c, np.zeros(dim)) for c in cids}  # never-used inputs of early dropouts
    proto = protocols.get("secaggplus", num_clients=len(cids), **CONFIG)
    return simulate(
        proto,
        full,
        weights={c: weights.get(c, 1.0) for c in cids},
        seed=SEED,
        round=rnd,
        dropouts=dropouts,
    )


def test_nodes_that_stop_replying_are_recovered_from(faulty: tuple[list[Outcome], Path]) -> None:
    outcomes, tap = faulty
    outcome = outcomes[DROPOUT_ROUND]
    assert outcome.error is None, outcome.error
    result = outcome.result
    assert result is not None and not result.rejected and not result.refused
    phase_of = {node: why.split(" ")[0] for node, why in result.dropped.items()}
    assert sorted(phase_of.values()) == sorted(["masked-input", "unmasking", "share-keys"])
    assert "Flower error" in next(w for w in result.dropped.values() if "share-keys" in w)
    dropouts = {result.client_ids[n]: Phase(p) for n, p in phase_of.items()}
    expected = _expected_sum(outcome, tap, DROPOUT_ROUND, dropouts)
    # the node that stopped at UNMASKING is in the sum; the two before it are not
    assert len(result.survivors) == NUM_NODES - 2
    assert expected.survivors == {result.client_ids[n] for n in result.survivors}
    assert np.array_equal(result.ring_sum, expected.ring_sum)


EXPECTED_ERRORS = {
    1: ["RoutingError", "RoutingError", "WireError"],  # claim, impersonate, truncate
    2: ["OutOfPhaseError", "WrongLengthError"],  # replay, short
}


@pytest.mark.parametrize("rnd", sorted(CHEATS))
def test_bad_messages_from_nodes_are_rejected_by_name_and_the_round_goes_on(
    faulty: tuple[list[Outcome], Path], rnd: int
) -> None:
    outcomes, tap = faulty
    outcome = outcomes[rnd]
    assert outcome.error is None, outcome.error
    result = outcome.result
    assert result is not None and not result.dropped and not result.refused
    assert sorted(type(e).__name__ for e in result.rejected.values()) == EXPECTED_ERRORS[rnd]
    assert all(
        isinstance(e, WireError | RoutingError | WrongLengthError | OutOfPhaseError)
        for e in result.rejected.values()
    )
    dropouts = {result.client_ids[n]: Phase.MASKED_INPUT for n in result.rejected}
    expected = _expected_sum(outcome, tap, rnd, dropouts)
    assert len(result.survivors) == NUM_NODES - len(CHEATS[rnd])
    assert expected.survivors == {result.client_ids[n] for n in result.survivors}
    assert np.array_equal(result.ring_sum, expected.ring_sum)


def test_every_node_refuses_a_downgrade_to_plain_and_the_round_aborts_saying_so(
    faulty: tuple[list[Outcome], Path],
) -> None:
    outcome = faulty[0][DOWNGRADE_ROUND]
    assert isinstance(outcome.error, AbortError)
    assert outcome.error.reason == "too-few-survivors"
    assert str(outcome.error).count("refused: RefusedRequestError") == NUM_NODES
    assert not any(Reply.from_record(r.content[RECORD]).message for r in outcome.replies)


# -- the mod's own checks, called directly ------------------------------------------------


def _incoming(request: Request | ConfigRecord, node: int = 5) -> Message:
    record = request.to_record() if isinstance(request, Request) else request
    metadata = Metadata(
        run_id=1,
        message_id=f"m{time.monotonic_ns()}",
        src_node_id=1,
        dst_node_id=node,
        reply_to_message_id="",
        group_id="0",
        created_at=time.time(),
        ttl=3600.0,
        message_type="train",
    )
    return Message(RecordDict({RECORD: record}), metadata=metadata)


def _context(node: int = 5) -> Context:
    return Context(
        run_id=1, node_id=node, node_config={"partition-id": 0}, state=RecordDict(), run_config={}
    )


def _not_called(msg: Message, ctx: Context) -> Message:
    raise AssertionError("the train function must not run")


def _setup(protocol: str = "secaggplus", *, client_id: int = 0, **over: Any) -> Setup:
    fields: dict[str, Any] = {
        "protocol": protocol,
        "config": '{"num_clients": 4}',
        "session": bytes(range(32)),
        "dim": 8,
        "round": 0,
        "client_id": client_id,
        "max_examples": 0,
    }
    return Setup(**{**fields, **over})


def _ask(mod: SecAggMod, request: Request | ConfigRecord, ctx: Context) -> Reply:
    reply = mod(_incoming(request), ctx, _not_called)
    return Reply.from_record(reply.content.config_records[RECORD])


def test_a_node_refuses_a_downgrade_to_plain() -> None:
    reply = _ask(SecAggMod(), Request(Stage.START, _setup("plain"), "input"), _context())
    assert reply.error == RefusedRequestError.__name__ and "plain" in reply.detail


def test_a_node_refuses_what_its_check_refuses() -> None:
    def at_least_three_shares(proto: Any) -> None:
        if proto.threshold < 3:
            raise RefusedRequestError(f"threshold {proto.threshold} < 3")

    mod = SecAggMod(check=at_least_three_shares)
    reply = _ask(mod, Request(Stage.START, _setup(), "advertise-keys"), _context())
    assert reply.error == "RefusedRequestError" and "threshold" in reply.detail


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stage": "explode"}, "stage"),
        ({"round": "0"}, "round"),
        ({"session": "not bytes"}, "session"),
        ({"client_id": True}, "client_id"),
    ],
)
def test_a_malformed_request_is_refused_by_name(change: dict[str, Any], field: str) -> None:
    record = Request(Stage.START, _setup(), "advertise-keys").to_record()
    for key, value in change.items():
        record[key] = value
    reply = _ask(SecAggMod(), record, _context())
    assert reply.error == WireError.__name__ and field in reply.detail


def test_a_request_without_a_field_is_refused_by_name() -> None:
    record = Request(Stage.START, _setup(), "advertise-keys").to_record()
    del record["dim"]
    reply = _ask(SecAggMod(), record, _context())
    assert reply.error == "WireError" and "'dim'" in reply.detail


def test_a_config_that_is_not_a_json_object_is_refused() -> None:
    reply = _ask(
        SecAggMod(), Request(Stage.START, _setup(config="[1]"), "advertise-keys"), _context()
    )
    assert reply.error == "WireError" and "JSON object" in reply.detail


def _four_started() -> tuple[SecAggMod, list[Context], Any, dict[int, Any]]:
    """Four nodes START a SecAgg+ round; the server machine closes ADVERTISE_KEYS."""
    mod = SecAggMod(seed=3)
    setup = _setup()
    proto = protocols.get("secaggplus", num_clients=4)
    server = proto.server(Session(setup.session, setup.dim, 0), 5)
    contexts = [_context(node) for node in range(4)]
    for cid, ctx in enumerate(contexts):
        reply = _ask(mod, Request(Stage.START, _setup(client_id=cid), "advertise-keys"), ctx)
        assert not reply.error, reply.detail
        server.receive(wire.decode(reply.message))
    return mod, contexts, server, server.on_deadline(Phase.ADVERTISE_KEYS)


def _step(cid: int, phase: str, message: bytes, **over: Any) -> Request:
    return Request(Stage.STEP, _setup(client_id=cid, **over), phase, message)


def test_a_step_before_start_is_refused() -> None:
    reply = _ask(SecAggMod(), _step(0, "share-keys", b"x"), _context())
    assert reply.error == FlowerStateError.__name__


def test_a_step_for_the_wrong_phase_or_session_is_refused_and_changes_nothing() -> None:
    mod, contexts, _, outgoing = _four_started()
    keys = wire.encode(outgoing[0])
    before = dict(contexts[0].state.config_records[ROUND_STATE])
    wrong_phase = _ask(mod, _step(0, "unmasking", keys), contexts[0])
    assert wrong_phase.error == OutOfPhaseError.__name__
    other_session = _ask(mod, _step(0, "share-keys", keys, session=bytes(32)), contexts[0])
    assert other_session.error == WrongSessionError.__name__
    garbage = _ask(mod, _step(0, "share-keys", keys[:10]), contexts[0])
    assert garbage.error == WireError.__name__
    assert dict(contexts[0].state.config_records[ROUND_STATE]) == before
    ok = _ask(mod, _step(0, "share-keys", keys), contexts[0])  # the real one still works
    assert not ok.error and ok.message


def test_a_node_does_not_start_the_same_round_twice() -> None:
    """A restarted round would give the node a second set of keys and masks for one session
    and round, which a server could play against each other."""
    mod, contexts, _, _ = _four_started()
    again = _ask(mod, Request(Stage.START, _setup(client_id=0), "advertise-keys"), contexts[0])
    assert again.error == RefusedRequestError.__name__ and "twice" in again.detail
    next_round = Request(Stage.START, _setup(client_id=0, round=1), "advertise-keys")
    assert not _ask(mod, next_round, contexts[0]).error


def test_tampered_node_state_does_not_replay() -> None:
    mod, contexts, _, outgoing = _four_started()
    contexts[1].state.config_records[ROUND_STATE]["seed"] = b"\x00" * 32
    reply = _ask(mod, _step(1, "share-keys", wire.encode(outgoing[1])), contexts[1])
    assert reply.error == FlowerStateError.__name__ and "replaying" in reply.detail


def test_the_server_component_checks_its_parameters() -> None:
    with pytest.raises(ConfigError, match="unknown protocol"):
        SecureAggregation("nope")
    with pytest.raises(ConfigError) as info:
        SecureAggregation("secaggplus", num_clients=3)
    assert info.value.parameter == "num_clients"
    with pytest.raises(ConfigError) as info:
        SecureAggregation("secaggplus", timeout=0)
    assert info.value.parameter == "timeout"
    with pytest.raises(ConfigError) as info:
        SecureAggregation("secaggplus", max_examples=-1)
    assert info.value.parameter == "max_examples"


def test_the_flower_example_matches_simulate() -> None:
    """examples/flower/run.py: digits on 10 simulated SuperNodes, each round's sum equal to
    ``secagg.simulate`` on the same inputs and seed (the script exits 1 otherwise)."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "examples/flower/run.py"), "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.strip().endswith("bit-identical")]
    assert len(rows) == 2, done.stdout

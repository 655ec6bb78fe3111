"""The Flower adapter: secagg protocols run inside Flower's simulation engine (Ray, 10
SuperNodes), compared with ``secagg.simulate`` on the same inputs and seed; dropouts and
misbehaving nodes; what the ServerApp is handed; and the mod's own checks, called directly."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.app.metadata import Metadata
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from secagg import protocols, simulate, wire
from secagg.clients.errors import FlowerStateError
from secagg.clients.flower import (
    RECORD,
    DPFloor,
    IdentityFiles,
    Reply,
    Request,
    SecAggMod,
    SecureAggregation,
    Setup,
    Stage,
    ThreatFloor,
    load_directory,
    round_seed,
    simulate_seed,
    write_directory,
    write_signing_key,
)
from secagg.clients.flower.client_mod import ROUND_STATE
from secagg.clients.flower.envelope import UNASSIGNED
from secagg.clients.flower.identity import identify_message, parse_directory
from secagg.dp import DistributedDP
from secagg.dp.accounting import PrivacyAccountant
from secagg.errors import (
    AbortError,
    AuthenticationError,
    ConfigError,
    OutOfPhaseError,
    RefusedRequestError,
    RoutingError,
    WireError,
    WrongLengthError,
    WrongSessionError,
)
from secagg.primitives.signing import verify
from secagg.protocol import KEY_HOLDER, SERVER, KeyMaterial, Session
from secagg.protocols.he.messages import DecryptedSum, EncryptedInput, EncryptedSum
from secagg.protocols.plain.messages import Input
from secagg.protocols.secaggplus.client import keys_message
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
DP_ROUND = 5
DP = DistributedDP(l2_clip=1.0, noise_multiplier=0.5, min_contributors=8, delta=1e-3, bits=20)


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Outcome], Path]:
    """One simulation, one round of each protocol (nodes here also agree to ``plain``, for
    the control that shows the unmasked-input check can fail), then a secaggplus round with
    distributed DP."""
    tap = tmp_path_factory.mktemp("honest-inputs")
    app = client_app(tap, protocols=tuple(HONEST_ROUNDS))
    plan = [(warm(name), rnd) for name, rnd in HONEST_ROUNDS.items()]
    plan.append((warm("secaggplus", dp=DP, min_survivors=8), DP_ROUND))
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
    expected = simulate(proto, inputs, weights=weights, seed=simulate_seed(SEED, rnd), round=rnd)
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


def test_a_flower_round_with_distributed_dp_equals_simulate_and_averages_over_u(
    honest: tuple[list[Outcome], Path],
) -> None:
    """Nodes encode with the DP config the server sent (the same ring sum as ``simulate``
    with the same seed), send weight 1 with 0.0 appended, and the step is the noisy sum over
    |U|: the next model is the decoded sum's mean, not a ratio of noisy numbers."""
    outcomes, tap = honest
    outcome = outcomes[DP_ROUND]
    assert outcome.error is None, outcome.error
    result = outcome.result
    assert result is not None
    inputs, weights = tapped_inputs(tap, DP_ROUND)
    assert set(weights.values()) == {1.0} and all(x[-1] == 0.0 for x in inputs.values())
    proto = protocols.get("secaggplus", num_clients=len(inputs), min_survivors=8, dp=DP)
    expected = simulate(proto, inputs, weights=weights, seed=simulate_seed(SEED, DP_ROUND),
                        round=DP_ROUND)  # fmt: skip
    assert np.array_equal(result.ring_sum, expected.ring_sum)
    assert result.total_weight == len(result.survivors) == NUM_NODES
    flat = np.concatenate([a.ravel() for a in initial_arrays().to_numpy_ndarrays()])
    new = np.concatenate([a.ravel() for a in result.arrays.to_numpy_ndarrays()])
    np.testing.assert_allclose(new, flat + expected.sum[:-1] / NUM_NODES, atol=1e-5)


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
        seed=simulate_seed(SEED, rnd),
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


@pytest.mark.parametrize(
    ("announced", "named"),
    [
        ({"adversary": "semi-honest"}, "semi-honest"),
        ({"corrupted_fraction": 0.0}, "corrupted_fraction=0.0"),
        ({"dropout_rate": 0.05}, "dropout_rate=0.05"),
    ],
)
def test_a_node_refuses_a_round_sized_for_a_weaker_adversary(
    announced: dict[str, Any], named: str
) -> None:
    """The server announces the masking parameters. Sized for a semi-honest server, or for
    fewer corrupted clients or dropouts, t, k and the signature quorum shrink: at n = 100 a
    'semi-honest' announcement gives t = 6 instead of 16, and a server that forwards a victim
    only t boxes and then drops those t partners reads its input from one honestly signed U3.
    The node's ThreatFloor refuses such a round by name; at the floor it runs."""
    config = json.dumps({"num_clients": 100, **announced})
    request = Request(Stage.START, _setup(config=config), "advertise-keys")
    reply = _ask(SecAggMod(), request, _context())
    assert reply.error == RefusedRequestError.__name__ and named in reply.detail
    relaxed = ThreatFloor("semi-honest", corrupted_fraction=0.0, dropout_rate=0.0)
    assert not _ask(SecAggMod(threat_floor=relaxed), request, _context()).error
    at_floor = Request(Stage.START, _setup(config='{"num_clients": 100}'), "advertise-keys")
    assert not _ask(SecAggMod(), at_floor, _context()).error


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
    with pytest.raises(ConfigError) as info:
        SecureAggregation("secaggplus", directory={0: b"short"})
    assert info.value.parameter == "directory"
    signed = SecureAggregation("secaggplus", consistency_check=True)  # but no directory
    with pytest.raises(ConfigError) as info:
        signed.run_round(None, initial_arrays(), round=0, node_ids=range(4))  # type: ignore[arg-type]
    assert info.value.parameter == "directory"
    keys = {c: bytes([c]) * 32 for c in range(4)}
    unsigned = SecureAggregation("ckks", directory=keys)  # a directory, but ckks does not sign
    with pytest.raises(ConfigError) as info:
        unsigned.run_round(None, initial_arrays(), round=0, node_ids=range(4))  # type: ignore[arg-type]
    assert info.value.parameter == "directory"


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


# -- the HE key holder over Flower (issue 18) ---------------------------------------------


def _holder_setup(protocol: str, round: int = 0, **config: Any) -> Setup:
    kwargs = json.dumps({"num_clients": 4, **config})
    return _setup(protocol, client_id=KEY_HOLDER, config=kwargs, round=round)


def _fishing(setup: Setup, chunks: tuple[bytes, ...]) -> Request:
    """DECRYPT of ``chunks`` labelled as a sum of three participants' inputs."""
    aggregate = EncryptedSum(setup.session, setup.round, SERVER, (0, 1, 2), chunks)
    return Request(Stage.DECRYPT, setup, "decrypt", wire.encode(aggregate))


@pytest.mark.parametrize("protocol", ["ckks", "paillier"])
def test_the_key_holder_decrypts_one_aggregate_per_round_across_messages(protocol: str) -> None:
    """A malicious ServerApp sends four DECRYPTs in one round, each one participant's
    ciphertext labelled "a sum of 3". Every message reaches a fresh SecAggMod (as under
    ``flwr run``, a fresh process); only the node's Context.state is shared. Only the first is
    answered: the other three inputs stay encrypted."""
    ctx = _context(9)
    setup = _holder_setup(protocol)
    keygen = _ask(SecAggMod(), Request(Stage.KEYGEN, setup, "keygen"), ctx)
    assert not keygen.error, keygen.detail
    proto = protocols.get(protocol, num_clients=4)
    session = Session(setup.session, setup.dim, 0)
    inputs = {u: np.linspace(-1, 1, setup.dim) * (u + 1) / 4 for u in range(4)}
    chunks = {}
    for u, x in inputs.items():
        client = proto.client(u, session, 10 + u, keys=KeyMaterial(keygen.message))
        client.set_input(x)
        chunks[u] = client.start().chunks
    answers = [_ask(SecAggMod(), _fishing(setup, chunks[u]), ctx) for u in range(4)]
    # the first one is answered: one decryption per round bounds the leak, the labels are the
    # server's word (SECURITY.md, Roles); it is the only one
    first = wire.decode(answers[0].message)
    assert not answers[0].error and isinstance(first, DecryptedSum)
    for refused in answers[1:]:
        assert refused.error == RefusedRequestError.__name__
        assert "one per round" in refused.detail and refused.message == b""
    # the rule is per (session, round), not a lock-out: the next round's aggregate is answered
    later = _holder_setup(protocol, round=1)
    honest = _ask(SecAggMod(), _fishing(later, chunks[1]), ctx)
    assert not honest.error and honest.message


def _keygen(**config: Any) -> Request:
    return Request(Stage.KEYGEN, _holder_setup("ckks", **config), "keygen")


def test_a_node_bounds_the_min_survivors_and_num_clients_the_server_asks_for() -> None:
    single = _keygen(min_survivors=1, allow_single_input=True)
    reply = _ask(SecAggMod(), single, _context())  # by default: the protocol's own default
    assert reply.error == RefusedRequestError.__name__ and "min_survivors=1" in reply.detail
    lowered = _keygen(num_clients=10, min_survivors=2)  # ckks' default for 10 clients is 5
    reply = _ask(SecAggMod(), lowered, _context())
    assert reply.error == RefusedRequestError.__name__ and "fewer than 5" in reply.detail
    assert not _ask(SecAggMod(min_survivors=2), lowered, _context()).error  # the node's policy
    reply = _ask(SecAggMod(min_survivors=6), _keygen(num_clients=10), _context())
    assert reply.error == RefusedRequestError.__name__ and "fewer than 6" in reply.detail
    reply = _ask(SecAggMod(num_clients=10), _keygen(), _context())
    assert reply.error == RefusedRequestError.__name__ and "num_clients=4" in reply.detail
    masking = Request(Stage.START, _setup(config='{"num_clients": 4, "min_survivors": 4}'), "")
    reply = _ask(SecAggMod(min_survivors=5), masking, _context())
    assert reply.error == RefusedRequestError.__name__ and "min_survivors=4" in reply.detail


# -- seed mode: fresh secrets every round (issue 18) --------------------------------------


def _train_equal(msg: Message, ctx: Context) -> Message:
    """Every node, every round: the same update (+0.5 on every weight)."""
    arrays = msg.content.array_records["arrays"].to_numpy_ndarrays()
    trained = ArrayRecord([a + 0.5 for a in arrays])
    return Message(RecordDict({"arrays": trained}), reply_to=msg)


def _start_with_model(mod: SecAggMod, request: Request, ctx: Context) -> Reply:
    msg = _incoming(request)
    msg.content["arrays"] = ArrayRecord([np.zeros(7, dtype=np.float32)])
    reply = mod(msg, ctx, _train_equal)
    return Reply.from_record(reply.content.config_records[RECORD])


def test_seeded_nodes_draw_fresh_secrets_every_round_and_replay_each_round() -> None:
    """SecAggMod(seed=...) once reused one set of secrets in every round (b_u, s_u, c_u, the
    dither, Paillier's r). Now: other keys and other ciphertexts of the same update in the
    next round; the same (seed, session, round) still gives the same bytes."""

    def keys(seed: int, rnd: int) -> tuple[bytes, bytes]:
        request = Request(Stage.START, _setup(round=rnd), "advertise-keys")
        reply = _ask(SecAggMod(seed=seed), request, _context())
        assert not reply.error, reply.detail
        m = wire.decode(reply.message)
        return m.c_pk, m.s_pk  # type: ignore[attr-defined]

    assert keys(3, 0) == keys(3, 0)  # replays: the node rebuilds its machine from this
    assert keys(3, 1) == keys(3, 1)
    c0, s0 = keys(3, 0)
    c1, s1 = keys(3, 1)
    assert len({c0, s0, c1, s1}) == 4
    assert keys(4, 0) != (c0, s0)
    ctx = _context()
    _ask(SecAggMod(seed=3), Request(Stage.START, _setup(round=2), "advertise-keys"), ctx)
    stored = ctx.state.config_records[ROUND_STATE]["seed"]
    assert stored == round_seed(3, _setup().session, 2) and len(stored) == 32  # type: ignore[arg-type]

    proto = protocols.get("paillier", num_clients=4)
    public = proto.keygen(0).public

    def ciphertext(rnd: int) -> bytes:
        setup = _setup("paillier", round=rnd)
        request = Request(Stage.START, setup, "input", public_keys=public)
        reply = _start_with_model(SecAggMod(seed=3), request, _context())
        assert not reply.error, reply.detail
        return reply.message

    assert ciphertext(0) == ciphertext(0)
    assert ciphertext(0) != ciphertext(1)  # same update, same node: fresh r and dither
    # and the sum still equals secagg.simulate's with simulate_seed (the Flower rounds above)


# -- signed rounds over Flower (issue 18) -------------------------------------------------

PERMUTED = {p: (3 * p + 1) % NUM_NODES for p in range(NUM_NODES)}
"""partition -> its client id in the directory: not the order of Flower's node ids."""


def _federation(root: Path, size: int = NUM_NODES) -> IdentityFiles:
    """Key files ``<root>/<partition>.key`` and ``<root>/directory.json``."""
    directory = {
        PERMUTED[p] if size == NUM_NODES else p: write_signing_key(root / f"{p}.key")
        for p in range(size)
    }
    write_directory(root / "directory.json", directory)
    return IdentityFiles(str(root / "{partition-id}.key"), str(root / "directory.json"))


def _node(partition: int) -> Context:
    return Context(
        run_id=1,
        node_id=100 + partition,
        node_config={"partition-id": partition},
        state=RecordDict(),
        run_config={},
    )


SIGNED = '{"num_clients": 4, "consistency_check": true}'


def test_a_signed_node_refuses_unsigned_rounds_and_ids_that_are_not_its_own(
    tmp_path: Path,
) -> None:
    identity = _federation(tmp_path, size=4)  # partition p is client p
    mod = SecAggMod(identity=identity)
    unsigned = _ask(mod, Request(Stage.START, _setup(client_id=2), "advertise-keys"), _node(2))
    assert unsigned.error == RefusedRequestError.__name__ and "signed" in unsigned.detail
    for other in (1, 3):  # a server remapping ids: node 2 is asked to act as client 1 or 3
        remapped = Request(Stage.START, _setup(client_id=other, config=SIGNED), "advertise-keys")
        reply = _ask(mod, remapped, _node(2))
        assert reply.error == RefusedRequestError.__name__ and "client 2" in reply.detail
    wrong_n = Request(Stage.START, _setup(client_id=2, config=SIGNED.replace("4", "5")), "")
    assert _ask(mod, wrong_n, _node(2)).error == RefusedRequestError.__name__
    # IDENTIFY: the node says which client it is; START as that client is signed
    who = _ask(
        mod, Request(Stage.IDENTIFY, _setup(client_id=UNASSIGNED, config=SIGNED), "x"), _node(2)
    )
    directory = load_directory(tmp_path / "directory.json")
    assert who.client_id == 2
    claim = identify_message(2, session=_setup().session, round=0)
    verify(directory[2], claim, who.message)  # another node cannot claim client 2
    signed = _ask(
        mod, Request(Stage.START, _setup(client_id=2, config=SIGNED), "advertise-keys"), _node(2)
    )
    assert not signed.error, signed.detail
    keys = wire.decode(signed.message)
    session = Session(_setup().session, 8, 0)
    verify(directory[2], keys_message(keys, 2, session), keys.signature)  # type: ignore[attr-defined]
    # a node without keys cannot take part in a signed round at all
    bare = _ask(SecAggMod(), Request(Stage.START, _setup(config=SIGNED), ""), _context())
    assert bare.error == RefusedRequestError.__name__ and "signing key" in bare.detail


SIGNED_CONFIG = {"consistency_check": True, "adversary": "malicious"}


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Outcome], Path]:
    """Ten nodes with signing keys: a signed SecAgg+ round, then an unsigned one."""
    keys = tmp_path_factory.mktemp("signing-keys")
    tap = tmp_path_factory.mktemp("signed-inputs")
    app = client_app(tap, protocols=("secaggplus",), identity=_federation(keys))
    directory = load_directory(keys / "directory.json")
    plan = [
        (warm("secaggplus", directory=directory, **SIGNED_CONFIG), 0),
        (warm("secaggplus"), 1),  # the server tries an unsigned round on the same nodes
    ]
    return simulate_flower(app, plan), tap


def test_a_signed_round_runs_over_flower_with_the_directorys_client_ids(
    signed: tuple[list[Outcome], Path],
) -> None:
    outcomes, tap = signed
    outcome = outcomes[0]
    assert outcome.error is None, outcome.error
    result = outcome.result
    assert result is not None
    assert not result.dropped and not result.rejected and not result.refused
    assert sorted(result.client_ids.values()) == list(range(NUM_NODES))
    # ids come from the directory, not from the order of node ids
    assert [result.client_ids[n] for n in sorted(result.client_ids)] != list(range(NUM_NODES))
    phases = [str(m.content.config_records[RECORD]["phase"]) for m in outcome.replies]
    assert phases.count("consistency-check") == NUM_NODES
    inputs, weights = tapped_inputs(tap, 0)
    proto = protocols.get("secaggplus", num_clients=NUM_NODES, **SIGNED_CONFIG)
    expected = simulate(proto, inputs, weights=weights, seed=simulate_seed(SEED, 0), round=0)
    assert expected.survivors == {result.client_ids[n] for n in result.survivors}
    assert np.array_equal(result.ring_sum, expected.ring_sum)


def test_signed_nodes_refuse_an_unsigned_round(signed: tuple[list[Outcome], Path]) -> None:
    outcome = signed[0][1]
    assert isinstance(outcome.error, AbortError)
    assert outcome.error.reason == "too-few-clients"  # nobody advertised keys
    assert str(outcome.error).count("runs signed rounds only") == NUM_NODES
    assert not any(Reply.from_record(r.content[RECORD]).message for r in outcome.replies)


class _LocalGrid(Grid):
    """The Grid of a ServerApp whose nodes are mods called in this process, one message at
    a time (as a SuperNode handles them); ``liars`` rewrite their IDENTIFY reply's id."""

    def __init__(self, mods: dict[int, tuple[Any, Context]], liars: dict[int, int]) -> None:
        self.mods = mods
        self.liars = liars

    def set_run(self, run: Any) -> None:  # pragma: no cover - not used
        raise NotImplementedError

    @property
    def run(self) -> Any:  # pragma: no cover - not used
        raise NotImplementedError

    def create_message(self, *args: Any, **kwargs: Any) -> Message:  # pragma: no cover
        raise NotImplementedError

    def get_node_ids(self) -> list[int]:
        return sorted(self.mods)

    def push_messages(self, messages: Any) -> Any:  # pragma: no cover - not used
        raise NotImplementedError

    def pull_messages(self, message_ids: Any) -> Any:  # pragma: no cover - not used
        raise NotImplementedError

    def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> list[Message]:
        replies = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            mod, ctx = self.mods[node]
            reply = mod(msg, ctx, _train_equal)
            record = reply.content.config_records[RECORD]
            if record["phase"] == "identify" and node in self.liars:
                record["client_id"] = self.liars[node]
            replies.append(reply)
        return replies


def test_a_node_cannot_claim_another_nodes_id_in_a_signed_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a proof, one node claiming an honest node's client id would push both out of
    the round. The claim is signed: the liar alone is rejected, the round goes on."""
    for name in ("_run_id", "_task_id", "_node_id"):  # what a ServerApp process has
        monkeypatch.setattr(TaskIdentity, name, 1)
    identity = _federation(tmp_path)
    directory = load_directory(tmp_path / "directory.json")
    mod = SecAggMod(("secaggplus",), seed=SEED, identity=identity)
    nodes = {100 + p: (mod, _node(p)) for p in range(NUM_NODES)}
    liar, victim = 100 + 4, 100 + 5  # partition 4 claims partition 5's client id
    grid = _LocalGrid(nodes, liars={liar: PERMUTED[5]})
    secure = SecureAggregation(
        "secaggplus", seed=SEED, directory=directory, dropout_rate=0.2, **SIGNED_CONFIG
    )
    model = ArrayRecord([np.zeros(7, dtype=np.float32)])
    result = secure.run_round(grid, model, round=0)
    assert set(result.rejected) == {liar}
    assert isinstance(result.rejected[liar], AuthenticationError)
    assert result.client_ids[victim] == PERMUTED[5] and victim in result.survivors
    assert len(result.survivors) == NUM_NODES - 1
    np.testing.assert_allclose(result.weighted_sum, np.full(7, 0.5 * (NUM_NODES - 1)), atol=1e-4)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[]", "JSON object"),
        ('{"x": "00"}', "client id"),
        ('{"01": "' + "ab" * 32 + '"}', "client id"),
        ('{"2147483648": "' + "ab" * 32 + '"}', "client id"),
        ('{"0": "abc"}', "64 hex"),
        ('{"0": "' + "zz" * 32 + '"}', "not hex"),
        ('{"0": "' + "ab" * 32 + '", "1": "' + "ab" * 32 + '"}', "twice"),
    ],
)
def test_a_bad_directory_file_is_refused_by_name(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as info:
        parse_directory(text)
    assert info.value.parameter == "directory"


def test_a_node_whose_key_is_not_in_the_directory_has_no_identity(tmp_path: Path) -> None:
    identity = _federation(tmp_path, size=3)
    write_signing_key(tmp_path / "3.key")  # a fourth key, not in the directory
    with pytest.raises(ConfigError) as info:
        identity(_node(3))
    assert info.value.parameter == "directory"
    with pytest.raises(ConfigError) as info:
        IdentityFiles(str(tmp_path / "{missing}.key"), str(tmp_path / "directory.json"))(_node(0))
    assert info.value.parameter == "signing_key"
    assert identity(_node(1)).client_id == 1


# -- distributed DP: the node's own floor and budget ------------------------------------------

NODE_DP = DistributedDP(l2_clip=1.0, noise_multiplier=1.0, min_contributors=3, delta=1e-5)


def _dp_start(config: dict[str, Any], round: int) -> Request:
    setup = _setup(config=json.dumps({"num_clients": 4, **config}), round=round)
    return Request(Stage.START, setup, "advertise-keys")


@pytest.mark.parametrize(
    ("announced", "named"),
    [
        ({}, "only with distributed DP"),
        ({"dp": replace(NODE_DP, noise_multiplier=0.5).to_dict()}, "noise_multiplier=0.5"),
        ({"dp": replace(NODE_DP, min_contributors=2).to_dict()}, "min_contributors=2"),
        ({"dp": replace(NODE_DP, delta=1e-2).to_dict()}, "delta=0.01"),
    ],
)
def test_a_node_with_a_dp_floor_refuses_rounds_without_dp_or_below_it(
    announced: dict[str, Any], named: str
) -> None:
    """Over Flower the server announces the DP config; it may leave DP out or weaken it. A
    node with a DPFloor refuses by name, before it computes anything; at the floor it runs."""
    floor = DPFloor(noise_multiplier=1.0, min_contributors=3, delta=1e-5)
    mod = SecAggMod(num_clients=4, dp_floor=floor)
    config = {"min_survivors": 3, **announced}
    reply = _ask(mod, _dp_start(config, 0), _context())
    assert reply.error == RefusedRequestError.__name__ and named in reply.detail
    ok = _ask(mod, _dp_start({"min_survivors": 3, "dp": NODE_DP.to_dict()}, 0), _context())
    assert ok.error == "" and ok.message


def test_a_node_stops_at_its_own_budget_whatever_the_server_announces() -> None:
    """The node composes every DP round it starts (in its Context state) at its own delta:
    with a budget between 2 and 3 rounds' epsilon, the third round is refused, even though
    the server announces nothing about budgets. A node needs num_clients or identity to hold
    a floor (else the server picks how many share the noise)."""
    accountant = PrivacyAccountant(NODE_DP, 4, 8)
    budget = (accountant.epsilon(2) + accountant.epsilon(3)) / 2
    floor = DPFloor(noise_multiplier=1.0, min_contributors=3, delta=1e-5, epsilon_budget=budget)
    mod, ctx = SecAggMod(num_clients=4, dp_floor=floor), _context()
    announced = {"min_survivors": 3, "dp": NODE_DP.to_dict()}
    replies = [_ask(mod, _dp_start(announced, r), ctx) for r in range(3)]
    assert [r.error for r in replies] == ["", "", RefusedRequestError.__name__]
    assert "past its budget" in replies[2].detail
    with pytest.raises(ConfigError) as err:
        SecAggMod(dp_floor=floor)
    assert err.value.parameter == "dp_floor"

"""The on-chain key split of the masking machines: c_u registered once (injected), s_v^PK
learned after ServerKeys (``set_masking_keys``), the graph drawn over a fixed roster.

The replay functions (``secagg.clients.agents.replay``) drive the machines from public data; here
each misuse and each malformed key is refused by name."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from secagg import protocols, wire
from secagg.clients.agents.replay import (
    RoundRecord,
    forwarded_shares,
    replay,
    server_keys,
    unmask_request,
)
from secagg.errors import (
    LocalProtocolError,
    RemoteProtocolError,
    RoutingError,
    UnknownSenderError,
)
from secagg.primitives.x25519 import KeyPair
from secagg.protocol import SERVER, Session
from secagg.protocols.secaggplus.messages import AdvertiseKeys, PublicKeys, ServerKeys
from secagg.randomness import SeededRandom

N, D = 5, 64
SESSION = Session(b"s" * 32, D, 1)


def setup(absent: frozenset[int] = frozenset()) -> tuple[Any, dict[int, Any], RoundRecord]:
    """Clients 0..N-1 with registered c keys; ``absent`` ones never share."""
    proto = protocols.get("secaggplus", num_clients=N, clip=1.0)
    rng = SeededRandom(b"split-keys")
    c_keys = [KeyPair.generate(rng.fork(f"c/{u}")) for u in range(N)]
    record = RoundRecord(SESSION, tuple(k.public for k in c_keys))
    clients = {
        u: proto.client(u, SESSION, rng.fork(f"client/{u}"), agreement_key=c_keys[u])
        for u in range(N)
        if u not in absent
    }
    s_keys, bundles = {}, {}
    for u, client in clients.items():
        advertised = client.start()
        assert advertised.c_pk == c_keys[u].public  # the registered key, not a fresh one
        s_keys[u] = advertised.s_pk
        bundles[u] = wire.encode(client.receive(server_keys(proto, record, u)))
    return proto, clients, RoundRecord(SESSION, record.agreement_keys, s_keys, bundles)


def test_a_round_with_split_keys_sums_correctly_despite_an_absent_member() -> None:
    proto, clients, record = setup(absent=frozenset({4}))
    rng = np.random.default_rng(0)
    inputs = {u: rng.uniform(-1, 1, D) for u in clients}
    masked = {}
    for u, client in clients.items():
        forwarded, keys = forwarded_shares(proto, record, u)
        assert forwarded is not None and sorted(keys) == sorted(set(clients) - {u})
        client.set_masking_keys(keys)
        client.set_input(inputs[u])
        masked[u] = wire.encode(client.receive(forwarded))
    record = replace(record, inputs=masked, survivors=frozenset(clients))
    request = unmask_request(proto, record)
    assert request.survivors == (0, 1, 2, 3)
    unmasks = {u: wire.encode(c.receive(request)) for u, c in clients.items()}
    record = replace(record, unmasks=unmasks)
    outcome = replay(proto, record)
    assert outcome.result is not None and outcome.rejected == {}
    total = proto.decode(outcome.result.ring_sum, np.zeros(1))
    assert np.max(
        np.abs(total - sum(inputs.values()))
    ) <= proto.config.quantization.sum_error_bound(4)


def test_masking_keys_are_set_once_for_neighbours_only_in_masked_input() -> None:
    proto, clients, record = setup()
    client = clients[0]
    _, keys = forwarded_shares(proto, record, 0)
    fresh = SeededRandom(b"other").random_bytes(32)
    with pytest.raises(LocalProtocolError, match="not awaited"):
        client.set_masking_keys({0: fresh})  # itself, not a neighbour
    with pytest.raises(RemoteProtocolError, match="fresh 32-byte"):
        client.set_masking_keys({1: b"\x01" * 31})
    with pytest.raises(RemoteProtocolError, match="fresh 32-byte"):
        client.set_masking_keys({1: keys[2], 2: keys[2]})  # one key for two clients
    client.set_masking_keys(keys)  # the refusals above changed nothing
    with pytest.raises(LocalProtocolError, match="not awaited"):
        client.set_masking_keys({1: fresh})  # already known
    late = proto.client(1, SESSION, SeededRandom(b"late"))
    with pytest.raises(LocalProtocolError, match="MASKED_INPUT"):
        late.set_masking_keys(keys)


def test_forwarded_shares_without_masking_keys_are_refused() -> None:
    proto, clients, record = setup()
    forwarded, _ = forwarded_shares(proto, record, 0)
    clients[0].set_input(np.zeros(D))
    with pytest.raises(RoutingError, match="no masking key"):
        clients[0].receive(forwarded)


def test_deferring_only_some_masking_keys_is_refused() -> None:
    proto = protocols.get("secaggplus", num_clients=N, clip=1.0)
    rng = SeededRandom(b"mixed")
    client = proto.client(0, SESSION, rng.fork("c0"))
    client.start()
    keys = tuple(
        PublicKeys(v, KeyPair.generate(rng.fork(f"c{v}")).public, b"" if v == 1 else b"k" * 32, b"")
        for v in range(1, N)
    )
    with pytest.raises(RemoteProtocolError, match="deferred only for every neighbour"):
        client.receive(ServerKeys(SESSION.id, SESSION.round, SERVER, tuple(range(N)), keys))


def test_the_server_refuses_keys_from_outside_a_fixed_roster() -> None:
    proto = protocols.get("secaggplus", num_clients=N, clip=1.0)
    server = proto.server(SESSION, roster=range(N - 1))
    rng = SeededRandom(b"roster")
    c, s = KeyPair.generate(rng.fork("c")), KeyPair.generate(rng.fork("s"))
    with pytest.raises(UnknownSenderError, match="roster"):
        server.receive(AdvertiseKeys(SESSION.id, SESSION.round, N - 1, c.public, s.public, b""))

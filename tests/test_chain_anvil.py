"""A real node: anvil (from npm) on 127.0.0.1 with a free port, stopped by its PID."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from secagg.chain import AnvilNode, Chain, Phase, Status
from secagg.chain.errors import NodeError, NodeUnavailableError, RevealMismatchError
from secagg.chain.node import ETHER

from .chain_world import World, cid


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilNode]:
    node = AnvilNode()
    node.start()
    yield node
    node.stop()


def test_two_rounds_with_a_dropout_and_a_cheater_on_anvil(anvil: AnvilNode) -> None:
    world = World.build(Chain.connect(anvil.url), num_participants=5)
    c = world.contracts
    task = world.create_task(max_participants=5)
    world.register(task)
    c.advance(world.outsider, task)
    p = world.participants
    # round 1: p[4] drops before committing, p[3] commits and never reveals
    world.share(task, p)
    world.finish_phase(task)
    world.commit(task, p[:4])
    world.finish_phase(task)
    with pytest.raises(RevealMismatchError):
        c.reveal(p[3], task, cid("not what I committed"), b"\0" * 32)
    world.reveal(task, p[:3])
    world.finish_phase(task)
    assert c.survivors(task, 1) == [a.address for a in p[:3]]
    assert c.member(task, p[3].address).status == Status.SLASHED
    world.unmask(task, p[:3])
    c.advance(world.outsider, task)
    c.finalize_round(world.aggregator, task, cid("model-1"), b"\1" * 32)
    # round 2: everyone
    world.run_round(task)
    assert c.survivors(task, 2) == [a.address for a in p]
    assert c.state(task).phase == Phase.ENDED
    assert [c.model(task, r).cid for r in (1, 2)] == [cid("model-1"), cid("model-2")]
    first = (90 + 60) // 3  # p[3]'s slashed 60 goes to round 1's survivors
    assert c.credit_of(task, p[0].address) == first + 90 // 5
    assert c.credit_of(task, p[3].address) == 90 // 5
    assert c.slashed_of(task) == 0


def test_the_node_is_stopped_by_its_pid() -> None:
    node = AnvilNode()
    node.start()
    url = node.url
    pid = node.pid
    assert pid is not None
    assert Chain.connect(url).block_number == 0
    node.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(NodeError):
        Chain.connect(url, timeout=2)


def test_funding_needs_an_unlocked_account(anvil: AnvilNode) -> None:
    chain = Chain.connect(anvil.url)
    chain.funder = None
    with pytest.raises(NodeError, match="unlocked"):
        chain.new_account(1, fund=ETHER)


def test_a_missing_binary_is_a_named_error(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(NodeError):
        AnvilNode(binary=tmp_path / "no-anvil").start()  # type: ignore[operator]


def test_a_stopped_node_is_a_named_error_and_a_restart_keeps_the_chain(tmp_path: Path) -> None:
    with AnvilNode(state=tmp_path / "state.json") as node:
        chain = Chain.connect(node.url)
        chain.mine(7)
        height, port = chain.block_number, node.port
        node.stop()
        with pytest.raises(NodeUnavailableError):
            _ = chain.block_number
        node.start(port=port)
        assert chain.block_number == height

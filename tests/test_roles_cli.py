"""The role commands' keystore and refusals (issue 20): accounts are standard encrypted
keystores with c_u encrypted the same way, and every command refuses what it cannot do with a
message that says why, before it does anything."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from eth_account import Account

from secagg.chain import AnvilNode, Chain, Phase, deploy
from secagg.chain.errors import NodeError, WrongPhaseError
from secagg.clients.agents.keystore import create_identity, load_identity, save_identity
from secagg.clients.cli import FAILED, main
from secagg.clients.demo.run import Demo, DemoConfig
from secagg.clients.errors import KeystoreError
from secagg.randomness import SeededRandom
from secagg.store import StoreUnavailableError


def test_keystore_round_trip_is_a_standard_v3_file(tmp_path: Path) -> None:
    identity = create_identity(SeededRandom(b"keystore-test"))
    path = save_identity(identity, tmp_path / "me.json", "s3cret", light=True)
    assert path.stat().st_mode & 0o777 == 0o600
    data = json.loads(path.read_text())
    assert Account.decrypt(data, "s3cret") == identity.account.key  # any wallet reads it
    assert identity.agreement_key.private_bytes().hex() not in path.read_text()  # c_u encrypted
    loaded = load_identity(path, "s3cret")
    assert loaded.account.address == identity.account.address
    assert loaded.agreement_key.private_bytes() == identity.agreement_key.private_bytes()


def test_keystore_refuses_wrong_passphrase_loose_mode_and_overwriting(tmp_path: Path) -> None:
    identity = create_identity()
    path = save_identity(identity, tmp_path / "me.json", "s3cret", light=True)
    with pytest.raises(KeystoreError, match="MAC mismatch"):
        load_identity(path, "wrong")
    with pytest.raises(KeystoreError, match="never overwritten"):
        save_identity(create_identity(), path, "other", light=True)
    assert load_identity(path, "s3cret").account.address == identity.account.address
    os.chmod(path, 0o644)
    with pytest.raises(KeystoreError, match="readable by others"):
        load_identity(path, "s3cret")
    with pytest.raises(KeystoreError, match="empty passphrase"):
        save_identity(identity, tmp_path / "empty.json", "")


def test_account_commands_create_and_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SECAGG_PASSPHRASE", "pw")
    out = str(tmp_path / "a.json")
    assert main(["account", "new", "--out", out, "--light-kdf"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert main(["account", "show", "--account", out]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["address"] == created["address"]
    assert bytes.fromhex(shown["agreement_key"]) == load_identity(out, "pw").agreement_key.public
    assert main(["account", "new", "--out", out, "--light-kdf"]) == FAILED  # never overwritten
    assert "never overwritten" in capsys.readouterr().err


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A running anvil with one deployment; (its URL, the deployment file)."""
    try:
        anvil = AnvilNode()
    except NodeError:
        pytest.skip("anvil is not installed")
    directory = tmp_path_factory.mktemp("node")
    with anvil:
        chain = Chain.connect(anvil.url)
        contracts = deploy(chain, chain.new_account())
        deployment = directory / "deployment.json"
        deployment.write_text(json.dumps({"deployment": contracts.deployment.as_dict()}))
        yield anvil.url, deployment


def test_verify_refuses_what_it_cannot_verify(
    node: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, deployment = node
    base = ["verify", "--deployment", str(deployment), "--round", "1"]
    store = ["--store", f"dir:{tmp_path}"]
    assert main([*base, "--task", "1", "--chain", "anvil", *store]) == FAILED  # a new empty node
    assert "http(s) URL of a node every party reaches" in capsys.readouterr().out
    assert main([*base, "--task", "7", "--chain", url, *store]) == FAILED
    assert "there is no task 7 at coordinator" in capsys.readouterr().out
    assert main([*base, "--task", "1", "--chain", url, "--store", "memory"]) == FAILED
    assert "--store is ipfs:URL or dir:PATH" in capsys.readouterr().out


def test_roles_refuse_private_nodes_and_unknown_tasks(
    node: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, deployment = node
    common = ["--deployment", str(deployment), "--store", f"dir:{tmp_path}", "--task", "3"]
    args = ["participant", *common, "--account", "x.json", "--data", "x.npz"]
    assert main([*args, "--chain", "embedded"]) == FAILED
    assert "`secagg devnet up` starts one" in capsys.readouterr().err
    assert main([*args, "--chain", url]) == FAILED
    assert "there is no task 3" in capsys.readouterr().err
    assert main(["aggregator", *common, "--account", "x.json", "--chain", url]) == FAILED
    assert "there is no task 3" in capsys.readouterr().err
    assert main(["status", "--deployment", str(tmp_path / "no.json"), "--chain", url,
                 "--task", "1"]) == FAILED  # fmt: skip
    assert "cannot read the deployment" in capsys.readouterr().err


def test_a_store_that_fails_to_start_stops_the_chain_started_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECAGG_JSIPFS", "/nonexistent/jsipfs")
    demo = Demo(DemoConfig(chain="anvil", store="ipfs", clients=4, rounds=1))
    try:
        demo.__enter__()
    except NodeError:
        pytest.skip("anvil is not installed")
    except StoreUnavailableError:
        pass
    else:
        demo.__exit__(None, None, None)
        pytest.fail("the store started")
    (anvil,) = demo.anvil
    assert not anvil.running and not anvil.answers()  # stopped, not left running


def test_contract_errors_name_phases() -> None:
    chain = Chain.embedded()
    deployer = chain.new_account()
    contracts = deploy(chain, deployer)
    error = WrongPhaseError("WrongPhase", {"taskId": 1, "expected": Phase.REVEAL,
                                           "actual": Phase.FINALIZE})  # fmt: skip
    assert str(error) == "WrongPhase(taskId=1, expected=REVEAL, actual=FINALIZE)"
    from eth_abi import encode
    from eth_utils import keccak

    from secagg.chain.artifacts import decode_revert

    data = keccak(text="WrongPhase(uint256,uint8,uint8)")[:4] + encode(
        ["uint256", "uint8", "uint8"], [1, 4, 6]
    )
    decoded = decode_revert(data)
    assert isinstance(decoded, WrongPhaseError)
    assert decoded.arguments["expected"] is Phase.REVEAL and "actual=FINALIZE" in str(decoded)
    assert contracts.chain is chain


def test_the_commit_journal_keeps_every_opening_durably(tmp_path: Path) -> None:
    """A process killed after sending a commit but before it was mined may commit again after
    a restart: both openings are kept (Reveal opens the one the chain holds), in 0600 files."""
    from secagg.clients.agents.journal import CommitJournal

    journal = CommitJournal(tmp_path / "task")
    assert journal.load(1) == []
    journal.save(1, "bafkfirst", b"\x01" * 32)
    journal.save(1, "bafksecond", b"\x02" * 32)
    again = CommitJournal(tmp_path / "task")  # a restarted process
    assert again.load(1) == [("bafkfirst", b"\x01" * 32), ("bafksecond", b"\x02" * 32)]
    assert (tmp_path / "task" / "commit-1.json").stat().st_mode & 0o777 == 0o600
    assert not list((tmp_path / "task").glob("*.tmp"))

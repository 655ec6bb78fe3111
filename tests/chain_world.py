"""A deployed set of contracts with funded accounts, for the chain tests.

``World`` deploys once per chain; tests take a snapshot and revert to it, so each test
starts from the same fresh deployment in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from secagg.chain import Chain, Contracts, Phase, TaskParams, deploy, protocol_id
from secagg.chain.contracts import Availability
from secagg.randomness import SeededRandom

TOKENS = 10_000
ROOT = Path(__file__).resolve().parents[1]


def fixture_artifact(file: str, name: str) -> dict[str, Any]:
    """ABI and bytecode of the test contract ``name`` in ``contracts/test/<file>``, compiled
    with the pinned solcjs (``node contracts/build.js --fixture``); fixtures never ship."""
    node = shutil.which("node")
    if node is None or not (ROOT / "contracts/node_modules/solc").is_dir():
        raise RuntimeError("needs node and `npm ci --prefix contracts` (make test installs them)")
    done = subprocess.run(
        [node, str(ROOT / "contracts/build.js"), "--fixture", file],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    artifact: dict[str, Any] = json.loads(done.stdout)[name]
    return artifact


def deploy_fixture(chain: Chain, artifact: dict[str, Any]) -> Any:
    """Deploys a fixture contract (no constructor arguments); returns its web3 contract."""
    deployer = chain.new_account(7)
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = chain.transact(deployer, factory.constructor())
    return chain.w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])


def cid(tag: int | str, codec: int = 0x55) -> bytes:
    """A CIDv1 (raw, sha2-256) of a label: the shape of what the stores produce."""
    digest = hashlib.sha256(str(tag).encode()).digest()
    return bytes([0x01, codec, 0x12, 0x20]) + digest


def salt(tag: Any) -> bytes:
    return hashlib.sha256(f"salt/{tag}".encode()).digest()


@dataclass
class World:
    chain: Chain
    contracts: Contracts
    deployer: LocalAccount
    owner: LocalAccount
    aggregator: LocalAccount
    participants: list[LocalAccount]
    outsider: LocalAccount
    reveals: dict[tuple[int, int, str], tuple[bytes, bytes]] = field(default_factory=dict)

    @classmethod
    def build(cls, chain: Chain, num_participants: int = 6, *, token: str | None = None) -> World:
        """``token``: an existing ERC-20 with ``mint(address,uint256)`` callable by the
        deployer (default: a fresh RewardToken)."""
        rng = SeededRandom(b"chain-world")
        deployer = chain.new_account(rng.fork("deployer"))
        contracts = deploy(chain, deployer, token=token)
        owner = chain.new_account(rng.fork("owner"))
        aggregator = chain.new_account(rng.fork("aggregator"))
        outsider = chain.new_account(rng.fork("outsider"))
        participants = [chain.new_account(rng.fork(f"p{i}")) for i in range(num_participants)]
        for account in [owner, outsider, *participants]:
            contracts.mint(deployer, account.address, TOKENS)
        return cls(chain, contracts, deployer, owner, aggregator, participants, outsider)

    def params(self, **overrides: Any) -> TaskParams:
        base = TaskParams(
            protocol_id=protocol_id("secaggplus"),
            params_hash=hashlib.sha256(b"config").digest(),
            aggregator=self.aggregator.address,
            min_participants=3,
            max_participants=len(self.participants),
            threshold=3,
            num_rounds=2,
            registration_blocks=30,
            share_blocks=30,
            commit_blocks=30,
            reveal_blocks=30,
            unmask_blocks=30,
            finalize_blocks=30,
            stake=100,
            slash_amount=60,
            reward_per_round=90,
            reward_pool=1000,
        )
        return replace(base, **overrides)

    def create_task(self, **overrides: Any) -> int:
        return self.contracts.create_task(
            self.owner, self.params(**overrides), cid("model-0"), hashlib.sha256(b"m0").digest()
        )

    def phase(self, task: int) -> Phase:
        return self.contracts.state(task).phase

    def finish_phase(self, task: int) -> None:
        """Advances the phase (after its deadline unless everyone has acted)."""
        self.contracts.advance_when_possible(self.outsider, task)

    def register(self, task: int, accounts: list[LocalAccount] | None = None) -> None:
        for i, account in enumerate(accounts if accounts is not None else self.participants):
            self.contracts.register(account, task, bytes([i + 1]) * 32)

    def share(self, task: int, accounts: list[LocalAccount]) -> None:
        for account in accounts:
            self.contracts.share_keys(
                account, task, salt(account.address)[::-1], cid(account.address)
            )

    def declare(self, task: int, withheld: tuple[int, ...] = ()) -> None:
        """The aggregator fixes the current stage's unavailable blobs, unless it has already
        (the honest run: everything was fetched)."""
        state = self.contracts.state(task)
        stage = {
            Phase.COMMIT: Availability.SHARES_FIXED,
            Phase.UNMASK: Availability.INPUTS_FIXED,
            Phase.FINALIZE: Availability.INPUTS_FIXED,
        }.get(state.phase)
        if stage is None or (stage is Availability.SHARES_FIXED and not state.has_share_keys):
            return
        if state.availability < stage:
            self.contracts.declare_unavailable(self.aggregator, task, withheld)

    def commit(self, task: int, accounts: list[LocalAccount]) -> None:
        round_ = self.contracts.state(task).round
        self.declare(task)
        for account in accounts:
            key = (task, round_, account.address)
            self.reveals[key] = (cid(f"masked/{key}"), salt(key))
            value = self.contracts.commitment(task, round_, account.address, *self.reveals[key])
            self.contracts.commit(account, task, value)

    def reveal(self, task: int, accounts: list[LocalAccount]) -> None:
        round_ = self.contracts.state(task).round
        for account in accounts:
            self.contracts.reveal(account, task, *self.reveals[(task, round_, account.address)])

    def unmask(self, task: int, accounts: list[LocalAccount]) -> None:
        self.declare(task)
        for account in accounts:
            self.contracts.post_unmask(account, task, cid(f"unmask/{account.address}"))

    def reveal_round(
        self,
        task: int,
        *,
        share: list[LocalAccount] | None = None,
        commit: list[LocalAccount] | None = None,
        reveal: list[LocalAccount] | None = None,
    ) -> list[LocalAccount]:
        """A round from ShareKeys to the reveals, with Reveal still open (each list defaults
        to the previous phase's); returns who revealed."""
        share = self.participants if share is None else share
        commit = share if commit is None else commit
        reveal = commit if reveal is None else reveal
        self.share(task, share)
        self.finish_phase(task)
        self.commit(task, commit)
        self.finish_phase(task)
        self.reveal(task, reveal)
        return reveal

    def run_round(
        self,
        task: int,
        *,
        share: list[LocalAccount] | None = None,
        commit: list[LocalAccount] | None = None,
        reveal: list[LocalAccount] | None = None,
        unmask: list[LocalAccount] | None = None,
        finalize: bool = True,
    ) -> None:
        """One round from ShareKeys; each list defaults to the previous phase's."""
        reveal = self.reveal_round(task, share=share, commit=commit, reveal=reveal)
        self.finish_phase(task)
        self.unmask(task, reveal if unmask is None else unmask)
        self.finish_phase(task)  # early when everyone in U posted
        if finalize:
            self.finalize(task)

    def finalize(self, task: int) -> None:
        """The aggregator posts the round's model (fixing the inputs' availability first)."""
        self.declare(task)
        round_ = self.contracts.state(task).round
        model = f"model-{round_}".encode()
        self.contracts.finalize_round(
            self.aggregator, task, cid(model.decode()), hashlib.sha256(model).digest()
        )


def registered_task(world: World, **overrides: Any) -> int:
    """A task with every participant registered, in round 1's first phase (Registration
    closes early: the task is full)."""
    task = world.create_task(**overrides)
    world.register(task)
    world.contracts.advance(world.outsider, task)
    return task

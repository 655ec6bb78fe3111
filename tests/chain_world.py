"""A deployed set of contracts with funded accounts, for the chain tests.

``World`` deploys once per chain; tests take a snapshot and revert to it, so each test
starts from the same fresh deployment in milliseconds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from eth_account.signers.local import LocalAccount

from secagg.chain import Chain, Contracts, Phase, TaskParams, commitment, deploy, protocol_id
from secagg.randomness import SeededRandom

TOKENS = 10_000


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

    def commit(self, task: int, accounts: list[LocalAccount]) -> None:
        round_ = self.contracts.state(task).round
        for account in accounts:
            key = (task, round_, account.address)
            self.reveals[key] = (cid(f"masked/{key}"), salt(key))
            value = commitment(*self.reveals[key], account.address, round_)
            self.contracts.commit(account, task, value)

    def reveal(self, task: int, accounts: list[LocalAccount]) -> None:
        round_ = self.contracts.state(task).round
        for account in accounts:
            self.contracts.reveal(account, task, *self.reveals[(task, round_, account.address)])

    def unmask(self, task: int, accounts: list[LocalAccount]) -> None:
        for account in accounts:
            self.contracts.post_unmask(account, task, cid(f"unmask/{account.address}"))

    def run_round(
        self,
        task: int,
        *,
        share: list[LocalAccount] | None = None,
        commit: list[LocalAccount] | None = None,
        reveal: list[LocalAccount] | None = None,
        finalize: bool = True,
    ) -> None:
        """One round from ShareKeys; each list defaults to the previous phase's."""
        share = self.participants if share is None else share
        commit = share if commit is None else commit
        reveal = commit if reveal is None else reveal
        self.share(task, share)
        self.finish_phase(task)
        self.commit(task, commit)
        self.finish_phase(task)
        self.reveal(task, reveal)
        self.finish_phase(task)
        self.unmask(task, reveal)
        self.contracts.advance(self.outsider, task)  # everyone in U posted: closes early
        if finalize:
            round_ = self.contracts.state(task).round
            model = f"model-{round_}".encode()
            self.contracts.finalize_round(
                self.aggregator, task, cid(model.decode()), hashlib.sha256(model).digest()
            )

"""One task as the chain tells it: events folded into members, phases and per-round postings.

Agents follow the chain through a :class:`TaskLedger`: each :meth:`TaskLedger.sync` reads the
events mined since the last one (one ``eth_getLogs``) and folds them in. A ledger built from
block 0 holds everything a restarted agent needs; blobs are fetched from the store only when
a round is rebuilt (:meth:`TaskLedger.record`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from secagg.chain import Contracts, Phase
from secagg.chain.contracts import Event
from secagg.protocol import Protocol, Session
from secagg.store import Store, normalize

from ..errors import AgentError
from .replay import RoundRecord
from .task import TaskSpec, session_id, spec_cid

__all__ = ["RoundPostings", "TaskLedger"]


@dataclass
class RoundPostings:
    """What members posted in one round, by address; CIDs as canonical strings.

    ``shares_fixed`` / ``inputs_fixed``: the aggregator has fixed which share bundles / revealed
    inputs it could not fetch (``withheld_shares`` / ``withheld_inputs``); everyone leaves
    those out, whatever the store serves them (``RoundCoordinator.declareUnavailable``).
    """

    shares: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    committed: set[str] = field(default_factory=set)
    reveals: dict[str, str] = field(default_factory=dict)
    unmasks: dict[str, str] = field(default_factory=dict)
    slashed: set[str] = field(default_factory=set)
    withheld_shares: set[str] = field(default_factory=set)
    withheld_inputs: set[str] = field(default_factory=set)
    withheld_unmasks: set[str] = field(default_factory=set)
    shares_fixed: bool = False
    inputs_fixed: bool = False
    unmasks_fixed: bool = False
    closed_reveal: bool = False
    outcome: str | None = None  # "finalized" | "failed"
    failed_phase: Phase | None = None


class TaskLedger:
    """Members, phase and postings of ``task_id``, folded from its events."""

    def __init__(self, contracts: Contracts, task_id: int, from_block: int = 0) -> None:
        self.contracts = contracts
        self.task_id = task_id
        self._cursor = contracts.follow(task_id, from_block)
        self.params_hash: bytes | None = None
        self.aggregator: str | None = None
        self.members: list[str] = []
        self.agreement_keys: list[bytes] = []
        self.he_contexts: list[str | None] = []
        self.phase = Phase.NONE
        self.round = 0
        self.deadline = 0
        self.rounds: dict[int, RoundPostings] = {}
        self.models: dict[int, tuple[str, bytes]] = {}
        self.amounts: dict[str, dict[str, int]] = {}  # Slashed/AbsenceCharged/RewardClaimed/...
        self._spec: TaskSpec | None = None
        self._protocol: Protocol[Any] | None = None
        self._blobs: tuple[int, dict[str, bytes]] = (0, {})  # (round, CID -> blob)
        self._session_id = session_id(
            contracts.chain.w3.eth.chain_id, contracts.coordinator.address, task_id
        )

    # -- following -----------------------------------------------------------------------------
    def sync(self) -> list[Event]:
        """Fold in the events mined since the last call; returns them."""
        events = self._cursor.poll()
        for event in events:
            self._fold(event)
        return events

    def _fold(self, event: Event) -> None:
        a = event.args
        name = event.name
        if name == "TaskCreated":
            self.params_hash, self.aggregator = bytes(a["paramsHash"]), a["aggregator"]
        elif name == "Registered":
            self.members.append(a["participant"])
            self.agreement_keys.append(bytes(a["agreementKey"]))
            context = bytes(a["heContextCid"])
            self.he_contexts.append(normalize(context) if context else None)
        elif name == "PhaseChanged":
            self.phase, self.round, self.deadline = Phase(a["phase"]), a["round"], a["deadline"]
            if self.phase in (Phase.UNMASK, Phase.FINALIZE):
                self.postings(a["round"]).closed_reveal = True
        elif name == "SharesPosted":
            posted = (bytes(a["maskingKey"]), normalize(bytes(a["bundleCid"])))
            self.postings(a["round"]).shares[a["participant"]] = posted
        elif name == "Committed":
            self.postings(a["round"]).committed.add(a["participant"])
        elif name == "Revealed":
            self.postings(a["round"]).reveals[a["participant"]] = normalize(bytes(a["cid"]))
        elif name == "UnmaskPosted":
            self.postings(a["round"]).unmasks[a["participant"]] = normalize(bytes(a["cid"]))
        elif name == "Slashed":
            self.postings(a["round"]).slashed.add(a["participant"])
            self._add_amount(name, a["participant"], a["amount"])
        elif name in ("RewardClaimed", "StakeWithdrawn", "AbsenceCharged"):
            self._add_amount(name, a["participant"], a["amount"])
        elif name == "KeeperCredited":
            self._add_amount(name, a["keeper"], a["amount"])
        elif name == "Unavailable":
            postings = self.postings(a["round"])
            withheld = {self.members[i] for i in a["withheld"]}
            if Phase(a["phase"]) is Phase.COMMIT:
                postings.shares_fixed, postings.withheld_shares = True, withheld
            elif postings.inputs_fixed:  # stage 3, in Finalize of a task with Unmask
                postings.unmasks_fixed, postings.withheld_unmasks = True, withheld
            else:
                postings.inputs_fixed, postings.withheld_inputs = True, withheld
        elif name == "RoundFailed":
            postings = self.postings(a["round"])
            postings.outcome, postings.failed_phase = "failed", Phase(a["phase"])
        elif name == "RoundFinalized":
            self.postings(a["round"]).outcome = "finalized"
        elif name == "ModelPublished":
            self.models[int(a["round"])] = (normalize(bytes(a["cid"])), bytes(a["sha256Digest"]))

    def _add_amount(self, name: str, address: str, amount: int) -> None:
        by_address = self.amounts.setdefault(name, {})
        by_address[address] = by_address.get(address, 0) + int(amount)

    # -- queries -------------------------------------------------------------------------------
    def postings(self, round: int) -> RoundPostings:
        return self.rounds.setdefault(round, RoundPostings())

    def id_of(self, address: str) -> int:
        """The client id of a member: its position in registration order."""
        try:
            return self.members.index(address)
        except ValueError:
            raise AgentError(f"{address} is not registered in task {self.task_id}") from None

    def blob(self, store: Store, round: int, cid: str) -> bytes:
        """The blob ``cid`` posted in ``round``, fetched from ``store`` once per ledger (blobs
        are content-addressed, so the current round's are kept)."""
        if self._blobs[0] != round:
            self._blobs = (round, {})
        cache = self._blobs[1]
        if cid not in cache:
            cache[cid] = store.get(cid)
        return cache[cid]

    def member(self, id: int) -> str:
        """The address of client ``id``."""
        return self.members[id]

    def spec(self, store: Store) -> TaskSpec:
        """The task's spec, fetched once by the CID its ``paramsHash`` names."""
        if self._spec is None:
            if self.params_hash is None:
                raise AgentError(f"task {self.task_id}: no TaskCreated event seen yet")
            self._spec = TaskSpec.decode(store.get(spec_cid(self.params_hash)))
        return self._spec

    def protocol(self, store: Store) -> Protocol[Any]:
        """The task's protocol object, built once from its spec."""
        if self._protocol is None:
            self._protocol = self.spec(store).build_protocol()
        return self._protocol

    def session(self, store: Store, round: int) -> Session:
        return Session(self._session_id, self.spec(store).dim, round)

    def survivors(self, round: int) -> frozenset[int]:
        """U of ``round``: valid reveals, less the inputs the aggregator declared unavailable
        (empty until Reveal closed)."""
        postings = self.postings(round)
        if not postings.closed_reveal:
            return frozenset()
        return frozenset(
            self.id_of(a) for a in postings.reveals if a not in postings.withheld_inputs
        )

    def latest_model(self, before: int) -> tuple[int, str, bytes]:
        """(round, CID, sha256) of the newest model from a round before ``before``."""
        done = [r for r in self.models if r < before]
        if not done:
            raise AgentError(f"task {self.task_id}: no model before round {before}")
        r = max(done)
        return (r, *self.models[r])

    def record(
        self,
        store: Store,
        round: int,
        *,
        shares: bool = True,
        outcome: bool = True,
        inputs: bool = True,
        unmasks: bool = True,
    ) -> RoundRecord:
        """The round's public data with its blobs fetched from ``store``.

        ``shares``: fetch the share bundles; ``outcome``: fetch U's inputs (``inputs``) and
        the unmask blobs (``unmasks``), less those the aggregator declared unavailable.
        The round's blobs are fetched once per ledger (they are content-addressed). Blobs the
        aggregator declared unavailable are left out: no party fetches them, so nobody's view
        depends on who is served what.

        Raises
        ------
        NotFoundError
            A blob declared available is not found (this party cannot act on the round).
        """
        postings = self.postings(round)
        by_id = {self.id_of(a): v for a, v in postings.shares.items()}
        bundles = {
            a: c for a, (_, c) in postings.shares.items() if a not in postings.withheld_shares
        }

        def fetch(cids: Iterable[tuple[str, str]]) -> dict[int, bytes]:
            return {self.id_of(address): self.blob(store, round, cid) for address, cid in cids}

        survivors = self.survivors(round)
        return RoundRecord(
            self.session(store, round),
            tuple(self.agreement_keys),
            masking_keys={u: key for u, (key, _) in by_id.items()},
            bundles=fetch(bundles.items()) if shares else {},
            inputs=fetch((a, postings.reveals[a]) for a in map(self.member, survivors))
            if outcome and inputs
            else {},
            survivors=survivors,
            unmasks=fetch(
                (a, c) for a, c in postings.unmasks.items() if a not in postings.withheld_unmasks
            )
            if outcome and unmasks
            else {},
        )

"""The participant agent: follows the chain, trains, runs the protocol's client machine, and
posts its blobs to the store and their CIDs on chain.

Per round (the chain's phases; ``plain`` and HE tasks have no ShareKeys or Unmask):

ShareKeys
    a fresh client machine; AdvertiseKeys gives s_u^PK; ServerKeys is built from the key
    registry (:func:`~secagg.clients.agents.replay.server_keys`); the resulting ShareKeys message is
    the bundle. Posts ``shareKeys(s_u^PK, bundle CID)``.
Commit
    waits until the aggregator has fixed which share bundles were unavailable (masking
    tasks); fetches the latest global model, trains, and encodes the update (masked with the
    shares its neighbours posted, or encrypted, or plain); commits to the blob's CID.
Reveal
    opens the commitment.
Unmask
    waits until the aggregator has fixed which revealed inputs were unavailable, then answers
    the unmask request for the on-chain U (less those inputs).
Ended
    claims rewards and withdraws its stake.

The agent acts on the chain's *current* state, once per (round, phase). A participant that
joins mid-round (restarted after a crash) sits the round out: its machine's secrets died with
the old process. Its long-term identity (account and c_u) is all it keeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from eth_account.signers.local import LocalAccount

from secagg import wire
from secagg.chain import Contracts, Phase
from secagg.chain.errors import ChainError
from secagg.dp.accounting import PrivacyAccountant
from secagg.errors import AbortError, SecAggError
from secagg.primitives.x25519 import KeyPair
from secagg.protocol import ClientMachine, KeyMaterial, Protocol
from secagg.protocols.secaggplus import SecAggPlus
from secagg.protocols.secaggplus.messages import AdvertiseKeys
from secagg.randomness import RandomSource
from secagg.store import Store, to_bytes
from secagg.wire import Message

from ..learning.trainer import (
    Shard,
    Trainer,
    dp_sgd_epsilon,
    flatten_params,
    make_model,
    unflatten_params,
)
from ..learning.training import TrainContext
from .journal import CommitJournal
from .keeper import KeeperAgent
from .ledger import TaskLedger
from .metrics import PARTICIPANTS, Metrics
from .models import ModelBlob
from .replay import forwarded_shares, server_keys, unmask_request
from .task import TaskSpec, uses_dp

__all__ = ["Identity", "Participant", "training_seed"]


@dataclass(frozen=True, eq=False)
class Identity:
    """What survives a participant's restart: its account and its registered c_u."""

    account: LocalAccount
    agreement_key: KeyPair

    @classmethod
    def generate(cls, account: LocalAccount, rng: RandomSource) -> Identity:
        return cls(account, KeyPair.generate(rng.fork("agreement-key")))


def training_seed(rng: RandomSource, round: int) -> int:
    """The seed of a client's data shuffling in ``round`` (from its secret rng)."""
    return int.from_bytes(rng.fork(f"round/{round}/shuffle").random_bytes(8), "big")


@dataclass
class _RoundState:
    round: int
    machine: ClientMachine[Any] | None = None
    blob_cid: str | None = None
    salt: bytes | None = None


class Participant(KeeperAgent):
    """One participant of one task.

    Parameters
    ----------
    contracts, store:
        The chain bindings and the content-addressed store.
    task_id:
        The task to follow.
    identity:
        Account and registered agreement key.
    data:
        This client's training shard (private).
    rng:
        Secrets (masks, shares, salts, dither) come from here.
    metrics:
        Where costs are recorded.
    device:
        Where to train and encode (default: CUDA when available).
    clock:
        Time source for the metrics.
    train:
        Local training other than the task's recipe on ``data``: called with the global
        weights (flat float32) and a
        :class:`~secagg.clients.learning.training.TrainContext`, returns the trained weights
        and n_u (``secagg participant --train``).
    journal:
        Where the opening of each commitment is saved before committing, so that a
        restarted process still reveals (:class:`~secagg.clients.agents.journal.CommitJournal`).
    """

    def __init__(
        self,
        contracts: Contracts,
        store: Store,
        task_id: int,
        identity: Identity,
        data: Shard,
        rng: RandomSource,
        metrics: Metrics,
        *,
        device: torch.device | None = None,
        clock: Callable[[], float] = time.perf_counter,
        train: Callable[[np.ndarray[Any, Any], TrainContext], tuple[np.ndarray[Any, Any], int]]
        | None = None,
        journal: CommitJournal | None = None,
    ) -> None:
        self.contracts, self.store, self.task_id = contracts, store, task_id
        self.train = train
        self.journal = journal
        self.identity = identity
        self.account = identity.account
        self.data = data
        self.rng = rng
        self.metrics = metrics
        self.clock = clock
        self.device = device
        self.ledger = TaskLedger(contracts, task_id)
        self._acted: set[tuple[int, Phase]] = set()
        self._state: _RoundState | None = None
        self._trainer: Trainer | None = None
        self.example_epsilon: dict[int, float] = {}
        """Round -> this participant's example-level DP-SGD epsilon after training in it."""
        self._keys: KeyMaterial | None = None
        self.settled = False
        """The task ended and this participant took its rewards and stake."""

    @property
    def address(self) -> str:
        return str(self.identity.account.address)

    @property
    def id(self) -> int:
        return self.ledger.id_of(self.address)

    # -- setup ---------------------------------------------------------------------------------
    def _spec(self) -> TaskSpec:
        return self.ledger.spec(self.store)

    def _protocol(self) -> Protocol[Any]:
        return self.ledger.protocol(self.store)

    def _public_keys(self) -> KeyMaterial | None:
        spec = self._spec()
        if spec.he_context is not None and self._keys is None:
            self._keys = KeyMaterial(self.store.get(spec.he_context))
        return self._keys

    def register(self) -> None:
        """Registers c_u^PK (and the HE context's CID) with the task's stake; nothing when
        this account is a member already (a restarted process)."""
        self.ledger.sync()
        if self.address in self.ledger.members:
            return
        spec = self._spec()
        context = to_bytes(spec.he_context) if spec.he_context else b""
        t0 = self.clock()
        receipt = self.contracts.register(
            self.identity.account, self.task_id, self.identity.agreement_key.public, context
        )
        self.metrics.record(
            0, PARTICIPANTS, "register", len(self.ledger.members),
            seconds=self.clock() - t0, gas=int(receipt["gasUsed"]),
        )  # fmt: skip

    # -- following -----------------------------------------------------------------------------
    def act(self) -> bool:
        """Act on the chain's current phase if not done yet; True when something was done."""
        self.ledger.sync()
        r, phase = self.ledger.round, self.ledger.phase
        if (r, phase) in self._acted or self.address not in self.ledger.members:
            return False
        self._acted.add((r, phase))
        action: Callable[[int], bool | None] | None = {
            Phase.SHARE_KEYS: self._share_keys,
            Phase.COMMIT: self._commit,
            Phase.REVEAL: self._reveal,
            Phase.UNMASK: self._unmask,
            Phase.ENDED: self._settle,
        }.get(phase)
        if action is None:
            return False
        try:
            done = action(r)
            if done is None:  # waiting for the aggregator's availability declaration
                self._acted.discard((r, phase))
                return False
            return done
        except (SecAggError, ChainError) as exc:  # this client drops out of the round
            if phase is Phase.ENDED:  # nothing to drop out of: claim again at the next step
                self._acted.discard((r, phase))
                self.metrics.note(r, f"client {self.id} could not settle yet: {exc}")
                return False
            self._state = None
            self.metrics.note(r, f"client {self.id} left at {phase.name}: {exc}")
            return True

    def _current(self, r: int) -> _RoundState | None:
        return self._state if self._state is not None and self._state.round == r else None

    def encode_posting(self, phase: Phase, message: Message) -> bytes:
        """The blob posted for ``message`` in ``phase``: its wire encoding."""
        return wire.encode(message)

    def _timed_post(
        self, r: int, phase: Phase, t0: float, data: bytes, receipt: Any, cid: str | None = None
    ) -> None:
        self.metrics.record(
            r, PARTICIPANTS, phase.name.lower(), self.id,
            seconds=self.clock() - t0, bytes=len(data), gas=int(receipt["gasUsed"]),
            tx=bytes(receipt["transactionHash"]).hex(), cid=cid,
        )  # fmt: skip

    # -- phases --------------------------------------------------------------------------------
    def _share_keys(self, r: int) -> bool:
        proto = self._protocol()
        assert isinstance(proto, SecAggPlus)
        self._check_privacy_budget(proto, r)  # before sharing keys: no absence fee for it
        t0 = self.clock()
        session = self.ledger.session(self.store, r)
        machine = proto.client(
            self.id,
            session,
            self.rng.fork(f"round/{r}"),
            agreement_key=self.identity.agreement_key,
        )
        advertised = machine.start()
        assert isinstance(advertised, AdvertiseKeys)
        record = self.ledger.record(self.store, r, shares=False, outcome=False)
        shares = machine.receive(server_keys(proto, record, self.id))
        assert shares is not None
        bundle = self.encode_posting(Phase.SHARE_KEYS, shares)
        cid = self.store.put(bundle)
        receipt = self.contracts.share_keys(
            self.identity.account,
            self.task_id,
            advertised.s_pk,
            to_bytes(cid),
        )
        self._state = _RoundState(r, machine)
        self._timed_post(r, Phase.SHARE_KEYS, t0, bundle, receipt, cid)
        return True

    def _commit(self, r: int) -> bool | None:
        proto = self._protocol()
        masking = isinstance(proto, SecAggPlus)
        state = self._current(r)
        if masking and (state is None or state.machine is None):
            return False  # joined mid-round: no shares posted, nothing to commit to
        postings = self.ledger.postings(r)
        if self.address in postings.committed:
            return False  # committed before a restart: Reveal opens it from the journal
        if self.address in postings.withheld_shares:
            raise AbortError("bundle-withheld", "the aggregator could not fetch this bundle")
        if masking and not postings.shares_fixed:
            return None  # the aggregator is checking the bundles (it waits out store outages)
        if not masking:  # masking rounds checked it when they opened (SHARE_KEYS)
            self._check_privacy_budget(proto, r)
        update, weight = self._train(r)
        t0 = self.clock()
        message: Message | None
        if masking:
            assert state is not None and state.machine is not None
            record = self.ledger.record(self.store, r, outcome=False)
            forwarded, masking_keys = forwarded_shares(proto, record, self.id)
            if forwarded is None:
                raise AbortError("not-in-u2", "too few of this client's neighbours shared keys")
            state.machine.set_masking_keys(masking_keys)  # type: ignore[attr-defined]
            state.machine.set_input(update, weight=weight)
            message = state.machine.receive(forwarded)
        else:
            machine = proto.client(
                self.id,
                self.ledger.session(self.store, r),
                self.rng.fork(f"round/{r}"),
                keys=self._public_keys(),
            )
            machine.set_input(update, weight=weight)
            message = machine.start()
            state = self._state = _RoundState(r, machine)
        assert message is not None
        blob = self.encode_posting(Phase.COMMIT, message)
        cid = self.store.put(blob)
        salt = self.rng.fork(f"round/{r}/salt").random_bytes(32)
        value = self.contracts.commitment(self.task_id, r, self.address, to_bytes(cid), salt)
        if self.journal is not None:  # before the transaction: a crash after it must reveal
            self.journal.save(r, cid, salt)
        receipt = self.contracts.commit(self.identity.account, self.task_id, value)
        state.blob_cid, state.salt = cid, salt
        self._timed_post(r, Phase.COMMIT, t0, blob, receipt)  # the CID stays hidden
        return True

    def _check_privacy_budget(self, proto: Protocol[Any], r: int) -> None:
        """Refuse (``AbortError("privacy-budget")``) to send an update whose round would take
        the task's epsilon past ``dp.epsilon_budget``: round r is this task's r-th release."""
        dp = getattr(proto, "dp", None)
        if dp is None or dp.epsilon_budget is None:
            return
        eps = PrivacyAccountant(dp, proto.num_clients, self._spec().dim).epsilon(r)
        if eps > dp.epsilon_budget:
            raise AbortError(
                "privacy-budget",
                f"round {r} would bring the task to epsilon {eps:.3f} at delta {dp.delta:g}, "
                f"past its budget {dp.epsilon_budget:g}: this participant sends no more updates",
            )

    def _train(self, r: int) -> tuple[torch.Tensor, float]:
        """Delta_u of local training from the newest global model, with 1.0 appended, and w_u
        (with distributed DP: 0.0 appended and weight 1, see :func:`next_model`)."""
        t0 = self.clock()
        spec = self._spec()
        _, cid, _ = self.ledger.latest_model(r)
        weights = ModelBlob.decode(self.store.get(cid)).weights
        if self._trainer is None and self.train is None:
            model = make_model(spec.model)
            kwargs = {"epochs": spec.epochs, "lr": spec.lr, "batch_size": spec.batch_size}
            self._trainer = Trainer(
                model,
                device=self.device,
                dp_sgd=spec.training_dp(),
                **kwargs,  # type: ignore[arg-type]
            )
        seed = training_seed(self.rng, r)
        if self.train is not None:
            delta, examples = self._train_custom(np.asarray(weights, np.float32), r, seed)
        else:
            assert self._trainer is not None
            like = [p.detach() for p in self._trainer.model.parameters()]
            start = unflatten_params(torch.from_numpy(np.array(weights)), like)
            delta = flatten_params(self._trainer.local_update(start, self.data, seed=seed))
            examples = len(self.data)
        if self._trainer is not None and self._trainer.dp_sgd is not None:  # <= r rounds
            self.example_epsilon[r] = dp_sgd_epsilon(
                self._trainer.dp_sgd,
                len(self.data),
                batch_size=spec.batch_size,
                epochs=spec.epochs,
                rounds=r,
            )
        if uses_dp(self._protocol()):  # DP-FedAvg: weight 1, the server divides by |U|
            tail, weight = torch.zeros(1, device=delta.device, dtype=delta.dtype), 1.0
        else:
            tail = torch.ones(1, device=delta.device, dtype=delta.dtype)
            weight = min(examples, spec.total_samples) / spec.total_samples
        self.metrics.record(r, PARTICIPANTS, "train", self.id, seconds=self.clock() - t0)
        return torch.cat([delta, tail]), weight

    def _train_custom(
        self, weights: np.ndarray[Any, Any], r: int, seed: int
    ) -> tuple[torch.Tensor, int]:
        """Delta_u and n_u from the ``train`` entry point, checked."""
        assert self.train is not None
        context = TrainContext(round=r, seed=seed, spec=self._spec(), device=self.device)
        trained, examples = self.train(weights.copy(), context)
        trained = np.asarray(trained, dtype=np.float32)
        if trained.shape != weights.shape or not np.isfinite(trained).all():
            raise AbortError(
                "bad-training",
                f"the training entry point returned {trained.shape} weights (or non-finite "
                f"values) for a model of {weights.shape}",
            )
        if not isinstance(examples, int | np.integer) or examples < 1:
            raise AbortError("bad-training", f"the example count {examples!r} is not >= 1")
        return torch.from_numpy(trained - weights).to(self.device or "cpu"), int(examples)

    def _reveal(self, r: int) -> bool:
        state = self._current(r)
        opening = None if state is None else (state.blob_cid, state.salt)
        if (opening is None or None in opening) and self.journal is not None:
            if self.address in self.ledger.postings(r).committed:  # committed, then restarted
                opening = self._journaled_opening(r)
        if opening is None or opening[0] is None or opening[1] is None:
            return False
        if self.address in self.ledger.postings(r).reveals:
            return False
        t0 = self.clock()
        receipt = self.contracts.reveal(
            self.identity.account, self.task_id, to_bytes(opening[0]), opening[1]
        )
        self._timed_post(r, Phase.REVEAL, t0, b"", receipt, opening[0])
        return True

    def _journaled_opening(self, r: int) -> tuple[str, bytes] | None:
        """The journal's opening of the commitment the chain holds for round ``r``."""
        assert self.journal is not None
        held = self.contracts.commitment_of(self.task_id, self.address, r)
        for cid, salt in self.journal.load(r):
            if (
                self.contracts.commitment(self.task_id, r, self.address, to_bytes(cid), salt)
                == held
            ):
                return cid, salt
        return None

    def _unmask(self, r: int) -> bool | None:
        state = self._current(r)
        proto = self._protocol()
        if state is None or state.machine is None:
            return False
        if not self.ledger.postings(r).inputs_fixed:
            return None  # U is final only once the aggregator fixed the inputs' availability
        if self.id not in self.ledger.survivors(r):
            return False
        assert isinstance(proto, SecAggPlus)
        t0 = self.clock()
        # neither others' inputs (n d-long vectors: the aggregator declared every one it could
        # not fetch or decode, so U less those is U3) nor their answers are needed
        record = self.ledger.record(self.store, r, inputs=False, unmasks=False)
        request = unmask_request(proto, record, inputs_declared=True)
        if self.id not in request.survivors:
            raise AbortError("not-in-u3", "this client's own input was rejected")
        response = state.machine.receive(request)
        assert response is not None
        blob = self.encode_posting(Phase.UNMASK, response)
        cid = self.store.put(blob)
        receipt = self.contracts.post_unmask(self.identity.account, self.task_id, to_bytes(cid))
        self._state = None  # the round's secrets are no longer needed
        self._timed_post(r, Phase.UNMASK, t0, blob, receipt, cid)
        return True

    def _settle(self, r: int) -> bool | None:
        """After the task: claim the rewards earned and take the stake back (None: the last
        round's challenge window is still open, its reward cannot be claimed yet)."""
        if self.ledger.models:
            window = self.contracts.params(self.task_id).challenge_blocks
            posted = self.contracts.model(self.task_id, max(self.ledger.models)).block_number
            if self.contracts.chain.block_number + 1 < posted + window:  # the claim's block
                return None
        account = self.identity.account
        if self.contracts.credit_of(self.task_id, self.address):
            self.contracts.claim_rewards(account, self.task_id)
        if self.contracts.member(self.task_id, self.address).stake:
            self.contracts.withdraw_stake(account, self.task_id)
        self.settled = True
        return True

"""The aggregator agent (and, for HE tasks, the key holder agent).

The aggregator holds no secret of any participant and no decryption key. When a round's
Finalize phase opens it rebuilds the round from the chain and the store
(:func:`~secagg.clients.agents.replay.replay`): masked vectors plus unmasking shares, or
ciphertexts plus the key holder's decrypted sum. It decodes the sum, takes FedAvg's step,
stores the new model and posts its CID and sha256 on chain; the contract then credits U's
rewards. It keeps no state of its own between calls, so a restarted aggregator picks up where
the chain is and produces the same model (the blobs are content-addressed and the replay is
deterministic).

The key holder of an HE task recomputes the encrypted sum itself from U's published
ciphertexts (it never decrypts a ciphertext the aggregator hands it: that would let the
aggregator ask for any single client's input), decrypts it, and publishes the decrypted sum;
it hands the CID to the aggregator off chain (:meth:`Aggregator.accept_decryption`).

Data availability: before anyone may commit (tasks with ShareKeys) and before anyone may
unmask (or, without Unmask, before the model), the aggregator fetches every blob posted in
the stage, publishes again each one it got (so that on IPFS its own node serves it to
everyone), and fixes on chain the members whose blob it could not find
(:meth:`Contracts.declare_unavailable`). Every party then leaves exactly those out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from eth_account.signers.local import LocalAccount

from secagg import wire
from secagg.chain import Contracts, Phase
from secagg.chain.errors import ChainError
from secagg.errors import AbortError, SecAggError
from secagg.protocol import AggregateResult, KeyMaterial, Protocol, Session
from secagg.protocols.he import HEProtocol
from secagg.protocols.secaggplus import SecAggPlus
from secagg.store import Store, StoreError, StoreUnavailableError, to_bytes

from .keeper import KeeperAgent
from .ledger import TaskLedger
from .metrics import AGGREGATOR, KEY_HOLDER, Metrics
from .models import ModelBlob
from .replay import rejected_inputs, replay
from .task import uses_dp

__all__ = ["Aggregator", "KeyHolder", "next_model"]


def next_model(
    proto: Protocol[Any],
    previous: ModelBlob,
    result: AggregateResult,
    round: int,
    aggregate: str | None = None,
    *,
    session: Session | None = None,
) -> ModelBlob:
    """FedAvg's step from the secure sum: w + (sum_U w_u Delta_u) / sum_U w_u.

    The last entry of the decoded sum is sum_U w_u (clients append 1.0 to their update).
    With distributed DP (``proto.dp``; ``session`` then required, it seeds the rotation to
    undo) every client has weight 1 and appends 0.0, and the step is the noisy mean
    w + (sum_U clip(Delta_u) + noise) / |U| (DP-FedAvg, McMahan et al. 2018): a noisy
    sum_U w_u would be a poor denominator, and |U| is public.
    """
    total = np.asarray(proto.decode(result.ring_sum, np.zeros(1), session), dtype=np.float64)
    if len(total) != len(previous.weights) + 1:
        raise AbortError(
            "wrong-dimension", f"a sum of {len(total)} for a model of {len(previous.weights)}"
        )
    weight = float(len(result.survivors)) if uses_dp(proto) else float(total[-1])
    if not weight > 0:
        raise AbortError("no-weight", f"the survivors' total weight is {weight}")
    weights = (previous.weights.astype(np.float64) + total[:-1] / weight).astype(np.float32)
    return ModelBlob(round, weights, tuple(sorted(result.survivors)), weight, aggregate)


class Aggregator(KeeperAgent):
    """The task's aggregator account, following ``task_id``.

    Parameters
    ----------
    keys:
        HE tasks: the public key material (the constructor refuses a secret key).
    """

    def __init__(
        self,
        contracts: Contracts,
        store: Store,
        task_id: int,
        account: LocalAccount,
        metrics: Metrics,
        *,
        keys: KeyMaterial | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if keys is not None and keys.secret is not None:
            raise SecAggError("the aggregator must not hold the secret key")
        self.contracts, self.store, self.task_id = contracts, store, task_id
        self.account = account
        self.metrics = metrics
        self.keys = keys
        self.clock = clock
        self.ledger = TaskLedger(contracts, task_id)
        self.decryptions: dict[int, str] = {}
        self._unmasks_checked: set[int] = set()  # rounds whose unmask blobs were all here
        self.failed: dict[int, AbortError] = {}

    def accept_decryption(self, round: int, cid: str) -> None:
        """The key holder's DecryptedSum CID for ``round`` (HE tasks)."""
        self.decryptions[round] = cid

    def model_for(
        self,
        proto: Protocol[Any],
        previous: ModelBlob,
        result: AggregateResult,
        round: int,
        aggregate: str | None,
        session: Session | None = None,
    ) -> ModelBlob:
        """The model to post: FedAvg's step (:func:`next_model`)."""
        return next_model(proto, previous, result, round, aggregate, session=session)

    def act(self) -> bool:
        """Fix the current stage's data availability, or finalize the round when its Finalize
        phase is open; True when it did something."""
        self.ledger.sync()
        r = self.ledger.round
        if self._declare(r):
            return True
        if self.ledger.phase is not Phase.FINALIZE or r in self.failed:
            return False
        if self.ledger.postings(r).outcome is not None:
            return False
        proto = self.ledger.protocol(self.store)
        decrypted_cid = self.decryptions.get(r)
        if isinstance(proto, HEProtocol) and decrypted_cid is None:
            return False  # waiting for the key holder
        t0 = self.clock()
        try:
            record = self.ledger.record(self.store, r)
            decrypted = self.store.get(decrypted_cid) if decrypted_cid else None
            outcome = replay(proto, record, keys=self.keys, decrypted=decrypted)
            for u, exc in outcome.rejected.items():
                self.metrics.note(
                    r, f"aggregator rejected client {u}'s blob: {type(exc).__name__}: {exc}"
                )
            assert outcome.result is not None
            _, previous_cid, _ = self.ledger.latest_model(r)
            previous = ModelBlob.decode(self.store.get(previous_cid))
            model = self.model_for(
                proto, previous, outcome.result, r, decrypted_cid, record.session
            )
        except AbortError as exc:
            self.failed[r] = exc
            self.metrics.note(r, f"aggregator aborted: {exc}")
            return True
        blob = model.encode()
        cid = self.store.put(blob)
        try:
            receipt = self.contracts.finalize_round(
                self.account, self.task_id, to_bytes(cid), model.sha256()
            )
        except ChainError as exc:
            self.metrics.note(r, f"finalizeRound failed: {exc}")
            return True
        self.metrics.record(
            r, AGGREGATOR, "finalize", 0,
            seconds=self.clock() - t0, bytes=len(blob), gas=int(receipt["gasUsed"]),
            tx=bytes(receipt["transactionHash"]).hex(), cid=cid,
        )  # fmt: skip
        return True

    def _declare(self, r: int) -> bool:
        """Fetches the stage's blobs and declares the ones it could not get; True when it
        declared. A blob the store cannot serve for a reason of its content (absent, not a
        file, too deep, bytes that do not match its CID) counts as unavailable; its own store
        being down (:class:`StoreUnavailableError`) makes the aggregator wait instead. Unmask
        blobs (stage 3, in Finalize) are declared only when some are missing."""
        phase, postings = self.ledger.phase, self.ledger.postings(r)
        masking = isinstance(self.ledger.protocol(self.store), SecAggPlus)  # ShareKeys, Unmask
        stage3 = phase is Phase.FINALIZE and masking and postings.inputs_fixed
        if phase is Phase.COMMIT and masking and not postings.shares_fixed:
            cids = {a: cid for a, (_, cid) in postings.shares.items()}
        elif phase is (Phase.UNMASK if masking else Phase.FINALIZE) and not postings.inputs_fixed:
            cids = dict(postings.reveals)
        elif stage3 and not postings.unmasks_fixed and r not in self._unmasks_checked:
            cids = dict(postings.unmasks)
        else:
            return False
        t0 = self.clock()
        withheld = []
        for address, cid in cids.items():
            try:
                self.store.put(self.ledger.blob(self.store, r, cid))  # served by us too
            except StoreUnavailableError:
                raise  # our own store is down: wait, do not call the blob unavailable
            except StoreError as exc:
                withheld.append(self.ledger.id_of(address))
                self.metrics.note(r, f"client {withheld[-1]}'s blob {cid} is unavailable: {exc}")
        if stage3 and not withheld:
            self._unmasks_checked.add(r)  # every unmask blob is here: nothing to declare
            return False
        if phase is Phase.UNMASK and masking:  # participants fetch no input: name bad ones too
            if r in self.failed:
                return False
            malformed = self._malformed_inputs(r, set(withheld))
            if malformed is None:
                return False  # the round cannot be unmasked: fix nothing, so nobody unmasks
            withheld += malformed
        try:
            receipt = self.contracts.declare_unavailable(
                self.account, self.task_id, sorted(withheld)
            )
        except ChainError as exc:
            self.metrics.note(r, f"declareUnavailable failed: {exc}")
            return False
        self.metrics.record(
            r, AGGREGATOR, f"declare ({phase.name.lower()})", 0,
            seconds=self.clock() - t0, gas=int(receipt["gasUsed"]),
            tx=bytes(receipt["transactionHash"]).hex(),
        )  # fmt: skip
        return True

    def _malformed_inputs(self, r: int, unavailable: set[int]) -> list[int] | None:
        """Members of U whose input was fetched but that the server machine rejects
        (:func:`~secagg.clients.agents.replay.rejected_inputs`), in id order; None when the
        round cannot be unmasked (too few inputs, or share boxes named bad that leave a
        needed secret with fewer than t holders). The inputs are then never fixed, nobody may
        post an unmask share, and the round fails without a complete unmask, so a dealer of
        bad boxes cannot make the honest aggregator forfeit its bond."""
        proto = self.ledger.protocol(self.store)
        assert isinstance(proto, SecAggPlus)
        postings = self.ledger.postings(r)
        fetched = {
            u: self.ledger.blob(self.store, r, postings.reveals[a])
            for a in postings.reveals
            if (u := self.ledger.id_of(a)) not in unavailable
        }
        try:
            base = self.ledger.record(self.store, r, outcome=False)
            record = replace(base, inputs=fetched, survivors=frozenset(fetched))
            rejected = rejected_inputs(proto, record)
        except StoreUnavailableError:
            raise  # our own store is down: wait, do not fix the inputs without checking them
        except StoreError as exc:
            self.metrics.note(r, f"a bundle is unavailable to the aggregator: {exc}")
            return None
        except AbortError as exc:
            if r not in self.failed:
                self.failed[r] = exc
                self.metrics.note(r, f"aggregator: the round cannot be unmasked: {exc}")
            return None
        for u, error in sorted(rejected.items()):
            self.metrics.note(
                r, f"client {u}'s input is malformed: {type(error).__name__}: {error}"
            )
        return sorted(rejected)


class KeyHolder:
    """The HE task's key holder: decrypts only sums it recomputed from public ciphertexts."""

    def __init__(
        self,
        contracts: Contracts,
        store: Store,
        task_id: int,
        keys: KeyMaterial,
        deliver: Callable[[int, str], None],
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.contracts, self.store, self.task_id = contracts, store, task_id
        self.keys = keys
        self.deliver = deliver
        self.metrics = metrics
        self.clock = clock
        self.ledger = TaskLedger(contracts, task_id)
        self._done: set[int] = set()

    def keep(self) -> bool:
        """The key holder holds no account on chain: it never advances phases."""
        return False

    def step(self) -> bool:
        """Decrypt the round's sum once its inputs are fixed; True when it did."""
        return self.act()

    def act(self) -> bool:
        """Decrypt the round's sum once its inputs are fixed; True when it did."""
        self.ledger.sync()
        r = self.ledger.round
        if self.ledger.phase is not Phase.FINALIZE or r in self._done:
            return False
        if not self.ledger.postings(r).inputs_fixed:
            return False  # the aggregator has not fixed which inputs were available
        self._done.add(r)
        proto = self.ledger.protocol(self.store)
        t0 = self.clock()
        try:
            record = self.ledger.record(self.store, r, shares=False)
            encrypted = replay(proto, record, keys=self.keys.public_only()).encrypted_sum
            holder = proto.key_holder(record.session, self.keys)
            assert encrypted is not None and holder is not None
            blob = wire.encode(holder.receive(encrypted))
        except AbortError as exc:
            self.metrics.note(r, f"key holder refused to decrypt: {exc}")
            return True
        cid = self.store.put(blob)
        self.metrics.record(r, KEY_HOLDER, "decrypt", 0, seconds=self.clock() - t0, bytes=len(blob))
        self.deliver(r, cid)
        return True

"""``secagg verify``: recompute a round's model from public data and compare with the chain.

Anyone with the chain and the store can check an aggregator: the round's postings (share
bundles, revealed inputs, unmasking shares) are public, the replay is deterministic, and the
model blob is canonical, so the recomputed model must hash to the sha256 in ModelRegistry.

Masking and ``plain`` tasks are checked end to end. HE tasks are checked up to decryption:
the ciphertexts of U are added again and the model must follow from the decrypted sum the
key holder published, but whether that sum is the true decryption cannot be checked without
the secret key (there is no proof of decryption here).
"""

from __future__ import annotations

import hashlib

from secagg.chain import Contracts
from secagg.errors import AbortError
from secagg.protocol import KeyMaterial
from secagg.protocols.he import HEProtocol
from secagg.store import Store
from secagg.store.errors import StoreError

from ..errors import ModelFormatError, VerificationError
from .aggregator import next_model
from .ledger import TaskLedger
from .models import ModelBlob
from .replay import replay

__all__ = ["verify_round"]


def verify_round(
    contracts: Contracts,
    store: Store,
    task_id: int,
    round: int,
    *,
    ledger: TaskLedger | None = None,
) -> ModelBlob:
    """The model of ``round`` after checking it against the round's public data.

    Raises
    ------
    VerificationError
        No model was posted, its blob does not match the on-chain sha256, or it is not the
        FedAvg step that the round's public data gives.
    """
    if ledger is None:
        ledger = TaskLedger(contracts, task_id)
    ledger.sync()

    def fail(reason: str) -> VerificationError:
        return VerificationError(task_id, round, reason)

    if round not in ledger.models or round == 0:
        raise fail("no model was posted for this round")
    cid, digest = ledger.models[round]
    try:
        blob = store.get(cid)
        if hashlib.sha256(blob).digest() != digest:
            raise fail("the model blob does not match the sha256 on chain")
        posted = ModelBlob.decode(blob)
        spec = ledger.spec(store)
        proto = ledger.protocol(store)
        record = ledger.record(store, round)
        keys = decrypted = None
        if isinstance(proto, HEProtocol):
            if spec.he_context is None or posted.aggregate is None:
                raise fail("an HE round needs the public context and the decrypted sum's CID")
            keys = KeyMaterial(store.get(spec.he_context))
            decrypted = store.get(posted.aggregate)
        outcome = replay(proto, record, keys=keys, decrypted=decrypted)
        assert outcome.result is not None
        _, previous_cid, _ = ledger.latest_model(round)
        previous = ModelBlob.decode(store.get(previous_cid))
        expected = next_model(
            proto, previous, outcome.result, round, posted.aggregate, session=record.session
        )
    except (AbortError, StoreError, ModelFormatError) as exc:
        raise fail(f"the round's public data does not give a model: {exc}") from exc
    if expected.sha256() != digest:
        raise fail(
            "the posted model is not the FedAvg step from the round's public data "
            f"(survivors posted {list(posted.survivors)}, recomputed {list(expected.survivors)})"
        )
    return expected

"""Seed mode (tests and examples only): reproducible randomness, fresh in every round.

With ``SecAggMod(seed=s)`` a node's secrets in round r of session S (its keys c_u and s_u,
b_u, the quantization dither, Paillier's r) come from

    SeededRandom(round_seed(s, S, r)).fork("client/<id>"),
    round_seed(s, S, r) = HKDF(SeededRandom(s).fork("flower-node") 32 bytes,
                               label "secagg/v1/flower-round-seed", session S, round r),

so no two rounds share a secret, while the same (s, S, r) replays bit for bit. Without a seed
each round's seed is 32 bytes of OS entropy instead. :func:`simulate_seed` gives
``secagg.simulate`` the same draws, so a seeded Flower round can be checked against it.
"""

from __future__ import annotations

from secagg.primitives.kdf import Label, derive_key
from secagg.randomness import SeededRandom

__all__ = ["FlowerRoundRandom", "round_seed", "simulate_seed"]

CLIENT_PREFIX = "client/"


def round_seed(seed: int, session: bytes, round: int) -> bytes:
    """The 32-byte seed of a seeded node's randomness in ``round`` of ``session``."""
    ikm = SeededRandom(seed).fork("flower-node").random_bytes(32)
    return derive_key(ikm, Label.FLOWER_ROUND_SEED, session=session, round=round)


class FlowerRoundRandom:
    """The randomness of one seeded Flower round, as ``secagg.simulate`` draws it.

    ``fork("client/<id>")`` is what :class:`~secagg.clients.flower.SecAggMod` gives client
    <id> in this round; every other fork (``"session"``, ``"server"``, ``"task-keys"``, ...)
    is ``SeededRandom(seed)``'s, as :class:`~secagg.clients.flower.SecureAggregation` and the
    key holder use it.
    """

    def __init__(self, seed: int, round: int) -> None:
        self._base = SeededRandom(seed)
        session = SeededRandom(seed).fork("session").random_bytes(32)
        self._round = SeededRandom(round_seed(seed, session, round))

    def random_bytes(self, n: int) -> bytes:
        return self._base.random_bytes(n)

    def fork(self, label: str) -> SeededRandom:
        source = self._round if label.startswith(CLIENT_PREFIX) else self._base
        return source.fork(label)

    def __repr__(self) -> str:
        return "FlowerRoundRandom(<seed hidden>)"


def simulate_seed(seed: int, round: int) -> FlowerRoundRandom:
    """What to pass as ``secagg.simulate(..., seed=..., round=round)`` to reproduce round
    ``round`` of a Flower run whose nodes and ServerApp were both given ``seed``."""
    return FlowerRoundRandom(seed, round)

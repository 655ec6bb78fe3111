"""The ``ckks`` protocol object and its config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from secagg.dp import DistributedDP
from secagg.errors import ConfigError
from secagg.protocol import BaseConfig, KeyMaterial, Session
from secagg.randomness import RandomSource
from secagg.ring import is_torch

from ..he.protocol import HEProtocol
from ..he.roles import KeyMode, check_roles
from .presets import DEFAULT_PRESET, PRESETS, CkksPreset
from .scheme import CkksScheme, keygen

__all__ = ["CKKS", "CKKSConfig"]

NAME = "ckks"


@dataclass(frozen=True, slots=True)
class CKKSConfig(BaseConfig):
    """:class:`~secagg.protocol.BaseConfig` plus the CKKS parameters and the roles.

    CKKS encodes real numbers, so there is no ``quant_bits`` or ``ring_bits``: entries are
    clipped to [-clip, clip], weighted, and encrypted as they are.

    Parameters
    ----------
    preset:
        A name in :data:`~secagg.protocols.ckks.PRESETS`: ``"n8192"`` (default, 256-bit),
        ``"n4096"`` (128-bit, smaller ciphertexts), ``"tenseal-default"`` (TenSEAL's
        tutorial parameters, 20x float32).
    key_mode:
        ``"key-holder"`` (default) or ``"shared"`` (see :class:`~secagg.protocols.he.KeyMode`).
    min_survivors:
        The round aborts with fewer inputs; a decryptor refuses a sum of fewer. Default
        max(2, ceil(n / 2)) (:func:`~secagg.protocols.he.default_min_survivors`); 1 is
        refused unless ``allow_single_input``.
    allow_single_input:
        Allow ``min_survivors=1`` (and ``num_clients=1``): a decryption may then reveal one
        participant's input. Off by default; for tests and measurements.
    num_decryptors:
        Shared-key mode: how many surviving participants are asked to decrypt (their answers
        must agree). Must be 1 with a key holder.
    dp:
        Distributed DP with ``mechanism=Mechanism.CONTINUOUS_GAUSSIAN`` only: clients clip
        to L2 norm ``dp.l2_clip`` (instead of ``clip`` per entry) and add **floating-point**
        Gaussian shares (:mod:`secagg.dp.continuous`: not exact, unlike the ring protocols'
        discrete Gaussian). ``min_survivors`` must be at least ``dp.min_contributors``.
    """

    preset: str = DEFAULT_PRESET
    key_mode: KeyMode | str = KeyMode.KEY_HOLDER
    min_survivors: int | None = None
    allow_single_input: bool = False
    num_decryptors: int = 1
    dp: DistributedDP | None = None

    def __post_init__(self) -> None:
        BaseConfig.__post_init__(self)
        if self.preset not in PRESETS:
            raise ConfigError(
                f"unknown CKKS preset {self.preset!r}; choose one of {sorted(PRESETS)}",
                parameter="preset",
            )
        check_roles(self)
        if self.dp is not None:
            if not isinstance(self.dp, DistributedDP):
                raise ConfigError(f"dp must be a DistributedDP, got {self.dp!r}", parameter="dp")
            assert isinstance(self.min_survivors, int)  # resolved by check_roles
            self.dp.check_protocol(NAME, self.num_clients, self.min_survivors, None)
        limit = self.parameters.max_abs_sum
        if self.num_clients * self.clip > limit:
            raise ConfigError(
                f"num_clients * clip = {self.num_clients * self.clip:g} exceeds what preset "
                f"{self.preset!r} decrypts safely ({limit:g}); lower clip or num_clients",
                parameter="clip",
            )

    @property
    def parameters(self) -> CkksPreset:
        return PRESETS[self.preset]


class CKKS(HEProtocol):
    """Sum of real vectors under CKKS (TenSEAL); the aggregator never holds a secret key.

    ``protocols.get("ckks", num_clients=n)``; ``proto.keygen()`` makes the task's keys.
    """

    name: ClassVar[str] = NAME
    Config = CKKSConfig

    @property
    def preset(self) -> CkksPreset:
        preset: CkksPreset = self.config.parameters
        return preset

    def keygen(self, rng: RandomSource | int | None = None) -> KeyMaterial:
        """Fresh keys. SEAL draws the randomness itself (OS-seeded); ``rng`` is unused."""
        return keygen(self.preset)

    @property
    def dp(self) -> DistributedDP | None:
        """The (continuous) DP configuration, or None."""
        dp: DistributedDP | None = self.config.dp
        return dp

    def scheme(self, keys: KeyMaterial, session: Session | None = None) -> CkksScheme:
        return CkksScheme(self.preset, keys, self.config.clip, self.num_clients, self.config.dp)

    def error_bound(self, num_inputs: int) -> float:
        """Per-entry bound on |decrypted sum - exact sum| for a sum of ``num_inputs``."""
        return self.preset.error_bound(num_inputs)

    def decode(self, raw_sum: npt.NDArray[Any], like: Any, session: Session | None = None) -> Any:
        # raw_sum may be a read-only view of the received DecryptedSum bytes: hand the caller
        # its own writable copy
        if is_torch(like):
            import torch

            return torch.tensor(raw_sum, device=like.device)
        return np.array(raw_sum, copy=True)

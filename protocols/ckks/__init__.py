"""``ckks``: the sum of real vectors under CKKS homomorphic encryption (TenSEAL).

Participants encrypt their clipped, weighted update under the task's public context; the
aggregator adds ciphertexts with the public context only; the key holder (or, with
``key_mode="shared"``, participants) decrypts the sum. See ``SPEC.md`` for the roles, the
threat model, the presets and the error bound.
"""

from .presets import DEFAULT_PRESET, PRESETS, CkksPreset
from .protocol import CKKS, CKKSConfig
from .scheme import CkksScheme

__all__ = ["CKKS", "DEFAULT_PRESET", "PRESETS", "CKKSConfig", "CkksPreset", "CkksScheme"]

"""What the homomorphic-encryption protocols (``ckks``, ``paillier``) share: the phases and
wire messages, the participant/aggregator/key-holder machines, the key modes, and the
:class:`Scheme` interface a scheme implements."""

from .machines import HEClient, HEKeyHolder, HEServer
from .messages import DecryptedSum, EncryptedInput, EncryptedSum, Phase
from .protocol import HEProtocol
from .roles import KeyMode, default_min_survivors
from .scheme import Accumulator, Scheme

__all__ = [
    "Accumulator",
    "DecryptedSum",
    "EncryptedInput",
    "EncryptedSum",
    "HEClient",
    "HEKeyHolder",
    "HEProtocol",
    "HEServer",
    "KeyMode",
    "Phase",
    "Scheme",
    "default_min_survivors",
]

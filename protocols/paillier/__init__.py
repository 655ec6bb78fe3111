"""``paillier``: the sum of quantized vectors under Paillier encryption (phe + gmpy2).

Entries are quantized as in every masking protocol, offset to be non-negative and packed
many to a plaintext (``q + ceil(log2 n) + guard`` bits a slot), so a 2048-bit ciphertext
carries about 80 entries. Roles and key modes as for ``ckks``; see ``SPEC.md``.
"""

from .protocol import MIN_KEY_BITS, Paillier, PaillierConfig
from .scheme import PaillierScheme

__all__ = ["MIN_KEY_BITS", "Paillier", "PaillierConfig", "PaillierScheme"]

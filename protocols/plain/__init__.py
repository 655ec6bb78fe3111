"""``plain``: the insecure sum, the baseline every overhead is measured against.

Each client quantizes its update exactly as the secure protocols do and sends it in the clear;
the server adds the vectors in Z_{2^b}. Same config, same wire format, same simulator, so the
difference between ``plain`` and any other protocol is the cost of the security alone.

Nothing is protected: the server sees every client's (quantized) update.
"""

from .machines import PlainClient, PlainServer
from .messages import Input, Phase
from .protocol import Plain, PlainConfig

__all__ = ["Input", "Phase", "Plain", "PlainClient", "PlainConfig", "PlainServer"]

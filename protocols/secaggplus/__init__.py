"""``secaggplus``: SecAgg+ (Bell et al., CCS 2020), pairwise masking on a sparse graph.

See ``SPEC.md`` in this folder for the rounds, the notation mapped to our names, the threat
model and what is and is not protected. ``secagg`` is this protocol on the complete graph.
"""

from secagg.protocols.secaggplus.client import SecAggPlusClient
from secagg.protocols.secaggplus.config import SecAggPlusConfig
from secagg.protocols.secaggplus.messages import Phase
from secagg.protocols.secaggplus.protocol import SecAggPlus
from secagg.protocols.secaggplus.server import SecAggPlusServer

__all__ = ["Phase", "SecAggPlus", "SecAggPlusClient", "SecAggPlusConfig", "SecAggPlusServer"]

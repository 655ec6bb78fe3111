"""``secaggplus``: SecAgg+ (Bell et al., CCS 2020), pairwise masking on a sparse graph.

See ``SPEC.md`` in this folder for the rounds, the notation mapped to our names, the threat
model and what is and is not protected. ``secagg`` is this protocol on the complete graph.
"""

from .client import SecAggPlusClient
from .config import SecAggPlusConfig
from .messages import Phase
from .protocol import SecAggPlus
from .server import SecAggPlusServer

__all__ = ["Phase", "SecAggPlus", "SecAggPlusClient", "SecAggPlusConfig", "SecAggPlusServer"]

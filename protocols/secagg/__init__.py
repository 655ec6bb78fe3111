"""``secagg``: SecAgg (Bonawitz et al., CCS 2017), pairwise masking on the complete graph.

It is :mod:`secagg.protocols.secaggplus` with k = n - 1: the same machines and wire format
(the wire header names ``secaggplus``). See ``SPEC.md`` in this folder.
"""

from .protocol import SecAgg, SecAggConfig

__all__ = ["SecAgg", "SecAggConfig"]

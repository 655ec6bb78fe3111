"""Distributed differential privacy inside the secure sum.

Clients clip, rotate, round and add integer noise shares before they mask or encrypt; the
aggregator decodes a sum that already carries the noise, so no party ever sees an un-noised
sum (Kairouz, Liu, Steinke, ICML 2021). Configure it on any ring protocol::

    from secagg import protocols
    from secagg.dp import DistributedDP
    dp = DistributedDP(l2_clip=1.0, noise_multiplier=1.0, min_contributors=8, delta=1e-5)
    proto = protocols.get("secaggplus", num_clients=10, min_survivors=8, dp=dp)

Modules: :mod:`~secagg.dp.config` (parameters), :mod:`~secagg.dp.sampling` (exact integer
samplers), :mod:`~secagg.dp.rotation`, :mod:`~secagg.dp.encoding` (one client's encoding and
the decoding of a sum), :mod:`~secagg.dp.accounting` (epsilon per round, ``dp-accounting``).
"""

from secagg.dp.config import DEFAULT_BETA, DistributedDP, DPParameters, Mechanism

__all__ = ["DEFAULT_BETA", "DPParameters", "DistributedDP", "Mechanism"]

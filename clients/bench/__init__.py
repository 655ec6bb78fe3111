"""Benchmarks driven from Python: the protocol grid (:mod:`.grid`, ``secagg bench``) and its
report, the DP comparison (:mod:`.dp`, ``make bench-dp``) and its report, and Flower's own
SecAgg+ compute as a reference (:mod:`.flower_reference`)."""

"""``secagg demo``: every party in one process, on an embedded (or started) chain and store
(:mod:`.run`), and its tables and plots (:mod:`.report`)."""

from .run import Demo, DemoConfig, DemoResult, Fault, RoundReport, open_chain, open_store

__all__ = ["Demo", "DemoConfig", "DemoResult", "Fault", "RoundReport", "open_chain", "open_store"]

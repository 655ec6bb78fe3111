"""A deployable Flower App: secure FedAvg on digits, each round one secure aggregation.

- :mod:`.client_app`: ``app``, a ``ClientApp`` with :class:`~secagg.clients.flower.SecAggMod`.
- :mod:`.server_app`: ``app``, a ``ServerApp`` driving
  :class:`~secagg.clients.flower.SecureAggregation` with the run config of ``pyproject.toml``.
- :mod:`.task`: the learning task (imports torch only when it trains or evaluates).

Deploy it with ``flwr run examples/flower <connection>`` (see ``examples/flower/README.md``);
``examples/flower/run.py`` runs the same apps on Flower's simulation engine.
"""

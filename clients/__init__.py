"""Agents and the command line, installed as ``secagg.clients``.

=================  ===========================================================================
``cli``            the ``secagg`` command; ``commands``: the role subcommands; ``devnet``
``agents/``        participant, aggregator, keeper, ledger, replay, verify, task, models, ...
``learning/``      trainer, datasets, the training entry point
``demo/``          ``secagg demo`` and its report
``bench/``         the grid, the DP comparison, Flower's reference compute
``flower/``        the Flower adapter (``SecAggMod``, ``SecureAggregation``)
=================  ===========================================================================

The modules that lived directly in ``secagg.clients`` before it was grouped by purpose still
import under their old names (``secagg.clients.trainer`` is ``secagg.clients.learning.trainer``,
the same module object), with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

_AGENTS = (
    "participant",
    "aggregator",
    "keeper",
    "ledger",
    "replay",
    "verify",
    "task",
    "models",
    "metrics",
    "journal",
    "keystore",
    "service",
    "owner",
)
MOVED = {
    **{name: f"agents.{name}" for name in _AGENTS},
    **{name: f"learning.{name}" for name in ("trainer", "datasets", "training")},
    "report": "demo.report",
    "bench_report": "bench.report",
    "dp_bench": "bench.dp",
    "dp_report": "bench.dp_report",
    "flower_reference": "bench.flower_reference",
}
"""Old module name -> its place now (relative to ``secagg.clients``)."""


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``secagg.clients.<old>`` as the module it moved to."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        prefix, _, name = fullname.rpartition(".")
        if prefix != __name__ or name not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = f"{__name__}.{MOVED[spec.name.rpartition('.')[2]]}"
        warnings.warn(f"{spec.name} moved to {new}", DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        self._specs[new] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module it moved to is imported already. The import system
        set its ``__spec__`` to the alias's: put its own back (relative imports and
        ``importlib.reload`` read it)."""
        module.__spec__ = self._specs.pop(module.__name__, module.__spec__)


sys.meta_path.append(_MovedModules())

"""Shared test settings: hypothesis profiles, the ``cuda`` marker (skipped without a device),
and the embedded-chain world of the contract tests (``world``: reverted after each test)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from .chain_world import World

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# `make nightly` selects this one (HYPOTHESIS_PROFILE=nightly); tests that ask for more than the
# CI default scale with it (tests/test_masking.py).
settings.register_profile(
    "nightly", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


requires_cuda = pytest.mark.cuda
"""Alias of the ``cuda`` marker (pyproject.toml): ``pytest -m cuda`` selects the tests that
need a CUDA device, and they are skipped where there is none (below)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every test marked ``cuda`` (a function or one of its parameters) without a device."""
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device on this machine")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def fresh() -> World:
    """Deployed contracts and funded accounts on an embedded chain, once per module."""
    from secagg.chain import Chain

    return World.build(Chain.embedded())


@pytest.fixture
def world(fresh: World) -> Iterator[World]:
    """``fresh`` as it was before the test: every test's transactions are reverted after it."""
    snapshot = fresh.chain.snapshot()
    fresh.reveals.clear()
    yield fresh
    fresh.chain.revert(snapshot)

"""Injected randomness: deterministic when seeded, independent when forked."""

from __future__ import annotations

import pytest

from secagg import ConfigError
from secagg.randomness import SeededRandom, SystemRandom, as_random_source


def test_seeded_is_deterministic_and_seed_sensitive() -> None:
    assert SeededRandom(1).random_bytes(64) == SeededRandom(1).random_bytes(64)
    assert SeededRandom(1).random_bytes(64) != SeededRandom(2).random_bytes(64)


def test_stream_continues_and_forks_are_independent_of_draw_order() -> None:
    a = SeededRandom(7)
    first, second = a.random_bytes(16), a.random_bytes(16)
    assert first != second
    assert first + second == SeededRandom(7).random_bytes(32)
    b = SeededRandom(7)
    b.random_bytes(1000)  # drawing from the parent does not change a fork
    assert a.fork("x").random_bytes(16) == b.fork("x").random_bytes(16)
    assert a.fork("x").random_bytes(16) != a.fork("y").random_bytes(16)


def test_seed_is_hidden_and_arguments_checked() -> None:
    assert "1234" not in repr(SeededRandom(1234))
    with pytest.raises(ConfigError):
        SeededRandom(-1)
    with pytest.raises(ConfigError):
        as_random_source("seed")  # type: ignore[arg-type]
    assert isinstance(as_random_source(None), SystemRandom)
    assert len(SystemRandom().random_bytes(32)) == 32

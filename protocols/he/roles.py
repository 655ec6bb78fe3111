"""Who decrypts in an HE task: the key modes, and the config fields every HE protocol shares."""

from __future__ import annotations

import enum
from typing import Any

from secagg.errors import ConfigError
from secagg.protocol import check_min_survivors

__all__ = ["KeyMode", "check_roles", "default_min_survivors"]


class KeyMode(enum.Enum):
    """Who holds the secret key.

    KEY_HOLDER:
        A key holder separate from the aggregator (e.g. the task owner) generates the keys,
        publishes the public context and decrypts only the aggregate it is handed, once per
        round. Participants hold the public key only. Confidentiality needs the key holder
        and the aggregator not to collude, and the key holder never to see an individual
        ciphertext.
    SHARED:
        All participants hold the secret key and the aggregator has none (as NVIDIA FLARE
        does): up to ``num_decryptors`` surviving participants decrypt the aggregate.
        Confidentiality holds only against an aggregator that colludes with no participant,
        and only while ciphertexts travel to the aggregator over private channels.
    """

    KEY_HOLDER = "key-holder"
    SHARED = "shared"


def default_min_survivors(num_clients: int) -> int:
    """The ``min_survivors`` an HE config gets when none is given: max(2, ceil(n / 2)).

    At least half of the round, as SecAgg's default threshold on the complete graph
    (t > (n - 1 + floor(gamma n)) / 2), and never 1: a decrypted "sum" of one input is that
    input. For n = 1 this exceeds n, so such a config needs ``allow_single_input=True``.
    """
    return max(2, -(-num_clients // 2))


def _check_min_survivors(config: Any) -> int:
    """The validated ``min_survivors`` of ``config`` (its default when None)."""
    allow = config.allow_single_input
    if not isinstance(allow, bool):
        raise ConfigError(
            f"allow_single_input must be a bool, got {allow!r}", parameter="allow_single_input"
        )
    n, m = config.num_clients, config.min_survivors
    if m is None:
        m = min(n, default_min_survivors(n)) if allow else default_min_survivors(n)
        if m > n:
            raise ConfigError(
                f"num_clients={n}: every decryption would reveal a single input; use "
                "num_clients >= 2, or pass allow_single_input=True if that is intended",
                parameter="num_clients",
            )
    check_min_survivors(n, m)
    if m == 1 and not allow:
        raise ConfigError(
            "min_survivors=1 lets the key holder decrypt a single participant's input; use "
            f"min_survivors >= 2 (default {min(n, default_min_survivors(n))}), or pass "
            "allow_single_input=True if that is intended",
            parameter="min_survivors",
        )
    return int(m)


def check_roles(config: Any) -> None:
    """Validate and normalize ``key_mode``, ``min_survivors``, ``allow_single_input`` and
    ``num_decryptors`` of a frozen HE config (``key_mode`` may be given as its string value;
    ``min_survivors=None`` becomes :func:`default_min_survivors`)."""
    try:
        mode = KeyMode(config.key_mode)
    except ValueError:
        raise ConfigError(
            f"key_mode must be one of {[m.value for m in KeyMode]}, got {config.key_mode!r}",
            parameter="key_mode",
        ) from None
    object.__setattr__(config, "key_mode", mode)
    object.__setattr__(config, "min_survivors", _check_min_survivors(config))
    k = config.num_decryptors
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(
            f"num_decryptors must be an int >= 1, got {k!r}", parameter="num_decryptors"
        )
    if mode is KeyMode.KEY_HOLDER and k != 1:
        raise ConfigError(
            "num_decryptors applies to key_mode='shared'; with a key holder it must be 1",
            parameter="num_decryptors",
        )

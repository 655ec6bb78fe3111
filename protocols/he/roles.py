"""Who decrypts in an HE task: the key modes, and the config fields every HE protocol shares."""

from __future__ import annotations

import enum
from typing import Any

from secagg.errors import ConfigError
from secagg.protocol import check_min_survivors

__all__ = ["KeyMode", "check_roles"]


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


def check_roles(config: Any) -> None:
    """Validate and normalize ``key_mode``, ``min_survivors`` and ``num_decryptors`` of a
    frozen HE config (``key_mode`` may be given as its string value)."""
    try:
        mode = KeyMode(config.key_mode)
    except ValueError:
        raise ConfigError(
            f"key_mode must be one of {[m.value for m in KeyMode]}, got {config.key_mode!r}",
            parameter="key_mode",
        ) from None
    object.__setattr__(config, "key_mode", mode)
    check_min_survivors(config.num_clients, config.min_survivors)
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

"""protocols.get: names, parameters, and one named ConfigError per bad parameter."""

from __future__ import annotations

import pytest

from secagg import ConfigError, protocols
from secagg.protocols.plain import Phase


def test_plain_is_registered_and_configured() -> None:
    assert "plain" in protocols.names()
    proto = protocols.get("plain", num_clients=10, clip=2.0)
    assert proto.name == "plain" and proto.num_clients == 10
    assert proto.phases == (Phase.INPUT,)
    assert proto.config.clip == 2.0 and proto.config.ring_bits == 32


@pytest.mark.parametrize(
    ("name", "kwargs", "parameter"),
    [
        ("nope", {"num_clients": 3}, "name"),
        ("plain", {}, "num_clients"),
        ("plain", {"num_clients": 3, "clipping_range": 1.0}, "clipping_range"),
        ("plain", {"num_clients": 3, "clip": 0}, "clip"),
        ("plain", {"num_clients": 3, "ring_bits": 48}, "ring_bits"),
        ("plain", {"num_clients": 3, "quant_bits": 0}, "quant_bits"),
        ("plain", {"num_clients": 3, "min_survivors": 4}, "min_survivors"),
        ("plain", {"num_clients": 3, "min_survivors": 0}, "min_survivors"),
        ("plain", {"num_clients": 10**6, "quant_bits": 20}, "quant_bits"),
    ],
)
def test_bad_configuration_names_its_parameter(
    name: str, kwargs: dict[str, object], parameter: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        protocols.get(name, **kwargs)
    assert exc.value.parameter == parameter
    assert parameter in str(exc.value) or parameter == "name"

"""CKKS and Paillier sums: correctness, error bounds, roles and keys, sizes, configs."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
import tenseal as ts
import tenseal.sealapi as sealapi
import torch

from secagg import protocols, simulate
from secagg.errors import AbortError, ConfigError, MissingSecretKeyError, SecretPicklingError
from secagg.protocol import KEY_HOLDER, KeyMaterial, Session
from secagg.protocols.ckks import PRESETS
from secagg.protocols.he import KeyMode, default_min_survivors

HE = ["ckks", "paillier"]


def _inputs(n: int, d: int, seed: int = 0, scale: float = 1.0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i: rng.uniform(-scale, scale, d) for i in range(n)}


def _exact(inputs: dict[int, np.ndarray], ids: frozenset[int], clip: float = 8.0) -> np.ndarray:
    return sum(np.clip(inputs[i], -clip, clip) for i in sorted(ids))  # type: ignore[return-value]


# --- correctness -----------------------------------------------------------------------------
@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("n", [1, 10, 100])
def test_ckks_sum_is_within_the_stated_error_bound(preset: str, n: int) -> None:
    proto = protocols.get("ckks", num_clients=n, preset=preset, allow_single_input=n == 1)
    d = PRESETS[preset].slots + 123  # two chunks, the second one partial
    inputs = _inputs(n, d, seed=n, scale=8.0)
    result = simulate(proto, inputs, seed=n)
    assert result.survivors == frozenset(range(n))
    error = np.abs(result.sum - _exact(inputs, result.survivors)).max()
    assert error <= proto.error_bound(n)
    # the bound is loose, the aim is not: relative error <= 1e-4 on the sum
    assert error / np.abs(_exact(inputs, result.survivors)).max() <= 1e-4


@pytest.mark.parametrize("mode", ["key-holder", "shared"])
@pytest.mark.parametrize("n,d,drop", [(1, 5, ()), (5, 200, (2,)), (12, 333, (0, 7, 11))])
def test_paillier_ring_sum_equals_plain_exactly(mode: str, n: int, d: int, drop: Any) -> None:
    proto = protocols.get(
        "paillier", num_clients=n, key_mode=mode, quant_bits=16, allow_single_input=n == 1
    )
    plain = protocols.get("plain", num_clients=n, quant_bits=16)
    inputs = _inputs(n, d, seed=d, scale=10.0)  # some entries get clipped
    weights = {i: (i + 1) / n for i in range(n)}
    result = simulate(
        proto, inputs, weights=weights, dropouts={u: proto.phases[0] for u in drop}, seed=3
    )
    survivors = {i: inputs[i] for i in range(n) if i not in drop}
    reference = simulate(plain, survivors, weights={i: weights[i] for i in survivors}, seed=3)
    assert result.survivors == frozenset(survivors)
    np.testing.assert_array_equal(result.ring_sum, reference.ring_sum)
    expected = sum(weights[i] * np.clip(x, -8, 8) for i, x in survivors.items())
    bound = proto.quantizer.config.sum_error_bound(len(survivors))
    assert np.abs(result.sum - expected).max() <= bound


@pytest.mark.parametrize("name", HE)
def test_layers_and_weights_are_applied_before_encryption(name: str) -> None:
    proto = protocols.get(name, num_clients=3, key_mode="shared", num_decryptors=2)
    rng = np.random.default_rng(1)
    layers = {i: [rng.normal(size=(4, 5)), rng.normal(size=7)] for i in range(3)}
    weights = {0: 0.5, 1: 1.0, 2: 0.25}
    result = simulate(proto, layers, weights=weights, seed=0)
    for k in range(2):
        expected = sum(weights[i] * layers[i][k] for i in range(3))
        assert result.sum[k].shape == expected.shape
        np.testing.assert_allclose(result.sum[k], expected, atol=1e-4)


@pytest.mark.parametrize("name", HE)
def test_torch_updates_come_back_as_torch(name: str) -> None:
    proto = protocols.get(name, num_clients=2)
    inputs = {i: torch.linspace(-1, 1, 50, dtype=torch.float32) * (i + 1) for i in range(2)}
    result = simulate(proto, inputs, seed=0)
    assert isinstance(result.sum, torch.Tensor)
    torch.testing.assert_close(
        result.sum, torch.linspace(-3, 3, 50, dtype=torch.float32), atol=1e-4, rtol=0
    )


# --- dropouts and decryptors -----------------------------------------------------------------
@pytest.mark.parametrize("name", HE)
def test_dropouts_leave_the_sum_of_submitters(name: str) -> None:
    proto = protocols.get(name, num_clients=6, min_survivors=3)
    inputs = _inputs(6, 64)
    result = simulate(proto, inputs, dropouts={1: proto.phases[0], 4: proto.phases[0]}, seed=0)
    assert result.survivors == frozenset({0, 2, 3, 5})
    assert result.dropped == {1: "input", 4: "input"}
    np.testing.assert_allclose(result.sum, _exact(inputs, result.survivors), atol=1e-4)
    with pytest.raises(AbortError) as info:
        simulate(proto, inputs, dropouts={u: proto.phases[0] for u in range(4)}, seed=0)
    assert info.value.reason == "too-few-survivors"


@pytest.mark.parametrize("name", HE)
def test_shared_mode_survives_a_decryptor_dropout_when_two_are_asked(name: str) -> None:
    inputs = _inputs(4, 32)
    decrypt = protocols.get(name, num_clients=4).phases[1]
    everyone_leaves = {u: decrypt for u in range(4)}
    one = protocols.get(name, num_clients=4, key_mode="shared", num_decryptors=1)
    with pytest.raises(AbortError) as info:
        simulate(one, inputs, dropouts=everyone_leaves, seed=0)
    assert info.value.reason == "no-decryption"
    # with every client asked, one of them leaving after its input is harmless
    all4 = protocols.get(name, num_clients=4, key_mode="shared", num_decryptors=4)
    result = simulate(all4, inputs, dropouts={2: decrypt}, seed=0)
    assert result.survivors == frozenset(range(4))  # 2's input is in; it only did not decrypt
    np.testing.assert_allclose(result.sum, _exact(inputs, result.survivors), atol=1e-4)


def test_key_holder_mode_reports_its_own_traffic() -> None:
    proto = protocols.get("ckks", num_clients=3)
    result = simulate(proto, _inputs(3, 10), seed=0)
    holder = result.stats["key_holder"]["decrypt"]
    assert holder.messages_received == 1 and holder.messages_sent == 1
    assert result.stats["client"]["decrypt"].messages_sent == 0


# --- roles and keys --------------------------------------------------------------------------
@pytest.mark.parametrize("name", HE)
def test_the_aggregator_cannot_decrypt(name: str) -> None:
    proto = protocols.get(name, num_clients=2)
    keys = proto.keygen(0)
    session = Session(b"s" * 32, 40)
    client = proto.client(0, session, 1, keys=proto.participant_keys(keys))
    client.set_input(np.ones(40))
    ciphertext = client.start().chunks
    aggregator_view = proto.scheme(keys.public_only())
    assert not aggregator_view.can_decrypt
    with pytest.raises(MissingSecretKeyError):
        aggregator_view.decrypt(ciphertext, 40)
    assert len(proto.scheme(keys).decrypt(ciphertext, 40)) == 40  # the key holder can
    # and the factory refuses to give the aggregator the secret at all
    with pytest.raises(ConfigError) as info:
        proto.server(session, keys=keys)
    assert info.value.parameter == "keys"


def test_the_aggregators_tenseal_context_itself_cannot_decrypt() -> None:
    proto = protocols.get("ckks", num_clients=2)
    keys = proto.keygen()
    public = ts.context_from(keys.public)
    assert not public.is_private() and not public.has_galois_keys()
    vector = ts.ckks_vector(public, [1.0, 2.0])
    with pytest.raises(ValueError, match="secret"):
        vector.decrypt()


def test_participants_get_the_secret_only_in_shared_mode() -> None:
    holder_mode = protocols.get("paillier", num_clients=2)
    shared = protocols.get("paillier", num_clients=2, key_mode="shared")
    keys = holder_mode.keygen(0)
    assert holder_mode.participant_keys(keys).secret is None
    assert shared.participant_keys(keys).secret is keys.secret
    session = Session(b"s" * 32, 4)
    with pytest.raises(ConfigError):
        holder_mode.client(0, session, keys=keys)
    with pytest.raises(ConfigError):
        shared.client(0, session, keys=keys.public_only())
    with pytest.raises(ConfigError):
        holder_mode.key_holder(session, keys.public_only())
    assert shared.key_holder(session, keys) is None
    with pytest.raises(ConfigError):
        holder_mode.server(session)  # no keys at all


@pytest.mark.parametrize("name", HE)
def test_keys_of_another_task_are_refused(name: str) -> None:
    if name == "ckks":
        mine, other = (protocols.get(name, num_clients=2, preset=p) for p in ("n8192", "n4096"))
    else:
        mine, other = (protocols.get(name, num_clients=2, key_bits=b) for b in (2048, 3072))
    with pytest.raises(ConfigError):
        mine.scheme(other.keygen(0).public_only())
    with pytest.raises(ConfigError):
        mine.scheme(KeyMaterial(b"\x00" * 64))


def test_secret_key_material_is_hidden_and_never_pickled() -> None:
    proto = protocols.get("paillier", num_clients=2)
    keys = proto.keygen(0)
    assert keys.secret is not None
    assert keys.secret.reveal().hex()[:16] not in repr(keys)
    holder = proto.key_holder(Session(b"s" * 32, 4), keys)
    for secret in (keys.secret, holder):
        with pytest.raises(SecretPicklingError):
            pickle.dumps(secret)


def test_paillier_keys_are_reproducible_from_a_seed_and_big_enough() -> None:
    proto = protocols.get("paillier", num_clients=2)
    a, b = proto.keygen(5), proto.keygen(5)
    assert a.public == b.public and a.public != proto.keygen(6).public
    n = int.from_bytes(a.public, "big")
    assert n.bit_length() == 2048


# --- sizes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_ckks_sizes_match_the_preset(preset: str) -> None:
    params = PRESETS[preset]
    proto = protocols.get("ckks", num_clients=2, preset=preset)
    keys = proto.keygen()
    chunk = proto.scheme(keys.public_only()).encrypt(np.ones(params.slots), None)  # type: ignore[arg-type]
    assert len(chunk) == 1
    # SEAL compresses each coefficient towards its prime's bit size
    compressed = 2 * params.poly_modulus_degree * sum(params.coeff_mod_bit_sizes[:-1]) // 8
    assert compressed <= len(chunk[0]) <= 1.01 * params.ciphertext_bytes
    assert len(keys.public) < 1_000_000  # public key and parameters, no Galois keys


def test_ckks_aim_128_bit_at_most_10x_float32() -> None:
    fits = [p for p in PRESETS.values() if p.security_bits >= 128 and p.expansion <= 10]
    assert {p.name for p in fits} >= {"n8192", "n4096"}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_security_levels_match_seal(preset: str) -> None:
    params = PRESETS[preset]
    level = {
        128: sealapi.SEC_LEVEL_TYPE.TC128,
        192: sealapi.SEC_LEVEL_TYPE.TC192,
        256: sealapi.SEC_LEVEL_TYPE.TC256,
    }[params.security_bits]
    max_bits = sealapi.CoeffModulus.MaxBitCount(params.poly_modulus_degree, level)
    assert sum(params.coeff_mod_bit_sizes) <= max_bits


def test_paillier_packs_many_entries_per_ciphertext() -> None:
    proto = protocols.get("paillier", num_clients=10, min_survivors=2)  # 25 bits a slot:
    # q = 20, + ceil(log2 10) = 4, + 1 guard bit
    assert proto.config.slot_bits == 25 and proto.config.slots == 81
    result = simulate(proto, _inputs(2, 81 * 3), seed=0)
    per_client = result.stats["client"]["input"].bytes_sent / 2
    assert 3 * 512 < per_client < 3 * 512 + 200  # three 4096-bit ciphertexts and a header


def test_no_tenseal_warning_on_stdout_for_long_vectors(capfd: pytest.CaptureFixture[str]) -> None:
    proto = protocols.get("ckks", num_clients=2, preset="n4096")
    simulate(proto, _inputs(2, 3 * PRESETS["n4096"].slots + 1), seed=0)
    out, err = capfd.readouterr()
    assert "WARNING" not in out + err


# --- configs ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,kwargs,parameter",
    [
        ("ckks", {"preset": "n1024"}, "preset"),
        ("ckks", {"key_mode": "everyone"}, "key_mode"),
        ("ckks", {"num_decryptors": 2}, "num_decryptors"),
        ("ckks", {"min_survivors": 0}, "min_survivors"),
        ("ckks", {"num_clients": 40_000}, "clip"),
        ("ckks", {"quant_bits": 16}, "quant_bits"),
        ("paillier", {"key_bits": 1024}, "key_bits"),
        ("paillier", {"key_bits": 2050}, "key_bits"),
        ("paillier", {"guard_bits": -1}, "guard_bits"),
        ("paillier", {"num_clients": 2049, "quant_bits": 52, "ring_bits": 64}, "quant_bits"),
    ],
)
def test_bad_configs_name_the_parameter(name: str, kwargs: dict[str, Any], parameter: str) -> None:
    kwargs = {"num_clients": 10, **kwargs}
    with pytest.raises(ConfigError) as info:
        protocols.get(name, **kwargs)
    assert info.value.parameter == parameter


def test_key_mode_accepts_its_string_value() -> None:
    assert protocols.get("ckks", num_clients=2, key_mode="shared").key_mode is KeyMode.SHARED
    assert KEY_HOLDER not in range(2**31)


@pytest.mark.parametrize("name", HE)
def test_min_survivors_defaults_to_half_the_round_and_is_never_one_unless_asked(name: str) -> None:
    """A decrypted "sum" of one input is that input: by default no config allows one."""
    for n, m in [(2, 2), (3, 2), (4, 2), (5, 3), (10, 5), (101, 51)]:
        assert protocols.get(name, num_clients=n).config.min_survivors == m
        assert default_min_survivors(n) == m
    with pytest.raises(ConfigError) as info:
        protocols.get(name, num_clients=1)
    assert info.value.parameter == "num_clients" and "allow_single_input" in str(info.value)
    for n in (2, 10):
        with pytest.raises(ConfigError) as info:
            protocols.get(name, num_clients=n, min_survivors=1)
        assert info.value.parameter == "min_survivors" and "allow_single_input" in str(info.value)
    with pytest.raises(ConfigError) as info:
        protocols.get(name, num_clients=10, min_survivors=1, allow_single_input="yes")
    assert info.value.parameter == "allow_single_input"
    # said explicitly, it is allowed; a higher explicit value is kept as it is
    allowed = protocols.get(name, num_clients=10, min_survivors=1, allow_single_input=True)
    assert allowed.config.min_survivors == 1
    assert protocols.get(name, num_clients=1, allow_single_input=True).config.min_survivors == 1
    assert protocols.get(name, num_clients=10, min_survivors=9).config.min_survivors == 9

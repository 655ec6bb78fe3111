"""Z_{2^b} vectors: wraparound, numpy/torch agreement, and validation of received vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from secagg.errors import ConfigError, WrongLengthError, WrongRingError
from secagg.ring import Ring


@given(bits=st.sampled_from([32, 64]), data=st.data())
def test_add_sub_wrap_like_python_modular_arithmetic(bits: int, data: st.DataObject) -> None:
    ring = Ring(bits)  # type: ignore[arg-type]
    n = data.draw(st.integers(1, 20))
    a = data.draw(hnp.arrays(ring.numpy_dtype, n))
    b = data.draw(hnp.arrays(ring.numpy_dtype, n))
    mod = 1 << bits
    assert [int(x) for x in ring.add(a, b)] == [
        (int(x) + int(y)) % mod for x, y in zip(a, b, strict=True)
    ]
    assert [int(x) for x in ring.sub(a, b)] == [
        (int(x) - int(y)) % mod for x, y in zip(a, b, strict=True)
    ]
    assert [int(x) for x in ring.neg(a)] == [(-int(x)) % mod for x in a]
    # torch storage (signed) carries the same bits through the same operations
    ta, tb = ring.to_torch(a), ring.to_torch(b)
    np.testing.assert_array_equal(ring.to_numpy(ring.add(ta, tb)), ring.add(a, b))
    np.testing.assert_array_equal(ring.to_numpy(ring.sub(ta, tb)), ring.sub(a, b))
    np.testing.assert_array_equal(ring.to_numpy(ring.neg(ta)), ring.neg(a))


@pytest.mark.parametrize("bits", [32, 64])
def test_sum_and_in_place_accumulation(bits: int) -> None:
    ring = Ring(bits)  # type: ignore[arg-type]
    top = ring.modulus - 1
    vecs = [np.full(3, top, dtype=ring.numpy_dtype) for _ in range(5)]
    total = ring.sum(vecs, 3)
    assert [int(x) for x in total] == [(5 * top) % ring.modulus] * 3
    assert total is not vecs[0]  # the inputs are not modified
    assert int(vecs[0][0]) == top
    np.testing.assert_array_equal(ring.sum([], 4), np.zeros(4, dtype=ring.numpy_dtype))
    t_total = ring.sum([ring.to_torch(v) for v in vecs], 3)
    np.testing.assert_array_equal(ring.to_numpy(t_total), total)


def test_signed_embedding_round_trip() -> None:
    ring = Ring(32)
    values = np.array([-(2**31), -1, 0, 1, 2**31 - 1])
    embedded = ring.from_signed(values)
    assert embedded.dtype == np.uint32
    assert [int(x) for x in embedded] == [2**31, 2**32 - 1, 0, 1, 2**31 - 1]
    np.testing.assert_array_equal(ring.to_signed(embedded), values)
    t = ring.from_signed(torch.tensor(values))
    np.testing.assert_array_equal(ring.to_numpy(t), embedded)


def test_check_names_wrong_ring_and_wrong_length() -> None:
    ring = Ring(32)
    ring.check(np.zeros(4, dtype=np.uint32), 4)
    with pytest.raises(WrongRingError) as exc:
        ring.check(np.zeros(4, dtype=np.uint64), 4, sender=7)
    assert exc.value.sender == 7
    with pytest.raises(WrongRingError):
        ring.check(np.zeros(4, dtype=np.int32), 4)
    with pytest.raises(WrongRingError):
        ring.check([0, 0, 0, 0], 4)
    with pytest.raises(WrongLengthError):
        ring.check(np.zeros(5, dtype=np.uint32), 4)
    with pytest.raises(WrongLengthError):
        ring.check(np.zeros((2, 2), dtype=np.uint32), 4)
    with pytest.raises(WrongRingError):
        ring.check(torch.zeros(4, dtype=torch.int64), 4)
    ring.check(torch.zeros(4, dtype=torch.int32), 4)


def test_only_32_and_64_bit_rings() -> None:
    with pytest.raises(ConfigError):
        Ring(16)  # type: ignore[arg-type]

"""Packed weights: same bits as unpacked calls, and the packed copy is private."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim._native import lib
from hwsim.kernels import AccumSpec, RequantParams, conv2d, gemm, pack_weights


def _rq(n):
    return RequantParams("float32", scale=np.linspace(0.001, 0.004, n), zero_point=7, out_signed=False)


def test_packed_gemm_equals_unpacked_and_takes_the_fast_path():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(37, 300), dtype=np.uint8)
    b = rng.integers(-128, 128, size=(70, 300), dtype=np.int8)
    packed = pack_weights(b)
    expected = gemm(a, b, a_zero_point=9, requant=_rq(70))
    before = lib.hw_fast_calls()
    got = gemm(a, packed, a_zero_point=9, requant=_rq(70))
    np.testing.assert_array_equal(got, expected)
    if lib.hw_cpu_features() & 4:   # AVX-512 VNNI: the packed handle is used by the fast path
        assert lib.hw_fast_calls() == before + 1
    old = lib.hw_set_feature_limit(0)
    try:
        np.testing.assert_array_equal(gemm(a, packed, a_zero_point=9, requant=_rq(70)), expected)
    finally:
        lib.hw_set_feature_limit(old)


def test_packed_conv_equals_unpacked():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(1, 9, 10, 16), dtype=np.uint8)
    w = rng.integers(-127, 128, size=(24, 3, 3, 16), dtype=np.int8)
    spec = AccumSpec(group=4, acc_bits=32, input_zero_point="folded_into_bias")
    expected = conv2d(x, w, padding=1, x_zero_point=100, accum=spec, requant=_rq(24))
    got = conv2d(x, pack_weights(w), padding=1, x_zero_point=100, accum=spec, requant=_rq(24))
    np.testing.assert_array_equal(got, expected)


def test_packed_copy_is_private_and_read_only():
    b = np.ones((4, 8), dtype=np.int8)
    packed = pack_weights(b)
    b[:] = 5                                      # the caller changes its array afterwards
    a = np.ones((2, 8), dtype=np.uint8)
    np.testing.assert_array_equal(gemm(a, packed), np.full((2, 4), 8))
    with pytest.raises(ValueError):
        packed.weights[0, 0] = 1


def test_pack_rejects_bad_weights():
    with pytest.raises(ValueError, match="w"):
        pack_weights(np.ones((2, 3, 4), dtype=np.int8))
    with pytest.raises(ValueError, match="dtype"):
        pack_weights(np.ones((2, 3), dtype=np.float32))

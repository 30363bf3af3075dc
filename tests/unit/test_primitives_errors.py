"""Bad input is refused in Python with a ValueError naming the argument (never a crash)."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim._native import primitives as C
from hwsim.numerics.requant_params import RequantParams

X64 = np.array([1, 2, 3, 4], np.int64)
X32 = np.array([1, 2, 3, 4], np.int32)
P8 = RequantParams("single_rounding", multiplier=2**30, shift=0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: C.round_shift(X64.astype(np.int32), 1, "floor"), "^x: expected dtype int64"),
        (lambda: C.round_shift(X64[::2], 1, "floor"), "^x: array must be C-contiguous"),
        (lambda: C.round_shift([1, 2], 1, "floor"), "^x: expected a numpy array"),
        (lambda: C.round_shift(X64, 64, "floor"), "^shift: expected an int in \\[0, 63\\]"),
        (lambda: C.round_shift(X64, -1, "floor"), "^shift:"),
        (lambda: C.round_shift(X64, 1.0, "floor"), "^shift:"),
        (lambda: C.round_shift(X64, 1, "nearest"), "^mode: expected one of"),
        (lambda: C.round_shift(X64, 1, "floor", seed=-1), "^seed:"),
        (lambda: C.narrow(X64, 1, True), "^bits: expected an int in \\[2, 64\\]"),
        (lambda: C.narrow(X64, 64, False), "^bits: expected an int in \\[1, 63\\]"),
        (lambda: C.narrow(X64, 8, True, "clip"), "^overflow: expected one of"),
        (lambda: C.narrow(X64, 8, 1), "^signed: expected a bool"),
        (lambda: C.narrow(X64.astype(np.float64), 8), "^x: expected dtype int64"),
        (lambda: C.srdhm(X32, X32[:3]), "^b: expected the shape of a"),
        (lambda: C.srdhm(X32, X64), "^b: expected dtype int32"),
        (lambda: C.srdhm(X32[::2], X32[::2]), "^a: array must be C-contiguous"),
        (lambda: C.rdbpot(X32, np.full(4, 32, np.int32)), "^exponent: expected values in \\[0, 31\\]"),
        (lambda: C.rdbpot(X32, np.full(4, -1, np.int32)), "^exponent:"),
        (lambda: C.rdbpot(X32, X64), "^exponent: expected dtype int32"),
        (lambda: C.requantize(X64.astype(np.int32), P8), "^acc: expected dtype int64"),
        (lambda: C.requantize(np.asfortranarray(np.ones((3, 2), np.int64)), P8), "^acc: array must be C-contiguous"),
        (lambda: C.requantize(np.int64(3), P8), "^acc: expected a numpy array"),
        (lambda: C.requantize(np.array(3, np.int64), P8), "^acc: expected an array with at least one dimension"),
        (lambda: C.requantize(X64, P8, out_dtype=np.int64), "^out_dtype: expected int8"),
        (lambda: C.requantize(X64, RequantParams("single_rounding", multiplier=2**30, shift=0, out_bits=16),
                              out_dtype=np.int8), "^out_dtype: int8 cannot hold"),
        (lambda: C.requantize(X64, RequantParams("single_rounding", multiplier=[1, 2], shift=[0, 0])),
         "^acc: last axis has 4 entries, but params has 2 channels"),
        (lambda: C.requantize(X64, {"scheme": "float32"}), "^params: expected a RequantParams"),
    ],
)
def test_bad_primitive_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scheme="nope"), "^RequantParams.scheme: unknown scheme"),
        (dict(scheme="single_rounding", shift=0), "^RequantParams.multiplier: required"),
        (dict(scheme="single_rounding", multiplier=-1, shift=0), "^RequantParams.multiplier: expected 0 <= M"),
        (dict(scheme="single_rounding", multiplier=2**31, shift=0), "^RequantParams.multiplier:"),
        (dict(scheme="single_rounding", multiplier=1.5, shift=0), "^RequantParams.multiplier: expected integers"),
        (dict(scheme="single_rounding", multiplier=1), "^RequantParams.shift: required"),
        (dict(scheme="single_rounding", multiplier=1, shift=31), "^RequantParams.shift: single_rounding needs shift in \\[-31, 30\\]"),
        (dict(scheme="double_rounding", multiplier=1, shift=-32), "^RequantParams.shift:"),
        (dict(scheme="int64_reduced", multiplier=1, shift=15), "^RequantParams.shift:"),
        (dict(scheme="shift_only", shift=64, rounding="floor"), "^RequantParams.shift:"),
        (dict(scheme="shift_only", shift=0), "^RequantParams.rounding: SHIFT_ONLY needs"),
        (dict(scheme="single_rounding", multiplier=[1, 2], shift=[0]), "^RequantParams.shift: 1 channels, but multiplier has 2"),
        (dict(scheme="single_rounding", multiplier=[], shift=[]), "^RequantParams.multiplier: expected an int or a 1-D"),
        (dict(scheme="float32"), "^RequantParams.scale: required"),
        (dict(scheme="float32", scale=float("inf")), "^RequantParams.scale: expected finite"),
        (dict(scheme="float32", scale=1e39), "^RequantParams.scale: expected finite"),  # overflows float32
        (dict(scheme="float64_round", scale=float("nan")), "^RequantParams.scale: expected finite"),
        (dict(scheme="float32", scale=1.0, rounding="nearest"), "^RequantParams.rounding: unknown"),
        (dict(scheme="float32", scale=1.0, out_overflow="clip"), "^RequantParams.out_overflow:"),
        (dict(scheme="float32", scale=1.0, out_bits=33), "^RequantParams.out_bits: expected an int in \\[2, 32\\]"),
        (dict(scheme="float32", scale=1.0, out_bits=32, out_signed=False), "^RequantParams.out_bits: expected an int in \\[1, 31\\]"),
        (dict(scheme="float32", scale=1.0, out_signed=1), "^RequantParams.out_signed: expected a bool"),
        (dict(scheme="float32", scale=1.0, out_min=-129), "^RequantParams.out_min:"),
        (dict(scheme="float32", scale=1.0, out_max=128), "^RequantParams.out_max:"),
        (dict(scheme="float32", scale=1.0, out_min=5, out_max=4), "^RequantParams.out_min: 5 is greater"),
        (dict(scheme="float32", scale=1.0, zero_point=2**31), "^RequantParams.zero_point:"),
        (dict(scheme="float32", scale=1.0, seed=2**64), "^RequantParams.seed:"),
    ],
)
def test_bad_requant_params(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RequantParams(**kwargs)


def test_requant_params_defaults():
    p = RequantParams("float32", scale=0.1)
    assert (p.out_min, p.out_max, p.rounding.value, p.n_channels) == (-128, 127, "half_even", 1)
    assert p.scale == (float(np.float32(0.1)),)          # rounded to float32 once
    assert RequantParams("float64_round", scale=0.1).rounding.value == "half_away"
    u = RequantParams("single_rounding", multiplier=[1, 2, 3], shift=[0, 0, 0], out_bits=8, out_signed=False)
    assert (u.out_min, u.out_max, u.n_channels) == (0, 255, 3)


from hwsim.numerics import arith as A  # noqa: E402 - the numpy mirror refuses the same inputs


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: A.round_shift(X64, 64, "floor"), "^shift: expected values in \\[0, 63\\]"),
        (lambda: A.round_shift(X64.astype(np.float64), 1, "floor"), "^x: expected a signed integer array"),
        (lambda: A.round_shift(X64, 1, "nearest"), "^mode: expected one of"),
        (lambda: A.narrow(X64, 65), "^bits: expected an int in \\[2, 64\\]"),
        (lambda: A.narrow(X64, 64, signed=False), "^bits: expected an int in \\[1, 63\\]"),
        (lambda: A.narrow(X64, 8, overflow="clip"), "^overflow:"),
        (lambda: A.srdhm(X64 * 2**40, X64), "^a: expected values in"),
        (lambda: A.rdbpot(X32, 32), "^exponent: expected values in \\[0, 31\\]"),
        (lambda: A.srshl(X32, 64), "^s: expected values in \\[-63, 63\\]"),
        (lambda: A.round_float(np.array([np.inf]), "floor"), "^v: expected finite"),
        (lambda: A.requantize(X64, "params"), "^params: expected a RequantParams"),
        (lambda: A.requantize(X64.astype(np.float32), P8), "^acc: expected a signed integer array"),
    ],
)
def test_bad_mirror_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()

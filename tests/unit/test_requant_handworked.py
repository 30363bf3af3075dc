"""Hand-worked requantisation cases that pin down the order of float operations
and the output stage.  Each expected value is derived in the comment."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim._native import primitives as C
from hwsim.numerics import arith as A
from hwsim.numerics.requant_params import RequantParams
from hwsim.oracle.requantize import requantize_one


def all_three(acc: int, params: RequantParams) -> set[int]:
    arr = np.array([acc], np.int64)
    return {int(C.requantize(arr, params)[0]), int(A.requantize(arr, params)[0]), requantize_one(acc, 0, 0, params)[0]}


def test_float32_rounds_the_accumulator_before_the_multiply():
    # fl32(16777217) = 16777216 (2^24 + 1 is a tie, mantissa even below); * 1.5 = 25165824 exactly.
    # Multiplying first would give 25165825.5 -> fl32 (ulp 2) -> 25165826.
    p = RequantParams("float32", scale=1.5, out_bits=32)
    assert all_three(16777217, p) == {25165824}


def test_float32_multiply_is_rounded_to_float32():
    # acc = 3, scale = fl32(0.1) = 13421773 * 2^-27.  3 * 13421773 = 40265319 needs 26 bits;
    # fl32 keeps 24: 40265319 / 4 = 10066329.75 -> 10066330 -> 40265320 * 2^-27 = 0.30000001...
    # then half_even of 0.3 -> 0 either way; so scale the output: use scale * 2^20 instead.
    # acc = 3, scale = fl32(0.1) * 2^20 = 13421773 * 2^-7: product 40265319 * 2^-7 = 314572.8047;
    # fl32 -> 40265320 * 2^-7 = 314572.8125 -> half_even 314573 (the exact product rounds the same).
    # A case where the float32 product crosses a tie: acc = 5, scale = 1.5 * 2^-1 = 0.75 -> 3.75 -> 4.
    p = RequantParams("float32", scale=float(np.float32(0.1)) * 2**20, out_bits=32)
    assert all_three(3, p) == {314573}
    assert all_three(5, RequantParams("float32", scale=0.75)) == {4}


def test_float32_clamps_in_float_before_rounding_and_adding_zero_point():
    # zp = 3, range [-128, 127]: clamp bounds in float are [-131, 124]; 300 * 1.0 -> 124 -> +3 = 127
    # and counts as clamped.
    p = RequantParams("float32", scale=1.0, zero_point=3)
    out, events = C.requantize(np.array([300, 124, -131, -132], np.int64), p, return_events=True)
    np.testing.assert_array_equal(out, [127, 127, -128, -128])
    assert events.tolist() == [2]


def test_float64_round_converts_the_accumulator_to_double_first():
    # acc = 2^53 + 2^29 + 1 is odd above 2^53 (ulp 2): (double)acc ties to the even 2^53 + 2^29.
    # * 2^-30 = 2^23 + 0.5 exactly -> half_even -> 8388608.  Exact arithmetic would give
    # 2^23 + 0.5 + 2^-30 -> 8388609.
    acc = 2**53 + 2**29 + 1
    p = RequantParams("float64_round", scale=2.0**-30, rounding="half_even", out_bits=32)
    assert all_three(acc, p) == {8388608}
    # std::round (half_away) of the same double: 8388609
    assert all_three(acc, RequantParams("float64_round", scale=2.0**-30, out_bits=32)) == {8388609}


def test_double_rounding_wraps_a_wide_accumulator_to_int32_first():
    # acc = 2^32 + 6 wraps to 6; 6 * 2^30 * 2^(-1-31) = 1.5 -> 2
    p = RequantParams("double_rounding", multiplier=2**30, shift=-1)
    assert all_three(2**32 + 6, p) == {2}


def test_int64_reduced_wraps_to_48_bits():
    # acc = 2^48 + 1000 wraps to 1000; M' = 2^14 for M = 2^30; T = 15 - 0 = 15:
    # (1000 * 2^14 + 2^14) >> 15 = (16384000 + 16384) >> 15 = 500.5 -> 500
    p = RequantParams("int64_reduced", multiplier=2**30, shift=0, out_bits=16)
    assert all_three(2**48 + 1000, p) == {500}


@pytest.mark.parametrize("overflow, want", [("saturate", 127), ("wrap", -126)])
def test_output_stage_wrap_vs_saturate(overflow, want):
    # shift_only by 0, zp = 10: 120 + 10 = 130; saturate -> 127; wrap_8(130) = 130 - 256 = -126
    p = RequantParams("shift_only", shift=0, rounding="floor", zero_point=10, out_overflow=overflow)
    assert all_three(120, p) == {want}


def test_shift_only_right_shift_rounding_and_left_wrap():
    # -12 / 2^3 = -1.5: half_up -> -1, half_away -> -2, floor -> -2, trunc -> -1
    for mode, want in [("half_up", -1), ("half_away", -2), ("floor", -2), ("trunc", -1)]:
        assert all_three(-12, RequantParams("shift_only", shift=-3, rounding=mode)) == {want}
    # 2^62 + 5 shifted left by 1 wraps mod 2^64: 2^63 + 10 -> -2^63 + 10; + zp 0; saturate to int32 -> INT32_MIN
    p = RequantParams("shift_only", shift=1, rounding="floor", out_bits=32)
    assert all_three(2**62 + 5, p) == {-(2**31)}

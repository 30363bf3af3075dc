"""hwsim.sim.gemmlowp_fixed / arith_tflite: constants, hand-worked vectors, numpy == pure-int oracle, errors.

Agreement with the real engines is in test_arith_tflite_engines.py; this file
holds the pieces to SEMANTICS.md section 8 and to hwsim.oracle.tflite_ops.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import edge_ints, edge_values

from hwsim.graph.ir import QuantParams
from hwsim.oracle import tflite_ops as oracle
from hwsim.sim import arith_tflite as at
from hwsim.sim import gemmlowp_fixed as gl

I32 = edge_ints(32)


def qp(scale: float, zero_point: int = 0) -> QuantParams:
    return QuantParams(np.float32(scale), np.int64(zero_point))


# --------------------------------------------------------------------------------------------
# constants: every raw gemmlowp constant recomputed from its real value
# --------------------------------------------------------------------------------------------

def test_gemmlowp_constants_are_their_real_values() -> None:
    q31 = lambda v: round(v * 2**31)  # noqa: E731
    assert gl.EXP_MINUS_ONE_EIGHTH_Q31 == q31(math.exp(-1 / 8))
    assert gl.ONE_THIRD_Q31 == q31(1 / 3)
    for exponent, raw in gl.EXP_BARREL:
        assert raw == q31(math.exp(-(2.0**exponent))), exponent
    assert gl.NR_48_OVER_17_Q29 == round(48 / 17 * 2**29)
    assert gl.NR_NEG_32_OVER_17_Q29 == round(-32 / 17 * 2**29)


# --------------------------------------------------------------------------------------------
# hand-worked vectors (SEMANTICS.md 8.2, 8.3)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b, expected", [
    (gl.INT32_MIN, gl.INT32_MIN, gl.INT32_MAX), (gl.INT32_MIN, gl.INT32_MAX, -2147483647),
    (-1, 1 << 30, 0), (1, 1 << 30, 1), (-3, 1 << 30, -1), (3, 1 << 30, 2),
])
def test_srdhm_vectors(a: int, b: int, expected: int) -> None:
    assert int(gl.srdhm(a, b)) == expected == oracle.srdhm(a, b)


@pytest.mark.parametrize("x, e, expected", [
    (5, 1, 3), (-5, 1, -3), (-6, 2, -2), (-7, 2, -2), (gl.INT32_MIN, 31, -1), (gl.INT32_MAX, 1, 1073741824),
])
def test_rdbpot_vectors(x: int, e: int, expected: int) -> None:
    assert int(gl.rdbpot(x, e)) == expected == oracle.rdbpot(x, e)


# (x, M, shift, double rounding, NEON 4Rows = VQRDMULH + VRSHL without fixup)
MBQM_VECTORS = [
    (-6, 1 << 30, -1, -2, -1),
    (6, 1 << 30, -1, 2, 2),
    (-5, 1 << 30, -1, -1, -1),
    (-7, 1 << 30, 0, -3, -3),
    (-14056, 1223755207, -2, -2003, -2002),
    (-1001, 1610612736, 1, -1501, -1501),
    (12345, 1590891970, -10, 9, 9),
    (1 << 30, 1 << 30, 0, 536870912, 536870912),
]


@pytest.mark.parametrize("x, m, shift, double, neon", MBQM_VECTORS)
def test_mul_by_quantized_multiplier_vectors(x: int, m: int, shift: int, double: int, neon: int) -> None:
    assert int(gl.mul_by_quantized_multiplier(x, m, shift)) == double == oracle.mbqm(x, m, shift)
    assert int(at._mbqm_neon_4rows(np.array(x), m, shift)) == neon


# --------------------------------------------------------------------------------------------
# numpy fixed point == pure-int oracle
# --------------------------------------------------------------------------------------------

@given(st.lists(st.tuples(I32, I32), min_size=1, max_size=40))
def test_srdhm_and_half_sum_match_oracle(pairs) -> None:
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    np.testing.assert_array_equal(gl.srdhm(a, b), [oracle.srdhm(x, y) for x, y in pairs])
    np.testing.assert_array_equal(gl.rounding_half_sum(a, b), [oracle.rounding_half_sum(x, y) for x, y in pairs])


@pytest.mark.parametrize("exponent", range(32))
def test_rdbpot_every_exponent_matches_oracle(exponent: int) -> None:
    x = np.array(edge_values(32), dtype=np.int64)
    np.testing.assert_array_equal(gl.rdbpot(x, exponent), [oracle.rdbpot(int(v), exponent) for v in x])


@pytest.mark.parametrize("exponent", range(-31, 31))
def test_sat_rounding_mul_by_pot_matches_oracle(exponent: int) -> None:
    x = np.array(edge_values(32), dtype=np.int64)
    np.testing.assert_array_equal(gl.sat_rounding_mul_by_pot(x, exponent),
                                  [oracle.sat_rounding_mul_by_pot(int(v), exponent) for v in x])


@given(st.lists(I32, min_size=1, max_size=30), st.integers(0, (1 << 31) - 1), st.integers(-31, 30))
def test_mbqm_matches_oracle(xs, m, shift) -> None:
    np.testing.assert_array_equal(gl.mul_by_quantized_multiplier(np.array(xs), m, shift),
                                  [oracle.mbqm(x, m, shift) for x in xs])


NEGATIVE_I32 = st.one_of(st.sampled_from([v for v in edge_values(32) if v <= 0]), st.integers(gl.INT32_MIN, 0))


@pytest.mark.parametrize("integer_bits", [0, 1, 4, 5, 6, 12])
@given(xs=st.lists(NEGATIVE_I32, min_size=1, max_size=30))
def test_exp_on_negative_values_matches_oracle(integer_bits: int, xs) -> None:
    got = gl.exp_on_negative_values(np.array(xs, dtype=np.int64), integer_bits)
    np.testing.assert_array_equal(got, [oracle.exp_on_negative_values(x, integer_bits) for x in xs])


@given(st.lists(st.integers(0, gl.INT32_MAX), min_size=1, max_size=30))
def test_reciprocal_helpers_match_oracle(xs) -> None:
    a = np.array(xs, dtype=np.int64)
    np.testing.assert_array_equal(gl.one_over_one_plus_x_for_x_in_0_1(a),
                                  [oracle.one_over_one_plus_x_for_x_in_0_1(x) for x in xs])
    np.testing.assert_array_equal(gl.one_minus_x_over_one_plus_x_for_x_in_0_1(a),
                                  [oracle.one_minus_x_over_one_plus_x_for_x_in_0_1(x) for x in xs])


@pytest.mark.parametrize("integer_bits", [3, 4, 5])
@given(xs=st.lists(I32, min_size=1, max_size=30))
def test_logistic_and_tanh_match_oracle(integer_bits: int, xs) -> None:
    a = np.array(xs, dtype=np.int64)
    np.testing.assert_array_equal(gl.logistic(a, integer_bits), [oracle.logistic(x, integer_bits) for x in xs])
    np.testing.assert_array_equal(gl.tanh(a, integer_bits), [oracle.tanh(x, integer_bits) for x in xs])


def test_fixed_point_functions_are_close_to_the_real_functions() -> None:
    """A real-valued sanity check (gemmlowp's ReferenceOp idea): the fixed-point results are near exp/1/(1+x)."""
    a = -np.arange(0, 16 << 26, 1 << 20, dtype=np.int64)          # Q5.26 in [-16, 0]
    np.testing.assert_allclose(gl.exp_on_negative_values(a, 5) / 2**31, np.exp(a / 2**26), atol=2e-8 * 64)
    x = np.arange(1, 1 << 31, 1 << 24, dtype=np.int64)
    np.testing.assert_allclose(gl.one_over_one_plus_x_for_x_in_0_1(x) / 2**31, 1 / (1 + x / 2**31), atol=1e-8)


# --------------------------------------------------------------------------------------------
# hand-worked op vectors
# --------------------------------------------------------------------------------------------

def test_add_hand_vector() -> None:
    # 1.5 + (-3.0) = -1.5 = -3 * 0.5: exact, every multiplier path must give -3
    q = qp(0.5)
    assert at.tflite_fixed_point_add(np.array([3], np.int8), q, np.array([-6], np.int8), q, q)[0] == -3


def test_mean_ties_round_half_up_at_the_high_mul() -> None:
    # s_x = s_y: (M, e) = (2^30, 1); n = 2 -> k = 1, M' = 2^30, e' = 0, so y = SRDHM(sum, 2^30) = sum / 2
    # rounded half UP: [1, 2] -> 1.5 -> 2, [-1, -2] -> -1.5 -> -1 (not -2)
    q = qp(0.25)
    x = np.array([[1, 2], [-1, -2]], dtype=np.int8)
    np.testing.assert_array_equal(at.tflite_fixed_point_mean(x, q, q, axes=[1]), [2, -1])


def test_avg_pool_rounds_half_away_and_skips_padding() -> None:
    # 2x2 window at stride 2 over a 2x3 input with one column of right padding:
    # window 0: [1, 2, 0, 0] -> 3 / 4 = 0.75 -> 1; window 1: [3, pad, -8, pad] -> -5 / 2 = -2.5 -> -3
    x = np.array([1, 2, 3, 0, 0, -8], dtype=np.int8).reshape(1, 2, 3, 1)
    q = qp(0.1, 0)
    y = at.tflite_rounded_avg_pool2d(x, q, q, (2, 2), (2, 2), (0, 0, 0, 1))
    np.testing.assert_array_equal(y.reshape(-1), [1, -3])


def test_quantize_half_away_vectors() -> None:
    # SEMANTICS 8.5: 2.5 -> 3, -2.5 -> -3 at scale 1; 0.3 / 0.2 = 1.5 in float32 -> 2, -0.3 -> -2
    np.testing.assert_array_equal(at.tflite_quantize(np.float32([2.5, -2.5]), qp(1.0)), [3, -3])
    np.testing.assert_array_equal(at.tflite_quantize(np.float32([0.3, -0.3]), qp(0.2)), [2, -2])
    np.testing.assert_array_equal(at.tflite_quantize(np.float32([1e9, -1e9]), qp(1.0, 5)), [127, -128])


def test_quantize_engine_variants_on_ties() -> None:
    # nine copies of 2.5 at scale 1: the reference rounds half away (3); LiteRT's optimised kernel rounds the
    # first 8 (its vector blocks) half to even (2) and the 9th (scalar tail, double division) away (3);
    # XNNPACK rounds all to even
    x = np.full(9, 2.5, dtype=np.float32)
    np.testing.assert_array_equal(at.tflite_quantize(x, qp(1.0)), [3] * 9)
    np.testing.assert_array_equal(at.tflite_quantize(x, qp(1.0), engine="litert_opt"), [2] * 8 + [3])
    np.testing.assert_array_equal(at.xnnpack_quantize(x, qp(1.0)), [2] * 9)


def test_requantize_and_dequantize() -> None:
    # s_x / s_y = 0.5 -> (2^30, 0); x - z_x = 3 -> SRDHM(3, 2^30) = 2 (1.5 half up), + z_y
    np.testing.assert_array_equal(at.tflite_requantize(np.array([4, -2], np.int8), qp(0.5, 1), qp(1.0, -3)),
                                  [-1, -4])
    np.testing.assert_array_equal(at.tflite_dequantize(np.array([-128, 3], np.int8), qp(0.5, 3)), [-65.5, 0.0])


def test_activation_range_relu6() -> None:
    # scale 2^-5, zp -128: 0 -> -128 + 0, 6 -> -128 + 192 = 64; scale 1/16: zp 64: 6 -> 64 + 96 = 160, capped at 127
    assert at.activation_range((0.0, 6.0), qp(2.0**-5, -128)) == (-128, 64)
    assert at.activation_range((0.0, 6.0), qp(2.0**-4, 64)) == (64, 127)
    assert at.activation_range((0.0, 6.0), qp(0.05, -10)) == (-10, 110)
    assert at.activation_range((0.0, float("inf")), qp(0.05, -10)) == (-10, 127)


def test_softmax_uniform_row_is_one_over_depth() -> None:
    # all inputs equal: each probability is 1/4 = 64/256 exactly -> 64 - 128 = -64 in every variant
    x = np.full((1, 4), 17, dtype=np.int8)
    for fn in (at.tflite_reference_softmax, at.tflite_lut_f32_softmax, at.tflite_lut_u16_softmax):
        np.testing.assert_array_equal(fn(x, qp(0.1), qp(1 / 256, -128)), [[-64] * 4])


def test_softmax_axis_argument_moves_the_reduced_axis() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(3, 7), dtype=np.int8)
    a = at.tflite_reference_softmax(x.T, qp(0.05), qp(1 / 256, -128), axis=0)
    np.testing.assert_array_equal(a.T, at.tflite_reference_softmax(x, qp(0.05), qp(1 / 256, -128)))


def test_schemes_registry_uses_the_shared_names() -> None:
    assert set(at.SCHEMES["softmax"]) == {"tflite_reference", "tflite_lut_f32", "tflite_lut_u16"}
    assert "tflite_fixed_point" in at.SCHEMES["add"] and "tflite_fixed_point" in at.SCHEMES["mean"]
    assert "tflite_rounded" in at.SCHEMES["avg_pool2d"]
    assert at.SCHEMES["hard_swish"]["tflite_reference"] is at.tflite_reference_hard_swish


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------

def test_errors_name_the_argument() -> None:
    q = qp(0.5)
    a = np.zeros(4, np.int8)
    with pytest.raises(ValueError, match="a: expected an int8"):
        at.tflite_fixed_point_add(a.astype(np.float32), q, a, q, q)
    with pytest.raises(ValueError, match="do not broadcast"):
        at.tflite_fixed_point_add(a, q, np.zeros(3, np.int8), q, q)
    with pytest.raises(ValueError, match="per-tensor"):
        at.tflite_fixed_point_mul(a, QuantParams(np.float32([0.5, 0.25]), np.int64([0, 0]), axis=0), a, q, q)
    with pytest.raises(ValueError, match="engine"):
        at.tflite_fixed_point_mean(a.reshape(1, 4), q, q, [1], engine="xnnpack")
    with pytest.raises(ValueError, match="output multiplier"):
        at.tflite_fixed_point_add(a, q, a, q, qp(1e-9))
    with pytest.raises(ValueError, match="zero point -128"):
        at.tflite_reference_softmax(a.reshape(1, 4), q, qp(1 / 256, 0))
    with pytest.raises(ValueError, match="y_qp"):
        at.tflite_rounded_avg_pool2d(a.reshape(1, 2, 2, 1), q, qp(0.25), (2, 2), (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="axes"):
        at.tflite_fixed_point_mean(a.reshape(1, 4), q, q, [2])
    with pytest.raises(ValueError, match="out_dtype"):
        at.tflite_fixed_point_add(a, q, a, q, q, out_dtype=np.int32)
    with pytest.raises(ValueError, match="x: expected a float32"):
        at.tflite_quantize(a, q)
    with pytest.raises(ValueError, match="zero point 0"):
        at.tflite_fixed_point_tanh(a, q, qp(1 / 128, 5))


def test_xnnpack_add_rounds_half_up_and_mul_half_even() -> None:
    # add: r_a = r_b = 0.5 -> shift = 20 - (-1) = 21, M = 2^20, bias = 2^20; a = +-1, b = 0:
    # (2^20 + 2^20) >> 21 = 1 (0.5 -> 1), (2^20 - 2^20) >> 21 = 0 (-0.5 -> 0): half up
    q, y = qp(0.5), qp(1.0)
    a, zero = np.array([1, -1, 3, -3], np.int8), np.zeros(4, np.int8)
    np.testing.assert_array_equal(at.xnnpack_fixed_point_add(a, q, zero, q, y), [1, 0, 2, -1])
    # the TFLite fixed-point ADD rounds the same ties away from zero at its last stage
    np.testing.assert_array_equal(at.tflite_fixed_point_add(a, q, zero, q, y), [1, -1, 2, -2])
    # mul: scale 0.5 * 1 / 1 = 0.5; products 1, -1, 3, -3 -> 0.5, -0.5, 1.5, -1.5 -> rint: 0, -0, 2, -2
    one = np.ones(4, np.int8)
    np.testing.assert_array_equal(at.xnnpack_f32_mul(a, q, one, qp(1.0), y), [0, 0, 2, -2])


def test_xnnpack_refuses_what_the_delegate_refuses() -> None:
    a = np.zeros(4, np.int8)
    with pytest.raises(ValueError, match="would not delegate"):
        at.xnnpack_fixed_point_add(a, qp(1.0), a, qp(1.0), qp(1e-3))
    with pytest.raises(ValueError, match="would not delegate"):
        at.xnnpack_f32_mul(a, qp(1e-3), a, qp(1e-3), qp(1.0))

"""gemmlowp's scalar fixed-point arithmetic (``fixedpoint/fixedpoint.h``) on numpy int64 arrays.

TFLite's integer SOFTMAX / LOGISTIC / TANH / HARD_SWISH kernels (and TFLM's) are
written with gemmlowp's ``FixedPoint<int32_t, IntegerBits>``: a raw int32 ``r``
meaning ``r * 2**-(31 - IntegerBits)``.  Every function here takes and returns
raw values held in int64 arrays (always inside the int32 range) and reproduces
the C++ scalar code bit for bit:

* ``+``, ``-``, unary ``-`` of FixedPoint are gemmlowp's non-saturating ``Add``,
  ``Sub``, ``Neg``; in C that is signed overflow, which every real build wraps
  modulo 2**32, so we wrap.
* ``*`` is ``SaturatingRoundingDoublingHighMul`` (SRDHM: round half up at
  2**-31, saturating only INT32_MIN * INT32_MIN).
* ``Rescale`` / ``SaturatingRoundingMultiplyByPOT`` saturate on left shifts and
  round half away from zero (``RoundingDivideByPOT``) on right shifts.

The polynomial and Newton-Raphson constants are gemmlowp's raw Q0.31 / Q2.29
values; ``tests/sim/test_arith_tflite.py`` recomputes each from its real value.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "INT32_MIN", "INT32_MAX", "wrap32", "srdhm", "rdbpot", "mul_by_quantized_multiplier",
    "sat_rounding_mul_by_pot", "rescale", "rounding_half_sum", "exp_on_negative_values",
    "one_over_one_plus_x_for_x_in_0_1", "one_minus_x_over_one_plus_x_for_x_in_0_1",
    "logistic", "tanh", "count_leading_zeros32", "get_reciprocal",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

# exp(-1/8) and 1/3 in Q0.31 (exp_on_interval_between_negative_one_quarter_and_0_excl)
EXP_MINUS_ONE_EIGHTH_Q31 = 1895147668
ONE_THIRD_Q31 = 715827883
# exp(-2**k) in Q0.31 for k = -2..4 (the barrel shifter of exp_on_negative_values)
EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
              (2, 39332535), (3, 720401), (4, 242))
# 48/17 and -32/17 in Q2.29 (Newton-Raphson start of the reciprocal)
NR_48_OVER_17_Q29 = 1515870810
NR_NEG_32_OVER_17_Q29 = -1010580540


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap32(x) -> np.ndarray:
    """Two's complement wrap of int64 values to int32 (what a C int32 add / multiply does in practice)."""
    x = _i64(x)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def srdhm(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32: (a*b + nudge) / 2**31, C truncating division.

    nudge = 2**30 for a*b >= 0, 1 - 2**30 otherwise; INT32_MIN * INT32_MIN gives INT32_MAX.
    """
    a, b = _i64(a), _i64(b)
    ab = a * b                                       # |a*b| <= 2**62: exact in int64
    num = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = np.where(num >= 0, num >> 31, -((-num) >> 31))   # truncation toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, q)


def rdbpot(x, exponent) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2**exponent rounded half away from zero, exponent in [0, 31]."""
    x, e = _i64(x), _i64(exponent)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def mul_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier, default (double rounding) build, int32 x.

    ``RDBPOT(SRDHM(x * 2**max(shift, 0), M), max(-shift, 0))``; the left shift
    is an int32 multiply in C, modelled as a wrap.  Also covers
    ``...SmallerThanOneExp`` (shift <= 0) and ``...GreaterThanOne`` (shift >= 0).
    """
    x, m, s = _i64(x), _i64(multiplier), _i64(shift)
    t = wrap32(x << np.maximum(s, 0))
    return rdbpot(srdhm(t, m), np.maximum(-s, 0))


def sat_rounding_mul_by_pot(x, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> on int32 raw values."""
    x = _i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rdbpot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    shifted = wrap32(x << exponent)
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, shifted))


def rescale(x, src_integer_bits: int, dst_integer_bits: int) -> np.ndarray:
    """gemmlowp Rescale<dst>(FixedPoint<int32, src>): a saturating / rounding power-of-two multiply."""
    return sat_rounding_mul_by_pot(x, src_integer_bits - dst_integer_bits)


def rounding_half_sum(a, b) -> np.ndarray:
    """gemmlowp RoundingHalfSum on int32: (a + b + sign) / 2 with C truncation, sign = +1 if a+b >= 0 else -1."""
    s = _i64(a) + _i64(b)
    num = s + np.where(s >= 0, 1, -1)
    return np.where(num >= 0, num // 2, -((-num) // 2))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a) -> np.ndarray:
    """exp(a) for Q0.31 a in [-1/4, 0): Taylor expansion around -1/8, as gemmlowp writes it."""
    x = wrap32(a + (1 << 28))                       # a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = sat_rounding_mul_by_pot(x4, -2)
    poly = sat_rounding_mul_by_pot(wrap32(srdhm(wrap32(x4_over_4 + x3), ONE_THIRD_Q31) + x2), -1)
    return wrap32(EXP_MINUS_ONE_EIGHTH_Q31 + srdhm(EXP_MINUS_ONE_EIGHTH_Q31, wrap32(x + poly)))


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: Q``integer_bits`` input a <= 0 -> exp(a) in Q0.31."""
    frac = 31 - integer_bits
    a = _i64(a)
    one_quarter = 1 << (frac - 2)
    a_mod_quarter_minus_one_quarter = wrap32((a & (one_quarter - 1)) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0))
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in EXP_BARREL:
        if integer_bits > exponent:
            bit = np.int64(1) << (frac + exponent)
            result = np.where((remainder & bit) != 0, srdhm(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _newton_reciprocal_q29(half_denominator) -> np.ndarray:
    """The three Newton-Raphson steps shared by gemmlowp's two (0, 1) reciprocal helpers (Q2.29 result)."""
    x = wrap32(NR_48_OVER_17_Q29 + srdhm(half_denominator, NR_NEG_32_OVER_17_Q29))
    for _ in range(3):
        one_minus = wrap32((1 << 29) - srdhm(half_denominator, x))
        x = wrap32(x + rescale(srdhm(x, one_minus), 4, 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """gemmlowp one_over_one_plus_x_for_x_in_0_1: Q0.31 a -> 1 / (1 + a) in Q0.31."""
    x = _newton_reciprocal_q29(rounding_half_sum(a, INT32_MAX))
    return rescale(x, 1, 0)                         # ExactMulByPot<-1> then Rescale<0>


def one_minus_x_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """gemmlowp one_minus_x_over_one_plus_x_for_x_in_0_1: Q0.31 a -> (1 - a) / (1 + a) in Q0.31."""
    x = _newton_reciprocal_q29(rounding_half_sum(a, INT32_MAX))
    return rescale(wrap32(x - (1 << 29)), 2, 0)


def logistic(a, integer_bits: int) -> np.ndarray:
    """gemmlowp logistic: Q``integer_bits`` input -> 1 / (1 + exp(-a)) in Q0.31."""
    a = _i64(a)
    positive = a > 0
    abs_input = np.where(positive, a, wrap32(-a))
    if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap32(-abs_input), integer_bits))
    if_negative = wrap32(INT32_MAX - if_positive)
    return np.where(a == 0, 1 << 30, np.where(positive, if_positive, if_negative))


def tanh(a, integer_bits: int) -> np.ndarray:
    """gemmlowp tanh: Q``integer_bits`` input -> tanh(a) in Q0.31."""
    a = _i64(a)
    negative = a < 0
    n = np.where(negative, a, wrap32(-a))
    # neg_tanh_on_negative_values: ExactMulByPot<1> reinterprets n with one more integer bit
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    return np.where(a == 0, 0, np.where(negative, wrap32(-t), t))


def count_leading_zeros32(x) -> np.ndarray:
    """Leading zero bits of non-negative int32 values viewed as uint32 (32 for 0)."""
    x = _i64(x)
    bits = np.zeros(x.shape, dtype=np.int64)
    for k in range(32):
        bits += (x >> k) > 0
    return 32 - bits


def get_reciprocal(x, x_integer_digits: int):
    """TFLite GetReciprocal: (1 / x as Q0.31 scaled into [0.5, 1), num_bits_over_unit) for x > 0."""
    x = _i64(x)
    headroom_plus_one = count_leading_zeros32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = wrap32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit

"""Scale -> multiplier derivations (SEMANTICS.md 1.3, 1.7, 10.1, 10.2)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwsim.numerics.multiplier import (
    int64_reduced_multiplier,
    ort_requant_scale,
    quantize_multiplier,
    tflite_real_multiplier,
)
from hwsim.oracle.requantize import to_float32, to_float64

# SEMANTICS 8.3, literal
VECTORS = [
    (0.5, (1073741824, 0)),
    (0.25, (1073741824, -1)),
    (1.5, (1610612736, 1)),
    (0.0072474, (1992150143, -7)),
    (3e-10, (1383505806, -31)),
    (0.999999999, (2147483646, 0)),
    (0.02 * 0.0031 / 0.0857, (1590891970, -10)),
]


@pytest.mark.parametrize("d, want", VECTORS)
def test_semantics_8_3_vectors(d, want):
    assert quantize_multiplier(d) == want
    assert quantize_multiplier(d, single_rounding=True) == want


def test_edge_cases():
    assert quantize_multiplier(0.0) == (0, 0)
    # 2^-32 = 0.5 * 2^-31: shift -31 is kept
    assert quantize_multiplier(2.0**-32) == (2**30, -31)
    # 2^-33: shift -32 < -31 is flushed to zero
    assert quantize_multiplier(2.0**-33) == (0, 0)
    # 1 - 2^-40: q * 2^31 = 2^31 - 2^-9 rounds to 2^31, so M = 2^30 and the shift grows
    assert quantize_multiplier(1.0 - 2.0**-40) == (2**30, 1)
    # q * 2^31 = 2^30 + 0.5 exactly: half away from zero rounds up
    assert quantize_multiplier(0.5 + 2.0**-32) == (2**30 + 1, 0)
    # TFLITE_SINGLE_ROUNDING caps shift at 30
    assert quantize_multiplier(2.0**31) == (2**30, 32)
    assert quantize_multiplier(2.0**31, single_rounding=True) == (2**31 - 1, 30)
    assert quantize_multiplier(2.0**29, single_rounding=True) == (2**30, 30)
    # negative multipliers keep TFLite's sign convention: -0.5 = -2^30 * 2^(0-31)
    assert quantize_multiplier(-0.5) == (-(2**30), 0)
    assert quantize_multiplier(-0.75) == (-1610612736, 0)   # -0.75 * 2^31


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "0.5", None, True])
def test_bad_multiplier(bad):
    with pytest.raises(ValueError, match="^d:"):
        quantize_multiplier(bad)


@given(st.floats(2.0**-31, 2.0**30, allow_nan=False))
def test_real_valued_reference(d):
    """M * 2^(shift-31) is within half a unit of M's last place of d (gemmlowp-style tolerance)."""
    m, shift = quantize_multiplier(d)
    assert 2**30 <= m < 2**31
    err = abs(Fraction(m) * Fraction(2) ** (shift - 31) - Fraction(d))
    assert err <= Fraction(2) ** (shift - 32)


def test_ort_requant_scale_is_float32_in_order():
    xs, ws, ys = 0.0235, np.array([0.0031, 0.0017, 1e-5], np.float32), 0.0857
    got = ort_requant_scale(xs, ws, ys)
    assert got.dtype == np.float32
    for g, w in zip(got, ws):
        f32 = lambda v: to_float32(Fraction(float(np.float32(v))))  # noqa: E731 - scales as float32
        want = to_float32(to_float32(f32(xs) * f32(w)) / f32(ys))
        assert Fraction(float(g)) == want


def test_tflite_real_multiplier_is_double_of_float32_scales():
    s_in, s_w, s_out = 0.0235, np.array([0.0031, 0.0017], np.float32), 0.0857
    got = tflite_real_multiplier(s_in, s_w, s_out)
    for g, w in zip(got, s_w):
        a = Fraction(float(np.float32(s_in)))
        b = Fraction(float(np.float32(w)))
        c = Fraction(float(np.float32(s_out)))
        assert Fraction(float(g)) == to_float64(to_float64(a * b) / c)


def test_int64_reduced_multiplier():
    # (1992150143 + 32768) >> 16: 1992182911 = 30398 * 65536 + 19583 -> 30398
    assert int64_reduced_multiplier(1992150143) == 30398
    assert int64_reduced_multiplier(2**30) == 2**14
    assert int64_reduced_multiplier(0x7FFF0000) == 0x7FFF
    assert int64_reduced_multiplier(2**31 - 1) == 0x7FFF
    # 0x7FFEFFFF + 0x8000 = 0x7FFF7FFF -> 0x7FFF
    assert int64_reduced_multiplier(0x7FFEFFFF) == 0x7FFF
    with pytest.raises(ValueError, match="^m:"):
        int64_reduced_multiplier(-1)

"""hwsim.sim.arith_ort against onnxruntime 1.32 single-op models (SEMANTICS.md 10.1), and fma_f32
against exact rational arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwsim.graph.ir import QuantParams
from hwsim.sim import arith_ort
from hwsim.sim.ops.quant import quantize_values
from hwsim.types import Rounding

from . import ort_models

F32 = np.float32


def _exact_fma_f32(a: float, b: float, c: float) -> np.float32:
    """Oracle: the exact value a*b + c (Fractions), rounded once to float32 (ties to even)."""
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    lo = np.float32(float(exact))                 # float() rounds to nearest double: then search neighbours
    cands = [np.nextafter(lo, F32(-np.inf)), lo, np.nextafter(lo, F32(np.inf))]
    best = min(cands, key=lambda v: (abs(Fraction(float(v)) - exact), int(np.array(v).view(np.int32)) & 1))
    return best


_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)


@given(_f32, _f32, _f32)
def test_fma_f32_is_one_rounding(a, b, c):
    got = arith_ort.fma_f32(F32(a), F32(b), F32(c))
    assert got == _exact_fma_f32(a, b, c) or (got == 0 and _exact_fma_f32(a, b, c) == 0)


def test_fma_f32_double_rounding_case():
    # Worked by hand: a = 1 + 2**-23, b = 2**-24 - 2**-47, so a*b = 2**-24 - 2**-70 exactly; c = 1 + 2**-23.
    # Exact sum 1 + 2**-23 + 2**-24 - 2**-70 lies just below the float32 tie between 1 + 2**-23 and 1 + 2**-22,
    # so one rounding gives 1 + 2**-23.  float64 first would round to the tie itself, then ties-to-even to 1 + 2**-22.
    a, b, c = F32(1 + 2.0**-23), F32(2.0**-24 - 2.0**-47), F32(1 + 2.0**-23)
    assert float(np.float32(np.float64(a) * np.float64(b) + np.float64(c))) == 1 + 2.0**-22   # the trap
    assert arith_ort.fma_f32(a, b, c) == F32(1 + 2.0**-23)
    assert arith_ort.fma_f32(-a, b, -c) == F32(-(1 + 2.0**-23))


def _scales(rng, pow2: bool):
    if pow2:
        return [F32(2.0 ** -int(rng.integers(2, 9))) for _ in range(3)]
    return [F32(rng.uniform(0.003, 0.12)) for _ in range(3)]


_ADD_SHAPES = [((64, 256), (64, 256)), ((256, 256), (1, 256)), ((256, 256), (256, 1)), ((256, 1), (256, 256)),
               ((1, 256), (256, 256)), ((256, 256), (1, 1)), ((1, 1), (256, 256)), ((2, 3, 16, 16), (1, 3, 1, 1)),
               ((1, 3, 1, 1), (2, 3, 16, 16))]


@pytest.mark.parametrize("shapes", _ADD_SHAPES, ids=[f"{a}+{b}" for a, b in _ADD_SHAPES])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qlinear_add_matches_onnxruntime(shapes, dtype):
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    mismatches = 0
    for trial in range(24):
        sa, sb, sc = _scales(rng, pow2=trial % 3 == 0)
        za, zb, zc = (int(v) for v in rng.integers(info.min, info.max + 1, 3))
        sess = ort_models.qlinear_add(sa, za, sb, zb, sc, zc, shapes[0], shapes[1], dtype)
        # every value pair appears: a walks the full range along one axis, b along another
        a = rng.integers(info.min, info.max + 1, shapes[0]).astype(dtype)
        b = rng.integers(info.min, info.max + 1, shapes[1]).astype(dtype)
        if shapes[0] == (256, 1):
            a = np.arange(info.min, info.max + 1).reshape(256, 1).astype(dtype)
        if shapes[1] == (1, 256):
            b = np.arange(info.min, info.max + 1).reshape(1, 256).astype(dtype)
        (want,) = sess.run(None, {"a": a, "b": b})
        got = arith_ort.ort_fma_f32_add(a, QuantParams(sa, za), b, QuantParams(sb, zb), QuantParams(sc, zc), dtype)
        assert got.dtype == want.dtype and got.shape == want.shape
        mismatches += int(np.count_nonzero(got != want))
    assert mismatches == 0


def _tie_heavy_gap_input(rng, shape, zx, sx, sy, dtype):
    """x whose channel sums put fl32(acc) * s right on .5 boundaries as often as possible."""
    info = np.iinfo(dtype)
    n, c, h, w = shape
    hw = h * w
    s = F32(sx / F32(sy * F32(hw)))
    x = rng.integers(info.min, info.max + 1, shape).astype(np.int64)
    for ch in range(c):
        # search a target sum whose scaled value is closest to k + 0.5
        best, best_d = None, 2.0
        lo, hi = (info.min - zx) * hw, (info.max - zx) * hw
        for acc in rng.integers(lo, hi + 1, 400):
            v = float(F32(F32(acc) * s))
            d = abs(v - np.floor(v) - 0.5)
            if d < best_d:
                best, best_d = int(acc), d
        target = best + zx * hw                     # sum of x
        flat = np.full(hw, target // hw, dtype=np.int64)
        flat[: target - flat.sum()] += 1
        x[0, ch] = rng.permutation(flat).reshape(h, w)
    return np.clip(x, info.min, info.max).astype(dtype)


@pytest.mark.parametrize("hw", [(7, 7), (1, 1), (13, 5), (32, 32)])
def test_qlinear_gap_matches_onnxruntime(hw):
    rng = np.random.default_rng(11)
    dtype = np.uint8
    mismatches = 0
    for trial in range(12):
        sx, sy, _ = _scales(rng, pow2=trial % 2 == 0)
        zx, zy = (int(v) for v in rng.integers(0, 256, 2))
        shape = (1, 16) + hw
        sess = ort_models.qlinear_gap(sx, zx, sy, zy, shape)
        x = _tie_heavy_gap_input(rng, shape, zx, sx, sy, dtype)
        (want,) = sess.run(None, {"x": x})
        got = arith_ort.ort_f32_mean(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), QuantParams(sx, zx),
                                     QuantParams(sy, zy), dtype, axes=(1, 2))
        mismatches += int(np.count_nonzero(got.transpose(0, 3, 1, 2) != want))
    assert mismatches == 0


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_quantize_linear_matches_onnxruntime_on_ties(dtype):
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    for scale in (F32(0.25), F32(2.0**-7), F32(0.1), F32(0.0372)):
        zp = int(rng.integers(info.min, info.max + 1))
        ks = np.arange(-300, 300)
        ties = (ks + 0.5).astype(np.float64) * float(scale)
        x = np.concatenate([ties, np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf),
                            rng.normal(0, 20 * float(scale), 2000), [1e30, -1e30, 0.0]]).astype(F32)
        # x / scale in float32 must hit .5 exactly for the power-of-two scales
        (want,) = ort_models.quantize_linear(scale, zp, [x.size], dtype).run(None, {"x": x})
        qp = QuantParams(scale, zp)
        np.testing.assert_array_equal(arith_ort.quantize_linear(x, qp, dtype), want)
        np.testing.assert_array_equal(quantize_values(x, qp, dtype, Rounding.HALF_EVEN), want)


def test_quantize_linear_divides_rather_than_multiplies():
    s = F32(0.1)
    k = np.arange(-127, 127)
    near = ((k + 0.5) * np.float64(s)).astype(F32)
    x = np.concatenate([near, np.nextafter(near, F32(np.inf)), np.nextafter(near, F32(-np.inf))])
    div = np.rint(x / s)
    mul = np.rint(x * (F32(1) / s))
    assert np.any(div != mul)                      # the two rules really differ on this input set
    (want,) = ort_models.quantize_linear(s, 128, [x.size], np.uint8).run(None, {"x": x})
    np.testing.assert_array_equal(arith_ort.quantize_linear(x, QuantParams(s, 128), np.uint8), want)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_dequantize_linear_matches_onnxruntime(dtype):
    info = np.iinfo(dtype)
    x = np.arange(info.min, info.max + 1).astype(dtype)
    for scale, zp in ((F32(0.0372), 3), (F32(2.0**-5), -7 if dtype == np.int8 else 200)):
        (want,) = ort_models.dequantize_linear(scale, zp, [x.size], dtype).run(None, {"x": x})
        got = arith_ort.dequantize_linear(x, QuantParams(scale, zp))
        np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))


def test_neon_fixed_add_hand_worked():
    # sa = sb = sc / 2: Ra = Rb = 0.5 = 1.0 * 2**-1 -> e = -1, shift = 22, Ma = Mb = 2**21.
    # a - za = 3, b - zb = 0: acc = 3 * 2**21; acc >> 31 = 0; r = (3 * 2**21 + 2**21) >> 22 = 1 (1.5 -> 2?):
    # (3 * 2**21 + 2**21) = 2**23 -> >> 22 = 2: 1.5 rounds half away from zero to 2.  With a - za = -3:
    # acc = -3 * 2**21 (negative: acc + (-1)) -> (-3 * 2**21 - 1 + 2**21) >> 22 = floor(-(2**22 + 1) / 2**22) = -2.
    qa, qc = QuantParams(F32(0.5), 10), QuantParams(F32(1.0), 100)
    y = arith_ort.ort_neon_fixed_add(np.array([13, 7], np.uint8), qa, np.array([10, 10], np.uint8), qa, qc, np.uint8)
    np.testing.assert_array_equal(y, [102, 98])
    # x86 FMA path on the same tie: v = 1.5 + 100 -> rne 102? 101.5 -> 102 (even); -1.5 + 100 = 98.5 -> 98 (even)
    y86 = arith_ort.ort_fma_f32_add(np.array([13, 7], np.uint8), qa, np.array([10, 10], np.uint8), qa, qc, np.uint8)
    np.testing.assert_array_equal(y86, [102, 98])


@pytest.mark.parametrize("dtype, zp", [(np.uint8, 100), (np.int8, -3)])
def test_quantize_nan_and_infinities_like_onnxruntime(dtype, zp):
    # MLAS clamps with MAXPS(NaN, lo) = lo before rounding: NaN -> the lowest code; +-inf saturate
    x = np.array([np.nan, -np.nan, np.inf, -np.inf, 1.0] * 4, np.float32)
    (want,) = ort_models.quantize_linear(F32(0.1), zp, [x.size], dtype).run(None, {"x": x})
    got = quantize_values(x, QuantParams(F32(0.1), zp), dtype, Rounding.HALF_EVEN)
    np.testing.assert_array_equal(got, want)
    assert got[0] == np.iinfo(dtype).min


def test_neon_fixed_add_refuses_ratios_that_take_mlas_float_fallback():
    qa, qc = QuantParams(F32(1.0), 0), QuantParams(F32(2.0**-9), 0)    # sa / sc = 512 >= 2**8
    with pytest.raises(ValueError, match="outside \\[2\\*\\*-14, 2\\*\\*8\\)"):
        arith_ort.ort_neon_fixed_add(np.zeros(3, np.uint8), qa, np.zeros(3, np.uint8), qa, qc, np.uint8)

"""uint8 tensors on TFLite-family scheme functions (int8 only) run as int8 with zero points - 128.

That is exact because the engines' arithmetic depends on q - zero_point only.  This test checks that
premise on the real functions, without the adapter: shifting every int8 input and its zero point by
the same d (and the output zero point by e) shifts the output by e exactly."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim.graph.ir import QuantParams
from hwsim.sim.ops.elementwise import _uint8_as_int8

tfl = pytest.importorskip("hwsim.sim.arith_tflite")


def _qp(scale, zp):
    return QuantParams(np.float32(scale), zp)


@pytest.mark.parametrize("d, e", [(5, -7), (-20, 3), (11, 0)])
def test_binary_and_unary_ops_only_see_q_minus_zero_point(d, e):
    rng = np.random.default_rng(abs(d) + 10 * abs(e))
    a = rng.integers(-100, 100, (4, 64)).astype(np.int8)
    b = rng.integers(-100, 100, (4, 64)).astype(np.int8)
    qa, qb, qy = _qp(0.05, -3), _qp(0.03, 4), _qp(0.07, -1)
    sa, sb, sy = _qp(0.05, -3 + d), _qp(0.03, 4 + d), _qp(0.07, -1 + e)
    a2, b2 = (a.astype(int) + d).astype(np.int8), (b.astype(int) + d).astype(np.int8)
    for fn in (tfl.tflite_fixed_point_add, tfl.tflite_fixed_point_sub, tfl.tflite_fixed_point_mul):
        y = fn(a, qa, b, qb, qy).astype(int)
        y2 = fn(a2, sa, b2, sb, sy).astype(int)
        inside = (y + e >= -128) & (y + e <= 127) & (y > -128) & (y < 127)
        np.testing.assert_array_equal(y2[inside], y[inside] + e)
    qx, sx = _qp(0.06, 2), _qp(0.06, 2 + d)
    qo = _qp(1 / 256, -128)
    for fn, out in ((tfl.tflite_lut_f32_logistic, qo), (tfl.tflite_fixed_point_tanh, _qp(1 / 128, 0)),
                    (tfl.tflite_reference_hard_swish, _qp(0.05, -20))):
        y = fn(a, qx, out).astype(int)
        y2 = fn(a2, sx, out).astype(int)
        np.testing.assert_array_equal(y2, y)


def test_adapter_runs_uint8_through_the_int8_function():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 50)).astype(np.uint8)
    b = rng.integers(0, 256, (3, 50)).astype(np.uint8)
    qa, qb, qy = _qp(0.05, 130), _qp(0.03, 120), _qp(0.07, 128)
    got = _uint8_as_int8(tfl.tflite_fixed_point_add)(a, qa, b, qb, qy, out_dtype=np.uint8)
    assert got.dtype == np.uint8
    want = tfl.tflite_fixed_point_add((a.astype(int) - 128).astype(np.int8), _qp(0.05, 2),
                                      (b.astype(int) - 128).astype(np.int8), _qp(0.03, -8), _qp(0.07, 0))
    np.testing.assert_array_equal(got.astype(int), want.astype(int) + 128)

"""layer_specs: a target profile plus a layer's scales -> kernel specs."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim.kernels import conv2d, gemm
from hwsim.layer_specs import SplitRequant, layer_specs
from hwsim.oracle.requantize import requantize_one
from hwsim.types import RequantScheme


def test_tflite_multiplier_from_scales():
    # Scales exact in float32, so the ratios are SEMANTICS.md 8.3's QuantizeMultiplier inputs:
    # 0.5 -> (1073741824, 0); 0.25 -> (1073741824, -1); 1.5 -> (1610612736, 1)
    spec = layer_specs("tflite-reference", "conv2d", input_scale=0.5, weight_scale=[1.0, 0.5, 3.0],
                       output_scale=1.0)
    assert spec.requant.scheme is RequantScheme.DOUBLE_ROUNDING
    assert spec.requant.multiplier == (1073741824, 1073741824, 1610612736)
    assert spec.requant.shift == (0, -1, 1)
    assert (spec.requant.out_min, spec.requant.out_max) == (-128, 127)


def test_fully_connected_on_tflite_reference_requantises_in_double():
    spec = layer_specs("tflite-reference", "fully_connected", input_scale=0.5, weight_scale=0.25, output_scale=4.0)
    assert spec.requant.scheme is RequantScheme.FLOAT64_ROUND
    assert spec.requant.scale == (0.03125,)


def test_onnxruntime_scale_is_float32_in_mlas_order():
    xs, ws, ys = 0.0123, 0.0031, 0.0857
    spec = layer_specs("onnxruntime-x86", "matmul", input_scale=xs, weight_scale=ws, output_scale=ys)
    expected = (np.float32(xs) * np.float32(ws)) / np.float32(ys)
    assert spec.requant.scale == (float(expected),)
    assert spec.requant.out_signed is False and spec.requant.out_max == 255


def test_shift_only_needs_power_of_two_ratio():
    spec = layer_specs("npu-acc16", "conv2d", input_scale=2.0**-4, weight_scale=2.0**-6, output_scale=2.0**-3)
    assert spec.requant.shift == (-7,)
    with pytest.raises(ValueError, match="power of two"):
        layer_specs("npu-acc16", "conv2d", input_scale=0.1, weight_scale=2.0**-6, output_scale=2.0**-3)


def test_activation_clamp_and_zero_point_are_checked():
    spec = layer_specs("tflm", "conv2d", input_scale=0.1, weight_scale=0.1, output_scale=0.1,
                       output_zero_point=-128, output_min=-128, output_max=-128 + 60)
    assert (spec.requant.out_min, spec.requant.out_max) == (-128, -68)
    with pytest.raises(ValueError, match="output_zero_point"):
        layer_specs("tflm", "conv2d", input_scale=0.1, weight_scale=0.1, output_scale=0.1, output_zero_point=200)
    with pytest.raises(ValueError, match="input_scale"):
        layer_specs("tflm", "conv2d", input_scale=-1.0, weight_scale=0.1, output_scale=0.1)


def test_depthwise_tail_split_on_arm_neon_sdot():
    # LiteRT's optimised depthwise: channels < 8*floor(C/8) double_up, the rest double rounding
    c = 20
    ws = np.linspace(0.001, 0.01, c)
    spec = layer_specs("arm-neon-sdot", "depthwise_conv2d", input_scale=0.05, weight_scale=ws, output_scale=0.07)
    assert isinstance(spec.requant, SplitRequant)
    assert spec.requant.first_tail_channel == 16
    assert spec.requant.head.scheme is RequantScheme.SRDHM_HALF_UP and spec.requant.head.n_channels == 16
    assert spec.requant.tail.scheme is RequantScheme.DOUBLE_ROUNDING and spec.requant.tail.n_channels == 4

    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=(1, 6, 7, c), dtype=np.int8)
    w = rng.integers(-127, 128, size=(c, 3, 3, 1), dtype=np.int8)
    res = conv2d(x, w, padding=1, groups=c, x_zero_point=5, accum=spec.accum, requant=spec.requant,
                 return_accumulators=True)
    acc = res.accumulators
    for ch in range(c):
        params, local = (spec.requant.head, ch) if ch < 16 else (spec.requant.tail, ch - 16)
        expected = [requantize_one(int(v), local, 0, params)[0] for v in acc[..., ch].reshape(-1)]
        np.testing.assert_array_equal(res.output[..., ch].reshape(-1), expected, err_msg=f"channel {ch}")


def test_split_requant_in_gemm_counts_events_per_channel():
    spec = layer_specs("arm-neon-sdot", "depthwise_conv2d", input_scale=1.0, weight_scale=np.full(9, 1.0),
                       output_scale=1.0)
    a = np.full((2, 3), 100, dtype=np.int8)
    b = np.full((9, 3), 100, dtype=np.int8)   # acc = 30000 -> every output saturates at 127
    res = gemm(a, b, accum=spec.accum, requant=spec.requant, counters=True)
    assert np.all(res.output == 127)
    np.testing.assert_array_equal(res.counters.out_events, np.full(9, 2))

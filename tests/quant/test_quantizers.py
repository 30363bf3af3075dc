"""hwsim.quant.quantizers: hand-computed codes, scales and zero points for every granularity and format."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.graph.ir import QuantParams
from hwsim.quant.params import AffineParams, QuantFormat
from hwsim.quant.quantizers import (
    MSE_RATIOS,
    dequantize_tensor,
    fake_quantize,
    parse_granularity,
    quantize_tensor,
    to_ir_bias,
    to_ir_weights,
    weight_params,
)

F32 = np.float32


def codes(x, scale, zp, fmt, axis=None, group_size=None):
    return quantize_tensor(np.asarray(x, F32), AffineParams(np.asarray(scale, F32), zp, fmt, axis, group_size))


# --------------------------------------------------------------------------------------------------
# quantize / dequantize by hand
# --------------------------------------------------------------------------------------------------


def test_ties_round_half_to_even():
    # x / 0.5 = 0.5, 1.5, 2.5, -0.5, -1.5, -2.5 -> 0, 2, 2, -0, -2, -2
    got = codes([0.25, 0.75, 1.25, -0.25, -0.75, -1.25], 0.5, 0, QuantFormat(8))
    assert got.tolist() == [0, 2, 2, 0, -2, -2]
    # with zero point 3: the tie is decided before adding it (onnx QuantizeLinear)
    assert codes([0.25, 0.75, 1.25], 0.5, 3, QuantFormat(8)).tolist() == [3, 5, 5]


def test_int8_full_vs_restricted_symmetric():
    m = 1.9921875                                   # 127.5 / 64: the full-range scale is exactly 2^-6
    w = np.array([m, -m, 1.0, 0.0], F32)
    full = weight_params(w, QuantFormat(8, symmetric=True), "per-tensor")
    # full range: S = 2 max|r| / 255 = 2^-6; m / S = 127.5 -> 128 (even) -> clamped to 127; -127.5 -> -128
    assert full.scale == F32(2.0**-6) and full.zero_point == 0
    assert quantize_tensor(w, full).tolist() == [127, -128, 64, 0]
    restricted = weight_params(w, QuantFormat(8, symmetric=True, narrow=True), "per-tensor")
    # restricted: S = max|r| / 127; codes +-127, 1 / S = 63.75 -> 64
    assert restricted.scale == F32(m / 127) and restricted.zero_point == 0
    q = quantize_tensor(w, restricted)
    assert q.tolist() == [127, -127, 64, 0] and q.dtype == np.int8


def test_uint8_asymmetric_zero_point():
    # [-1, 3]: S = 4/255, zp = round(0 - (-1)/S) = round(63.75) = 64
    p = weight_params(np.array([-1.0, 3.0, 0.5], F32), QuantFormat(8, signed=False), "per-tensor")
    assert p.scale == F32(4 / 255) and p.zero_point == 64
    assert quantize_tensor(np.array([-1.0, 3.0, 0.0], F32), p).tolist() == [0, 255, 64]
    # the same range on int8: zp = round(-128 + 63.75) = -64
    p8 = weight_params(np.array([-1.0, 3.0], F32), QuantFormat(8), "per-tensor")
    assert p8.zero_point == -64
    assert quantize_tensor(np.array([-1.0, 3.0, 0.0], F32), p8).tolist() == [-128, 127, -64]


def test_dequantize_is_scale_times_code_minus_zero_point():
    p = AffineParams(F32(0.5), 64, QuantFormat(8, signed=False))
    q = np.array([0, 64, 65, 255], np.uint8)
    # 0.5 * (q - 64)
    assert dequantize_tensor(q, p).tolist() == [-32.0, 0.0, 0.5, 95.5]
    assert dequantize_tensor(q, p).dtype == np.float32


def test_4_bit_symmetric_restricted():
    # [-7, 7] codes; scale 0.25 by hand: x / 0.25 = 4, -28 (clamped to -7), 1.2 -> 1, 6.8 -> 7
    got = codes([1.0, -7.0, 0.3, 1.7], 0.25, 0, QuantFormat(4, symmetric=True, narrow=True))
    assert got.tolist() == [4, -7, 1, 7]
    p = weight_params(np.array([0.7, -0.35], F32), QuantFormat(4, symmetric=True, narrow=True), "per-tensor")
    assert p.scale == F32(0.1)          # 0.7 / 7
    assert quantize_tensor(np.array([0.7, -0.35, 0.04], F32), p).tolist() == [7, -4, 0]   # -3.5 -> -4 (even)


def test_2_bit_asymmetric():
    # int2 [-2, 1]; range [-1, 0.5]: S = 1.5 / 3 = 0.5, zp = round(-2 - (-1 / 0.5)) = 0
    p = weight_params(np.array([-1.0, 0.5], F32), QuantFormat(2), "per-tensor")
    assert p.scale == F32(0.5) and p.zero_point == 0
    x = np.array([-1.0, -0.5, 0.0, 0.5, 0.3], F32)
    assert quantize_tensor(x, p).tolist() == [-2, -1, 0, 1, 1]                 # 0.6 -> 1
    assert fake_quantize(x, p).tolist() == [-1.0, -0.5, 0.0, 0.5, 0.5]


def test_16_bit_signed_and_unsigned():
    p = weight_params(np.array([1.0, -1.0], F32), QuantFormat(16, symmetric=True, narrow=True), "per-tensor")
    assert p.scale == F32(1 / 32767)
    q = quantize_tensor(np.array([1.0, -1.0, 0.25], F32), p)
    assert q.dtype == np.int16 and q.tolist() == [32767, -32767, 8192]       # 0.25 * 32767 = 8191.75
    u = codes([0.0, 6.5535, 7.0, -1.0], 1e-4, 0, QuantFormat(16, signed=False))
    assert u.dtype == np.uint16 and u.tolist() == [0, 65535, 65535, 0]


def test_per_channel_axis():
    # two channels along axis 1, scales 0.5 and 2: [[1, 4], [-1, -4]] -> [[2, 2], [-2, -2]]
    got = codes([[1.0, 4.0], [-1.0, -4.0]], [0.5, 2.0], [0, 0], QuantFormat(8), axis=1)
    assert got.tolist() == [[2, 2], [-2, -2]]


# --------------------------------------------------------------------------------------------------
# weight_params per granularity
# --------------------------------------------------------------------------------------------------


def test_per_group_with_a_short_last_group():
    """fully_connected [2, 5] in groups of 2: groups [0:2], [2:4], [4:5] (short)."""
    w = np.array([[1.0, -2.54, 0.127, 0.05, 1.27],
                  [0.0, 0.0, -1.27, 0.6, 0.3]], F32)
    fmt = QuantFormat(8, symmetric=True, narrow=True)
    p = weight_params(w, fmt, "per-group:2")
    assert p.scale.shape == (2, 3) and p.group_size == 2 and p.axis == 0
    # max|group| / 127; an all-zero group gets scale 1
    expect = np.array([[2.54 / 127, 0.127 / 127, 1.27 / 127], [1.0, 1.27 / 127, 0.3 / 127]], F32)
    np.testing.assert_array_equal(p.scale, expect)
    q = quantize_tensor(w, p)
    # 1 / 0.02 = 50, -127, 127, 0.05 / 0.001 = 50, 127 | 0, 0, -127, 0.6 / 0.01 = 60, 127
    assert q.tolist() == [[50, -127, 127, 50, 127], [0, 0, -127, 60, 127]]
    deq = dequantize_tensor(q, p)
    assert deq[1, 3] == F32(60) * F32(0.01)
    with pytest.raises(ValueError, match=r"weights 'w': granularity per-group:2: the reduction axis has 5 "
                                         r"elements, which 2 does not divide"):
        weight_params(w, fmt, "per-group:2", allow_short_group=False)


def test_per_group_reduction_axis_of_a_conv_is_kh_kw_i():
    """conv [O=1, KH=2, KW=1, I=3]: k = (ky, kx, ci) flattened; groups of 4 are taps 0..3 and 4..5."""
    w = np.zeros((1, 2, 1, 3), F32)
    w[0, 0, 0, :] = [1.0, 2.0, 3.0]
    w[0, 1, 0, :] = [4.0, 100.0, 50.0]
    p = weight_params(w, QuantFormat(8, symmetric=True, narrow=True), "per-group:4")
    # group 0 = {1, 2, 3, 4} -> 4/127; group 1 = {100, 50} -> 100/127
    np.testing.assert_array_equal(p.scale, np.array([[4 / 127, 100 / 127]], F32))
    assert quantize_tensor(w, p).reshape(-1).tolist() == [32, 64, 95, 127, 127, 64]   # 31.75, 63.5, 95.25; 63.5


def test_per_channel_group_shares_a_scale_among_n_output_channels():
    w = np.array([[1.0, 0.0], [0.0, -2.0], [4.0, 0.5]], F32)
    p = weight_params(w, QuantFormat(8, symmetric=True, narrow=True), "per-channel-group:2")
    # channels {0, 1}: max 2; {2}: max 4 (a short last group of channels)
    np.testing.assert_array_equal(p.scale, np.array([2 / 127, 2 / 127, 4 / 127], F32))
    assert p.axis == 0 and p.group_size is None


def test_per_channel_and_per_tensor():
    w = np.array([[1.0, -0.5], [0.25, 0.125]], F32)
    fmt = QuantFormat(8, symmetric=True, narrow=True)
    np.testing.assert_array_equal(weight_params(w, fmt, "per-channel").scale, np.array([1 / 127, 0.25 / 127], F32))
    assert weight_params(w, fmt, "per-tensor").scale == F32(1 / 127)
    # axis 1: channels are columns, max 1 and 0.5
    np.testing.assert_array_equal(weight_params(w, fmt, "per-channel", axis=1).scale,
                                  np.array([1 / 127, 0.5 / 127], F32))


def _brute_force_mse(group: np.ndarray, fmt: QuantFormat) -> float:
    """An independent search: plain Python over the same grid, scalar arithmetic."""
    lo, hi = min(0.0, float(group.min())), max(0.0, float(group.max()))
    best = None
    for r in np.linspace(1.0, 0.5, 100):
        m = max(-lo * r, hi * r)
        s = float(F32(2 * m / (fmt.qmax - fmt.qmin))) if m > 0 else 1.0
        err = 0.0
        for v in group.tolist():
            q = min(max(round(float(F32(v) / F32(s))), fmt.qmin), fmt.qmax)   # Python round: half to even
            err += (v - float(F32(q) * F32(s))) ** 2
        if best is None or err < best[0]:
            best = (err, s)
    return best[1]


def test_mse_method_matches_a_brute_force_search_and_beats_minmax():
    rng = np.random.default_rng(0)
    w = rng.laplace(size=(3, 40)).astype(F32)
    fmt = QuantFormat(4, symmetric=True)
    p = weight_params(w, fmt, "per-channel", method="mse")
    for c in range(3):
        assert p.scale[c] == F32(_brute_force_mse(w[c], fmt))
    mm = weight_params(w, fmt, "per-channel")
    err = lambda params: ((w - fake_quantize(w, params)) ** 2).sum(axis=1)
    assert np.all(err(p) <= err(mm))
    assert np.any(p.scale < mm.scale)                   # some channel is clipped
    assert len(MSE_RATIOS) == 100 and MSE_RATIOS[0] == 1.0 and MSE_RATIOS[-1] == 0.5


def test_mse_per_group_searches_each_group():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(2, 8)).astype(F32)
    w[1, 5] = 9.0
    fmt = QuantFormat(4, symmetric=True)
    p = weight_params(w, fmt, "per-group:4", method="mse")
    for o in range(2):
        for g in range(2):
            assert p.scale[o, g] == F32(_brute_force_mse(w[o, 4 * g:4 * g + 4], fmt))


@settings(max_examples=40)
@given(seed=st.integers(0, 2**31 - 1), bits=st.integers(2, 16), signed=st.booleans(), symmetric=st.booleans(),
       gran=st.sampled_from(["per-tensor", "per-channel", "per-group:3", "per-group:8", "per-channel-group:2"]))
def test_fake_quantization_error_is_at_most_half_a_step_inside_the_range(seed, bits, signed, symmetric, gran):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(3, 2, 5)).astype(F32)
    fmt = QuantFormat(bits, signed=signed, symmetric=symmetric)
    p = weight_params(w, fmt, gran)
    q = quantize_tensor(w, p)
    assert q.dtype == fmt.dtype and q.min() >= fmt.qmin and q.max() <= fmt.qmax
    step = {"per-tensor": lambda: np.broadcast_to(p.scale, w.shape),
            "per-channel": lambda: np.broadcast_to(p.scale[:, None, None], w.shape),
            "per-channel-group:2": lambda: np.broadcast_to(p.scale[:, None, None], w.shape)}.get(
        gran, lambda: np.repeat(p.scale, int(gran.split(":")[1]), axis=1)[:, :10].reshape(w.shape))()
    err = np.abs(fake_quantize(w, p) - w)
    # full-range symmetric formats clip max|w| to qmax (S = 2m / (2^n - 1) puts it at qmax + 1/2): one step
    bound = step * (1.0 if symmetric else 0.5) * (1 + 1e-5) + 1e-7
    assert np.all(err <= bound)


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [1, 17])
def test_bits_out_of_range(bits):
    with pytest.raises(ValueError, match=r"bits: expected an integer in 2\.\.16"):
        QuantFormat(bits)


def test_nan_weights_are_named():
    w = np.ones((2, 3), F32)
    w[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"weights 'conv1.w': holds NaN or Inf \(first at index \(1, 2\)\)"):
        weight_params(w, QuantFormat(8), "per-channel", name="conv1.w")
    with pytest.raises(ValueError, match=r"quantize_tensor: x: holds NaN or Inf"):
        quantize_tensor(w, AffineParams(F32(1.0), 0, QuantFormat(8)))


@pytest.mark.parametrize("gran", ["per-group:0", "per-group", "per-block:4", "channel", "per-group:-2"])
def test_unknown_granularity(gran):
    with pytest.raises(ValueError, match=r"granularity: expected per-tensor, per-channel, per-group:N"):
        weight_params(np.ones((2, 2), F32), QuantFormat(8), gran)


def test_bad_method_axis_and_params_shape():
    with pytest.raises(ValueError, match=r"method: expected one of minmax, mse, got 'kl'"):
        weight_params(np.ones((2, 2), F32), QuantFormat(8), "per-tensor", method="kl")
    with pytest.raises(ValueError, match=r"axis: 2 is out of range for weights 'w' of shape \(2, 2\)"):
        weight_params(np.ones((2, 2), F32), QuantFormat(8), "per-channel", axis=2)
    p = AffineParams(np.ones(3, F32), np.zeros(3), QuantFormat(8), 0)
    with pytest.raises(ValueError, match=r"3 per-channel scales for 2 channels"):
        quantize_tensor(np.ones((2, 2), F32), p)


def test_parse_granularity():
    assert parse_granularity("per-group:32") == ("per-group", 32)
    assert parse_granularity("per-channel-group:4") == ("per-channel-group", 4)
    assert parse_granularity("per-tensor") == ("per-tensor", None)


# --------------------------------------------------------------------------------------------------
# Into the IR
# --------------------------------------------------------------------------------------------------


def test_to_ir_weights_per_group():
    w = np.array([[1.0, -2.54, 0.127, 0.05, 1.27]], F32)
    p = weight_params(w, QuantFormat(4, symmetric=True), "per-group:2")
    q, qp, extra = to_ir_weights(w, p)
    assert extra is None and q.dtype == np.int8
    assert isinstance(qp, QuantParams) and qp.group_size == 2 and qp.axis == 0 and qp.scale.shape == (1, 3)
    np.testing.assert_array_equal(q, quantize_tensor(w, p))
    with pytest.raises(ValueError, match=r"per-group scales need shape \[O, G\] and axis 0"):
        QuantParams(np.ones(3, F32), np.zeros(3), 0, group_size=2)


def test_to_ir_bias_integer_and_float():
    # per channel: s_x = 0.5, s_w = [0.25, 0.125] -> bias scales 0.125, 0.0625; 1.0 / 0.125 = 8, -0.1 / 0.0625 = -1.6
    wq = QuantParams(np.array([0.25, 0.125], F32), np.zeros(2), 0)
    data, qp = to_ir_bias(np.array([1.0, -0.1]), 0.5, wq)
    assert data.dtype == np.int32 and data.tolist() == [8, -2]
    assert qp.scale.tolist() == [0.125, 0.0625] and qp.axis == 0
    # a 16-bit bias saturates: 10000 / 0.125 = 80000 -> 32767
    data16, _ = to_ir_bias(np.array([10000.0, 0.0]), 0.5, wq, bits=16)
    assert data16.tolist() == [32767, 0]
    # per group: the bias stays float32
    gq = QuantParams(np.ones((2, 3), F32), np.zeros((2, 3)), 0, group_size=4)
    fdata, fq = to_ir_bias(np.array([1.0, -0.1]), 0.5, gq)
    assert fq is None and fdata.dtype == np.float32 and fdata.tolist() == [1.0, F32(-0.1)]
    with pytest.raises(ValueError, match=r"bias 'b': 3 values for 2 weight scales"):
        to_ir_bias(np.ones(3), 0.5, wq)

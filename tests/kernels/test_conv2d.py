"""The portable conv2d: hand-worked vectors, the NHWC / k-order layout against
GEMM, and C == oracle over geometries x accumulator specs."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_cases import FOLDED, IN_MAC, SAT, all_specs, check_conv, edge_array, spec_id

from hwsim import kernels
from hwsim.types import AccumSpec


def _row(values, dtype=np.uint8):
    """A 1 x 1 x W x 1 NHWC input."""
    return np.array(values, dtype=dtype).reshape(1, 1, -1, 1)


def test_padded_row_hand_worked():
    # x = [1, 2, 3], w = [1, 1, 1], one padding column each side:
    # out[0] = pad + 1 + 2 = 3, out[1] = 1 + 2 + 3 = 6, out[2] = 2 + 3 + pad = 5 (zx = 0)
    w = np.ones((1, 1, 3, 1), dtype=np.int8)
    out = kernels.conv2d(_row([1, 2, 3]), w, padding=(0, 1, 0, 1))
    np.testing.assert_array_equal(out.reshape(-1), [3, 6, 5])
    # zx = 1: x - zx = [0, 1, 2] and padding taps contribute 0 -> [1, 3, 3]; folded gives the same exactly
    for zp in (IN_MAC, FOLDED):
        out = kernels.conv2d(_row([1, 2, 3]), w, padding=(0, 1, 0, 1), x_zero_point=1,
                             accum=AccumSpec(input_zero_point=zp))
        np.testing.assert_array_equal(out.reshape(-1), [1, 3, 3])


def test_padding_taps_keep_their_place_in_the_pairs():
    # x86-avx2 pairs on u8 with zx = 255 folded, w = [127, 127, 127], x = [255, 0], one padding column each side.
    # out[0] taps (pad=255, 255, 0): pair 255*127*2 = 64770 -> sat16 32767, then 0; folded -255 * 381 = -97155
    #   -> 32767 - 97155 = -64388 (exact would be -32385).  Had padding been skipped the pair would be (255, 0).
    # out[1] taps (255, 0, pad=255): pair 32385 fits, then 32385 -> 64770 - 97155 = -32385 = exact.
    avx2 = AccumSpec(group=2, group_bits=16, group_overflow=SAT, acc_bits=32, input_zero_point=FOLDED)
    w = np.full((1, 1, 3, 1), 127, dtype=np.int8)
    res = kernels.conv2d(_row([255, 0]), w, padding=(0, 1, 0, 1), x_zero_point=255, accum=avx2, counters=True)
    np.testing.assert_array_equal(res.output.reshape(-1), [-64388, -32385])
    assert res.counters.group_events.tolist() == [1]
    exact = kernels.conv2d(_row([255, 0]), w, padding=(0, 1, 0, 1), x_zero_point=255)
    np.testing.assert_array_equal(exact.reshape(-1), [-32385, -32385])


def test_depthwise_hand_worked():
    # 2 input channels, depth multiplier 2 -> out channel o reads input channel o // 2.
    # x (1x1x2x2) = [[1, 10], [2, 20]] (pixel, channel); kernel 1x2, no padding -> one output pixel:
    # o0: w [1, 1] on ch0 -> 1 + 2 = 3;  o1: w [1, -1] on ch0 -> -1;  o2: w [2, 0] on ch1 -> 20;  o3: w [0, 3] on ch1 -> 60
    x = np.array([[1, 10], [2, 20]], dtype=np.int8).reshape(1, 1, 2, 2)
    w = np.array([[1, 1], [1, -1], [2, 0], [0, 3]], dtype=np.int8).reshape(4, 1, 2, 1)
    out = kernels.conv2d(x, w, groups=2)
    np.testing.assert_array_equal(out.reshape(-1), [3, -1, 20, 60])


@pytest.mark.parametrize("spec", [AccumSpec(), AccumSpec(group=2, group_bits=16, group_overflow=SAT, acc_bits=16,
                                                         acc_overflow=SAT, input_zero_point=FOLDED)])
def test_1x1_conv_equals_gemm_on_nhwc_rows(spec):
    rng = np.random.default_rng(3)
    x = edge_array(rng, (2, 3, 4, 13), np.uint8)
    w = edge_array(rng, (7, 1, 1, 13), np.int8)
    bias = edge_array(rng, (7,), np.int32)
    zw = rng.integers(-128, 128, 7)
    conv = kernels.conv2d(x, w, x_zero_point=9, w_zero_point=zw, bias=bias, accum=spec, counters=True)
    gemm = kernels.gemm(x.reshape(-1, 13), w.reshape(7, 13), a_zero_point=9, b_zero_point=zw, bias=bias,
                        accum=spec, counters=True)
    np.testing.assert_array_equal(conv.output.reshape(-1, 7), gemm.output)
    for name in ("group_events", "acc_events", "max_abs_acc"):
        np.testing.assert_array_equal(getattr(conv.counters, name), getattr(gemm.counters, name))


# (x shape NHWC, w shape [O, KH, KW, C/g], stride, dilation, padding (t, l, b, r), groups)
GEOMETRIES = {
    "3x3-pad1": ((1, 5, 5, 3), (4, 3, 3, 3), 1, 1, (1, 1, 1, 1), 1),
    "stride2-dil2-asym": ((1, 7, 8, 2), (3, 2, 3, 2), (2, 1), (2, 2), (0, 1, 2, 3), 1),
    "groups2": ((1, 4, 4, 6), (4, 3, 2, 3), 1, 1, (1, 0, 1, 1), 2),
    "depthwise-mult2": ((1, 5, 5, 5), (10, 3, 3, 1), 2, 1, (1, 1, 1, 1), 5),
    "depthwise-9ch-dil2": ((1, 6, 6, 9), (9, 3, 3, 1), 1, 2, (2, 2, 2, 2), 9),
    "batch2-2x3": ((2, 4, 7, 3), (5, 2, 3, 3), (1, 2), 1, (0, 0, 1, 0), 1),
    "pad-beyond-kernel": ((1, 2, 3, 2), (2, 2, 2, 2), 1, 1, (3, 3, 3, 3), 1),
}
DTYPES = [(np.uint8, np.int8), (np.int8, np.int8), (np.int16, np.int8), (np.int16, np.int16)]


@pytest.mark.parametrize("geometry", list(GEOMETRIES), ids=str)
@pytest.mark.parametrize("spec", all_specs()[::5], ids=spec_id)
def test_geometry_x_spec_matches_oracle(geometry, spec):
    xs, ws, stride, dilation, padding, groups = GEOMETRIES[geometry]
    rng = np.random.default_rng(zlib.crc32((geometry + spec_id(spec)).encode()))
    x_dt, w_dt = DTYPES[int(rng.integers(len(DTYPES)))]
    x = edge_array(rng, xs, x_dt)
    w = edge_array(rng, ws, w_dt)
    info_x, info_w = np.iinfo(x_dt), np.iinfo(w_dt)
    zx = int(rng.integers(info_x.min, int(info_x.max) + 1))
    zw = rng.integers(info_w.min, int(info_w.max) + 1, size=ws[0]) if rng.random() < 0.5 else 0
    bias = edge_array(rng, (ws[0],), np.int64 if spec.acc_bits == 64 else np.int32)
    check_conv(x, w, spec=spec, stride=stride, dilation=dilation, padding=padding, groups=groups,
               x_zero_point=zx, w_zero_point=zw, bias=bias)


@pytest.mark.parametrize("spec", [s for s in all_specs() if s.acc_bits == 16][::2], ids=spec_id)
def test_int4_depthwise_matches_oracle(spec):
    rng = np.random.default_rng(11)
    x = edge_array(rng, (1, 4, 5, 3), np.int8)
    w = edge_array(rng, (6, 3, 3, 1), np.int8, -8, 7)
    check_conv(x, w, spec=spec, groups=3, padding=(1, 0, 1, 2), x_zero_point=-128, weight_bits=4,
               w_zero_point=rng.integers(-8, 8, size=6))


@st.composite
def conv_cases(draw):
    spec = draw(st.sampled_from(all_specs()))
    groups = draw(st.integers(1, 3))
    cg, og = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw, dh, dw = (draw(st.integers(1, 2)) for _ in range(4))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(4))
    in_h = draw(st.integers(max(1, dh * (kh - 1) + 1 - pad[0] - pad[2]), 5))
    in_w = draw(st.integers(max(1, dw * (kw - 1) + 1 - pad[1] - pad[3]), 5))
    seed = draw(st.integers(0, 2**32 - 1))
    x_dt, w_dt = draw(st.sampled_from(DTYPES))
    return spec, (1, in_h, in_w, cg * groups), (og * groups, kh, kw, cg), (sh, sw), (dh, dw), pad, groups, seed, x_dt, w_dt


@settings(max_examples=60)
@given(conv_cases())
def test_conv_matches_oracle_property(case):
    spec, xs, ws, stride, dilation, pad, groups, seed, x_dt, w_dt = case
    rng = np.random.default_rng(seed)
    info_x = np.iinfo(x_dt)
    check_conv(edge_array(rng, xs, x_dt), edge_array(rng, ws, w_dt), spec=spec, stride=stride, dilation=dilation,
               padding=pad, groups=groups, x_zero_point=int(rng.integers(info_x.min, int(info_x.max) + 1)),
               bias=edge_array(rng, (ws[0],), np.int32))


@pytest.mark.parametrize("spec", [s for s in all_specs() if s.acc_bits in (16, 24)][::4], ids=spec_id)
def test_long_taps_with_exact_and_overflowing_blocks(spec):
    # K = 3 * 3 * 40 = 360 per group (6 blocks of 64): mostly tiny values, a few extreme channels,
    # so some blocks run exactly and others overflow; padding taps hold zx = 0 here.
    rng = np.random.default_rng(zlib.crc32(spec_id(spec).encode()))
    x = rng.integers(-3, 4, size=(1, 3, 3, 80)).astype(np.int16)
    x[..., [5, 6, 47]] = edge_array(rng, (1, 3, 3, 3), np.int16)
    w = rng.integers(-3, 4, size=(4, 3, 3, 40)).astype(np.int8)
    w[..., 5:8] = edge_array(rng, (4, 3, 3, 3), np.int8)
    _, o = check_conv(x, w, spec=spec, groups=2, padding=1, bias=edge_array(rng, (4,), np.int32))
    assert sum(o.acc_events) + sum(o.group_events) > 0

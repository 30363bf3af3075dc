"""PreparedConv2d / PreparedGemm (checks, specs and packed weights once) == hwsim.kernels, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim import kernels, layer_specs
from hwsim.sim.packed import PreparedConv2d, PreparedGemm

GEOMETRIES = [
    # (in_c, out_c, k, stride, dilation, padding, groups, h, w)
    (3, 8, 3, 2, 1, (0, 0, 1, 1), 1, 11, 9),
    (16, 24, 1, 1, 1, 0, 1, 7, 7),
    (8, 8, 3, 1, 1, 1, 8, 9, 10),
    (12, 24, 5, 2, 1, (2, 1, 2, 1), 12, 13, 8),
    (6, 4, 3, 1, 2, 2, 2, 8, 8),
    (32, 64, 3, 1, 1, 1, 1, 6, 6),
]


TARGETS = ["onnxruntime-x86", "tflite-reference", "x86-avx2", "npu-acc24"]


@pytest.mark.parametrize("geom", GEOMETRIES, ids=[str(g) for g in GEOMETRIES])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("per_channel", [False, True])
def test_prepared_conv_equals_kernels(geom, target, per_channel):
    in_c, out_c, k, stride, dilation, padding, groups, h, w = geom
    rng = np.random.default_rng(100 * GEOMETRIES.index(geom) + 10 * TARGETS.index(target) + per_channel)
    signed_x = target in ("tflite-reference", "npu-acc24")
    x_dtype = np.int8 if signed_x else np.uint8
    info = np.iinfo(x_dtype)
    x = rng.integers(info.min, info.max + 1, (2, h, w, in_c)).astype(x_dtype)
    wts = rng.integers(-127, 128, (out_c, k, k, in_c // groups)).astype(np.int8)
    pow2 = target == "npu-acc24"
    n_scales = out_c if per_channel else 1
    ws = 2.0 ** -rng.integers(6, 9, n_scales) if pow2 else rng.uniform(0.002, 0.02, n_scales)
    op = "depthwise_conv2d" if groups == in_c and groups > 1 else "conv2d"
    spec = layer_specs(target, op, input_scale=2.0**-5 if pow2 else 0.02, weight_scale=ws,
                       output_scale=2.0**-3 if pow2 else 0.1, n_channels=out_c,
                       output_zero_point=int(rng.integers(-5, 5)) + (0 if signed_x else 128))
    if not hasattr(spec.requant, "n_channels"):
        pytest.skip("split requantisation runs through hwsim.kernels")
    kw = dict(stride=stride, dilation=dilation, padding=padding, groups=groups,
              x_zero_point=int(rng.integers(info.min, info.max + 1)), w_zero_point=0,
              bias=rng.integers(-5000, 5000, out_c).astype(np.int32), accum=spec.accum, requant=spec.requant)
    want = kernels.conv2d(x, wts, **kw)
    prepared = PreparedConv2d(wts, in_c=in_c, x_dtype=x_dtype, **kw)
    for threads in (1, 2):
        got = prepared(x, threads)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("m, k, n", [(1, 1280, 1000), (5, 7, 3), (17, 64, 33)])
@pytest.mark.parametrize("target", ["onnxruntime-x86", "tflm"])
def test_prepared_gemm_equals_kernels(m, k, n, target):
    rng = np.random.default_rng(m * k * n)
    a_dtype = np.uint8 if target == "onnxruntime-x86" else np.int8
    info = np.iinfo(a_dtype)
    a = rng.integers(info.min, info.max + 1, (m, k)).astype(a_dtype)
    b = rng.integers(-127, 128, (n, k)).astype(np.int8)
    spec = layer_specs(target, "fully_connected", input_scale=0.05, weight_scale=rng.uniform(0.001, 0.01, n),
                       output_scale=0.3, output_zero_point=3)
    kw = dict(a_zero_point=int(rng.integers(info.min, info.max + 1)), b_zero_point=0,
              bias=rng.integers(-9000, 9000, n).astype(np.int32), accum=spec.accum, requant=spec.requant)
    want = kernels.gemm(a, b, **kw)
    np.testing.assert_array_equal(PreparedGemm(b, a_dtype=a_dtype, **kw)(a), want)


def test_prepared_conv_checks_the_activation():
    w = np.ones((4, 3, 3, 2), np.int8)
    spec = layer_specs("onnxruntime-x86", "conv2d", input_scale=0.1, weight_scale=0.1, output_scale=0.1,
                       output_zero_point=0)
    p = PreparedConv2d(w, in_c=2, x_dtype=np.uint8, accum=spec.accum, requant=spec.requant)
    for bad in (np.zeros((1, 5, 5, 2), np.int8), np.zeros((1, 5, 5, 3), np.uint8),
                np.zeros((1, 5, 5, 4), np.uint8)[..., ::2], np.zeros((1, 1, 1, 2), np.uint8), [[1]]):
        with pytest.raises(ValueError, match=r"x"):
            p(bad)

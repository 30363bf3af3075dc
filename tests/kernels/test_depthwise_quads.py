"""Depthwise int32 on VPDPBUSD quads (c_kernels/hw_fast_depthwise.c, dw_quads_8bit):
quads gathered from a padded byte row, the fourth byte left 0 for kernel_w = 3.
Same bits as the portable kernel for kernel widths around 3 and 4, dilations,
asymmetric padding, strides, s8 / u8 inputs, channel counts off the 16-lane grid."""

from __future__ import annotations

import numpy as np
import pytest
from fastnarrow_cases import HAVE_FAST, NO_FAST_REASON, portable_only

from hwsim._native import lib
from hwsim.kernels import AccumSpec, RequantParams, conv2d
from hwsim.types import RequantScheme

pytestmark = pytest.mark.skipif(not HAVE_FAST, reason=NO_FAST_REASON)


@pytest.mark.parametrize("x_dtype", [np.uint8, np.int8], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kernel", [(3, 3), (3, 5), (2, 2), (1, 4), (3, 1), (5, 7)], ids=str)
@pytest.mark.parametrize("geometry", [dict(padding=1), dict(padding=(0, 2, 1, 1), dilation=2),
                                      dict(padding=(1, 0, 0, 2), stride=2)], ids=str)
@pytest.mark.parametrize("channels", [20, 144])
def test_depthwise_quads_equal_portable(x_dtype, kernel, geometry, channels):
    rng = np.random.default_rng(channels + kernel[1])
    info = np.iinfo(x_dtype)
    x = rng.integers(info.min, info.max + 1, (2, 13, 15, channels)).astype(x_dtype)
    w = rng.integers(-128, 128, (channels, *kernel, 1)).astype(np.int8)
    zx = int(info.min) + 9
    rq = RequantParams(scheme=RequantScheme.FLOAT32, scale=np.linspace(0.001, 0.01, channels), zero_point=3,
                       out_bits=8, out_signed=False)
    kw = dict(groups=channels, x_zero_point=zx, bias=rng.integers(-5000, 5000, channels).astype(np.int32),
              accum=AccumSpec(), requant=rq, return_accumulators=True, **geometry)
    before = lib.hw_fast_calls()
    fast = conv2d(x, w, **kw)
    assert lib.hw_fast_calls() == before + 1
    with portable_only():
        port = conv2d(x, w, **kw)
    np.testing.assert_array_equal(fast.accumulators, port.accumulators)
    np.testing.assert_array_equal(fast.output, port.output)

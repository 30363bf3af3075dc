"""Depthwise convolution on the x86 fast path (c_kernels/hw_fast_depthwise.c).

Vectors run across output channels and each lane keeps its tap order, so the
fast path must equal the portable kernel for every accumulator spec it takes --
int32 wrap, 16- and 24-bit saturation, narrow wraps, 64-bit -- including the
counters.  Channel counts that are not a multiple of 16 or 32 (tails), depth
multipliers, stride 2, dilation and asymmetric padding are all covered; small
cases are also held to the pure-Python oracle.
"""

from __future__ import annotations

import numpy as np
import pytest
from fastnarrow_cases import (HAVE_FAST, NO_FAST_REASON, K, assert_matches_oracle, assert_same_result,
                              oracle_conv2d, run_fast_and_portable, spec)

from hwsim.numerics.requant_params import RequantParams
from hwsim.types import AccumSpec, RequantScheme, Rounding

pytestmark = pytest.mark.skipif(not HAVE_FAST, reason=NO_FAST_REASON)

SPECS = {
    "int32": spec(32, "wrap", "in_mac", False),
    "int32_folded": spec(32, "wrap", "folded", True),
    "sat16": spec(16, "saturate", "in_mac", True),
    "sat16_late_bias": spec(16, "saturate", "folded", False),
    "sat24": spec(24, "saturate", "in_mac", False),
    "sat24_folded": spec(24, "saturate", "folded", True),
    "sat12": spec(12, "saturate", "in_mac", True),
    "wrap16": spec(16, "wrap", "in_mac", True),
    "acc64": spec(64, "wrap", "in_mac", True),
    "sat31": spec(31, "saturate", "in_mac", True),
}

GEOMETRIES = [
    # (batch, in_hw, in_c, depth multiplier, kernel, stride, dilation, padding)
    (1, (9, 10), 144, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    (2, (7, 8), 17, 1, (3, 3), (2, 2), (1, 1), (0, 1, 1, 0)),
    (1, (11, 9), 40, 2, (3, 2), (1, 2), (2, 1), (2, 0, 1, 3)),
    (1, (6, 7), 5, 3, (5, 5), (1, 1), (1, 1), (2, 2, 2, 2)),
    (1, (8, 6), 33, 1, (1, 4), (2, 1), (1, 2), (0, 3, 0, 2)),
]


def operands(rng, geom, x_dtype, saturate: bool):
    batch, (h, w), c, dm, (kh, kw), *_ = geom
    if x_dtype == np.int16:
        x = rng.integers(-181, 182, (batch, h, w, c))
        hi = 181
    else:
        info = np.iinfo(x_dtype)
        x = rng.integers(info.min, info.max + 1, (batch, h, w, c))
        hi = info.max
    wt = rng.integers(-128, 128, (c * dm, kh, kw, 1))
    if saturate:
        x[:, : h // 2 + 1] = hi
        wt[: (c * dm) // 2] = 127
    return x.astype(x_dtype), wt.astype(np.int8)


def call_kwargs(rng, geom, acc_spec, x_dtype):
    batch, (h, w), c, dm, (kh, kw), stride, dil, pad = geom
    zx = 9 if x_dtype == np.uint8 else -4
    bits = acc_spec.acc_bits
    # 64-bit accumulators run on int32 lanes only while |bias| + the k loop's
    # bound fits int32 (larger biases go to the portable kernel)
    lim = 1 << (min(bits, 32) - 1) if bits <= 32 else 1 << 20
    bias = rng.integers(-lim, lim, c * dm).astype(np.int64)
    bias[0] = lim - 1
    return dict(stride=stride, dilation=dil, padding=pad, groups=c, x_zero_point=zx,
                w_zero_point=rng.integers(-2, 3, c * dm).astype(np.int64), bias=bias, accum=acc_spec)


@pytest.mark.parametrize("geom", GEOMETRIES, ids=lambda g: f"c{g[2]}x{g[3]}_k{g[4]}_s{g[5]}_d{g[6]}_p{g[7]}")
@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("x_dtype", [np.uint8, np.int8, np.int16], ids=lambda d: np.dtype(d).name)
def test_depthwise_fast_equals_portable(geom, name, x_dtype):
    rng = np.random.default_rng(abs(hash((geom[2], name, np.dtype(x_dtype).name))) % 2**32)
    x, w = operands(rng, geom, x_dtype, saturate=True)
    kw = call_kwargs(rng, geom, SPECS[name], x_dtype)
    # counters on: narrow wraps cannot count their events fast (the call goes
    # to the portable kernel, still identical); counters off: the fast path
    results = []
    for counters in (True, False):
        for threads in (1, 2):
            fast, port, took = run_fast_and_portable(K.conv2d, x, w, return_accumulators=True, counters=counters,
                                                     n_threads=threads, **kw)
            assert_same_result(fast, port, f"{name} counters={counters} threads={threads}")
            results.append(fast)
            if not counters:
                assert took, "the depthwise fast path declined a case it is meant to take"
    np.testing.assert_array_equal(results[0].accumulators, results[1].accumulators)
    if name.startswith("sat16"):
        assert results[0].counters.acc_events.sum() > 0, "the case is meant to saturate"


@pytest.mark.parametrize("name", ["sat16", "sat24_folded", "int32", "wrap16", "sat12"])
def test_depthwise_small_equals_oracle(name):
    geom = (1, (5, 6), 7, 2, (3, 3), (2, 1), (1, 2), (1, 2, 2, 0))
    rng = np.random.default_rng(11)
    x, w = operands(rng, geom, np.uint8, saturate=True)
    kw = call_kwargs(rng, geom, SPECS[name], np.uint8)
    counters = name != "wrap16"
    fast, port, took = run_fast_and_portable(K.conv2d, x, w, return_accumulators=True, counters=counters, **kw)
    assert took
    assert_same_result(fast, port, name)
    orc = oracle_conv2d(x, w, **{k: v for k, v in kw.items() if k != "groups"}, groups=geom[2])
    if not counters:
        np.testing.assert_array_equal(fast.accumulators, np.array(orc.accumulators, dtype=np.int64))
    else:
        assert_matches_oracle(fast, orc, what=name)


@pytest.mark.parametrize("geom", GEOMETRIES, ids=lambda g: f"c{g[2]}x{g[3]}_k{g[4]}_s{g[5]}_d{g[6]}_p{g[7]}")
@pytest.mark.parametrize("name", ["int32", "int32_folded", "sat24", "sat24_folded", "wrap16"])
@pytest.mark.parametrize("x_dtype", [np.uint8, np.int8], ids=lambda d: np.dtype(d).name)
def test_depthwise_exact_8bit_quads(geom, name, x_dtype):
    """8-bit x, weights without zero point (w' fits s8), every channel provably
    exact or wrapping: the VPDPBUSD route over 4-tap quads on raw x."""
    rng = np.random.default_rng(17)
    x, w = operands(rng, geom, x_dtype, saturate=True)
    kw = call_kwargs(rng, geom, SPECS[name], x_dtype)
    kw["w_zero_point"] = 0
    kw["bias"] = rng.integers(-5000, 5000, w.shape[0]).astype(np.int64)
    for threads in (1, 2):
        fast, port, took = run_fast_and_portable(K.conv2d, x, w, return_accumulators=True, n_threads=threads, **kw)
        assert took
        assert_same_result(fast, port, f"quads {name} threads={threads}")


def test_depthwise_sat16_hand_checked():
    """One channel, 1x3 kernel, products +20000, +20000, -20000 in tap order:
    sat16 gives 20000 -> 32767 -> 12767 (one event); the exact sum is 20000."""
    x = np.array([[[[100], [100], [-100]]]], dtype=np.int16)
    w = np.array([[[[127]], ]], dtype=np.int8).reshape(1, 1, 1, 1)
    w = np.full((1, 1, 3, 1), 100, dtype=np.int8)
    x = x * 2   # 200 * 100 = 20000
    res = K.conv2d(x, w, groups=1, accum=spec(16), return_accumulators=True, counters=True)
    assert int(res.accumulators[0, 0, 0, 0]) == 12767
    assert int(res.counters.acc_events[0]) == 1


REQUANTS = [
    RequantParams(scheme=RequantScheme.FLOAT32, scale=tuple(np.linspace(0.001, 0.01, 144)), zero_point=128,
                  out_bits=8, out_signed=False),
    RequantParams(scheme=RequantScheme.FLOAT32, scale=(0.004,), zero_point=-3, out_bits=8, out_signed=True,
                  rounding=Rounding.FLOOR),
    RequantParams(scheme=RequantScheme.DOUBLE_ROUNDING, multiplier=(1395864371,), shift=(-8,), zero_point=0,
                  out_bits=8, out_signed=True),
    RequantParams(scheme=RequantScheme.SHIFT_ONLY, shift=(-7,), rounding=Rounding.HALF_UP, out_bits=8,
                  out_signed=True),
    RequantParams(scheme=RequantScheme.FLOAT64_ROUND, scale=(0.0041,), zero_point=5, out_bits=8, out_signed=True),
]


@pytest.mark.parametrize("rq", REQUANTS, ids=lambda r: f"{r.scheme.value}_{r.rounding.value}")
@pytest.mark.parametrize("name", ["int32", "sat16", "sat24"])
def test_depthwise_requantised(rq, name):
    geom = GEOMETRIES[0]
    rng = np.random.default_rng(5)
    x, w = operands(rng, geom, np.uint8, saturate=False)
    kw = call_kwargs(rng, geom, SPECS[name], np.uint8)
    kw["bias"] = rng.integers(-2000, 2000, 144).astype(np.int64)
    for counters in (False, True):
        fast, port, took = run_fast_and_portable(K.conv2d, x, w, requant=rq, return_accumulators=True,
                                                 counters=counters, **kw)
        assert took
        assert_same_result(fast, port, f"{name} {rq.scheme.value}")
    # the vectorised requantisation against the oracle, on every output
    from hwsim.oracle import requantize as orq
    rows = fast.accumulators.reshape(-1, 144).tolist()
    want = np.array(orq.requantize(rows, rq), dtype=np.int64).reshape(fast.output.shape)
    np.testing.assert_array_equal(fast.output.astype(np.int64), want)


def test_depthwise_only_requantised_output():
    """Without acc_out (the fast route of a real model)."""
    geom = GEOMETRIES[1]
    rng = np.random.default_rng(6)
    x, w = operands(rng, geom, np.uint8, saturate=False)
    kw = call_kwargs(rng, geom, SPECS["sat24"], np.uint8)
    fast, port, took = run_fast_and_portable(K.conv2d, x, w, requant=REQUANTS[1], **kw)
    assert took
    np.testing.assert_array_equal(fast, port)


def test_depthwise_products_beyond_int16_decline():
    """|x - zx| = 65535 does not fit the int16 operand rows: declined, still exact."""
    x = np.full((1, 4, 4, 3), 32767, dtype=np.int16)
    w = np.full((3, 3, 3, 1), 127, dtype=np.int8)
    fast, port, took = run_fast_and_portable(K.conv2d, x, w, groups=3, x_zero_point=-32768, padding=1,
                                             accum=AccumSpec(acc_bits=64), return_accumulators=True, counters=True)
    assert not took
    assert_same_result(fast, port, "beyond int16")

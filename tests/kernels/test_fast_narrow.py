"""Narrow saturating accumulators on the x86 fast path (c_kernels/hw_fast_x86_narrow.c):
GEMM and conv2d (groups = 1) with acc_bits 16 (int16 lanes, VPADDSW), 8..31
(int32 lanes + clamp) and the guarded VPDPBUSD blocks.

Every case runs on the fast path (default dispatch) and on the portable C kernel
(``hw_set_feature_limit(0)``): outputs, int64 accumulators and counters must be
identical; small cases are also held to the pure-Python oracle.  The data are
built to saturate -- runs of same-sign maximal products, biases at the limits --
so the order of the k loop is visible in the results.
"""

from __future__ import annotations

import numpy as np
import pytest
from fastnarrow_cases import (HAVE_FAST, NO_FAST_REASON, K, assert_matches_oracle, assert_same_result,
                              oracle_conv2d, oracle_gemm, run_fast_and_portable, spec)
from hypothesis import given
from hypothesis import strategies as st

from hwsim.numerics.requant_params import RequantParams
from hwsim.types import RequantScheme, Rounding

pytestmark = pytest.mark.skipif(not HAVE_FAST, reason=NO_FAST_REASON)

DTYPES = (np.int8, np.uint8, np.int16)


def saturating_operands(rng, m, n, k, a_dtype, *, s16_span=181):
    """A [m, k] and B [n, k] whose products push accumulators to both limits:
    the first half of the rows / channels hold runs of maximal same-sign values,
    the rest uniform.  int16 activations stay within +-s16_span so products fit
    the int16 lanes (|a * w| <= 181 * 181 < 2^15)."""
    if a_dtype == np.int16:
        a = rng.integers(-s16_span, s16_span + 1, (m, k))
        hi, lo = s16_span, -s16_span
    else:
        info = np.iinfo(a_dtype)
        a = rng.integers(info.min, info.max + 1, (m, k))
        hi, lo = info.max, info.min
    b = rng.integers(-128, 128, (n, k))
    a[: (m + 1) // 2, : k // 2] = hi
    a[: (m + 1) // 2, k // 2:] = lo if lo < 0 else 0
    b[: (n + 1) // 2, : k // 3] = 127
    b[: (n + 1) // 2, k // 3: 2 * k // 3] = -128
    return a.astype(a_dtype), b.astype(np.int8)


def zero_point_for(rng, a_dtype):
    if a_dtype == np.uint8:
        return int(rng.integers(0, 256))
    return int(rng.integers(-20, 21))


SAT_SPECS = [(16, "in_mac", True), (16, "folded", False), (24, "in_mac", False), (24, "folded", True),
             (12, "in_mac", True), (20, "folded", False), (31, "in_mac", True), (17, "in_mac", False)]


@pytest.mark.parametrize("a_dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("bits,placement,bias_first", SAT_SPECS, ids=lambda v: str(v))
@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 33, 7), (41, 130, 64), (9, 300, 129)], ids=str)
def test_gemm_fast_equals_portable(a_dtype, bits, placement, bias_first, shape):
    m, n, k = shape
    rng = np.random.default_rng(m * 1000 + n * 10 + k + bits)
    a, b = saturating_operands(rng, m, n, k, a_dtype)
    lim = 1 << (bits - 1)
    bias = rng.integers(-lim - 5, lim + 5, n).astype(np.int64)
    bias[0] = lim - 1          # at the limit exactly
    zw = rng.integers(-2, 3, n).astype(np.int64) if n > 1 else 0
    acc = spec(bits, "saturate", placement, bias_first)
    kw = dict(a_zero_point=zero_point_for(rng, a_dtype), b_zero_point=zw, bias=bias, accum=acc,
              return_accumulators=True, counters=True)
    for threads in (1, 2):
        fast, port, took = run_fast_and_portable(K.gemm, a, b, n_threads=threads, **kw)
        assert took, "the fast path declined a case it is meant to take"
        assert_same_result(fast, port, f"gemm {shape} {bits} {placement} threads={threads}")
    if k >= 7 and bits in (16, 24):
        assert port.counters.acc_events.sum() > 0, "the case is meant to saturate"


@pytest.mark.parametrize("bits,placement,bias_first", [(16, "in_mac", True), (24, "folded", False), (12, "in_mac", False)])
def test_gemm_small_equals_oracle(bits, placement, bias_first):
    rng = np.random.default_rng(bits)
    m, n, k = 6, 37, 45
    a, b = saturating_operands(rng, m, n, k, np.int8)
    lim = 1 << (bits - 1)
    bias = rng.integers(-lim, lim, n).astype(np.int64)
    zw = rng.integers(-3, 4, n).astype(np.int64)
    acc = spec(bits, "saturate", placement, bias_first)
    kw = dict(a_zero_point=-7, b_zero_point=zw, bias=bias, accum=acc)
    fast, port, took = run_fast_and_portable(K.gemm, a, b, return_accumulators=True, counters=True, **kw)
    assert took
    assert_same_result(fast, port, "gemm small")
    assert_matches_oracle(fast, oracle_gemm(a, b, **kw), what="gemm small")


def test_gemm_sat16_hand_checked():
    """Order is part of the result: k = 0 .. 3 with products +30000, +30000,
    -30000, -30000 from 0 gives sat16: 30000 -> 32767 -> 2767 -> -27233 (events:
    one, at k = 1), while the exact sum is 0."""
    a = np.array([[100, 100, -100, -100]], dtype=np.int16)
    b = np.array([[300, 300, 300, 300]], dtype=np.int16)
    res = K.gemm(a, b, accum=spec(16, "saturate", "in_mac", True), return_accumulators=True, counters=True)
    assert int(res.accumulators[0, 0]) == -27233
    assert int(res.counters.acc_events[0]) == 1


def test_gemm_guarded_blocks():
    """sat24, u8 x s8, K a multiple of 4: rows whose blocks are provably safe run
    on VPDPBUSD, the saturating rows are replayed step by step; both kinds in
    one call, identical to the portable kernel and (small) the oracle."""
    rng = np.random.default_rng(7)
    m, n, k = 13, 70, 1024
    a = rng.integers(0, 256, (m, k)).astype(np.uint8)
    b = rng.integers(-128, 128, (n, k)).astype(np.int8)
    a[:3] = 255                 # rows 0-2: long same-sign runs reach 2^23 and saturate
    b[:20, :] = 127
    for placement, zx in (("in_mac", 0), ("in_mac", 131), ("folded", 17)):
        for bias_first in (True, False):
            for counters in (True, False):   # counters change the register tile height
                kw = dict(a_zero_point=zx, bias=rng.integers(-(1 << 22), 1 << 22, n).astype(np.int64),
                          accum=spec(24, "saturate", placement, bias_first), return_accumulators=True,
                          counters=counters)
                fast, port, took = run_fast_and_portable(K.gemm, a, b, **kw)
                assert took
                assert_same_result(fast, port, f"guarded {placement} zx={zx} counters={counters}")
            assert port.counters is None or port.counters.acc_events.sum() > 0
    small = dict(a_zero_point=0, accum=spec(24), return_accumulators=True, counters=True)
    a_s, b_s = a[:4, :256].copy(), b[:24, :256].copy()
    a_s[0] = 255
    b_s[:4] = 127
    b_s[4:8] = -128
    fast, port, took = run_fast_and_portable(K.gemm, a_s, b_s, bias=np.full(24, (1 << 23) - 100, np.int64), **small)
    assert_same_result(fast, port, "guarded small")
    assert_matches_oracle(fast, oracle_gemm(a_s, b_s, a_zero_point=0, bias=np.full(24, (1 << 23) - 100),
                                            accum=spec(24)), what="guarded small")


def test_gemm_s8_guarded_blocks():
    rng = np.random.default_rng(8)
    a = rng.integers(-128, 128, (9, 512)).astype(np.int8)
    b = rng.integers(-128, 128, (40, 512)).astype(np.int8)
    a[0] = -128
    b[:5] = -128
    for counters in (True, False):
        fast, port, took = run_fast_and_portable(K.gemm, a, b, a_zero_point=-5,
                                                 accum=spec(20, "saturate", "in_mac", True),
                                                 return_accumulators=True, counters=counters)
        assert took
        assert_same_result(fast, port, "s8 guarded")


REQUANTS = [
    RequantParams(scheme=RequantScheme.FLOAT32, scale=(0.0003,), zero_point=3, out_bits=8, out_signed=True),
    RequantParams(scheme=RequantScheme.DOUBLE_ROUNDING, multiplier=(1518500250,), shift=(-9,), zero_point=128,
                  out_bits=8, out_signed=False),
    RequantParams(scheme=RequantScheme.SHIFT_ONLY, shift=(-6,), rounding=Rounding.HALF_UP, out_bits=8, out_signed=True),
    RequantParams(scheme=RequantScheme.SINGLE_ROUNDING, multiplier=(1 << 30,), shift=(-3,), out_bits=16,
                  out_signed=True),
]


@pytest.mark.parametrize("rq", REQUANTS, ids=lambda r: r.scheme.value)
@pytest.mark.parametrize("bits", [16, 24])
def test_gemm_requantised_outputs(rq, bits):
    rng = np.random.default_rng(bits)
    a, b = saturating_operands(rng, 7, 45, 50, np.int8)
    kw = dict(a_zero_point=2, accum=spec(bits), requant=rq, bias=rng.integers(-300, 300, 45).astype(np.int64))
    for counters in (False, True):
        fast, port, took = run_fast_and_portable(K.gemm, a, b, return_accumulators=True, counters=counters, **kw)
        assert took
        assert_same_result(fast, port, f"requant {rq.scheme.value}")
    assert_matches_oracle(fast, oracle_gemm(a, b, a_zero_point=2, bias=kw["bias"], accum=spec(bits)), requant=rq,
                          what="requant")


def test_gemm_declines_what_it_cannot_do():
    """Products that do not fit int16 lanes (|a|*|w| >= 2^15 for sat16) still
    give the portable result (another path or the portable kernel computes it)."""
    a = np.full((3, 20), 30000, dtype=np.int16)
    b = np.full((5, 20), 100, dtype=np.int8)
    fast, port, _ = run_fast_and_portable(K.gemm, a, b, accum=spec(16), return_accumulators=True, counters=True)
    assert_same_result(fast, port, "large products")


edge8 = st.sampled_from([-128, -127, -1, 0, 1, 126, 127]) | st.integers(-128, 127)


@given(data=st.data(), bits=st.integers(8, 31), placement=st.sampled_from(["in_mac", "folded"]),
       bias_first=st.booleans())
def test_gemm_property_fast_portable_oracle(data, bits, placement, bias_first):
    m = data.draw(st.integers(1, 4))
    n = data.draw(st.integers(1, 40))
    k = data.draw(st.integers(1, 24))
    a = np.array(data.draw(st.lists(edge8, min_size=m * k, max_size=m * k)), dtype=np.int8).reshape(m, k)
    b = np.array(data.draw(st.lists(edge8, min_size=n * k, max_size=n * k)), dtype=np.int8).reshape(n, k)
    lim = 1 << (bits - 1)
    bias = np.array(data.draw(st.lists(st.sampled_from([-lim, -lim + 1, 0, lim - 2, lim - 1]) | st.integers(-lim, lim - 1),
                                       min_size=n, max_size=n)), dtype=np.int64)
    zx = data.draw(st.sampled_from([0, -128, 127]) | st.integers(-128, 127))
    acc = spec(bits, "saturate", placement, bias_first)
    kw = dict(a_zero_point=zx, bias=bias, accum=acc)
    fast, port, _ = run_fast_and_portable(K.gemm, a, b, return_accumulators=True, counters=True, **kw)
    assert_same_result(fast, port, "property")
    assert_matches_oracle(fast, oracle_gemm(a, b, **kw), what="property")


# ---------------------------------------------------------------- conv2d, groups = 1

CONV_CASES = [
    # (in_hw, in_c, out_c, kernel, stride, dilation, padding)
    ((9, 11), 8, 40, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    ((10, 7), 3, 17, (3, 2), (2, 1), (1, 2), (2, 0, 1, 3)),
    ((8, 8), 12, 64, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
    ((7, 9), 5, 33, (2, 3), (1, 2), (2, 1), (0, 2, 2, 0)),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
@pytest.mark.parametrize("bits,placement,bias_first", [(16, "in_mac", True), (24, "folded", False), (20, "in_mac", False)])
@pytest.mark.parametrize("x_dtype", [np.uint8, np.int8])
def test_conv2d_fast_equals_portable(case, bits, placement, bias_first, x_dtype):
    (h, w_), c, o, (kh, kw), stride, dil, pad = case
    rng = np.random.default_rng(h * 100 + c + o + bits)
    info = np.iinfo(x_dtype)
    x = rng.integers(info.min, info.max + 1, (2, h, w_, c)).astype(x_dtype)
    x[0, : h // 2] = info.max
    w = rng.integers(-128, 128, (o, kh, kw, c)).astype(np.int8)
    w[: o // 2] = 127
    lim = 1 << (bits - 1)
    kw_ = dict(stride=stride, dilation=dil, padding=pad, x_zero_point=int(info.min) + 3 if x_dtype == np.int8 else 77,
               bias=rng.integers(-lim, lim, o).astype(np.int64), accum=spec(bits, "saturate", placement, bias_first),
               return_accumulators=True, counters=True)
    for threads in (1, 2):
        fast, port, took = run_fast_and_portable(K.conv2d, x, w, n_threads=threads, **kw_)
        assert took
        assert_same_result(fast, port, f"conv {case} {bits} threads={threads}")
    if bits == 16:
        assert port.counters.acc_events.sum() > 0, "the case is meant to saturate"


def test_conv2d_small_equals_oracle():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (1, 5, 6, 4)).astype(np.uint8)
    w = rng.integers(-128, 128, (20, 3, 3, 4)).astype(np.int8)
    x[0, :2] = 255
    w[:6] = 127
    for bits, placement in ((16, "in_mac"), (24, "folded"), (17, "in_mac")):
        kw = dict(stride=(1, 2), dilation=(1, 1), padding=(1, 0, 2, 1), x_zero_point=100,
                  bias=rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), 20).astype(np.int64),
                  accum=spec(bits, "saturate", placement, True))
        fast, port, took = run_fast_and_portable(K.conv2d, x, w, return_accumulators=True, counters=True, **kw)
        assert took
        assert_same_result(fast, port, "conv small")
        assert_matches_oracle(fast, oracle_conv2d(x, w, **kw), what=f"conv small {bits}")


@pytest.mark.parametrize("counters", [False, True])
@pytest.mark.parametrize("x_dtype", [np.uint8, np.int8])
def test_conv2d_guarded_blocks(counters, x_dtype):
    """in_c a multiple of 4, weights without zero point: guarded 128-step blocks
    over the (ky, kx, ci) order, some replayed (saturating rows), some on VPDPBUSD."""
    rng = np.random.default_rng(21)
    info = np.iinfo(x_dtype)
    x = rng.integers(info.min, info.max + 1, (1, 12, 10, 32)).astype(x_dtype)
    x[0, :3] = info.max
    w = rng.integers(-128, 128, (70, 3, 3, 32)).astype(np.int8)
    w[:10] = 127
    kw = dict(stride=(1, 1), padding=(1, 1, 1, 1), x_zero_point=int(info.min) + 5,
              bias=rng.integers(-(1 << 20), 1 << 20, 70).astype(np.int64), accum=spec(24, "saturate", "in_mac", True),
              return_accumulators=True, counters=counters)
    for threads in (1, 2):
        fast, port, took = run_fast_and_portable(K.conv2d, x, w, n_threads=threads, **kw)
        assert took
        assert_same_result(fast, port, f"guarded conv threads={threads}")

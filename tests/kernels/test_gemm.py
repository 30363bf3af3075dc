"""The portable GEMM: hand-checked vectors (SEMANTICS.md section 8.6 / 8.7) and
C == oracle for every accumulator spec, accumulators and counters alike."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from kernel_cases import FOLDED, IN_MAC, SAT, WRAP, all_specs, check_gemm, edge_array, spec_id

from hwsim import kernels
from hwsim.types import AccumSpec

EXACT = AccumSpec(group=1, group_bits=64, acc_bits=64)
#: x86 AVX2 u8s8 (SEMANTICS 3.2): VPMADDUBSW pairs saturate to int16, VPADDD wraps int32, raw u8 in the MAC
AVX2 = AccumSpec(group=2, group_bits=16, group_overflow=SAT, acc_bits=32, acc_overflow=WRAP, input_zero_point=FOLDED)
#: ARM SMULL/SMLAL pairs (SEMANTICS 2.4): int16 pair sums wrap
NEON_MLAL = AccumSpec(group=2, group_bits=16, group_overflow=WRAP, acc_bits=32, acc_overflow=WRAP)


def _gemm1(a, b, spec, **kw):
    """One output: (accumulator, counters) for a single row a and weight row b."""
    res = kernels.gemm(np.array([a], dtype=kw.pop("a_dtype", np.uint8)), np.array([b], dtype=kw.pop("b_dtype", np.int8)),
                       accum=spec, return_accumulators=True, counters=True, **kw)
    return int(res.accumulators[0, 0]), res.counters


# SEMANTICS.md 8.6: a (u8), b (s8), VPMADDUBSW + VPMADDWD(., 1) result, exact result, int16 pairs that saturated
SEMANTICS_8_6 = [
    ([255, 255, 0, 0], [127, 127, 0, 0], 32767, 64770, 1),
    ([255, 255, 255, 255], [-128, -128, -128, -128], -65536, -130560, 2),
    ([127, 127, 127, 127], [127, 127, 127, 127], 64516, 64516, 0),
    ([255, 255, 3, 4], [-64, -64, 5, 6], -32601, -32601, 0),
    ([211, 171], [71, 107], 32767, 33278, 1),
]


@pytest.mark.parametrize("a, b, avx2, exact, saturated", SEMANTICS_8_6)
def test_semantics_8_6_vpmaddubsw_pairs(a, b, avx2, exact, saturated):
    acc, cnt = _gemm1(a, b, AVX2)
    assert acc == avx2
    assert cnt.group_events.tolist() == [saturated]
    assert cnt.acc_events.tolist() == [0]
    assert _gemm1(a, b, EXACT)[0] == exact


def test_semantics_8_6_onednn_s8s8_shift_by_128():
    # a_s8 = b_s8 = [127, 127, 0, 0] fed as u8 a + 128 = [255, 255, 128, 128] with zero point 128 folded:
    # pairs sat16(255*127*2 = 64770) = 32767 and 0; folded term -128 * (127 + 127) = -32512; total 255.
    acc, cnt = _gemm1([255, 255, 128, 128], [127, 127, 0, 0], AVX2, a_zero_point=128)
    assert acc == 255
    assert cnt.group_events.tolist() == [1]
    # in the MAC the zero point cancels exactly: 127*127*2 = 32258
    in_mac = AccumSpec(group=2, group_bits=16, group_overflow=SAT, acc_bits=32, input_zero_point=IN_MAC)
    assert _gemm1([255, 255, 128, 128], [127, 127, 0, 0], in_mac, a_zero_point=128)[0] == 32258


def test_semantics_8_7_smlal_pair_wraps():
    # (-128)(-128) + (-128)(-128) = 32768 -> int16 -32768; (-127)(-128) * 2 = 32512 fits
    acc, cnt = _gemm1([-128, -128], [-128, -128], NEON_MLAL, a_dtype=np.int8)
    assert acc == -32768
    assert cnt.group_events.tolist() == [1]
    acc, cnt = _gemm1([-127, -127], [-128, -128], NEON_MLAL, a_dtype=np.int8)
    assert acc == 32512
    assert cnt.group_events.tolist() == [0]


def test_semantics_8_7_sdot_lane_wraps():
    # 2147483600 + 4 * 127 * 127 = 2147548116 -> wrap_32 = -2147419180 (the bias is the lane's start value)
    sdot = AccumSpec(group=4, group_bits=64, acc_bits=32, acc_overflow=WRAP, bias_first=True)
    acc, cnt = _gemm1([127] * 4, [127] * 4, sdot, a_dtype=np.int8, bias=np.array([2147483600], dtype=np.int32))
    assert acc == -2147419180
    assert cnt.acc_events.tolist() == [1]


@pytest.mark.parametrize("overflow, expected", [(WRAP, -2147354756), (SAT, 2147483647)])
def test_semantics_8_6_vpdpbusd_and_vpdpbusds(overflow, expected):
    spec = AccumSpec(group=4, group_bits=64, acc_bits=32, acc_overflow=overflow, bias_first=True)
    acc, _ = _gemm1([255] * 4, [127] * 4, spec, bias=np.array([2147483000], dtype=np.int32))
    assert acc == expected


def test_bias_order_matters_for_saturation():
    # acc 16-bit saturating, products 100 * 100 = 10000 three times, bias -20000.
    # bias first: -20000 + 10000 + 10000 + 10000 = 10000 (never saturates)
    # bias last: 10000, 20000, 30000, then + -20000 -> 10000 as well; use 4 products to saturate:
    # bias last: 10000, 20000, 30000, sat(40000) = 32767 -> 32767 - 20000 = 12767
    # bias first: -20000 -> -10000 -> 0 -> 10000 -> 20000
    a, b, bias = [100] * 4, [100] * 4, np.array([-20000], dtype=np.int32)
    first = AccumSpec(acc_bits=16, acc_overflow=SAT, bias_first=True)
    last = AccumSpec(acc_bits=16, acc_overflow=SAT, bias_first=False)
    assert _gemm1(a, b, first, bias=bias)[0] == 20000
    acc, cnt = _gemm1(a, b, last, bias=bias)
    assert acc == 12767
    assert cnt.acc_events.tolist() == [1]


def test_folded_term_is_narrowed_then_bias_added():
    # acc 16-bit saturating, FOLDED, zx = 200, w = [100, 100]: T = -200 * 200 = -40000 -> sat16 = -32768 (1 event);
    # + bias 1000 -> -31768.  Products 200 * 100 * 2 = 40000 in 2 steps: 20000, then 40000 -> 32767 (1 event).
    # bias last: 32767 + -31768 = 999.
    spec = AccumSpec(acc_bits=16, acc_overflow=SAT, input_zero_point=FOLDED)
    acc, cnt = _gemm1([200, 200], [100, 100], spec, a_zero_point=200, bias=np.array([1000], dtype=np.int32))
    assert acc == 999
    assert cnt.acc_events.tolist() == [2]
    # in the MAC: (200 - 200) * 100 * 2 = 0, + 1000
    assert _gemm1([200, 200], [100, 100], AccumSpec(acc_bits=16, acc_overflow=SAT), a_zero_point=200,
                  bias=np.array([1000], dtype=np.int32))[0] == 1000


def test_short_last_group():
    # K = 3, group 2, group_bits 16 saturating: groups (k0, k1) and (k2) alone.
    # 127*127 + 127*127 = 32258 fits; the third product stands alone: 32258 + 16129 = 48387 (acc 32)
    spec = AccumSpec(group=2, group_bits=16, group_overflow=SAT)
    assert _gemm1([127] * 3, [127] * 3, spec, a_dtype=np.int8)[0] == 48387
    # group 4 would sum all three first: 48387 -> sat16 = 32767
    spec4 = AccumSpec(group=4, group_bits=16, group_overflow=SAT)
    assert _gemm1([127] * 3, [127] * 3, spec4, a_dtype=np.int8)[0] == 32767


def test_acc64_saturates_and_wraps_beyond_int64():
    big = np.array([2**63 - 1], dtype=np.int64)
    sat = AccumSpec(acc_bits=64, acc_overflow=SAT, bias_first=True)
    acc, cnt = _gemm1([1], [1], sat, bias=big)
    assert acc == 2**63 - 1
    assert cnt.acc_events.tolist() == [1]
    wrap = AccumSpec(acc_bits=64, acc_overflow=WRAP, bias_first=True)
    acc, cnt = _gemm1([1], [1], wrap, bias=big)
    assert acc == -(2**63)
    assert cnt.acc_events.tolist() == [1]
    assert cnt.max_abs_acc.tolist() == [2**63 - 1]   # |-2^63| reported as 2^63 - 1


# ---------------------------------------------------------------- C == oracle

DTYPES = [(np.int8, np.int8), (np.uint8, np.int8), (np.int16, np.int8), (np.int16, np.int16), (np.uint8, np.uint8)]


@pytest.mark.parametrize("spec", all_specs(), ids=spec_id)
def test_every_spec_matches_oracle(spec):
    rng = np.random.default_rng(zlib.crc32(spec_id(spec).encode()))
    for a_dt, b_dt in DTYPES:
        m, n, k = 2, 3, int(rng.integers(1, 10))
        a = edge_array(rng, (m, k), a_dt)
        b = edge_array(rng, (n, k), b_dt)
        a_lo, a_hi = np.iinfo(a_dt).min, np.iinfo(a_dt).max
        b_lo, b_hi = np.iinfo(b_dt).min, np.iinfo(b_dt).max
        zx = int(rng.integers(a_lo, a_hi + 1))
        zw = rng.integers(b_lo, b_hi + 1, size=n) if rng.random() < 0.5 else int(rng.integers(b_lo, b_hi + 1))
        bias = edge_array(rng, (n,), np.int64 if spec.acc_bits == 64 else np.int32)
        check_gemm(a, b, spec=spec, a_zero_point=zx, b_zero_point=zw, bias=bias)


@pytest.mark.parametrize("spec", [s for s in all_specs() if s.acc_bits in (16, 32)][::3], ids=spec_id)
def test_int4_weights_match_oracle(spec):
    rng = np.random.default_rng(7)
    a = edge_array(rng, (3, 11), np.int8)
    b = edge_array(rng, (5, 11), np.int8, -8, 7)
    check_gemm(a, b, spec=spec, a_zero_point=-3, b_zero_point=rng.integers(-8, 8, size=5), weight_bits=4,
               bias=edge_array(rng, (5,), np.int32))


_specs = st.sampled_from(all_specs())
_dtypes = st.sampled_from(DTYPES)


@st.composite
def gemm_cases(draw):
    spec = draw(_specs)
    a_dt, b_dt = draw(_dtypes)
    m, n, k = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 9))

    def elems(dt):
        info = np.iinfo(dt)
        edge = st.sampled_from(sorted({int(info.min), int(info.min) + 1, int(info.max) - 1, int(info.max), 0}))
        return edge | st.integers(int(info.min), int(info.max))

    a = draw(hnp.arrays(a_dt, (m, k), elements=elems(a_dt)))
    b = draw(hnp.arrays(b_dt, (n, k), elements=elems(b_dt)))
    zx = draw(elems(a_dt))
    zw = draw(st.one_of(elems(b_dt), hnp.arrays(np.int64, (n,), elements=elems(b_dt))))
    bias_dt = np.int64 if spec.acc_bits == 64 else np.int32
    bias = draw(st.none() | hnp.arrays(bias_dt, (n,), elements=elems(bias_dt)))
    return spec, a, b, zx, zw, bias


@given(gemm_cases())
def test_gemm_matches_oracle_property(case):
    spec, a, b, zx, zw, bias = case
    check_gemm(a, b, spec=spec, a_zero_point=zx, b_zero_point=zw, bias=bias)


def test_requant_none_returns_int64_accumulators():
    a = np.array([[1, 2, 3]], dtype=np.int8)
    b = np.array([[1, 1, 1], [2, 0, -1]], dtype=np.int8)
    out = kernels.gemm(a, b, bias=np.array([10, -10], dtype=np.int32))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [[16, -11]])   # 1+2+3+10, 2-3-10


@pytest.mark.parametrize("bits, v", [(16, 128), (24, 2048), (32, -32768)])
@pytest.mark.parametrize("overflow", [WRAP, SAT])
@pytest.mark.parametrize("stage", ["acc", "group"])
@pytest.mark.parametrize("bias_first", [False, True])
def test_overflow_exactly_at_the_width(bits, v, overflow, stage, bias_first):
    # v*v + v*v = 2^(bits-1): one past the largest value.  Wrap gives -2^(bits-1), saturate 2^(bits-1) - 1.
    # One less (second weight v - 1 in magnitude) fits exactly and changes nothing.
    if stage == "acc":
        spec = AccumSpec(acc_bits=bits, acc_overflow=overflow, bias_first=bias_first)
    else:
        spec = AccumSpec(group=2, group_bits=bits, group_overflow=overflow, acc_bits=64, bias_first=bias_first)
    top = 2 ** (bits - 1)
    acc, cnt = _gemm1([v, v], [v, v], spec, a_dtype=np.int16, b_dtype=np.int16)
    assert acc == (-top if overflow is WRAP else top - 1)
    events = cnt.acc_events if stage == "acc" else cnt.group_events
    assert events.tolist() == [1]
    w2 = v - 1 if v > 0 else v + 1
    acc, cnt = _gemm1([v, v], [v, w2], spec, a_dtype=np.int16, b_dtype=np.int16)
    assert acc == top - abs(v)
    assert cnt.acc_events.tolist() == [0] and cnt.group_events.tolist() == [0]


def test_int16_operands_beyond_int32_sum():
    # 32767^2 = 1073676289; four of them = 4294705156 > 2^31: exact in a 64-bit accumulator,
    # 4294705156 - 2^32 = -262140 in a 32-bit wrapping one (the sum passes 2^31 at the second product).
    a, b = [32767, -32767, 32767, -32767], [32767, -32767, 32767, -32767]
    acc, cnt = _gemm1(a, b, AccumSpec(acc_bits=64), a_dtype=np.int16, b_dtype=np.int16)
    assert acc == 4294705156
    acc, cnt = _gemm1(a, b, AccumSpec(acc_bits=32), a_dtype=np.int16, b_dtype=np.int16)
    assert acc == -262140
    assert cnt.acc_events.tolist() == [1]   # only the step from 2147352578 to 3221028867 wraps


def _bursty(rng, shape, dtype, burst_blocks):
    """Small values (|v| <= 3) except in the given 64-wide k blocks, which hold
    extremes: rows where some blocks provably cannot overflow and others do."""
    info = np.iinfo(dtype)
    v = rng.integers(max(-3, int(info.min)), 4, size=shape).astype(np.int64)
    for blk in burst_blocks:
        sl = v[..., blk * 64 : blk * 64 + 64]
        sl[...] = edge_array(rng, sl.shape, dtype)
    return v.astype(dtype)


@pytest.mark.parametrize("spec", [s for s in all_specs() if s.acc_bits in (16, 24)], ids=spec_id)
def test_long_rows_with_exact_and_overflowing_blocks(spec):
    # K = 333 spans 6 blocks of 64 steps; bursts in blocks 1 and 4 overflow, the rest must run exactly
    # after the accumulator has been pushed to (or wrapped from) its limit.
    rng = np.random.default_rng(zlib.crc32(spec_id(spec).encode()))
    a = _bursty(rng, (2, 333), np.int16, [1, 4])
    b = _bursty(rng, (3, 333), np.int8, [1])
    res, o = check_gemm(a, b, spec=spec, bias=edge_array(rng, (3,), np.int32))
    assert sum(o.acc_events) + sum(o.group_events) > 0


@pytest.mark.parametrize("overflow", [WRAP, SAT])
def test_exhaustive_int4_pairs_in_narrow_stages(overflow):
    # Every (a0, a1) x (w0, w1) of int4 values (65536 outputs): pairs summed in 7 bits, accumulated in
    # 8 bits (bias 100 first), so both stages overflow on many inputs and stay exact on the rest.
    vals = np.arange(-8, 8, dtype=np.int8)
    pairs = np.stack(np.meshgrid(vals, vals, indexing="ij"), axis=-1).reshape(-1, 2)
    spec = AccumSpec(group=2, group_bits=7, group_overflow=overflow, acc_bits=8, acc_overflow=overflow,
                     bias_first=True)
    bias = np.full(len(pairs), 100, dtype=np.int32)
    res, o = check_gemm(np.ascontiguousarray(pairs), np.ascontiguousarray(pairs), spec=spec, bias=bias,
                        weight_bits=4)
    assert 0 < sum(o.group_events) < pairs.shape[0] ** 2

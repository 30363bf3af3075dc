"""x86 fast paths (c_kernels/hw_fast_x86_vnni.c) against the portable C kernels and numpy.

Every case runs twice in one process: with the CPU's fast paths (the default)
and with ``hw_set_feature_limit(0)`` (portable C only), and the two must agree
bit for bit -- outputs, int64 accumulators and counters.  Accumulators are also
checked against an independent numpy int64 reference written from the
definitions (exact sum, wrapped to int32; x86-avx2 pair saturation), and
requantised outputs against the pure-Python oracle ``hwsim.oracle.requantize``.
``hw_fast_calls()`` shows whether the fast path really took the call, so a test
cannot pass by silently falling back to the portable kernel.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hwsim.kernels as hk
from hwsim._native import ffi, lib
from hwsim._native import kernels as nk
from hwsim.numerics.requant_params import RequantParams
from hwsim.oracle import requantize as orq
from hwsim.types import AccumSpec, Overflow, RequantScheme, Rounding, ZeroPointPlacement

FEATURES = lib.hw_cpu_features()

# ISA masks for the fast side: the CPU's best, AVX-512 without VNNI, AVX2 + AVX-VNNI
# (256-bit tiles), plain AVX2.  A mask the CPU lacks simply leaves fewer paths.
ISAS = {"native": None, "avx512bw": 1 | 2, "avx2_avxvnni": 1 | 8, "avx2": 1}


def expect_taken(mode: str, limit) -> int:
    """1 if a fast path must take an exact ('exact') or pair-saturating ('pairs') call."""
    f = FEATURES if limit is None else FEATURES & limit
    if mode == "exact":
        return int(f & 6 == 6 or f & 9 == 9)
    return int(bool(f & 3))


I32_MIN, I32_MAX = -(2**31), 2**31 - 1
FOLDED = ZeroPointPlacement.FOLDED_INTO_BIAS

# Specs whose result is the exact sum mod 2^32 (any order), and the x86-avx2 pair saturation.
EXACT_SPECS = {
    "int32_wrap": AccumSpec(),
    "int32_wrap_folded_bias_first": AccumSpec(input_zero_point=FOLDED, bias_first=True),
    "dot4_int32": AccumSpec(group=4, group_bits=32, group_overflow=Overflow.SATURATE),
    "int64_sat": AccumSpec(acc_bits=64, acc_overflow=Overflow.SATURATE),
    # narrower than 32 bits: taken only when the bound proves no step saturates
    "int24_sat": AccumSpec(acc_bits=24, acc_overflow=Overflow.SATURATE),
}
PAIRSAT = AccumSpec(group=2, group_bits=16, group_overflow=Overflow.SATURATE, input_zero_point=FOLDED)


# ---------------------------------------------------------------- helpers


def run_both(fn, *args, limit=None, **kwargs):
    """(fast result, portable result, number of calls a fast path took).

    limit: ISA mask for the fast side (None = everything the CPU has), to reach
    the narrower instruction-set variants on a wide CPU."""
    before = lib.hw_fast_calls()
    old = lib.hw_set_feature_limit(0xFFFFFFFF if limit is None else limit)
    try:
        fast = fn(*args, **kwargs)
    finally:
        lib.hw_set_feature_limit(old)
    taken = lib.hw_fast_calls() - before
    old = lib.hw_set_feature_limit(0)
    try:
        slow = fn(*args, **kwargs)
    finally:
        lib.hw_set_feature_limit(old)
    return fast, slow, taken


def assert_same(fast, slow):
    """Identical outputs, accumulators and counters (KernelResult or ndarray)."""
    if isinstance(fast, np.ndarray):
        assert fast.dtype == slow.dtype
        np.testing.assert_array_equal(fast, slow)
        return
    np.testing.assert_array_equal(fast.output, slow.output)
    assert fast.output.dtype == slow.output.dtype
    if fast.accumulators is not None:
        np.testing.assert_array_equal(fast.accumulators, slow.accumulators)
    if fast.counters is not None:
        for name in ("group_events", "acc_events", "out_events", "max_abs_acc"):
            np.testing.assert_array_equal(getattr(fast.counters, name), getattr(slow.counters, name), err_msg=name)


def wrap32(v: np.ndarray) -> np.ndarray:
    return ((v.astype(np.int64) + 2**31) % 2**32) - 2**31


def ref_exact(a, b, zx, zw, bias):
    """sum_k (a - zx)(b - zw[n]) + bias, wrapped to int32 (numpy int64: exact for these sizes)."""
    zw = np.broadcast_to(np.asarray(zw, dtype=np.int64), (b.shape[0],))
    acc = (a.astype(np.int64) - zx) @ (b.astype(np.int64) - zw[:, None]).T
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    return wrap32(acc)


def ref_pairsat(a, b, zx, bias):
    """x86-avx2: sum over pairs (2i, 2i+1) of sat16(a*b + a*b) on raw u8 x s8, then
    - zx * sum_k b + bias, wrapping int32 (SEMANTICS 3.2)."""
    k = a.shape[1]
    kp = k + k % 2
    ap = np.zeros((a.shape[0], kp), np.int64)
    bp = np.zeros((b.shape[0], kp), np.int64)
    ap[:, :k], bp[:, :k] = a, b
    pairs = ap[:, None, 0::2] * bp[None, :, 0::2] + ap[:, None, 1::2] * bp[None, :, 1::2]
    acc = np.clip(pairs, -32768, 32767).sum(-1) - zx * bp.sum(1)[None, :]
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    return wrap32(acc)


def im2col(x, kh, kw, stride, dilation, pad, zx):
    """Rows = output pixels, columns in (ky, kx, ci) order; padding taps hold zx."""
    b, h, w, c = x.shape
    top, left, bottom, right = pad
    xp = np.full((b, h + top + bottom, w + left + right, c), zx, np.int64)
    xp[:, top:top + h, left:left + w] = x
    oh = (h + top + bottom - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + left + right - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    cols = np.zeros((b, oh, ow, kh, kw, c), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dilation[0], kx * dilation[1]
            cols[:, :, :, ky, kx, :] = xp[:, y0:y0 + stride[0] * (oh - 1) + 1:stride[0],
                                          x0:x0 + stride[1] * (ow - 1) + 1:stride[1], :]
    return cols.reshape(b * oh * ow, kh * kw * c), (b, oh, ow)


def provably_exact(spec: AccumSpec, k: int, x_dtype, zx: int, w: np.ndarray, zw, bias) -> bool:
    """The documented bound: no group sum and no accumulator step can overflow,
    so the result is the exact sum (and fits int32):
    group * max|x'| * max|w - zw| fits group_bits, and
    max|bias| + [folded] |zx| * K * max|w - zw| + K * max|x'| * max|w - zw| <= 2^(min(acc_bits, 32) - 1) - 1,
    x' = x - zx (in_mac) or x (folded), over the whole range of x's dtype."""
    info = np.iinfo(x_dtype)
    folded = spec.input_zero_point == FOLDED
    maxx = max(abs(info.min), abs(info.max)) if folded else max(abs(info.min - zx), abs(info.max - zx))
    zw = np.atleast_1d(np.asarray(zw, dtype=np.int64))
    maxw = max(abs(int(w.min()) - int(zw.max())), abs(int(w.max()) - int(zw.min())))
    maxp = maxx * maxw
    if spec.group_bits < 64 and spec.group * maxp > 2 ** (spec.group_bits - 1) - 1:
        return False
    total = k * maxp + (abs(zx) * k * maxw if folded else 0)
    if bias is not None:
        total += int(np.abs(np.asarray(bias, dtype=np.int64)).max())
    return total <= 2 ** (min(spec.acc_bits, 32) - 1) - 1


def operand(rng, dtype, shape, fill):
    info = np.iinfo(dtype)
    if fill == "max":
        return np.full(shape, info.max, dtype)
    if fill == "min":
        return np.full(shape, info.min, dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


BIAS_EDGES = [0, 1, -1, I32_MAX, I32_MIN, I32_MAX - 5, I32_MIN + 5, 2**40 + 7, -(2**40) - 7, 2**62]


# ---------------------------------------------------------------- dispatch


def test_cpu_features_match_proc_cpuinfo():
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    if "flags" not in text:
        pytest.skip("not an x86 /proc/cpuinfo")
    flags = set(text.split("flags", 1)[1].split("\n", 1)[0].split())
    assert bool(FEATURES & 1) == ("avx2" in flags)
    assert bool(FEATURES & 2) == ({"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags)
    assert bool(FEATURES & 4) == ("avx512_vnni" in flags and bool(FEATURES & 2))
    assert bool(FEATURES & 8) == ("avx_vnni" in flags and bool(FEATURES & 1))
    assert FEATURES & ~63 == 0


def test_feature_limit_returns_previous_and_masks():
    old = lib.hw_set_feature_limit(0)
    try:
        assert lib.hw_set_feature_limit(5) == 0
        assert lib.hw_set_feature_limit(0) == 5
    finally:
        lib.hw_set_feature_limit(old)


# ---------------------------------------------------------------- GEMM accumulators


@given(
    m=st.integers(1, 20), n=st.integers(1, 80), k=st.integers(1, 150),
    a_signed=st.booleans(), b_unsigned=st.booleans(), spec_name=st.sampled_from(sorted(EXACT_SPECS)),
    zw_kind=st.sampled_from(["none", "tensor", "channel"]), fill=st.sampled_from(["random", "max", "min"]),
    bias_edge=st.sampled_from(BIAS_EDGES + [None]), threads=st.integers(1, 2), seed=st.integers(0, 2**32 - 1),
    isa=st.sampled_from(sorted(ISAS)),
)
def test_gemm_exact_matches_portable_and_numpy(m, n, k, a_signed, b_unsigned, spec_name, zw_kind, fill, bias_edge,
                                               threads, seed, isa):
    rng = np.random.default_rng(seed)
    adt = np.int8 if a_signed else np.uint8
    bdt = np.uint8 if b_unsigned else np.int8   # u8 weights: stored as w - 128 with zero point zw - 128
    a = operand(rng, adt, (m, k), fill)
    b = operand(rng, bdt, (n, k), "min" if fill == "max" else fill)
    zx = int(rng.integers(np.iinfo(adt).min, np.iinfo(adt).max + 1))
    wlo, whi = np.iinfo(bdt).min, np.iinfo(bdt).max + 1
    zw = {"none": 0, "tensor": int(rng.integers(wlo, whi)),
          "channel": rng.integers(wlo, whi, n).astype(np.int32)}[zw_kind]
    bias = None if bias_edge is None else np.full(n, bias_edge, np.int64) + rng.integers(-3, 4, n)
    spec = EXACT_SPECS[spec_name]
    fast, slow, taken = run_both(hk.gemm, a, b, a_zero_point=zx, b_zero_point=zw, bias=bias, accum=spec,
                                 n_threads=threads, limit=ISAS[isa])
    assert_same(fast, slow)
    expect = ref_exact(a, b, zx, zw, bias)
    if spec.acc_bits != 32:   # exact, and taken by the int32 path, when the bound holds
        if provably_exact(spec, k, adt, zx, b, zw, bias):
            np.testing.assert_array_equal(fast, expect)
            assert taken == expect_taken("exact", ISAS[isa])
    else:
        np.testing.assert_array_equal(fast, expect)
        assert taken == expect_taken("exact", ISAS[isa])


@given(
    m=st.integers(1, 16), n=st.integers(1, 70), k=st.integers(1, 130), fill=st.sampled_from(["random", "max"]),
    zx=st.sampled_from([0, 1, 128, 255]), in_mac=st.booleans(), bias_edge=st.sampled_from(BIAS_EDGES),
    threads=st.integers(1, 2), seed=st.integers(0, 2**32 - 1), isa=st.sampled_from(sorted(ISAS)),
)
def test_gemm_pair_saturation_matches_portable_and_numpy(m, n, k, fill, zx, in_mac, bias_edge, threads, seed, isa):
    rng = np.random.default_rng(seed)
    a = operand(rng, np.uint8, (m, k), fill)
    b = operand(rng, np.int8, (n, k), fill)     # "max": 255*127 + 255*127 = 64770 saturates to 32767
    spec = PAIRSAT
    if in_mac:
        spec = AccumSpec(group=2, group_bits=16, group_overflow=Overflow.SATURATE)
        zx = 0 if rng.integers(2) else zx      # IN_MAC with zx != 0 is not raw pairs: declined
    bias = np.full(n, bias_edge, np.int64)
    fast, slow, taken = run_both(hk.gemm, a, b, a_zero_point=zx, bias=bias, accum=spec, n_threads=threads,
                                 limit=ISAS[isa])
    assert_same(fast, slow)
    raw_pairs = not in_mac or zx == 0
    if raw_pairs:
        np.testing.assert_array_equal(fast, ref_pairsat(a, b, zx, bias))
        assert taken == expect_taken("pairs", ISAS[isa])
    # (x - zx) pairs are declined unless the weights are small enough that no pair can
    # saturate -- then the exact path may take them; either way fast == portable above.


def test_pair_saturation_hand_vector():
    # SEMANTICS 3.2: 255*127 + 255*127 = 64770 -> 32767 per pair; K = 4 is two pairs.
    a = np.full((1, 4), 255, np.uint8)
    b = np.full((1, 4), 127, np.int8)
    fast, slow, _ = run_both(hk.gemm, a, b, accum=PAIRSAT)
    assert fast[0, 0] == 2 * 32767 == slow[0, 0]
    # pytorch#44939: 211*71 + 171*107 = 33278 -> 32767; odd K: the last pair is (a*b + 0).
    a = np.array([[211, 171, 3]], np.uint8)
    b = np.array([[71, 107, -5]], np.int8)
    fast, slow, _ = run_both(hk.gemm, a, b, accum=PAIRSAT)
    assert fast[0, 0] == 32767 - 15 == slow[0, 0]


@pytest.mark.parametrize("bias,bounded", [(382, True), (383, False)])
def test_bound_admits_a_narrow_accumulator_exactly_up_to_its_limit(bias, bounded):
    # acc_bits 16 saturate, K = 1, u8 x in [0, 255], the one weight is 127:
    # |bias| + K * 255 * 127 = bias + 32385 <= 2^15 - 1 iff bias <= 382.
    a = np.array([[255], [0], [7]], np.uint8)
    b = np.array([[127]], np.int8)
    spec = AccumSpec(acc_bits=16, acc_overflow=Overflow.SATURATE)
    fast, slow, taken = run_both(hk.gemm, a, b, bias=np.array([bias]), accum=spec, counters=True)
    assert_same(fast, slow)
    np.testing.assert_array_equal(fast.output[:, 0], [min(32385 + bias, 32767), bias, 889 + bias])
    if bounded:
        assert taken == expect_taken("exact", None)
    # (bias 383 may still go to another fast path; the vnni path declines it)


def test_gemm_accumulator_wraps_past_int32():
    # 255 * 127 * 70000 = 2266950000 > 2^31 - 1: the exact sum wraps once.
    k = 70000
    a = np.full((2, k), 255, np.uint8)
    b = np.full((3, k), 127, np.int8)
    fast, slow, taken = run_both(hk.gemm, a, b, bias=np.array([0, 1, -1]), n_threads=2)
    assert_same(fast, slow)
    expect = np.array([255 * 127 * k + d for d in (0, 1, -1)]) - 2**32
    np.testing.assert_array_equal(fast, np.broadcast_to(expect, (2, 3)))
    assert taken == expect_taken("exact", None)


# ---------------------------------------------------------------- requantisation


def _requant_cases():
    return [
        (RequantScheme.FLOAT32, Rounding.HALF_EVEN), (RequantScheme.FLOAT32, Rounding.FLOOR),
        (RequantScheme.FLOAT32, Rounding.CEIL), (RequantScheme.FLOAT32, Rounding.TRUNC),
        (RequantScheme.DOUBLE_ROUNDING, None), (RequantScheme.SRDHM_HALF_UP, None),
        (RequantScheme.SINGLE_ROUNDING, None),
        # not vectorised: through hw_requantize_one_at in the fast epilogue
        (RequantScheme.FLOAT32, Rounding.HALF_AWAY), (RequantScheme.FLOAT32, Rounding.STOCHASTIC),
        (RequantScheme.NEON_SINGLE, None), (RequantScheme.FLOAT64_ROUND, Rounding.HALF_AWAY),
        (RequantScheme.SHIFT_ONLY, Rounding.HALF_EVEN),
    ]


def _edge_accumulators():
    vals = [I32_MIN, I32_MIN + 1, I32_MAX, I32_MAX - 1, 0, 1, -1]
    for i in range(31):
        for d in (-2, -1, 0, 1, 2):
            vals += [2**i + d, -(2**i) + d]
    vals += [(2 * j + 1) << s for s in range(1, 31, 3) for j in (-3, -1, 0, 2)]   # exact ties at shift s
    return [int(v) for v in wrap32(np.array(vals))]


OUT_FORMATS = [  # (dtype, bits, signed, zero_point, overflow)
    (np.int8, 8, True, -5, Overflow.SATURATE),
    (np.uint8, 8, False, 131, Overflow.SATURATE),
    (np.int16, 16, True, 1000, Overflow.SATURATE),
    (np.int32, 32, True, 0, Overflow.SATURATE),
    (np.int8, 8, True, 3, Overflow.WRAP),
]


@pytest.mark.parametrize("fmt", OUT_FORMATS, ids=lambda f: f"{np.dtype(f[0]).name}-{f[4].value}")
@pytest.mark.parametrize("scheme,rounding", _requant_cases(), ids=lambda v: getattr(v, "value", str(v)))
def test_requantised_outputs_match_portable_and_oracle(scheme, rounding, fmt):
    dtype, bits, signed, zp, overflow = fmt
    rng = np.random.default_rng(7)
    accs = np.array(_edge_accumulators(), np.int64)
    n = accs.size
    # The accumulator of column n is bias[n] + a tiny product (a is 0 or 1, b is 0 or 1): edges survive.
    a = np.array([[0, 0], [1, 0], [0, 1]], np.uint8)
    b = rng.integers(0, 2, (n, 2)).astype(np.int8)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    kw = dict(zero_point=zp, out_bits=bits, out_signed=signed, out_min=lo, out_max=hi, out_overflow=overflow,
              rounding=rounding, seed=12345)
    if scheme in (RequantScheme.FLOAT32, RequantScheme.FLOAT64_ROUND):
        exps = rng.integers(-34, 3, n)
        scale = np.ldexp(rng.random(n) + 0.5, exps)
        scale[::4] = 2.0 ** -exps[::4].astype(float)        # powers of two: exact ties
        rq = RequantParams(scheme=scheme, scale=tuple(float(np.float32(s)) for s in scale), **kw)
    else:
        lo_s, hi_s = {RequantScheme.SINGLE_ROUNDING: (-31, 30), RequantScheme.NEON_SINGLE: (-31, 30),
                      RequantScheme.SHIFT_ONLY: (-40, 8)}.get(scheme, (-31, 31))
        shifts = np.resize(np.arange(lo_s, hi_s + 1), n)
        rng.shuffle(shifts)
        mult = rng.integers(0, 2**31, n)
        mult[::5], mult[1::5], mult[2::5] = 2**30, 2**31 - 1, 0
        rq = RequantParams(scheme=scheme, multiplier=tuple(int(v) for v in mult),
                           shift=tuple(int(v) for v in shifts), **kw)
    bias = accs
    for threads, isa in ((1, "native"), (2, "native"), (1, "avx2_avxvnni")):
        fast, slow, taken = run_both(hk.gemm, a, b, bias=bias, requant=rq, out_dtype=dtype,
                                     return_accumulators=True, n_threads=threads, limit=ISAS[isa])
        assert_same(fast, slow)
        assert taken == expect_taken("exact", ISAS[isa])
    acc = fast.accumulators
    np.testing.assert_array_equal(acc, wrap32(a.astype(np.int64) @ b.astype(np.int64).T + bias))
    expect = [[orq.requantize_one(int(acc[i, j]), j, i * n + j, rq)[0] for j in range(n)] for i in range(3)]
    np.testing.assert_array_equal(fast.output, np.array(expect))


def test_float32_requant_rounds_ties_to_even_hand_vector():
    # acc = 5 and 7 with scale 0.5: 2.5 -> 2, 3.5 -> 4 (half_even), + zp 10.
    a = np.zeros((1, 1), np.uint8)
    b = np.zeros((2, 1), np.int8)
    rq = RequantParams(scheme=RequantScheme.FLOAT32, scale=0.5, zero_point=10, out_bits=8, out_signed=False)
    fast, slow, taken = run_both(hk.gemm, a, b, bias=np.array([5, 7]), requant=rq, out_dtype=np.uint8)
    np.testing.assert_array_equal(fast, [[12, 14]])
    assert_same(fast, slow)


# ---------------------------------------------------------------- counters


@pytest.mark.parametrize("isa", ["native", "avx2_avxvnni"])
@pytest.mark.parametrize("spec_name", sorted(EXACT_SPECS))
def test_counters_match_portable(spec_name, isa):
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (9, 40)).astype(np.int8)
    b = rng.integers(-128, 128, (37, 40)).astype(np.int8)
    rq = RequantParams(scheme=RequantScheme.FLOAT32, scale=0.004, zero_point=-3, out_bits=8)
    fast, slow, taken = run_both(hk.gemm, a, b, a_zero_point=-7, b_zero_point=2, bias=rng.integers(-9000, 9000, 37),
                                 accum=EXACT_SPECS[spec_name], requant=rq, return_accumulators=True, counters=True,
                                 n_threads=2, limit=ISAS[isa])
    assert_same(fast, slow)
    assert fast.counters.out_events.sum() > 0          # the test exercises clamping
    # K * 128 * 255 + |bias| < 2^31: no step can overflow, so the fast path counts exactly.
    assert taken == expect_taken("exact", ISAS[isa])


def test_counters_with_possible_wrap_fall_back_to_portable():
    # acc_events of a wrapping accumulator depend on the order: the fast path must decline.
    a = np.full((1, 70000), 255, np.uint8)
    b = np.full((2, 70000), 127, np.int8)
    fast, slow, taken = run_both(hk.gemm, a, b, counters=True)
    assert_same(fast, slow)
    assert fast.counters.acc_events[0] == 1
    assert taken == 0


# ---------------------------------------------------------------- conv2d


@given(
    batch=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 9), o=st.integers(1, 40),
    c=st.sampled_from([1, 3, 4, 5, 8, 12, 16, 20]),   # multiples of 4 are read in place, others via im2col
    kh=st.integers(1, 3), kw=st.integers(1, 3), stride=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)), pad=st.tuples(*[st.integers(0, 2)] * 4),
    a_signed=st.booleans(), spec_name=st.sampled_from(sorted(EXACT_SPECS) + ["pairsat"]),
    weight_zp=st.booleans(), w_unsigned=st.booleans(), threads=st.integers(1, 2), seed=st.integers(0, 2**32 - 1),
    isa=st.sampled_from(sorted(ISAS)),
)
def test_conv2d_matches_portable_and_numpy(batch, h, w, c, o, kh, kw, stride, dilation, pad, a_signed, spec_name,
                                           weight_zp, w_unsigned, threads, seed, isa):
    if h + pad[0] + pad[2] < dilation[0] * (kh - 1) + 1 or w + pad[1] + pad[3] < dilation[1] * (kw - 1) + 1:
        return
    rng = np.random.default_rng(seed)
    pairsat = spec_name == "pairsat"
    adt = np.uint8 if (pairsat or not a_signed) else np.int8
    x = operand(rng, adt, (batch, h, w, c), "random")
    wdt = np.uint8 if (w_unsigned and not pairsat) else np.int8
    wt = operand(rng, wdt, (o, kh, kw, c), "random")
    zx = int(rng.integers(np.iinfo(adt).min, np.iinfo(adt).max + 1))
    zw = rng.integers(np.iinfo(wdt).min, np.iinfo(wdt).max + 1, o).astype(np.int32) if weight_zp and not pairsat else 0
    bias = rng.integers(-(2**33), 2**33, o)
    spec = PAIRSAT if pairsat else EXACT_SPECS[spec_name]
    fast, slow, taken = run_both(hk.conv2d, x, wt, stride=stride, dilation=dilation, padding=pad, x_zero_point=zx,
                                 w_zero_point=zw, bias=bias, accum=spec, n_threads=threads, limit=ISAS[isa])
    assert_same(fast, slow)
    cols, shape = im2col(x, kh, kw, stride, dilation, pad, zx)
    wm = wt.reshape(o, -1)
    expect = ref_pairsat(cols, wm, zx, bias) if pairsat else ref_exact(cols, wm, zx, zw, bias)
    if spec.acc_bits != 32:
        if provably_exact(spec, kh * kw * c, adt, zx, wt, zw, bias):
            np.testing.assert_array_equal(fast, expect.reshape(*shape, o))
            assert taken == expect_taken("exact", ISAS[isa])
        return
    np.testing.assert_array_equal(fast, expect.reshape(*shape, o))
    if spec.acc_bits == 32:
        assert taken == expect_taken("pairs" if pairsat else "exact", ISAS[isa])


@pytest.mark.parametrize("threads", [1, 2])
def test_conv2d_requantised_3x3_and_1x1(threads):
    rng = np.random.default_rng(11)
    x = rng.integers(0, 256, (1, 12, 10, 19)).astype(np.uint8)
    rq = RequantParams(scheme=RequantScheme.FLOAT32, scale=tuple(rng.random(21) * 1e-3), zero_point=100,
                       out_bits=8, out_signed=False)
    for kernel, pad in ((3, 1), (1, 0)):
        wt = rng.integers(-128, 128, (21, kernel, kernel, 19)).astype(np.int8)
        fast, slow, taken = run_both(hk.conv2d, x, wt, padding=pad, x_zero_point=77, bias=rng.integers(-500, 500, 21),
                                     requant=rq, out_dtype=np.uint8, return_accumulators=True, n_threads=threads)
        assert_same(fast, slow)
        assert taken == expect_taken("exact", None)


def test_grouped_conv_is_declined_and_still_exact():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (1, 6, 6, 8)).astype(np.uint8)
    wt = rng.integers(-128, 128, (4, 3, 3, 4)).astype(np.int8)
    fast, slow, taken = run_both(hk.conv2d, x, wt, groups=2, padding=1, x_zero_point=9)
    assert_same(fast, slow)


@pytest.mark.parametrize(
    "a_dtype,spec,zx",
    [
        (np.int16, AccumSpec(), 0),                                                   # s16 activations
        (np.uint8, AccumSpec(acc_bits=16, acc_overflow=Overflow.SATURATE), 0),        # can saturate
        (np.uint8, AccumSpec(group=2, group_bits=16, group_overflow=Overflow.SATURATE), 5),  # pairs of (x - zx)
        (np.int8, PAIRSAT, 0),                                                        # VPMADDUBSW needs u8
    ],
)
def test_out_of_scope_calls_equal_portable(a_dtype, spec, zx):
    rng = np.random.default_rng(1)
    info = np.iinfo(a_dtype)
    a = rng.integers(max(info.min, -300), min(info.max, 300) + 1, (5, 300)).astype(a_dtype)
    a[0] = info.max if a_dtype != np.int16 else 300
    b = np.full((7, 300), 127, np.int8)
    fast, slow, _ = run_both(hk.gemm, a, b, a_zero_point=zx, accum=spec, return_accumulators=True, counters=True)
    assert_same(fast, slow)


# ---------------------------------------------------------------- packed weights (C API)


def _raw_gemm(a, b, zx, spec, packed, n_threads=1):
    m, k = a.shape
    n = b.shape[0]
    args = ffi.new("hw_gemm_args_t *")
    args.M, args.N, args.K = m, n, k
    args.a_dtype = nk.OPERAND_DTYPES[a.dtype]
    args.b_dtype = nk.OPERAND_DTYPES[b.dtype]
    args.a = ffi.cast("const void *", ffi.from_buffer(a))
    args.b = ffi.cast("const void *", ffi.from_buffer(b))
    args.lda, args.ldb = k, k
    args.a_zero_point = zx
    args.packed_b = packed
    args.n_threads = n_threads
    acc = np.empty((m, n), np.int64)
    status = lib.hw_gemm(args, nk.accum_spec(spec), ffi.NULL, 0, ffi.NULL,
                         ffi.cast("int64_t *", ffi.from_buffer(acc, require_writable=True)), ffi.NULL)
    return status, acc, args


@pytest.mark.parametrize("spec,b_dtype", [(AccumSpec(), np.int8), (PAIRSAT, np.int8), (AccumSpec(), np.uint8)],
                         ids=["int32", "pairsat", "int32-u8-weights"])
def test_packed_weights_give_the_same_bits(spec, b_dtype):
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (33, 203)).astype(np.uint8)
    b = operand(rng, b_dtype, (71, 203), "random")
    status, plain, args = _raw_gemm(a, b, 19, spec, ffi.NULL)
    assert status == 0
    handle = ffi.new("void **")
    assert lib.hw_pack_gemm_b(args, nk.accum_spec(spec), handle) == 0
    assert (handle[0] != ffi.NULL) == bool(FEATURES & 3)
    try:
        before = lib.hw_fast_calls()
        status, packed, _ = _raw_gemm(a, b, 19, spec, handle[0], n_threads=2)
        assert status == 0
        np.testing.assert_array_equal(packed, plain)
        assert lib.hw_fast_calls() - before == expect_taken("pairs" if spec is PAIRSAT else "exact", None)
        # a handle for another shape is ignored, never misread
        status, other, _ = _raw_gemm(a[:, :100].copy(), b[:, :100].copy(), 19, spec, handle[0])
        assert status == 0
        _, other_plain, _ = _raw_gemm(a[:, :100].copy(), b[:, :100].copy(), 19, spec, ffi.NULL)
        np.testing.assert_array_equal(other, other_plain)
        # a handle packed for the other weight signedness is ignored too
        flipped = (b.view(np.uint8) ^ 0x80).view(np.int8 if b_dtype == np.uint8 else np.uint8)
        status, other, _ = _raw_gemm(a, flipped, 19, spec, handle[0])
        _, other_plain, _ = _raw_gemm(a, flipped, 19, spec, ffi.NULL)
        assert status == 0
        np.testing.assert_array_equal(other, other_plain)
    finally:
        lib.hw_packed_free(handle[0])
    lib.hw_packed_free(ffi.NULL)


def test_pack_rejects_bad_arguments():
    handle = ffi.new("void **")
    args = ffi.new("hw_gemm_args_t *")
    assert lib.hw_pack_gemm_b(args, nk.accum_spec(AccumSpec()), handle) == lib.HW_ERR_ARG
    assert lib.hw_pack_gemm_b(ffi.NULL, nk.accum_spec(AccumSpec()), handle) == lib.HW_ERR_ARG
    cargs = ffi.new("hw_conv2d_args_t *")
    assert lib.hw_pack_conv2d_w(cargs, nk.accum_spec(AccumSpec()), handle) == lib.HW_ERR_ARG

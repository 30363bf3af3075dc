"""Packed weights for narrow saturating accumulators (c_kernels/hw_packed.c,
hw_fast_x86_narrow.c): pack_weights(w, accum, zero_point) adds the narrow path's
formats to the handle.  A packed call gives the same bits as an unpacked one and
as the portable kernel, whatever spec / zero points the handle was packed for;
and the narrow path really reads the handle (shown by handing it a handle packed
from other weights of the same shape at the _native level)."""

from __future__ import annotations

import numpy as np
import pytest
from fastnarrow_cases import HAVE_FAST, NO_FAST_REASON, portable_only, spec

from hwsim._native import kernels as nk
from hwsim._native import lib
from hwsim.kernels import AccumSpec, conv2d, gemm, pack_weights

pytestmark = pytest.mark.skipif(not HAVE_FAST, reason=NO_FAST_REASON)

# (acc_bits, placement, bias_first): 16 -> int16 step panels, 17..31 -> guarded
# quads (w' in s8, K % 4 == 0) or int32 step panels, 12 -> int32 step panels
SPECS = [(16, "in_mac", True), (24, "folded", False), (24, "in_mac", True), (20, "in_mac", False),
         (12, "folded", True), (31, "in_mac", True)]


def _same(x, y, what):
    np.testing.assert_array_equal(x.output, y.output, err_msg=f"{what}: output")
    np.testing.assert_array_equal(x.accumulators, y.accumulators, err_msg=f"{what}: accumulators")
    for name in ("group_events", "acc_events", "out_events", "max_abs_acc"):
        np.testing.assert_array_equal(getattr(x.counters, name), getattr(y.counters, name),
                                      err_msg=f"{what}: {name}")


def _operands(rng, m, n, k, a_dtype, w_dtype):
    ainfo, winfo = np.iinfo(a_dtype), np.iinfo(w_dtype)
    a = rng.integers(ainfo.min, ainfo.max + 1, (m, k)).astype(a_dtype)
    b = rng.integers(winfo.min, winfo.max + 1, (n, k)).astype(w_dtype)
    a[: m // 2, : k // 2] = ainfo.max   # long same-sign runs: the accumulators saturate
    b[: n // 2, : k // 3] = winfo.max
    return a, b


@pytest.mark.parametrize("bits,placement,bias_first", SPECS, ids=str)
@pytest.mark.parametrize("a_dtype,w_dtype", [(np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8),
                                             (np.int16, np.int8)], ids=str)
@pytest.mark.parametrize("k", [256, 300, 37])
def test_packed_gemm_bits_equal_unpacked(bits, placement, bias_first, a_dtype, w_dtype, k):
    rng = np.random.default_rng(bits * 1000 + k)
    m, n = 23, 70
    a, b = _operands(rng, m, n, k, a_dtype, w_dtype)
    if a_dtype == np.int16:
        a = np.clip(a, -181, 181).astype(np.int16)
    zw = 128 if w_dtype == np.uint8 else 0
    zx = 5 if a_dtype != np.uint8 else 131
    bias = rng.integers(-3000, 3000, n).astype(np.int32)
    acc = spec(bits, placement=placement, bias_first=bias_first)
    kw = dict(a_zero_point=zx, b_zero_point=zw, bias=bias, accum=acc, return_accumulators=True, counters=True)
    ref = gemm(a, b, **kw)
    with portable_only():
        _same(ref, gemm(a, b, **kw), "unpacked fast vs portable")
    for packed, what in [(pack_weights(b, acc, zw), "packed for this spec"),
                         (pack_weights(b), "packed for int32"),
                         (pack_weights(b, spec(16 if bits != 16 else 24), zw), "packed for another width"),
                         (pack_weights(b, acc, zw + 1), "packed with another zero point")]:
        for threads in (1, 2):
            _same(gemm(a, packed, **{**kw, "n_threads": threads}), ref, f"{what}, {threads} threads")


@pytest.mark.parametrize("bits,placement,bias_first", SPECS, ids=str)
@pytest.mark.parametrize("in_c,pad", [(8, 1), (6, 0), (16, 2)])
def test_packed_conv_bits_equal_unpacked(bits, placement, bias_first, in_c, pad):
    rng = np.random.default_rng(bits * 100 + in_c)
    x = rng.integers(0, 256, (2, 7, 9, in_c)).astype(np.uint8)
    w = rng.integers(-128, 128, (20, 3, 3, in_c)).astype(np.int8)
    x[0, :4] = 255
    w[:10, :, :, : in_c // 2] = 127
    acc = spec(bits, placement=placement, bias_first=bias_first)
    zw = np.arange(20, dtype=np.int32) % 3 - 1 if bits % 2 else 0   # per-channel zero points on odd widths
    kw = dict(padding=pad, x_zero_point=77, w_zero_point=zw, accum=acc, return_accumulators=True, counters=True)
    ref = conv2d(x, w, **kw)
    with portable_only():
        _same(ref, conv2d(x, w, **kw), "unpacked fast vs portable")
    for packed, what in [(pack_weights(w, acc, zw), "packed for this spec"), (pack_weights(w), "packed for int32"),
                         (pack_weights(w, acc, 3), "packed with another zero point")]:
        _same(conv2d(x, packed, **kw), ref, what)


def _native_gemm(a, b, acc, packed):
    return nk.gemm(a, b, a_zero_point=0, b_zero_point=np.zeros(1, np.int32), bias=None, accum=acc, requant=None,
                   out_dtype=None, want_acc=True, want_counters=False, n_threads=1, packed=packed)


@pytest.mark.parametrize("bits", [16, 24, 12])
def test_narrow_path_reads_the_handle(bits):
    """A handle packed from b1, passed with b2 (same shape) to the bare C call,
    yields b1's result: the narrow path took its panels from the handle instead
    of re-packing b2.  (The public API never lets the two disagree.)"""
    rng = np.random.default_rng(bits)
    a = rng.integers(0, 256, (9, 512)).astype(np.uint8)   # K = 512: no bound clears int24
    b1 = rng.integers(-128, 128, (40, 512)).astype(np.int8)
    b2 = rng.integers(-128, 128, (40, 512)).astype(np.int8)
    acc = spec(bits)
    want1 = _native_gemm(a, b1, acc, nk.ffi.NULL).accumulators
    want2 = _native_gemm(a, b2, acc, nk.ffi.NULL).accumulators
    assert not np.array_equal(want1, want2)
    handle = nk.pack_weights(b1, acc)
    before = lib.hw_fast_calls()
    got = _native_gemm(a, b2, acc, handle).accumulators
    assert lib.hw_fast_calls() == before + 1
    np.testing.assert_array_equal(got, want1)
    # packed for the int32 accumulator only: no narrow part, b2 is read
    np.testing.assert_array_equal(_native_gemm(a, b2, acc, nk.pack_weights(b1)).accumulators, want2)


def test_pack_weights_checks_its_arguments():
    w = np.ones((4, 8), dtype=np.int8)
    with pytest.raises(ValueError, match="accum"):
        pack_weights(w, accum="int24")
    with pytest.raises(ValueError, match="zero_point"):
        pack_weights(w, AccumSpec(), zero_point=[1, 2])
    with pytest.raises(ValueError, match="zero_point"):
        pack_weights(w, AccumSpec(), zero_point=300)


@pytest.mark.parametrize("in_c", [4, 36, 96, 132, 200, 260])
@pytest.mark.parametrize("geometry", [dict(stride=1, dilation=1, padding=1), dict(stride=2, dilation=2, padding=2),
                                      dict(stride=(1, 2), dilation=1, padding=(0, 1, 2, 1))], ids=str)
def test_guarded_conv_bounds_per_tap_piece(in_c, geometry):
    """The conv guard bounds each tap's piece of a block by (sum |a| over the
    piece's channels) x (max weight over them): channel counts whose taps
    straddle the 128-step blocks, strides, dilations, batch 2, per-k weight
    maxima that differ (a loose bound replays more blocks), saturating and safe
    rows mixed.  Same bits as the portable kernel, packed or not."""
    rng = np.random.default_rng(in_c)
    x = rng.integers(0, 256, (2, 9, 11, in_c)).astype(np.uint8)
    x[0, :3] = 255
    w = rng.integers(-128, 128, (24, 3, 3, in_c)).astype(np.int8)
    w[:, :, :, ::3] //= 16          # per-k maxima differ
    w[:6, :2] = 127
    acc = spec(20)
    kw = dict(x_zero_point=3, bias=rng.integers(-(1 << 18), 1 << 18, 24).astype(np.int64), accum=acc,
              return_accumulators=True, counters=True, **geometry)
    before = lib.hw_fast_calls()
    fast = conv2d(x, w, **kw)
    assert lib.hw_fast_calls() == before + 1
    packed = conv2d(x, pack_weights(w, acc), **kw, n_threads=2)
    with portable_only():
        port = conv2d(x, w, **kw)
    _same(fast, port, "fast vs portable")
    _same(packed, port, "packed, 2 threads vs portable")
    assert port.counters.acc_events.sum() > 0      # some blocks did saturate


@pytest.mark.parametrize("bits", [16, 20, 24])
def test_packed_int16_weights(bits):
    """int16 weights (no VNNI part; the narrow part holds int16 / int32 step panels)."""
    rng = np.random.default_rng(bits + 7)
    a = rng.integers(-128, 128, (11, 40)).astype(np.int8)
    b = rng.integers(-300, 300, (33, 40)).astype(np.int16)
    acc = spec(bits)
    kw = dict(a_zero_point=-3, b_zero_point=5, accum=acc, return_accumulators=True, counters=True)
    ref = gemm(a, b, **kw)
    with portable_only():
        _same(ref, gemm(a, b, **kw), "unpacked fast vs portable")
    _same(gemm(a, pack_weights(b, acc, 5), **kw), ref, "packed")


def test_pack_gemm_b_rejects_per_channel_without_zero_points():
    args = nk.ffi.new("hw_gemm_args_t *")
    w = np.ones((4, 8), np.int8)
    args.N, args.K, args.ldb, args.b_dtype = 4, 8, 8, 0
    args.b = nk.ffi.from_buffer(w)
    args.b_zp_per_channel = 1
    out = nk.ffi.new("void **")
    assert lib.hw_pack_gemm_b(args, nk.accum_spec(spec(24)), out) == lib.HW_ERR_ARG
    assert out[0] == nk.ffi.NULL

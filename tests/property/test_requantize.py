"""Requantisation, every scheme: C == numpy mirror == pure-Python oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import edge_ints, edge_values

from hwsim._native import primitives as C
from hwsim.numerics import arith as A
from hwsim.numerics.multiplier import quantize_multiplier
from hwsim.numerics.requant_params import SHIFT_RANGE, RequantParams
from hwsim.oracle.requantize import requantize_one
from hwsim.types import Overflow, RequantScheme, Rounding

FIXED = ["double_rounding", "single_rounding", "srdhm_half_up", "neon_single", "int64_reduced"]
OUT_FORMATS = [(8, True), (8, False), (16, True), (32, True), (4, True), (12, False)]


def check_all_three(acc: np.ndarray, params: RequantParams) -> None:
    """Assert C == numpy == oracle for values and clamp/wrap events."""
    flat = acc.reshape(-1)
    cols = acc.shape[-1]
    want = [requantize_one(int(a), i % cols, i, params) for i, a in enumerate(flat)]
    want_vals = np.array([w[0] for w in want], np.int64).reshape(acc.shape)
    want_changed = np.array([w[1] for w in want], bool).reshape(acc.shape)

    out, events = C.requantize(acc, params, out_dtype=np.int32 if params.out_bits > 16 else None,
                               return_events=True)
    bad = np.argwhere(out.astype(np.int64) != want_vals)
    assert bad.size == 0, f"C: first mismatch at {bad[0]}: acc={acc[tuple(bad[0])]}, got {out[tuple(bad[0])]}, want {want_vals[tuple(bad[0])]}"
    per_channel = want_changed.reshape(-1, cols).sum(axis=0)
    want_events = per_channel if params.n_channels > 1 else per_channel.sum(keepdims=True)
    np.testing.assert_array_equal(events, want_events)

    got_np, changed_np = A.requantize(acc, params, return_changed=True)
    bad = np.argwhere(got_np != want_vals)
    assert bad.size == 0, f"numpy: first mismatch at {bad[0]}: acc={acc[tuple(bad[0])]}, got {got_np[tuple(bad[0])]}, want {want_vals[tuple(bad[0])]}"
    np.testing.assert_array_equal(changed_np, want_changed)


@st.composite
def requant_params(draw, scheme=None, n_channels=None):
    scheme = RequantScheme(draw(st.sampled_from(list(RequantScheme))) if scheme is None else scheme)
    n = draw(st.integers(1, 4)) if n_channels is None else n_channels
    bits, signed = draw(st.sampled_from(OUT_FORMATS))
    lo_fmt, hi_fmt = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    out_min = draw(st.one_of(st.just(lo_fmt), st.integers(lo_fmt, hi_fmt)))
    out_max = draw(st.one_of(st.just(hi_fmt), st.integers(out_min, hi_fmt)))
    kw = dict(
        zero_point=draw(st.one_of(st.integers(-200, 200), edge_ints(32))),
        out_bits=bits, out_signed=signed, out_min=out_min, out_max=out_max,
        out_overflow=draw(st.sampled_from(list(Overflow))),
        rounding=draw(st.sampled_from(list(Rounding))),
        seed=draw(st.integers(0, 2**64 - 1)),
    )
    if scheme in SHIFT_RANGE:
        lo, hi = SHIFT_RANGE[scheme]
        kw["shift"] = draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
    if scheme.value in FIXED:
        kw["multiplier"] = draw(st.lists(st.one_of(st.sampled_from([0, 1, 2**30, 2**31 - 1, 0x7FFF0000, 0x7FFEFFFF]),
                                                   st.integers(2**30, 2**31 - 1), st.integers(0, 2**31 - 1)),
                                         min_size=n, max_size=n))
    if scheme in (RequantScheme.FLOAT32, RequantScheme.FLOAT64_ROUND):
        kw["scale"] = draw(st.lists(st.one_of(
            st.sampled_from([0.5, 1.0, 0.25, 2.0**-20, 3.0, 1e-9, 0.0, -0.5]),
            st.floats(1e-12, 1e4), st.floats(-10, 10)), min_size=n, max_size=n))
    return RequantParams(scheme, **kw)


@pytest.mark.parametrize("scheme", list(RequantScheme))
@given(data=st.data())
def test_requantize_property(scheme, data):
    params = data.draw(requant_params(scheme))
    rows = data.draw(st.integers(1, 4))
    cols = params.n_channels if params.n_channels > 1 else data.draw(st.integers(1, 6))
    acc_bits = data.draw(st.sampled_from([16, 24, 32, 33, 48, 64]))
    vals = data.draw(st.lists(edge_ints(acc_bits), min_size=rows * cols, max_size=rows * cols))
    check_all_three(np.array(vals, np.int64).reshape(rows, cols), params)


def _int8_products() -> np.ndarray:
    """Every distinct int8 x int8 product, as one row."""
    a = np.arange(-128, 128, dtype=np.int64)
    return np.unique(a[:, None] * a[None, :]).reshape(1, -1)


@pytest.mark.parametrize("scheme", FIXED)
@pytest.mark.parametrize("real", [2.0**-7, 0.0072474, 0.3, 1.0 / 3.0, 1.5])
def test_all_int8_products_fixed_point(scheme, real):
    m, shift = quantize_multiplier(real, single_rounding=True)
    params = RequantParams(scheme, multiplier=m, shift=shift, zero_point=-3)
    check_all_three(_int8_products(), params)


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("scheme, scale", [("float32", 0.0072474), ("float32", 0.5),
                                           ("float64_round", 1.0 / 3.0), ("float64_round", 2.0**-7)])
def test_all_int8_products_float(scheme, scale, rounding):
    params = RequantParams(scheme, scale=scale, zero_point=5, out_signed=False, out_bits=8, rounding=rounding, seed=11)
    check_all_three(_int8_products(), params)


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("shift", list(range(-31, 1)) + [1, 7, 31, 62, 63])
def test_shift_only_every_shift_on_edges(shift, rounding):
    acc = np.array(edge_values(64), np.int64).reshape(1, -1)
    params = RequantParams("shift_only", shift=shift, rounding=rounding, out_bits=32, seed=3,
                           out_overflow="wrap")
    check_all_three(acc, params)


@pytest.mark.parametrize("scheme", FIXED)
def test_fixed_point_every_shift_on_edges(scheme):
    lo, hi = SHIFT_RANGE[RequantScheme(scheme)]
    acc = np.array(edge_values(32) + [2**40, -(2**47), 2**47 - 1, -(2**63)], np.int64).reshape(1, -1)
    for shift in range(lo, hi + 1):
        for m in (2**30, 1992150143, 2**31 - 1):
            check_all_three(acc, RequantParams(scheme, multiplier=m, shift=shift, out_bits=32))


def test_float32_large_accumulators():
    """int64 -> float32 must round to nearest even, including beyond 2^53."""
    acc = np.array(edge_values(64), np.int64).reshape(1, -1)
    check_all_three(acc, RequantParams("float32", scale=2.0**-40, out_bits=32))
    check_all_three(acc, RequantParams("float64_round", scale=2.0**-40, out_bits=32))


def test_per_channel_uses_the_last_axis():
    acc = np.array([[10, 10, 10], [-7, -7, -7]], np.int64)
    params = RequantParams("single_rounding", multiplier=[2**30, 2**30, 2**30], shift=[0, 1, -1], out_bits=16)
    # hand-worked: 10*0.5 = 5, 10*1 = 10, 10*0.25 = 2.5 -> 3 (half up); -7*0.5 = -3.5 -> -3, -7, -1.75 -> -2
    np.testing.assert_array_equal(C.requantize(acc, params), [[5, 10, 3], [-3, -7, -2]])
    check_all_three(acc, params)


def test_stochastic_requant_is_index_keyed():
    acc = np.full((4, 1000), 3, np.int64)
    p = RequantParams("shift_only", shift=-3, rounding="stochastic", seed=77, out_bits=16)
    out = C.requantize(acc, p)
    # same call, same bits; the flat index (not the value) keys the draw, so rows differ
    np.testing.assert_array_equal(out, C.requantize(acc, p))
    assert not np.array_equal(out[0], out[1])
    np.testing.assert_array_equal(out.astype(np.int64), A.requantize(acc, p))


@pytest.mark.parametrize("scheme", ["float32", "float64_round"])
@given(data=st.data())
def test_float_schemes_wide_accumulators(scheme, data):
    """Accumulators beyond 2^24 / 2^53 with scales that keep the result inside int32."""
    acc = np.array(data.draw(st.lists(st.one_of(edge_ints(64), st.integers(2**24, 2**40), st.integers(-(2**62), 2**62)),
                                      min_size=1, max_size=16)), np.int64).reshape(1, -1)
    scale = data.draw(st.one_of(st.floats(2.0**-40, 2.0**-9), st.floats(1e-18, 1e-12)))
    rounding = data.draw(st.sampled_from(list(Rounding)))
    check_all_three(acc, RequantParams(scheme, scale=scale, rounding=rounding, out_bits=32, seed=9))

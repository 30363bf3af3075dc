"""Rounding primitives: C == numpy mirror == pure-Python oracle, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import edge_ints, edge_values, int_arrays

from hwsim._native import primitives as C
from hwsim.numerics import arith as A
from hwsim.oracle import primitives as O
from hwsim.types import Rounding

EDGE64 = np.array(edge_values(64), np.int64)
EDGE32 = np.array(edge_values(32), np.int32)
MODES = list(Rounding)


def _first_mismatch(got, want, inputs):
    bad = np.flatnonzero(np.asarray(got) != np.asarray(want))
    return None if bad.size == 0 else (int(bad[0]), inputs[bad[0]], got[bad[0]], want[bad[0]])


@pytest.mark.parametrize("shift", range(64))
@pytest.mark.parametrize("mode", MODES)
def test_round_shift_every_shift_on_edges(shift, mode):
    got_c = C.round_shift(EDGE64, shift, mode, seed=12345)
    got_np = A.round_shift(EDGE64, shift, mode, seed=12345)
    want = [O.round_div_pow2(int(x), shift, mode, 12345, i) for i, x in enumerate(EDGE64)]
    assert _first_mismatch(got_c, want, EDGE64) is None
    assert _first_mismatch(got_np, want, EDGE64) is None


@pytest.mark.parametrize("mode", MODES)
def test_round_shift_all_int8_values(mode):
    x = np.arange(-128, 128, dtype=np.int64)
    for shift in range(10):
        want = [O.round_div_pow2(int(v), shift, mode, 7, i) for i, v in enumerate(x)]
        np.testing.assert_array_equal(C.round_shift(x, shift, mode, seed=7), want, err_msg=f"shift {shift}")
        np.testing.assert_array_equal(A.round_shift(x, shift, mode, seed=7), want, err_msg=f"shift {shift}")


@pytest.mark.parametrize("mode", MODES)
def test_round_shift_all_int16_values_c_equals_numpy(mode):
    x = np.arange(-(2**15), 2**15, dtype=np.int64)
    for shift in range(17):
        np.testing.assert_array_equal(C.round_shift(x, shift, mode, 99), A.round_shift(x, shift, mode, 99))


@given(int_arrays(64), st.integers(0, 63), st.sampled_from(MODES), st.integers(0, 2**64 - 1))
def test_round_shift_property(x, shift, mode, seed):
    want = [O.round_div_pow2(int(v), shift, mode, seed, i) for i, v in enumerate(x)]
    np.testing.assert_array_equal(C.round_shift(x, shift, mode, seed), want)
    np.testing.assert_array_equal(A.round_shift(x, shift, mode, seed), want)


@given(int_arrays(64), st.integers(1, 63))
def test_deterministic_modes_bracket_the_exact_quotient(x, shift):
    """Real-valued check: every mode lands on floor or ceil, nearest modes within 1/2."""
    floor = C.round_shift(x, shift, "floor")
    ceil = C.round_shift(x, shift, "ceil")
    exact_twice = [2 * int(v) for v in x]    # 2 * x in units of 2^-shift: compare 2*y*2^n with 2x
    for mode in ("half_up", "half_down", "half_even", "half_away", "half_zero"):
        y = C.round_shift(x, shift, mode)
        assert np.all((y == floor) | (y == ceil))
        for yi, e2 in zip(y.tolist(), exact_twice):
            assert abs(2 * yi * 2**shift - e2) <= 2**shift


def test_stochastic_is_unbiased_and_reproducible():
    x = np.full(200_000, 3, np.int64)            # 3 / 8 = 0.375
    y = C.round_shift(x, 3, "stochastic", seed=2024)
    assert set(np.unique(y).tolist()) <= {0, 1}
    # binomial(200000, 0.375): sd = 216.5; allow 6 sd
    assert abs(int(y.sum()) - 75_000) < 6 * 217
    np.testing.assert_array_equal(y, C.round_shift(x, 3, "stochastic", seed=2024))
    assert not np.array_equal(y, C.round_shift(x, 3, "stochastic", seed=2025))


@pytest.mark.parametrize("e", range(32))
def test_rdbpot_every_exponent(e):
    exps = np.full(EDGE32.shape, e, np.int32)
    want = [O.rdbpot(int(v), e) for v in EDGE32]
    np.testing.assert_array_equal(C.rdbpot(EDGE32, exps), want)
    np.testing.assert_array_equal(A.rdbpot(EDGE32, exps), want)


def test_srdhm_all_edge_pairs():
    a = np.repeat(EDGE32, EDGE32.size)
    b = np.tile(EDGE32, EDGE32.size)
    want = [O.srdhm(int(p), int(q)) for p, q in zip(a, b)]
    np.testing.assert_array_equal(C.srdhm(a, b), want)
    np.testing.assert_array_equal(A.srdhm(a, b), want)
    want_q = [O.sqdmulh(int(p), int(q)) for p, q in zip(a, b)]
    np.testing.assert_array_equal(A.sqdmulh(a, b), want_q)


@given(st.lists(st.tuples(edge_ints(32), edge_ints(32)), min_size=1, max_size=64))
def test_srdhm_property(pairs):
    a = np.array([p for p, _ in pairs], np.int32)
    b = np.array([q for _, q in pairs], np.int32)
    want = [O.srdhm(int(p), int(q)) for p, q in zip(a, b)]
    np.testing.assert_array_equal(C.srdhm(a, b), want)
    np.testing.assert_array_equal(A.srdhm(a, b), want)


@pytest.mark.parametrize("s", range(-63, 64))
def test_neon_shifts_every_amount(s):
    want_r = [O.srshl(int(v), s) for v in EDGE32]
    want_s = [O.sshl(int(v), s) for v in EDGE32]
    np.testing.assert_array_equal(A.srshl(EDGE32, s), want_r)
    np.testing.assert_array_equal(A.sshl(EDGE32, s), want_s)


@pytest.mark.parametrize("mode", MODES)
def test_round_float_matches_oracle(mode):
    from fractions import Fraction

    v = np.array([0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.25, -0.75, 1e-300, -1e-300,
                  2.0**52 + 0.5, -(2.0**52) - 0.5, 2.0**62, -(2.0**62), 123.456, -987.654])
    idx = np.arange(v.size, dtype=np.uint64)
    got = A.round_float(v, mode, seed=5, index=idx)
    want = [O.round_rational(Fraction(float(x)), mode, Fraction(O.stochastic_bits(5, i) >> 11, 2**53))
            for i, x in enumerate(v)]
    np.testing.assert_array_equal(got, want)

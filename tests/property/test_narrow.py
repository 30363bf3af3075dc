"""Narrowing to N bits: C == numpy mirror == pure-Python oracle, events counted exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import edge_values, int_arrays

from hwsim._native import primitives as C
from hwsim.numerics import arith as A
from hwsim.oracle import primitives as O
from hwsim.types import Overflow

EDGE64 = np.array(edge_values(64), np.int64)
FORMATS = [(b, True) for b in range(2, 65)] + [(b, False) for b in range(1, 64)]


@pytest.mark.parametrize("overflow", list(Overflow))
@pytest.mark.parametrize("bits, signed", FORMATS)
def test_narrow_every_width_on_edges(bits, signed, overflow):
    want = [O.narrow(int(v), bits, signed, overflow) for v in EDGE64]
    n_changed = sum(w != int(v) for w, v in zip(want, EDGE64))
    out, events = C.narrow(EDGE64, bits, signed, overflow)
    np.testing.assert_array_equal(out, want)
    assert events == n_changed
    out_np, events_np = A.narrow(EDGE64, bits, signed, overflow)
    np.testing.assert_array_equal(out_np, want)
    assert events_np == n_changed


@pytest.mark.parametrize("overflow", list(Overflow))
@pytest.mark.parametrize("signed", [True, False])
def test_narrow_all_int8_values_to_int4(signed, overflow):
    x = np.arange(-128, 128, dtype=np.int64)
    want = [O.narrow(int(v), 4, signed, overflow) for v in x]
    np.testing.assert_array_equal(C.narrow(x, 4, signed, overflow)[0], want)
    np.testing.assert_array_equal(A.narrow(x, 4, signed, overflow)[0], want)


def test_int4_values_are_fixed_points():
    """Every int4 value survives narrowing to 4 bits unchanged (no events)."""
    x = np.arange(-8, 8, dtype=np.int64)
    for ovf in Overflow:
        out, events = C.narrow(x, 4, True, ovf)
        np.testing.assert_array_equal(out, x)
        assert events == 0


@given(int_arrays(64), st.sampled_from(FORMATS), st.sampled_from(list(Overflow)))
def test_narrow_property(x, fmt, overflow):
    bits, signed = fmt
    want = [O.narrow(int(v), bits, signed, overflow) for v in x]
    out, events = C.narrow(x, bits, signed, overflow)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(A.narrow(x, bits, signed, overflow)[0], want)
    assert events == sum(w != int(v) for w, v in zip(want, x))


@given(int_arrays(64))
def test_wrap_is_congruent_and_in_range(x):
    """Definition check: wrap_N(v) = v (mod 2^N) and lies in the N-bit range."""
    for bits in (8, 16, 24, 32, 48):
        out = C.narrow(x, bits, True, "wrap")[0]
        for o, v in zip(out.tolist(), x.tolist()):
            assert (o - v) % (1 << bits) == 0
            assert -(1 << (bits - 1)) <= o < (1 << (bits - 1))

"""Hypothesis strategies shared by hwsim's tests.

``edge_ints(bits)`` follows gemmlowp's MakeTestValsInt32: the values where
integer arithmetic breaks (+-(2^i + {-2..2}), the format's min/max and their
neighbours) are drawn first, mixed with uniform values.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def int_range(bits: int, signed: bool = True) -> tuple[int, int]:
    """(min, max) of a ``bits``-wide signed or unsigned integer."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def edge_values(bits: int, signed: bool = True) -> list[int]:
    """Sorted edge values of a format: +-(2^i + {-2..2}), min/max and neighbours, 0."""
    lo, hi = int_range(bits, signed)
    vals = {0, lo, lo + 1, lo + 2, hi, hi - 1, hi - 2}
    for i in range(bits):
        for d in range(-2, 3):
            for v in ((1 << i) + d, -((1 << i) + d)):
                if lo <= v <= hi:
                    vals.add(v)
    return sorted(vals)


def edge_ints(bits: int, signed: bool = True) -> st.SearchStrategy[int]:
    """Integers of a format, edge values first, mixed with uniform ones."""
    lo, hi = int_range(bits, signed)
    return st.one_of(st.sampled_from(edge_values(bits, signed)), st.integers(lo, hi))


def int_arrays(bits: int, dtype=np.int64, max_size: int = 64, signed: bool = True) -> st.SearchStrategy[np.ndarray]:
    """1-D arrays of ``dtype`` holding values of a ``bits``-wide format, edge values first."""
    return hnp.arrays(dtype, st.integers(1, max_size), elements=edge_ints(bits, signed))

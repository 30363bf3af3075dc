"""Determinism: any n_threads gives the same bytes -- outputs, accumulators and
every counter -- for GEMM and conv2d, with accumulators that overflow."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_cases import FOLDED, SAT, WRAP, edge_array

from hwsim import kernels
from hwsim.kernels import RequantParams
from hwsim.types import AccumSpec, RequantScheme, Rounding

#: stochastic rounding draws per element index, so it also checks that every thread uses the flat position
REQUANT = RequantParams(scheme=RequantScheme.FLOAT32, scale=0.01, rounding=Rounding.STOCHASTIC, seed=3)

SPECS = [
    AccumSpec(),
    AccumSpec(group=2, group_bits=16, group_overflow=SAT, acc_bits=32, acc_overflow=WRAP, input_zero_point=FOLDED),
    AccumSpec(group=1, acc_bits=16, acc_overflow=SAT, bias_first=True),
    AccumSpec(group=4, group_bits=16, group_overflow=WRAP, acc_bits=24, acc_overflow=SAT),
]


def _blob(res) -> bytes:
    c = res.counters
    return b"".join(arr.tobytes() for arr in (res.output, res.accumulators, c.group_events, c.acc_events,
                                                c.out_events, c.max_abs_acc))


def res_events(res) -> int:
    return int(res.counters.group_events.sum() + res.counters.acc_events.sum())


@pytest.mark.parametrize("spec", SPECS)
def test_gemm_same_bytes_for_any_thread_count(spec):
    rng = np.random.default_rng(5)
    a = edge_array(rng, (37, 29), np.uint8)
    b = edge_array(rng, (11, 29), np.int8)
    bias = edge_array(rng, (11,), np.int32)
    zw = rng.integers(-128, 128, 11)
    runs = [
        _blob(kernels.gemm(a, b, a_zero_point=17, b_zero_point=zw, bias=bias,
                           accum=spec, requant=REQUANT, return_accumulators=True, counters=True, n_threads=t))
        for t in (1, 2, 3, 8)
    ]
    assert all(r == runs[0] for r in runs)
    events = res_events(kernels.gemm(a, b, a_zero_point=17, b_zero_point=zw, bias=bias, accum=spec, counters=True))
    assert (events > 0) == (spec != AccumSpec())   # the narrow specs really overflow here


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("groups", [1, 6])
def test_conv2d_same_bytes_for_any_thread_count(spec, groups):
    rng = np.random.default_rng(6)
    x = edge_array(rng, (2, 9, 7, 6), np.int8)
    w = edge_array(rng, (12, 3, 3, 6 // groups), np.int8)
    bias = edge_array(rng, (12,), np.int32)
    runs = [
        _blob(kernels.conv2d(x, w, stride=(2, 1), padding=(1, 2, 0, 1), groups=groups, x_zero_point=-5, bias=bias,
                             accum=spec, requant=REQUANT, return_accumulators=True, counters=True, n_threads=t))
        for t in (1, 2, 5)
    ]
    assert all(r == runs[0] for r in runs)

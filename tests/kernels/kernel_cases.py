"""Shared helpers for the kernel tests: the grid of accumulator specs, operand
generators biased to the values that overflow each stage, and the
"C == oracle" comparison (accumulators and every counter)."""

from __future__ import annotations

import itertools

import numpy as np

from hwsim import kernels
from hwsim.oracle import kernels as oracle
from hwsim.types import AccumSpec, Overflow, ZeroPointPlacement

WRAP, SAT = Overflow.WRAP, Overflow.SATURATE
IN_MAC, FOLDED = ZeroPointPlacement.IN_MAC, ZeroPointPlacement.FOLDED_INTO_BIAS

#: group stages: (group, group_bits, group_overflow)
GROUP_STAGES = [(1, 64, WRAP), (2, 16, WRAP), (2, 16, SAT), (4, 16, SAT), (4, 64, WRAP), (2, 64, SAT)]
#: accumulators: (acc_bits, acc_overflow)
ACC_STAGES = [(16, WRAP), (16, SAT), (24, WRAP), (24, SAT), (32, WRAP), (32, SAT), (64, WRAP), (64, SAT)]


def all_specs() -> list[AccumSpec]:
    """Every combination of group stage, accumulator, zero-point placement and bias order."""
    return [
        AccumSpec(group=g, group_bits=gb, group_overflow=go, acc_bits=ab, acc_overflow=ao,
                  input_zero_point=zp, bias_first=bf)
        for (g, gb, go), (ab, ao), zp, bf in itertools.product(GROUP_STAGES, ACC_STAGES, (IN_MAC, FOLDED), (False, True))
    ]


def spec_id(s: AccumSpec) -> str:
    return (f"g{s.group}x{s.group_bits}{s.group_overflow.value[0]}-a{s.acc_bits}{s.acc_overflow.value[0]}-"
            f"{'fold' if s.input_zero_point is FOLDED else 'mac'}-{'bf' if s.bias_first else 'bl'}")


def edge_array(rng: np.random.Generator, shape, dtype, lo: int | None = None, hi: int | None = None) -> np.ndarray:
    """Values of ``dtype`` (or [lo, hi]) where about half are extremes
    (min, min+1, max-1, max, 0, +-1) and the rest uniform."""
    info = np.iinfo(dtype)
    lo = int(info.min) if lo is None else lo
    hi = int(info.max) if hi is None else hi
    edges = np.array(sorted({lo, lo + 1, hi - 1, hi} | {v for v in (-1, 0, 1) if lo <= v <= hi}), dtype=np.int64)
    uniform = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    picks = edges[rng.integers(0, len(edges), size=shape)]
    use_edge = rng.random(shape) < 0.5
    return np.where(use_edge, picks, uniform).astype(dtype)


def counters_of(res) -> dict:
    c = res.counters
    return {"group_events": c.group_events.tolist(), "acc_events": c.acc_events.tolist(),
            "max_abs_acc": c.max_abs_acc.tolist()}


def oracle_counters(o) -> dict:
    return {"group_events": o.group_events, "acc_events": o.acc_events, "max_abs_acc": o.max_abs_acc}


def check_gemm(a, b, *, spec, a_zero_point=0, b_zero_point=0, bias=None, n_threads=1, weight_bits=None):
    """Run the C GEMM and the oracle; assert accumulators and counters are equal."""
    res = kernels.gemm(a, b, a_zero_point=a_zero_point, b_zero_point=b_zero_point, bias=bias, accum=spec,
                       return_accumulators=True, counters=True, n_threads=n_threads, weight_bits=weight_bits)
    o = oracle.gemm(a, b, a_zero_point=a_zero_point, b_zero_point=b_zero_point, bias=bias, accum=spec)
    np.testing.assert_array_equal(res.accumulators, np.array(o.accumulators, dtype=np.int64))
    assert counters_of(res) == oracle_counters(o)
    assert res.counters.out_events.tolist() == [0] * b.shape[0]
    return res, o


def check_conv(x, w, *, spec, n_threads=1, **kw):
    """Run the C conv2d and the oracle; assert accumulators and counters are equal."""
    res = kernels.conv2d(x, w, accum=spec, return_accumulators=True, counters=True, n_threads=n_threads, **kw)
    okw = {k: v for k, v in kw.items() if k in ("groups", "x_zero_point", "w_zero_point", "bias")}
    for name in ("stride", "dilation"):
        v = kw.get(name, 1)
        okw[name] = (v, v) if isinstance(v, int) else tuple(v)
    pad = kw.get("padding", 0)
    okw["padding"] = (pad,) * 4 if isinstance(pad, int) else tuple(pad)
    o = oracle.conv2d(x, w, accum=spec, **okw)
    np.testing.assert_array_equal(res.accumulators, np.array(o.accumulators, dtype=np.int64).reshape(res.accumulators.shape))
    assert counters_of(res) == oracle_counters(o)
    return res, o

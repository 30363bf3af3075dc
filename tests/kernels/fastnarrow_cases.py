"""Shared helpers for the fast-path tests: run one kernel call on the fast path
(the default dispatch) and on the portable C kernel (feature limit 0), and
compare every returned array byte for byte; compare with the pure-Python
oracle where the problem is small enough."""

from __future__ import annotations

import contextlib

import numpy as np

from hwsim import kernels as K
from hwsim._native import lib
from hwsim.oracle import kernels as oracle
from hwsim.oracle import requantize as oracle_rq
from hwsim.types import AccumSpec, Overflow, ZeroPointPlacement

AVX512_VNNI = 2 | 4   # HW_ISA_AVX512BW | HW_ISA_AVX512_VNNI
HAVE_FAST = (lib.hw_cpu_features() & AVX512_VNNI) == AVX512_VNNI
NO_FAST_REASON = "this CPU has no AVX-512BW + VNNI, so the x86 fast paths never run"


@contextlib.contextmanager
def portable_only():
    """Hold every kernel to the portable C path inside the block."""
    old = lib.hw_set_feature_limit(0)
    try:
        yield
    finally:
        lib.hw_set_feature_limit(old)


def spec(bits: int, overflow: str = "saturate", placement: str = "in_mac", bias_first: bool = True,
         group: int = 1, group_bits: int = 64) -> AccumSpec:
    zp = ZeroPointPlacement.IN_MAC if placement == "in_mac" else ZeroPointPlacement.FOLDED_INTO_BIAS
    return AccumSpec(group=group, group_bits=group_bits, group_overflow=Overflow.WRAP, acc_bits=bits,
                     acc_overflow=Overflow(overflow), input_zero_point=zp, bias_first=bias_first)


def run_fast_and_portable(fn, *args, **kwargs):
    """(fast result, portable result, whether a fast path computed the call)."""
    before = lib.hw_fast_calls()
    fast = fn(*args, **kwargs)
    took_fast = lib.hw_fast_calls() > before
    with portable_only():
        port = fn(*args, **kwargs)
    return fast, port, took_fast


def assert_same_result(fast, port, what: str) -> None:
    """Outputs, accumulators and counters identical (exact integers)."""
    np.testing.assert_array_equal(fast.output, port.output, err_msg=f"{what}: output")
    if port.accumulators is not None:
        np.testing.assert_array_equal(fast.accumulators, port.accumulators, err_msg=f"{what}: accumulators")
    if port.counters is not None:
        for name in ("group_events", "acc_events", "out_events", "max_abs_acc"):
            np.testing.assert_array_equal(getattr(fast.counters, name), getattr(port.counters, name),
                                          err_msg=f"{what}: counters.{name}")


def assert_matches_oracle(res, orc, requant=None, what: str = "") -> None:
    """C result == oracle accumulators and counters (and requantised outputs)."""
    acc = np.array(orc.accumulators, dtype=np.int64).reshape(res.accumulators.shape)
    np.testing.assert_array_equal(res.accumulators, acc, err_msg=f"{what}: accumulators vs oracle")
    if res.counters is not None:
        np.testing.assert_array_equal(res.counters.group_events, orc.group_events, err_msg=f"{what}: group_events")
        np.testing.assert_array_equal(res.counters.acc_events, orc.acc_events, err_msg=f"{what}: acc_events")
        np.testing.assert_array_equal(res.counters.max_abs_acc, orc.max_abs_acc, err_msg=f"{what}: max_abs_acc")
    if requant is not None:
        n = acc.shape[-1]
        rows = acc.reshape(-1, n).tolist()
        want = np.array(oracle_rq.requantize(rows, requant), dtype=np.int64).reshape(res.output.shape)
        np.testing.assert_array_equal(res.output.astype(np.int64), want, err_msg=f"{what}: requantised output")


def oracle_gemm(a, b, **kw):
    return oracle.gemm(a, b, **kw)


def oracle_conv2d(x, w, **kw):
    return oracle.conv2d(x, w, **kw)


__all__ = ["K", "lib", "HAVE_FAST", "NO_FAST_REASON", "portable_only", "spec", "run_fast_and_portable",
           "assert_same_result", "assert_matches_oracle", "oracle_gemm", "oracle_conv2d"]

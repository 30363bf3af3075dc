"""Requantised kernel outputs: C == hwsim.oracle.requantize applied to the
oracle's accumulators, for every scheme, per tensor and per channel, with
saturating and wrapping output stages; out_events == the oracle's count; and
the kernel epilogue == the stand-alone requantiser (same element index)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from kernel_cases import FOLDED, SAT, edge_array

from hwsim import kernels
from hwsim._native.primitives import requantize as native_requantize
from hwsim.kernels import RequantParams
from hwsim.oracle import kernels as oracle
from hwsim.types import AccumSpec, Overflow, RequantScheme, Rounding

S = RequantScheme


def _params(name: str, n: int, rng: np.random.Generator) -> RequantParams:
    """Parameters that put a typical 3x3 conv accumulator (|acc| up to ~1e5) across
    the output range, with some outputs clamped."""
    per_channel = rng.random() < 0.5
    c = n if per_channel else 1
    mult = rng.integers(2**30, 2**31 - 1, size=c)
    shift = rng.integers(-11, -8, size=c)
    scale = rng.uniform(2e-4, 2e-3, size=c)
    table = {
        "double": dict(scheme=S.DOUBLE_ROUNDING, multiplier=mult, shift=shift),
        "single": dict(scheme=S.SINGLE_ROUNDING, multiplier=mult, shift=shift),
        "srdhm_half_up": dict(scheme=S.SRDHM_HALF_UP, multiplier=mult, shift=shift),
        "neon_single": dict(scheme=S.NEON_SINGLE, multiplier=mult, shift=shift),
        "int64_reduced": dict(scheme=S.INT64_REDUCED, multiplier=mult, shift=shift, out_bits=16),
        "float32": dict(scheme=S.FLOAT32, scale=scale),
        "float64": dict(scheme=S.FLOAT64_ROUND, scale=scale),
        "shift_only": dict(scheme=S.SHIFT_ONLY, shift=np.full(c, -9), rounding=Rounding.HALF_EVEN),
        "shift_stochastic": dict(scheme=S.SHIFT_ONLY, shift=np.full(c, -9), rounding=Rounding.STOCHASTIC, seed=99),
        "float32_stochastic": dict(scheme=S.FLOAT32, scale=scale, rounding=Rounding.STOCHASTIC, seed=5),
        "u8_zero_point": dict(scheme=S.DOUBLE_ROUNDING, multiplier=mult, shift=shift, out_signed=False,
                              zero_point=128),
        "relu6_range": dict(scheme=S.FLOAT32, scale=scale, zero_point=-128, out_min=-128, out_max=-10),
        "wrap_output": dict(scheme=S.SINGLE_ROUNDING, multiplier=mult, shift=shift + 3, out_overflow=Overflow.WRAP),
    }
    return RequantParams(**table[name])


NAMES = ["double", "single", "srdhm_half_up", "neon_single", "int64_reduced", "float32", "float64", "shift_only",
         "shift_stochastic", "float32_stochastic", "u8_zero_point", "relu6_range", "wrap_output"]
SPECS = [AccumSpec(), AccumSpec(group=2, group_bits=16, group_overflow=SAT, input_zero_point=FOLDED, bias_first=True)]


@pytest.mark.parametrize("spec", SPECS, ids=["exact", "avx2"])
@pytest.mark.parametrize("name", NAMES)
def test_conv_requant_matches_oracle(name, spec):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = edge_array(rng, (1, 5, 6, 8), np.uint8)
    w = edge_array(rng, (6, 3, 3, 8), np.int8)
    bias = rng.integers(-5000, 5000, size=6).astype(np.int32)
    params = _params(name, 6, rng)
    kw = dict(padding=1, x_zero_point=100, bias=bias, accum=spec)
    res = kernels.conv2d(x, w, requant=params, return_accumulators=True, counters=True, **kw)
    o = oracle.conv2d(x, w, stride=(1, 1), dilation=(1, 1), padding=(1, 1, 1, 1), groups=1, x_zero_point=100,
                      bias=bias, accum=spec, requant=params)
    np.testing.assert_array_equal(res.accumulators, np.array(o.accumulators, dtype=np.int64))
    np.testing.assert_array_equal(res.output.astype(np.int64), np.array(o.outputs, dtype=np.int64))
    assert res.counters.out_events.tolist() == o.out_events
    # the same requantiser run stand-alone on the accumulators gives the same bytes
    alone = native_requantize(res.accumulators, params, out_dtype=res.output.dtype)
    np.testing.assert_array_equal(alone, res.output)


@pytest.mark.parametrize("name", NAMES)
def test_gemm_requant_matches_oracle(name):
    rng = np.random.default_rng(zlib.crc32(("gemm" + name).encode()))
    a = edge_array(rng, (4, 70), np.int8)
    b = edge_array(rng, (5, 70), np.int8)
    params = _params(name, 5, rng)
    res = kernels.gemm(a, b, a_zero_point=-7, requant=params, return_accumulators=True, counters=True)
    o = oracle.gemm(a, b, a_zero_point=-7, requant=params)
    np.testing.assert_array_equal(res.accumulators, np.array(o.accumulators, dtype=np.int64))
    np.testing.assert_array_equal(res.output.astype(np.int64), np.array(o.outputs, dtype=np.int64))
    assert res.counters.out_events.tolist() == o.out_events


def test_some_outputs_clamp_and_some_do_not():
    # guards against a vacuous comparison: the cases above must exercise the output stage
    rng = np.random.default_rng(zlib.crc32(b"double"))
    x = edge_array(rng, (1, 5, 6, 8), np.uint8)
    w = edge_array(rng, (6, 3, 3, 8), np.int8)
    bias = rng.integers(-5000, 5000, size=6).astype(np.int32)
    res = kernels.conv2d(x, w, padding=1, x_zero_point=100, bias=bias, requant=_params("double", 6, rng),
                         counters=True)
    clamped = int(res.counters.out_events.sum())
    assert 0 < clamped < res.output.size // 2


def test_hand_worked_requant_of_a_gemm():
    # acc = 1*2 + 3*4 = 14; M = 2^30, shift = -1 -> 14 * 0.25 = 3.5: double rounding rounds the tie away -> 4;
    # -14 -> -3.5 -> -4.  (SEMANTICS 1.6: SRDHM(14, 2^30) = 7 exactly, RDBPOT(7, 1) = 4; RDBPOT(-7, 1) = -4.)
    a = np.array([[1, 3], [-1, -3]], dtype=np.int8)
    b = np.array([[2, 4]], dtype=np.int8)
    p = RequantParams(scheme=S.DOUBLE_ROUNDING, multiplier=2**30, shift=-1)
    np.testing.assert_array_equal(kernels.gemm(a, b, requant=p), [[4], [-4]])
    # float32, half_even: 3.5 -> 4, -3.5 -> -4 (even); scale 0.25 on 10 -> 2.5 -> 2
    f = RequantParams(scheme=S.FLOAT32, scale=0.25)
    np.testing.assert_array_equal(kernels.gemm(a, b, requant=f), [[4], [-4]])
    np.testing.assert_array_equal(kernels.gemm(np.array([[1, 2]], dtype=np.int8), b, requant=f), [[2]])


def test_requant_channel_count_and_out_dtype_checked():
    a = np.zeros((2, 3), dtype=np.int8)
    b = np.zeros((4, 3), dtype=np.int8)
    p3 = RequantParams(scheme=S.FLOAT32, scale=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="^requant:"):
        kernels.gemm(a, b, requant=p3)
    p = RequantParams(scheme=S.FLOAT32, scale=0.1, out_bits=16)
    with pytest.raises(ValueError, match="^out_dtype:"):
        kernels.gemm(a, b, requant=p, out_dtype=np.int8)
    assert kernels.gemm(a, b, requant=p).dtype == np.int16
    assert kernels.gemm(a, b, requant=RequantParams(scheme=S.FLOAT32, scale=0.1, out_signed=False)).dtype == np.uint8

"""The values the diff's worked examples show (hwsim.report.causes.final_value) are the values each
requantisation scheme really rounds last: rounding them by the scheme's final rule gives the result of hwsim's
pure-Python oracle (hwsim.oracle.requantize, written from SEMANTICS.md independently of the diff)."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from hwsim.numerics.requant_params import SHIFT_RANGE, RequantParams
from hwsim.oracle.primitives import round_rational
from hwsim.oracle.requantize import requantize_one
from hwsim.report.diff_requant import final_value
from hwsim.types import RequantScheme, Rounding

_FINAL_RULE = {RequantScheme.DOUBLE_ROUNDING: Rounding.HALF_AWAY, RequantScheme.SRDHM_HALF_UP: Rounding.HALF_UP,
               RequantScheme.SINGLE_ROUNDING: Rounding.HALF_UP, RequantScheme.NEON_SINGLE: Rounding.HALF_UP,
               RequantScheme.INT64_REDUCED: Rounding.HALF_UP}
_FIXED = sorted(_FINAL_RULE, key=lambda s: s.value)
_FREE = [RequantScheme.FLOAT32, RequantScheme.FLOAT64_ROUND, RequantScheme.SHIFT_ONLY]
_RULES = [Rounding.HALF_UP, Rounding.HALF_EVEN, Rounding.HALF_AWAY, Rounding.FLOOR, Rounding.HALF_ZERO]


def _params(scheme, multiplier, shift, scale, rounding):
    common = dict(out_bits=32, out_signed=True, zero_point=0)
    if scheme in _FINAL_RULE:
        return RequantParams(scheme, multiplier=multiplier, shift=shift, **common)
    if scheme is RequantScheme.SHIFT_ONLY:
        return RequantParams(scheme, shift=shift, rounding=rounding, **common)
    return RequantParams(scheme, scale=scale, rounding=rounding, **common)


@settings(max_examples=150)
# the pre-shift wraps (SEMANTICS 2.3 / 1.6): x = 2^30, M = 2^30, shift 0 (NEON: -536870912) or shift 1
@example(RequantScheme.NEON_SINGLE, 2**30, 2**30, 31, 1.0, Rounding.HALF_UP)
@example(RequantScheme.DOUBLE_ROUNDING, 2**30, 2**30, 32, 1.0, Rounding.HALF_UP)
@given(scheme=st.sampled_from(_FIXED + _FREE), acc=st.integers(-(2**31), 2**31 - 1),
       multiplier=st.integers(2**30, 2**31 - 1), shift_pick=st.integers(0, 10**6),
       scale=st.floats(1e-6, 4.0), rounding=st.sampled_from(_RULES))
def test_final_value_rounded_by_the_final_rule_is_the_oracles_result(scheme, acc, multiplier, shift_pick, scale,
                                                                    rounding):
    lo, hi = SHIFT_RANGE.get(scheme, (0, 0))
    lo, hi = max(lo, -31), min(hi, 12)            # keep results inside int32 for most accumulators
    shift = lo + shift_pick % (hi - lo + 1)
    p = _params(scheme, multiplier, shift, scale, rounding)
    expected, clamped = requantize_one(acc, 0, 0, p)
    if clamped:                                   # the output clamp, not the rounding, decided it
        return
    rule = _FINAL_RULE.get(scheme, rounding)
    assert round_rational(final_value(acc, p, 0), rule) == expected

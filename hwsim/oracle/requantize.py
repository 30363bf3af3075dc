"""Pure-Python oracle of one requantisation: accumulator -> output value.

Written from SEMANTICS.md sections 1.6, 1.7, 2.3, 3.6 and 10.2 with Python
ints.  Float schemes are emulated *exactly*: every IEEE operation is the exact
rational result rounded once to the format (round to nearest, ties to even,
with subnormals and overflow to infinity) by :func:`round_to_binary`, not by
the machine's float unit.  Never imports ``hwsim._native``.
"""

from __future__ import annotations

import math
from fractions import Fraction

from hwsim.numerics.requant_params import RequantParams
from hwsim.oracle import primitives as P
from hwsim.types import Overflow, RequantScheme, Rounding

__all__ = ["round_to_binary", "to_float32", "to_float64", "requantize_one", "requantize"]


def round_to_binary(r, precision: int, emin: int, emax: int):
    """Round the rational ``r`` to a binary float with ``precision`` significand bits.

    Round to nearest, ties to even; exponents below ``emin`` give subnormals;
    a result of magnitude >= 2**(emax + 1) becomes +-inf (a Python float).
    Returns a ``Fraction`` (finite) or ``math.inf`` / ``-math.inf``.
    """
    r = Fraction(r)
    if r == 0:
        return Fraction(0)
    sign = -1 if r < 0 else 1
    num, den = abs(r.numerator), r.denominator
    e = num.bit_length() - den.bit_length()      # floor(log2 |r|) is e or e - 1
    if (num << max(-e, 0)) < (den << max(e, 0)):
        e -= 1
    q_exp = max(e, emin) - (precision - 1)        # the exponent of one unit in the last place
    scaled = Fraction(num << max(-q_exp, 0), den << max(q_exp, 0))
    m = P.round_rational(scaled, Rounding.HALF_EVEN)
    limit = emax + 1 - q_exp                      # |result| >= 2^(emax+1) <=> m >= 2^limit
    if limit <= 0 or m >= 1 << limit:
        return sign * math.inf
    return sign * m * Fraction(2) ** q_exp


def to_float32(r):
    """IEEE binary32 rounding of the rational ``r``."""
    return round_to_binary(r, 24, -126, 127)


def to_float64(r):
    """IEEE binary64 rounding of the rational ``r``."""
    return round_to_binary(r, 53, -1022, 1023)


def _clamp(v, lo, hi):
    v = lo if v < lo else v
    return hi if v > hi else v


def _float_draw(seed: int, index: int) -> Fraction:
    """Stochastic draw of the float schemes: (z >> 11) / 2^53."""
    return Fraction(P.stochastic_bits(seed, index) >> 11, 1 << 53)


def _scheme_value(acc: int, c: int, index: int, p: RequantParams) -> tuple[int, bool]:
    """The scheme's integer result before the zero point, and whether FLOAT32 clamped in float."""
    s = p.scheme
    if s is RequantScheme.FLOAT32:
        lo = to_float32(p.out_min - p.zero_point)
        hi = to_float32(p.out_max - p.zero_point)
        v = to_float32(to_float32(acc) * Fraction(p.scale[c]))
        clamped = v < lo or v > hi
        v = _clamp(v, lo, hi)
        return P.round_rational(v, p.rounding, _float_draw(p.seed, index)), clamped
    return _fixed_or_shift_value(acc, c, index, p), False


def _fixed_or_shift_value(acc: int, c: int, index: int, p: RequantParams) -> int:
    s = p.scheme
    if s in (RequantScheme.DOUBLE_ROUNDING, RequantScheme.SRDHM_HALF_UP):
        m, sh = p.multiplier[c], p.shift[c]
        x = P.wrap_signed(acc, 32)
        t = P.wrap_signed(x * 2 ** max(sh, 0), 32)
        u = P.srdhm(t, m)
        rs = max(-sh, 0)
        if s is RequantScheme.DOUBLE_ROUNDING:
            return P.rdbpot(u, rs)
        return P.round_rational(Fraction(u, 2**rs), Rounding.HALF_UP)
    if s is RequantScheme.SINGLE_ROUNDING:
        x = P.wrap_signed(acc, 32)
        total = 31 - p.shift[c]
        return P.round_rational(Fraction(x * p.multiplier[c], 2**total), Rounding.HALF_UP)
    if s is RequantScheme.NEON_SINGLE:
        sh = p.shift[c]
        rs = min(sh, -1)
        ls = sh - rs
        x = P.wrap_signed(acc, 32)
        return P.srshl(P.sqdmulh(P.sshl(x, ls), p.multiplier[c]), rs)
    if s is RequantScheme.INT64_REDUCED:
        m = p.multiplier[c]
        reduced = (m + 2**15) // 2**16 if m < 0x7FFF0000 else 0x7FFF
        x = P.wrap_signed(acc, 48)
        total = 15 - p.shift[c]
        return P.round_rational(Fraction(x * reduced, 2**total), Rounding.HALF_UP)
    if s is RequantScheme.FLOAT64_ROUND:
        v = to_float64(to_float64(acc) * Fraction(p.scale[c]))
        v = _clamp(v, Fraction(-(2**62)), Fraction(2**62))
        return P.round_rational(v, p.rounding, _float_draw(p.seed, index))
    # SHIFT_ONLY
    sh = p.shift[c]
    if sh > 0:
        return P.wrap_signed(acc * 2**sh, 64)
    return P.round_div_pow2(acc, -sh, p.rounding, p.seed, index)


def requantize_one(acc: int, channel: int, index: int, params: RequantParams) -> tuple[int, bool]:
    """One accumulator -> (output value, whether it was clamped or wrapped).

    "Clamped or wrapped" = the output stage changed the value, or FLOAT32
    clamped it in float before rounding.

    ``channel`` is ignored for per-tensor parameters; ``index`` is the flat
    position of the element (only stochastic rounding uses it).
    """
    c = 0 if params.n_channels == 1 else channel
    r, clamped = _scheme_value(int(acc), c, index, params)
    y = P.wrap_signed(r + params.zero_point, 64)
    z = y
    if params.out_overflow is Overflow.WRAP:
        z = P.wrap_signed(z, params.out_bits) if params.out_signed else P.wrap_unsigned(z, params.out_bits)
    z = min(max(z, params.out_min), params.out_max)
    return z, clamped or z != y


def requantize(acc_rows: list[list[int]], params: RequantParams) -> list[list[int]]:
    """Requantise a row-major table of accumulators (channel = column)."""
    cols = len(acc_rows[0]) if acc_rows else 0
    return [
        [requantize_one(a, c, r * cols + c, params)[0] for c, a in enumerate(row)]
        for r, row in enumerate(acc_rows)
    ]

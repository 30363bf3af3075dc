"""Pure-Python-int oracle of hwsim's integer primitives.

Every function is written straight from its mathematical definition
(SEMANTICS.md sections 0, 1.4, 1.5, 2.1) using Python ints and
``fractions.Fraction``, so nothing can overflow by accident.  Deliberately
slow and deliberately *not* the q + carry recipes of the C code: the point
is an independent second derivation.  Never imports ``hwsim._native``.
"""

from __future__ import annotations

import math
from fractions import Fraction

from hwsim.types import Overflow, Rounding

__all__ = [
    "wrap_signed",
    "wrap_unsigned",
    "saturate_signed",
    "saturate_unsigned",
    "narrow",
    "splitmix64",
    "stochastic_bits",
    "round_rational",
    "round_div_pow2",
    "srdhm",
    "sqdmulh",
    "rdbpot",
    "srshl",
    "sshl",
]

_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def wrap_signed(v: int, bits: int) -> int:
    """((v + 2^(bits-1)) mod 2^bits) - 2^(bits-1)."""
    half = 1 << (bits - 1)
    return (v + half) % (1 << bits) - half


def wrap_unsigned(v: int, bits: int) -> int:
    """v mod 2^bits."""
    return v % (1 << bits)


def saturate_signed(v: int, bits: int) -> int:
    """clamp(v, -2^(bits-1), 2^(bits-1) - 1)."""
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, v))


def saturate_unsigned(v: int, bits: int) -> int:
    """clamp(v, 0, 2^bits - 1)."""
    return max(0, min((1 << bits) - 1, v))


def narrow(v: int, bits: int, signed: bool, overflow: Overflow) -> int:
    """v narrowed to a ``bits``-wide signed or unsigned integer."""
    if Overflow(overflow) is Overflow.WRAP:
        return wrap_signed(v, bits) if signed else wrap_unsigned(v, bits)
    return saturate_signed(v, bits) if signed else saturate_unsigned(v, bits)


def splitmix64(state: int) -> int:
    """The SplitMix64 output function applied to a 64-bit ``state``."""
    z = state & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def stochastic_bits(seed: int, index: int) -> int:
    """64 random bits of element ``index``: the (index+1)-th SplitMix64 output for ``seed``."""
    return splitmix64(seed + (index + 1) * _GAMMA)


def round_rational(r: Fraction, mode: Rounding, u: Fraction | None = None) -> int:
    """Round the exact rational ``r`` to an integer with ``mode``.

    ``u`` (in [0, 1)) is the stochastic draw: round up iff u < r - floor(r).
    """
    mode = Rounding(mode)
    r = Fraction(r)
    half = Fraction(1, 2)
    if mode is Rounding.FLOOR:
        return math.floor(r)
    if mode is Rounding.CEIL:
        return math.ceil(r)
    if mode is Rounding.TRUNC:
        return math.trunc(r)
    if mode is Rounding.HALF_UP:
        return math.floor(r + half)
    if mode is Rounding.HALF_DOWN:
        return math.ceil(r - half)
    if mode is Rounding.HALF_AWAY:
        return math.floor(r + half) if r >= 0 else -math.floor(-r + half)
    if mode is Rounding.HALF_ZERO:
        return math.ceil(r - half) if r >= 0 else -math.ceil(-r - half)
    if mode is Rounding.HALF_EVEN:
        lo = math.floor(r)
        d = r - lo
        if d != half:
            return lo + (1 if d > half else 0)
        return lo if lo % 2 == 0 else lo + 1
    if u is None:
        raise ValueError("round_rational: stochastic rounding needs the draw u")
    return math.floor(r) + (1 if u < r - math.floor(r) else 0)


def round_div_pow2(x: int, n: int, mode: Rounding, seed: int = 0, index: int = 0) -> int:
    """x / 2^n rounded with ``mode``; stochastic draw u = (z >> (64 - n)) / 2^n."""
    if n == 0:
        return x
    u = Fraction(stochastic_bits(seed, index) >> (64 - n), 1 << n)
    return round_rational(Fraction(x, 1 << n), mode, u)


def srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul, transcribed: nudge, then C division."""
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    p = a * b
    nudge = (1 << 30) if p >= 0 else 1 - (1 << 30)
    num = p + nudge
    q = abs(num) // (1 << 31)          # C '/' truncates toward zero
    return q if num >= 0 else -q


def sqdmulh(a: int, b: int) -> int:
    """ARM SQDMULH: sat_32((2*a*b) >> 32)."""
    return saturate_signed((2 * a * b) >> 32, 32)


def rdbpot(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero."""
    return round_rational(Fraction(x, 1 << exponent), Rounding.HALF_AWAY)


def srshl(x: int, s: int) -> int:
    """ARM SRSHL on a 32-bit lane: s >= 0 wrap_32(x * 2^s); s < 0 (x + 2^(-s-1)) >> -s."""
    if s >= 0:
        return wrap_signed(x << s, 32)
    return (x + (1 << (-s - 1))) >> -s


def sshl(x: int, s: int) -> int:
    """ARM SSHL on a 32-bit lane: s >= 0 wrap_32(x * 2^s); s < 0 x >> -s."""
    if s >= 0:
        return wrap_signed(x << s, 32)
    return x >> -s

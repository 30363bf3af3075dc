"""The arithmetic of requantisation, exactly, for the diff's explanations.

:func:`rescaled` is the exact value a scheme computes for an accumulator before any integer rounding (with the
scheme's own int32 pre-shift wrap); :func:`final_value` the value its *last* rounding rounds (for double rounding:
the high product already rounded by SRDHM).  Both use Python ints and fractions (the float schemes through the
oracle's exact IEEE rounding), so a worked example can be checked by hand; a test holds them to
:mod:`hwsim.oracle.requantize`.
"""

from __future__ import annotations

from fractions import Fraction

from hwsim.oracle import primitives as P
from hwsim.oracle.requantize import to_float32, to_float64
from hwsim.types import RequantScheme

__all__ = ["FLOAT_SCHEMES", "DOUBLE_ROUNDING", "SINGLE_ROUNDING", "channel_params", "rescaled", "final_value",
           "is_tie", "decimal_text", "describe_requant", "final_rule"]

FLOAT_SCHEMES = frozenset({RequantScheme.FLOAT32, RequantScheme.FLOAT64_ROUND})
#: fixed-point schemes that round twice: SRDHM, then a rounding shift
DOUBLE_ROUNDING = frozenset({RequantScheme.DOUBLE_ROUNDING, RequantScheme.SRDHM_HALF_UP})
#: fixed-point schemes that round the exact value once (shift_only: acc / 2^n rounded once)
SINGLE_ROUNDING = frozenset({RequantScheme.SINGLE_ROUNDING, RequantScheme.NEON_SINGLE, RequantScheme.SHIFT_ONLY})


def channel_params(requant, channel: int) -> tuple:
    """(RequantParams, index into its per-channel tuples) for output channel ``channel``."""
    from hwsim.layer_specs import SplitRequant

    if isinstance(requant, SplitRequant):
        if channel >= requant.first_tail_channel:
            return requant.tail, channel - requant.first_tail_channel
        return requant.head, channel
    return requant, channel


def _pick(values: tuple, c: int):
    return values[c if len(values) > 1 else 0]


def rescaled(acc: int, p, c: int) -> Fraction:
    """The exact value requantisation ``p`` computes for ``acc`` before any integer rounding (before the zero
    point): the float product for the float schemes, ``acc * M * 2^(shift - 31)`` for the fixed-point ones."""
    s = p.scheme
    if s is RequantScheme.FLOAT32:
        return to_float32(to_float32(acc) * Fraction(_pick(p.scale, c)))
    if s is RequantScheme.FLOAT64_ROUND:
        return to_float64(Fraction(acc) * Fraction(_pick(p.scale, c)))
    shift = _pick(p.shift, c)
    if s is RequantScheme.SHIFT_ONLY:
        return Fraction(acc) * Fraction(2) ** shift
    m = _pick(p.multiplier, c)
    if s is RequantScheme.INT64_REDUCED:     # the 16x8 kernels' 15-bit multiplier (SEMANTICS 1.7)
        return Fraction(P.wrap_signed(acc, 48) * _reduced(m)) * Fraction(2) ** (shift - 15)
    x = P.wrap_signed(acc, 32)
    if s is RequantScheme.NEON_SINGLE:       # SSHL by shift - rs first (it wraps for shift >= 0; SEMANTICS 2.3)
        rs = min(shift, -1)
        return Fraction(P.sshl(x, shift - rs) * m) * Fraction(2) ** (rs - 31)
    if s in DOUBLE_ROUNDING:                         # the int32 pre-shift for shift > 0 wraps (SEMANTICS 1.6)
        rs = max(-shift, 0)
        return Fraction(P.wrap_signed(x << max(shift, 0), 32) * m) * Fraction(2) ** (-31 - rs)
    return Fraction(x * m) * Fraction(2) ** (shift - 31)


def _reduced(m: int) -> int:
    """The int64 MultiplyByQuantizedMultiplier overload's multiplier: Q31 ``m`` rounded to 15 bits."""
    return (m + (1 << 15)) >> 16 if m < 0x7FFF0000 else 0x7FFF


def final_value(acc: int, p, c: int) -> Fraction:
    """The value the *last* rounding of ``p`` rounds: for double rounding (SRDHM, then a rounding shift) the
    high product already rounded by SRDHM, divided by 2^rs; else :func:`rescaled`."""
    if p.scheme in DOUBLE_ROUNDING:
        shift = _pick(p.shift, c)
        u = P.srdhm(P.wrap_signed(P.wrap_signed(acc, 32) << max(shift, 0), 32), _pick(p.multiplier, c))
        return Fraction(u, 1 << max(-shift, 0))
    return rescaled(acc, p, c)


def is_tie(r: Fraction) -> bool:
    return r - (r.numerator // r.denominator) == Fraction(1, 2)


def decimal_text(r: Fraction) -> str:
    text = f"{float(r):.9f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def describe_requant(p, acc: int, c: int) -> str:
    """How ``p`` turns ``acc`` into its integer, with the exact intermediate values."""
    s = p.scheme
    r = rescaled(acc, p, c)
    if s is RequantScheme.FLOAT32:
        return f"fl32(fl32({acc}) * {float(_pick(p.scale, c))!r}) = {decimal_text(r)}, rounded {p.rounding.value}"
    if s is RequantScheme.FLOAT64_ROUND:
        return f"(double){acc} * {float(_pick(p.scale, c))!r} = {decimal_text(r)}, rounded {p.rounding.value}"
    if s is RequantScheme.SHIFT_ONLY:
        return f"{acc} * 2^{_pick(p.shift, c)} = {decimal_text(r)}, rounded {p.rounding.value}"
    shift = _pick(p.shift, c)
    if s is RequantScheme.INT64_REDUCED:
        return (f"{acc} * {_reduced(_pick(p.multiplier, c))} / 2^{15 - shift} = {decimal_text(r)} (the 15-bit multiplier of "
                "the int64 overload), rounded once half up")
    text = f"{acc} * {_pick(p.multiplier, c)} / 2^{31 - shift} = {decimal_text(r)}"
    if s in DOUBLE_ROUNDING:
        rs = max(-shift, 0)
        u = final_value(acc, p, c) * (1 << rs)
        stage2 = "half away from zero" if s is RequantScheme.DOUBLE_ROUNDING else "half up"
        return text + (f"; SRDHM first rounds the high product to {u} (= {decimal_text(final_value(acc, p, c))} after the "
                       f"shift by {rs}), which is then rounded {stage2}")
    if s in SINGLE_ROUNDING:
        return text + ", rounded once half up"
    return text + f" ({s.value})"


def final_rule(requant) -> str:
    """The tie rule of the last rounding of a requantisation spec, in words."""
    if requant.scheme in (RequantScheme.SRDHM_HALF_UP, *SINGLE_ROUNDING - {RequantScheme.SHIFT_ONLY}):
        return "half up (toward +inf)"
    return {"half_away": "half away from zero", "half_even": "half to even", "half_up": "half up (toward +inf)",
            "half_down": "half down (toward -inf)", "half_zero": "half toward zero"}.get(
        requant.rounding.value, requant.rounding.value)



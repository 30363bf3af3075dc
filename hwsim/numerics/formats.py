"""One entry point for every number format hwsim knows, and exact text forms of binary values.

``parse_format("q3.4")`` gives a :class:`~hwsim.numerics.fixed.FixedFormat`,
``parse_format("bf16")`` a :class:`~hwsim.numerics.floating.FloatFormat`.
The text helpers work on :class:`fractions.Fraction` so that what is printed
is the exact value, never a float64 rounding of it.
"""

from __future__ import annotations

from fractions import Fraction

from hwsim.numerics.fixed import FixedFormat
from hwsim.numerics.floating import FLOAT_FORMATS, FloatFormat, float_format

__all__ = ["parse_format", "format_names", "binary_string", "normalised", "exact_decimal", "is_dyadic"]


def format_names() -> list[str]:
    """Names accepted by :func:`parse_format` (fixed-point ones as patterns)."""
    return list(FLOAT_FORMATS) + ["qM.N", "uqM.N"]


def parse_format(name: str) -> FixedFormat | FloatFormat:
    """``fp32``, ``fp16``, ``bf16``, ``e4m3``, ``e5m2`` (and aliases), ``qM.N`` or ``uqM.N``.

    Raises
    ------
    ValueError
        Unknown name, or a fixed-point format that is empty or wider than 64 bits.
    """
    if not isinstance(name, str):
        raise ValueError(f"format name must be a string, got {type(name).__name__}")
    text = name.strip().lower()
    if text.startswith(("q", "uq")):
        return FixedFormat.parse(text)
    try:
        return float_format(text)
    except ValueError:
        raise ValueError(
            f"unknown format {name!r}; expected one of {', '.join(format_names())} (e.g. q3.4: 1 sign + 3 integer "
            f"+ 4 fraction bits)"
        ) from None


def is_dyadic(q: Fraction) -> bool:
    """True if ``q`` has a finite binary expansion (denominator a power of two)."""
    d = q.denominator
    return d & (d - 1) == 0


def _frac_bits_needed(q: Fraction) -> int:
    if not is_dyadic(q):
        raise ValueError(f"{q} has no finite binary expansion")
    return q.denominator.bit_length() - 1


def binary_string(q: Fraction, max_digits: int = 80) -> str | None:
    """Exact binary expansion of a dyadic rational, e.g. ``Fraction(61, 8)`` -> ``'111.101'``.

    Returns None when the expansion would need more than ``max_digits`` digits.
    """
    k = _frac_bits_needed(q)
    sign = "-" if q < 0 else ""
    scaled = abs(q.numerator)  # |q| = scaled / 2**k
    int_part, frac_part = scaled >> k, scaled & ((1 << k) - 1)
    int_text = format(int_part, "b")
    frac_text = format(frac_part, "b").zfill(k).rstrip("0") if k else ""
    if len(int_text) + len(frac_text) > max_digits:
        return None
    return sign + int_text + ("." + frac_text if frac_text else "")


def normalised(q: Fraction) -> tuple[str, int]:
    """``q = ±1.f × 2**e`` for a non-zero dyadic ``q``: returns (``'±1.f'`` in binary, e).

    >>> normalised(Fraction(61, 8))
    ('1.11101', 2)
    """
    if q == 0:
        raise ValueError("zero has no normalised form")
    k = _frac_bits_needed(q)
    p = abs(q.numerator)
    length = p.bit_length()
    exponent = length - 1 - k
    rest = format(p, "b")[1:].rstrip("0")
    return ("-" if q < 0 else "") + "1" + ("." + rest if rest else ""), exponent


def exact_decimal(q: Fraction, max_digits: int = 40) -> str | None:
    """Exact decimal text of a dyadic rational, or None if it needs more than ``max_digits`` significant digits.

    >>> exact_decimal(Fraction(1, 1024))
    '0.0009765625'
    """
    k = _frac_bits_needed(q)
    digits = abs(q.numerator) * 5**k  # |q| = digits / 10**k
    text = str(digits).rjust(k + 1, "0")
    int_text, frac_text = text[: len(text) - k], text[len(text) - k:].rstrip("0")
    significant = (int_text + frac_text).lstrip("0")
    if len(significant) > max_digits:
        return None
    return ("-" if q < 0 else "") + int_text + ("." + frac_text if frac_text else "")

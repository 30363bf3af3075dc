"""Binary fixed-point formats Qm.n and UQm.n: encode, decode, range, resolution.

Convention (stated once, used everywhere in hwsim):

* ``Qm.n`` is a *signed* two's complement number with ``m`` integer bits
  **excluding** the sign bit and ``n`` fraction bits (the ARM / TI / gemmlowp
  convention).  Its total width is ``bits = m + n + 1``: ``q4.4`` is 9 bits,
  ``q3.4`` is 8 bits (an int8 with 4 fraction bits), ``q0.15`` is ARM's Q15.
* ``UQm.n`` is *unsigned* with ``m`` integer and ``n`` fraction bits; total
  width ``bits = m + n``.
* The real value of a stored integer ``c`` is ``c * 2**-n``.

Xilinx ``ap_fixed<W, I>`` and APyTypes count the sign among the integer bits:
``ap_fixed<W, I>`` is ``Q(I-1).(W-I)`` and ``ap_ufixed<W, I>`` is
``UQI.(W-I)`` (see :meth:`FixedFormat.from_ap_fixed`).

Exactness: a float64 ``x`` is scaled by ``2**n`` (exact: only the exponent
changes) and the scaled value is rounded to an integer with exact float64
operations (``floor``, and ``s - floor(s)``, which is exact), so every
encoding is the exact rounding of the real number ``x``.  Overflow is then
resolved on the integer: ``saturate`` clamps, ``wrap`` keeps the low ``bits``
bits (two's complement modulo ``2**bits``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from hwsim.types import Overflow, Rounding

__all__ = [
    "FixedFormat",
    "MAX_FIXED_BITS",
    "round_to_integer",
    "encode",
    "encode_with_flags",
    "decode",
    "quantize",
    "overflows",
    "bit_pattern",
    "from_bit_pattern",
]

#: Widest fixed-point format supported (total bits, sign included): codes live in int64 / uint64.
MAX_FIXED_BITS = 64

_NAME = re.compile(r"^(u?)q(\d+)\.(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class FixedFormat:
    """A binary fixed-point format ``Qm.n`` (signed) or ``UQm.n`` (unsigned).

    Parameters
    ----------
    int_bits : int
        ``m``, integer bits **excluding** the sign bit (>= 0).
    frac_bits : int
        ``n``, fraction bits (>= 0).
    signed : bool
        Two's complement (``Qm.n``, total width ``m + n + 1``) or unsigned
        (``UQm.n``, total width ``m + n``).

    Examples
    --------
    >>> f = FixedFormat.parse("q4.4")
    >>> f.bits, f.min, f.max, f.resolution
    (9, -16.0, 15.9375, 0.0625)
    """

    int_bits: int
    frac_bits: int
    signed: bool = True

    def __post_init__(self) -> None:
        for name in ("int_bits", "frac_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"FixedFormat.{name} must be an integer >= 0, got {value!r}")
        if self.int_bits + self.frac_bits < 1:
            raise ValueError(f"{self}: a fixed-point format needs at least one integer or fraction bit (m + n >= 1)")
        if self.bits > MAX_FIXED_BITS:
            raise ValueError(f"{self}: total width {self.bits} bits exceeds the supported {MAX_FIXED_BITS} bits")

    @classmethod
    def parse(cls, text: str) -> "FixedFormat":
        """Parse ``"qM.N"`` (signed) or ``"uqM.N"`` (unsigned), case-insensitive."""
        match = _NAME.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"fixed-point format must look like qM.N or uqM.N (e.g. q3.4, uq0.8), got {text!r}")
        unsigned, m, n = match.groups()
        if len(m) > 4 or len(n) > 4:
            raise ValueError(f"{text!r}: total width exceeds the supported {MAX_FIXED_BITS} bits")
        return cls(int(m), int(n), signed=not unsigned)

    @classmethod
    def from_ap_fixed(cls, width: int, int_bits_incl_sign: int, signed: bool = True) -> "FixedFormat":
        """The format of Xilinx ``ap_fixed<W, I>`` (``signed``) or ``ap_ufixed<W, I>``.

        ``ap_fixed`` counts the sign bit among its ``I`` integer bits, so
        ``ap_fixed<W, I>`` = ``Q(I-1).(W-I)`` and ``ap_ufixed<W, I>`` = ``UQI.(W-I)``.
        Formats with ``I > W`` or ``I < 1`` (scaled beyond the word) are not supported.
        """
        if not 1 <= int_bits_incl_sign <= width:
            raise ValueError(f"ap_fixed<{width}, {int_bits_incl_sign}>: need 1 <= I <= W for a Qm.n format")
        m = int_bits_incl_sign - 1 if signed else int_bits_incl_sign
        return cls(m, width - int_bits_incl_sign, signed=signed)

    @property
    def bits(self) -> int:
        """Total width, sign bit included."""
        return self.int_bits + self.frac_bits + (1 if self.signed else 0)

    @property
    def min_code(self) -> int:
        """Smallest stored integer."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        """Largest stored integer."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def code_dtype(self) -> np.dtype:
        """dtype of the stored integers returned by :func:`encode`: int64 (signed) or uint64."""
        return np.dtype(np.int64 if self.signed else np.uint64)

    @property
    def resolution(self) -> float:
        """Value of one LSB, ``2**-n`` (exact)."""
        return float(2.0 ** -self.frac_bits)

    @property
    def exact_min(self) -> Fraction:
        return Fraction(self.min_code, 1 << self.frac_bits)

    @property
    def exact_max(self) -> Fraction:
        return Fraction(self.max_code, 1 << self.frac_bits)

    @property
    def min(self) -> float:
        """Most negative value (exact as a float64 for widths up to 53 bits)."""
        return float(self.exact_min)

    @property
    def max(self) -> float:
        """Largest value (exact as a float64 for widths up to 53 bits)."""
        return float(self.exact_max)

    def __str__(self) -> str:
        return f"{'' if self.signed else 'u'}q{self.int_bits}.{self.frac_bits}"


def _check_format(fmt) -> FixedFormat:
    if not isinstance(fmt, FixedFormat):
        raise ValueError(f"fmt: expected a FixedFormat, got {type(fmt).__name__}")
    return fmt


def _as_rounding(rounding) -> Rounding:
    try:
        return Rounding(rounding)
    except ValueError:
        names = ", ".join(r.value for r in Rounding)
        raise ValueError(f"rounding: expected one of {names}, got {rounding!r}") from None


def _as_overflow(overflow) -> Overflow:
    try:
        return Overflow(overflow)
    except ValueError:
        raise ValueError(f"overflow: expected 'wrap' or 'saturate', got {overflow!r}") from None


def _as_float64(x, name: str = "x") -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        raise ValueError(f"{name}: float{arr.dtype.itemsize * 8} input is not supported (use float64)")
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8 and arr.size:
        # int64 values beyond 2**53 would be rounded by the float64 conversion.
        if np.any(np.abs(arr.astype(np.float64)) > 2.0**53):
            raise ValueError(f"{name}: 64-bit integers beyond 2**53 cannot be converted exactly; pass float64")
    return arr.astype(np.float64)


def round_to_integer(s, rounding=Rounding.HALF_EVEN, rng: np.random.Generator | None = None) -> np.ndarray:
    """Round float64 values to integers (returned as integer-valued float64), exactly.

    Parameters
    ----------
    s : array_like of float
        Values to round.  NaN and inf pass through unchanged.
    rounding : Rounding
        Any :class:`hwsim.types.Rounding`.  ``stochastic`` rounds up with
        probability equal to the fraction ``s - floor(s)``, drawing from ``rng``.
    rng : numpy.random.Generator, optional
        Required for ``stochastic`` (pass a seeded generator for reproducibility).

    Notes
    -----
    The nearest and stochastic modes work on the magnitude: ``a = |s|``,
    ``fa = floor(a)`` and ``r = a - fa`` are exact in float64 (``r`` is the
    low bits of ``a``), so comparing ``r`` with 0.5 decides ties exactly.  (The
    signed ``s - floor(s)`` is *not* always exact: for s = -0.49999999999999994 it
    is 0.5 + 2**-54, which float64 rounds to a false tie.)  Adding 1 to ``fa`` is
    exact because a non-zero ``r`` implies ``a < 2**52``.
    """
    rounding = _as_rounding(rounding)
    s = np.asarray(s, dtype=np.float64)
    if rounding is Rounding.FLOOR:
        return np.floor(s)
    if rounding is Rounding.CEIL:
        return np.ceil(s)
    if rounding is Rounding.TRUNC:
        return np.trunc(s)
    neg = s < 0
    a = np.abs(s)
    fa = np.floor(a)
    with np.errstate(invalid="ignore"):  # inf - inf is NaN; inf never rounds up
        r = a - fa
    if rounding is Rounding.STOCHASTIC:
        if not isinstance(rng, np.random.Generator):
            raise ValueError("rng: stochastic rounding needs a numpy.random.Generator (seed it for reproducible bits)")
        # Away from zero with probability r: for s >= 0 that is "up with probability s - floor(s)", and for s < 0
        # "down with probability r", i.e. up with probability 1 - r = s - floor(s) as well.
        away = rng.random(s.shape) < r
    else:
        tie = r == 0.5
        if rounding is Rounding.HALF_UP:        # ties toward +inf: away from zero for positive values
            tie_away = tie & ~neg
        elif rounding is Rounding.HALF_DOWN:    # ties toward -inf: away from zero for negative values
            tie_away = tie & neg
        elif rounding is Rounding.HALF_EVEN:
            with np.errstate(invalid="ignore"):  # fmod(inf, 2) is NaN; inf is never a tie
                tie_away = tie & (np.fmod(fa, 2.0) != 0.0)
        elif rounding is Rounding.HALF_AWAY:
            tie_away = tie
        else:  # HALF_ZERO
            tie_away = np.zeros_like(tie)
        away = (r > 0.5) | tie_away
    magnitude = np.where(away, fa + 1.0, fa)
    return np.where(neg, -magnitude, magnitude)


def _float_int_to_uint64(v: np.ndarray) -> np.ndarray:
    """Integer-valued float64 with |v| < 2**64 -> v modulo 2**64 as uint64, exactly.

    Split into hi * 2**32 + lo with lo in [0, 2**32): both steps are exact in
    float64 (division by a power of two, and a subtraction whose result is an
    integer below 2**32), and the recombination wraps in uint64 arithmetic.
    """
    hi = np.floor(v / 4294967296.0)
    lo = v - hi * 4294967296.0
    hi_u = hi.astype(np.int64).view(np.uint64)
    return (hi_u << np.uint64(32)) + lo.astype(np.uint64)


def _pattern_to_code(pattern: np.ndarray, fmt: FixedFormat) -> np.ndarray:
    """Low ``bits`` bits of a uint64 pattern -> stored integer (sign-extended if signed)."""
    if fmt.signed:
        up = np.uint64(64 - fmt.bits)
        return (pattern << up).view(np.int64) >> np.int64(64 - fmt.bits)
    return pattern & np.uint64((1 << fmt.bits) - 1)


def _round_scaled(x: np.ndarray, fmt: FixedFormat, rounding: Rounding, rng) -> np.ndarray:
    """round(x * 2**n) as integer-valued float64 (inf where it overflows float64)."""
    with np.errstate(over="ignore"):
        s = x * 2.0**fmt.frac_bits
    return round_to_integer(s, rounding, rng)


def encode_with_flags(x, fmt: FixedFormat, rounding=Rounding.HALF_EVEN, overflow=Overflow.SATURATE,
                      rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`encode`, also returning a mask of the values whose rounded value did not fit
    (and were therefore saturated or wrapped)."""
    fmt = _check_format(fmt)
    rounding = _as_rounding(rounding)
    overflow = _as_overflow(overflow)
    x = _as_float64(x)
    if np.isnan(x).any():
        raise ValueError("x: NaN has no fixed-point encoding")
    wrap = overflow is Overflow.WRAP
    if wrap and np.isinf(x).any():
        raise ValueError("x: infinity cannot be wrapped into a fixed-point format (use overflow='saturate')")
    shifted = np.zeros(x.shape, dtype=bool)
    if wrap:
        # Wrapping keeps the value modulo 2**bits LSBs = 2**(bits - n) in real units.  Reducing x first by an
        # exact fmod keeps its sign and its position within an LSB, so the rounding is unchanged (the shift is
        # a whole number of LSBs, an even number of them, so half_even's parity is unchanged too) and the
        # scaled value cannot overflow float64.  A value that fmod moved was at least 2**(bits - n) in
        # magnitude, so it overflows the format whatever the rounding.
        reduced = np.fmod(x, 2.0 ** (fmt.bits - fmt.frac_bits))
        shifted = reduced != x
        x = reduced
    v = _round_scaled(x, fmt, rounding, rng)
    hi_limit = 2.0 ** (fmt.bits - 1) if fmt.signed else 2.0**fmt.bits
    lo_limit = -(2.0 ** (fmt.bits - 1)) if fmt.signed else 0.0
    over = v >= hi_limit
    under = v < lo_limit
    if wrap:
        v = np.fmod(v, 2.0**fmt.bits)  # |v| <= 2**bits after rounding; now < 2**bits
        codes = _pattern_to_code(_float_int_to_uint64(v), fmt)
    else:
        inside = np.where(over | under, 0.0, v)
        codes = _pattern_to_code(_float_int_to_uint64(inside), fmt)
        codes = np.where(over, codes.dtype.type(fmt.max_code), codes)
        codes = np.where(under, codes.dtype.type(fmt.min_code), codes)
    return codes.astype(fmt.code_dtype), over | under | shifted


def encode(x, fmt: FixedFormat, rounding=Rounding.HALF_EVEN, overflow=Overflow.SATURATE,
           rng: np.random.Generator | None = None) -> np.ndarray:
    """Real values -> stored integers of ``fmt``, exactly.

    .. math:: c = \\mathrm{overflow}(\\mathrm{round}(x \\cdot 2^{n}))

    Parameters
    ----------
    x : array_like of float
        Real values (float64, or anything that converts to it exactly).
    fmt : FixedFormat
        Target format.
    rounding : Rounding, default ``half_even``
        How ``x * 2**n`` is rounded to an integer (``stochastic`` needs ``rng``).
    overflow : Overflow, default ``saturate``
        ``saturate`` clamps to ``[min_code, max_code]``; ``wrap`` keeps the
        low ``fmt.bits`` bits (two's complement).
    rng : numpy.random.Generator, optional
        Only for ``stochastic`` rounding.

    Returns
    -------
    numpy.ndarray
        Stored integers, ``int64`` for signed formats, ``uint64`` for unsigned.

    Raises
    ------
    ValueError
        NaN input; infinite input with ``wrap``; a bad argument.

    Examples
    --------
    >>> encode([7.625, -0.03125, 100.0], FixedFormat.parse("q3.4"), "half_even", "saturate")
    array([122,   0, 127])
    """
    return encode_with_flags(x, fmt, rounding, overflow, rng)[0]


def overflows(x, fmt: FixedFormat, rounding=Rounding.HALF_EVEN) -> np.ndarray:
    """Boolean mask: where ``round(x * 2**n)`` falls outside ``fmt``'s stored-integer range
    (deterministic rounding modes only; for ``stochastic`` use :func:`encode_with_flags`)."""
    return encode_with_flags(x, fmt, rounding, Overflow.SATURATE)[1]


def decode(codes, fmt: FixedFormat) -> np.ndarray:
    """Stored integers -> real values ``c * 2**-n`` as float64.

    Exact for formats of up to 53 bits; wider codes are rounded to the nearest
    float64 (ties to even).  Codes outside the format's range raise ``ValueError``.
    """
    fmt = _check_format(fmt)
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu":
        raise ValueError(f"codes: expected an integer array, got dtype {codes.dtype}")
    if codes.size:
        lo, hi = int(codes.min()), int(codes.max())
        if lo < fmt.min_code or hi > fmt.max_code:
            raise ValueError(f"codes: values must lie in [{fmt.min_code}, {fmt.max_code}] for {fmt}, got [{lo}, {hi}]")
    return codes.astype(np.float64) * 2.0 ** -fmt.frac_bits


def quantize(x, fmt: FixedFormat, rounding=Rounding.HALF_EVEN, overflow=Overflow.SATURATE,
             rng: np.random.Generator | None = None) -> np.ndarray:
    """The value ``fmt`` actually represents for each ``x``: ``decode(encode(x))``."""
    return decode(encode(x, fmt, rounding, overflow, rng), fmt)


def bit_pattern(codes, fmt: FixedFormat) -> np.ndarray:
    """Stored integers -> their ``fmt.bits``-bit two's complement patterns as uint64."""
    fmt = _check_format(fmt)
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu":
        raise ValueError(f"codes: expected an integer array, got dtype {codes.dtype}")
    mask = np.uint64((1 << fmt.bits) - 1)
    return codes.astype(np.int64 if fmt.signed else np.uint64).view(np.uint64) & mask


def from_bit_pattern(pattern, fmt: FixedFormat) -> np.ndarray:
    """``fmt.bits``-bit patterns (unsigned integers) -> stored integers (sign-extended if signed)."""
    fmt = _check_format(fmt)
    pattern = np.asarray(pattern)
    if pattern.dtype.kind not in "iu":
        raise ValueError(f"pattern: expected an integer array, got dtype {pattern.dtype}")
    if pattern.size and (int(pattern.min()) < 0 or int(pattern.max()) >> fmt.bits):
        raise ValueError(f"pattern: values must lie in [0, 2**{fmt.bits}) for {fmt}")
    return _pattern_to_code(pattern.astype(np.uint64), fmt)

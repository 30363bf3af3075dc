"""Binary floating-point formats: IEEE binary32 / binary16, bfloat16, float8 e4m3fn and e5m2.

Every format here is ``1 sign bit | E exponent bits | M mantissa (fraction) bits`` with
bias ``2**(E-1) - 1``.  A biased exponent field ``e`` in ``[1, emax_field]`` is a normal
number ``(-1)**s * 1.f * 2**(e - bias)``; ``e = 0`` is zero or a subnormal
``(-1)**s * 0.f * 2**(1 - bias)``.  The all-ones exponent is where the formats differ:

* IEEE-like (fp32, fp16, bf16, e5m2): all-ones exponent = inf (f = 0) or NaN (f != 0).
* "fn" (finite, e4m3fn): no inf; all-ones exponent is an ordinary binade except
  ``S.1111.111``, the only NaN.  Hence max = 1.75 * 2**8 = 448.

Rounding into a format is IEEE round-to-nearest, ties to even, from the exact
float64 value.  The casts are numpy's (fp32, fp16) and ml_dtypes' (bf16, float8),
with one fix: ml_dtypes converts float64 to bfloat16 / float8 *through float32*,
which rounds twice (1 + 2**-8 + 2**-40 becomes bf16 1.0 instead of 1 + 2**-7).
:func:`cast` therefore narrows float64 to float32 with round-to-odd first; a
round-to-odd intermediate with at least two more significand bits than the target
makes the second, nearest-even rounding exact (Boldo & Melquiond, "When double
rounding is odd").  float32 inputs are exactly representable in the intermediate,
so for them the result is ml_dtypes' own cast bit for bit.

Overflow follows each format's own rule by default (fp32/fp16/bf16/e5m2 -> inf,
e4m3fn -> NaN, as ml_dtypes casts); ``overflow='saturate'`` clamps to ``±max`` first
(inf included, NaN stays NaN), which is what MX and most accelerators do.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

from hwsim.types import Overflow

__all__ = [
    "FloatFormat",
    "FLOAT_FORMATS",
    "float_format",
    "cast",
    "represent",
    "to_bits",
    "from_bits",
    "decompose",
    "FloatFields",
    "classify",
    "CLASSES",
]


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format with a sign bit, ``exp_bits`` and ``man_bits``.

    Parameters
    ----------
    name : str
        Short name used by hwsim (``fp32``, ``fp16``, ``bf16``, ``e4m3``, ``e5m2``).
    title : str
        Long name for reports.
    exp_bits, man_bits : int
        Exponent field width ``E`` and stored mantissa (fraction) width ``M``.
    has_inf : bool
        IEEE-style special values (True) or the "fn" encoding with no inf and
        a single NaN mantissa (False).
    dtype : numpy.dtype
        The numpy / ml_dtypes storage type.
    """

    name: str
    title: str
    exp_bits: int
    man_bits: int
    has_inf: bool
    dtype: np.dtype

    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def bias(self) -> int:
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def uint_dtype(self) -> np.dtype:
        return np.dtype({8: np.uint8, 16: np.uint16, 32: np.uint32}[self.bits])

    @property
    def max_exponent(self) -> int:
        """Unbiased exponent of the largest finite binade."""
        top_field = (1 << self.exp_bits) - (2 if self.has_inf else 1)
        return top_field - self.bias

    @property
    def min_exponent(self) -> int:
        """Unbiased exponent of the smallest normal binade, ``1 - bias``."""
        return 1 - self.bias

    @property
    def max(self) -> float:
        """Largest finite value."""
        # fn formats lose the top mantissa code of the top binade to NaN.
        top_mantissa = (1 << self.man_bits) - (1 if self.has_inf else 2)
        return float((1.0 + top_mantissa * 2.0**-self.man_bits) * 2.0**self.max_exponent)

    @property
    def min_normal(self) -> float:
        return float(2.0**self.min_exponent)

    @property
    def min_subnormal(self) -> float:
        return float(2.0 ** (self.min_exponent - self.man_bits))

    def __str__(self) -> str:
        return self.name


FLOAT_FORMATS: dict[str, FloatFormat] = {
    f.name: f
    for f in (
        FloatFormat("fp32", "IEEE 754 binary32", 8, 23, True, np.dtype(np.float32)),
        FloatFormat("fp16", "IEEE 754 binary16", 5, 10, True, np.dtype(np.float16)),
        FloatFormat("bf16", "bfloat16", 8, 7, True, np.dtype(ml_dtypes.bfloat16)),
        FloatFormat("e4m3", "float8 e4m3fn (OCP FP8 E4M3, no inf)", 4, 3, False, np.dtype(ml_dtypes.float8_e4m3fn)),
        FloatFormat("e5m2", "float8 e5m2 (OCP FP8 E5M2)", 5, 2, True, np.dtype(ml_dtypes.float8_e5m2)),
    )
}

_ALIASES = {
    "float32": "fp32", "binary32": "fp32", "f32": "fp32",
    "float16": "fp16", "binary16": "fp16", "half": "fp16", "f16": "fp16",
    "bfloat16": "bf16",
    "e4m3fn": "e4m3", "float8_e4m3fn": "e4m3", "fp8_e4m3": "e4m3",
    "float8_e5m2": "e5m2", "fp8_e5m2": "e5m2",
}


def float_format(name) -> FloatFormat:
    """Look a float format up by name (``fp32``, ``fp16``, ``bf16``, ``e4m3``, ``e5m2`` or an alias)."""
    if isinstance(name, FloatFormat):
        return name
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in FLOAT_FORMATS:
        raise ValueError(f"unknown float format {name!r}; expected one of {', '.join(FLOAT_FORMATS)}")
    return FLOAT_FORMATS[key]


def _to_float32_round_to_odd(x: np.ndarray) -> np.ndarray:
    """float64 -> float32 rounding to odd: truncate toward zero, then set the LSB if inexact."""
    with np.errstate(over="ignore"):
        f = x.astype(np.float32)
    with np.errstate(invalid="ignore"):
        inexact = np.isfinite(x) & (f.astype(np.float64) != x)
        too_far = inexact & (np.abs(f.astype(np.float64)) > np.abs(x))
    f = np.where(too_far, np.nextafter(f, np.float32(0.0)), f)
    bits = f.view(np.uint32)
    bits = np.where(inexact, bits | np.uint32(1), bits)
    return bits.astype(np.uint32).view(np.float32)


def _as_float64(x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub" and arr.dtype not in {f.dtype for f in FLOAT_FORMATS.values()}:
        raise ValueError(f"x: expected real numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        raise ValueError(f"x: float{arr.dtype.itemsize * 8} input is not supported (use float64)")
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8 and arr.size:
        if np.any(np.abs(arr.astype(np.float64)) > 2.0**53):
            raise ValueError("x: 64-bit integers beyond 2**53 cannot be converted exactly; pass float64")
    return arr.astype(np.float64)


def cast(x, fmt, overflow: Overflow | str | None = None) -> np.ndarray:
    """Round real values into ``fmt`` (nearest, ties to even); returns an array of ``fmt.dtype``.

    Parameters
    ----------
    x : array_like of float
        Real values (converted to float64 exactly).
    fmt : FloatFormat or str
        Target format.
    overflow : None or 'saturate'
        None: the format's own rule (inf, or NaN for e4m3fn).  ``saturate``:
        clamp to ``[-max, max]`` first (±inf too); NaN stays NaN.

    Examples
    --------
    >>> cast([7.625, 465.0], "e4m3").astype(float)
    array([7.5, nan])
    """
    fmt = float_format(fmt)
    x = _as_float64(x)
    if overflow is not None:
        try:
            overflow = Overflow(overflow)
        except ValueError:
            raise ValueError(f"overflow: expected None or 'saturate', got {overflow!r}") from None
        if overflow is not Overflow.SATURATE:
            raise ValueError("overflow: floating-point formats cannot wrap; use None (the format's rule) or 'saturate'")
        x = np.clip(x, -fmt.max, fmt.max)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf / NaN is the format's rule, not an accident
        if fmt.name == "fp32":
            return x.astype(np.float32)
        return _to_float32_round_to_odd(x).astype(fmt.dtype)


def represent(x, fmt, overflow: Overflow | str | None = None) -> np.ndarray:
    """The value ``fmt`` actually represents for each ``x``, as float64 (exact: every format here fits float64)."""
    return cast(x, fmt, overflow).astype(np.float64)


def to_bits(values: np.ndarray, fmt) -> np.ndarray:
    """Values stored in ``fmt.dtype`` -> their raw bit patterns (uint8/16/32)."""
    fmt = float_format(fmt)
    values = np.asarray(values)
    if values.dtype != fmt.dtype:
        raise ValueError(f"values: expected dtype {fmt.dtype} for {fmt.name} (use cast() first), got {values.dtype}")
    return values.view(fmt.uint_dtype)


def from_bits(bits, fmt) -> np.ndarray:
    """Raw bit patterns -> values of ``fmt.dtype``."""
    fmt = float_format(fmt)
    bits = np.asarray(bits)
    if bits.dtype.kind not in "iu":
        raise ValueError(f"bits: expected unsigned integer patterns, got dtype {bits.dtype}")
    if bits.size and (int(bits.min()) < 0 or int(bits.max()) >> fmt.bits):
        raise ValueError(f"bits: patterns must lie in [0, 2**{fmt.bits}) for {fmt.name}")
    return bits.astype(fmt.uint_dtype).view(fmt.dtype)


@dataclass(frozen=True)
class FloatFields:
    """The fields of floating-point bit patterns (arrays of equal shape)."""

    sign: np.ndarray       #: 0 or 1
    exponent: np.ndarray   #: biased exponent field, 0 .. 2**E - 1
    mantissa: np.ndarray   #: stored fraction field, 0 .. 2**M - 1


def decompose(bits, fmt) -> FloatFields:
    """Split raw bit patterns of ``fmt`` into sign, biased exponent and mantissa fields."""
    fmt = float_format(fmt)
    b = np.asarray(bits)
    if b.dtype.kind not in "iu":
        raise ValueError(f"bits: expected unsigned integer patterns, got dtype {b.dtype}")
    b = b.astype(np.int64)
    return FloatFields(
        sign=(b >> (fmt.bits - 1)) & 1,
        exponent=(b >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1),
        mantissa=b & ((1 << fmt.man_bits) - 1),
    )


#: Names returned by :func:`classify`.
CLASSES = ("zero", "subnormal", "normal", "inf", "nan")


def classify(bits, fmt) -> np.ndarray:
    """Class of each bit pattern: 'zero', 'subnormal', 'normal', 'inf' or 'nan' (an array of str)."""
    fmt = float_format(fmt)
    f = decompose(bits, fmt)
    top = (1 << fmt.exp_bits) - 1
    if fmt.has_inf:
        is_nan = (f.exponent == top) & (f.mantissa != 0)
        is_inf = (f.exponent == top) & (f.mantissa == 0)
    else:
        is_nan = (f.exponent == top) & (f.mantissa == (1 << fmt.man_bits) - 1)
        is_inf = np.zeros_like(is_nan)
    out = np.full(f.sign.shape, "normal", dtype="<U9")
    out[(f.exponent == 0) & (f.mantissa != 0)] = "subnormal"
    out[(f.exponent == 0) & (f.mantissa == 0)] = "zero"
    out[is_inf] = "inf"
    out[is_nan] = "nan"
    return out

"""The parameters of one requantisation stage (the C ``hw_requant_spec_t``).

Shared by the C wrapper, the numpy mirror and the oracle, so that all three
read the same validated values.  Validation here mirrors
``hw_requant_spec_check`` in ``c_kernels/hw_requantize.c``; any failure raises
``ValueError`` naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from hwsim.types import Overflow, RequantScheme, Rounding

__all__ = ["RequantParams", "FIXED_POINT_SCHEMES", "SHIFT_RANGE"]

#: Schemes that take a Q31 multiplier M >= 0 and a shift.
FIXED_POINT_SCHEMES = frozenset(
    {
        RequantScheme.DOUBLE_ROUNDING,
        RequantScheme.SINGLE_ROUNDING,
        RequantScheme.SRDHM_HALF_UP,
        RequantScheme.NEON_SINGLE,
        RequantScheme.INT64_REDUCED,
    }
)

#: Inclusive shift range per scheme (positive = left shift).
SHIFT_RANGE = {
    RequantScheme.DOUBLE_ROUNDING: (-31, 31),
    RequantScheme.SRDHM_HALF_UP: (-31, 31),
    RequantScheme.SINGLE_ROUNDING: (-31, 30),
    RequantScheme.NEON_SINGLE: (-31, 30),
    RequantScheme.INT64_REDUCED: (-31, 14),
    RequantScheme.SHIFT_ONLY: (-63, 63),
}

#: The rounding a scheme uses when the caller gives none.
_DEFAULT_ROUNDING = {
    RequantScheme.FLOAT32: Rounding.HALF_EVEN,       # CVTPS2DQ / lrintf (MLAS, XNNPACK)
    RequantScheme.FLOAT64_ROUND: Rounding.HALF_AWAY,  # std::round (LiteRT reference FC)
}


def _int_tuple(values, name: str) -> tuple[int, ...]:
    arr = np.asarray(values)
    if arr.ndim > 1 or arr.size == 0:
        raise ValueError(f"RequantParams.{name}: expected an int or a 1-D sequence of ints, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"RequantParams.{name}: expected integers, got dtype {arr.dtype}")
    return tuple(int(v) for v in arr.reshape(-1))


def _float_tuple(values, name: str) -> tuple[float, ...]:
    arr = np.asarray(values)
    if arr.ndim > 1 or arr.size == 0:
        raise ValueError(f"RequantParams.{name}: expected a float or a 1-D sequence, got shape {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"RequantParams.{name}: expected real numbers, got dtype {arr.dtype}")
    return tuple(float(v) for v in arr.reshape(-1))


@dataclass(frozen=True)
class RequantParams:
    """One accumulator -> output stage: scheme, per-channel parameters, output format.

    Parameters
    ----------
    scheme : RequantScheme
        The arithmetic (see ``c_kernels/hw_requantize.h`` for each formula).
    multiplier, shift : int or sequence of int
        Q31 multiplier ``M >= 0`` and signed shift (positive = left) per channel,
        meaning ``M * 2**(shift - 31)``; SHIFT_ONLY takes ``shift`` only.
    scale : float or sequence of float
        FLOAT32 (rounded to float32, nearest even) or FLOAT64_ROUND scale per channel.
    zero_point : int
        Output zero point, added after rounding.
    out_bits, out_signed : int, bool
        Output format; ``out_min``/``out_max`` default to its full range.
    out_min, out_max : int
        Clamp range (the format intersected with a fused activation).
    out_overflow : Overflow
        ``saturate``: clamp; ``wrap``: wrap to the format, then clamp.
    rounding : Rounding or None
        Final rounding of FLOAT32 (default half_even), FLOAT64_ROUND (default
        half_away) and SHIFT_ONLY (required); the fixed-point schemes have their
        own fixed rounding and ignore it.
    seed : int
        Seed of stochastic rounding (0 <= seed < 2**64).

    .. note:: The number of channels is the length of the per-channel sequence;
       1 means per tensor.
    """

    scheme: RequantScheme
    multiplier: tuple[int, ...] | None = None
    shift: tuple[int, ...] | None = None
    scale: tuple[float, ...] | None = None
    zero_point: int = 0
    out_bits: int = 8
    out_signed: bool = True
    out_min: int | None = None
    out_max: int | None = None
    out_overflow: Overflow = Overflow.SATURATE
    rounding: Rounding | None = None
    seed: int = 0
    _n: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # noqa: C901 - one check per field, in order
        def put(name, value):
            object.__setattr__(self, name, value)

        try:
            put("scheme", RequantScheme(self.scheme))
        except ValueError:
            raise ValueError(f"RequantParams.scheme: unknown scheme {self.scheme!r}") from None
        scheme = self.scheme
        try:
            put("out_overflow", Overflow(self.out_overflow))
        except ValueError:
            raise ValueError(f"RequantParams.out_overflow: expected 'wrap' or 'saturate', got {self.out_overflow!r}") from None
        if self.rounding is None:
            if scheme is RequantScheme.SHIFT_ONLY:
                raise ValueError("RequantParams.rounding: SHIFT_ONLY needs an explicit rounding mode")
            put("rounding", _DEFAULT_ROUNDING.get(scheme, Rounding.HALF_AWAY))
        try:
            put("rounding", Rounding(self.rounding))
        except ValueError:
            raise ValueError(f"RequantParams.rounding: unknown rounding {self.rounding!r}") from None

        n = None
        if scheme in FIXED_POINT_SCHEMES:
            if self.multiplier is None:
                raise ValueError(f"RequantParams.multiplier: required by scheme {scheme.value}")
            put("multiplier", _int_tuple(self.multiplier, "multiplier"))
            for m in self.multiplier:
                if not 0 <= m <= (1 << 31) - 1:
                    raise ValueError(f"RequantParams.multiplier: expected 0 <= M < 2**31, got {m}")
            n = len(self.multiplier)
        if scheme in SHIFT_RANGE:
            if self.shift is None:
                raise ValueError(f"RequantParams.shift: required by scheme {scheme.value}")
            put("shift", _int_tuple(self.shift, "shift"))
            lo, hi = SHIFT_RANGE[scheme]
            for s in self.shift:
                if not lo <= s <= hi:
                    raise ValueError(f"RequantParams.shift: {scheme.value} needs shift in [{lo}, {hi}], got {s}")
            if n is not None and len(self.shift) != n:
                raise ValueError(
                    f"RequantParams.shift: {len(self.shift)} channels, but multiplier has {n}"
                )
            n = len(self.shift)
        if scheme in (RequantScheme.FLOAT32, RequantScheme.FLOAT64_ROUND):
            if self.scale is None:
                raise ValueError(f"RequantParams.scale: required by scheme {scheme.value}")
            scale = _float_tuple(self.scale, "scale")
            if scheme is RequantScheme.FLOAT32:
                with np.errstate(over="ignore"):         # an overflow is reported below as inf
                    scale = tuple(float(np.float32(s)) for s in scale)
            for s in scale:
                if not math.isfinite(s):
                    raise ValueError(f"RequantParams.scale: expected finite scales, got {s}")
            put("scale", scale)
            n = len(scale)
        put("_n", n)

        if not isinstance(self.out_signed, (bool, np.bool_)):
            raise ValueError(f"RequantParams.out_signed: expected a bool, got {self.out_signed!r}")
        put("out_signed", bool(self.out_signed))
        lo_bits, hi_bits = (2, 32) if self.out_signed else (1, 31)
        if not isinstance(self.out_bits, (int, np.integer)) or not lo_bits <= self.out_bits <= hi_bits:
            raise ValueError(
                f"RequantParams.out_bits: expected an int in [{lo_bits}, {hi_bits}] for a "
                f"{'signed' if self.out_signed else 'unsigned'} output, got {self.out_bits!r}"
            )
        put("out_bits", int(self.out_bits))
        fmt_min = -(1 << (self.out_bits - 1)) if self.out_signed else 0
        fmt_max = (1 << (self.out_bits - 1)) - 1 if self.out_signed else (1 << self.out_bits) - 1
        put("out_min", fmt_min if self.out_min is None else int(self.out_min))
        put("out_max", fmt_max if self.out_max is None else int(self.out_max))
        if not fmt_min <= self.out_min <= fmt_max:
            raise ValueError(f"RequantParams.out_min: expected a value in [{fmt_min}, {fmt_max}], got {self.out_min}")
        if not fmt_min <= self.out_max <= fmt_max:
            raise ValueError(f"RequantParams.out_max: expected a value in [{fmt_min}, {fmt_max}], got {self.out_max}")
        if self.out_min > self.out_max:
            raise ValueError(f"RequantParams.out_min: {self.out_min} is greater than out_max {self.out_max}")
        if not -(1 << 31) <= int(self.zero_point) < (1 << 31):
            raise ValueError(f"RequantParams.zero_point: expected an int32, got {self.zero_point}")
        put("zero_point", int(self.zero_point))
        if not 0 <= int(self.seed) < (1 << 64):
            raise ValueError(f"RequantParams.seed: expected 0 <= seed < 2**64, got {self.seed}")
        put("seed", int(self.seed))

    @property
    def n_channels(self) -> int:
        """Number of channels (1 = per tensor)."""
        return self._n

    @cached_property
    def multiplier_array(self) -> np.ndarray:
        """Multipliers as a read-only int32 array (zeros when the scheme has none)."""
        return _frozen(np.array(self.multiplier or (0,) * self._n, dtype=np.int32))

    @cached_property
    def shift_array(self) -> np.ndarray:
        """Shifts as a read-only int32 array (zeros when the scheme has none)."""
        return _frozen(np.array(self.shift or (0,) * self._n, dtype=np.int32))

    @cached_property
    def scale_f32_array(self) -> np.ndarray:
        """Scales as a read-only float32 array (zeros unless FLOAT32)."""
        use = self.scheme is RequantScheme.FLOAT32
        return _frozen(np.array(self.scale if use else (0.0,) * self._n, dtype=np.float32))

    @cached_property
    def scale_f64_array(self) -> np.ndarray:
        """Scales as a read-only float64 array (zeros unless FLOAT64_ROUND)."""
        use = self.scheme is RequantScheme.FLOAT64_ROUND
        return _frozen(np.array(self.scale if use else (0.0,) * self._n, dtype=np.float64))


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr

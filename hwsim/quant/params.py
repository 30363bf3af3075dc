"""Integer formats and affine parameters: the vocabulary every quantizer and observer shares.

Convention (one for the whole package): ``q = clamp(round(r / scale) + zero_point, qmin, qmax)`` and
``r~ = scale * (q - zero_point)``, as ONNX and TFLite store it.  The survey writes
Q(r) = Int(r/S) - Z and r~ = S(Q(r) + Z); that is the same mapping with Z = -zero_point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["QuantFormat", "AffineParams", "params_from_range"]


@dataclass(frozen=True)
class QuantFormat:
    """An integer code format: ``bits`` (2..16), signed or not, symmetric or not, full or restricted range.

    Restricted (``narrow``) range drops the most negative code of a signed format
    (int8: [-127, 127]), so that +-max|r| map to +-qmax with zero point 0.
    ``power_of_two`` asks for scales rounded up to a power of two (shift-only hardware).
    """

    bits: int = 8
    signed: bool = True
    symmetric: bool = False
    narrow: bool = False
    power_of_two: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, (int, np.integer)) or not 2 <= self.bits <= 16:
            raise ValueError(f"bits: expected an integer in 2..16, got {self.bits!r}")
        if self.narrow and not self.signed:
            raise ValueError("narrow (restricted) range applies to signed formats only")

    @property
    def qmin(self) -> int:
        if not self.signed:
            return 0
        return -(1 << (self.bits - 1)) + (1 if self.narrow else 0)

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def dtype(self) -> np.dtype:
        """The narrowest numpy integer dtype that stores every code."""
        if self.bits <= 8:
            return np.dtype(np.int8 if self.signed else np.uint8)
        return np.dtype(np.int16 if self.signed else np.uint16)


@dataclass(frozen=True)
class AffineParams:
    """Scale(s) and zero point(s) of one tensor, frozen.

    ``scale`` float32 and ``zero_point`` int64 have the same shape: [] per tensor,
    [C] per channel along ``axis``, [C, G] per group (G groups of ``group_size``
    consecutive elements along the reduction axis of each output channel).
    """

    scale: np.ndarray
    zero_point: np.ndarray
    fmt: QuantFormat
    axis: int | None = None
    group_size: int | None = None

    def __post_init__(self) -> None:
        scale = np.array(self.scale, dtype=np.float32)
        zp = np.array(np.broadcast_to(np.asarray(self.zero_point, dtype=np.int64), scale.shape))
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise ValueError("AffineParams: scales must be positive and finite")
        if np.any(zp < self.fmt.qmin) or np.any(zp > self.fmt.qmax):
            raise ValueError(f"AffineParams: zero points must lie in [{self.fmt.qmin}, {self.fmt.qmax}]")
        scale.flags.writeable = False
        zp.flags.writeable = False
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zp)


def _pow2_up(scale: np.ndarray) -> np.ndarray:
    return np.array([2.0 ** math.ceil(math.log2(float(s))) for s in scale.reshape(-1)]).reshape(scale.shape)


def params_from_range(lo, hi, fmt: QuantFormat, axis: int | None = None,
                      group_size: int | None = None) -> AffineParams:
    """Scale and zero point that map the real range [lo, hi] onto ``fmt`` (elementwise for arrays).

    The range is first widened to contain 0 (so that 0 is exact); a symmetric
    format uses [-m, m] with m = max(|lo|, |hi|).  Then, as onnxruntime's
    ``compute_scale_zp`` (SEMANTICS.md 4.1): ``scale = (hi - lo) / (qmax - qmin)`` and
    ``zero_point = clamp(round_half_even(qmin - lo / scale), qmin, qmax)``.  For int8
    this gives the survey's full range S = 2 max|r| / 255 and restricted range
    S = max|r| / 127.  A symmetric format's zero point is the midpoint code
    round_half_even((qmin + qmax) / 2): 0 for signed formats, 2^(bits-1) for unsigned ones.  A degenerate range (lo == hi == 0) gets scale 1.  Scales are computed
    in float64 and stored as float32 (rounded up to a power of two if the format asks).
    """
    lo = np.minimum(np.asarray(lo, dtype=np.float64), 0.0)
    hi = np.maximum(np.asarray(hi, dtype=np.float64), 0.0)
    if lo.shape != hi.shape:
        raise ValueError(f"params_from_range: lo shape {lo.shape} differs from hi shape {hi.shape}")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError("params_from_range: the range must be finite (NaN or Inf in the data?)")
    if fmt.symmetric:
        m = np.maximum(-lo, hi)
        lo, hi = -m, m
    width = hi - lo
    scale = np.where(width > 0, width / (fmt.qmax - fmt.qmin), 1.0)
    if fmt.power_of_two:
        scale = _pow2_up(scale)
    scale = scale.astype(np.float32)
    if fmt.symmetric:
        # the midpoint code, as onnxruntime: round_half_even((qmin + qmax) / 2) (0 for int8, 128 for uint8)
        zp = np.full(scale.shape, int(np.rint((fmt.qmin + fmt.qmax) / 2.0)), dtype=np.int64)
    else:
        zp = np.clip(np.rint(fmt.qmin - lo / scale.astype(np.float64)), fmt.qmin, fmt.qmax).astype(np.int64)
    return AffineParams(scale, zp, fmt, axis, group_size)

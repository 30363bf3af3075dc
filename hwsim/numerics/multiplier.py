"""Real scale -> integer multiplier derivations, exactly as the engines do them.

* :func:`quantize_multiplier` -- TFLite ``QuantizeMultiplier`` (SEMANTICS.md 1.3):
  double -> (Q31 multiplier M, shift) with d ~= M * 2**(shift - 31).
* :func:`tflite_real_multiplier` -- the double that TFLite feeds it for a conv /
  FC channel: (double)s_in * (double)s_w / (double)s_out (10.2).
* :func:`ort_requant_scale` -- onnxruntime's float32 requantisation scale
  fl32(fl32(x_scale * w_scale) / y_scale) (10.1).
* :func:`int64_reduced_multiplier` -- the 15-bit multiplier of TFLite's int64
  ``MultiplyByQuantizedMultiplier`` overload (1.7).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["quantize_multiplier", "tflite_real_multiplier", "ort_requant_scale", "int64_reduced_multiplier"]


def _round_half_away(x: float) -> int:
    """std::round of a double that holds an exact value (here q * 2^31, exact)."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def quantize_multiplier(d: float, single_rounding: bool = False) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: a double -> (M, shift), d ~= M * 2**(shift - 31).

    Parameters
    ----------
    d : float
        The real multiplier (finite).  Negative values give a negative M, as in
        TFLite; hwsim's requantisation schemes accept only M >= 0.
    single_rounding : bool
        Apply the ``TFLITE_SINGLE_ROUNDING`` cap: shift > 30 -> (2**31 - 1, 30).

    Returns
    -------
    (int, int)
        ``M`` in [2**30, 2**31) for |d| normal, (0, 0) for d == 0 and for
        multipliers so small that shift < -31 (TFLite flushes them to zero).

    .. math:: (q, e) = \\mathrm{frexp}(d),\\ M = \\mathrm{round\\_half\\_away}(q\\,2^{31}),\\ shift = e

    .. note:: If rounding gives M == 2**31, M becomes 2**30 and shift grows by one.

    >>> quantize_multiplier(0.5), quantize_multiplier(1.5)
    ((1073741824, 0), (1610612736, 1))
    """
    if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, float, np.integer, np.floating)):
        raise ValueError(f"d: expected a real number, got {d!r}")
    d = float(d)
    if not math.isfinite(d):
        raise ValueError(f"d: expected a finite multiplier, got {d}")
    if d == 0.0:
        return 0, 0
    q, shift = math.frexp(d)              # d = q * 2^shift, 0.5 <= |q| < 1
    m = _round_half_away(q * (1 << 31))   # q * 2^31 is exact in double
    if m == 1 << 31:
        m //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if single_rounding and shift > 30:
        return (1 << 31) - 1, 30
    return m, shift


def tflite_real_multiplier(input_scale, weight_scale, output_scale) -> np.ndarray:
    """(double)s_in * (double)s_w[c] / (double)s_out, the scales being float32 as stored in a .tflite.

    Each scale is first rounded to float32 (the flatbuffer's type), then the
    product and the quotient are taken in double, in that order.
    """
    s_in = np.float64(np.float32(input_scale))
    s_w = np.asarray(weight_scale, dtype=np.float32).astype(np.float64)
    s_out = np.float64(np.float32(output_scale))
    return (s_in * s_w) / s_out


def ort_requant_scale(x_scale, w_scale, y_scale) -> np.ndarray:
    """onnxruntime QLinearConv / QLinearMatMul scale: fl32(fl32(x_scale * w_scale[c]) / y_scale).

    Every operation is a float32 operation (numpy float32 arithmetic rounds
    each result to nearest even), in this order; other orders differ (10.1).
    """
    xs = np.float32(x_scale)
    ws = np.asarray(w_scale, dtype=np.float32)
    ys = np.float32(y_scale)
    return np.asarray((xs * ws) / ys, dtype=np.float32)


def int64_reduced_multiplier(m: int) -> int:
    """The 15-bit multiplier of TFLite's int64 overload: (M + 2^15) >> 16, or 0x7FFF when M >= 0x7FFF0000."""
    m = int(m)
    if not 0 <= m < (1 << 31):
        raise ValueError(f"m: expected 0 <= M < 2**31, got {m}")
    return (m + (1 << 15)) >> 16 if m < 0x7FFF0000 else 0x7FFF

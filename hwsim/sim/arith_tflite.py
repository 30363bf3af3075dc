"""TFLite / LiteRT / TFLM special integer arithmetic, bit-exact, on numpy arrays.

One function per (scheme, op), named ``<scheme>_<op>`` with the scheme names of
the target schema's ``elementwise`` section.  Inputs are integer numpy arrays
with their :class:`hwsim.graph.ir.QuantParams` (per tensor); outputs are
integer arrays of ``out_dtype`` (int8 unless said).  Every formula is stated
in its docstring with the engine source it reproduces; all integer work is
exact int64 numpy (int32 C overflow is modelled as a wrap), float work is
numpy float32 / float64 exactly where the C++ uses float / double.

LiteRT's default resolver (``BUILTIN``, XNNPACK delegate; hwsim target ``xnnpack``) hands
ADD, SUB, MUL, MEAN and QUANTIZE to XNNPACK, which computes them its own way: ``xnnpack_*``
functions.  On the models tested here its SOFTMAX, LOGISTIC, TANH, HARD_SWISH and
AVERAGE_POOL_2D results equal the ``litert_opt`` functions.

Where engines differ, a function takes ``engine``:

==============  ==========================================================
``litert_ref``  ai-edge-litert, ``OpResolverType.BUILTIN_REF`` (reference kernels)
``litert_opt``  ai-edge-litert, builtin optimised kernels, x86-64
                (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``; no XNNPACK)
``tflm``        TensorFlow Lite Micro (reference kernels, its own Prepare code)
==============  ==========================================================

Which engine computes what (measured with tests/sim/test_arith_tflite_engines.py):

=============  ====================================  ===============================
op             scheme function                       engines it equals
=============  ====================================  ===============================
add            tflite_fixed_point_add                all three
sub            tflite_fixed_point_sub                all three
mul            tflite_fixed_point_mul(engine=)       all three (multiplier: f32 LiteRT, f64 TFLM)
mean           tflite_fixed_point_mean(engine=)      all three (``litert_opt``: 4-D keepdims H,W path;
                                                     int16 16x8: one formula on every engine)
avg_pool2d     tflite_rounded_avg_pool2d             all three
softmax        tflite_reference_softmax              litert_ref, tflm
               tflite_lut_f32_softmax                litert_opt (x86-64)
               tflite_lut_u16_softmax                litert_opt on aarch64 (SEMANTICS 10.3; not run here)
logistic/tanh  tflite_lut_f32_logistic / _tanh       litert_ref, litert_opt
               tflite_fixed_point_logistic / _tanh   tflm (gemmlowp integer)
hard_swish     tflite_reference_hard_swish           all three
quantize       tflite_quantize(engine=)              all three (``litert_opt``: NEON-style blocks of 8)
requantize     tflite_requantize                     reference Requantize (QUANTIZE int -> int)
add / sub      xnnpack_fixed_point_add / _sub        LiteRT default (XNNPACK)
mul / mean     xnnpack_f32_mul / xnnpack_f32_mean    LiteRT default (XNNPACK)
quantize       xnnpack_quantize                      LiteRT default (XNNPACK)
=============  ====================================  ===============================
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np

from hwsim.numerics.multiplier import quantize_multiplier
from hwsim.sim import gemmlowp_fixed as gl

__all__ = [
    "ENGINES",
    "SCHEMES",
    "activation_range",
    "tflite_fixed_point_add",
    "tflite_fixed_point_sub",
    "tflite_fixed_point_mul",
    "tflite_fixed_point_mean",
    "tflite_rounded_avg_pool2d",
    "tflite_reference_softmax",
    "tflite_lut_f32_softmax",
    "tflite_lut_u16_softmax",
    "tflite_lut_f32_logistic",
    "tflite_lut_f32_tanh",
    "tflite_fixed_point_logistic",
    "tflite_fixed_point_tanh",
    "tflite_reference_hard_swish",
    "tflite_quantize",
    "tflite_dequantize",
    "tflite_requantize",
    "xnnpack_fixed_point_add",
    "xnnpack_fixed_point_sub",
    "xnnpack_f32_mul",
    "xnnpack_f32_mean",
    "xnnpack_quantize",
]

ENGINES = ("litert_ref", "litert_opt", "tflm")
_INT_TYPES = {np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16)}
_f32 = np.float32


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------

def _engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    return engine


def _out_dtype(out_dtype, allowed=(np.dtype(np.int8),)) -> np.dtype:
    """The output dtype; the ops are verified against the engines for int8 (MEAN: int16 too), QUANTIZE for all three."""
    dt = np.dtype(out_dtype)
    if dt not in allowed:
        raise ValueError(f"out_dtype: expected one of {', '.join(str(a) for a in allowed)}, got {dt}")
    return dt


def _qrange(dt: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dt)
    return int(info.min), int(info.max)


def _qp(qp, name: str) -> tuple[np.float32, int]:
    """(scale as float32, zero point) of a per-tensor QuantParams-like object."""
    scale = getattr(qp, "scale", None)
    zp = getattr(qp, "zero_point", None)
    if scale is None or zp is None:
        raise ValueError(f"{name}: expected a QuantParams (scale, zero_point), got {type(qp).__name__}")
    scale, zp = np.asarray(scale), np.asarray(zp)
    if scale.size != 1 or zp.size != 1:
        raise ValueError(f"{name}: expected per-tensor quantisation, got {scale.size} scales")
    s = _f32(scale.reshape(()))
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"{name}: scale must be positive and finite, got {s}")
    return s, int(zp.reshape(()))


def _int_array(x, name: str, dt: np.dtype | None = None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype not in _INT_TYPES:
        raise ValueError(f"{name}: expected an int8 / uint8 / int16 array, got dtype {arr.dtype}")
    if dt is not None and arr.dtype != dt:
        raise ValueError(f"{name}: expected dtype {dt}, got {arr.dtype}")
    return arr.astype(np.int64)


def _check_zero_point(zp: int, dt: np.dtype, name: str) -> None:
    lo, hi = _qrange(dt)
    if not lo <= zp <= hi:
        raise ValueError(f"{name}: zero point {zp} outside the {dt} range [{lo}, {hi}]")


def _round_away_f32(v: np.ndarray) -> np.ndarray:
    # roundf(v) == trunc(v) + (|frac| >= 0.5 ? sign : 0); computing frac = v - trunc(v) is exact in float32
    t = np.trunc(v)
    frac = np.abs(v - t)
    return (t + np.where(frac >= _f32(0.5), np.sign(v), _f32(0))).astype(np.float32)


def activation_range(activation, y_qp, out_dtype=np.int8) -> tuple[int, int]:
    """TFLite CalculateActivationRangeQuantized for a fused activation given as a real clamp.

    Each finite bound f becomes ``zp + (int)roundf(f / scale)`` (float32 division,
    half away from zero) and is intersected with the dtype range.  ``activation``
    is None or (lo, hi) with +-inf for an open side (the IR convention).
    """
    dt = _out_dtype(out_dtype, tuple(_INT_TYPES))
    scale, zp = _qp(y_qp, "y_qp")
    qmin, qmax = _qrange(dt)
    if activation is None:
        return qmin, qmax
    try:
        lo, hi = (float(v) for v in activation)
    except (TypeError, ValueError):
        raise ValueError(f"activation: expected None or (lo, hi), got {activation!r}") from None
    if math.isfinite(lo):
        qmin = max(qmin, zp + int(_round_away_f32(np.asarray(_f32(lo) / scale, dtype=np.float32))))
    if math.isfinite(hi):
        qmax = min(qmax, zp + int(_round_away_f32(np.asarray(_f32(hi) / scale, dtype=np.float32))))
    return qmin, qmax


# --------------------------------------------------------------------------------------------
# ADD / SUB / MUL
# --------------------------------------------------------------------------------------------

def _smaller_than_one(d: float, what: str) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: TFLite aborts unless 0 < d < 1."""
    if not 0.0 < d < 1.0:
        raise ValueError(f"{what}: real multiplier {d!r} is not in (0, 1); TFLite rejects this model")
    return quantize_multiplier(d)


def _add_sub_params(s1: np.float32, s2: np.float32, so: np.float32, left_shift: int):
    """The three (multiplier, shift) pairs of TFLite's 8-bit ADD / SUB Prepare (double quotients)."""
    twice_max = _f32(2) * max(s1, s2)                 # float, exact
    r1 = float(s1) / float(twice_max)
    r2 = float(s2) / float(twice_max)
    ro = float(twice_max) / float(_f32(1 << left_shift) * so)
    return (_smaller_than_one(r1, "input1 multiplier"), _smaller_than_one(r2, "input2 multiplier"),
            _smaller_than_one(ro, "output multiplier"))


def _binary_operands(a, a_qp, b, b_qp, y_qp, out_dtype):
    """Checked operands of a two-input int8 op: (out dtype, a, b broadcast as int64, (s, z) of a, b and y)."""
    dt = _out_dtype(out_dtype)
    params = [_qp(qp, name) for qp, name in ((a_qp, "a_qp"), (b_qp, "b_qp"), (y_qp, "y_qp"))]
    a64, b64 = _int_array(a, "a", np.dtype(np.int8)), _int_array(b, "b", np.dtype(np.int8))
    for (_, zp), name in zip(params, ("a_qp", "b_qp", "y_qp")):
        _check_zero_point(zp, dt, name)
    try:
        a64, b64 = np.broadcast_arrays(a64, b64)
    except ValueError:
        raise ValueError(f"a, b: shapes {np.shape(a)} and {np.shape(b)} do not broadcast") from None
    return (dt, a64, b64, *params)


def _add_sub(a, a_qp, b, b_qp, y_qp, out_dtype, activation, sign: int) -> np.ndarray:
    dt, a64, b64, (s1, z1), (s2, z2), (so, zo) = _binary_operands(a, a_qp, b, b_qp, y_qp, out_dtype)
    left_shift = 20                                     # TFLite's 8-bit path
    (m1, e1), (m2, e2), (mo, eo) = _add_sub_params(s1, s2, so, left_shift)
    x1 = gl.mul_by_quantized_multiplier(gl.wrap32((a64 - z1) << left_shift), m1, e1)
    x2 = gl.mul_by_quantized_multiplier(gl.wrap32((b64 - z2) << left_shift), m2, e2)
    raw = gl.wrap32(x1 + sign * x2)
    out = gl.mul_by_quantized_multiplier(raw, mo, eo) + zo
    lo, hi = activation_range(activation, y_qp, dt)
    return np.clip(out, lo, hi).astype(dt)


def tflite_fixed_point_add(a, a_qp, b, b_qp, y_qp, out_dtype=np.int8, activation=None) -> np.ndarray:
    """TFLite / TFLM quantized ADD (reference ``AddFunc``; LiteRT's optimised int8 ADD is the same on x86).

    int8 (TFLite's 8-bit path, left_shift ls = 20), with ``MBQM`` = double-rounding
    MultiplyByQuantizedMultiplier::

        twice_max = 2 * max(s_a, s_b)
        (M_a, e_a) = QuantizeMultiplier(s_a / twice_max)                 # double
        (M_b, e_b) = QuantizeMultiplier(s_b / twice_max)
        (M_y, e_y) = QuantizeMultiplier(twice_max / (2**left_shift * s_y))
        y = clamp(MBQM(MBQM((a - z_a) << ls, M_a, e_a) + MBQM((b - z_b) << ls, M_b, e_b), M_y, e_y) + z_y)

    ``a`` and ``b`` broadcast with numpy rules (TFLite's 6-D broadcast gives
    the same elements); ``activation`` is the fused clamp (None or real (lo, hi)).

    >>> from hwsim.graph.ir import QuantParams
    >>> q = QuantParams(np.float32(0.5), np.int64(0))
    >>> tflite_fixed_point_add(np.array([3], np.int8), q, np.array([-6], np.int8), q, q)
    array([-3], dtype=int8)
    """
    return _add_sub(a, a_qp, b, b_qp, y_qp, out_dtype, activation, +1)


def tflite_fixed_point_sub(a, a_qp, b, b_qp, y_qp, out_dtype=np.int8, activation=None) -> np.ndarray:
    """TFLite / TFLM quantized SUB (reference ``SubElementwise``): ADD's formula with ``x_a - x_b``.

    The multipliers are ADD's quotients, in double.  (TFLM's sub_common.cc
    source reads as float32 quotients, but the tflite-micro wheel measured
    here computes the double ones: a float32 variant disagreed with it on
    2 of 65 536 pairs of tests/data/tflite_ops/sub_split.tflite.)  An output
    multiplier >= 1 (LiteRT accepts it, then shifts by a negative amount,
    undefined in C) is rejected with ValueError.
    """
    return _add_sub(a, a_qp, b, b_qp, y_qp, out_dtype, activation, -1)


def tflite_fixed_point_mul(a, a_qp, b, b_qp, y_qp, out_dtype=np.int8, activation=None,
                           engine: str = "litert_ref") -> np.ndarray:
    """TFLite / TFLM quantized MUL (reference ``MulElementwise``)::

        (M, e) = QuantizeMultiplier(s_a * s_b / s_y)
        y = clamp(MBQM((a - z_a) * (b - z_b), M, e) + z_y)

    The real multiplier is float32 arithmetic in LiteRT (mul.cc multiplies the
    float scales) and double in TFLM (mul_common.cc), hence ``engine``.
    """
    dt, a64, b64, (s1, z1), (s2, z2), (so, zo) = _binary_operands(a, a_qp, b, b_qp, y_qp, out_dtype)
    if _engine(engine) == "tflm":
        real = float(s1) * float(s2) / float(so)
    else:
        real = float(s1 * s2 / so)
    m, e = quantize_multiplier(real)
    out = gl.mul_by_quantized_multiplier(gl.wrap32((a64 - z1) * (b64 - z2)), m, e) + zo
    lo, hi = activation_range(activation, y_qp, dt)
    return np.clip(out, lo, hi).astype(dt)


# --------------------------------------------------------------------------------------------
# MEAN and AVERAGE_POOL_2D
# --------------------------------------------------------------------------------------------

def _axes(axes, ndim: int) -> tuple[int, ...]:
    try:
        resolved = sorted({int(a) + ndim if int(a) < 0 else int(a) for a in axes})
    except TypeError:
        raise ValueError(f"axes: expected a sequence of ints, got {axes!r}") from None
    if any(not 0 <= a < ndim for a in resolved):
        raise ValueError(f"axes: {tuple(axes)} out of range for a rank-{ndim} input")
    return tuple(resolved)


def _mbqm_neon_4rows(x, multiplier: int, shift: int) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier4Rows`` (double-rounding build): VSHL, VQRDMULH, VRSHL.

    Like the scalar MBQM except that the final right shift rounds half up
    (``(u + 2**(r-1)) >> r``; VRSHL has no gemmlowp fixup).
    """
    u = gl.srdhm(gl.wrap32(np.asarray(x, dtype=np.int64) << max(shift, 0)), multiplier)
    right = max(-shift, 0)
    return (u + (1 << (right - 1))) >> right if right else u


def _mean_operands(x, x_qp, y_qp, out_dtype):
    """MEAN's checked operands: (x as int64, out dtype, (s_x, z_x), (s_y, z_y)).

    int8 in and out, or (16x8) int16 in and out with zero points 0.
    """
    arr = np.asarray(x)
    sixteen = arr.dtype == np.int16
    want = np.dtype(np.int16) if sixteen else np.dtype(np.int8)
    dt = _out_dtype(out_dtype, (want,))
    x64 = _int_array(arr, "x", want)
    sx, zx = _qp(x_qp, "x_qp")
    sy, zy = _qp(y_qp, "y_qp")
    if sixteen:
        for zp, name in ((zx, "x_qp"), (zy, "y_qp")):
            if zp != 0:
                raise ValueError(f"{name}: int16 MEAN needs zero point 0 (symmetric 16x8 activations), got {zp}")
    return x64, dt, (sx, zx), (sy, zy)


def tflite_fixed_point_mean(x, x_qp, y_qp, axes, keepdims: bool = False, out_dtype=np.int8,
                            engine: str = "litert_ref") -> np.ndarray:
    """TFLite / TFLM quantized MEAN.

    Reference ``QuantizedMeanOrSum`` (LiteRT reference, TFLM, and LiteRT's
    optimised kernel outside its special case), with n = number of reduced
    elements::

        (M, e) = QuantizeMultiplier((double)s_x / (double)s_y)
        k = min(floor(log2 n), 32, 31 + e);  M' = (M << k) // n;  e' = e - k
        y = clamp(MBQM(wrap32(sum(x) - z_x * n), M', e') + z_y)

    LiteRT's optimised int8 kernel (``engine="litert_opt"``, 4-D input,
    keepdims, axes exactly {1, 2}) folds the zero point into a float bias::

        t = f32(z_x * s_x) / s_y;  bias = z_y - trunc(t +- 0.5)       # float32
        (M, e) = QuantizeMultiplier(f32(s_x / f32(f32(n) * s_y)))
        y = clamp(MBQM(sum(x), M, e) + bias)

    where MBQM is the NEON ``MultiplyByQuantizedMultiplier4Rows`` (VSHL,
    VQRDMULH, VRSHL: the second rounding is half up, not half away) for the
    channels handled 16 at a time, c < 16 * (C // 16), and the scalar
    double-rounding MBQM for the rest.  LiteRT's x86 wheels compile the
    ``USE_NEON`` paths through an SSE translation of the NEON intrinsics, so
    this holds on x86-64 too.  This assumes one thread (the Python
    interpreter's default): with more, LiteRT splits the channels into tasks
    and each task has its own 16-channel blocks.

    16x8 models (``x`` and ``out_dtype`` int16; both zero points must be 0, as
    every engine's Prepare demands): every engine and path computes the
    reference formula above with the int32 sum (LiteRT's optimised kernel has
    no int16 special case and XNNPACK does not take int16 MEAN; measured with
    tests/data/tflite_16x8/mean16_*: 0 mismatches on all four engines).
    """
    engine = _engine(engine)
    x64, dt, (sx, zx), (sy, zy) = _mean_operands(x, x_qp, y_qp, out_dtype)
    ax = _axes(axes, x64.ndim)
    qmin, qmax = _qrange(dt)
    n = int(np.prod([x64.shape[a] for a in ax], dtype=np.int64)) if ax else 1
    if n == 0:
        raise ValueError("x: the reduced axes are empty")
    total = gl.wrap32(x64.sum(axis=ax, keepdims=bool(keepdims)))
    if engine == "litert_opt" and x64.ndim == 4 and keepdims and ax == (1, 2) and dt == np.int8:
        t = _f32(_f32(zx) * sx) / sy
        t = t + _f32(0.5) if t > 0 else t - _f32(0.5)
        bias = zy - int(np.trunc(t))
        m, e = quantize_multiplier(float(sx / (_f32(n) * sy)))
        vector_channels = (x64.shape[3] // 16) * 16
        channel = np.arange(x64.shape[3])
        out = np.where(channel < vector_channels, _mbqm_neon_4rows(total, m, e),
                       gl.mul_by_quantized_multiplier(total, m, e)) + bias
        return np.clip(out, qmin, qmax).astype(dt)
    m, e = quantize_multiplier(float(sx) / float(sy))
    k = min(n.bit_length() - 1, 32, 31 + e)
    m2, e2 = (m << k) // n, e - k
    out = gl.mul_by_quantized_multiplier(gl.wrap32(total - zx * n), m2, e2) + zy
    return np.clip(out, qmin, qmax).astype(dt)


def tflite_rounded_avg_pool2d(x, x_qp, y_qp, kernel, stride, padding, activation=None,
                              out_dtype=np.int8) -> np.ndarray:
    """TFLite / TFLM quantized AVERAGE_POOL_2D (reference and optimised kernels agree), NHWC.

    Per output, over the window taps that fall inside the input (padding taps
    are not counted: c = number of valid taps)::

        acc = sum(x)          (raw int8 values; input and output share scale and zero point)
        y   = clamp(acc > 0 ? (acc + c/2) / c : (acc - c/2) / c)      # C division: half away

    ``padding`` is (top, left, bottom, right); the output size is
    (H + top + bottom - kh) // sh + 1 (TFLite's SAME / VALID sizes satisfy this).
    """
    dt = _out_dtype(out_dtype)
    sx, zx = _qp(x_qp, "x_qp")
    sy, zy = _qp(y_qp, "y_qp")
    if sx != sy or zx != zy:
        raise ValueError(f"y_qp: TFLite AVERAGE_POOL_2D needs the input's scale and zero point, "
                         f"got ({sy}, {zy}) vs ({sx}, {zx})")
    x64 = _int_array(x, "x", np.dtype(np.int8))
    if x64.ndim != 4:
        raise ValueError(f"x: expected an NHWC rank-4 array, got shape {x64.shape}")
    try:
        kh, kw = (int(v) for v in kernel)
        sh, sw = (int(v) for v in stride)
        pt, pl, pb, pr = (int(v) for v in padding)
    except (TypeError, ValueError):
        raise ValueError("kernel, stride: expected (h, w); padding: expected (top, left, bottom, right)") from None
    if min(kh, kw, sh, sw) < 1 or min(pt, pl, pb, pr) < 0:
        raise ValueError(f"kernel {kernel}, stride {stride} must be >= 1 and padding {padding} >= 0")
    n, h, w, c = x64.shape
    oh, ow = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"kernel {kernel} larger than the padded input {h}x{w}")
    # window bounds clipped to the input, per output row / column
    y0 = np.arange(oh) * sh - pt
    x0 = np.arange(ow) * sw - pl
    ys, ye = np.clip(y0, 0, h), np.clip(y0 + kh, 0, h)
    xs, xe = np.clip(x0, 0, w), np.clip(x0 + kw, 0, w)
    count = ((ye - ys)[:, None] * (xe - xs)[None, :])[None, :, :, None]
    if np.any(count <= 0):
        raise ValueError("padding: some output window has no input tap; TFLite fails on this padding")
    # exact window sums from 2-D prefix sums (int64: no rounding anywhere)
    prefix = np.zeros((n, h + 1, w + 1, c), dtype=np.int64)
    prefix[:, 1:, 1:, :] = x64.cumsum(axis=1).cumsum(axis=2)
    yy0, yy1, xx0, xx1 = ys[:, None], ye[:, None], xs[None, :], xe[None, :]
    acc = gl.wrap32(prefix[:, yy1, xx1, :] - prefix[:, yy0, xx1, :] - prefix[:, yy1, xx0, :]
                    + prefix[:, yy0, xx0, :])
    half = count // 2
    num = np.where(acc > 0, acc + half, acc - half)
    out = np.where(num >= 0, num // count, -((-num) // count))       # C division: toward zero
    lo, hi = activation_range(activation, y_qp, dt)
    return np.clip(out, lo, hi).astype(dt)


# --------------------------------------------------------------------------------------------
# SOFTMAX
# --------------------------------------------------------------------------------------------

def _libm_func(name: str):
    path = ctypes.util.find_library("m") or "libm.so.6"
    fn = getattr(ctypes.CDLL(path), name)
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
    return fn


_EXPF = _libm_func("expf")
_TANHF = _libm_func("tanhf")


def _libm_map(fn, v: np.ndarray) -> np.ndarray:
    """Apply a libm float function element by element (the engines call the C library's expf / tanhf)."""
    flat = np.asarray(v, dtype=np.float32).ravel()
    return np.array([fn(float(t)) for t in flat], dtype=np.float32).reshape(np.shape(v))


def _softmax_input(x, x_qp, y_qp, axis, out_dtype):
    dt = _out_dtype(out_dtype)
    sx, _ = _qp(x_qp, "x_qp")
    sy, zy = _qp(y_qp, "y_qp")
    x64 = _int_array(x, "x", np.dtype(np.int8))
    if x64.ndim == 0:
        raise ValueError("x: softmax needs at least one axis")
    try:
        x64 = np.moveaxis(x64, int(axis), -1)
    except (TypeError, np.exceptions.AxisError):
        raise ValueError(f"axis: {axis!r} is not an axis of a rank-{x64.ndim} input") from None
    return x64, sx, sy, zy, dt


def tflite_reference_softmax(x, x_qp, y_qp, beta: float = 1.0, axis: int = -1,
                             out_dtype=np.int8) -> np.ndarray:
    """TFLite reference int8 SOFTMAX (LiteRT ``BUILTIN_REF`` and TFLM): gemmlowp fixed point.

    Prepare (``PreprocessSoftmaxScaling``, 5 integer bits)::

        (M, e) = QuantizeMultiplier(min(beta * s_x * 2**26, 2**31 - 1))     # double
        diff_min = -floor(31 * 2**26 / 2**e)

    Per row, d = x - max(x); only d >= diff_min count::

        z   = SRDHM(d << e, M)                               # Q5.26
        E   = exp_on_negative_values(z)                      # Q0.31, gemmlowp
        S   = sum(RDBPOT(E, 12))                             # Q12.19
        (R, b) = GetReciprocal(S, 12)                        # 1/S in Q0.31, b bits over unit
        y   = clamp(RDBPOT(SRDHM(R, E), b + 23) - 128), and -128 where d < diff_min

    The output quantisation is fixed by TFLite (scale 1/256, zero point -128)
    and is not read from ``y_qp`` beyond a check.
    """
    x64, sx, sy, zy, dt = _softmax_input(x, x_qp, y_qp, axis, out_dtype)
    if zy != -128:
        raise ValueError(f"y_qp: TFLite int8 softmax needs zero point -128, got {zy}")
    real = min(float(_f32(beta)) * float(sx) * float(1 << 26), float((1 << 31) - 1))
    if real <= 1.0:
        raise ValueError(f"beta * x scale * 2**26 = {real} must exceed 1 (QuantizeMultiplierGreaterThanOne)")
    m, e = quantize_multiplier(real)
    diff_min = -math.floor(1.0 * 31 * (1 << 26) / (1 << e))
    diff = x64 - x64.max(axis=-1, keepdims=True)
    valid = diff >= diff_min
    scaled = gl.srdhm(gl.wrap32(diff << e), m)
    exps = gl.exp_on_negative_values(scaled, 5)
    sum_exps = gl.wrap32(np.where(valid, gl.rescale(exps, 0, 12), 0).sum(axis=-1, keepdims=True))
    recip, bits_over_unit = gl.get_reciprocal(sum_exps, 12)
    exponent = bits_over_unit + 31 - 8
    out = gl.rdbpot(gl.srdhm(recip, exps), exponent) - 128
    out = np.where(valid, np.clip(out, -128, 127), -128)
    return np.moveaxis(out.astype(dt), -1, axis)


def tflite_lut_f32_softmax(x, x_qp, y_qp, beta: float = 1.0, axis: int = -1,
                           out_dtype=np.int8) -> np.ndarray:
    """LiteRT optimised int8 SOFTMAX on x86-64 (``optimized_ops::Softmax`` with a float table).

    All float32::

        table[v] = expf(f32(-s_x * beta) * v),  v = max(x) - x in [0, 255]
        S   = sequential float32 sum of table[v] over the row
        inv = 1 / (S * s_y)
        y   = clamp((int)roundf(table[v] * inv) + z_y)
    """
    x64, sx, sy, zy, dt = _softmax_input(x, x_qp, y_qp, axis, out_dtype)
    scale = -sx * _f32(beta)
    table = _libm_map(_EXPF, scale * np.arange(256, dtype=np.float32))
    e = table[x64.max(axis=-1, keepdims=True) - x64]
    total = np.zeros(e.shape[:-1] + (1,), dtype=np.float32)
    for j in range(e.shape[-1]):            # float addition in the kernel's order
        total = (total + e[..., j:j + 1]).astype(np.float32)
    inv = (_f32(1) / (total * sy)).astype(np.float32)
    prob = (e * inv).astype(np.float32)
    out = _round_away_f32(prob).astype(np.int64) + zy
    return np.moveaxis(np.clip(out, -128, 127).astype(dt), -1, axis)


def tflite_lut_u16_softmax(x, x_qp, y_qp, beta: float = 1.0, axis: int = -1,
                           out_dtype=np.int8) -> np.ndarray:
    """LiteRT optimised int8 SOFTMAX on aarch64 (``SoftmaxInt8LUT``, uint16 table; SEMANTICS 10.3).

    ::

        table[i] = min(65535, (int)(double(f32(expf(f32(s_x * beta) * (i - 255)) * 65535)) + 0.5))
        S   = integer sum of table[255 - (max(x) - x)] over the row
        (M, e) = QuantizeMultiplier(f32(1 / f32(S * s_y)))
        y   = clamp(MBQM(table[...], M, e) + z_y)

    Not run against an engine in this repository (needs aarch64); written from
    the LiteRT source and SEMANTICS.md 10.3.  The table uses this machine's
    libm ``expf``.
    """
    x64, sx, sy, zy, dt = _softmax_input(x, x_qp, y_qp, axis, out_dtype)
    scale = sx * _f32(beta)
    e = _libm_map(_EXPF, scale * (np.arange(256, dtype=np.float32) - _f32(255)))
    table = np.minimum(65535, np.trunc((e * _f32(65535)).astype(np.float64) + 0.5).astype(np.int64))
    vals = table[255 - (x64.max(axis=-1, keepdims=True) - x64)]
    out = np.empty(vals.shape, dtype=np.int64)
    sums = vals.sum(axis=-1)
    for idx in np.ndindex(sums.shape):
        inv = _f32(1) / (_f32(sums[idx]) * sy)
        m, sh = quantize_multiplier(float(inv))
        out[idx] = gl.mul_by_quantized_multiplier(vals[idx], m, sh) + zy
    return np.moveaxis(np.clip(out, -128, 127).astype(dt), -1, axis)


# --------------------------------------------------------------------------------------------
# LOGISTIC / TANH / HARD_SWISH
# --------------------------------------------------------------------------------------------

def _lut_int8(x, x_qp, y_qp, out_dtype, transform) -> np.ndarray:
    """TFLite LUTPopulateInt8 then a table lookup (float32 throughout)."""
    dt = _out_dtype(out_dtype)
    sx, zx = _qp(x_qp, "x_qp")
    sy, zy = _qp(y_qp, "y_qp")
    x64 = _int_array(x, "x", np.dtype(np.int8))
    vals = np.arange(-128, 128, dtype=np.int64)
    deq = (sx * (vals - zx).astype(np.float32)).astype(np.float32)
    inverse_scale = _f32(1) / sy
    rescaled = _round_away_f32((transform(deq) * inverse_scale).astype(np.float32))
    q = (rescaled + _f32(zy)).astype(np.float32).astype(np.int64)
    table = np.clip(q, -128, 127)
    return table[x64 + 128].astype(dt)


def _logistic_f32(v: np.ndarray) -> np.ndarray:
    e = _libm_map(_EXPF, -v)
    return (_f32(1) / (_f32(1) + e)).astype(np.float32)


def tflite_lut_f32_logistic(x, x_qp, y_qp, out_dtype=np.int8) -> np.ndarray:
    """LiteRT int8 LOGISTIC (reference and optimised kernels both use this table).

    ``table[q] = clamp((int)(roundf(f(s_x * (q - z_x)) * (1 / s_y)) + z_y))`` with
    f(v) = 1 / (1 + expf(-v)), all float32, expf from the C library.
    """
    return _lut_int8(x, x_qp, y_qp, out_dtype, _logistic_f32)


def tflite_lut_f32_tanh(x, x_qp, y_qp, out_dtype=np.int8) -> np.ndarray:
    """LiteRT int8 TANH: the LOGISTIC table construction with f = tanhf."""
    return _lut_int8(x, x_qp, y_qp, out_dtype, lambda v: _libm_map(_TANHF, v))


_ALL_INT8 = np.arange(-128, 128, dtype=np.int64)


def _q4_input(x, x_qp, out_dtype):
    """TFLM's LOGISTIC / TANH input stage, evaluated on all 256 int8 values (the op is a table of them)."""
    dt = _out_dtype(out_dtype)
    sx, zx = _qp(x_qp, "x_qp")
    _int_array(x, "x", np.dtype(np.int8))
    x64 = _ALL_INT8
    # TFLM Prepare: frexp of s_x * 2**27, multiplier = round(q * 2**31) (no renormalisation)
    q, left_shift = math.frexp(float(sx) * float(1 << 27))
    m = int(math.floor(q * (1 << 31) + 0.5))
    if left_shift < 0:
        raise ValueError(f"x_qp: scale {sx} below 2**-28 makes TFLite's input radius undefined")
    radius = math.floor(1.0 * 15 * (1 << 27) / (1 << left_shift))
    centered = x64 - zx
    q4 = gl.mul_by_quantized_multiplier(centered, m, left_shift)
    return centered, radius, q4, dt


def tflite_fixed_point_logistic(x, x_qp, y_qp, out_dtype=np.int8) -> np.ndarray:
    """TFLM int8 LOGISTIC (``reference_integer_ops::Logistic``): gemmlowp fixed point.

    Prepare: (q, e) = frexp(s_x * 2**27), M = round(q * 2**31),
    radius = floor(15 * 2**27 / 2**e).  Per element, c = x - z_x::

        c <= -radius -> -128;  c >= radius -> 127
        else y = clamp(RDBPOT(logistic_Q4(MBQM(c, M, e)), 23) - 128)

    Output quantisation is fixed (1/256, -128); ``y_qp`` is only checked.
    """
    _, zy = _qp(y_qp, "y_qp")
    if zy != -128:
        raise ValueError(f"y_qp: TFLite int8 logistic needs zero point -128, got {zy}")
    centered, radius, q4, dt = _q4_input(x, x_qp, out_dtype)
    out = np.clip(gl.rdbpot(gl.logistic(q4, 4), 23) - 128, -128, 127)
    table = np.where(centered <= -radius, -128, np.where(centered >= radius, 127, out))
    return table[np.asarray(x).astype(np.int64) + 128].astype(dt)


def tflite_fixed_point_tanh(x, x_qp, y_qp, out_dtype=np.int8) -> np.ndarray:
    """TFLM int8 TANH (``reference_integer_ops::Tanh``): LOGISTIC's input stage, then::

        c <= -radius -> -128;  c >= radius -> 127
        else y = clamp(RDBPOT(tanh_Q4(MBQM(c, M, e)), 24))          # output zero point 0 assumed

    Output quantisation is fixed (1/128, 0); ``y_qp`` is only checked.
    """
    _, zy = _qp(y_qp, "y_qp")
    if zy != 0:
        raise ValueError(f"y_qp: TFLite int8 tanh needs zero point 0, got {zy}")
    centered, radius, q4, dt = _q4_input(x, x_qp, out_dtype)
    out = np.clip(gl.rdbpot(gl.tanh(q4, 4), 24), -128, 127)
    table = np.where(centered <= -radius, -128, np.where(centered >= radius, 127, out))
    return table[np.asarray(x).astype(np.int64) + 128].astype(dt)


def _wrap16(x: np.ndarray) -> np.ndarray:
    return ((np.asarray(x, dtype=np.int64) + (1 << 15)) & 0xFFFF) - (1 << 15)


def _srdhm16(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int16."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    ab = a * b
    num = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    q = np.where(num >= 0, num >> 15, -((-num) >> 15))
    return np.where((a == -32768) & (b == -32768), 32767, _wrap16(q))


def _sdhm16(a, b) -> np.ndarray:
    """TFLite SaturatingDoublingHighMul on int16: a*b / 2**15 truncated toward zero."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    ab = a * b
    q = np.where(ab >= 0, ab >> 15, -((-ab) >> 15))
    return np.where((a == -32768) & (b == -32768), 32767, _wrap16(q))


def _rdbpot16(x, exponent: int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT instantiated for int16 (mask and threshold are int16 values)."""
    x = np.asarray(x, dtype=np.int64)
    mask = int(_wrap16((1 << exponent) - 1))
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return _wrap16((x >> exponent) + (remainder > threshold))


def _sat_left_shift16(x, amount: int) -> np.ndarray:
    return np.clip(np.asarray(x, dtype=np.int64) * (1 << amount), -32768, 32767)


def _downscale_to_int16(m: int) -> int:
    """TFLite DownScaleInt32ToInt16Multiplier."""
    if m >= (1 << 31) - 1 - (1 << 15):
        return 32767
    return (m + (1 << 15)) >> 16


def tflite_reference_hard_swish(x, x_qp, y_qp, out_dtype=np.int8) -> np.ndarray:
    """TFLite / TFLM int8 HARD_SWISH (``reference_ops::HardSwish``; x86 optimised = reference).

    Prepare, float32: hires = s_x / 128; (Mo, eo) = QuantizeMultiplier(hires / s_y),
    (Mr, er) = QuantizeMultiplier(hires / (3 / 32768)); both multipliers cut to
    int16 as (M + 2**15) >> 16.  Per element (int16 arithmetic)::

        h   = (x - z_x) * 128
        p   = SRDHM16(h, Mo16)
        r   = h;  if er > 0: r = satshl16(r, er - 1)
        r   = SRDHM16(r, Mr16);  if er > 0: r = satshl16(r, 1);  if er < 0: r = RDBPOT16(r, -er)
        r   = (r + 2**15) >> 1                                  # [-1, 1] -> [0, 1]
        y   = clamp(RDBPOT16(SDHM16(r, p), -eo) + z_y)          # SDHM16 truncates toward zero
    """
    dt = _out_dtype(out_dtype)
    sx, zx = _qp(x_qp, "x_qp")
    sy, zy = _qp(y_qp, "y_qp")
    x_in = _int_array(x, "x", np.dtype(np.int8))
    x64 = _ALL_INT8                                    # evaluate the 256-entry table, then look up
    hires = _f32(1.0 / 128.0) * sx
    mo32, eo = quantize_multiplier(float(hires / sy))
    if eo > 0:
        raise ValueError(f"x_qp, y_qp: s_x / (128 s_y) must be < 1 for TFLite hard swish, got exponent {eo}")
    mr32, er = quantize_multiplier(float(hires / _f32(3.0 / 32768.0)))
    mo, mr = _downscale_to_int16(mo32), _downscale_to_int16(mr32)
    h = _wrap16((x64 - zx) * 128)
    pre = _srdhm16(h, mo)
    r = h
    if er > 0:
        r = _sat_left_shift16(r, er - 1)
    r = _srdhm16(r, mr)
    if er > 0:
        r = _sat_left_shift16(r, 1)
    if er < 0:
        r = _rdbpot16(r, -er)
    r = _wrap16((r + (1 << 15)) >> 1)
    out = _wrap16(_rdbpot16(_sdhm16(r, pre), -eo) + zy)
    return np.clip(out, -128, 127)[x_in + 128].astype(dt)


# --------------------------------------------------------------------------------------------
# QUANTIZE / DEQUANTIZE / requantize
# --------------------------------------------------------------------------------------------

def tflite_quantize(x, y_qp, out_dtype=np.int8, engine: str = "litert_ref") -> np.ndarray:
    """TFLite QUANTIZE float32 -> int.

    Reference kernel (LiteRT reference, TFLM)::

        y = clamp((int)roundf(x / f32(s)) + z)            # float32 division, half away from zero

    LiteRT's optimised int8 kernel (``engine="litert_opt"``) runs its NEON loop
    (through the SSE translation on x86-64) over the first 8 * (n // 8)
    elements of the flattened tensor and scalar code over the rest::

        vector part:  y = clamp(rint_even(x * f32(1.0 / (double)s)) + z)   # multiply by the reciprocal
        scalar tail:  y = clamp((int)round((double)x / (double)s) + z)      # double division, half away
    """
    engine = _engine(engine)
    dt = _out_dtype(out_dtype, tuple(_INT_TYPES))
    s, z = _qp(y_qp, "y_qp")
    arr = np.asarray(x)
    if arr.dtype != np.float32:
        raise ValueError(f"x: expected a float32 array, got dtype {arr.dtype}")
    lo, hi = _qrange(dt)
    if engine == "litert_opt" and dt == np.int8:
        flat = arr.reshape(-1)
        n_vec = (flat.size // 8) * 8
        reciprocal = _f32(1.0 / float(s))
        vec = np.rint((flat[:n_vec] * reciprocal).astype(np.float32)).astype(np.float64)
        q = flat[n_vec:].astype(np.float64) / float(s)
        tail = np.sign(q) * np.floor(np.abs(q) + 0.5)     # std::round on a double
        v = np.concatenate([vec, tail]).reshape(arr.shape)
    else:
        v = _round_away_f32((arr / s).astype(np.float32)).astype(np.float64)
    v = np.clip(v, -(2.0**31), 2.0**31 - 128)             # the C cast of an out-of-range float is undefined
    return np.clip(v.astype(np.int64) + z, lo, hi).astype(dt)


def tflite_dequantize(x, x_qp) -> np.ndarray:
    """TFLite DEQUANTIZE: float32 ``s * (q - z)`` (float32 multiply of the exact integer difference)."""
    s, z = _qp(x_qp, "x_qp")
    q = _int_array(x, "x")
    return (s * (q - z).astype(np.float32)).astype(np.float32)


def tflite_requantize(x, x_qp, y_qp, out_dtype=np.int8) -> np.ndarray:
    """TFLite QUANTIZE int -> int (reference ``Requantize``)::

        (M, e) = QuantizeMultiplier((double)s_x / (double)s_y)
        y = clamp(MBQM(x - z_x, M, e) + z_y)

    (int8 <-> uint8 with equal scales and zero points 128 apart is an exact
    XOR 0x80, which the formula also gives.)
    """
    dt = _out_dtype(out_dtype, tuple(_INT_TYPES))
    sx, zx = _qp(x_qp, "x_qp")
    sy, zy = _qp(y_qp, "y_qp")
    x64 = _int_array(x, "x")
    m, e = quantize_multiplier(float(sx) / float(sy))
    lo, hi = _qrange(dt)
    return np.clip(gl.mul_by_quantized_multiplier(x64 - zx, m, e) + zy, lo, hi).astype(dt)


# --------------------------------------------------------------------------------------------
# LiteRT's default resolver: ops the XNNPACK delegate takes (ADD, SUB, MUL, MEAN)
# --------------------------------------------------------------------------------------------

def _float_exponent(v: np.float32) -> int:
    """Unbiased exponent field of a normal float32 (XNNPACK reads the bits)."""
    return int((int(np.asarray(v, dtype=np.float32).view(np.uint32)) >> 23) & 0xFF) - 127


def _lrintf(v: np.float32) -> int:
    """C lrintf in the default rounding mode: nearest, ties to even."""
    return int(np.rint(np.float32(v)))


def _xnnpack_add_sub(a, a_qp, b, b_qp, y_qp, out_dtype, activation, sign: int) -> np.ndarray:
    dt = _out_dtype(out_dtype)
    s1, z1 = _qp(a_qp, "a_qp")
    s2, z2 = _qp(b_qp, "b_qp")
    so, zo = _qp(y_qp, "y_qp")
    a64, b64 = _int_array(a, "a", np.dtype(np.int8)), _int_array(b, "b", np.dtype(np.int8))
    try:
        a64, b64 = np.broadcast_arrays(a64, b64)
    except ValueError:
        raise ValueError(f"a, b: shapes {np.shape(a)} and {np.shape(b)} do not broadcast") from None
    a_scale = s1 / so                                   # float32 quotients
    b_scale = s2 / so if sign > 0 else -(s2 / so)
    for ratio, name in ((abs(a_scale), "a_qp"), (abs(b_scale), "b_qp")):
        if not 2.0**-10 <= ratio < 2.0**8:
            raise ValueError(f"{name}: input/output scale ratio {ratio} outside XNNPACK's [2**-10, 2**8); "
                             f"LiteRT would not delegate this op (use tflite_fixed_point_*)")
    shift = 20 - _float_exponent(max(abs(a_scale), abs(b_scale)))
    m1 = _lrintf(abs(a_scale) * _f32(2.0**shift)) * (-1 if a_scale < 0 else 1)
    m2 = _lrintf(abs(b_scale) * _f32(2.0**shift)) * (-1 if b_scale < 0 else 1)
    bias = (1 << (shift - 1)) - m1 * z1 - m2 * z2
    out = ((bias + a64 * m1 + b64 * m2) >> shift) + zo
    lo, hi = activation_range(activation, y_qp, dt)
    return np.clip(out, lo, hi).astype(dt)


def xnnpack_fixed_point_add(a, a_qp, b, b_qp, y_qp, out_dtype=np.int8, activation=None) -> np.ndarray:
    """ADD as LiteRT's default resolver runs it: XNNPACK ``qs8-vadd`` (x86-64; ai-edge-litert 2.3.0).

    ::

        r_a = f32(s_a / s_y);  r_b = f32(s_b / s_y)                     # float32
        shift = 20 - exponent(max(r_a, r_b))                            # in [12, 30]
        M_a = lrintf(r_a * 2**shift);  M_b = lrintf(r_b * 2**shift)     # ties to even, < 2**21
        y = clamp(((2**(shift-1) - M_a z_a - M_b z_b + a M_a + b M_b) >> shift) + z_y)

    i.e. one rounding, half up (floor after adding half).  XNNPACK accepts
    ratios r in [2**-10, 2**8) only; outside, LiteRT keeps its builtin kernel
    and this raises ValueError.
    """
    return _xnnpack_add_sub(a, a_qp, b, b_qp, y_qp, out_dtype, activation, +1)


def xnnpack_fixed_point_sub(a, a_qp, b, b_qp, y_qp, out_dtype=np.int8, activation=None) -> np.ndarray:
    """SUB under LiteRT's default resolver: XNNPACK ``qs8-vadd`` with b's scale negated (M_b < 0)."""
    return _xnnpack_add_sub(a, a_qp, b, b_qp, y_qp, out_dtype, activation, -1)


def xnnpack_f32_mul(a, a_qp, b, b_qp, y_qp, out_dtype=np.int8, activation=None) -> np.ndarray:
    """MUL under LiteRT's default resolver: XNNPACK ``qs8-vmul-minmax-fp32``::

        scale = f32(f32(s_a * s_b) / s_y)
        v = f32((a - z_a)(b - z_b)) * scale, clamped in float to [lo - z_y, hi - z_y]
        y = rint_even(v) + z_y

    XNNPACK accepts scale in [2**-16, 2**8) only (else ValueError).
    """
    dt = _out_dtype(out_dtype)
    s1, z1 = _qp(a_qp, "a_qp")
    s2, z2 = _qp(b_qp, "b_qp")
    so, zo = _qp(y_qp, "y_qp")
    a64, b64 = _int_array(a, "a", np.dtype(np.int8)), _int_array(b, "b", np.dtype(np.int8))
    try:
        a64, b64 = np.broadcast_arrays(a64, b64)
    except ValueError:
        raise ValueError(f"a, b: shapes {np.shape(a)} and {np.shape(b)} do not broadcast") from None
    scale = (s1 * s2) / so
    if not 2.0**-16 <= scale < 2.0**8:
        raise ValueError(f"y_qp: product/output scale {scale} outside XNNPACK's [2**-16, 2**8); "
                         f"LiteRT would not delegate this op (use tflite_fixed_point_mul)")
    lo, hi = activation_range(activation, y_qp, dt)
    v = ((a64 - z1) * (b64 - z2)).astype(np.float32) * scale
    v = np.minimum(np.maximum(v, _f32(lo - zo)), _f32(hi - zo))
    return (np.rint(v).astype(np.int64) + zo).astype(dt)


def xnnpack_f32_mean(x, x_qp, y_qp, axes, keepdims: bool = False, out_dtype=np.int8) -> np.ndarray:
    """MEAN under LiteRT's default resolver: XNNPACK int32 sum, then a float32 int32 -> qs8 convert::

        inv = f32(f32(s_x / s_y) * f32(1 / n))
        zp' = f32(z_y) - f32(f32(n z_x) * inv)
        y   = clamp(rint_even(f32(f32(sum(x)) * inv) + zp'))

    int16 (16x8) MEAN is not delegated to XNNPACK: LiteRT's own kernel runs it,
    :func:`tflite_fixed_point_mean` with ``engine="litert_opt"`` (measured).
    """
    if np.asarray(x).dtype == np.int16:
        return tflite_fixed_point_mean(x, x_qp, y_qp, axes, keepdims, out_dtype, engine="litert_opt")
    dt = _out_dtype(out_dtype)
    sx, zx = _qp(x_qp, "x_qp")
    sy, zy = _qp(y_qp, "y_qp")
    x64 = _int_array(x, "x", np.dtype(np.int8))
    ax = _axes(axes, x64.ndim)
    n = int(np.prod([x64.shape[a] for a in ax], dtype=np.int64)) if ax else 1
    if n == 0:
        raise ValueError("x: the reduced axes are empty")
    total = gl.wrap32(x64.sum(axis=ax, keepdims=bool(keepdims)))
    inv = (sx / sy) * (_f32(1) / _f32(n))
    zp = _f32(zy) - _f32(n * zx) * inv
    v = (total.astype(np.float32) * inv).astype(np.float32) + zp
    return np.clip(np.rint(v.astype(np.float32)), -128, 127).astype(dt)


def xnnpack_quantize(x, y_qp, out_dtype=np.int8) -> np.ndarray:
    """QUANTIZE float32 -> int8 under LiteRT's default resolver (XNNPACK convert)::

        y = clamp(rint_even(x * f32(1 / s)) + z)          # multiply by the float32 reciprocal, ties to even
    """
    dt = _out_dtype(out_dtype)
    s, z = _qp(y_qp, "y_qp")
    arr = np.asarray(x)
    if arr.dtype != np.float32:
        raise ValueError(f"x: expected a float32 array, got dtype {arr.dtype}")
    lo, hi = _qrange(dt)
    v = np.rint((arr * (_f32(1) / s)).astype(np.float32)).astype(np.float64)
    v = np.clip(v, -(2.0**31), 2.0**31 - 128)
    return np.clip(v.astype(np.int64) + z, lo, hi).astype(dt)


SCHEMES = {
    "add": {"tflite_fixed_point": tflite_fixed_point_add, "xnnpack_fixed_point": xnnpack_fixed_point_add},
    "sub": {"tflite_fixed_point": tflite_fixed_point_sub, "xnnpack_fixed_point": xnnpack_fixed_point_sub},
    "mul": {"tflite_fixed_point": tflite_fixed_point_mul, "xnnpack_f32": xnnpack_f32_mul},
    "mean": {"tflite_fixed_point": tflite_fixed_point_mean, "xnnpack_f32": xnnpack_f32_mean},
    "avg_pool2d": {"tflite_rounded": tflite_rounded_avg_pool2d},
    "softmax": {"tflite_reference": tflite_reference_softmax, "tflite_lut_f32": tflite_lut_f32_softmax,
                "tflite_lut_u16": tflite_lut_u16_softmax},
    "logistic": {"tflite_lut_f32": tflite_lut_f32_logistic, "tflite_fixed_point": tflite_fixed_point_logistic},
    "tanh": {"tflite_lut_f32": tflite_lut_f32_tanh, "tflite_fixed_point": tflite_fixed_point_tanh},
    "hard_swish": {"tflite_reference": tflite_reference_hard_swish},
    "quantize": {"half_away": tflite_quantize, "xnnpack_half_even": xnnpack_quantize},
    "requantize": {"tflite_fixed_point": tflite_requantize},
}
"""op -> scheme name -> function, for the executor's ``elementwise`` section."""

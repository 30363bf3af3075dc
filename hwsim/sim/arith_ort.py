"""onnxruntime's own arithmetic for the ops it does not run through a GEMM.

Each function reproduces one MLAS routine of onnxruntime 1.32.0 exactly
(SEMANTICS.md 3.6, 3.7, 10.1, 10.3), with numpy float32 / integer arrays:

* :func:`quantize_linear` / :func:`dequantize_linear` -- QuantizeLinear (a true
  float32 division, ties to even) and DequantizeLinear.
* :func:`requantize_f32` -- MLAS's float32 requantisation of int32 sums.
* :func:`ort_fma_f32_add` -- QLinearAdd on x86 with FMA (scheme ``ort_fma_f32``).
* :func:`ort_neon_fixed_add` -- QLinearAdd on aarch64 (scheme ``ort_neon_fixed``).
* :func:`ort_f32_mean` -- QLinearGlobalAveragePool (scheme ``ort_f32``).
* :func:`ort_f32_mul`, :func:`ort_f32_avg_pool2d` -- QLinearMul, QLinearAveragePool (``ort_f32``).
* :func:`ort_lut_f32_logistic`, :func:`ort_lut_f32_leaky_relu`, :func:`ort_lut_f32_concat` --
  QLinearSigmoid, QLinearLeakyRelu, QLinearConcat: 256-entry tables (``ort_lut_f32``).

Broadcasting follows numpy (= ONNX multidirectional broadcasting).  Integer
inputs are the raw quantized values; ``*_qp`` are per-tensor
:class:`hwsim.graph.ir.QuantParams`.  Outputs saturate to ``out_dtype``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "fma_f32",
    "quantize_linear",
    "dequantize_linear",
    "requantize_f32",
    "ort_fma_f32_add",
    "ort_fma_f32_add_table",
    "ort_fma_f32_sub",
    "ort_neon_fixed_add",
    "ort_f32_mean",
    "ort_f32_mul",
    "ort_f32_avg_pool2d",
    "ort_lut_f32_logistic",
    "ort_lut_f32_leaky_relu",
    "ort_lut_f32_concat",
    "mlas_logistic_fma3",
]

_F32 = np.float32
_INT_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.int32)


def _dtype(out_dtype) -> np.dtype:
    dt = np.dtype(out_dtype)
    if dt not in [np.dtype(d) for d in _INT_DTYPES]:
        raise ValueError(f"out_dtype: expected uint8, int8, uint16, int16 or int32, got {dt}")
    return dt


def _per_tensor(qp, name: str) -> tuple[np.float32, int]:
    scale = np.asarray(qp.scale, dtype=_F32).reshape(-1)
    zp = np.asarray(qp.zero_point, dtype=np.int64).reshape(-1)
    if scale.size != 1 or zp.size != 1:
        raise ValueError(f"{name}: expected per-tensor quantisation (one scale, one zero point), got {scale.size}")
    return scale[0], int(zp[0])


def _int_array(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected an integer array, got dtype {arr.dtype}")
    return arr


def _saturate_cast(v: np.ndarray, dt: np.dtype) -> np.ndarray:
    info = np.iinfo(dt)
    return np.clip(v, info.min, info.max).astype(dt)


def fma_f32(a, b, c) -> np.ndarray:
    """float32 fused multiply-add ``round_f32(a * b + c)`` with one rounding (x86 VFMADD, ARM FMLA).

    The product of two float32 values is exact in float64; the float64 sum is
    then rounded *to odd* (kept exact in its last bit), after which the single
    rounding to float32 equals the rounding of the exact value (53 >= 2 * 24 + 2).
    """
    a64 = np.asarray(a, dtype=_F32).astype(np.float64)
    b64 = np.asarray(b, dtype=_F32).astype(np.float64)
    c64 = np.asarray(c, dtype=_F32).astype(np.float64)
    p = a64 * b64                                  # exact: 48 significant bits
    s = p + c64                                    # rounded to nearest even in float64
    # TwoSum: the exact rounding error of s (valid without a magnitude order).
    bv = s - p
    err = (p - (s - bv)) + (c64 - bv)
    bits = np.asarray(s).view(np.int64)
    inexact = (err != 0) & np.isfinite(s)
    even = (bits & 1) == 0
    fix = inexact & even
    if np.any(fix):
        # the other float64 neighbour of the exact sum, which has an odd last bit
        s = np.where(fix, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return np.asarray(s).astype(_F32)


def quantize_linear(x, qp, out_dtype, axis: int | None = None) -> np.ndarray:
    """ONNX QuantizeLinear as MLAS computes it: ``sat(rne(fl32(x / scale)) + zp)``.

    ``qp`` may be per channel along ``axis`` (default ``qp.axis``) of ``x``.
    """
    dt = _dtype(out_dtype)
    x32 = np.asarray(x, dtype=_F32)
    scale, zp = _broadcast_params(qp, x32.ndim, axis)
    info = np.iinfo(dt)
    v = x32 / scale                                # float32 true division
    v = np.clip(v, (info.min - zp).astype(_F32), (info.max - zp).astype(_F32))
    return (np.rint(v).astype(np.int64) + zp).astype(dt)


def dequantize_linear(q, qp, axis: int | None = None) -> np.ndarray:
    """ONNX DequantizeLinear: ``fl32(fl32(q - zp) * scale)``."""
    q = _int_array(q, "q")
    scale, zp = _broadcast_params(qp, q.ndim, axis)
    return (q.astype(np.int64) - zp).astype(_F32) * scale


def _broadcast_params(qp, ndim: int, axis: int | None):
    scale = np.asarray(qp.scale, dtype=_F32)
    zp = np.asarray(qp.zero_point, dtype=np.int64)
    if scale.ndim == 0 or scale.size == 1:
        return scale.reshape(()), zp.reshape(())
    ax = qp.axis if axis is None else axis
    if ax is None:
        raise ValueError("qp: per-channel parameters need an axis")
    ax = ax % ndim
    shape = [1] * ndim
    shape[ax] = scale.size
    return scale.reshape(shape), zp.reshape(shape)


def requantize_f32(acc, scale, zero_point, out_dtype, out_min: int | None = None,
                   out_max: int | None = None) -> np.ndarray:
    """MLAS float32 requantisation: ``rne(clamp(fl32(acc) * fl32(scale), lo - zp, hi - zp)) + zp``.

    ``acc`` int32/int64 sums (converted to float32 first, which rounds beyond
    2**24); ``scale`` a float32 scalar or an array broadcasting against ``acc``;
    ``out_min``/``out_max`` narrow the output range (a fused activation).
    """
    dt = _dtype(out_dtype)
    info = np.iinfo(dt)
    lo = info.min if out_min is None else max(info.min, int(out_min))
    hi = info.max if out_max is None else min(info.max, int(out_max))
    zp = int(zero_point)
    v = np.asarray(acc).astype(_F32) * np.asarray(scale, dtype=_F32)
    v = np.clip(v, _F32(lo - zp), _F32(hi - zp))
    return (np.rint(v).astype(np.int64) + zp).astype(dt)


def _add_constants(a_qp, b_qp, y_qp):
    sa, za = _per_tensor(a_qp, "a_qp")
    sb, zb = _per_tensor(b_qp, "b_qp")
    sc, zc = _per_tensor(y_qp, "y_qp")
    ra = _F32(sa / sc)
    rb = _F32(sb / sc)
    return ra, rb, za, zb, zc


def _a_is_inner_scalar(a_shape, b_shape) -> bool:
    """True when onnxruntime's broadcaster hands ``a`` to the kernel as the per-span scalar.

    ORT runs a binary op span by span over the innermost output axis that is
    longer than 1; an input broadcast along that axis is the scalar of each span.
    MLAS's QLinearAdd only has a scalar-B form, so a scalar A swaps the inputs.
    """
    rank = max(len(a_shape), len(b_shape))
    a_full = (1,) * (rank - len(a_shape)) + tuple(a_shape)
    b_full = (1,) * (rank - len(b_shape)) + tuple(b_shape)
    for k in range(rank - 1, -1, -1):
        if max(a_full[k], b_full[k]) > 1:
            return a_full[k] == 1 and b_full[k] > 1
    return False


def ort_fma_f32_add(a, a_qp, b, b_qp, y_qp, out_dtype) -> np.ndarray:
    """QLinearAdd, onnxruntime x86 (AVX2/FMA build), SEMANTICS.md 10.1.

    ``Ra = fl32(sa/sc); Rb = fl32(sb/sc); F = fl32(zc - fma(Ra, za, fl32(Rb*zb)))``;
    ``y = sat(rne(fma(a, Ra, fma(b, Rb, F))))``.  Broadcasting is numpy's; when
    ``a`` is broadcast along the innermost non-trivial output axis (onnxruntime's
    per-span scalar) the kernel runs with the inputs swapped -- ``a`` and ``b``
    exchange roles in every formula above, F included (measured: the unswapped
    order differs on ties).
    """
    a = _int_array(a, "a")
    b = _int_array(b, "b")
    dt = _dtype(out_dtype)
    if _a_is_inner_scalar(a.shape, b.shape):
        a, a_qp, b, b_qp = b, b_qp, a, a_qp
    ra, rb, za, zb, zc = _add_constants(a_qp, b_qp, y_qp)
    f = _F32(_F32(zc) - fma_f32(ra, _F32(za), _F32(rb * _F32(zb))))
    inner = fma_f32(b.astype(_F32), rb, f)
    v = fma_f32(a.astype(_F32), ra, inner)
    return _saturate_cast(np.rint(v).astype(np.int64), dt)


def ort_fma_f32_add_table(a_qp, b_qp, y_qp, dtype, a_is_inner_scalar: bool) -> np.ndarray:
    """All results of :func:`ort_fma_f32_add` for 8-bit inputs: ``table[a - min, b - min]``.

    The result of one element depends only on the two input values and on
    which operand is onnxruntime's per-span scalar, so a 256 x 256 table
    computed once by :func:`ort_fma_f32_add` itself replaces the float work of
    every later call (``a_is_inner_scalar`` as :func:`_a_is_inner_scalar` says).
    """
    dt = _dtype(dtype)
    if dt.itemsize != 1:
        raise ValueError(f"dtype: a table needs 8-bit inputs, got {dt}")
    vals = np.arange(np.iinfo(dt).min, np.iinfo(dt).max + 1).astype(dt)
    a_grid = np.ascontiguousarray(np.broadcast_to(vals[:, None], (256, 256)))
    b_grid = np.ascontiguousarray(np.broadcast_to(vals[None, :], (256, 256)))
    if not a_is_inner_scalar:
        return ort_fma_f32_add(a_grid, a_qp, b_grid, b_qp, y_qp, dt)
    # swapped roles: the kernel computes add(b, a); same-shape grids take the unswapped branch of it
    return ort_fma_f32_add(b_grid.T, b_qp, a_grid.T, a_qp, y_qp, dt).T


def ort_fma_f32_sub(a, a_qp, b, b_qp, y_qp, out_dtype) -> np.ndarray:
    """Not an onnxruntime kernel (there is no QLinearSub); refuses, naming why."""
    raise ValueError("ort_fma_f32: onnxruntime has no QLinearSub; a quantized Sub runs as DQ -> Sub -> Q in float")


def ort_neon_fixed_add(a, a_qp, b, b_qp, y_qp, out_dtype) -> np.ndarray:
    """QLinearAdd, onnxruntime aarch64 (MLAS NEON fixed point), SEMANTICS.md 10.3.

    ``e`` = IEEE exponent of max(Ra, Rb) (max = 1.m * 2**e), ``shift = 21 - e``
    (the larger multiplier lies in [2**21, 2**22)); ``M = lrintf(R * 2**shift)``;
    ``acc = (a - za) Ma + (b - zb) Mb`` (int32);
    ``acc += acc >> 31``; ``r = (acc + 2**(shift-1)) >> shift``; ``y = sat(sat16(r) + zc)``.
    """
    a = _int_array(a, "a").astype(np.int64)
    b = _int_array(b, "b").astype(np.int64)
    dt = _dtype(out_dtype)
    ra, rb, za, zb, zc = _add_constants(a_qp, b_qp, y_qp)
    for ratio in (ra, rb):
        if not 2.0 ** -14 <= float(ratio) < 2.0 ** 8:
            raise ValueError(f"ort_neon_fixed: scale ratio {float(ratio)!r} outside [2**-14, 2**8) takes MLAS's "
                             "float fall-back, which hwsim does not emulate")
    _, e = np.frexp(_F32(max(ra, rb)))
    shift = 21 - (int(e) - 1)    # SEMANTICS' e is the IEEE exponent: max ratio = 1.m * 2**e (frexp gives e + 1)
    ma = int(np.rint(ra * _F32(2.0 ** shift)))     # lrintf: ties to even
    mb = int(np.rint(rb * _F32(2.0 ** shift)))
    if not 13 <= shift <= 31 or max(ma, mb) >= 1 << 22 or max(ma, mb) < 1 << 21:
        raise ValueError("ort_neon_fixed: scale ratios take MLAS's float fall-back, which hwsim does not emulate")
    acc = (a - za) * ma + (b - zb) * mb
    acc = ((acc + 2**31) % 2**32) - 2**31          # int32 arithmetic
    acc = acc + (acc >> 31)
    r = (acc + (1 << (shift - 1))) >> shift
    r = np.clip(r, -32768, 32767) + zc
    return _saturate_cast(r, dt)


def ort_f32_mean(x, x_qp, y_qp, out_dtype, axes=(1, 2)) -> np.ndarray:
    """QLinearGlobalAveragePool (and a quantized ReduceMean over the spatial axes), SEMANTICS.md 10.1.

    ``s = fl32(sx / fl32(sy * fl32(N)))`` with ``N`` the number of averaged
    elements; ``acc = sum(x) - zx * N`` (int32); then :func:`requantize_f32`.
    ``axes`` are the reduced axes of ``x`` (NHWC: (1, 2)); kept as size 1.
    """
    x = _int_array(x, "x")
    dt = _dtype(out_dtype)
    sx, zx = _per_tensor(x_qp, "x_qp")
    sy, zy = _per_tensor(y_qp, "y_qp")
    axes = tuple(int(a) % x.ndim for a in axes)
    n = 1
    for ax in axes:
        n *= x.shape[ax]
    s = _F32(sx / _F32(sy * _F32(n)))
    acc = x.astype(np.int64).sum(axis=axes, keepdims=True) - zx * n
    acc = ((acc + 2**31) % 2**32) - 2**31
    return requantize_f32(acc, s, zy, dt)


def ort_f32_mul(a, a_qp, b, b_qp, y_qp, out_dtype) -> np.ndarray:
    """QLinearMul, onnxruntime MLAS (SSE2 kernel on x86; the NEON kernel has the same order).

    ``R = fl32(fl32(sa * sb) / sc)``; ``p = (a - za)(b - zb)`` (exact int32);
    ``v = fl32(fl32(fl32(p) * R) + fl32(zc))`` (a multiply, then an add: no FMA);
    ``y = sat8(sat16(rne(v)))`` -- the zero point is added *before* rounding.
    """
    a = _int_array(a, "a").astype(np.int32)
    b = _int_array(b, "b").astype(np.int32)
    dt = _dtype(out_dtype)
    sa, za = _per_tensor(a_qp, "a_qp")
    sb, zb = _per_tensor(b_qp, "b_qp")
    sc, zc = _per_tensor(y_qp, "y_qp")
    ratio = _F32(_F32(sa * sb) / sc)
    p = (a - za) * (b - zb)
    v = (p.astype(_F32) * ratio) + _F32(zc)
    r = np.clip(np.rint(v), -(2.0**31), 2.0**31 - 128).astype(np.int64)   # cvtps2dq (no overflow for 8-bit inputs)
    return _saturate_cast(np.clip(r, -32768, 32767), dt)


def _dequantize_f32(x_int: np.ndarray, scale, zp) -> np.ndarray:
    """``fl32(scale * float(x - zp))`` -- onnxruntime's dequantize_value / lookup-table input."""
    return _F32(scale) * (x_int.astype(np.int64) - zp).astype(_F32)


def _byte_table(x_qp, y_qp, dtype, fn) -> np.ndarray:
    """onnxruntime's QlinearBuildLookupTable: for each byte value v, ``QuantizeLinear(fn(fl32(sx * (v - zx))))``.

    Indexed by the raw byte (an int8 value -1 is entry 255).
    """
    dt = _dtype(dtype)
    if dt.itemsize != 1:
        raise ValueError(f"dtype: onnxruntime's lookup tables need 8-bit tensors, got {dt}")
    sx, zx = _per_tensor(x_qp, "x_qp")
    values = np.arange(256, dtype=np.uint8).view(dt)
    y = fn(_dequantize_f32(values, sx, zx)).astype(_F32)
    return quantize_linear(y, y_qp, dt)


def _apply_byte_table(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    return table[x.view(np.uint8)]


def mlas_logistic_fma3(x) -> np.ndarray:
    """MlasComputeLogistic on x86 with FMA3 (Eigen's rational approximation, float32):
    clamp to [-18, 18]; p and q by Horner with FMA; ``clamp(p * x / q + 0.5, 0, 1)``."""
    v = np.clip(np.asarray(x, dtype=_F32), _F32(-18.0), _F32(18.0))
    v2 = v * v
    p = fma_f32(v2, _F32(4.37031012579801e-11), _F32(1.15627324459942e-07))
    for c in (6.08574864600143e-05, 8.51377133304701e-03, 2.48287947061529e-01):
        p = fma_f32(p, v2, _F32(c))
    p = p * v
    q = fma_f32(v2, _F32(6.10247389755681e-13), _F32(5.76102136993427e-09))
    for c in (6.29106785017040e-06, 1.70198817374094e-03, 1.16817656904453e-01, 9.93151921023180e-01):
        q = fma_f32(q, v2, _F32(c))
    return np.clip(p / q + _F32(0.5), _F32(0.0), _F32(1.0)).astype(_F32)


def ort_lut_f32_logistic(x, x_qp, y_qp, out_dtype) -> np.ndarray:
    """QLinearSigmoid (com.microsoft): a 256-entry table of QuantizeLinear(MlasComputeLogistic(dequantize(v)))."""
    x = _int_array(x, "x")
    return _apply_byte_table(x, _byte_table(x_qp, y_qp, out_dtype, mlas_logistic_fma3))


def ort_lut_f32_leaky_relu(x, x_qp, y_qp, out_dtype, alpha: float = 0.01) -> np.ndarray:
    """QLinearLeakyRelu (com.microsoft): table of QuantizeLinear(v >= 0 ? v : fl32(alpha * v))."""
    x = _int_array(x, "x")
    a = _F32(alpha)
    return _apply_byte_table(x, _byte_table(x_qp, y_qp, out_dtype, lambda v: np.where(v >= 0, v, a * v)))


def ort_lut_f32_concat(xs, x_qps, y_qp, out_dtype, axis: int) -> np.ndarray:
    """QLinearConcat (com.microsoft): inputs quantized like the output are copied; every other
    input goes through the table QuantizeLinear(dequantize(v)) of its own parameters."""
    dt = _dtype(out_dtype)
    parts = []
    for i, (x, qp) in enumerate(zip(xs, x_qps)):
        x = _int_array(x, f"xs[{i}]")
        same = (np.array_equal(np.asarray(qp.scale, _F32), np.asarray(y_qp.scale, _F32))
                and np.array_equal(np.asarray(qp.zero_point), np.asarray(y_qp.zero_point)))
        parts.append(x.astype(dt) if same else _apply_byte_table(x, _byte_table(qp, y_qp, dt, lambda v: v)))
    return np.concatenate(parts, axis=axis)


def ort_f32_avg_pool2d(x, x_qp, y_qp, out_dtype, kernel, stride=(1, 1), padding=(0, 0, 0, 0),
                       count_include_pad: bool = False) -> np.ndarray:
    """QLinearAveragePool (com.microsoft), NHWC ``x``.

    A kernel covering the whole unpadded image is QLinearGlobalAveragePool
    (:func:`ort_f32_mean`).  Otherwise: ``xf = fl32(sx * (x - zx))``; each window
    sums xf in float32, rows then columns, over the cells inside the image;
    divides by the cell count (or KH*KW with ``count_include_pad``);
    ``y = sat(rne(fl32(fl32(sum / sy) + zy)))`` -- the zero point added before rounding.
    """
    x = _int_array(x, "x")
    dt = _dtype(out_dtype)
    kh, kw = (int(k) for k in kernel)
    sh, sw = (int(s) for s in stride)
    top, left, bottom, right = (int(p) for p in padding)
    n, h, w, c = x.shape
    if (kh, kw) == (h, w) and (top, left, bottom, right) == (0, 0, 0, 0):
        return ort_f32_mean(x, x_qp, y_qp, dt, axes=(1, 2))
    sx, zx = _per_tensor(x_qp, "x_qp")
    sy, zy = _per_tensor(y_qp, "y_qp")
    oh = (h + top + bottom - kh) // sh + 1
    ow = (w + left + right - kw) // sw + 1
    xf = np.zeros((n, h + top + bottom + kh, w + left + right + kw, c), dtype=_F32)
    xf[:, top:top + h, left:left + w, :] = _dequantize_f32(x, sx, zx)
    inside = np.zeros((1, xf.shape[1], xf.shape[2], 1), dtype=np.int64)
    inside[:, top:top + h, left:left + w, :] = 1
    acc = np.zeros((n, oh, ow, c), dtype=_F32)
    count = np.zeros((1, oh, ow, 1), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            rows = slice(ky, ky + sh * (oh - 1) + 1, sh)
            cols = slice(kx, kx + sw * (ow - 1) + 1, sw)
            acc = acc + xf[:, rows, cols, :]          # cells outside the image add an exact 0
            count = count + inside[:, rows, cols, :]
    div = _F32(kh * kw) if count_include_pad else count.astype(_F32)
    y = acc / div
    v = (y / _F32(sy)) + _F32(zy)
    info = np.iinfo(dt)
    return np.clip(np.rint(v), info.min, info.max).astype(dt)

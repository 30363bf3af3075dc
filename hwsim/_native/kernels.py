"""Checked bridge to ``hw_gemm`` and ``hw_conv2d``.

Builds ``hw_gemm_args_t`` / ``hw_conv2d_args_t``, ``hw_accum_spec_t`` and
``hw_requant_spec_t`` with ``ffi.new`` after checking every array's dtype,
shape and contiguity (``ValueError`` naming the argument).  Value ranges
(weights for a declared bit width, zero points) are the public layer's job
(:mod:`hwsim.kernels`); C re-checks what could make it read out of bounds.
No arithmetic here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from hwsim._native import c_array, check_status, ffi, lib
from hwsim._native.primitives import requant_spec
from hwsim.types import AccumSpec, Overflow, ZeroPointPlacement

__all__ = ["OPERAND_DTYPES", "OUTPUT_DTYPES", "NativeResult", "accum_spec", "gemm", "conv2d"]

#: numpy dtype -> hw_dtype_t for activations and weights.
OPERAND_DTYPES = {np.dtype(np.int8): 0, np.dtype(np.uint8): 1, np.dtype(np.int16): 2}
#: numpy dtype -> hw_dtype_t for requantised outputs.
OUTPUT_DTYPES = {np.dtype(np.int8): 0, np.dtype(np.uint8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3}


@dataclass
class NativeResult:
    """What one kernel call produced; fields not requested are None."""

    output: np.ndarray | None
    accumulators: np.ndarray | None
    group_events: np.ndarray | None
    acc_events: np.ndarray | None
    out_events: np.ndarray | None
    max_abs_acc: np.ndarray | None


def accum_spec(spec: AccumSpec):
    """A ``hw_accum_spec_t *`` for ``spec`` (read-only for the kernels: one
    struct per distinct spec is built once and shared, saving per-call work)."""
    if not isinstance(spec, AccumSpec):
        raise ValueError(f"accum: expected an AccumSpec, got {type(spec).__name__}")
    return _accum_spec_cached(spec)


@functools.lru_cache(maxsize=64)
def _accum_spec_cached(spec: AccumSpec):
    c = ffi.new("hw_accum_spec_t *")
    c.group = spec.group
    c.group_bits = spec.group_bits
    c.group_overflow = Overflow(spec.group_overflow).c_value
    c.acc_bits = spec.acc_bits
    c.acc_overflow = Overflow(spec.acc_overflow).c_value
    c.input_zero_point = ZeroPointPlacement(spec.input_zero_point).c_value
    c.bias_first = 1 if spec.bias_first else 0
    return c


def _operand_code(arr: np.ndarray, name: str) -> int:
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(arr).__name__}")
    code = OPERAND_DTYPES.get(arr.dtype)
    if code is None:
        raise ValueError(f"{name}: expected dtype int8, uint8 or int16, got {arr.dtype}")
    return code


def _zero_points(zp: np.ndarray, n: int, name: str):
    """(pointer, per_channel flag) for an int32 array of 1 or n zero points."""
    if not isinstance(zp, np.ndarray) or zp.ndim != 1 or zp.shape[0] not in (1, n):
        raise ValueError(f"{name}: expected an int32 array of 1 or {n} zero points")
    return c_array(zp, name, np.int32, "const int32_t *", zp.shape), int(zp.shape[0] == n and n > 1)


def _outputs(shape, n_channels, requant, out_dtype, want_acc, want_counters):
    """Allocate the result arrays and the C pointers into them."""
    res = NativeResult(None, None, None, None, None, None)
    out_ptr = ffi.NULL
    rq_ptr, keep = ffi.NULL, []
    out_code = 0
    if requant is not None:
        out_dtype = np.dtype(out_dtype)
        if out_dtype not in OUTPUT_DTYPES:
            raise ValueError(f"out_dtype: expected int8, uint8, int16 or int32, got {out_dtype}")
        out_code = OUTPUT_DTYPES[out_dtype]
        res.output = np.empty(shape, dtype=out_dtype)
        out_ptr = ffi.cast("void *", ffi.from_buffer(res.output, require_writable=True))
        rq_ptr, keep = requant_spec(requant)
    acc_ptr = ffi.NULL
    if want_acc:
        res.accumulators = np.empty(shape, dtype=np.int64)
        acc_ptr = c_array(res.accumulators, "accumulators", np.int64, "int64_t *", shape, writable=True)
    cnt = ffi.NULL
    if want_counters:
        cnt = ffi.new("hw_counters_t *")
        for field in ("group_events", "acc_events", "out_events", "max_abs_acc"):
            arr = np.zeros(n_channels, dtype=np.int64)
            setattr(res, field, arr)
            setattr(cnt, field, c_array(arr, field, np.int64, "int64_t *", (n_channels,), writable=True))
    return res, out_code, out_ptr, rq_ptr, keep, acc_ptr, cnt


def _bias(bias, n: int):
    if bias is None:
        return ffi.NULL
    return c_array(bias, "bias", np.int64, "const int64_t *", (n,))


def pack_weights(w: np.ndarray, accum: AccumSpec | None = None, zero_point: np.ndarray | None = None):
    """Pre-pack constant weights for the fast paths: ``w`` is [N, K] (GEMM) or
    [O, KH, KW, I] (convolution with groups = 1); ``accum`` the spec the calls
    will use (None: the int32 accumulator), ``zero_point`` int32 [1] or [N]
    weight zero points (None: 0).  Returns a cffi handle freed by the garbage
    collector, or ``ffi.NULL`` when no fast path would use one."""
    code = _operand_code(w, "w")
    spec = ffi.NULL if accum is None else accum_spec(accum)
    n = w.shape[0] if w.ndim else 0
    zp_ptr, zp_per_channel = ffi.NULL, 0
    if zero_point is not None:
        zp_ptr, zp_per_channel = _zero_points(zero_point, n, "zero_point")
    if w.ndim == 2:
        args = ffi.new("hw_gemm_args_t *")
        args.N, args.K = w.shape
        args.b_dtype = code
        args.b = c_array(w, "w", w.dtype, "const void *", w.shape)
        args.ldb = w.shape[1]
        args.b_zero_point, args.b_zp_per_channel = zp_ptr, zp_per_channel
        out = ffi.new("void **")
        check_status(lib.hw_pack_gemm_b(args, spec, out), "hw_pack_gemm_b")
    elif w.ndim == 4:
        args = ffi.new("hw_conv2d_args_t *")
        args.out_c, args.kernel_h, args.kernel_w, args.in_c = w.shape
        args.groups = 1
        args.w_dtype = code
        args.w = c_array(w, "w", w.dtype, "const void *", w.shape)
        args.w_zero_point, args.w_zp_per_channel = zp_ptr, zp_per_channel
        out = ffi.new("void **")
        check_status(lib.hw_pack_conv2d_w(args, spec, out), "hw_pack_conv2d_w")
    else:
        raise ValueError(f"w: expected [N, K] or [O, KH, KW, I] weights, got shape {w.shape}")
    handle = out[0]
    return ffi.NULL if handle == ffi.NULL else ffi.gc(handle, lib.hw_packed_free)


def gemm(a, b, *, a_zero_point, b_zero_point, bias, accum, requant, out_dtype, want_acc, want_counters, n_threads,
         packed=ffi.NULL):
    """Run ``hw_gemm``.  a: [M, K], b: [N, K] (int8/uint8/int16, C-contiguous);
    b_zero_point: int32 [1] or [N]; bias: int64 [N] or None; requant: a
    RequantParams or None."""
    a_code = _operand_code(a, "a")
    b_code = _operand_code(b, "b")
    if a.ndim != 2:
        raise ValueError(f"a: expected a 2-D array [M, K], got shape {a.shape}")
    if b.ndim != 2:
        raise ValueError(f"b: expected a 2-D array [N, K], got shape {b.shape}")
    m, k = a.shape
    n = b.shape[0]
    if b.shape[1] != k:
        raise ValueError(f"b: expected shape [N, {k}] to match a's K = {k}, got {b.shape}")
    if m < 1 or n < 1 or k < 1:
        raise ValueError(f"a, b: M, N and K must be >= 1, got M={m}, N={n}, K={k}")
    args = ffi.new("hw_gemm_args_t *")
    args.M, args.N, args.K = m, n, k
    args.a_dtype, args.b_dtype = a_code, b_code
    args.a = c_array(a, "a", a.dtype, "const void *", a.shape)
    args.b = c_array(b, "b", b.dtype, "const void *", b.shape)
    args.lda, args.ldb = k, k
    args.a_zero_point = int(a_zero_point)
    args.b_zero_point, args.b_zp_per_channel = _zero_points(b_zero_point, n, "b_zero_point")
    args.bias = _bias(bias, n)
    args.packed_b = packed
    args.n_threads = int(n_threads)
    spec = accum_spec(accum)
    res, out_code, out_ptr, rq_ptr, keep, acc_ptr, cnt = _outputs(
        (m, n), n, requant, out_dtype, want_acc, want_counters
    )
    check_status(lib.hw_gemm(args, spec, rq_ptr, out_code, out_ptr, acc_ptr, cnt), "hw_gemm")
    del keep
    return res


def conv2d(
    x, w, *, stride, dilation, padding, groups, out_hw, x_zero_point, w_zero_point, bias, accum, requant,
    out_dtype, want_acc, want_counters, n_threads, packed=ffi.NULL,
):
    """Run ``hw_conv2d``.  x: [B, H, W, C] NHWC; w: [O, KH, KW, C/groups]; the
    geometry (stride, dilation, padding (top, left, bottom, right), groups,
    out_hw) has been validated by the caller."""
    x_code = _operand_code(x, "x")
    w_code = _operand_code(w, "w")
    if x.ndim != 4:
        raise ValueError(f"x: expected a 4-D NHWC array, got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(f"w: expected a 4-D array [O, KH, KW, I/groups], got shape {w.shape}")
    batch, in_h, in_w, in_c = x.shape
    out_c, kh, kw, _ = w.shape
    out_h, out_w = out_hw
    args = ffi.new("hw_conv2d_args_t *")
    args.batch, args.in_h, args.in_w, args.in_c = batch, in_h, in_w, in_c
    args.out_h, args.out_w, args.out_c = out_h, out_w, out_c
    args.kernel_h, args.kernel_w = kh, kw
    args.stride_h, args.stride_w = stride
    args.dilation_h, args.dilation_w = dilation
    args.pad_top, args.pad_left, args.pad_bottom, args.pad_right = padding
    args.groups = groups
    args.x_dtype, args.w_dtype = x_code, w_code
    args.x = c_array(x, "x", x.dtype, "const void *", x.shape)
    args.w = c_array(w, "w", w.dtype, "const void *", w.shape)
    args.x_zero_point = int(x_zero_point)
    args.w_zero_point, args.w_zp_per_channel = _zero_points(w_zero_point, out_c, "w_zero_point")
    args.bias = _bias(bias, out_c)
    args.packed_w = packed if groups == 1 else ffi.NULL
    args.n_threads = int(n_threads)
    spec = accum_spec(accum)
    res, out_code, out_ptr, rq_ptr, keep, acc_ptr, cnt = _outputs(
        (batch, out_h, out_w, out_c), out_c, requant, out_dtype, want_acc, want_counters
    )
    check_status(lib.hw_conv2d(args, spec, rq_ptr, out_code, out_ptr, acc_ptr, cnt), "hw_conv2d")
    del keep
    return res

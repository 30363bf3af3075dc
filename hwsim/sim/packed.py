"""Prepared integer layers: every check, spec and weight packing done once, each call only runs C.

:func:`hwsim.kernels.conv2d` / :func:`~hwsim.kernels.gemm` validate all their
arguments and (for the fast paths) pack the weights on every call.  In a model
the weights, specs and geometry never change between calls, so
:class:`PreparedConv2d` and :class:`PreparedGemm` validate them once with the
same checks as :mod:`hwsim.kernels`, pack the weights once
(``hw_pack_conv2d_w`` / ``hw_pack_gemm_b``) and keep the C argument blocks; a
call checks only the activation (dtype, shape, contiguity) and runs the same C
kernel.  Results are identical to :mod:`hwsim.kernels` (tests hold them to it).
Calls that want accumulators or counters, and split requantisation, go through
:mod:`hwsim.kernels` unchanged.
"""

from __future__ import annotations

import numpy as np

from hwsim import kernels
from hwsim._native import c_array, check_status, ffi, lib
from hwsim._native import kernels as _nk
from hwsim._native.primitives import requant_spec
from hwsim.layer_specs import SplitRequant

__all__ = ["PreparedConv2d", "PreparedGemm"]


#: Work below this many multiply-accumulates per extra thread runs on fewer threads: waking a
#: helper costs tens of microseconds (more on a VM whose second vCPU idles), which small layers
#: never win back.  Bits never depend on the thread count, so this only changes speed.
MIN_MACS_PER_THREAD = 8_000_000


def _threads_for(macs: int, n_threads: int) -> int:
    return max(1, min(int(n_threads), macs // MIN_MACS_PER_THREAD + 1))


class _Prepared:
    """Shared parts: the validated requantisation, zero points, bias and output dtype."""

    def _common(self, w: np.ndarray, n: int, w_zero_point, bias, accum, requant, out_dtype, weight_bits):
        self.zw, self.bias, self.accum, self.requant, self.out_dtype = kernels._channel_params(
            w, n, weight_bits, w_zero_point, "w_zero_point", bias, accum, requant, out_dtype, "w")
        if self.requant is None or isinstance(self.requant, SplitRequant):
            raise ValueError("requant: a prepared layer needs one RequantParams stage")
        self.out_code = _nk.OUTPUT_DTYPES[self.out_dtype]
        self.c_accum = _nk.accum_spec(self.accum)
        self.c_requant, self._rq_keep = requant_spec(self.requant)
        self.w = w
        self.packed = ffi.NULL

    def _own_packed(self, handle) -> None:
        if handle[0] != ffi.NULL:
            self.packed = ffi.gc(handle[0], lib.hw_packed_free)


class PreparedConv2d(_Prepared):
    """:func:`hwsim.kernels.conv2d` with everything but ``x`` fixed (same parameters, same result)."""

    def __init__(self, w, *, in_c: int, x_dtype, stride=1, dilation=1, padding=0, groups=1, x_zero_point=0,
                 w_zero_point=0, bias=None, accum=None, requant=None, out_dtype=None, weight_bits=None):
        w = kernels._operand(w, "w", 4, "[O, KH, KW, C/groups]")
        self.stride = kernels._pair(stride, "stride", 1)
        self.dilation = kernels._pair(dilation, "dilation", 1)
        self.padding = kernels._padding(padding)
        out_c, kh, kw, cg = w.shape
        g = kernels._int(groups, "groups", 1, 2**31 - 1)
        if in_c % g or out_c % g or cg != in_c // g:
            raise ValueError(f"groups: {g} does not fit {in_c} input channels and weights of shape {w.shape}")
        self.x_dtype = np.dtype(x_dtype)
        if self.x_dtype not in _nk.OPERAND_DTYPES:
            raise ValueError(f"x_dtype: expected int8, uint8 or int16, got {self.x_dtype}")
        self.zx = kernels._int(x_zero_point, "x_zero_point", *kernels._dtype_range(self.x_dtype))
        self.in_c, self.groups = in_c, g
        self._common(w, out_c, w_zero_point, bias, accum, requant, out_dtype, weight_bits)
        self.args = ffi.new("hw_conv2d_args_t *")
        a = self.args
        a.in_c, a.out_c, a.kernel_h, a.kernel_w = in_c, out_c, kh, kw
        a.stride_h, a.stride_w = self.stride
        a.dilation_h, a.dilation_w = self.dilation
        a.pad_top, a.pad_left, a.pad_bottom, a.pad_right = self.padding
        a.groups = g
        a.x_dtype, a.w_dtype = _nk.OPERAND_DTYPES[self.x_dtype], _nk.OPERAND_DTYPES[w.dtype]
        a.x_zero_point = self.zx
        a.w = c_array(w, "w", w.dtype, "const void *", w.shape)
        a.w_zero_point = c_array(self.zw, "w_zero_point", np.int32, "const int32_t *", self.zw.shape)
        a.w_zp_per_channel = int(self.zw.shape[0] == out_c and out_c > 1)
        a.bias = ffi.NULL if self.bias is None else c_array(self.bias, "bias", np.int64, "const int64_t *")
        a.packed_w = ffi.NULL
        handle = ffi.new("void **")
        check_status(lib.hw_pack_conv2d_w(a, self.c_accum, handle), "hw_pack_conv2d_w")
        self._own_packed(handle)
        a.packed_w = self.packed

    def __call__(self, x: np.ndarray, n_threads: int = 1) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.dtype != self.x_dtype or x.ndim != 4 or x.shape[3] != self.in_c \
                or not x.flags.c_contiguous or min(x.shape) < 1:
            raise ValueError(f"x: expected a C-contiguous {self.x_dtype} array [batch, H, W, {self.in_c}], got "
                             f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
        batch, in_h, in_w, _ = x.shape
        out_c, kh, kw, _ = self.w.shape
        (sh, sw), (dh, dw), pad = self.stride, self.dilation, self.padding
        span_h = in_h + pad[0] + pad[2] - dh * (kh - 1) - 1
        span_w = in_w + pad[1] + pad[3] - dw * (kw - 1) - 1
        if span_h < 0 or span_w < 0:
            raise ValueError(f"x: input {in_h} x {in_w} is smaller than the dilated kernel with padding {pad}")
        out = np.empty((batch, span_h // sh + 1, span_w // sw + 1, out_c), dtype=self.out_dtype)
        a = ffi.new("hw_conv2d_args_t *", self.args[0])   # a private copy: calls may run concurrently
        a.batch, a.in_h, a.in_w = batch, in_h, in_w
        a.out_h, a.out_w = out.shape[1], out.shape[2]
        a.x = ffi.cast("const void *", ffi.from_buffer(x))
        macs = out.size * kh * kw * (self.in_c // a.groups)
        a.n_threads = _threads_for(macs, n_threads)
        status = lib.hw_conv2d(a, self.c_accum, self.c_requant, self.out_code,
                               ffi.cast("void *", ffi.from_buffer(out, require_writable=True)), ffi.NULL, ffi.NULL)
        check_status(status, "hw_conv2d")
        return out


class PreparedGemm(_Prepared):
    """:func:`hwsim.kernels.gemm` with everything but ``a`` fixed (same parameters, same result)."""

    def __init__(self, b, *, a_dtype, a_zero_point=0, b_zero_point=0, bias=None, accum=None, requant=None,
                 out_dtype=None, weight_bits=None):
        b = kernels._operand(b, "b", 2, "[N, K]")
        self.a_dtype = np.dtype(a_dtype)
        if self.a_dtype not in _nk.OPERAND_DTYPES:
            raise ValueError(f"a_dtype: expected int8, uint8 or int16, got {self.a_dtype}")
        self.za = kernels._int(a_zero_point, "a_zero_point", *kernels._dtype_range(self.a_dtype))
        n, k = b.shape
        self._common(b, n, b_zero_point, bias, accum, requant, out_dtype, weight_bits)
        self.args = ffi.new("hw_gemm_args_t *")
        a = self.args
        a.N, a.K = n, k
        a.a_dtype, a.b_dtype = _nk.OPERAND_DTYPES[self.a_dtype], _nk.OPERAND_DTYPES[b.dtype]
        a.b = c_array(b, "b", b.dtype, "const void *", b.shape)
        a.lda, a.ldb = k, k
        a.a_zero_point = self.za
        a.b_zero_point = c_array(self.zw, "b_zero_point", np.int32, "const int32_t *", self.zw.shape)
        a.b_zp_per_channel = int(self.zw.shape[0] == n and n > 1)
        a.bias = ffi.NULL if self.bias is None else c_array(self.bias, "bias", np.int64, "const int64_t *")
        a.packed_b = ffi.NULL
        handle = ffi.new("void **")
        check_status(lib.hw_pack_gemm_b(a, self.c_accum, handle), "hw_pack_gemm_b")
        self._own_packed(handle)
        a.packed_b = self.packed

    def __call__(self, x: np.ndarray, n_threads: int = 1) -> np.ndarray:
        k = self.w.shape[1]
        if not isinstance(x, np.ndarray) or x.dtype != self.a_dtype or x.ndim != 2 or x.shape[1] != k \
                or not x.flags.c_contiguous or x.shape[0] < 1:
            raise ValueError(f"a: expected a C-contiguous {self.a_dtype} array [M, {k}], got "
                             f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
        out = np.empty((x.shape[0], self.w.shape[0]), dtype=self.out_dtype)
        a = ffi.new("hw_gemm_args_t *", self.args[0])
        a.M = x.shape[0]
        a.a = ffi.cast("const void *", ffi.from_buffer(x))
        a.n_threads = _threads_for(out.size * k, n_threads)
        status = lib.hw_gemm(a, self.c_accum, self.c_requant, self.out_code,
                             ffi.cast("void *", ffi.from_buffer(out, require_writable=True)), ffi.NULL, ffi.NULL)
        check_status(status, "hw_gemm")
        return out

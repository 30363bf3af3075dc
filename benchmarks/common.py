"""Shared helpers for hwsim's speed benchmarks.

* Timing: :func:`best_of` -- the best of 3 passes, each the median of 7 samples
  (the machine is shared; a median rejects bursts, the best pass the slow ones).
* onnxruntime peers: single-op models built with ``onnx.helper`` (MatMulInteger,
  QLinearMatMul, QLinearConv) with constant weights, so onnxruntime prepacks them
  as it does for a real model.
* hwsim: :class:`HwGemm` / :class:`HwConv` call the C kernels (``hw_gemm`` /
  ``hw_conv2d``) with weights packed once (``hw_pack_*``) and every argument
  built up front, so the time is the kernel's, as onnxruntime's is.

Every case also compares hwsim's result with onnxruntime's, element for element:
a benchmark of a wrong kernel is worthless.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from hwsim._native import check_status, ffi, lib
from hwsim._native import kernels as nk
from hwsim.numerics.requant_params import RequantParams
from hwsim.types import AccumSpec, RequantScheme

__all__ = [
    "best_of", "best_of_interleaved", "gmacs", "ort_session", "matmul_integer_model", "qlinear_matmul_model",
    "qlinear_conv_model", "float32_multiplier", "onnxruntime_u8_requant", "HwGemm", "HwConv", "Case", "run_case",
]

# ---------------------------------------------------------------- timing


def _samples(fn: Callable[[], object], samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def best_of(fn: Callable[[], object], passes: int = 3, samples: int = 7) -> float:
    """Seconds per call: the best over `passes` of the median of `samples` calls."""
    return best_of_interleaved([fn], passes, samples)[0][0]


def best_of_interleaved(fns, passes: int = 3, samples: int = 7) -> list[tuple[float, float]]:
    """(best_of seconds, fastest single call) for several callables, their passes
    interleaved (A B A B ...) so a burst of load from other processes hits both
    sides of a ratio alike.  Each pass starts after a short pause and one
    untimed call."""
    for fn in fns:
        fn()  # warm-up: page faults, lazy initialisation, thread pool start
    best = [float("inf")] * len(fns)
    fastest = [float("inf")] * len(fns)
    for _ in range(passes):
        for i, fn in enumerate(fns):
            # let the other side's thread pool go idle first: onnxruntime's workers spin
            # for a while after each run and would compete with the next pass for cores
            time.sleep(0.05)
            fn()
            times = _samples(fn, samples)
            best[i] = min(best[i], statistics.median(times))
            fastest[i] = min(fastest[i], min(times))
    return list(zip(best, fastest))


def gmacs(macs: int, seconds: float) -> float:
    return macs / seconds / 1e9


# ---------------------------------------------------------------- onnxruntime models

_ONNX_TYPE = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8,
              np.dtype(np.int32): TensorProto.INT32, np.dtype(np.float32): TensorProto.FLOAT}


def _model(node, inputs, outputs, initializers) -> onnx.ModelProto:
    graph = helper.make_graph([node], "bench", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _scalar(name: str, value, dtype) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=dtype), name)


def ort_session(model: onnx.ModelProto, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def matmul_integer_model(m: int, a_dtype, b_kn: np.ndarray, a_zero_point: int, b_zero_point: int):
    """Y[int32] = (A - a_zp) @ (B - b_zp); A [m, K] input, B [K, N] constant."""
    k, n = b_kn.shape
    a_dtype = np.dtype(a_dtype)
    node = helper.make_node("MatMulInteger", ["A", "B", "a_zp", "b_zp"], ["Y"])
    return _model(node, [helper.make_tensor_value_info("A", _ONNX_TYPE[a_dtype], [m, k])],
                  [helper.make_tensor_value_info("Y", TensorProto.INT32, [m, n])],
                  [numpy_helper.from_array(b_kn, "B"), _scalar("a_zp", a_zero_point, a_dtype),
                   _scalar("b_zp", b_zero_point, b_kn.dtype)])


def qlinear_matmul_model(m: int, b_kn: np.ndarray, a_scale, a_zp, b_scale, b_zp, y_scale, y_zp):
    """u8 A [m, K] x s8 B [K, N] (constant) -> u8 Y, onnxruntime's float32 requantisation."""
    k, n = b_kn.shape
    node = helper.make_node("QLinearMatMul", ["A", "as", "az", "B", "bs", "bz", "ys", "yz"], ["Y"])
    return _model(node, [helper.make_tensor_value_info("A", TensorProto.UINT8, [m, k])],
                  [helper.make_tensor_value_info("Y", TensorProto.UINT8, [m, n])],
                  [_scalar("as", a_scale, np.float32), _scalar("az", a_zp, np.uint8),
                   numpy_helper.from_array(b_kn, "B"), _scalar("bs", b_scale, np.float32),
                   _scalar("bz", b_zp, np.int8), _scalar("ys", y_scale, np.float32), _scalar("yz", y_zp, np.uint8)])


def qlinear_conv_model(x_shape_nchw, w_oihw: np.ndarray, bias: np.ndarray, x_scale, x_zp, w_scale, w_zp,
                       y_scale, y_zp, pads, strides=(1, 1)):
    """u8 NCHW x, s8 OIHW weights (constant), int32 bias -> u8 NCHW y."""
    b, c, h, w = x_shape_nchw
    o, _, kh, kw = w_oihw.shape
    oh = (h + pads[0] + pads[2] - kh) // strides[0] + 1
    ow = (w + pads[1] + pads[3] - kw) // strides[1] + 1
    node = helper.make_node("QLinearConv", ["X", "xs", "xz", "W", "ws", "wz", "ys", "yz", "B"], ["Y"],
                            pads=list(pads), strides=list(strides), kernel_shape=[kh, kw])
    return _model(node, [helper.make_tensor_value_info("X", TensorProto.UINT8, [b, c, h, w])],
                  [helper.make_tensor_value_info("Y", TensorProto.UINT8, [b, o, oh, ow])],
                  [_scalar("xs", x_scale, np.float32), _scalar("xz", x_zp, np.uint8),
                   numpy_helper.from_array(w_oihw, "W"), _scalar("ws", w_scale, np.float32),
                   _scalar("wz", w_zp, np.int8), _scalar("ys", y_scale, np.float32), _scalar("yz", y_zp, np.uint8),
                   numpy_helper.from_array(bias.astype(np.int32), "B")])


def float32_multiplier(x_scale: float, w_scale: float, y_scale: float) -> float:
    """onnxruntime's requantisation multiplier fl32(fl32(xs * ws) / ys) (SEMANTICS 10.1)."""
    return float(np.float32(np.float32(x_scale) * np.float32(w_scale)) / np.float32(y_scale))


def onnxruntime_u8_requant(x_scale, w_scale, y_scale, y_zp) -> RequantParams:
    return RequantParams(scheme=RequantScheme.FLOAT32, scale=float32_multiplier(x_scale, w_scale, y_scale),
                         zero_point=int(y_zp), out_bits=8, out_signed=False)


# ---------------------------------------------------------------- hwsim through the C API


def _ptr(arr: np.ndarray, ctype: str, writable: bool = False):
    return ffi.cast(ctype, ffi.from_buffer(arr, require_writable=writable))


class _HwCall:
    """Holds every C argument of one kernel call (and the arrays they point into)."""

    def __init__(self, accum: AccumSpec, requant: RequantParams | None, out_shape, want_acc: bool):
        self.keep: list = []
        self.spec = nk.accum_spec(accum)
        self.out = self.acc = None
        self.rq_ptr, self.out_ptr, self.acc_ptr, self.out_code = ffi.NULL, ffi.NULL, ffi.NULL, 0
        if requant is not None:
            self.rq_ptr, keep = nk.requant_spec(requant)
            self.keep += keep
            self.out = np.empty(out_shape, np.uint8 if not requant.out_signed else np.int8)
            self.out_ptr = _ptr(self.out, "void *", True)
            self.out_code = nk.OUTPUT_DTYPES[self.out.dtype]
        if want_acc:
            self.acc = np.empty(out_shape, np.int64)
            self.acc_ptr = _ptr(self.acc, "int64_t *", True)
        self.handle = ffi.new("void **")

    def close(self) -> None:
        if self.handle[0] != ffi.NULL:
            lib.hw_packed_free(self.handle[0])
            self.handle[0] = ffi.NULL


class HwGemm(_HwCall):
    """out = requant(A[M, K] x B[N, K]^T) with B packed once; call it to run."""

    def __init__(self, a, b, *, a_zero_point=0, bias=None, accum=AccumSpec(), requant=None, n_threads=1,
                 want_acc=None, pack=True):
        m, k = a.shape
        n = b.shape[0]
        super().__init__(accum, requant, (m, n), requant is None if want_acc is None else want_acc)
        args = self.args = ffi.new("hw_gemm_args_t *")
        args.M, args.N, args.K = m, n, k
        args.a_dtype, args.b_dtype = nk.OPERAND_DTYPES[a.dtype], nk.OPERAND_DTYPES[b.dtype]
        args.a, args.b = _ptr(a, "const void *"), _ptr(b, "const void *")
        args.lda, args.ldb = k, k
        args.a_zero_point = a_zero_point
        if bias is not None:
            bias = np.ascontiguousarray(bias, dtype=np.int64)
            args.bias = _ptr(bias, "const int64_t *")
        args.n_threads = n_threads
        self.keep += [a, b, bias]
        if pack:
            check_status(lib.hw_pack_gemm_b(args, self.spec, self.handle), "hw_pack_gemm_b")
            args.packed_b = self.handle[0]

    def __call__(self):
        check_status(lib.hw_gemm(self.args, self.spec, self.rq_ptr, self.out_code, self.out_ptr, self.acc_ptr,
                                 ffi.NULL), "hw_gemm")
        return self.out if self.out is not None else self.acc


class HwConv(_HwCall):
    """NHWC conv2d, weights [O, KH, KW, I] packed once; call it to run."""

    def __init__(self, x, w, *, padding=(0, 0, 0, 0), stride=(1, 1), x_zero_point=0, bias=None, accum=AccumSpec(),
                 requant=None, n_threads=1, want_acc=None, pack=True):
        bsz, h, wd, c = x.shape
        o, kh, kw, _ = w.shape
        oh = (h + padding[0] + padding[2] - kh) // stride[0] + 1
        ow = (wd + padding[1] + padding[3] - kw) // stride[1] + 1
        super().__init__(accum, requant, (bsz, oh, ow, o), requant is None if want_acc is None else want_acc)
        args = self.args = ffi.new("hw_conv2d_args_t *")
        for name, value in dict(batch=bsz, in_h=h, in_w=wd, in_c=c, out_h=oh, out_w=ow, out_c=o, kernel_h=kh,
                                kernel_w=kw, stride_h=stride[0], stride_w=stride[1], dilation_h=1, dilation_w=1,
                                pad_top=padding[0], pad_left=padding[1], pad_bottom=padding[2],
                                pad_right=padding[3], groups=1, x_zero_point=x_zero_point,
                                n_threads=n_threads).items():
            setattr(args, name, value)
        args.x_dtype, args.w_dtype = nk.OPERAND_DTYPES[x.dtype], nk.OPERAND_DTYPES[w.dtype]
        args.x, args.w = _ptr(x, "const void *"), _ptr(w, "const void *")
        if bias is not None:
            bias = np.ascontiguousarray(bias, dtype=np.int64)
            args.bias = _ptr(bias, "const int64_t *")
        self.keep += [x, w, bias]
        if pack:
            check_status(lib.hw_pack_conv2d_w(args, self.spec, self.handle), "hw_pack_conv2d_w")
            args.packed_w = self.handle[0]

    def __call__(self):
        check_status(lib.hw_conv2d(self.args, self.spec, self.rq_ptr, self.out_code, self.out_ptr, self.acc_ptr,
                                   ffi.NULL), "hw_conv2d")
        return self.out if self.out is not None else self.acc


# ---------------------------------------------------------------- one benchmark row


@dataclass
class Case:
    """One row: hwsim and its onnxruntime peer on the same data.

    ``hwsim(threads)`` and ``peer(threads)`` each return a zero-argument callable that
    runs once and returns its result; ``same(hwsim_result, peer_result)`` says whether
    the two agree (None when they are not meant to be compared bit for bit).
    """

    name: str
    macs: int
    hwsim: Callable[[int], Callable[[], np.ndarray]]
    peer: Callable[[int], Callable[[], np.ndarray]]
    same: Callable[[np.ndarray, np.ndarray], bool] | None = None
    peer_name: str = "onnxruntime"
    bar: float | None = None          # required hwsim / peer ratio, if the issue sets one


def run_case(case: Case, threads: int) -> dict:
    """Time both sides, passes interleaved; compare their results first."""
    hw = case.hwsim(threads)
    peer = case.peer(threads)
    exact = None if case.same is None else bool(case.same(np.array(hw()), np.array(peer())))
    (t_hw, fast_hw), (t_peer, fast_peer) = best_of_interleaved([hw, peer])
    close = getattr(hw, "close", None)
    if close:
        close()
    return dict(name=case.name, threads=threads, hwsim=gmacs(case.macs, t_hw), peer=gmacs(case.macs, t_peer),
                ratio=t_peer / t_hw, fastest_ratio=fast_peer / fast_hw, exact=exact, bar=case.bar,
                peer_name=case.peer_name)

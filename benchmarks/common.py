"""Shared helpers for hwsim's speed benchmarks.

* Timing: :func:`best_of` -- the best of 3 passes, each the median of 7 samples
  (the machine is shared; a median rejects bursts, the best pass the slow ones).
* onnxruntime peers: single-op models built with ``onnx.helper`` (MatMulInteger,
  QLinearMatMul, QLinearConv) with constant weights, so onnxruntime prepacks them
  as it does for a real model.
* hwsim: :func:`hw_gemm` / :func:`hw_conv` call the public API
  (``hwsim.kernels.gemm`` / ``conv2d``) with weights packed once by
  ``pack_weights(w, accum)``: the time includes hwsim's argument checks and
  output allocation, as a user's call would (onnxruntime's includes its own
  session.run overhead).

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

from hwsim.kernels import conv2d, gemm, pack_weights
from hwsim.numerics.requant_params import RequantParams
from hwsim.sim.packed import PreparedConv2d, PreparedGemm
from hwsim.types import AccumSpec, RequantScheme

__all__ = [
    "best_of", "best_of_interleaved", "gmacs", "ort_session", "matmul_integer_model", "qlinear_matmul_model",
    "qlinear_conv_model", "float32_multiplier", "onnxruntime_u8_requant", "hw_gemm", "hw_conv", "Case", "run_case", "print_table",
]

# ---------------------------------------------------------------- timing


def _samples(fn: Callable[[], object], samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def best_of(fn: Callable[[], object], passes: int = 5, samples: int = 7) -> float:
    """Seconds per call: the best over `passes` of the median of `samples` calls."""
    return best_of_interleaved([fn], passes, samples)[0][0]


def best_of_interleaved(fns, passes: int = 5, samples: int = 7) -> list[tuple[float, float, list[float]]]:
    """(best_of seconds, fastest single call, every pass's median) for several
    callables, their passes interleaved (A B A B ...) so a burst of load from
    other processes hits both sides of a ratio alike.  Each pass starts after a
    short pause and one untimed call."""
    for fn in fns:
        fn()  # warm-up: page faults, lazy initialisation, thread pool start
    medians: list[list[float]] = [[] for _ in fns]
    fastest = [float("inf")] * len(fns)
    for _ in range(passes):
        for i, fn in enumerate(fns):
            # let the other side's thread pool go idle first: onnxruntime's workers spin
            # for a while after each run and would compete with the next pass for cores
            time.sleep(0.05)
            fn()
            times = _samples(fn, samples)
            medians[i].append(statistics.median(times))
            fastest[i] = min(fastest[i], min(times))
    return [(min(m), f, m) for m, f in zip(medians, fastest)]


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
                       y_scale, y_zp, pads, strides=(1, 1), group=1):
    """u8 NCHW x, s8 OIHW weights (constant), int32 bias -> u8 NCHW y."""
    b, c, h, w = x_shape_nchw
    o, _, kh, kw = w_oihw.shape
    oh = (h + pads[0] + pads[2] - kh) // strides[0] + 1
    ow = (w + pads[1] + pads[3] - kw) // strides[1] + 1
    node = helper.make_node("QLinearConv", ["X", "xs", "xz", "W", "ws", "wz", "ys", "yz", "B"], ["Y"],
                            pads=list(pads), strides=list(strides), kernel_shape=[kh, kw], group=group)
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


# ---------------------------------------------------------------- hwsim through its public API


def hw_gemm(a, b, *, accum: AccumSpec = AccumSpec(), n_threads: int = 1, **kwargs) -> Callable[[], np.ndarray]:
    """A callable running hwsim's GEMM on ``a``.  With a requantisation stage it is a
    prepared layer (``hwsim.sim.packed.PreparedGemm``: checks, specs and weight packing
    once, as ``hwsim.simulate`` runs a model's layers and as onnxruntime prepacks its
    initializers); without one (raw accumulators) ``hwsim.kernels.gemm`` with weights
    packed once by ``pack_weights``."""
    if kwargs.get("requant") is not None:
        layer = PreparedGemm(b, a_dtype=a.dtype, accum=accum, **kwargs)
        return lambda: layer(a, n_threads)
    packed = pack_weights(b, accum, kwargs.get("b_zero_point", 0))
    return lambda: gemm(a, packed, accum=accum, n_threads=n_threads, **kwargs)


def hw_conv(x, w, *, accum: AccumSpec = AccumSpec(), n_threads: int = 1, **kwargs) -> Callable[[], np.ndarray]:
    """Likewise for convolution (``PreparedConv2d`` with a requantisation stage,
    else ``hwsim.kernels.conv2d``; grouped / depthwise weights are read in place)."""
    if kwargs.get("requant") is not None:
        layer = PreparedConv2d(w, in_c=x.shape[3], x_dtype=x.dtype, accum=accum, **kwargs)
        return lambda: layer(x, n_threads)
    groups = kwargs.get("groups", 1)
    weights = pack_weights(w, accum, kwargs.get("w_zero_point", 0)) if groups == 1 else w
    return lambda: conv2d(x, weights, accum=accum, n_threads=n_threads, **kwargs)


# ---------------------------------------------------------------- one benchmark row


@dataclass
class Case:
    """One row: hwsim and its onnxruntime peer on the same data.

    ``hwsim(threads)`` and ``peer(threads)`` each return a zero-argument callable that
    runs once and returns its result; ``same(hwsim_result, peer_result)`` says whether
    the two agree (None when they are not meant to be compared bit for bit).
    The bar is either a ratio hwsim / peer (``bar``) or an absolute speed in
    GMAC/s per thread (``bar_gmacs``), or neither.
    """

    name: str
    macs: int
    hwsim: Callable[[int], Callable[[], np.ndarray]]
    peer: Callable[[int], Callable[[], np.ndarray]]
    same: Callable[[np.ndarray, np.ndarray], bool] | None = None
    peer_name: str = "onnxruntime"
    bar: float | None = None          # required hwsim / peer ratio, if the issue sets one
    bar_gmacs: float | None = None    # required hwsim GMAC/s per thread, if the issue sets one


def run_case(case: Case, threads: int, passes: int = 5) -> dict:
    """Time both sides, passes interleaved; compare their results first.  The
    ratio is best hwsim pass against best peer pass; the spread is the range of
    the per-pass ratios (pass i of hwsim against pass i of the peer)."""
    hw = case.hwsim(threads)
    peer = case.peer(threads)
    result = np.array(hw())
    exact = None if case.same is None else bool(case.same(result, np.array(peer())))
    (t_hw, fast_hw, m_hw), (t_peer, fast_peer, m_peer) = best_of_interleaved([hw, peer], passes)
    per_pass = [p / h for h, p in zip(m_hw, m_peer)]
    return dict(name=case.name, threads=threads, hwsim=gmacs(case.macs, t_hw), peer=gmacs(case.macs, t_peer),
                ratio=t_peer / t_hw, spread=(min(per_pass), max(per_pass)), fastest_ratio=fast_peer / fast_hw,
                exact=exact, peer_name=case.peer_name, result=result)


def _verdict(case: Case, r: dict, cores: float) -> tuple[str, bool | None]:
    """(bar text, passed) -- an absolute bar is GMAC/s per core times ``cores``."""
    if case.bar is not None:
        return f"{case.bar:.2f}x", r["ratio"] >= case.bar
    if case.bar_gmacs is not None:
        need = case.bar_gmacs * cores
        return f"{need:.0f}G", r["hwsim"] >= need
    return "", None


def print_table(cases: list[Case], thread_counts, passes: int = 5) -> int:
    """Run every case for every thread count and print one table; returns the
    number of rows that missed their bar, disagreed with onnxruntime, or gave
    other bits with more threads than with the first thread count."""
    print(f"{'case':48s} {'thr':>3s} {'hwsim':>7s} {'onnxrt':>7s} {'ratio':>6s} {'spread':>11s} {'bar':>6s} "
          f"{'':4s} {'same':>4s} {'thr-eq':>6s}")
    failed = 0
    first: dict[str, np.ndarray] = {}
    for case in cases:
        peer_1 = None
        for threads in thread_counts:
            r = run_case(case, threads, passes)
            if threads == 1:
                peer_1 = r["peer"]
            # cores this run really had: the peer's own speed-up over 1 thread (the
            # machine is shared; another job may hold the second core)
            cores = 1.0 if threads == 1 or peer_1 is None else max(1.0, min(float(threads), r["peer"] / peer_1))
            bar, passed = _verdict(case, r, cores)
            verdict = "" if passed is None else ("PASS" if passed else "MISS")
            same = "-" if r["exact"] is None else ("yes" if r["exact"] else "NO")
            if case.name not in first:
                first[case.name] = r["result"]
                thr_eq = "-"
            else:
                thr_eq = "yes" if np.array_equal(first[case.name], r["result"]) else "NO"
            failed += verdict == "MISS" or same == "NO" or thr_eq == "NO"
            lo, hi = r["spread"]
            print(f"{r['name']:48s} {threads:3d} {r['hwsim']:7.1f} {r['peer']:7.1f} {r['ratio']:6.2f} "
                  f"{lo:5.2f}-{hi:5.2f} {bar:>6s} {verdict:4s} {same:>4s} {thr_eq:>6s}", flush=True)
    print("GMAC/s from the best of the interleaved passes (each a 7-call median); spread = range of the "
          "per-pass ratios; bar: x = ratio to onnxruntime, G = GMAC/s (the per-core bar times the cores the run "
          "had, judged by onnxruntime's own speed-up over 1 thread); same = bits equal onnxruntime's; "
          "thr-eq = bits equal the first thread count's.")
    return failed

"""Speed of hwsim's narrow-accumulator and depthwise fast paths next to onnxruntime.

    python benchmarks/bench_narrow.py [--quick] [--threads 1 2] [--only TEXT] [--passes 5]

One table (1 and 2 threads; GMAC/s; hwsim / onnxruntime in the same run, passes
interleaved, with the spread of the per-pass ratios; the bar of issue 2 and
PASS/MISS):
  * GEMM 1024^3 sat16 (bar 60 GMAC/s per thread) and sat24 on data that
    saturate (bar 18 GMAC/s per thread), u8 x s8, vs MatMulInteger u8s8;
  * sat24 where every 128-step block is proven unable to saturate (random u8 x
    s8 data), so it runs on VPDPBUSD: GEMM 1024^3, GEMM 128x768x3072, conv 3x3
    64->64 at 56x56 and conv 1x1 256->256 at 28x28 (bar 0.70x onnxruntime; the
    arithmetic is then onnxruntime's, so the bits are compared);
  * conv 3x3 sat16 (bar 60 GMAC/s per thread);
  * depthwise 3x3, 144 channels at 56x56, int32 (bar 0.80x, bits compared),
    sat16 / sat24 (shown for scale), vs QLinearConv with group = 144.
hwsim runs through its public API (hwsim.kernels.gemm / conv2d) with weights
packed once for the row's accumulator (pack_weights(w, accum)), as onnxruntime
prepacks its initializers.  The machine is shared with other jobs: read the
ratios, which come from interleaved passes of the same run.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # idle BLAS threads would spin on the shared cores
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from common import (  # noqa: E402
    Case, hw_conv, hw_gemm, matmul_integer_model, onnxruntime_u8_requant, ort_session, print_table,
    qlinear_conv_model,
)

from hwsim._native import lib  # noqa: E402
from hwsim.types import AccumSpec, Overflow  # noqa: E402

SAT16 = AccumSpec(acc_bits=16, acc_overflow=Overflow.SATURATE, bias_first=True)
SAT24 = AccumSpec(acc_bits=24, acc_overflow=Overflow.SATURATE, bias_first=True)
INT32 = AccumSpec()
Q = dict(x_scale=0.02, x_zp=7, w_scale=0.004, w_zp=0, y_scale=0.05, y_zp=128)


def _equal(x, y) -> bool:
    return x.shape == y.shape and bool(np.array_equal(x.astype(np.int64), y.astype(np.int64)))


def gemm_case(name, a, b, accum, *, bar=None, bar_gmacs=None, compare=False) -> Case:
    """hwsim's int64 accumulators vs MatMulInteger's int32 (zero points 0)."""
    m, k = a.shape
    model = matmul_integer_model(m, a.dtype, np.ascontiguousarray(b.T), 0, 0)

    def peer(threads):
        sess = ort_session(model, threads)
        return lambda: sess.run(None, {"A": a})[0]

    return Case(name, m * b.shape[0] * k, lambda t: hw_gemm(a, b, accum=accum, n_threads=t), peer,
                _equal if compare else None, bar=bar, bar_gmacs=bar_gmacs)


def conv_case(name, x, w, bias, accum, *, groups=1, pad=1, bar=None, bar_gmacs=None, compare=False) -> Case:
    """u8 NHWC conv requantised with onnxruntime's float32 scheme vs QLinearConv."""
    b, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    pads = (pad, pad, pad, pad)
    model = qlinear_conv_model((b, c, h, wd), np.ascontiguousarray(w.transpose(0, 3, 1, 2)), bias, pads=pads,
                               group=groups, **Q)
    rq = onnxruntime_u8_requant(Q["x_scale"], Q["w_scale"], Q["y_scale"], Q["y_zp"])
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1

    def peer(threads):
        sess = ort_session(model, threads)
        return lambda: sess.run(None, {"X": x_nchw})[0].transpose(0, 2, 3, 1)

    def hwsim(threads):
        return hw_conv(x, w, padding=pads, groups=groups, x_zero_point=Q["x_zp"], bias=bias, accum=accum,
                       requant=rq, n_threads=threads)

    return Case(name, b * oh * ow * o * kh * kw * (c // groups), hwsim, peer, _equal if compare else None, bar=bar,
                bar_gmacs=bar_gmacs)


def cases(quick: bool) -> list[Case]:
    rng = np.random.default_rng(0)
    n = 512 if quick else 1024
    a = rng.integers(0, 256, (n, n)).astype(np.uint8)
    b = rng.integers(-128, 128, (n, n)).astype(np.int8)
    a_sat = a.copy()
    a_sat[:, : n // 2] = 255          # long same-sign runs: most blocks cannot be proven safe
    b_sat = b.copy()
    b_sat[:, : n // 2] = 127
    a_tall = rng.integers(0, 256, (128, 768)).astype(np.uint8)
    b_wide = rng.integers(-128, 128, (3072, 768)).astype(np.int8)
    x = rng.integers(0, 256, (1, 56, 56, 64)).astype(np.uint8)
    w = rng.integers(-127, 128, (64, 3, 3, 64)).astype(np.int8)
    bias = rng.integers(-1000, 1000, 64).astype(np.int32)
    x1 = rng.integers(0, 256, (1, 28, 28, 256)).astype(np.uint8)
    w1 = rng.integers(-127, 128, (256, 1, 1, 256)).astype(np.int8)
    bias1 = rng.integers(-1000, 1000, 256).astype(np.int32)
    xd = rng.integers(0, 256, (1, 56, 56, 144)).astype(np.uint8)
    wd = rng.integers(-127, 128, (144, 3, 3, 1)).astype(np.int8)
    bd = rng.integers(-1000, 1000, 144).astype(np.int32)
    return [
        gemm_case(f"GEMM {n}^3 sat16", a, b, SAT16, bar_gmacs=60),
        gemm_case(f"GEMM {n}^3 sat24 saturating", a_sat, b_sat, SAT24, bar_gmacs=18),
        gemm_case(f"GEMM {n}^3 sat24 guarded (bound holds)", a, b, SAT24, bar=0.70, compare=True),
        gemm_case("GEMM 128x768x3072 sat24 guarded", a_tall, b_wide, SAT24, bar=0.70, compare=True),
        conv_case("conv 3x3 64->64 56x56 sat16", x, w, bias, SAT16, bar_gmacs=60),
        conv_case("conv 3x3 64->64 56x56 sat24 guarded", x, w, bias, SAT24, bar=0.70, compare=True),
        conv_case("conv 1x1 256->256 28x28 sat24 guarded", x1, w1, bias1, SAT24, pad=0, bar=0.70, compare=True),
        conv_case("depthwise 3x3 144ch 56x56 int32", xd, wd, bd, INT32, groups=144, bar=0.80, compare=True),
        conv_case("depthwise 3x3 144ch 56x56 sat16", xd, wd, bd, SAT16, groups=144),
        conv_case("depthwise 3x3 144ch 56x56 sat24", xd, wd, bd, SAT24, groups=144, compare=True),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="GEMM 512^3 instead of 1024^3, for a fast look")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", default="", help="run only rows whose name contains this text")
    ap.add_argument("--passes", type=int, default=5, help="interleaved timing passes per row (default 5)")
    args = ap.parse_args(argv)
    print(f"onnxruntime {ort.__version__}; hwsim CPU features 0x{lib.hw_cpu_features():x}; "
          f"{args.passes} interleaved passes per row")
    rows = [c for c in cases(args.quick) if args.only in c.name]
    return 1 if print_table(rows, args.threads, args.passes) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Kernel speed: hwsim's int32-exact and x86-avx2 fast paths against onnxruntime.

    python benchmarks/bench_kernels.py [--threads 1 2] [--only SUBSTRING]

Prints one table: per row and thread count, GMAC/s of hwsim (public API,
weights packed once) and of onnxruntime on the same data in the same process,
their ratio and its spread over the passes, whether the two results are
identical, and the bar issue 2 sets (int32 profiles >= 0.70x onnxruntime u8s8; s8s8 >= 5x
onnxruntime's s8s8).  The machine may be shared: absolute numbers are noisy,
ratios taken in one run much less so.

Other kernels add rows by appending a function returning ``list[Case]`` to
``CASE_BUILDERS`` (see benchmarks/common.py), e.g. the depthwise / sat16 /
sat24 rows of bench_narrow.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402
    Case, hw_conv, hw_gemm, matmul_integer_model, onnxruntime_u8_requant, ort_session, print_table,
    qlinear_conv_model, qlinear_matmul_model,
)

from hwsim._native import lib  # noqa: E402
from hwsim.types import AccumSpec, Overflow, ZeroPointPlacement  # noqa: E402

INT32 = AccumSpec()   # exact products, 32-bit wrapping accumulator (onnxruntime-x86, VNNI)
X86_AVX2 = AccumSpec(group=2, group_bits=16, group_overflow=Overflow.SATURATE,
                     input_zero_point=ZeroPointPlacement.FOLDED_INTO_BIAS)
RNG = np.random.default_rng(2026)


def _equal(x, y) -> bool:
    return x.shape == y.shape and bool(np.array_equal(x.astype(np.int64), y.astype(np.int64)))


def matmul_integer_case(name, m, k, n, a_dtype, a_zp, accum=INT32, bar=None, compare=True) -> Case:
    info = np.iinfo(a_dtype)
    a = RNG.integers(info.min, info.max + 1, (m, k)).astype(a_dtype)
    b = RNG.integers(-128, 128, (n, k)).astype(np.int8)
    b_kn = np.ascontiguousarray(b.T)
    model = matmul_integer_model(m, a_dtype, b_kn, a_zp, 0)

    def peer(threads):
        sess = ort_session(model, threads)
        return lambda: sess.run(None, {"A": a})[0]

    return Case(name, m * n * k, lambda t: hw_gemm(a, b, a_zero_point=a_zp, accum=accum, n_threads=t), peer,
                _equal if compare else None, bar=bar)


def qlinear_matmul_case(name, m, k, n, bar) -> Case:
    a = RNG.integers(0, 256, (m, k)).astype(np.uint8)
    b = RNG.integers(-128, 128, (n, k)).astype(np.int8)
    scales = dict(a_scale=0.02, a_zp=121, b_scale=0.005, b_zp=0, y_scale=0.17, y_zp=128)
    model = qlinear_matmul_model(m, np.ascontiguousarray(b.T), **scales)
    rq = onnxruntime_u8_requant(scales["a_scale"], scales["b_scale"], scales["y_scale"], scales["y_zp"])

    def peer(threads):
        sess = ort_session(model, threads)
        return lambda: sess.run(None, {"A": a})[0]

    return Case(name, m * n * k, lambda t: hw_gemm(a, b, a_zero_point=121, requant=rq, n_threads=t), peer, _equal,
                bar=bar)


def qlinear_conv_case(name, hw, c, o, kernel, pad, bar) -> Case:
    x = RNG.integers(0, 256, (1, hw, hw, c)).astype(np.uint8)
    w = RNG.integers(-128, 128, (o, kernel, kernel, c)).astype(np.int8)
    bias = RNG.integers(-2000, 2000, o).astype(np.int32)
    q = dict(x_scale=0.02, x_zp=117, w_scale=0.004, w_zp=0, y_scale=0.25, y_zp=128)
    pads = (pad, pad, pad, pad)
    model = qlinear_conv_model((1, c, hw, hw), np.ascontiguousarray(w.transpose(0, 3, 1, 2)), bias, pads=pads, **q)
    rq = onnxruntime_u8_requant(q["x_scale"], q["w_scale"], q["y_scale"], q["y_zp"])
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    out_hw = hw + 2 * pad - kernel + 1

    def peer(threads):
        sess = ort_session(model, threads)
        return lambda: sess.run(None, {"X": x_nchw})[0].transpose(0, 2, 3, 1)

    def hwsim(threads):
        return hw_conv(x, w, padding=pads, x_zero_point=q["x_zp"], bias=bias, requant=rq, n_threads=threads)

    return Case(name, out_hw * out_hw * o * kernel * kernel * c, hwsim, peer, _equal, bar=bar)


def default_cases() -> list[Case]:
    return [
        matmul_integer_case("GEMM 1024^3 u8s8 (MatMulInteger)", 1024, 1024, 1024, np.uint8, 121, bar=0.70),
        matmul_integer_case("GEMM 1024^3 s8s8 (MatMulInteger)", 1024, 1024, 1024, np.int8, -7, bar=5.0),
        qlinear_matmul_case("GEMM 1024^3 u8s8 -> u8 (QLinearMatMul)", 1024, 1024, 1024, bar=0.70),
        qlinear_conv_case("conv 3x3 64->64 56x56 (QLinearConv)", 56, 64, 64, 3, 1, bar=0.70),
        qlinear_conv_case("conv 1x1 256->256 28x28 (QLinearConv)", 28, 256, 256, 1, 0, bar=0.70),
        matmul_integer_case("GEMM 128x768x3072 u8s8 (MatMulInteger)", 128, 768, 3072, np.uint8, 121, bar=0.70),
        # x86-avx2 profile (VPMADDUBSW pair saturation) against onnxruntime's exact VNNI u8s8:
        # a different arithmetic, so no bit comparison and no bar -- shown for scale.
        matmul_integer_case("GEMM 1024^3 x86-avx2 pair-sat vs ORT u8s8", 1024, 1024, 1024, np.uint8, 121,
                            accum=X86_AVX2, compare=False),
    ]


#: Functions returning more rows (another kernel's benchmark may append here).
CASE_BUILDERS: list[Callable[[], list[Case]]] = [default_cases]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", default="", help="run only rows whose name contains this text")
    ap.add_argument("--passes", type=int, default=5, help="interleaved timing passes per row (default 5)")
    ap.add_argument("--feature-limit", type=lambda v: int(v, 0), default=None,
                    help="ISA mask for hwsim (hw_set_feature_limit), e.g. 0x9 = AVX2 + AVX-VNNI, 0 = portable C")
    args = ap.parse_args(argv)
    if args.feature_limit is not None:
        lib.hw_set_feature_limit(args.feature_limit)
    cases = [c for build in CASE_BUILDERS for c in build() if args.only in c.name]
    limit = "" if args.feature_limit is None else f", limited to 0x{args.feature_limit:x}"
    print(f"CPU features 0x{lib.hw_cpu_features():x}{limit} (1 AVX2, 2 AVX512BW, 4 AVX512_VNNI, 8 AVX_VNNI); "
          f"{args.passes} interleaved passes per row")
    failed = print_table(cases, args.threads, args.passes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

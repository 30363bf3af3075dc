"""Whole-model speed: EfficientNet-Lite0 (QDQ u8s8, per-channel) through hwsim.simulate with the
onnxruntime-x86 target against onnxruntime in the same process.

    python benchmarks/bench_model.py [--threads 1 2] [--repeats 30]

Builds the QDQ model with onnxruntime.quantization.quantize_static on the
calibration crops in ../shared/models (cached in a temporary directory), checks
that hwsim's logits equal onnxruntime's bit for bit, then times one image:
interleaved runs of both engines, reporting the median and the fastest run of
each and their ratio (the machine may be shared; the ratio of fastest runs is
the least noisy figure).  Bar for issue 3: hwsim within 3x of onnxruntime.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

# ../shared next to the repository; HWSIM_SHARED overrides it (e.g. from a git worktree elsewhere)
SHARED = pathlib.Path(os.environ.get("HWSIM_SHARED", pathlib.Path(__file__).resolve().parents[2] / "shared")) / "models"


def build_qdq(path: pathlib.Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    crops = np.load(SHARED / "efficientnet_lite0_calib.npz")["input"]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"input": crops[i:i + 1]} for i in range(len(crops))])

        def get_next(self):
            return next(self._it, None)

    quantize_static(str(SHARED / "efficientnet_lite0_fp32.onnx"), str(path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"needs {SHARED} (the shared models)", file=sys.stderr)
        return 2
    import onnxruntime as ort

    import hwsim

    path = pathlib.Path(tempfile.gettempdir()) / "hwsim_bench_effnet_lite0_qdq_u8s8.onnx"
    if not path.exists():
        build_qdq(path)
    graph = hwsim.load_model(path)
    target = hwsim.load_target("onnxruntime-x86")
    # not a calibration crop: the first crop mirrored left-right
    x = np.ascontiguousarray(np.load(SHARED / "efficientnet_lite0_calib.npz")["input"][:1, :, :, ::-1])
    print(f"EfficientNet-Lite0 QDQ u8s8 per-channel, one image; {args.repeats} interleaved runs per engine")
    print(f"{'threads':>7}  {'onnxruntime ms (median / best)':>31}  {'hwsim ms (median / best)':>25}  "
          f"{'ratio median':>12}  {'ratio best':>10}  {'bit-exact':>9}  bar <= 3x")
    for n in args.threads:
        so = ort.SessionOptions()
        so.intra_op_num_threads = n
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        want = sess.run(None, {"input": x})[0]
        got = hwsim.simulate(graph, target, {"input": x}, n_threads=n).outputs["logits"]
        exact = bool(np.array_equal(got.view(np.int32), want.view(np.int32)))
        t_ort, t_hw = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            sess.run(None, {"input": x})
            t1 = time.perf_counter()
            hwsim.simulate(graph, target, {"input": x}, n_threads=n)
            t2 = time.perf_counter()
            t_ort.append((t1 - t0) * 1e3)
            t_hw.append((t2 - t1) * 1e3)
        mo, bo, mh, bh = np.median(t_ort), min(t_ort), np.median(t_hw), min(t_hw)
        ok = "yes" if bh / bo <= 3 else "NO"
        print(f"{n:>7}  {mo:>14.2f} / {bo:<14.2f}  {mh:>12.2f} / {bh:<10.2f}  {mh / mo:>12.2f}  {bh / bo:>10.2f}  "
              f"{'yes' if exact else 'NO':>9}  {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

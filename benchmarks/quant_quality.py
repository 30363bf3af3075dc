"""Quantization quality: hwsim.quantize on EfficientNet-Lite0 against onnxruntime's quantize_static.

    nice python benchmarks/quant_quality.py [--methods minmax entropy ...] [--json results.json]

Calibrates on ../shared/models/efficientnet_lite0_calib.npz (16 crops; HWSIM_SHARED
overrides the directory as in bench_model.py) and evaluates on *different* crops
made here from the same bundled photographs (scikit-image's astronaut, chelsea,
coffee, rocket, camera; scikit-learn's china.jpg and flower.jpg): square crops of
0.55 and 0.9 of the short side centred at (0.3, 0.6), (0.6, 0.3) and (0.5, 0.75),
not mirrored -- the calibration crops use 1.0 / 0.8 / 0.65 at (0.5, 0.5),
(0.35, 0.35), (0.45, 0.55), (0.65, 0.65), half of them mirrored.  Needs
scikit-image (``pip install scikit-image``; a benchmark dependency, not hwsim's).

For every activation method x weight configuration, the model is quantized with
hwsim.quantize and run with hwsim.simulate on onnxruntime-x86 (the bit-exact
onnxruntime target; W4A8 per-group:32 runs on cpu-w4a8-blocked), and compared
with the float model on the evaluation crops: SQNR of the logits (dB, over all
crops) and top-1 agreement with the float model.  onnxruntime's quantize_static
(MinMax, QDQ, u8 activations, s8 weights, per-channel and per-tensor) on the same
calibration crops, run by onnxruntime, is the peer.  Prints the table and whether
each bar of issue 4 is met.  Every row, including "+ CLE (ReLU6->ReLU)" (whose
quantized layers approximate a float model with ReLU in place of the equalized
pairs' ReLU6), is measured against the ORIGINAL float model's logits; the
script also prints how far that ReLU float model itself is from the original.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

SHARED = pathlib.Path(os.environ.get("HWSIM_SHARED", pathlib.Path(__file__).resolve().parents[2] / "shared")) / "models"
MODEL = "efficientnet_lite0_fp32.onnx"
CALIB = "efficientnet_lite0_calib.npz"
METHODS = ("minmax", "percentile", "entropy", "mse", "aciq", "histogram")
#: (label, target, quantize keyword arguments)
CONFIGS = (
    ("W8A8 per-tensor", "onnxruntime-x86", dict(granularity="per-tensor")),
    ("W8A8 per-channel", "onnxruntime-x86", dict(granularity="per-channel")),
    ("W8A8 per-tensor + CLE", "onnxruntime-x86", dict(granularity="per-tensor", ptq="cle")),
    ("W8A8 per-tensor + CLE (ReLU6->ReLU)", "onnxruntime-x86", dict(granularity="per-tensor", ptq="cle_relu")),
    ("W8A8 per-channel + bias corr.", "onnxruntime-x86", dict(granularity="per-channel", ptq="bias_correction")),
    ("W4A8 per-group:32", "cpu-w4a8-blocked", dict(bits="W4A8", granularity="per-group:32")),
    ("W4A8 per-group:32 + bias corr.", "cpu-w4a8-blocked",
     dict(bits="W4A8", granularity="per-group:32", ptq="bias_correction")),
)
#: with --adaround (slow: minutes per model on 2 cores): AdaRound rows, for the methods given
ADAROUND_CONFIGS = (
    ("W8A8 per-channel + AdaRound", "onnxruntime-x86", dict(granularity="per-channel", ptq="adaround")),
    ("W4A8 per-group:32 + AdaRound", "cpu-w4a8-blocked", dict(bits="W4A8", granularity="per-group:32", ptq="adaround")),
)
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)
EVAL_SCALES = (0.55, 0.9)
EVAL_CENTRES = ((0.3, 0.6), (0.6, 0.3), (0.5, 0.75))


def evaluation_crops() -> tuple[np.ndarray, list]:
    """[N, 3, 224, 224] preprocessed crops (the model's normalisation) and their names."""
    import skimage.data
    from skimage.transform import resize
    from sklearn.datasets import load_sample_images

    images = {name: getattr(skimage.data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket", "camera")}
    sample = load_sample_images()
    for fname, img in zip(sample.filenames, sample.images):
        images[pathlib.Path(fname).name] = img
    crops, names = [], []
    for name, img in images.items():
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        h, w = img.shape[:2]
        for rel in EVAL_SCALES:
            side = int(round(rel * min(h, w)))
            for cy, cx in EVAL_CENTRES:
                top = int(np.clip(round(cy * h - side / 2), 0, h - side))
                left = int(np.clip(round(cx * w - side / 2), 0, w - side))
                patch = img[top:top + side, left:left + side, :3].astype(np.float32) / 255.0
                patch = resize(patch, (224, 224), order=1, anti_aliasing=True).astype(np.float32)
                crops.append(((patch - _MEAN) / _STD).transpose(2, 0, 1))
                names.append(f"{name}|rel={rel}|cy={cy}|cx={cx}")
    return np.ascontiguousarray(np.stack(crops)), names


def _sqnr(y: np.ndarray, ref: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    return float(10 * np.log10(np.sum(ref ** 2) / np.sum((y.astype(np.float64) - ref) ** 2)))


def _agreement(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean(y.argmax(axis=1) == ref.argmax(axis=1)))


def _ort_quantized(calib: np.ndarray, per_channel: bool) -> pathlib.Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    path = pathlib.Path(tempfile.gettempdir()) / f"hwsim_quality_ort_{'pc' if per_channel else 'pt'}.onnx"

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"input": calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self._it, None)

    quantize_static(str(SHARED / MODEL), str(path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel)
    return path


def _ort_logits(path: pathlib.Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])


def _simulated(q, target, x: np.ndarray) -> np.ndarray:
    import hwsim

    return np.concatenate([hwsim.simulate(q, target, {"input": x[i:i + 1]}).outputs["logits"] for i in range(len(x))])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--adaround", action="store_true",
                        help="add the AdaRound rows (W8A8 per-channel, W4A8 per-group:32) for --methods")
    parser.add_argument("--no-ort", action="store_true", help="skip the onnxruntime rows")
    parser.add_argument("--only-adaround", action="store_true", help="run the AdaRound rows only (implies --adaround)")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"needs {SHARED} (the shared models)", file=sys.stderr)
        return 2
    try:
        x_eval, names = evaluation_crops()
    except ImportError as exc:
        print(f"needs scikit-image and Pillow for the evaluation crops ({exc}); pip install scikit-image",
              file=sys.stderr)
        return 2
    import hwsim

    graph = hwsim.load_model(SHARED / MODEL)
    calib = np.load(SHARED / CALIB)["input"]
    ref = np.concatenate([hwsim.float_reference(graph, {"input": x_eval[i:i + 1]})["logits"]
                          for i in range(len(x_eval))])
    print(f"EfficientNet-Lite0: calibration {len(calib)} crops ({CALIB}); evaluation {len(x_eval)} other crops "
          f"(scales {EVAL_SCALES}, centres {EVAL_CENTRES}, not mirrored) of astronaut, chelsea, coffee, rocket, "
          f"camera, china.jpg, flower.jpg", flush=True)
    _relu_float_line(graph, x_eval, ref)
    results = []
    configs = (() if args.only_adaround else CONFIGS) + (ADAROUND_CONFIGS if args.adaround or args.only_adaround else ())
    for label, per_channel in (() if args.no_ort else (("onnxruntime quantize_static MinMax per-channel", True),
                                                       ("onnxruntime quantize_static MinMax per-tensor", False))):
        t0 = time.perf_counter()
        y = _ort_logits(_ort_quantized(calib, per_channel), x_eval)
        results.append(dict(method="ort-minmax", config=label, target="onnxruntime", sqnr=_sqnr(y, ref),
                            top1=_agreement(y, ref), seconds=time.perf_counter() - t0))
        print(_line(results[-1]), flush=True)
    for method in args.methods:
        for label, target, kwargs in configs:
            t0 = time.perf_counter()
            q = hwsim.quantize(graph, target, {"input": calib}, method=method, **kwargs)
            y = _simulated(q, target, x_eval)
            results.append(dict(method=method, config=label, target=target, sqnr=_sqnr(y, ref),
                                top1=_agreement(y, ref), seconds=time.perf_counter() - t0))
            print(_line(results[-1]), flush=True)
            del q
    _table(results, [c[0] for c in configs])
    _bars(results)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(dict(eval_crops=names, results=results), indent=1))
    return 0


def _relu_float_line(graph, x_eval: np.ndarray, ref: np.ndarray) -> None:
    """How far the float model of ``cle_relu`` (ReLU6 -> ReLU on the equalized pairs) is from the original."""
    import hwsim
    from hwsim.quant.cle import relu6_to_relu

    relu = relu6_to_relu(graph)
    y = np.concatenate([hwsim.float_reference(relu, {"input": x_eval[i:i + 1]})["logits"] for i in range(len(x_eval))])
    print(f"float model with ReLU6 -> ReLU on the CLE pairs vs the original float model: logits SQNR "
          f"{_sqnr(y, ref):.2f} dB, top-1 agreement {100 * _agreement(y, ref):.1f}%", flush=True)


def _line(r: dict) -> str:
    return f"  {r['method']:<11} {r['config']:<48} {r['sqnr']:7.2f} dB  top-1 {100 * r['top1']:5.1f}%  ({r['seconds']:.0f} s)"


def _table(results: list, configs: list) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="logits SQNR vs float (dB) / top-1 agreement with float, evaluation crops")
    table.add_column("method")
    for c in configs:
        table.add_column(c, justify="right")
    by = {(r["method"], r["config"]): r for r in results}
    for method in dict.fromkeys(r["method"] for r in results if r["method"] != "ort-minmax"):
        table.add_row(method, *[f"{by[(method, c)]['sqnr']:.2f} / {100 * by[(method, c)]['top1']:.0f}%"
                                if (method, c) in by else "" for c in configs])
    ort = [r for r in results if r["method"] == "ort-minmax"]
    if not ort or configs[:2] != [c[0] for c in CONFIGS[:2]]:
        Console(width=200).print(table)
        return
    pc = next(r for r in ort if "per-channel" in r["config"])
    pt = next(r for r in ort if "per-tensor" in r["config"])
    table.add_row("onnxruntime MinMax", f"{pt['sqnr']:.2f} / {100 * pt['top1']:.0f}%",
                  f"{pc['sqnr']:.2f} / {100 * pc['top1']:.0f}%", *[""] * (len(configs) - 2))
    Console(width=200).print(table)


def _bars(results: list) -> None:
    ort_pc = next((r for r in results if r["method"] == "ort-minmax" and "per-channel" in r["config"]), None)
    hw = [r for r in results if r["method"] != "ort-minmax"]
    per_channel = [r for r in hw if r["config"].startswith("W8A8 per-channel")]
    if ort_pc is not None and per_channel:
        _bar1(ort_pc, per_channel)
    _bar23(hw)


def _bar1(ort_pc: dict, per_channel: list) -> None:
    best_pc = max(per_channel, key=lambda r: r["sqnr"])
    gain = best_pc["sqnr"] - ort_pc["sqnr"]
    print(f"bar 1, W8A8 per-channel >= onnxruntime MinMax per-channel + 3 dB: best hwsim {best_pc['sqnr']:.2f} dB "
          f"({best_pc['method']}, {best_pc['config']}) vs {ort_pc['sqnr']:.2f} dB: {gain:+.2f} dB -> "
          f"{'MET' if gain >= 3 else 'NOT MET'}")


def _bar23(hw: list) -> None:
    by = {(r["method"], r["config"]): r for r in hw}
    cle_rows = [c[0] for c in CONFIGS if c[0].startswith("W8A8 per-tensor + CLE")]
    gains = {(m, c): by[(m, c)]["sqnr"] - by[(m, "W8A8 per-tensor")]["sqnr"]
             for c in cle_rows for m, c0 in by if c0 == "W8A8 per-tensor" and (m, c) in by}
    if gains:
        best = max(gains, key=gains.get)
        listed = ", ".join(f"{m} {c[len('W8A8 per-tensor + '):]} {g:+.2f}" for (m, c), g in gains.items())
        print(f"bar 2, per-tensor + CLE >= per-tensor + 5 dB (same method, vs the original float logits): gains "
              f"{listed} dB; best {best[0]} {best[1]} {gains[best]:+.2f} dB -> "
              f"{'MET' if gains[best] >= 5 else 'NOT MET'}")
    w4 = [r for r in hw if r["config"].startswith("W4A8 per-group:32")]
    if w4:
        best4 = max(w4, key=lambda r: r["top1"])
        every = ", ".join(f"{r['method']}{r['config'][len('W4A8 per-group:32'):]} {100 * r['top1']:.0f}%" for r in w4)
        print(f"bar 3, W4A8 per-group:32 keeps the float top-1 on >= 80% of the crops: best {100 * best4['top1']:.1f}% "
              f"({best4['method']}, {best4['config']}); all: {every} -> "
              f"{'MET' if best4['top1'] >= 0.8 else 'NOT MET'}")


if __name__ == "__main__":
    sys.exit(main())

"""Observers against onnxruntime's own calibrators fed the same data (the independent reference).

``onnxruntime.quantization.calibrate.HistogramCollector`` is the code onnxruntime's
PercentileCalibrater and EntropyCalibrater run after collecting tensors; feeding it the same
batches must give the same thresholds as our observers, bit for bit (both build their histograms
with numpy from float32 data, so the bin edges agree exactly).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from hwsim.quant.kl import kl_range_mxnet
from hwsim.quant.observers import make_observer
from hwsim.quant.params import QuantFormat

calibrate = pytest.importorskip("onnxruntime.quantization.calibrate")

S8 = QuantFormat(8, signed=True, symmetric=True)
U8 = QuantFormat(8, signed=False, symmetric=False)


def _batches(seed: int, growing: bool) -> list[np.ndarray]:
    """Three float32 batches; the first holds an exact 0 (onnxruntime's |x| histogram starts at min|x|)."""
    rng = np.random.default_rng(seed)
    scales = (1.0, 2.5, 0.5) if growing else (1.0, 1.0, 1.0)
    out = []
    for i, s in enumerate(scales):
        x = (rng.laplace(size=3000) * s + 0.3).astype(np.float32)
        if i == 0:
            x[0] = 0.0
        out.append(x)
    return out


def _ort_range(method, batches, **kw):
    collector = calibrate.HistogramCollector(method=method, scenario="same", **kw)
    with contextlib.redirect_stdout(io.StringIO()):       # it prints progress
        for x in batches:
            collector.collect({"t": x})
        result = collector.compute_collection_result()["t"]
    return float(result[0]), float(result[1])


@pytest.mark.parametrize("growing", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("percentile", [99.999, 99.9, 97.0])
@pytest.mark.parametrize("symmetric", [True, False])
def test_percentile_equals_onnxruntime(symmetric, percentile, seed, growing):
    batches = _batches(seed, growing)
    ours = make_observer("percentile", S8 if symmetric else U8, percentile=percentile)
    for x in batches:
        ours.observe(x)
    ref = _ort_range("percentile", batches, symmetric=symmetric, num_bins=2048, num_quantized_bins=128,
                     percentile=percentile)
    assert ours.range() == ref


@pytest.mark.parametrize("growing", [False, True])
@pytest.mark.parametrize("num_bins,num_quantized_bins", [(128, 128), (301, 31), (512, 63)])
def test_entropy_mxnet_equals_onnxruntime(num_bins, num_quantized_bins, growing):
    batches = _batches(7, growing)
    ours = make_observer("entropy_mxnet", S8, num_bins=num_bins, num_quantized_bins=num_quantized_bins)
    for x in batches:
        ours.observe(x)
    ref = _ort_range("entropy", batches, symmetric=False, num_bins=num_bins,
                     num_quantized_bins=num_quantized_bins, percentile=99.999)
    assert ours.range() == ref


def test_entropy_mxnet_search_equals_onnxruntime_on_random_histograms():
    """The search alone on histograms with empty bins and spikes (where smoothing and truncation matter)."""
    rng = np.random.default_rng(3)
    collector = calibrate.HistogramCollector("entropy", False, 200, 21, 99.9, "same")
    for trial in range(6):
        n = int(rng.integers(60, 200))
        hist = rng.integers(0, 50, n) * (rng.random(n) < 0.7)
        hist[n // 2] += 500 * trial
        edges = np.linspace(-3, 3, n + 1).astype(np.float32)
        nq = int(rng.choice([7, 11, 21, 32]))
        lo, hi = collector.get_entropy_threshold((hist, edges, np.float32(-10), np.float32(10)), nq)
        assert kl_range_mxnet(hist, edges, nq) == (float(lo), float(hi)), (trial, n, nq)


def test_onnxruntime_default_entropy_is_minmax():
    """onnxruntime's defaults (128 bins, 128 levels) leave one candidate: the whole observed range.

    (Only while the histogram keeps its first range: a later batch with a larger max|x| adds bins.)
    """
    batches = _batches(5, False)
    batches[0][1] = 40.0        # the first batch holds the largest |x|, so the histogram never grows
    ours = make_observer("entropy_mxnet", S8, num_bins=128, num_quantized_bins=128)
    for x in batches:
        ours.observe(x)
    lo = min(float(x.min()) for x in batches)
    hi = max(float(x.max()) for x in batches)
    assert ours.range() == (lo, hi)


class _OneBatch:
    """An onnxruntime CalibrationDataReader that hands out one batch."""

    def __init__(self, x):
        self.items = [{"x": x}]

    def get_next(self):
        return self.items.pop() if self.items else None


@pytest.mark.parametrize("moving_average", [False, True])
def test_minmax_and_moving_average_equal_onnxruntime_minmax_calibrater(tmp_path, moving_average):
    """onnxruntime's MinMaxCalibrater, one collect_data call per batch (its moving average then is
    PyTorch's: old + c * (new - old) across calls), on the input of an Abs node."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Abs", ["x"], ["y"])], "abs",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = tmp_path / "abs.onnx"
    onnx.save(model, str(path))
    calibrater = calibrate.create_calibrator(
        str(path), augmented_model_path=str(tmp_path / "aug.onnx"),
        calibrate_method=calibrate.CalibrationMethod.MinMax,
        extra_options={"moving_average": moving_average, "averaging_constant": 0.25})
    ours = make_observer("moving_average", U8, averaging_constant=0.25) if moving_average \
        else make_observer("minmax", U8)
    rng = np.random.default_rng(12)
    for scale in (1.0, 3.0, 0.5, 2.0):
        x = (rng.normal(size=(4, 8)) * scale + 0.5).astype(np.float32)
        calibrater.collect_data(_OneBatch(x))
        ours.observe(x)
    lo, hi = calibrater.compute_data()["x"].range_value
    # onnxruntime updates the average in float32, hwsim in float64: equal up to float32 rounding
    assert ours.range() == pytest.approx((float(np.ravel(lo)[0]), float(np.ravel(hi)[0])), rel=1e-6)

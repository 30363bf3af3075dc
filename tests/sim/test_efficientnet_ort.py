"""EfficientNet-Lite0 quantized by onnxruntime.quantization.quantize_static (QDQ u8s8 per-channel and
QOperator u8s8 per-tensor) through hwsim.simulate(..., "onnxruntime-x86") == onnxruntime's default session,
on every logit, for inputs that are not the calibration crops.

Evaluation inputs: scikit-image / scikit-learn are not installed here, so the inputs are the calibration
crops mirrored left-right, mirrored top-bottom, and rolled by (17, -9) / (-31, 40) pixels -- different
images for the network, made from the same photographs.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

import hwsim
from tests.conftest import SHARED, SHARED_MISSING

MODELS = pathlib.Path(os.environ.get("HWSIM_SHARED", SHARED)) / "models"
pytestmark = pytest.mark.skipif(not MODELS.is_dir(), reason=SHARED_MISSING)


def _eval_inputs() -> list:
    crops = np.load(MODELS / "efficientnet_lite0_calib.npz")["input"]
    views = []
    for i in range(0, 16, 2):
        c = crops[i:i + 1]
        views.append(c[:, :, :, ::-1] if i % 4 == 0 else c[:, :, ::-1, :])
    views += [np.roll(crops[1:2], (17, -9), axis=(2, 3)), np.roll(crops[3:4], (-31, 40), axis=(2, 3))]
    return [np.ascontiguousarray(v) for v in views]


@pytest.fixture(scope="module")
def quantized_models(tmp_path_factory):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    crops = np.load(MODELS / "efficientnet_lite0_calib.npz")["input"]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"input": crops[i:i + 1]} for i in range(len(crops))])

        def get_next(self):
            return next(self._it, None)

    out = tmp_path_factory.mktemp("effnet")
    paths = {"qdq": out / "qdq.onnx", "qoperator": out / "qop.onnx"}
    src = str(MODELS / "efficientnet_lite0_fp32.onnx")
    quantize_static(src, str(paths["qdq"]), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    quantize_static(src, str(paths["qoperator"]), Reader(), quant_format=QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=False)
    return paths


@pytest.mark.parametrize("kind", ["qdq", "qoperator"])
def test_efficientnet_lite0_logits_bit_identical_to_onnxruntime(quantized_models, kind):
    import onnxruntime as ort

    path = quantized_models[kind]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph = hwsim.load_model(path)
    target = hwsim.load_target("onnxruntime-x86")
    mismatching = 0
    for i, x in enumerate(_eval_inputs()):
        (want,) = sess.run(None, {"input": x})
        got = hwsim.simulate(graph, target, {"input": x}, n_threads=1 + i % 2).outputs["logits"]
        assert got.dtype == want.dtype == np.float32 and got.shape == want.shape == (1, 1000)
        mismatching += int(np.count_nonzero(got.view(np.int32) != want.view(np.int32)))
    assert mismatching == 0


def test_efficientnet_trace_has_every_layer(quantized_models):
    graph = hwsim.load_model(quantized_models["qdq"])
    x = _eval_inputs()[0]
    r = hwsim.simulate(graph, "onnxruntime-x86", {"input": x}, trace=True)
    n_int_layers = sum(1 for n in graph.nodes if n.op in ("conv2d", "fully_connected"))
    assert len(r.counters) == n_int_layers == 50
    assert len(r.accumulators) == n_int_layers
    assert r.deviations == []          # every op is emulated exactly: nothing left in float
    # the traced run computes the same logits as the plain (prepared, packed) one
    np.testing.assert_array_equal(r.outputs["logits"], hwsim.simulate(graph, "onnxruntime-x86", {"input": x})
                                  .outputs["logits"])

"""Fixtures for the graph tests: EfficientNet-Lite0 float, QDQ and QOperator models (quantized once per session).

Other tests may reuse ``efficientnet_models`` (a dict of paths) and
``efficientnet_eval_inputs`` (inputs that are not calibration crops).
"""

from __future__ import annotations

import importlib.util
import os
import pathlib

import numpy as np
import pytest

# tests/conftest.py is shadowed by this file under the name "conftest"; load its constants explicitly
_root_spec = importlib.util.spec_from_file_location(
    "_hwsim_tests_root_conftest", pathlib.Path(__file__).resolve().parents[1] / "conftest.py")
_root = importlib.util.module_from_spec(_root_spec)
_root_spec.loader.exec_module(_root)
# HWSIM_SHARED points a git worktree (whose ../shared is elsewhere) at the shared models
SHARED = pathlib.Path(os.environ["HWSIM_SHARED"]) if os.environ.get("HWSIM_SHARED") else _root.SHARED
SHARED_MISSING = _root.SHARED_MISSING

EFFNET = SHARED / "models" / "efficientnet_lite0_fp32.onnx"
CALIB = SHARED / "models" / "efficientnet_lite0_calib.npz"
CALIB_CROPS = 4   # a few crops keep quantize_static at a few seconds


def _quantize(src: pathlib.Path, dst: pathlib.Path, fmt: str, per_channel: bool, activations: str = "u8") -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    crops = np.load(CALIB)["input"][:CALIB_CROPS]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"input": crops[i: i + 1]} for i in range(len(crops))])

        def get_next(self):
            return next(self._it, None)

    quantize_static(str(src), str(dst), Reader(),
                    quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8 if activations == "u8" else QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=per_channel)


@pytest.fixture(scope="session")
def efficientnet_models(tmp_path_factory) -> dict[str, pathlib.Path]:
    """{"float": fp32 model, "qdq": QDQ u8s8 per-channel, "qoperator": QOperator u8s8 per-tensor}."""
    if not EFFNET.exists() or not CALIB.exists():
        pytest.skip(SHARED_MISSING)
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("efficientnet")
    paths = {"float": EFFNET, "qdq": out / "effnet_qdq_u8s8_perchannel.onnx",
             "qoperator": out / "effnet_qop_u8s8_pertensor.onnx"}
    _quantize(EFFNET, paths["qdq"], "qdq", per_channel=True)
    _quantize(EFFNET, paths["qoperator"], "qoperator", per_channel=False)
    return paths


@pytest.fixture(scope="session")
def efficientnet_qdq_s8s8(efficientnet_models, tmp_path_factory) -> pathlib.Path:
    """QDQ s8s8 per-channel EfficientNet-Lite0 (onnxruntime on x86 keeps part of it in float)."""
    path = tmp_path_factory.mktemp("efficientnet_s8") / "effnet_qdq_s8s8_perchannel.onnx"
    _quantize(EFFNET, path, "qdq", per_channel=True, activations="s8")
    return path


@pytest.fixture(scope="session")
def efficientnet_eval_inputs() -> np.ndarray:
    """Two [1, 3, 224, 224] inputs that are not calibration crops (flipped blends of them)."""
    if not CALIB.exists():
        pytest.skip(SHARED_MISSING)
    x = np.load(CALIB)["input"]
    a = 0.5 * x[0:1, :, ::-1, :] + 0.5 * x[5:6, :, :, ::-1]
    b = 0.7 * x[9:10, :, :, ::-1] + 0.3 * x[13:14, :, ::-1, ::-1]
    return np.ascontiguousarray(np.concatenate([a, b]).astype(np.float32))

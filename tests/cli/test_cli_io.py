"""The command-line input helpers every model command shares (hwsim.cli_io)."""

from __future__ import annotations

import numpy as np
import pytest

import hwsim
from hwsim.cli import UsageError
from hwsim.cli_io import load_model, load_targets, qdq_fusion, read_calibration, read_npz
from hwsim.demo import model_path


def test_read_calibration_rules(tmp_path):
    g = hwsim.load_model(model_path())
    x = np.zeros((2, 1, 8, 8), np.float32)
    np.savez(tmp_path / "cal.npz", image=x, names=np.array(["a", "b"]))   # a string array is ignored
    cal = read_calibration(g, str(tmp_path / "cal.npz"), "m.onnx", "for tflm")
    assert list(cal) == ["image"] and np.array_equal(cal["image"], x)
    with pytest.raises(UsageError, match="a float model; give --calib CAL.npz to quantize it for tflm"):
        read_calibration(g, None, "m.onnx", "for tflm")
    np.savez(tmp_path / "bad.npz", picture=x, other=x)   # one array under any key would be taken
    with pytest.raises(UsageError, match=r"no array named 'image'; expected shape \[N, 1, 8, 8\]"):
        read_calibration(g, str(tmp_path / "bad.npz"), "m.onnx", "for tflm")
    q = hwsim.quantize(g, "tflm", {"image": x})
    assert read_calibration(q, None, "q.onnx", "for tflm") is None
    with pytest.raises(UsageError, match="already quantized"):
        read_calibration(q, str(tmp_path / "cal.npz"), "q.onnx", "for tflm")


def test_bad_files_and_names_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="no such input file"):
        read_npz(str(tmp_path / "missing.npz"), "input")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="not a readable .npz file"):
        read_npz(str(tmp_path / "junk.npz"), "input")
    with pytest.raises(UsageError, match="no-such-target"):
        load_targets(["tflm", "no-such-target"])
    with pytest.raises(UsageError, match="missing.onnx"):
        load_model(str(tmp_path / "missing.onnx"))


def test_qdq_fusion_follows_the_engine():
    assert qdq_fusion(hwsim.load_target("onnxruntime-x86")) == "onnxruntime-x86"
    assert qdq_fusion(hwsim.load_target("tflm")) == "onnxruntime-arm64"

"""The command-line input helpers every model command shares (hwsim.cli_io)."""

from __future__ import annotations

import numpy as np
import pytest

import hwsim
import hwsim.demo
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


def test_check_output_file(tmp_path):
    from hwsim.cli_io import check_output_file

    assert check_output_file(None, "--json", False) is None
    assert check_output_file(str(tmp_path / "new" / "r.json"), "--json", False) == tmp_path / "new" / "r.json"
    (tmp_path / "r.json").write_text("mine")
    with pytest.raises(UsageError, match="--json .*r.json: already exists; use --force"):
        check_output_file(str(tmp_path / "r.json"), "--json", False)
    assert check_output_file(str(tmp_path / "r.json"), "--json", True) == tmp_path / "r.json"
    assert check_output_file(str(tmp_path / "r.json"), "--json", False, replaceable=lambda p: True)
    with pytest.raises(UsageError, match="is a directory"):
        check_output_file(str(tmp_path), "-o", True)
    with pytest.raises(UsageError, match="r.json is not a directory"):
        check_output_file(str(tmp_path / "r.json" / "x.npz"), "-o", True)
    assert (tmp_path / "r.json").read_text() == "mine"        # nothing was touched


@pytest.mark.parametrize("command", [
    ["run", "MODEL", "-t", "tflm", "-i", "IN", "--calib", "IN", "-o", "PARENT/out.npz"],
    ["quantize", "MODEL", "-t", "tflm", "--calib", "IN", "-o", "PARENT/q.onnx"],
    ["report", "MODEL", "-t", "tflm", "-i", "IN", "--calib", "IN", "--json", "PARENT/r.json"],
    ["diff", "MODEL", "-t", "tflm", "-t", "xnnpack", "-i", "IN", "--calib", "IN", "--json", "PARENT/d.json"],
])
def test_unwritable_output_exits_2_before_any_work(tmp_path, capsys, command):
    from hwsim.cli import main

    x = hwsim.demo.load_digits()["x_test"][:4]
    np.savez(tmp_path / "in.npz", image=x)
    (tmp_path / "parent").write_text("a file where a directory should be")
    args = [{"MODEL": str(model_path()), "IN": str(tmp_path / "in.npz")}.get(a, a) for a in command]
    args = [a.replace("PARENT", str(tmp_path / "parent")) for a in args]
    assert main(args) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert (tmp_path / "parent").read_text() == "a file where a directory should be"

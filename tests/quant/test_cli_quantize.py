"""``hwsim quantize``: writes a QDQ model onnxruntime runs, prints a summary, refuses bad input with exit 2."""

from __future__ import annotations

import numpy as np
import pytest

import hwsim
import hwsim.demo
from hwsim.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cliq")
    data = hwsim.demo.load_digits()
    np.savez(d / "cal.npz", image=data["x_train"][:16], names=np.array(["a"] * 16))   # a non-numeric extra is ignored
    np.savez(d / "badkey.npz", img=data["x_train"][:4], other=data["x_train"][:4])
    nan = data["x_train"][:4].copy()
    nan[2, 0, 3, 3] = np.nan
    np.savez(d / "nan.npz", image=nan)
    return d, str(hwsim.demo.model_path()), data


def test_writes_a_qdq_model_that_onnxruntime_runs_like_simulate(files, capsys):
    import onnxruntime as ort

    d, model, data = files
    out = d / "q.onnx"
    assert main([ "quantize", model, "-t", "onnxruntime-x86", "--calib", str(d / "cal.npz"), "-o", str(out),
                 "--method", "percentile", "--ptq", "bias_correction"]) == 0
    text = capsys.readouterr().out
    assert "5 of 5" in text and "percentile" in text and "bias_correction" in text and "SQNR logits" in text
    x = data["x_test"][:20]
    want = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    q = hwsim.load_model(out)
    got = hwsim.simulate(q, "onnxruntime-x86", {"image": x}).outputs["logits"]
    np.testing.assert_array_equal(got, want)             # the exported model is what hwsim simulated
    ref = hwsim.float_reference(hwsim.load_model(model), {"image": x})["logits"]
    assert np.mean(want.argmax(1) == ref.argmax(1)) > 0.95


def test_quiet_prints_nothing(files, capsys):
    d, model, _ = files
    assert main(["quantize", model, "-t", "tflite-reference", "--calib", str(d / "cal.npz"), "-o", str(d / "q2.onnx"),
                 "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_existing_output_needs_force(files, capsys):
    d, model, _ = files
    out = d / "exists.onnx"
    out.write_bytes(b"keep me")
    args = ["quantize", model, "-t", "onnxruntime-x86", "--calib", str(d / "cal.npz"), "-o", str(out), "-q"]
    assert main(args) == 2
    assert "already exists; use --force" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert main(args + ["--force"]) == 0 and out.read_bytes() != b"keep me"


@pytest.mark.parametrize("extra, calib, match", [
    (["--bits", "W4A8"], "cal.npz", "onnxruntime-x86 runs 8-bit weights for conv2d, not 4-bit; it supports bits W8A8"),
    (["--granularity", "per-group:32"], "cal.npz", "granularity 'per-group:32' cannot run there"),
    (["--ptq", "cle,magic"], "cal.npz", "unknown pass 'magic'"),
    ([], "badkey.npz", "no array named 'image'"),
    ([], "nan.npz", "input 'image' holds 1 NaN/Inf value"),
    ([], "missing.npz", "no such calibration file"),
])
def test_bad_input_exits_2_naming_the_problem(files, capsys, extra, calib, match):
    d, model, _ = files
    out = d / "never.onnx"
    assert main(["quantize", model, "-t", "onnxruntime-x86", "--calib", str(d / calib), "-o", str(out), "-q"]
                + extra) == 2
    assert match in capsys.readouterr().err
    assert not out.exists()


def test_a_quantized_model_is_refused(files, capsys):
    d, model, _ = files
    q = d / "already.onnx"
    assert main(["quantize", model, "-t", "onnxruntime-x86", "--calib", str(d / "cal.npz"), "-o", str(q), "-q"]) == 0
    assert main(["quantize", str(q), "-t", "onnxruntime-x86", "--calib", str(d / "cal.npz"), "-o",
                 str(d / "again.onnx"), "-q"]) == 2
    assert "already a quantized model" in capsys.readouterr().err

"""``hwsim diff``: the report on the bundled digits CNN and a QDQ model, and exit status 2 on bad input."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import hwsim
from hwsim.cli import main
from hwsim.demo import load_digits, model_path
from hwsim.report.diff import diff_targets


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("diff")
    data = load_digits()
    np.savez(d / "in.npz", image=data["x_test"][:8])
    np.savez(d / "cal.npz", image=data["x_train"][:32])
    return d, str(model_path())


def _qdq_conv(path, rng):
    """x -> Q -> DQ -> Conv 1x1 (DQ weights, bias) -> Q -> DQ -> y; onnxruntime-x86 imports it with u8
    activations, the other engines with s8."""
    w = rng.integers(-127, 128, (8, 4, 1, 1)).astype(np.int8)
    xs, ws, ys = np.float32(0.0213), np.float32(0.0117), np.float32(0.0391)
    arrays = {"x_s": np.array(xs), "x_z": np.array(0, np.int8), "w_q": w, "w_s": np.array(ws),
              "w_z": np.array(0, np.int8), "b_q": rng.integers(-500, 500, 8).astype(np.int32),
              "b_s": np.array(np.float32(xs * ws)), "b_z": np.array(0, np.int32), "y_s": np.array(ys),
              "y_z": np.array(3, np.int8)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["xq"], name="x_q"),
             helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"], name="x_dq"),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["wd"], name="w_dq"),
             helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["bd"], name="b_dq"),
             helper.make_node("Conv", ["xd", "wd", "bd"], ["yc"], name="conv"),
             helper.make_node("QuantizeLinear", ["yc", "y_s", "y_z"], ["yq"], name="y_q"),
             helper.make_node("DequantizeLinear", ["yq", "y_s", "y_z"], ["y"], name="y_dq")]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])],
                              [numpy_helper.from_array(v, k) for k, v in arrays.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def test_diff_prints_table_example_and_summary_and_writes_json(files, capsys):
    d, model = files
    out = d / "report.json"
    assert main(["diff", model, "-t", "tflite-reference", "-t", "arm-neon-sdot", "-i", str(d / "in.npz"),
                 "--calib", str(d / "cal.npz"), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    # the same diff through the API (the CLI quantizes the float model per target on --calib)
    graph = hwsim.load_model(model)
    with np.load(d / "in.npz") as f_in, np.load(d / "cal.npz") as f_cal:
        api = diff_targets(graph, "tflite-reference", "arm-neon-sdot", {"image": f_in["image"]},
                           calibration={"image": f_cal["image"]})
    assert data == json.loads(api.to_json())
    assert data["schema"] == "hwsim.diff/1" and data["first_divergence"] == api.first_divergence.name
    assert "hwsim diff: A = tflite-reference, B = arm-neon-sdot" in printed
    assert "flatten[transpose]" in printed and "flatten[reshape]" in printed    # shared node names kept apart
    first = api.first_divergence
    assert f"{first.differ}/{first.elements}" in printed
    assert f"example ({first.name}" in printed
    assert api.summary() in printed
    assert "diff written (schema hwsim.diff/1)" in printed


def test_quiet_prints_only_the_summary(files, capsys):
    d, model = files
    assert main(["diff", model, "-t", "onnxruntime-x86", "-t", "x86-avx2", "-i", str(d / "in.npz"),
                 "--calib", str(d / "cal.npz"), "-q"]) == 0
    captured = capsys.readouterr()
    graph = hwsim.load_model(model)
    with np.load(d / "in.npz") as f_in, np.load(d / "cal.npz") as f_cal:
        api = diff_targets(graph, "onnxruntime-x86", "x86-avx2", {"image": f_in["image"]},
                           calibration={"image": f_cal["image"]})
    assert captured.out == api.summary() + "\n" and captured.err == ""


def test_same_target_twice_says_identical_pipelines(files, capsys):
    d, model = files
    assert main(["diff", model, "-t", "tflm", "-t", "tflm", "-i", str(d / "in.npz"), "--calib",
                 str(d / "cal.npz"), "-q"]) == 0
    assert "identical pipelines" in capsys.readouterr().out


def test_qdq_model_imported_per_engine(tmp_path, capsys):
    # onnxruntime-x86 fuses the QDQ conv with u8 activations, tflite-reference with s8: two graphs, one diff
    _qdq_conv(tmp_path / "m.onnx", np.random.default_rng(0))
    np.savez(tmp_path / "in.npz", x=np.random.default_rng(1).normal(0, 1, (1, 4, 4, 4)).astype(np.float32))
    assert main(["diff", str(tmp_path / "m.onnx"), "-t", "onnxruntime-x86", "-t", "tflite-reference", "-i",
                 str(tmp_path / "in.npz"), "--json", str(tmp_path / "d.json"), "-q"]) == 0
    data = json.loads((tmp_path / "d.json").read_text())
    ga = hwsim.load_model(tmp_path / "m.onnx", qdq_fusion="onnxruntime-x86")
    gb = hwsim.load_model(tmp_path / "m.onnx", qdq_fusion="onnxruntime-arm64")
    with np.load(tmp_path / "in.npz") as f:
        x = f["x"]
    ya = hwsim.simulate(ga, "onnxruntime-x86", {"x": x}).outputs["y"]
    yb = hwsim.simulate(gb, "tflite-reference", {"x": x}).outputs["y"]
    conv = next(layer for layer in data["layers"] if layer["name"] == "conv")
    assert conv["differ"] == int(np.count_nonzero(ya != yb)) == data["outputs"][0]["differ"]
    assert data["notes"] == []


@pytest.mark.parametrize("argv_tail, message", [
    (["-t", "tflite-reference", "-t", "arm-neon-sdot", "-i", "MISSING.npz"], "MISSING.npz: no such input file"),
    (["-t", "tflite-reference", "-t", "no-such-target", "-i", "in.npz"], "no-such-target"),
    (["-t", "tflite-reference", "-i", "in.npz"], "give exactly two targets"),
    (["-t", "a", "-t", "b", "-t", "c", "-i", "in.npz"], "give exactly two targets"),
    (["-t", "tflite-reference", "-t", "arm-neon-sdot", "-i", "in.npz"], "a float model; give --calib"),
    (["-t", "tflite-reference", "-t", "arm-neon-sdot", "-i", "wrongkey.npz", "--calib", "cal.npz"],
     "no array named 'image'"),
    (["-t", "tflite-reference", "-t", "arm-neon-sdot", "-i", "badshape.npz", "--calib", "cal.npz"],
     "input 'image'"),
    (["-t", "tflite-reference", "-t", "arm-neon-sdot", "-i", "in.npz", "--calib", "cal.npz", "--threads", "0"],
     "--threads"),
])
def test_bad_input_exits_2_naming_the_problem(files, tmp_path, capsys, argv_tail, message):
    d, model = files
    np.savez(tmp_path / "wrongkey.npz", a=np.zeros((1, 1, 8, 8), np.float32), b=np.zeros((1, 1, 8, 8), np.float32))
    np.savez(tmp_path / "badshape.npz", image=np.zeros((1, 3, 8, 8), np.float32))
    tail = [str(d / a) if a in ("in.npz", "cal.npz") else str(tmp_path / a) if a.endswith(".npz") else a
            for a in argv_tail]
    assert main(["diff", model] + tail) == 2
    err = capsys.readouterr().err
    assert err.startswith("hwsim: error:") and message in err


def test_missing_model_exits_2(files, tmp_path, capsys):
    d, _ = files
    assert main(["diff", str(tmp_path / "nope.onnx"), "-t", "tflm", "-t", "tflm", "-i", str(d / "in.npz")]) == 2
    assert "nope.onnx" in capsys.readouterr().err


def test_existing_json_is_kept_without_force_and_replaced_with_it(files, tmp_path, capsys):
    d, model = files
    out = tmp_path / "d.json"
    out.write_text("mine")
    argv = ["diff", model, "-t", "tflm", "-t", "tflite-reference", "-i", str(d / "in.npz"), "--calib",
            str(d / "cal.npz"), "--json", str(out), "-q"]
    assert main(argv) == 2
    assert "already exists; use --force" in capsys.readouterr().err and out.read_text() == "mine"
    assert main(argv + ["--force"]) == 0
    assert json.loads(out.read_text())["target_b"] == "tflite-reference"


def test_unwritable_json_location_exits_2(files, tmp_path, capsys):
    d, model = files
    (tmp_path / "afile").write_text("x")
    common = ["diff", model, "-t", "tflm", "-t", "tflm", "-i", str(d / "in.npz"), "--calib", str(d / "cal.npz"),
              "-q"]
    assert main(common + ["--json", str(tmp_path / "afile" / "d.json")]) == 2
    assert "afile is not a directory" in capsys.readouterr().err     # refused before any work
    assert main(common + ["--json", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err

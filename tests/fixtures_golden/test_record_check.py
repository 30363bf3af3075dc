"""Record -> check round trip on the digits model, and what the fixture files hold.

The values are checked against independent references: the file hashes with
hashlib, the chain of layers (one layer's output is the next one's input), the
model outputs with hwsim.simulate, and every conv / fully-connected layer re-run
through hwsim.kernels from nothing but the recorded files and manifest
parameters (what a test bench does): its accumulators and outputs must come back.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest

import hwsim
from hwsim.cli import main
from hwsim.fixtures.record import quantize_for_fixtures
from hwsim.layer_specs import SplitRequant
from hwsim.numerics.requant_params import RequantParams
from hwsim.types import AccumSpec, Overflow, ZeroPointPlacement

from .conftest import TARGETS


def _manifest(directory):
    return json.loads((directory / "manifest.json").read_text())


def _requantize(manifest, graph, target, calibration):
    """The float model quantized by the quantizer the fixtures record (hwsim.quantize once this hwsim has it,
    else the MinMax path): these tests hold the fixtures to a separate run of the same quantized graph."""
    quantizer = manifest["quantization"]["quantizer"]
    return quantize_for_fixtures(graph, hwsim.load_target(target), calibration, quantizer)[0]


@pytest.mark.parametrize("target", TARGETS)
def test_cli_round_trip_record_then_check_passes(target, npz, model_file, tmp_path, capsys):
    out = tmp_path / "fx"
    assert main(["fixtures", "record", str(model_file), "-t", target, "-i", npz["in"], "--calib", npz["cal"],
                 "-o", str(out), "-q"]) == 0
    assert capsys.readouterr().out == ""          # -q
    assert main(["fixtures", "check", str(out)]) == 0
    m = _manifest(out)
    n_calib = sum(f["role"] == "calibration" for f in m["files"])
    # 6 integer layers: conv1, depthwise conv2, pointwise conv3, the residual add, conv4, fc
    assert f"all {len(m['files']) - n_calib} arrays of 6 layers match on {target}" in capsys.readouterr().out


@pytest.mark.parametrize("target", TARGETS)
def test_manifest_hashes_versions_and_node_list(recorded, model_file, target):
    d = recorded[target]
    m = _manifest(d)
    assert m["format"] == "hwsim-fixtures" and m["hwsim_version"] == hwsim.__version__
    profile = hwsim.load_target(target)
    canonical = json.dumps(profile.describe(), sort_keys=True, separators=(",", ":")).encode()
    assert m["target"] == {"name": target, "source": "builtin", "path": None, "relative_path": None,
                           "sha256": hashlib.sha256(canonical).hexdigest(), "profile": profile.describe()}
    assert m["model"]["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert m["model"]["path"] == str(model_file.resolve())
    q = _requantize(m, hwsim.load_model(model_file), target, {"image": np.zeros((1, 1, 8, 8), np.float32)})
    assert [n["name"] for n in m["model"]["nodes"]] == [n.name for n in q.nodes]
    assert m["seeds"]["used"] is False and "none used" in m["seeds"]["note"]
    for f in m["files"]:
        data = (d / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"], f["path"]
        arr = np.load(d / f["path"])
        assert list(arr.shape) == f["shape"] and str(arr.dtype) == f["dtype"]


def test_roles_and_dtypes_per_target(recorded):
    """tflite-reference: conv requantises in Q31 (multiplier + shift), FC in float64 (a double scale);
    npu-acc16: shift-only everywhere and a 16-bit accumulator (stored as int16)."""
    def layer_files(target, name):
        m = _manifest(recorded[target])
        layer = next(l for l in m["layers"] if l["name"] == name)
        return {f["path"].rsplit("/", 1)[1]: f for f in m["files"] if f["path"] in layer["files"]}, layer

    files, layer = layer_files("tflite-reference", "conv1/conv")
    assert sorted(files) == sorted(["input.npy", "weights.npy", "bias.npy", "multiplier.npy", "shift.npy",
                                    "accumulator.npy", "output.npy"])
    assert {k: (v["role"], v["dtype"], v["layout"]) for k, v in files.items()} == {
        "input.npy": ("input", "int8", "NHWC"), "weights.npy": ("weights", "int8", "OHWI"),
        "bias.npy": ("bias", "int32", "C"), "multiplier.npy": ("multiplier", "int32", "C"),
        "shift.npy": ("shift", "int8", "C"), "accumulator.npy": ("accumulator", "int32", "NHWC"),
        "output.npy": ("output", "int8", "NHWC")}
    assert files["weights.npy"]["shape"] == [16, 3, 3, 1] and files["input.npy"]["shape"] == [3, 8, 8, 1]
    files, layer = layer_files("tflite-reference", "fc")
    assert files["scale.npy"]["dtype"] == "float64" and "multiplier.npy" not in files
    assert files["weights.npy"]["shape"] == [10, 1024] and files["input.npy"]["layout"] == "NC"
    files, layer = layer_files("npu-acc16", "conv3_pw/conv")
    assert "multiplier.npy" not in files and files["shift.npy"]["role"] == "shift"
    assert files["accumulator.npy"]["dtype"] == "int16"
    assert layer["params"]["accumulator"]["acc_bits"] == 16
    files, layer = layer_files("npu-acc16", "residual/add")
    assert sorted(files) == ["input_0.npy", "input_1.npy", "output.npy"]
    assert layer["params"]["scheme"] == "tflite_fixed_point"


@pytest.mark.parametrize("target", TARGETS)
def test_layers_chain_and_outputs_match_simulate(recorded, digits, target):
    d = recorded[target]
    m = _manifest(d)
    load = {f["path"]: np.load(d / f["path"]) for f in m["files"]}
    by_tensor_in = {}
    for f in m["files"]:
        if f["role"] == "input" and f["layer"] is not None:
            by_tensor_in.setdefault(f["tensor"], []).append(load[f["path"]])
    chained = 0
    for f in m["files"]:
        if f["role"] == "output" and f["layer"] is not None and f["tensor"] in by_tensor_in:
            for x in by_tensor_in[f["tensor"]]:
                np.testing.assert_array_equal(x, load[f["path"]])
                chained += 1
    assert chained >= 4        # conv1 -> conv2_dw and -> add, conv2_dw -> conv3_pw, conv3_pw -> add, add -> conv4
    g = hwsim.load_model(m["model"]["path"])
    q = _requantize(m, g, target, {"image": digits["calib"]})
    ref = hwsim.simulate(q, target, {"image": digits["x"]})
    out = next(f for f in m["files"] if f["role"] == "output" and f["layer"] is None)
    np.testing.assert_array_equal(load[out["path"]], ref.outputs["logits"])
    inp = next(f for f in m["files"] if f["role"] == "input" and f["layer"] is None)
    np.testing.assert_array_equal(load[inp["path"]], digits["x"])
    assert inp["layout"] == "NCHW"


def _stage(req, stage, arrays):
    lo, hi = stage["channels"]
    kw = {k: arrays[k][lo:hi] for k in ("multiplier", "shift", "scale") if k in arrays}
    if stage["scheme"] == "shift_only":
        kw.pop("multiplier", None)
    return RequantParams(stage["scheme"], **kw, zero_point=req["zero_point"], out_bits=req["out_bits"],
                         out_signed=req["out_signed"], out_min=req["out_min"], out_max=req["out_max"],
                         out_overflow=req["out_overflow"], rounding=stage["rounding"], seed=stage["seed"])


def _requant_from_files(params, arrays):
    req = params["requantize"]
    stages = [_stage(req, st, arrays) for st in req["stages"]]
    if len(stages) == 1:
        return stages[0]
    return SplitRequant(stages[0], stages[1], req["stages"][1]["channels"][0])


def _bench_rerun(d) -> int:
    """Re-run every conv / fully-connected layer from its files and manifest parameters alone."""
    m = _manifest(d)
    checked = 0
    for layer in m["layers"]:
        if layer["op"] not in ("conv2d", "fully_connected"):
            continue
        a = {p.rsplit("/", 1)[1][:-4]: np.load(d / p) for p in layer["files"]}
        p = layer["params"]
        acc = p["accumulator"]
        spec = AccumSpec(group=acc["group"], group_bits=acc["group_bits"], group_overflow=Overflow(acc["group_overflow"]),
                         acc_bits=acc["acc_bits"], acc_overflow=Overflow(acc["acc_overflow"]),
                         input_zero_point=ZeroPointPlacement(acc["input_zero_point"]), bias_first=acc["bias"] == "first")
        zw = p["weight_zero_point"] if isinstance(p["weight_zero_point"], int) else np.array(p["weight_zero_point"])
        common = dict(bias=a.get("bias"), accum=spec, requant=_requant_from_files(p, a), out_dtype=a["output"].dtype,
                      return_accumulators=True)
        if layer["op"] == "conv2d":
            c = p["conv"]
            res = hwsim.kernels.conv2d(a["input"], a["weights"], stride=tuple(c["stride"]),
                                       dilation=tuple(c["dilation"]), padding=tuple(c["padding"]), groups=c["groups"],
                                       x_zero_point=p["input_zero_point"], w_zero_point=zw, **common)
        else:
            res = hwsim.kernels.gemm(a["input"], a["weights"], a_zero_point=p["input_zero_point"], b_zero_point=zw,
                                     **common)
        np.testing.assert_array_equal(res.accumulators, a["accumulator"].astype(np.int64), err_msg=layer["name"])
        np.testing.assert_array_equal(res.output, a["output"], err_msg=layer["name"])
        checked += 1
    return checked


@pytest.mark.parametrize("target", TARGETS)
def test_a_test_bench_reproduces_accumulators_and_outputs_from_the_files_alone(recorded, target):
    assert _bench_rerun(recorded[target]) == 5


@pytest.mark.parametrize("target", ["tflite-reference", "x86-avx2", "arm-neon-sdot"])
def test_bench_rerun_of_a_uint8_qoperator_model(tmp_path, target):
    """onnxruntime QOperator u8 model (tests/sim/small_graph): on the int8 LiteRT engines its activations are
    re-biased (x - 128), and the fixtures hold the kernel's view; on x86-avx2 u8 runs as is (pair saturation)."""
    from tests.sim import small_graph

    _, model = small_graph.make(np.random.default_rng(3), return_model=True)
    path = tmp_path / "q.onnx"
    onnx.save(model, path)
    x = np.random.default_rng(4).normal(0, 1, (1, 3, 8, 8)).astype(np.float32)
    g = hwsim.load_model(path)
    manifest = hwsim.fixtures.record(g, target, {"x": x}, tmp_path / "fx")
    assert manifest.data["model"]["rebuild"] == "load"
    conv1 = next(l for l in manifest.layers if l["op"] == "conv2d")
    rebiased = target != "x86-avx2"
    assert conv1["params"]["input_rebiased"] is rebiased and conv1["params"]["output_rebiased"] is rebiased
    inp = np.load(tmp_path / "fx" / conv1["files"][0])
    assert inp.dtype == (np.int8 if rebiased else np.uint8)
    # the kernel's input zero point is the model's minus 128 where re-biased
    z_model = int(g.tensor(next(n for n in g.nodes if n.op == "conv2d").inputs[0]).quant.zero_point)
    assert conv1["params"]["input_zero_point"] == z_model - (128 if rebiased else 0)
    assert _bench_rerun(tmp_path / "fx") == 4     # 3x3 conv, depthwise, 1x1 conv, QLinearMatMul (constant B: fully_connected)
    assert hwsim.fixtures.check(tmp_path / "fx").layers == len(manifest.layers)


def test_requantisation_parameters_mean_the_layer_scales(recorded, digits):
    """Closed forms: npu-acc16 shift-only has s_x * s_w / s_y == 2**shift exactly; tflite-reference's Q31
    multiplier * 2**(shift - 31) is s_x * s_w[c] / s_y to within 2**-31 relative (QuantizeMultiplier)."""
    for target in TARGETS:
        d = recorded[target]
        m = _manifest(d)
        g = hwsim.load_model(m["model"]["path"])
        q = _requantize(m, g, target, {"image": digits["calib"]})
        nodes = {n.name: n for n in q.nodes}
        layer = next(l for l in m["layers"] if l["name"] == "conv3_pw/conv")
        node = nodes["conv3_pw/conv"]
        sx = float(q.tensor(node.inputs[0]).quant.scale)
        sw = np.broadcast_to(q.tensor(node.inputs[1]).quant.scale.astype(np.float64), (16,))
        sy = float(q.tensor(node.outputs[0]).quant.scale)
        ratio = sx * sw / sy
        files = {p.rsplit("/", 1)[1][:-4]: np.load(d / p) for p in layer["files"]}
        if target == "npu-acc16":
            assert np.all(ratio == 2.0 ** files["shift"].astype(np.float64))
        else:
            approx = files["multiplier"].astype(np.float64) * 2.0 ** (files["shift"].astype(np.float64) - 31)
            assert np.all(np.abs(approx / ratio - 1) <= 2.0 ** -30)
            assert np.all(files["multiplier"] >= 2 ** 30)       # normalised Q31 mantissas in [0.5, 1)


def test_python_api_returns_the_manifest_and_check_summary(recorded):
    summary = hwsim.fixtures.check(recorded["npu-acc16"])
    m = hwsim.fixtures.read_manifest(recorded["npu-acc16"])
    assert summary.files_hashed == len(m.files)
    assert summary.arrays_compared == len(m.files) - 1      # all but the calibration data
    assert summary.layers == 6 and summary.target == "npu-acc16"
    assert len(m.layers) == 6


def _float_depthwise_model(path, channels=12, seed=5):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, (channels, 1, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, channels).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=channels, pads=[1, 1, 1, 1], name="dw")
    graph = helper.make_graph([node], "dw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, 6, 6])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return rng.normal(0, 1, (1, channels, 6, 6)).astype(np.float32), rng.normal(0, 1, (8, channels, 6, 6)).astype(np.float32)


def test_split_requantisation_of_neon_depthwise_is_recorded_per_channel(tmp_path):
    """arm-neon-sdot's depthwise requantises channels 0..7 (the NEON blocks of 8) with srdhm_half_up and the
    remainder 8..11 with double_rounding (LiteRT's scalar tail): one multiplier / shift per channel, two stages."""
    x, calib = _float_depthwise_model(tmp_path / "dw.onnx")
    m = hwsim.fixtures.record(hwsim.load_model(tmp_path / "dw.onnx"), "arm-neon-sdot", {"x": x}, tmp_path / "fx",
                              calibration={"x": calib})
    (layer,) = m.layers
    stages = layer["params"]["requantize"]["stages"]
    assert [(s["channels"], s["scheme"]) for s in stages] == [([0, 8], "srdhm_half_up"), ([8, 12], "double_rounding")]
    assert layer["params"]["target_op"] == "depthwise_conv2d"
    assert _bench_rerun(tmp_path / "fx") == 1
    assert main(["fixtures", "check", str(tmp_path / "fx"), "-q"]) == 0


def test_the_vectors_do_not_depend_on_the_thread_count(recorded, digits, model_file, tmp_path):
    g = hwsim.load_model(model_file)
    m2 = hwsim.fixtures.record(g, "tflite-reference", {"image": digits["x"]}, tmp_path / "t2", model_path=model_file,
                               calibration={"image": digits["calib"]}, n_threads=2)
    m1 = hwsim.fixtures.read_manifest(recorded["tflite-reference"])
    assert [(f.path, f.sha256) for f in m2.files] == [(f.path, f.sha256) for f in m1.files]


def test_an_in_memory_quantized_graph_checks_from_python_only(digits, model_file, tmp_path, capsys):
    q = hwsim.sim.minmax_quantize.minmax_quantize(hwsim.load_model(model_file), "npu-acc16", {"image": digits["calib"]})
    m = hwsim.fixtures.record(q, "npu-acc16", {"image": digits["x"]}, tmp_path / "fx")
    assert m.model["rebuild"] is None and m.model["sha256"] is None
    assert hwsim.fixtures.check(tmp_path / "fx", q, "npu-acc16").layers == 6
    assert main(["fixtures", "check", str(tmp_path / "fx")]) == 2
    assert "recorded from an in-memory graph" in capsys.readouterr().err
    with pytest.raises(hwsim.fixtures.FixtureError, match="a float model; give calibration"):
        hwsim.fixtures.record(hwsim.load_model(model_file), "npu-acc16", {"image": digits["x"]}, tmp_path / "f2")


def test_stochastic_rounding_records_its_seed(tmp_path, digits, model_file):
    profile = tmp_path / "npu-stochastic.yaml"
    text = hwsim.load_target("npu-acc16").to_yaml()
    profile.write_text(text.replace("{scheme: shift_only, rounding: half_up}", "{scheme: shift_only, rounding: stochastic}")
                       .replace("name: npu-acc16", "name: npu-stochastic"))
    m = hwsim.fixtures.record(hwsim.load_model(model_file), profile, {"image": digits["x"]}, tmp_path / "fx",
                              calibration={"image": digits["calib"]})
    assert m.data["seeds"]["used"] is True
    assert m.data["seeds"]["stochastic_rounding"] == {"conv1/conv": 0, "conv2_dw/conv": 0, "conv3_pw/conv": 0,
                                                      "conv4/conv": 0, "fc": 0}
    assert hwsim.fixtures.check(tmp_path / "fx").layers == 6

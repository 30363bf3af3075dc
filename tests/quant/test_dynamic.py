"""Dynamic quantization against onnxruntime: its DynamicQuantizeLinear op, and whole quantize_dynamic models.

The reference is onnxruntime itself on the same inputs: the model files ``quantize_dynamic`` writes
(per tensor and per channel) run through ``hwsim.load_model`` + ``hwsim.simulate`` on
``onnxruntime-x86`` must give onnxruntime's outputs bit for bit, and so must
``dynamic_quantize_graph`` applied to the float model.
"""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import hwsim
from hwsim.quant.dynamic import dynamic_qparams, dynamic_quantize_graph
from hwsim.quant.params import QuantFormat

ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

TARGET = "onnxruntime-x86"


def _model(path, *, x_shape=(None, 16), gemm_trans_b=False):
    """x [N, 16] -> MatMul W[16, 12] -> Add B -> Relu -> Gemm (W2, B2) -> y [N, 5]."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 12)).astype(np.float32)
    w[:, 3] = 0.0                                     # an all-zero output channel (per-channel scale 1)
    bias = rng.normal(size=12).astype(np.float32)
    w2 = rng.normal(size=(5, 12) if gemm_trans_b else (12, 5)).astype(np.float32) * 0.3
    b2 = rng.normal(size=5).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h0"], name="mm1"),
             helper.make_node("Add", ["h0", "B"], ["h"], name="add1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu1"),
             helper.make_node("Gemm", ["r", "W2", "B2"], ["y"], name="gemm2", transB=int(gemm_trans_b))]
    graph = helper.make_graph(
        nodes, "dyn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "W"), (bias, "B"), (w2, "W2"), (b2, "B2"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return str(path)


def _quantize_dynamic(src, dst, per_channel):
    logging.getLogger().setLevel(logging.ERROR)     # onnxruntime warns about pre-processing
    quantization.quantize_dynamic(src, dst, per_channel=per_channel, weight_type=quantization.QuantType.QInt8)
    return dst


def _inputs(seed=1, n=40):
    """Random batches at several magnitudes, an all-zero batch, a single huge outlier, one-signed data."""
    rng = np.random.default_rng(seed)
    out = [np.zeros((3, 16), np.float32)]
    spike = (rng.normal(size=(4, 16)) * 0.1).astype(np.float32)
    spike[2, 7] = 1e6
    out.append(spike)
    out.append(np.abs(rng.normal(size=(2, 16))).astype(np.float32))
    out.append(-np.abs(rng.normal(size=(2, 16))).astype(np.float32))
    out.append(np.full((1, 16), 3.5, np.float32))
    for _ in range(n):
        out.append((rng.normal(size=(int(rng.integers(1, 7)), 16)) * rng.choice([1e-3, 1.0, 50.0])
                    + rng.normal()).astype(np.float32))
    return out


@pytest.fixture(scope="module", params=[False, True], ids=["per-tensor", "per-channel"])
def models(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("dyn")
    float_path = _model(d / "float.onnx", gemm_trans_b=request.param)
    q_path = _quantize_dynamic(float_path, str(d / "dynamic.onnx"), request.param)
    return float_path, q_path, request.param


def test_quantize_dynamic_model_bit_exact(models):
    _, q_path, _ = models
    session = ort.InferenceSession(q_path, providers=["CPUExecutionProvider"])
    graph = hwsim.load_model(q_path)
    assert [n.op for n in graph.nodes].count("dynamic_quantize") == 2
    for x in _inputs():
        want = session.run(None, {"x": x})[0]
        got = hwsim.simulate(graph, TARGET, {"x": x}).outputs["y"]
        assert got.dtype == np.float32 and np.array_equal(got, want), x


def test_dynamic_quantize_graph_bit_exact(models):
    float_path, q_path, per_channel = models
    session = ort.InferenceSession(q_path, providers=["CPUExecutionProvider"])
    graph = dynamic_quantize_graph(hwsim.load_model(float_path), TARGET, per_channel=per_channel)
    assert graph.kind == "dynamic" and graph.float_source is not None
    fcs = [n for n in graph.nodes if n.op == "fully_connected"]
    assert [n.name for n in fcs] == ["mm1", "gemm2"]          # integer layers keep the float node names
    for x in _inputs(seed=2, n=20):
        want = session.run(None, {"x": x})[0]
        assert np.array_equal(hwsim.simulate(graph, TARGET, {"x": x}).outputs["y"], want)


def test_trace_and_float_reference(models):
    float_path, q_path, _ = models
    graph = hwsim.load_model(q_path)
    x = _inputs()[-1]
    res = hwsim.simulate(graph, TARGET, {"x": x}, trace=True)
    assert res.accumulators and all(a.dtype == np.int64 for a in res.accumulators.values())
    # the dequantised graph computes the float model with quantized weights: close to the float model
    ref = hwsim.float_reference(graph, {"x": x})["y"]
    fl = hwsim.float_reference(hwsim.load_model(float_path), {"x": x})["y"]
    assert np.abs(ref - fl).max() < 0.05 * np.abs(fl).max()


def _dql_session(tmp_path):
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])
    graph = helper.make_graph([node], "dql", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [None]),
                               helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
                               helper.make_tensor_value_info("z", TensorProto.UINT8, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = str(tmp_path / "dql.onnx")
    onnx.save(model, path)
    return path, ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def test_dynamic_quantize_linear_op_against_onnxruntime(tmp_path):
    path, session = _dql_session(tmp_path)
    graph = hwsim.load_model(path)
    rng = np.random.default_rng(3)
    cases = [np.zeros(5, np.float32), np.array([-1.0, 0.0, 2.0], np.float32), np.array([7.25], np.float32),
             np.array([-3e38, 1e-38], np.float32), np.array([1e-30, 2e-30], np.float32)]
    cases += [(rng.normal(size=int(rng.integers(1, 300))) * rng.choice([1e-4, 1, 1e4]) + rng.normal())
              .astype(np.float32) for _ in range(60)]
    for x in cases:
        y, s, z = session.run(None, {"x": x})
        res = hwsim.simulate(graph, TARGET, {"x": x}, trace=True)
        assert np.array_equal(res.outputs["y"], y), x
        assert res.tensors["s"] == s and res.tensors["z"] == z
        assert dynamic_qparams(x) == (s, int(z))


def test_dynamic_qparams_hand_computed():
    # [-1, 0, 2]: range [-1, 2], scale = fl32(3 / 255) = 0.011764706, zero point = rint(1 / scale) = 85
    scale, zp = dynamic_qparams(np.array([-1.0, 0.0, 2.0], np.float32))
    assert scale == np.float32(3 / 255) and zp == 85
    # one-signed data: 0 joins the range -> [0, 1] (zp 0) and [-2, 0] (zp 255)
    assert dynamic_qparams(np.array([0.5, 1.0], np.float32)) == (np.float32(1 / 255), 0)
    assert dynamic_qparams(np.array([-2.0, -1.0], np.float32)) == (np.float32(2 / 255), 255)
    # all zeros: scale 1, zero point 0 (onnxruntime's max == min case)
    assert dynamic_qparams(np.zeros(4, np.float32)) == (np.float32(1.0), 0)


def test_other_targets_run_the_same_accumulators(models):
    # every target with an exact int32 accumulator for these small layers gives the same outputs;
    # x86-avx2 saturates u8*s8 pairs in int16 (VPMADDUBSW), so it may differ, and must still run
    _, q_path, _ = models
    graph = hwsim.load_model(q_path)
    x = (np.random.default_rng(9).normal(size=(3, 16)) * 4).astype(np.float32)
    base = hwsim.simulate(graph, TARGET, {"x": x}).outputs["y"]
    for target in ("tflite-reference", "arm-neon-sdot", "onnxruntime-arm64", "x86-avx2"):
        got = hwsim.simulate(graph, target, {"x": x}).outputs["y"]
        if target != "x86-avx2":
            assert np.array_equal(got, base), target


def test_matmul_rank3_per_tensor(tmp_path):
    rng = np.random.default_rng(4)
    w = rng.normal(size=(16, 8)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], "m3",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 8])],
                              [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(tmp_path / "f3.onnx"))
    q_path = _quantize_dynamic(str(tmp_path / "f3.onnx"), str(tmp_path / "q3.onnx"), False)
    session = ort.InferenceSession(q_path, providers=["CPUExecutionProvider"])
    imported = hwsim.load_model(q_path)
    built = dynamic_quantize_graph(hwsim.load_model(str(tmp_path / "f3.onnx")), TARGET)
    for _ in range(5):
        x = rng.normal(size=(2, 3, 16)).astype(np.float32)
        want = session.run(None, {"x": x})[0]
        assert np.array_equal(hwsim.simulate(imported, TARGET, {"x": x}).outputs["y"], want)
        assert np.array_equal(hwsim.simulate(built, TARGET, {"x": x}).outputs["y"], want)
    with pytest.raises(ValueError, match="node 'mm'.*per-channel dynamic quantization of a matmul"):
        dynamic_quantize_graph(hwsim.load_model(str(tmp_path / "f3.onnx")), TARGET, per_channel=True)


def test_weight_format_option(models):
    # 4-bit symmetric restricted weights: codes within [-7, 7], the graph still runs on the target
    float_path, _, _ = models
    fmt = QuantFormat(4, signed=True, symmetric=True, narrow=True)
    graph = dynamic_quantize_graph(hwsim.load_model(float_path), "npu-acc24", weight_fmt=fmt, per_channel=True)
    codes = [t.data for t in graph.tensors.values() if t.is_constant and t.dtype == np.int8]
    assert codes and all(c.min() >= -7 and c.max() <= 7 for c in codes)
    x = _inputs()[-1]
    y = hwsim.simulate(graph, "npu-acc24", {"x": x}).outputs["y"]
    fl = hwsim.float_reference(hwsim.load_model(float_path), {"x": x})["y"]
    assert np.abs(y - fl).max() < 0.5 * np.abs(fl).max()         # coarse, but the same function


def test_bad_input(models, tmp_path):
    float_path, q_path, _ = models
    graph = hwsim.load_model(q_path)
    bad = np.ones((2, 16), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(hwsim.SimulationError, match="holds NaN or Inf"):
        hwsim.simulate(graph, TARGET, {"x": bad})
    with pytest.raises(hwsim.SimulationError, match="is empty"):
        hwsim.simulate(graph, TARGET, {"x": np.zeros((0, 16), np.float32)})
    with pytest.raises(ValueError, match="already quantized"):
        dynamic_quantize_graph(graph, TARGET)
    with pytest.raises(ValueError, match="weight_fmt: expected a QuantFormat"):
        dynamic_quantize_graph(hwsim.load_model(float_path), TARGET, weight_fmt="int8")


def _conv_model(path):
    """x [N, 3, 9, 9] -> Conv 3x3 stride 2 pad 1 (bias) -> Relu -> depthwise 3x3 -> Conv 1x1 (no bias) -> y."""
    rng = np.random.default_rng(5)
    w1 = rng.normal(size=(6, 3, 3, 3)).astype(np.float32)
    b1 = rng.normal(size=6).astype(np.float32)
    wd = rng.normal(size=(6, 1, 3, 3)).astype(np.float32)
    w2 = rng.normal(size=(4, 6, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "WD"], ["d1"], pads=[1, 1, 1, 1], group=6, name="dw"),
             helper.make_node("Conv", ["d1", "W2"], ["y"], name="conv2")]
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 9, 9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4, 5, 5])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "W1"), (b1, "B1"), (wd, "WD"), (w2, "W2"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("per_channel", [False, True])
def test_conv_integer_dynamic_bit_exact(tmp_path, per_channel):
    """quantize_dynamic's default also turns Conv into DynamicQuantizeLinear -> ConvInteger -> Cast -> Mul."""
    float_path = _conv_model(tmp_path / "conv.onnx")
    q_path = _quantize_dynamic(float_path, str(tmp_path / "conv_dyn.onnx"), per_channel)
    session = ort.InferenceSession(q_path, providers=["CPUExecutionProvider"])
    imported = hwsim.load_model(q_path)
    built = dynamic_quantize_graph(hwsim.load_model(float_path), TARGET, per_channel=per_channel)
    assert [n.name for n in built.nodes if n.op == "conv2d"] == ["conv1", "dw", "conv2"]
    rng = np.random.default_rng(6)
    for i in range(12):
        x = (rng.normal(size=(int(rng.integers(1, 4)), 3, 9, 9)) * rng.choice([0.1, 1.0, 10.0])).astype(np.float32)
        if i == 0:
            x[:] = 0.0
        want = session.run(None, {"x": x})[0]
        assert np.array_equal(hwsim.simulate(imported, TARGET, {"x": x}).outputs["y"], want)
        assert np.array_equal(hwsim.simulate(built, TARGET, {"x": x}).outputs["y"], want)
    only_fc = dynamic_quantize_graph(hwsim.load_model(float_path), TARGET, ops=("fully_connected",))
    assert not any(n.op == "dynamic_quantize" for n in only_fc.nodes)
    with pytest.raises(ValueError, match="'softmax' cannot be quantized dynamically"):
        dynamic_quantize_graph(hwsim.load_model(float_path), TARGET, ops=("softmax",))


def test_demo_model_dynamic_runs_close_to_onnxruntime(tmp_path):
    """The bundled CNN through quantize_dynamic: every conv and the FC dynamic, batch-norm left in float
    by onnxruntime (hwsim computes it as x * m + s, not onnxruntime's exact order: a few float32 ulps)."""
    import hwsim.demo

    q_path = _quantize_dynamic(str(hwsim.demo.model_path()), str(tmp_path / "demo_dyn.onnx"), False)
    session = ort.InferenceSession(q_path, providers=["CPUExecutionProvider"])
    x = hwsim.demo.load_digits()["x_test"][:32].astype(np.float32)
    want = session.run(None, {"image": x})[0]
    got = hwsim.simulate(hwsim.load_model(q_path), TARGET, {"image": x}).outputs["logits"]
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    assert np.array_equal(got.argmax(axis=1), want.argmax(axis=1))


def _save(tmp_path, nodes, inputs, outputs, name):
    graph = helper.make_graph(nodes, name, inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def test_import_errors_name_the_node(tmp_path):
    # a run-time Cast other than integer -> float32
    path = _save(tmp_path, [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT32, name="to_int")],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                 [helper.make_tensor_value_info("y", TensorProto.INT32, [2])], "cast_int")
    with pytest.raises(hwsim.ModelError, match="node 'to_int' \\(Cast\\).*integer tensor to float32"):
        hwsim.load_model(path)
    # MatMulInteger whose run-time zero point is not a DynamicQuantizeLinear output
    w = numpy_helper.from_array(np.ones((4, 3), np.int8), "W")
    nodes = [helper.make_node("MatMulInteger", ["a", "W", "azp"], ["y"], name="mmi")]
    graph = helper.make_graph(nodes, "mmi", [helper.make_tensor_value_info("a", TensorProto.UINT8, [2, 4]),
                                             helper.make_tensor_value_info("azp", TensorProto.INT32, [])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [2, 3])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(tmp_path / "mmi.onnx"))
    with pytest.raises(hwsim.ModelError, match="node 'mmi'.*run-time zero point 'azp' must be a uint8 scalar"):
        hwsim.load_model(tmp_path / "mmi.onnx")

"""hwsim.save_model: quantized graphs as QDQ ONNX models that onnxruntime runs bit for bit like hwsim.

The bar (issue 4, deliverable 5): for ``onnxruntime-x86`` graphs,
(a) onnxruntime (CPUExecutionProvider, default optimisation) runs the exported file,
(b) its output equals ``hwsim.simulate(hwsim.load_model(exported), "onnxruntime-x86", x)`` exactly, and
(c) equals ``hwsim.simulate`` of the graph before export too.
The independent reference is onnxruntime itself.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import types

import numpy as np
import pytest
from onnx_models import init, model, save

import hwsim
from hwsim.graph.ir import QuantParams
from hwsim.sim.minmax_quantize import minmax_quantize

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TARGET = "onnxruntime-x86"

# the shared models, found as tests/graph/conftest.py finds them ("conftest" names two modules here)
_root_spec = importlib.util.spec_from_file_location("_hwsim_tests_root_conftest_export",
                                                    pathlib.Path(__file__).resolve().parents[1] / "conftest.py")
_root = importlib.util.module_from_spec(_root_spec)
_root_spec.loader.exec_module(_root)
_SHARED = pathlib.Path(os.environ["HWSIM_SHARED"]) if os.environ.get("HWSIM_SHARED") else _root.SHARED
EFFNET = _SHARED / "models" / "efficientnet_lite0_fp32.onnx"
CALIB = _SHARED / "models" / "efficientnet_lite0_calib.npz"


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

def _ort_run(path, feeds: dict) -> list:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])   # default optimisation level
    return sess.run(None, feeds)


def _check_bit_exact(q, path, feeds: dict) -> list:
    """Export ``q`` to ``path`` and assert (a), (b), (c) of the module docstring; returns onnxruntime's outputs."""
    hwsim.save_model(q, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    got = _ort_run(path, feeds)                                                          # (a)
    reloaded = hwsim.simulate(hwsim.load_model(path, qdq_fusion=TARGET), TARGET, feeds).outputs
    before = hwsim.simulate(q, TARGET, feeds).outputs
    assert list(reloaded) == list(before) == q.outputs
    for name, ort_out in zip(q.outputs, got):
        np.testing.assert_array_equal(ort_out, reloaded[name], err_msg=f"{name}: onnxruntime vs reloaded")   # (b)
        np.testing.assert_array_equal(ort_out, before[name], err_msg=f"{name}: onnxruntime vs before export")  # (c)
    return got


def _w(rng, *shape) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.3).astype(np.float32)


def _conv(x, y, name, k, **attrs):
    from onnx import helper

    return helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [y], name=name, kernel_shape=[k, k], **attrs)


def _conv_inits(rng, name, o, i, k) -> list:
    return [init(f"{name}_w", _w(rng, o, i, k, k)), init(f"{name}_b", _w(rng, o))]


def _float_model(tmp_path, nodes, inits, in_shape, opset=13):
    m = model(nodes, {"x": ("N",) + tuple(in_shape[1:])}, ["y"], inits, opset=opset)
    m.ir_version = 7
    return hwsim.load_model(save(m, tmp_path, "float.onnx"))


def _quantized(tmp_path, nodes, inits, in_shape, seed=1, opset=13):
    g = _float_model(tmp_path, nodes, inits, in_shape, opset)
    rng = np.random.default_rng(seed)
    calib = {"x": rng.standard_normal((8,) + tuple(in_shape[1:])).astype(np.float32)}
    x = {"x": rng.standard_normal((16,) + tuple(in_shape[1:])).astype(np.float32)}
    return minmax_quantize(g, TARGET, calib), x


# ------------------------------------------------------------------------------------------------
# synthetic graphs
# ------------------------------------------------------------------------------------------------

def _geometry(rng):
    """Asymmetric pads + stride + groups, Clip(0, 6), depthwise with multiplier 2, strided 1x1 without bias."""
    from onnx import helper

    nodes = [_conv("x", "c1", "c1", 3, pads=[1, 0, 2, 1], strides=[2, 1], group=2),
             helper.make_node("Clip", ["c1", "lo", "hi"], ["r1"], name="relu6"),
             _conv("r1", "c2", "dw", 3, pads=[1, 1, 1, 1], group=4),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu"),
             helper.make_node("Conv", ["r2", "pw_w"], ["y"], name="pw", kernel_shape=[1, 1], strides=[1, 2])]
    inits = (_conv_inits(rng, "c1", 4, 2, 3) + _conv_inits(rng, "dw", 8, 1, 3)
             + [init("lo", np.float32(0)), init("hi", np.float32(6)), init("pw_w", _w(rng, 5, 8, 1, 1))])
    return nodes, inits, (1, 4, 9, 9)


def _residual_pools_fc(rng):
    """Residual add, average and max pool, concat, global average pool, flatten, Gemm."""
    from onnx import helper

    nodes = [_conv("x", "c1", "c1", 3, pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
             _conv("r1", "c2", "c2", 3, pads=[1, 1, 1, 1]), helper.make_node("Add", ["c2", "r1"], ["a"], name="res"),
             helper.make_node("AveragePool", ["a"], ["p"], name="avg", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("MaxPool", ["a"], ["mp"], name="max", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Concat", ["p", "mp"], ["cat"], name="cat", axis=1),
             helper.make_node("GlobalAveragePool", ["cat"], ["gap"], name="gap"),
             helper.make_node("Flatten", ["gap"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name="fc", transB=1)]
    inits = (_conv_inits(rng, "c1", 6, 3, 3) + _conv_inits(rng, "c2", 6, 6, 3)
             + [init("fc_w", _w(rng, 7, 12)), init("fc_b", _w(rng, 7))])
    return nodes, inits, (1, 3, 8, 8)


def _flatten_matmul(rng):
    """A 1x1 conv flattened (the element order of NCHW) into a MatMul with a Relu."""
    from onnx import helper

    nodes = [helper.make_node("Conv", ["x", "c1_w"], ["c1"], name="c1", kernel_shape=[1, 1]),
             helper.make_node("Flatten", ["c1"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "mm_w"], ["m"], name="mm"),
             helper.make_node("Relu", ["m"], ["y"], name="relu")]
    return nodes, [init("c1_w", _w(rng, 4, 2, 1, 1)), init("mm_w", _w(rng, 100, 6))], (1, 2, 5, 5)


GRAPHS = {"conv_geometry": _geometry, "residual_pools_fc": _residual_pools_fc, "flatten_matmul": _flatten_matmul}


@pytest.mark.parametrize("build", GRAPHS.values(), ids=list(GRAPHS))
def test_synthetic_graphs_bit_exact(tmp_path, build):
    nodes, inits, shape = build(np.random.default_rng(0))
    q, x = _quantized(tmp_path, nodes, inits, shape)
    _check_bit_exact(q, tmp_path / "q.onnx", x)
    # the Relu / Clip(0, 6) written between each op and its QuantizeLinear come back as the same fused activation
    back = {n.name: n for n in hwsim.load_model(tmp_path / "q.onnx").nodes}
    fused = {n.name: n.attrs["activation"] for n in q.nodes if n.attrs.get("activation") is not None}
    assert fused and {name: back[name].attrs.get("activation") for name in fused} == fused


# one op between two convs, so that minmax_quantize leaves DQ -> op -> Q around it (onnxruntime fuses
# several of those into QLinear ops; hwsim's importer does the same and must still agree with the graph)
BETWEEN = {
    "AveragePool": ([], dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])),
    "MaxPool": ([], dict(kernel_shape=[2, 2], strides=[1, 1])),
    "Sigmoid": ([], {}), "Tanh": ([], {}), "HardSwish": ([], {}), "LeakyRelu": ([], dict(alpha=0.1)),
    "Mul": (["c0"], {}), "Sub": (["c0"], {}), "Concat": (["c0"], dict(axis=1)),
    "Pad": (["pads", "pad_value"], dict(mode="constant")), "Transpose": ([], dict(perm=[0, 1, 3, 2])),
    "ReduceMean": ([], dict(axes=[2, 3], keepdims=1)),
}


@pytest.mark.parametrize("op_type", list(BETWEEN))
def test_op_between_convs_bit_exact(tmp_path, op_type):
    from onnx import helper

    rng = np.random.default_rng(2)
    extra, attrs = BETWEEN[op_type]
    nodes = [_conv("x", "c0", "c0", 3, pads=[1, 1, 1, 1]),
             helper.make_node(op_type, ["c0"] + extra, ["t"], name="op", **attrs), _conv("t", "y", "c1", 1)]
    inits = (_conv_inits(rng, "c0", 4, 3, 3) + _conv_inits(rng, "c1", 5, 8 if op_type == "Concat" else 4, 1)
             + [init("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)), init("pad_value", np.float32(0.0))])
    opset = 14 if op_type == "HardSwish" else 13
    q, x = _quantized(tmp_path, nodes, inits, (1, 3, 6, 6), opset=opset)
    _check_bit_exact(q, tmp_path / "q.onnx", x)
    assert onnx.load(str(tmp_path / "q.onnx")).opset_import[0].version == opset   # HardSwish needs opset 14


# ------------------------------------------------------------------------------------------------
# the demo model, EfficientNet
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    from hwsim.demo import load_digits, model_path

    data = load_digits()
    g = hwsim.load_model(model_path())
    return g, minmax_quantize(g, TARGET, {"image": data["x_train"][:16]}), data


def test_digits_model_bit_exact(tmp_path, digits):
    _, q, data = digits
    got = _check_bit_exact(q, tmp_path / "digits_q.onnx", {"image": data["x_test"][:64]})
    # and the exported model still classifies: agreement with the labels well above chance (10%)
    assert np.mean(np.argmax(got[0], axis=1) == data["y_test"][:64]) > 0.8


def test_digits_model_structure(tmp_path, digits):
    """Opset 13, node names kept, Relu between Conv and QuantizeLinear, per-channel weights, int32 bias."""
    from onnx import helper, numpy_helper

    _, q, _ = digits
    path = hwsim.save_model(q, tmp_path / "q.onnx")
    m = onnx.load(str(path))
    assert [(o.domain, o.version) for o in m.opset_import] == [("", 13)]
    by_name = {n.name: n for n in m.graph.node}
    for node in q.nodes:
        assert node.name in by_name, node.name
    # the importer's transpose before the flatten cancels with NCHW: only the Reshape remains under that name
    assert by_name["flatten"].op_type == "Reshape"
    dw = {a.name: helper.get_attribute_value(a) for a in by_name["conv2_dw/conv"].attribute}
    assert by_name["conv2_dw/conv"].op_type == "Conv" and dw["group"] == 16 and dw["pads"] == [1, 1, 1, 1]
    assert by_name["conv1/conv_Relu"].op_type == "Relu"
    assert by_name["conv1/conv_Relu"].input[0] == by_name["conv1/conv"].output[0]
    assert by_name["conv1/conv_QuantizeLinear"].input[0] == by_name["conv1/conv_Relu"].output[0]
    assert "conv3_pw/conv_Relu" not in by_name                   # no activation there
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    # weights OIHW int8, per output channel (axis 0); the IR has [O, KH, KW, I]
    w_ir = q.tensor("conv4.weight_bn__hw7__q")
    np.testing.assert_array_equal(inits["conv4.weight_bn__hw7__q"], w_ir.data.transpose(0, 3, 1, 2))
    dq_w = by_name["conv4.weight_bn__hw7__q_DequantizeLinear"]
    assert [(a.name, a.i) for a in dq_w.attribute] == [("axis", 0)]
    # bias int32 with scale s_x * s_w[c] (minmax computes it in float64 and rounds once to float32)
    s_x = np.float64(q.tensor("residual.relu__q").quant.scale)
    s_w = w_ir.quant.scale.astype(np.float64)
    assert inits["conv4.weight_bias_bn__hw8__q"].dtype == np.int32
    np.testing.assert_array_equal(inits["conv4.weight_bias_bn__hw8__q_scale"], (s_x * s_w).astype(np.float32))
    assert inits["image__q_zero_point"].dtype == np.uint8 and inits["image__q_zero_point"].shape == ()


def test_round_trip_keeps_integers_scales_zero_points(tmp_path, digits):
    _, q, _ = digits
    back = hwsim.load_model(hwsim.save_model(q, tmp_path / "q.onnx"))
    checked = 0
    aliased = {n.outputs[0] for n in q.nodes if n.op == "transpose"}   # cancelled transposes: no tensor of their own
    for t in q.tensors.values():
        if t.quant is None or t.name in aliased:
            continue
        r = back.tensor(t.name)
        assert r.dtype == t.dtype and r.shape == t.shape, t.name
        np.testing.assert_array_equal(r.quant.scale, t.quant.scale, err_msg=t.name)
        np.testing.assert_array_equal(r.quant.zero_point, t.quant.zero_point, err_msg=t.name)
        assert r.quant.axis == t.quant.axis, t.name
        if t.is_constant:
            np.testing.assert_array_equal(r.data, t.data, err_msg=t.name)
        checked += 1
    assert checked == len([t for t in q.tensors.values() if t.quant is not None]) - 1   # all but the alias


def test_efficientnet_bit_exact(tmp_path):
    if not EFFNET.exists() or not CALIB.exists():
        pytest.skip(_root.SHARED_MISSING)
    crops = np.load(CALIB)["input"]
    q = minmax_quantize(hwsim.load_model(EFFNET), TARGET, {"input": crops[:2]})
    _check_bit_exact(q, tmp_path / "effnet_q.onnx", {"input": crops[5:6]})


@pytest.mark.parametrize("options", [{}, {"granularity": "per-tensor", "ptq": ("cle", "bias_correction")}],
                         ids=["defaults", "per-tensor-cle-bc"])
def test_hwsim_quantize_graph_bit_exact(tmp_path, digits, options):
    if not hasattr(hwsim, "quantize"):
        pytest.skip("hwsim.quantize (the PTQ front-end) is not on this branch")
    g, _, data = digits
    q = hwsim.quantize(g, TARGET, {"image": data["x_train"][:32]}, **options)
    _check_bit_exact(q, tmp_path / "ptq.onnx", {"image": data["x_test"][:64]})


def test_per_group_graph_from_hwsim_quantize_refused(tmp_path, digits):
    if not hasattr(hwsim, "quantize") or "cpu-w4a8-blocked" not in hwsim.list_targets():
        pytest.skip("hwsim.quantize and the cpu-w4a8-blocked target are not on this branch")
    g, _, data = digits
    q = hwsim.quantize(g, "cpu-w4a8-blocked", {"image": data["x_train"][:16]})
    with pytest.raises(ValueError, match=r"is quantized per group \(group size \d+\)"):
        hwsim.save_model(q, tmp_path / "w4.onnx")
    assert not (tmp_path / "w4.onnx").exists()


# ------------------------------------------------------------------------------------------------
# graphs from other sources
# ------------------------------------------------------------------------------------------------

def test_non_redundant_activation_is_clamped_after_the_integer_op(tmp_path, digits):
    """A Relu whose output zero point is not qmin cuts into the quantized range: it must still be exact."""
    q, data = _copy(digits[1]), digits[2]
    t = q.tensor("conv1.relu__q")
    t.quant = QuantParams(t.quant.scale, np.int64(20))          # codes 0..19 now mean negative values
    path = tmp_path / "q.onnx"
    _check_bit_exact(q, path, {"image": data["x_test"][:32]})
    by_name = {n.name: n for n in onnx.load(str(path)).graph.node}
    assert by_name["conv1/conv_QuantizeLinear"].input[0] == by_name["conv1/conv"].output[0]
    assert "conv1/conv_activation_QuantizeLinear" in by_name


@pytest.mark.parametrize("fmt,activations", [("QDQ", "QUInt8"), ("QOperator", "QUInt8"), ("QDQ", "QInt8")])
def test_onnxruntime_quantized_model_reexported(tmp_path, fmt, activations):
    """A model from onnxruntime's quantize_static, read by hwsim and written back, computes the same in onnxruntime.

    With int8 activations, onnxruntime on x86 (and hwsim's importer) keep the convolutions next to tensors read
    by two nodes in float; hwsim runs those in numpy float32 (SimResult.deviations), so there only onnxruntime's
    outputs on the two files are compared.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from hwsim.demo import load_digits, model_path

    data = load_digits()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"image": data["x_train"][i:i + 1]} for i in range(4)])

        def get_next(self):
            return next(self._it, None)

    pre, src = tmp_path / "pre.onnx", tmp_path / "src.onnx"
    quant_pre_process(str(model_path()), str(pre))            # folds the batch norms as the quantizer expects
    quantize_static(str(pre), str(src), Reader(), quant_format=getattr(QuantFormat, fmt),
                    activation_type=getattr(QuantType, activations), weight_type=QuantType.QInt8,
                    per_channel=fmt == "QDQ")
    x = {"image": data["x_test"][:32]}
    expected = _ort_run(src, x)
    g = hwsim.load_model(src)
    if activations == "QUInt8":
        got = _check_bit_exact(g, tmp_path / "re.onnx", x)
    else:
        assert any(n.op == "conv2d" and g.tensor(n.inputs[0]).dtype == np.float32 for n in g.nodes)
        got = _ort_run(hwsim.save_model(g, tmp_path / "re.onnx"), x)
    np.testing.assert_array_equal(got[0], expected[0])


TFLITE_DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "tflite"
TFLITE_MODELS = sorted(p.name for p in TFLITE_DATA.glob("*.tflite")
                       if not p.name.startswith(("unsupported", "conv16x8")))


@pytest.mark.parametrize("name", TFLITE_MODELS)
def test_tflite_graph_exported_with_nhwc_io(tmp_path, name):
    """An int8 TFLite graph (NHWC at its inputs) exports; onnxruntime agrees with hwsim on the exported model."""
    g = hwsim.load_model(TFLITE_DATA / name)
    assert g.model_layout == "NHWC"
    path = hwsim.save_model(g, tmp_path / "m.onnx")
    m = onnx.load(str(path))
    rng = np.random.default_rng(3)
    x = {}
    for i, name in enumerate(g.inputs):
        t = g.tensor(name)
        dims = [d.dim_value or d.dim_param for d in m.graph.input[i].type.tensor_type.shape.dim]
        assert dims[1:] == list(t.shape[1:])                     # the model's own (NHWC) layout at the input
        shape = [2 if d is None else d for d in t.shape]
        if np.dtype(t.dtype).kind == "f":
            x[name] = rng.standard_normal(shape).astype(np.float32)
        else:
            info = np.iinfo(t.dtype)
            x[name] = rng.integers(info.min, info.max + 1, shape).astype(t.dtype)
    got = _ort_run(path, x)
    sim = hwsim.simulate(hwsim.load_model(path), TARGET, x).outputs
    for ort_out, name in zip(got, g.outputs):
        np.testing.assert_array_equal(ort_out, sim[name])


def test_sixteen_bit_graph_uses_opset_21(tmp_path):
    """int16 / uint16 tensors need QuantizeLinear-21; onnxruntime runs the export as it runs the source model."""
    from onnx import helper

    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z16"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z16"], ["xd"], name="dq"),
             helper.make_node("MaxPool", ["xd"], ["p"], name="pool", kernel_shape=[2, 2]),
             helper.make_node("QuantizeLinear", ["p", "s", "z16"], ["pq"], name="q2"),
             helper.make_node("DequantizeLinear", ["pq", "s", "z16"], ["y"], name="dq2")]
    m = model(nodes, {"x": (1, 2, 4, 4)}, ["y"], [init("s", np.float32(0.001)), init("z16", np.int16(-7))],
              opset=21)
    m.ir_version = 10
    src = save(m, tmp_path, "src.onnx")
    g = hwsim.load_model(src)
    path = hwsim.save_model(g, tmp_path / "q16.onnx")
    assert onnx.load(str(path)).opset_import[0].version == 21
    x = {"x": np.random.default_rng(4).uniform(-40, 40, (1, 2, 4, 4)).astype(np.float32)}
    np.testing.assert_array_equal(_ort_run(path, x)[0], _ort_run(src, x)[0])
    back = hwsim.load_model(path)
    assert back.tensor("xq").dtype == np.int16 and int(back.tensor("xq").quant.zero_point) == -7


# ------------------------------------------------------------------------------------------------
# refusals and file handling
# ------------------------------------------------------------------------------------------------

def test_float_graph_refused(tmp_path, digits):
    g, _, _ = digits
    with pytest.raises(ValueError, match="float.*nothing to export"):
        hwsim.save_model(g, tmp_path / "f.onnx")
    assert not (tmp_path / "f.onnx").exists()


def _copy(q):
    """A graph sharing nothing mutable with ``q`` that the refusal tests may break."""
    import copy

    return copy.deepcopy(q)


def test_per_group_weights_refused(tmp_path, digits):
    q = _copy(digits[1])
    t = q.tensor("fc.weight__hw10__q")
    if "group_size" in QuantParams.__dataclass_fields__:
        t.quant = QuantParams(np.full((10, 32), 0.01, np.float32), np.zeros((10, 32), np.int64), axis=0,
                              group_size=32)
    else:        # before per-group QuantParams exist: the attribute the exporter reads
        t.quant = types.SimpleNamespace(scale=t.quant.scale, zero_point=t.quant.zero_point, axis=0, group_size=32,
                                        per_channel=False)
    with pytest.raises(ValueError, match=r"'fc.weight__hw10__q' is quantized per group \(group size 32\)"):
        hwsim.save_model(q, tmp_path / "g.onnx")
    assert not (tmp_path / "g.onnx").exists()


def test_lookup_weights_refused(tmp_path, digits):
    q = _copy(digits[1])
    q.tensor("fc.weight__hw10__q").lookup = types.SimpleNamespace(table=np.arange(4), index_bits=2)
    with pytest.raises(ValueError, match="'fc.weight__hw10__q' holds non-uniform"):
        hwsim.save_model(q, tmp_path / "l.onnx")


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_wide_activation_refused(tmp_path, digits, dtype):
    q = _copy(digits[1])
    q.tensor("conv1.relu__q").dtype = np.dtype(dtype)
    with pytest.raises(ValueError, match=f"'conv1.relu__q' is {np.dtype(dtype)}: QDQ ONNX holds 8-bit and 16-bit"):
        hwsim.save_model(q, tmp_path / "w.onnx")


def test_op_without_qdq_form_refused(tmp_path, digits):
    q = _copy(digits[1])
    node = next(n for n in q.nodes if n.name == "fc")
    object.__setattr__(node, "op", "dynamic_quantize")      # an IR op of dynamic quantization (QOperator only)
    with pytest.raises(ValueError, match="node 'fc': IR op 'dynamic_quantize' has no QDQ ONNX form"):
        hwsim.save_model(q, tmp_path / "d.onnx")


def test_integer_tensor_without_quant_refused(tmp_path, digits):
    q = _copy(digits[1])
    q.tensor("conv1.relu__q").quant = None
    with pytest.raises(ValueError, match="'conv1.relu__q' \\(uint8\\) has no scale / zero point"):
        hwsim.save_model(q, tmp_path / "n.onnx")


def test_per_channel_activation_refused(tmp_path, digits):
    q = _copy(digits[1])
    t = q.tensor("conv1.relu__q")
    t.quant = QuantParams(np.full(16, 0.01, np.float32), np.zeros(16, np.int64), axis=3)
    with pytest.raises(ValueError, match="run-time tensor 'conv1.relu__q' is quantized per channel"):
        hwsim.save_model(q, tmp_path / "c.onnx")


def test_existing_file_not_overwritten_without_flag(tmp_path, digits):
    _, q, data = digits
    path = tmp_path / "m.onnx"
    path.write_bytes(b"the user's file")
    with pytest.raises(FileExistsError, match=f"{path}: file exists; pass overwrite=True"):
        hwsim.save_model(q, path)
    assert path.read_bytes() == b"the user's file"
    hwsim.save_model(q, path, overwrite=True)
    assert _ort_run(path, {"image": data["x_test"][:2]})[0].shape == (2, 10)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]      # no temporary file left behind


def test_bad_destinations(tmp_path, digits, monkeypatch):
    _, q, _ = digits
    with pytest.raises(IsADirectoryError, match="is a directory"):
        hwsim.save_model(q, tmp_path)
    with pytest.raises(FileNotFoundError, match="directory .*missing does not exist"):
        hwsim.save_model(q, tmp_path / "missing" / "m.onnx")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="afile is not a directory"):
        hwsim.save_model(q, tmp_path / "afile" / "m.onnx")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    with pytest.raises(PermissionError, match=f"{tmp_path / 'm.onnx'}: cannot write the model: directory .* is not "
                                              "writable"):
        hwsim.save_model(q, tmp_path / "m.onnx")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes to read-only directories")
def test_read_only_directory(tmp_path, digits):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            hwsim.save_model(digits[1], ro / "m.onnx")
    finally:
        ro.chmod(0o700)

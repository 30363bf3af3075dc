"""Single-op QOperator and QDQ models: structure of the imported IR, fusion decisions equal to
onnxruntime's own optimised graph, and values within one LSB of onnxruntime (fake-quant evaluator:
this checks layout and attributes; bit-exactness is the executor's tests' job)."""

from __future__ import annotations

import numpy as np
import pytest
from float_eval import run_float
from onnx import TensorProto, helper
from onnx_models import init, model, save

from hwsim.graph.load import load_model

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

RNG = np.random.default_rng(11)
n = helper.make_node
U8, I8, I32 = np.uint8, np.int8, np.int32


def _q(name, scale, zp, dtype=U8):
    return [init(f"{name}_s", np.float32(scale)), init(f"{name}_z", np.asarray(zp, dtype=dtype))]


def _iw(*shape, dtype=I8, lo=-100, hi=100):
    return RNG.integers(lo, hi, size=shape).astype(dtype)


X = (1, 4, 6, 5)
W_SCALES = np.float32([0.01, 0.02, 0.015, 0.03, 0.02, 0.01])


# ---- QOperator ---------------------------------------------------------------------------------

def _qop_cases():
    qx, qy = _q("x", 0.05, 120), _q("y", 0.2, 110)
    xin = ["x", "x_s", "x_z"]
    yield "qlinearconv_per_channel", model(
        [n("QLinearConv", xin + ["w", "w_s", "w_z", "y_s", "y_z", "b"], ["y"], pads=[1, 0, 1, 1], strides=[1, 2])],
        {"x": X}, ["y"], qx + qy + [init("w", _iw(6, 4, 3, 3)), init("w_s", W_SCALES),
                                     init("w_z", np.zeros(6, I8)), init("b", _iw(6, dtype=I32, lo=-500, hi=500))],
        in_type=TensorProto.UINT8, out_type=TensorProto.UINT8), "conv2d", {"padding": (1, 0, 1, 1), "stride": (1, 2)}
    yield "qlinearconv_depthwise", model(
        [n("QLinearConv", xin + ["w", "w_s", "w_z", "y_s", "y_z"], ["y"], group=4, pads=[1, 1, 1, 1])],
        {"x": X}, ["y"], qx + qy + [init("w", _iw(4, 1, 3, 3)), init("w_s", np.float32(0.02)), init("w_z", np.int8(0))],
        in_type=TensorProto.UINT8, out_type=TensorProto.UINT8), "conv2d", {"groups": 4}
    yield "qlinearmatmul", model(
        [n("QLinearMatMul", ["x", "x_s", "x_z", "w", "w_s", "w_z", "y_s", "y_z"], ["y"])],
        {"x": (3, 8)}, ["y"], qx + qy + [init("w", _iw(8, 5)), init("w_s", np.float32(0.02)), init("w_z", np.int8(3))],
        in_type=TensorProto.UINT8, out_type=TensorProto.UINT8), "fully_connected", {}
    yield "matmulinteger", model(
        [n("MatMulInteger", ["x", "w", "x_z", "w_z"], ["y"])],
        {"x": (3, 8)}, ["y"], [init("x_z", np.uint8(120)), init("w", _iw(8, 5)), init("w_z", np.int8(2))],
        in_type=TensorProto.UINT8, out_type=TensorProto.INT32), "fully_connected", {}
    yield "convinteger", model(
        [n("ConvInteger", ["x", "w", "x_z", "w_z"], ["y"], pads=[1, 1, 0, 0])],
        {"x": X}, ["y"], [init("x_z", np.uint8(120)), init("w", _iw(3, 4, 2, 2, dtype=U8, lo=0, hi=255)),
                          init("w_z", np.uint8(128))],
        in_type=TensorProto.UINT8, out_type=TensorProto.INT32), "conv2d", {"padding": (1, 1, 0, 0)}
    yield "qgemm", model(
        [n("QGemm", ["x", "x_s", "x_z", "w", "w_s", "w_z", "b", "y_s", "y_z"], ["y"], domain="com.microsoft",
           transB=1)],
        {"x": (2, 8)}, ["y"], qx + qy + [init("w", _iw(5, 8)), init("w_s", np.float32(0.02)), init("w_z", np.int8(0)),
                                         init("b", _iw(5, dtype=I32, lo=-300, hi=300))],
        ms=True, in_type=TensorProto.UINT8, out_type=TensorProto.UINT8), "fully_connected", {}
    yield "qgemm_float_output", model(
        [n("QGemm", ["x", "x_s", "x_z", "w", "w_s", "w_z", "b"], ["y"], domain="com.microsoft")],
        {"x": (2, 8)}, ["y"], qx + [init("w", _iw(8, 5)), init("w_s", np.float32(0.02)), init("w_z", np.int8(0)),
                                    init("b", _iw(5, dtype=I32, lo=-300, hi=300))],
        ms=True, in_type=TensorProto.UINT8, out_type=TensorProto.FLOAT), "fully_connected", {}
    for op, ir in (("QLinearAdd", "add"), ("QLinearMul", "mul")):
        yield op.lower(), model(
            [n(op, xin + ["z", "z_s", "z_z", "y_s", "y_z"], ["y"], domain="com.microsoft")],
            {"x": X, "z": X}, ["y"], qx + qy + _q("z", 0.03, 100), ms=True,
            in_type=TensorProto.UINT8, out_type=TensorProto.UINT8), ir, {}
    yield "qlinearglobalaveragepool", model(
        [n("QLinearGlobalAveragePool", xin + ["y_s", "y_z"], ["y"], domain="com.microsoft", channels_last=0)],
        {"x": X}, ["y"], qx + _q("y", 0.03, 115), ms=True, in_type=TensorProto.UINT8, out_type=TensorProto.UINT8), \
        "mean", {"axes": (1, 2), "keepdims": True}
    yield "qlinearconcat", model(
        [n("QLinearConcat", ["y_s", "y_z"] + xin + ["z", "z_s", "z_z"], ["y"], domain="com.microsoft", axis=1)],
        {"x": X, "z": X}, ["y"], qx + qy + _q("z", 0.03, 100), ms=True,
        in_type=TensorProto.UINT8, out_type=TensorProto.UINT8), "concat", {"axis": 3}
    yield "qlinearaveragepool", model(
        [n("QLinearAveragePool", xin + ["y_s", "y_z"], ["y"], domain="com.microsoft", kernel_shape=[2, 2],
           strides=[2, 2], pads=[0, 0, 0, 1])],
        {"x": X}, ["y"], qx + _q("y", 0.04, 118), ms=True, in_type=TensorProto.UINT8, out_type=TensorProto.UINT8), \
        "avg_pool2d", {"kernel": (2, 2), "padding": (0, 0, 0, 1), "count_include_pad": False}
    yield "qlinearsigmoid", model(
        [n("QLinearSigmoid", xin + ["y_s", "y_z"], ["y"], domain="com.microsoft")],
        {"x": X}, ["y"], qx + _q("y", 1 / 256, 0), ms=True, in_type=TensorProto.UINT8, out_type=TensorProto.UINT8), \
        "logistic", {}
    yield "qlinearleakyrelu", model(
        [n("QLinearLeakyRelu", xin + ["y_s", "y_z"], ["y"], domain="com.microsoft", alpha=0.1)],
        {"x": X}, ["y"], qx + _q("y", 0.04, 20), ms=True, in_type=TensorProto.UINT8, out_type=TensorProto.UINT8), \
        "leaky_relu", {"alpha": pytest.approx(0.1)}
    yield "quantizelinear", model(
        [n("QuantizeLinear", ["x", "y_s", "y_z"], ["y"])], {"x": X}, ["y"], _q("y", 0.05, -3, I8),
        out_type=TensorProto.INT8), "quantize", {}
    yield "dequantizelinear", model(
        [n("DequantizeLinear", xin, ["y"])], {"x": X}, ["y"], qx, in_type=TensorProto.UINT8), "dequantize", {}


def _feeds(sess):
    feeds = {}
    for i in sess.get_inputs():
        if i.type == "tensor(uint8)":
            feeds[i.name] = RNG.integers(0, 256, size=i.shape).astype(U8)
        else:
            feeds[i.name] = (RNG.standard_normal(i.shape) * 3).astype(np.float32)
    return feeds


def _compare(g, path, lsb: float = 1.0):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = _feeds(sess)
    ref = sess.run(None, feeds)[0]
    ours = run_float(g, feeds)[g.outputs[0]]
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    diff = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
    assert diff.max() <= lsb, diff.max()


QOP = list(_qop_cases())


@pytest.mark.parametrize("case", QOP, ids=[c[0] for c in QOP])
def test_qoperator_op(case, tmp_path):
    _, m, op, attrs = case
    path = save(m, tmp_path)
    g = load_model(path)
    assert [node.op for node in g.nodes] == [op]
    node = g.nodes[0]
    for key, value in attrs.items():
        assert node.attrs[key] == value, key
    for name in node.inputs:
        t = g.tensor(name)
        if np.issubdtype(t.dtype, np.integer):
            assert t.quant is not None, name
    y = g.tensor(node.outputs[0])
    if y.dtype == np.int32:
        assert y.quant is None            # a raw accumulator
    _compare(g, path, lsb=0.05 if y.dtype == np.float32 else 1.0)


def test_qlinearconv_weights_and_quant(tmp_path):
    g = load_model(save(QOP[0][1], tmp_path))
    node = g.nodes[0]
    x, w, b = (g.tensor(i) for i in node.inputs)
    assert x.shape == (1, 6, 5, 4) and x.dtype == U8 and int(x.quant.zero_point) == 120
    assert w.shape == (6, 3, 3, 4) and w.quant.axis == 0 and w.quant.scale.shape == (6,)
    np.testing.assert_array_equal(w.data, QOP_WEIGHTS(QOP[0][1]).transpose(0, 2, 3, 1))
    assert b.dtype == I32 and b.quant.axis == 0
    np.testing.assert_array_equal(b.quant.scale, (np.float32(0.05) * w.quant.scale).astype(np.float32))


def QOP_WEIGHTS(m):
    from onnx import numpy_helper

    return next(numpy_helper.to_array(t) for t in m.graph.initializer if t.name == "w")


# ---- QDQ: fusion decisions equal onnxruntime's ---------------------------------------------------

def _qdq_model(body, inits, extra_inputs=(), x_shape=X, y=("y", 0.1, 128), out_dtype=U8, opset=17):
    """x -> Q -> DQ -> xf, body (reads xf, writes m) -> Q(y) -> DQ -> out."""
    ys, yz = y[1], y[2]
    nodes = [n("QuantizeLinear", ["x", "x_s", "x_z"], ["xq"]), n("DequantizeLinear", ["xq", "x_s", "x_z"], ["xf"])]
    inputs = {"x": x_shape}
    for name in extra_inputs:
        nodes += [n("QuantizeLinear", [name, f"{name}_s", f"{name}_z"], [f"{name}q"]),
                  n("DequantizeLinear", [f"{name}q", f"{name}_s", f"{name}_z"], [f"{name}f"])]
        inputs[name] = x_shape
    nodes += body
    nodes += [n("QuantizeLinear", ["m", "y_s", "y_z"], ["yq"]), n("DequantizeLinear", ["yq", "y_s", "y_z"], ["out"])]
    all_inits = _q("x", 0.05, 128) + [init("y_s", np.float32(ys)), init("y_z", np.asarray(yz, out_dtype))] + inits
    for name in extra_inputs:
        all_inits += _q(name, 0.04, 120)
    return model(nodes, inputs, ["out"], all_inits, opset=opset)


def _dq_w(name, q, scale, zp=None, axis=None):
    zp = np.zeros(np.shape(scale), q.dtype) if zp is None else zp
    kw = {} if axis is None else {"axis": axis}
    return ([n("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [name], **kw)],
            [init(f"{name}_q", q), init(f"{name}_s", np.asarray(scale, np.float32)), init(f"{name}_z", zp)])


def _qdq_cases():
    wn, wi = _dq_w("w", _iw(6, 4, 3, 3), W_SCALES, axis=0)
    bn, bi = _dq_w("b", _iw(6, dtype=I32, lo=-500, hi=500), (np.float32(0.05) * W_SCALES).astype(np.float32), axis=0)
    conv = n("Conv", ["xf", "w", "b"], ["c"], pads=[1, 1, 1, 1])
    yield "conv", _qdq_model(wn + bn + [n("Conv", ["xf", "w", "b"], ["m"], pads=[1, 1, 1, 1])], wi + bi), "conv2d"
    yield "conv_relu_zp0", _qdq_model(wn + bn + [conv, n("Relu", ["c"], ["m"])], wi + bi, y=("y", 0.05, 0)), "conv2d"
    yield "conv_relu_zp10_not_fused", _qdq_model(wn + bn + [conv, n("Relu", ["c"], ["m"])], wi + bi,
                                                 y=("y", 0.05, 10)), None
    clip = [init("lo", np.float32(0)), init("hi", np.float32(6))]
    yield "conv_clip_redundant", _qdq_model(wn + bn + [conv, n("Clip", ["c", "lo", "hi"], ["m"])], wi + bi + clip,
                                            y=("y", 6 / 255, 0)), "conv2d"
    yield "conv_clip_not_redundant", _qdq_model(wn + bn + [conv, n("Clip", ["c", "lo", "hi"], ["m"])],
                                                wi + bi + clip, y=("y", 0.05, 0)), None
    gw, gwi = _dq_w("g", _iw(7, 120), np.float32(0.02))
    gb, gbi = _dq_w("gb", _iw(7, dtype=I32, lo=-500, hi=500), np.float32(0.05 * 0.02))
    yield "gemm", _qdq_model(gw + gb + [n("Gemm", ["xf", "g", "gb"], ["m"], transB=1)], gwi + gbi,
                             x_shape=(2, 120)), "fully_connected"
    mw, mwi = _dq_w("mw", _iw(3, 5), np.float32(0.02))
    yield "matmul", _qdq_model(mw + [n("MatMul", ["xf", "mw"], ["m"])], mwi, x_shape=(2, 3)), "fully_connected"
    yield "add", _qdq_model([n("Add", ["xf", "zf"], ["m"])], [], extra_inputs=("z",)), "add"
    yield "mul", _qdq_model([n("Mul", ["xf", "zf"], ["m"])], [], extra_inputs=("z",), y=("y", 0.2, 100)), "mul"
    yield "concat", _qdq_model([n("Concat", ["xf", "zf"], ["m"], axis=1)], [], extra_inputs=("z",)), "concat"
    yield "global_average_pool", _qdq_model([n("GlobalAveragePool", ["xf"], ["m"])], [], y=("y", 0.01, 128)), "mean"
    yield "average_pool", _qdq_model([n("AveragePool", ["xf"], ["m"], kernel_shape=[2, 2], strides=[2, 2])], []), \
        "avg_pool2d"
    yield "max_pool_same_qparams", _qdq_model([n("MaxPool", ["xf"], ["m"], kernel_shape=[2, 2])], [],
                                              y=("y", 0.05, 128)), "max_pool2d"
    yield "reshape_same_qparams", _qdq_model(
        [n("Reshape", ["xf", "shp"], ["m"])], [init("shp", np.array([1, -1], np.int64))], y=("y", 0.05, 128)), \
        "reshape"
    yield "reshape_other_qparams_not_fused", _qdq_model(
        [n("Reshape", ["xf", "shp"], ["m"])], [init("shp", np.array([1, -1], np.int64))]), None
    yield "sigmoid", _qdq_model([n("Sigmoid", ["xf"], ["m"])], [], y=("y", 1 / 256, 0)), "logistic"
    yield "leaky_relu", _qdq_model([n("LeakyRelu", ["xf"], ["m"], alpha=0.1)], []), "leaky_relu"
    yield "softmax", _qdq_model([n("Softmax", ["xf"], ["m"], axis=1)], [], y=("y", 1 / 256, 0)), "softmax"
    yield "transpose_same_qparams", _qdq_model([n("Transpose", ["xf"], ["m"], perm=[0, 2, 3, 1])], [],
                                               y=("y", 0.05, 128)), "transpose"
    yield "flatten_same_qparams", _qdq_model([n("Flatten", ["xf"], ["m"])], [], y=("y", 0.05, 128)), "reshape"
    yield "max_pool_other_qparams_not_fused", _qdq_model([n("MaxPool", ["xf"], ["m"], kernel_shape=[2, 2])], []), None
    yield "relu_alone_removed", _qdq_model([n("Relu", ["xf"], ["m"])], [], y=("y", 0.05, 0)), None
    yield "tanh_not_fused", _qdq_model([n("Tanh", ["xf"], ["m"])], [], y=("y", 1 / 128, 128)), None
    yield "hard_swish_not_fused", _qdq_model([n("HardSwish", ["xf"], ["m"])], []), None
    yield "sub_not_fused", _qdq_model([n("Sub", ["xf", "zf"], ["m"])], [], extra_inputs=("z",)), None
    pads = [init("p", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))]
    yield "pad_not_fused", _qdq_model([n("Pad", ["xf", "p"], ["m"])], pads, y=("y", 0.05, 128)), None


QDQ = list(_qdq_cases())


def _ort_optimised(path, tmp_path):
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    opts.log_severity_level = 3
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return onnx.load(str(tmp_path / "opt.onnx"))


@pytest.mark.parametrize("case", QDQ, ids=[c[0] for c in QDQ])
def test_qdq_fusion_matches_onnxruntime(case, tmp_path):
    _, m, fused_op = case
    path = save(m, tmp_path)
    g = load_model(path)
    assert g.kind == "qdq"
    ours_fused = sum(node.op == "dequantize" for node in g.nodes) == 1
    ort_fused = sum(node.op_type == "DequantizeLinear" for node in _ort_optimised(path, tmp_path).graph.node) == 1
    assert ours_fused == ort_fused
    assert ours_fused == (fused_op is not None)
    if fused_op is not None:
        core = [node for node in g.nodes if node.op not in ("quantize", "dequantize")]
        assert fused_op in [node.op for node in core]
        for node in core:
            for name in node.inputs + node.outputs:
                assert np.issubdtype(g.tensor(name).dtype, np.integer), (node.op, name)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = {i.name: (RNG.standard_normal(i.shape) * 2).astype(np.float32) for i in sess.get_inputs()}
    ref = sess.run(None, x)[0]
    ours = run_float(g, x)["out"]
    ys = float(g.tensor(g.nodes[-1].inputs[0]).quant.scale)
    assert np.abs(ours - ref).max() <= ys * 1.001


def _int8_shared_model(body, inits, second_input=False):
    """int8 activations, each read by the op *and* by a Relu, so onnxruntime cannot rewrite them to uint8."""
    nodes = [n("QuantizeLinear", ["x", "xs", "xz"], ["xq"]), n("DequantizeLinear", ["xq", "xs", "xz"], ["xf"]),
             n("Relu", ["xf"], ["o2"])]
    inputs, outputs = {"x": X}, ["out", "o2", "o3"]
    if second_input:
        nodes += [n("QuantizeLinear", ["z", "xs", "xz"], ["zq"]), n("DequantizeLinear", ["zq", "xs", "xz"], ["zf"]),
                  n("Relu", ["zf"], ["o4"])]
        inputs["z"] = X
        outputs.append("o4")
    nodes += body + [n("QuantizeLinear", ["m", "ys", "yz"], ["yq"]), n("DequantizeLinear", ["yq", "ys", "yz"], ["out"]),
                     n("DequantizeLinear", ["yq", "ys", "yz"], ["o3"])]
    its = [init("xs", np.float32(0.05)), init("xz", np.int8(3)), init("ys", np.float32(0.1)), init("yz", np.int8(-2))]
    return model(nodes, inputs, outputs, its + inits)


def test_int8_activation_rules_for_x86(tmp_path):
    wn, wi = _dq_w("w", _iw(6, 4, 3, 3), np.float32([0.01] * 6), axis=0)
    conv = _int8_shared_model(wn + [n("Conv", ["xf", "w"], ["m"])], wi)
    add = _int8_shared_model([n("Add", ["xf", "zf"], ["m"])], [], second_input=True)
    for m, op, ort_op, x86_integer in ((conv, "conv2d", "QLinearConv", False), (add, "add", "QLinearAdd", True)):
        path = save(m, tmp_path, f"{op}.onnx")
        ort_ops = [node.op_type for node in _ort_optimised(path, tmp_path).graph.node]
        assert (ort_op in ort_ops) == x86_integer
        for mode, integer in (("onnxruntime-x86", x86_integer), ("onnxruntime", True)):
            g = load_model(path, qdq_fusion=mode)
            node = next(node for node in g.nodes if node.op == op)
            assert (g.tensor(node.outputs[0]).dtype == np.int8) == integer, mode
        g = load_model(path, qdq_fusion="none")
        assert g.tensor(next(node for node in g.nodes if node.op == op).outputs[0]).dtype == np.float32

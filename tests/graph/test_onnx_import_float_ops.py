"""Single-op float ONNX models: each imports to the expected IR op and attributes, and the IR computes
what onnxruntime computes (naive numpy evaluator, float tolerance)."""

from __future__ import annotations

import numpy as np
import pytest
from float_eval import run_float
from onnx import helper
from onnx_models import init, model, save

from hwsim.graph.load import load_model

ort = pytest.importorskip("onnxruntime")

RNG = np.random.default_rng(7)


def _w(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


X4 = {"x": (2, 6, 9, 8)}   # N, C, H, W: channels, height and width all differ


def _cases():
    n = helper.make_node
    yield "conv_pads_stride_dilation", model(
        [n("Conv", ["x", "w", "b"], ["y"], pads=[0, 1, 2, 1], strides=[2, 1], dilations=[1, 2])],
        X4, ["y"], [init("w", _w(4, 6, 3, 2)), init("b", _w(4))]), ["conv2d"], \
        {"stride": (2, 1), "dilation": (1, 2), "padding": (0, 1, 2, 1), "groups": 1}
    yield "conv_grouped_same_upper", model(
        [n("Conv", ["x", "w"], ["y"], group=2, auto_pad="SAME_UPPER", strides=[2, 2])],
        X4, ["y"], [init("w", _w(4, 3, 3, 3))]), ["conv2d"], {"groups": 2, "padding": (1, 0, 1, 1)}
    # SAME_UPPER, stride 2, k 3: H 9 -> 5 rows need (5-1)*2+3-9 = 2 pad rows (1, 1);
    # W 8 -> 4 columns need (4-1)*2+3-8 = 1 (0 left, 1 right: the odd one goes to the end)
    yield "conv_depthwise_multiplier", model(
        [n("Conv", ["x", "w"], ["y"], group=6, pads=[1, 1, 1, 1])],
        X4, ["y"], [init("w", _w(12, 1, 3, 3))]), ["conv2d"], {"groups": 6}
    yield "conv_bn_folded", model(
        [n("Conv", ["x", "w", "b"], ["c"]), n("BatchNormalization", ["c", "g", "be", "m", "v"], ["y"], epsilon=1e-3)],
        X4, ["y"], [init("w", _w(5, 6, 1, 1)), init("b", _w(5)), init("g", _w(5)), init("be", _w(5)),
                    init("m", _w(5)), init("v", np.abs(_w(5)) + 0.5)]), ["conv2d"], {}
    yield "batchnorm_alone", model(
        [n("BatchNormalization", ["x", "g", "be", "m", "v"], ["y"])],
        X4, ["y"], [init("g", _w(6)), init("be", _w(6)), init("m", _w(6)), init("v", np.abs(_w(6)) + 0.5)]), \
        ["mul", "add"], {}
    yield "conv_relu6", model(
        [n("Conv", ["x", "w"], ["c"]), n("Clip", ["c", "lo", "hi"], ["y"])],
        X4, ["y"], [init("w", _w(3, 6, 1, 1)), init("lo", np.float32(0)), init("hi", np.float32(0.5))]), \
        ["conv2d"], {"activation": (0.0, 0.5)}
    yield "gemm_transb_alpha_beta", model(
        [n("Gemm", ["x", "w", "c"], ["y"], transB=1, alpha=0.5, beta=2.0)],
        {"x": (3, 10)}, ["y"], [init("w", _w(7, 10)), init("c", _w(7))]), ["fully_connected"], {}
    yield "gemm_relu", model(
        [n("Gemm", ["x", "w", "c"], ["g"]), n("Relu", ["g"], ["y"])],
        {"x": (3, 10)}, ["y"], [init("w", _w(10, 7)), init("c", _w(1, 7))]), ["fully_connected"], \
        {"activation": (0.0, float("inf"))}
    yield "matmul_const_b", model(
        [n("MatMul", ["x", "w"], ["y"])], {"x": (3, 10)}, ["y"], [init("w", _w(10, 4))]), ["fully_connected"], {}
    yield "matmul_runtime", model(
        [n("MatMul", ["x", "z"], ["y"])], {"x": (2, 3, 10), "z": (2, 10, 4)}, ["y"]), ["matmul"], {}
    yield "add_channel_constant", model(
        [n("Add", ["x", "c"], ["y"])], X4, ["y"], [init("c", _w(6, 1, 1))]), ["add"], {}
    yield "mul_two_inputs", model(
        [n("Mul", ["x", "z"], ["y"])], {"x": X4["x"], "z": X4["x"]}, ["y"]), ["mul"], {}
    yield "sub_row_constant", model(
        [n("Sub", ["x", "c"], ["y"])], X4, ["y"], [init("c", _w(8))]), ["sub"], {}
    yield "relu", model([n("Relu", ["x"], ["y"])], X4, ["y"]), ["relu"], {}
    yield "clip", model([n("Clip", ["x", "lo", "hi"], ["y"])], X4, ["y"],
                        [init("lo", np.float32(-0.5)), init("hi", np.float32(1.0))]), ["clip"], \
        {"min": -0.5, "max": 1.0}
    yield "global_average_pool", model([n("GlobalAveragePool", ["x"], ["y"])], X4, ["y"]), ["mean"], \
        {"axes": (1, 2), "keepdims": True}
    yield "average_pool_exclude_pad", model(
        [n("AveragePool", ["x"], ["y"], kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1])], X4, ["y"]), \
        ["avg_pool2d"], {"kernel": (3, 2), "stride": (2, 1), "padding": (1, 0, 1, 1), "count_include_pad": False}
    yield "average_pool_include_pad", model(
        [n("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)], X4, ["y"]), \
        ["avg_pool2d"], {"count_include_pad": True}
    yield "max_pool", model(
        [n("MaxPool", ["x"], ["y"], kernel_shape=[2, 3], strides=[2, 2], pads=[0, 1, 1, 1])], X4, ["y"]), \
        ["max_pool2d"], {"kernel": (2, 3), "padding": (0, 1, 1, 1)}
    yield "reshape_rank4_to_2", model(
        [n("Reshape", ["x", "s"], ["y"])], X4, ["y"], [init("s", np.array([2, -1], np.int64))]), \
        ["transpose", "reshape"], {}
    yield "reshape_2_to_rank4", model(
        [n("Reshape", ["x", "s"], ["y"])], {"x": (2, 48)}, ["y"], [init("s", np.array([0, 3, 4, 4], np.int64))]), \
        ["reshape", "transpose"], {}
    yield "flatten", model([n("Flatten", ["x"], ["y"])], X4, ["y"]), ["transpose", "reshape"], {}
    yield "flatten_gap", model([n("GlobalAveragePool", ["x"], ["g"]), n("Flatten", ["g"], ["y"])], X4, ["y"]), \
        ["mean", "reshape"], {}
    yield "concat_channels", model(
        [n("Concat", ["x", "z"], ["y"], axis=1)], {"x": X4["x"], "z": (2, 3, 9, 8)}, ["y"]), ["concat"], {"axis": 3}
    yield "concat_width", model(
        [n("Concat", ["x", "z"], ["y"], axis=-1)], {"x": X4["x"], "z": (2, 6, 9, 2)}, ["y"]), ["concat"], {"axis": 2}
    yield "pad_constant", model(
        [n("Pad", ["x", "p", "v"], ["y"])], X4, ["y"],
        [init("p", np.array([0, 1, 2, 3, 0, 0, 1, 0], np.int64)), init("v", np.float32(0.25))]), ["pad"], \
        {"pads": ((0, 0), (2, 1), (3, 0), (1, 0)), "constant": 0.25}
    yield "softmax_channels", model([n("Softmax", ["x"], ["y"], axis=1)], X4, ["y"]), ["softmax"], {"axis": 3}
    yield "softmax_last", model([n("Softmax", ["x"], ["y"])], {"x": (3, 10)}, ["y"]), ["softmax"], {"axis": 1}
    yield "sigmoid", model([n("Sigmoid", ["x"], ["y"])], X4, ["y"]), ["logistic"], {}
    yield "tanh", model([n("Tanh", ["x"], ["y"])], X4, ["y"]), ["tanh"], {}
    yield "hard_swish", model([n("HardSwish", ["x"], ["y"])], X4, ["y"]), ["hard_swish"], {}
    yield "leaky_relu", model([n("LeakyRelu", ["x"], ["y"], alpha=0.2)], X4, ["y"]), ["leaky_relu"], \
        {"alpha": pytest.approx(0.2)}
    yield "transpose_rank4", model([n("Transpose", ["x"], ["y"], perm=[0, 3, 1, 2])], X4, ["y"]), ["transpose"], {}
    yield "transpose_rank3", model([n("Transpose", ["x"], ["y"], perm=[2, 0, 1])], {"x": (2, 3, 4)}, ["y"]), \
        ["transpose"], {"perm": (2, 0, 1)}
    # torch.onnx.export's x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat -> Reshape, folded at import
    yield "shape_arithmetic_folded", model(
        [n("Shape", ["x"], ["s"]), n("Gather", ["s", "zero"], ["n"], axis=0), n("Unsqueeze", ["n", "ax"], ["n1"]),
         n("Concat", ["n1", "minus1"], ["shp"], axis=0), n("Reshape", ["x", "shp"], ["y"])],
        X4, ["y"], [init("zero", np.int64(0)), init("ax", np.array([0], np.int64)),
                    init("minus1", np.array([-1], np.int64))]), ["transpose", "reshape"], {}
    yield "identity_chain", model(
        [n("Identity", ["x"], ["i"]), n("Relu", ["i"], ["y"])], X4, ["y"]), ["relu"], {}


CASES = list(_cases())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_float_op(case, tmp_path):
    _, m, ops, attrs = case
    path = save(m, tmp_path)
    g = load_model(path)
    assert [n.op for n in g.nodes] == ops
    main = next(n for n in g.nodes if n.op not in ("transpose", "reshape")) if set(ops) - {"transpose", "reshape"} \
        else g.nodes[-1]
    for key, value in attrs.items():
        assert main.attrs[key] == value, key
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: RNG.standard_normal(i.shape).astype(np.float32) for i in sess.get_inputs()}
    ref = sess.run(None, feeds)[0]
    ours = run_float(g, feeds)[g.outputs[0]]
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_rank4_shapes_are_nhwc(tmp_path):
    g = load_model(save(CASES[0][1], tmp_path))
    assert g.tensor("x").shape == (2, 9, 8, 6)
    assert g.tensor("y").shape == (2, 5, 8, 4)     # H: (9 + 0 + 2 - 3) // 2 + 1; W: (8 + 2 - 3) + 1
    assert g.model_layout == "NCHW"

"""A small quantized CNN built twice: as an onnxruntime QOperator model (onnx.helper) and as the
equivalent hwsim IR graph by hand, so the executor can be held to onnxruntime without an importer.

x float [1, 3, 8, 8] -> QuantizeLinear -> QLinearConv 3x3 (8 out, per-channel, pads 1) ->
QLinearConv depthwise 3x3 (group 8, stride 2, asymmetric pads) -> QLinearAdd with a 1x1 conv of the first
conv's output (stride 2) -> QLinearGlobalAveragePool -> Flatten -> QLinearMatMul [8, 10] -> DequantizeLinear
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from hwsim.graph.ir import Graph, Node, QuantParams, Tensor

from . import ort_models as om

F32 = np.float32


def make(rng, pow2: bool = False, activation=None, return_model: bool = False):
    def sc(lo, hi):
        return F32(2.0 ** -int(rng.integers(4, 8))) if pow2 else F32(rng.uniform(lo, hi))

    s_x, z_x = sc(0.01, 0.03), int(rng.integers(100, 156))
    s_1, z_1 = sc(0.02, 0.06), int(rng.integers(0, 40))
    s_2, z_2 = sc(0.02, 0.06), int(rng.integers(60, 200))
    s_3, z_3 = sc(0.02, 0.06), int(rng.integers(60, 200))
    s_a, z_a = sc(0.03, 0.08), int(rng.integers(60, 200))
    s_g, z_g = sc(0.01, 0.05), int(rng.integers(60, 200))
    s_o, z_o = sc(0.05, 0.2), int(rng.integers(60, 200))
    w1 = rng.integers(-127, 128, (8, 3, 3, 3)).astype(np.int8)
    ws1 = np.array([sc(0.002, 0.02) for _ in range(8)], F32)
    b1 = rng.integers(-3000, 3000, 8).astype(np.int32)
    w2 = rng.integers(-127, 128, (8, 1, 3, 3)).astype(np.int8)
    ws2 = np.array([sc(0.002, 0.02) for _ in range(8)], F32)
    b2 = rng.integers(-3000, 3000, 8).astype(np.int32)
    w3 = rng.integers(-127, 128, (8, 8, 1, 1)).astype(np.int8)
    ws3 = sc(0.002, 0.02)
    wf = rng.integers(-127, 128, (8, 10)).astype(np.int8)
    wsf = sc(0.002, 0.02)

    inits = [om.scalar("s_x", s_x, F32), om.scalar("z_x", z_x, np.uint8)]
    for n, s, z in (("1", s_1, z_1), ("2", s_2, z_2), ("3", s_3, z_3), ("a", s_a, z_a), ("g", s_g, z_g),
                    ("o", s_o, z_o)):
        inits += [om.scalar(f"s_{n}", s, F32), om.scalar(f"z_{n}", z, np.uint8)]
    inits += [om.const("w1", w1), om.const("ws1", ws1), om.const("wz1", np.zeros(8, np.int8)), om.const("b1", b1),
              om.const("w2", w2), om.const("ws2", ws2), om.const("wz2", np.zeros(8, np.int8)), om.const("b2", b2),
              om.const("w3", w3), om.scalar("ws3", ws3, F32), om.scalar("wz3", 0, np.int8),
              om.const("wf", wf), om.scalar("wsf", wsf, F32), om.scalar("wzf", 0, np.int8)]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s_x", "z_x"], ["xq"]),
        helper.make_node("QLinearConv", ["xq", "s_x", "z_x", "w1", "ws1", "wz1", "s_1", "z_1", "b1"], ["c1"],
                         pads=[1, 1, 1, 1]),
        helper.make_node("QLinearConv", ["c1", "s_1", "z_1", "w2", "ws2", "wz2", "s_2", "z_2", "b2"], ["c2"],
                         group=8, strides=[2, 2], pads=[0, 0, 1, 1]),
        helper.make_node("QLinearConv", ["c1", "s_1", "z_1", "w3", "ws3", "wz3", "s_3", "z_3"], ["c3"],
                         strides=[2, 2]),
        helper.make_node("QLinearAdd", ["c2", "s_2", "z_2", "c3", "s_3", "z_3", "s_a", "z_a"], ["ad"],
                         domain="com.microsoft"),
        helper.make_node("QLinearGlobalAveragePool", ["ad", "s_a", "z_a", "s_g", "z_g"], ["gp"],
                         domain="com.microsoft", channels_last=0),
        helper.make_node("Flatten", ["gp"], ["fl"]),
        helper.make_node("QLinearMatMul", ["fl", "s_g", "z_g", "wf", "wsf", "wzf", "s_o", "z_o"], ["oq"]),
        helper.make_node("DequantizeLinear", ["oq", "s_o", "z_o"], ["y"]),
    ]
    sess = om.session(nodes, [("x", F32, [1, 3, 8, 8])], [("y", F32)], inits)
    if return_model:
        return sess, om.model(nodes, [("x", F32, [1, 3, 8, 8])], [("y", F32, [1, 10])], inits)

    def qp(s, z, axis=None):
        return QuantParams(np.asarray(s, F32), np.asarray(z, np.int64), axis)

    u8 = np.dtype(np.uint8)
    i8 = np.dtype(np.int8)
    nhwc = lambda w: np.ascontiguousarray(w.transpose(0, 2, 3, 1))   # OIHW -> O, KH, KW, I
    t = [
        Tensor("x", (1, 8, 8, 3), np.dtype(F32)),
        Tensor("xq", (1, 8, 8, 3), u8, qp(s_x, z_x)),
        Tensor("w1", (8, 3, 3, 3), i8, qp(ws1, np.zeros(8), 0), nhwc(w1)),
        Tensor("b1", (8,), np.dtype(np.int32), qp(s_x * ws1, np.zeros(8), 0), b1),
        Tensor("c1", (1, 8, 8, 8), u8, qp(s_1, z_1)),
        Tensor("w2", (8, 3, 3, 1), i8, qp(ws2, np.zeros(8), 0), nhwc(w2)),
        Tensor("b2", (8,), np.dtype(np.int32), qp(s_1 * ws2, np.zeros(8), 0), b2),
        Tensor("c2", (1, 4, 4, 8), u8, qp(s_2, z_2)),
        Tensor("w3", (8, 1, 1, 8), i8, qp(ws3, 0), nhwc(w3)),
        Tensor("c3", (1, 4, 4, 8), u8, qp(s_3, z_3)),
        Tensor("ad", (1, 4, 4, 8), u8, qp(s_a, z_a)),
        Tensor("gp", (1, 1, 1, 8), u8, qp(s_g, z_g)),
        Tensor("fl", (1, 8), u8, qp(s_g, z_g)),
        Tensor("wf", (10, 8), i8, qp(wsf, 0), np.ascontiguousarray(wf.T)),
        Tensor("oq", (1, 10), u8, qp(s_o, z_o)),
        Tensor("y", (1, 10), np.dtype(F32)),
    ]
    ir_nodes = [
        Node("quantize", ["x"], ["xq"], name="q"),
        Node("conv2d", ["xq", "w1", "b1"], ["c1"], dict(stride=(1, 1), dilation=(1, 1), padding=(1, 1, 1, 1),
                                                        groups=1, activation=activation), name="conv1"),
        Node("conv2d", ["c1", "w2", "b2"], ["c2"], dict(stride=(2, 2), dilation=(1, 1), padding=(0, 0, 1, 1),
                                                        groups=8, activation=None), name="dw"),
        Node("conv2d", ["c1", "w3", ""], ["c3"], dict(stride=(2, 2), dilation=(1, 1), padding=(0, 0, 0, 0),
                                                      groups=1, activation=None), name="pw"),
        Node("add", ["c2", "c3"], ["ad"], dict(activation=None), name="add"),
        Node("mean", ["ad"], ["gp"], dict(axes=(1, 2), keepdims=True), name="gap"),
        Node("reshape", ["gp"], ["fl"], dict(shape=(1, 8)), name="flat"),
        Node("fully_connected", ["fl", "wf", ""], ["oq"], dict(activation=None), name="fc"),
        Node("dequantize", ["oq"], ["y"], name="dq"),
    ]
    graph = Graph({x.name: x for x in t}, ir_nodes, ["x"], ["y"], model_layout="NCHW", source="onnx",
                  kind="qoperator")
    return sess, graph

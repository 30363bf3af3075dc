"""Single-op onnxruntime models built with onnx.helper, for the agreement tests (test-only helper)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

_TP = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8,
       np.dtype(np.int32): TensorProto.INT32, np.dtype(np.float32): TensorProto.FLOAT}


def scalar(name: str, value, dtype) -> onnx.TensorProto:
    return helper.make_tensor(name, _TP[np.dtype(dtype)], [], [value])


def const(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.asarray(arr), name)


def model(nodes, inputs, outputs, inits) -> onnx.ModelProto:
    """An ONNX model (opset 17 + com.microsoft) of one graph."""
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, _TP[np.dtype(d)], s) for n, d, s in inputs],
                          [helper.make_tensor_value_info(o[0], _TP[np.dtype(o[1])], o[2] if len(o) > 2 else None)
                           for o in outputs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    return m


def session(nodes, inputs, outputs, inits) -> ort.InferenceSession:
    """An onnxruntime CPU session (default optimisation, 1 thread) of a graph."""
    m = model(nodes, inputs, outputs, inits)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def qlinear_add(sa, za, sb, zb, sc, zc, a_shape, b_shape, dtype=np.uint8):
    inits = [scalar("sa", sa, np.float32), scalar("sb", sb, np.float32), scalar("sc", sc, np.float32),
             scalar("za", za, dtype), scalar("zb", zb, dtype), scalar("zc", zc, dtype)]
    node = helper.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["y"],
                            domain="com.microsoft")
    return session([node], [("a", dtype, a_shape), ("b", dtype, b_shape)], [("y", dtype)], inits)


def qlinear_gap(sx, zx, sy, zy, shape, dtype=np.uint8):
    inits = [scalar("sx", sx, np.float32), scalar("zx", zx, dtype), scalar("sy", sy, np.float32),
             scalar("zy", zy, dtype)]
    node = helper.make_node("QLinearGlobalAveragePool", ["x", "sx", "zx", "sy", "zy"], ["y"],
                            domain="com.microsoft", channels_last=0)
    return session([node], [("x", dtype, shape)], [("y", dtype)], inits)


def quantize_linear(scale, zp, shape, dtype=np.uint8):
    inits = [scalar("s", scale, np.float32), scalar("z", zp, dtype)]
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
    return session([node], [("x", np.float32, shape)], [("y", dtype)], inits)


def dequantize_linear(scale, zp, shape, dtype=np.uint8):
    inits = [scalar("s", scale, np.float32), scalar("z", zp, dtype)]
    node = helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"])
    return session([node], [("x", dtype, shape)], [("y", np.float32)], inits)


def qlinear_mul(sa, za, sb, zb, sc, zc, a_shape, b_shape, dtype=np.uint8):
    inits = [scalar("sa", sa, np.float32), scalar("sb", sb, np.float32), scalar("sc", sc, np.float32),
             scalar("za", za, dtype), scalar("zb", zb, dtype), scalar("zc", zc, dtype)]
    node = helper.make_node("QLinearMul", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["y"],
                            domain="com.microsoft")
    return session([node], [("a", dtype, a_shape), ("b", dtype, b_shape)], [("y", dtype)], inits)


def qlinear_unary(op, sx, zx, sy, zy, shape, dtype=np.uint8, **attrs):
    inits = [scalar("sx", sx, np.float32), scalar("zx", zx, dtype), scalar("sy", sy, np.float32),
             scalar("zy", zy, dtype)]
    node = helper.make_node(op, ["x", "sx", "zx", "sy", "zy"], ["y"], domain="com.microsoft", **attrs)
    return session([node], [("x", dtype, shape)], [("y", dtype)], inits)


def qlinear_avg_pool(sx, zx, sy, zy, shape, dtype=np.uint8, **attrs):
    return qlinear_unary("QLinearAveragePool", sx, zx, sy, zy, shape, dtype, **attrs)


def qlinear_concat(params, sy, zy, shapes, axis, dtype=np.uint8):
    inits = [scalar("sy", sy, np.float32), scalar("zy", zy, dtype)]
    names = ["sy", "zy"]
    for i, (s, z) in enumerate(params):
        inits += [scalar(f"s{i}", s, np.float32), scalar(f"z{i}", z, dtype)]
        names += [f"x{i}", f"s{i}", f"z{i}"]
    node = helper.make_node("QLinearConcat", names, ["y"], domain="com.microsoft", axis=axis)
    return session([node], [(f"x{i}", dtype, s) for i, s in enumerate(shapes)], [("y", dtype)], inits)

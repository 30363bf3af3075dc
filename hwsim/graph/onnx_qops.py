"""ONNX QuantizeLinear / DequantizeLinear and QOperator ops (QLinearConv, QGemm, ...) -> integer IR nodes.

Registered into :mod:`hwsim.graph.onnx_ops`'s converter table.  Integer
tensors carry their QuantParams (from the node's scale / zero point inputs);
a tensor read with parameters other than those it was produced with is a
:class:`~hwsim.graph.errors.ModelError`.
"""

from __future__ import annotations

import numpy as np

from hwsim.graph.ir import QuantParams
from hwsim.graph.layout import ir_axis
from hwsim.graph.onnx_ops import (MS, _binary, _concat, _conv, _fc, _global_mean, _matmul, _op, _pool,
                                  _rank4)

__all__: list[str] = []


# ------------------------------------------------------------------------------------------------
# QuantizeLinear / DequantizeLinear
# ------------------------------------------------------------------------------------------------

_QRANGE = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127),
           np.dtype(np.uint16): (0, 65535), np.dtype(np.int16): (-32768, 32767),
           np.dtype(np.int32): (-2**31, 2**31 - 1)}


def _check_qdtype(b, node, dtype) -> None:
    if np.dtype(dtype) not in _QRANGE:
        raise b.error(node, f"quantized type {np.dtype(dtype)} is not supported")


@_op("QuantizeLinear")
def _quantize_op(b, node, attrs):
    if int(attrs.get("block_size", 0)):
        raise b.error(node, "blocked quantisation is not supported")
    if "output_dtype" in attrs and int(attrs["output_dtype"]):
        raise b.error(node, "output_dtype is not supported (give a zero point)")
    src = b.resolve(node.input[0])
    value = b.const(src)
    rank = len(value.shape) if value is not None else len(b.tensor(b.use(src, node)).shape)
    quant, dtype = b.quant_params(node, 1, 2, rank, int(attrs.get("axis", 1)))
    _check_qdtype(b, node, dtype)
    if value is not None:
        # quantize a constant once, at import, exactly as QuantizeLinear would (float32 division, RNE)
        scale = np.asarray(b.const(node.input[1]), dtype=np.float32)
        zp = np.asarray(b.const(node.input[2]) if len(node.input) > 2 and node.input[2] else 0)
        if scale.size > 1:
            shape = [1] * value.ndim
            shape[int(attrs.get("axis", 1)) % value.ndim] = scale.size
            scale = scale.reshape(shape)
            zp = zp.reshape(shape) if zp.size > 1 else zp
        q = np.rint(value.astype(np.float32) / scale).astype(np.float64) + zp.astype(np.float64)
        lo, hi = _QRANGE[np.dtype(dtype)]
        b.consts[node.output[0]] = np.clip(q, lo, hi).astype(dtype)
        return
    x = b.use(src, node)
    t = b.tensor(x)
    y = b.add_tensor(node.output[0], t.shape, dtype, quant)
    if quant.per_channel:
        raise b.error(node, "per-axis QuantizeLinear of a run-time tensor is not supported")
    b.emit("quantize", [x], [y], node)


@_op("DequantizeLinear")
def _dequantize_op(b, node, attrs):
    if int(attrs.get("block_size", 0)):
        raise b.error(node, "blocked quantisation is not supported")
    src = b.resolve(node.input[0])
    x = b.use(src, node)
    t = b.tensor(x)
    rank = len(t.shape)
    quant, dtype = b.quant_params(node, 1, 2, rank, int(attrs.get("axis", 1)), default_zp_dtype=t.dtype)
    if not np.issubdtype(t.dtype, np.integer):
        raise b.error(node, f"input {src!r} is {t.dtype}, not an integer tensor")
    if t.dtype != dtype:
        raise b.error(node, f"zero point type {dtype} differs from the input type {t.dtype}")
    _check_qdtype(b, node, dtype)
    x = b.set_quant(x, quant, node)
    y = b.add_tensor(node.output[0], t.shape, np.float32)
    b.emit("dequantize", [x], [y], node)
    if b.tensors[x].is_constant:
        b.dq_const[y] = x


# ------------------------------------------------------------------------------------------------
# QOperator ops
# ------------------------------------------------------------------------------------------------

def _q_input(b, node, index: int, scale_index: int, zp_index: int, axis: int = 1) -> str:
    """Integer input ``index`` with its quant params (from the node's scale / zero point inputs)."""
    x = b.use(node.input[index], node)
    t = b.tensor(x)
    if not np.issubdtype(t.dtype, np.integer):
        raise b.error(node, f"input {index} ({node.input[index]!r}) is {t.dtype}, expected an integer tensor")
    quant, dtype = b.quant_params(node, scale_index, zp_index, len(t.shape), axis, default_zp_dtype=t.dtype)
    if dtype != t.dtype:
        raise b.error(node, f"zero point type {dtype} differs from input {index}'s type {t.dtype}")
    return b.set_quant(x, quant, node)


def _q_output(b, node, scale_index: int, zp_index: int, rank: int):
    quant, dtype = b.quant_params(node, scale_index, zp_index, rank)
    _check_qdtype(b, node, dtype)
    if quant.per_channel:
        raise b.error(node, "per-channel output quantisation is not supported")
    return quant, dtype


def _q_weights(b, node, index: int, scale_index: int, zp_index: int, axis: int) -> str:
    if not b.is_const(node.input[index]):
        raise b.error(node, f"weights (input {index}) must be a constant initializer")
    return _q_input(b, node, index, scale_index, zp_index, axis)


def _int_bias(b, node, index: int, x: str, w: str) -> str | None:
    """The int32 bias; it gets quant params scale = x_scale * w_scale (float32), zero point 0, as ORT reads it."""
    if index >= len(node.input) or not node.input[index]:
        return None
    value = b.const(node.input[index])
    if value is None or value.dtype != np.int32:
        raise b.error(node, "the bias must be a constant int32 initializer")
    name = b.use(node.input[index], node)
    xq, wq = b.tensors[x].quant, b.tensors[w].quant
    scale = (xq.scale * wq.scale).astype(np.float32)
    quant = QuantParams(scale, np.zeros(scale.shape, np.int64), axis=0 if wq.per_channel else None)
    return b.set_quant(name, quant, node)


@_op("QLinearConv")
def _qlinearconv(b, node, attrs):
    x = _q_input(b, node, 0, 1, 2)
    _rank4(b, node, x)
    w = _q_weights(b, node, 3, 4, 5, axis=0)
    quant, dtype = _q_output(b, node, 6, 7, 4)
    _conv(b, node, attrs, x, w, _int_bias(b, node, 8, x, w), dtype, quant)


@_op("ConvInteger")
def _convinteger(b, node, attrs):
    x_zp = _runtime_zero_point(b, node, 2)
    x = _runtime_quantized(b, node, 0) if x_zp else _q_input_zp_only(b, node, 0, 2)
    w = _q_input_zp_only(b, node, 1, 3, axis=0)
    _conv(b, node, attrs, x, w, None, np.int32, None, x_zero_point=x_zp)


def _q_input_zp_only(b, node, index: int, zp_index: int, axis: int = 1) -> str:
    """Input of MatMulInteger / ConvInteger: only a zero point; its scale (if any) comes from its producer."""
    x = b.use(node.input[index], node)
    t = b.tensor(x)
    if not np.issubdtype(t.dtype, np.integer):
        raise b.error(node, f"input {index} is {t.dtype}, expected an integer tensor")
    zp = b.optional_const(node, zp_index)
    zp = np.zeros((), np.int64) if zp is None else np.asarray(zp, dtype=np.int64)
    if t.quant is not None:
        if not np.array_equal(np.broadcast_to(zp.reshape(-1), t.quant.zero_point.reshape(-1).shape),
                              t.quant.zero_point.reshape(-1)):
            raise b.error(node, f"zero point of input {index} differs from the one {x!r} was produced with")
        return x
    # no producer scale: the accumulator is unscaled, record scale 1
    if zp.size > 1:
        quant = QuantParams(np.ones(zp.size, np.float32), zp.reshape(-1), axis=ir_axis(axis, len(t.shape)))
    else:
        quant = QuantParams(np.float32(1.0), zp.reshape(()))
    return b.set_quant(x, quant, node)


@_op("QLinearMatMul")
def _qlinearmatmul(b, node, attrs):
    a = _q_input(b, node, 0, 1, 2)
    const_b = b.is_const(node.input[3])
    quant, dtype = _q_output(b, node, 6, 7, len(b.tensor(a).shape))
    if const_b and len(b.tensor(a).shape) == 2 and b.const(node.input[3]).ndim == 2:
        w = _q_input(b, node, 3, 4, 5, axis=1)
        w = _transpose_qconst(b, w)
        _fc(b, node, a, w, None, dtype, quant)
    else:
        c = _q_input(b, node, 3, 4, 5, axis=-1)
        _matmul(b, node, a, c, dtype, quant)


@_op("MatMulInteger")
def _matmulinteger(b, node, attrs):
    a_zp = _runtime_zero_point(b, node, 2)
    a = _runtime_quantized(b, node, 0) if a_zp else _q_input_zp_only(b, node, 0, 2)
    if b.is_const(node.input[1]) and len(b.tensor(a).shape) == 2 and b.const(node.input[1]).ndim == 2:
        w = _transpose_qconst(b, _q_input_zp_only(b, node, 1, 3, axis=1))
        _fc(b, node, a, w, None, np.int32, None, x_zero_point=a_zp)
    else:
        c = _q_input_zp_only(b, node, 1, 3, axis=-1)
        _matmul(b, node, a, c, np.int32, None, a_zero_point=a_zp)


def _runtime_zero_point(b, node, index: int) -> str | None:
    """The IR name of a zero point input computed at run time (DynamicQuantizeLinear's), else None."""
    if index >= len(node.input) or not node.input[index] or b.is_const(node.input[index]):
        return None
    zp = b.use(node.input[index], node)
    t = b.tensor(zp)
    if t.dtype != np.uint8 or any(d not in (1, None) for d in t.shape):
        raise b.error(node, f"run-time zero point {node.input[index]!r} must be a uint8 scalar, got "
                            f"{t.dtype} of shape {t.shape}")
    return zp


def _runtime_quantized(b, node, index: int) -> str:
    """An integer input whose zero point comes at run time: it has no static quantisation."""
    x = b.use(node.input[index], node)
    t = b.tensor(x)
    if t.dtype != np.uint8 or t.quant is not None:
        raise b.error(node, f"input {index} ({node.input[index]!r}) with a run-time zero point must be the "
                            f"uint8 output of DynamicQuantizeLinear")
    return x


# ------------------------------------------------------------------------------------------------
# dynamic quantization (onnxruntime quantize_dynamic): DynamicQuantizeLinear and the Cast after MatMulInteger
# ------------------------------------------------------------------------------------------------

@_op("DynamicQuantizeLinear")
def _dynamic_quantize_linear(b, node, attrs):
    x = b.use(node.input[0], node)
    t = b.tensor(x)
    if np.dtype(t.dtype) != np.float32:
        raise b.error(node, f"input {node.input[0]!r} must be float32, got {t.dtype}")
    if len(node.output) != 3 or not all(node.output):
        raise b.error(node, "expected three outputs (y, y_scale, y_zero_point)")
    y = b.add_tensor(node.output[0], t.shape, np.uint8)
    scale = b.add_tensor(node.output[1], (), np.float32)
    zp = b.add_tensor(node.output[2], (), np.uint8)
    b.emit("dynamic_quantize", [x], [y, scale, zp], node)


@_op("Cast")
def _cast(b, node, attrs):
    from onnx import helper

    to = np.dtype(helper.tensor_dtype_to_np_dtype(int(attrs["to"])))
    x = b.use(node.input[0], node)
    t = b.tensor(x)
    if to != np.float32 or np.dtype(t.dtype).kind not in "iu":
        raise b.error(node, f"only a cast of an integer tensor to float32 is supported at run time (here "
                            f"{t.dtype} -> {to})")
    y = b.add_tensor(node.output[0], t.shape, to)
    b.emit("cast", [x], [y], node, dtype=to)


def _transpose_qconst(b, name: str) -> str:
    """A [K, O] quantized constant as the IR's [O, K] weights (per-column quant becomes per-row)."""
    t = b.tensors[name]
    q = t.quant
    if q is not None and q.per_channel:
        q = QuantParams(q.scale, q.zero_point, axis=1 - q.axis)
    return b.add_constant(name + "_T", t.data.T, q)


@_op("QGemm", domain=MS)
def _qgemm(b, node, attrs):
    if int(attrs.get("transA", 0)):
        raise b.error(node, "transA=1 is not supported")
    if float(attrs.get("alpha", 1.0)) != 1.0:
        raise b.error(node, "alpha != 1 is not supported")
    a = _q_input(b, node, 0, 1, 2)
    trans_b = bool(int(attrs.get("transB", 0)))
    w = _q_weights(b, node, 3, 4, 5, axis=0 if trans_b else 1)
    if not trans_b:
        w = _transpose_qconst(b, w)
    bias = _int_bias(b, node, 6, a, w)
    if len(node.input) > 7 and node.input[7]:
        quant, dtype = _q_output(b, node, 7, 8, 2)
    else:
        quant, dtype = None, np.dtype(np.float32)
    _fc(b, node, a, w, bias, dtype, quant)


@_op("QLinearAdd", "QLinearMul", domain=MS)
def _qlinear_binary(b, node, attrs):
    op = {"QLinearAdd": "add", "QLinearMul": "mul"}[node.op_type]
    a = _q_input(b, node, 0, 1, 2)
    c = _q_input(b, node, 3, 4, 5)
    ra, rc = len(b.tensor(a).shape), len(b.tensor(c).shape)
    quant, dtype = _q_output(b, node, 6, 7, max(ra, rc))
    _binary(b, node, op, a, c, dtype, quant)


@_op("QLinearGlobalAveragePool", domain=MS)
def _qgap(b, node, attrs):
    if int(attrs.get("channels_last", 0)):
        raise b.error(node, "channels_last=1 is not supported")
    x = _q_input(b, node, 0, 1, 2)
    quant, dtype = _q_output(b, node, 3, 4, 4)
    _global_mean(b, node, x, dtype, quant)


@_op("QLinearAveragePool", domain=MS)
def _qavgpool(b, node, attrs):
    if int(attrs.get("channels_last", 0)):
        raise b.error(node, "channels_last=1 is not supported")
    x = _q_input(b, node, 0, 1, 2)
    quant, dtype = _q_output(b, node, 3, 4, 4)
    _pool(b, node, attrs, "avg_pool2d", x, dtype, quant)


@_op("QLinearConcat", domain=MS)
def _qconcat(b, node, attrs):
    if (len(node.input) - 2) % 3 or len(node.input) < 5:
        raise b.error(node, "expected Y_scale, Y_zero_point and (X, scale, zero point) triplets")
    inputs = [_q_input(b, node, i, i + 1, i + 2) for i in range(2, len(node.input), 3)]
    quant, dtype = _q_output(b, node, 0, 1, len(b.tensor(inputs[0]).shape))
    _concat(b, node, attrs, inputs, dtype, quant)


@_op("QLinearSigmoid", "QLinearLeakyRelu", domain=MS)
def _qunary(b, node, attrs):
    x = _q_input(b, node, 0, 1, 2)
    t = b.tensor(x)
    quant, dtype = _q_output(b, node, 3, 4, len(t.shape))
    y = b.add_tensor(node.output[0], t.shape, dtype, quant)
    if node.op_type == "QLinearSigmoid":
        b.emit("logistic", [x], [y], node)
    else:
        b.emit("leaky_relu", [x], [y], node, alpha=float(attrs.get("alpha", 0.01)))

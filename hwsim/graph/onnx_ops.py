"""Per-op conversion of ONNX nodes into IR nodes (see :mod:`hwsim.graph.onnx_import`).

Each converter reads one ONNX node (model layout NCHW) and appends IR nodes
(layout NHWC) to the builder.  Float ops and QuantizeLinear/DequantizeLinear
are converted one to one; the QDQ fusion happens later, on the IR
(:func:`hwsim.graph.passes.fuse_qdq`).  QOperator ops become integer IR ops
directly (their converters live in :mod:`hwsim.graph.onnx_qops`); shape
arithmetic on constants is evaluated first (:mod:`hwsim.graph.onnx_fold`).
"""

from __future__ import annotations

import math

import numpy as np

from hwsim.graph.errors import ModelError
from hwsim.graph.layout import TO_NCHW, TO_NHWC, ir_array, ir_axis, ir_shape, model_shape, order_preserved

__all__ = ["convert_node", "supported_ops", "model_kind", "QOPERATOR_OPS"]

MS = "com.microsoft"
QOPERATOR_OPS = frozenset({
    "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger", "QGemm", "QLinearAdd", "QLinearMul",
    "QLinearGlobalAveragePool", "QLinearConcat", "QLinearAveragePool", "QLinearSigmoid", "QLinearLeakyRelu",
})

_CONVERTERS: dict[tuple[str, str], object] = {}


def _op(*op_types: str, domain: str = ""):
    def register(fn):
        for op_type in op_types:
            _CONVERTERS[(domain, op_type)] = fn
        return fn
    return register


def supported_ops() -> list[str]:
    """ONNX op types hwsim imports (com.microsoft ones prefixed with their domain)."""
    return sorted(op if dom == "" else f"{dom}.{op}" for dom, op in _CONVERTERS)


def convert_node(b, node) -> None:
    from hwsim.graph.onnx_fold import try_fold

    attrs = _attrs(node)
    if try_fold(b, node, attrs):
        return
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    fn = _CONVERTERS.get((domain, node.op_type))
    if fn is None:
        from hwsim.graph.onnx_fold import FOLDABLE_OPS

        where = f"{node.domain}." if domain else ""
        hint = " (hwsim evaluates it at import only when all its inputs are constants)" \
            if node.op_type in FOLDABLE_OPS and not domain else ""
        raise ModelError(f"{b.path}: unsupported ONNX op {where}{node.op_type} (node {node.name!r}){hint}; "
                         f"supported ops: {', '.join(supported_ops())}")
    fn(b, node, attrs)


def model_kind(model) -> str:
    ops = {n.op_type for n in model.graph.node}
    if ops & QOPERATOR_OPS:
        return "qoperator"
    if ops & {"QuantizeLinear", "DequantizeLinear"}:
        return "qdq"
    return "float"


def _attrs(node) -> dict:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


# ------------------------------------------------------------------------------------------------
# shapes
# ------------------------------------------------------------------------------------------------

def _broadcast(*shapes: tuple) -> tuple:
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = {s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0}
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ValueError(f"shapes {shapes} do not broadcast")
        out.append(known.pop() if known else (None if None in dims else 1))
    return tuple(out)


def _out_size(size, k: int, stride: int, dilation: int, pad_total: int, ceil: bool = False):
    if size is None:
        return None
    span = size + pad_total - ((k - 1) * dilation + 1)
    if span < 0:
        raise ValueError(f"kernel {k} (dilation {dilation}) larger than padded input {size + pad_total}")
    return (-(-span // stride) if ceil else span // stride) + 1


def _spatial_padding(b, node, attrs, in_hw: tuple, kernel: tuple, strides: tuple, dilations: tuple) -> tuple:
    """(top, left, bottom, right) from ``pads`` or ``auto_pad``."""
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if len(pads) != 4:
            raise b.error(node, f"expected 4 pads for a 2-D op, got {pads}")
        return tuple(int(p) for p in pads)
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise b.error(node, f"unknown auto_pad {auto!r}")
    result = []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations):
        if size is None:
            raise b.error(node, "auto_pad SAME needs known spatial dimensions")
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        result.append((small, big) if auto == "SAME_UPPER" else (big, small))
    (top, bottom), (left, right) = result
    return (top, left, bottom, right)


# ------------------------------------------------------------------------------------------------
# helpers shared by float and quantized converters
# ------------------------------------------------------------------------------------------------

def _rank4(b, node, name: str) -> None:
    if len(b.tensor(name).shape) != 4:
        raise b.error(node, f"only 2-D (rank-4 NCHW) inputs are supported, got rank {len(b.tensor(name).shape)}")


def _conv(b, node, attrs, x: str, w: str, bias: str | None, out_dtype, out_quant,
          x_zero_point: str | None = None) -> None:
    _rank4(b, node, x)
    xs = b.tensor(x).shape
    wshape = b.tensor(w).shape
    if len(wshape) != 4:
        raise b.error(node, f"weights must be rank 4, got shape {model_shape(wshape)}")
    o, kh, kw, cin_g = wshape
    groups = int(attrs.get("group", 1))
    if xs[3] is not None and xs[3] != cin_g * groups:
        raise b.error(node, f"input channels {xs[3]} != weight channels {cin_g} x group {groups}")
    if o % groups:
        raise b.error(node, f"output channels {o} not divisible by group {groups}")
    if "kernel_shape" in attrs and tuple(attrs["kernel_shape"]) != (kh, kw):
        raise b.error(node, f"kernel_shape {attrs['kernel_shape']} does not match the weights {(kh, kw)}")
    strides = tuple(attrs.get("strides", (1, 1)))
    dilations = tuple(attrs.get("dilations", (1, 1)))
    padding = _spatial_padding(b, node, attrs, (xs[1], xs[2]), (kh, kw), strides, dilations)
    oh = _out_size(xs[1], kh, strides[0], dilations[0], padding[0] + padding[2])
    ow = _out_size(xs[2], kw, strides[1], dilations[1], padding[1] + padding[3])
    y = b.add_tensor(node.output[0], (xs[0], oh, ow, o), out_dtype, out_quant)
    inputs = [x, w] + ([bias or "", x_zero_point] if x_zero_point else [bias] if bias else [])
    b.emit("conv2d", inputs, [y], node, stride=strides, dilation=dilations, padding=padding, groups=groups,
           activation=None)


def _pool_attrs(b, node, attrs, x: str, kernel: tuple) -> dict:
    xs = b.tensor(x).shape
    strides = tuple(attrs.get("strides", (1, 1)))
    dilations = tuple(attrs.get("dilations", (1, 1)))
    if dilations != (1, 1):
        raise b.error(node, "dilated pooling is not supported")
    if int(attrs.get("ceil_mode", 0)):
        raise b.error(node, "ceil_mode=1 is not supported")
    padding = _spatial_padding(b, node, attrs, (xs[1], xs[2]), kernel, strides, (1, 1))
    oh = _out_size(xs[1], kernel[0], strides[0], 1, padding[0] + padding[2])
    ow = _out_size(xs[2], kernel[1], strides[1], 1, padding[1] + padding[3])
    return {"kernel": tuple(kernel), "stride": strides, "padding": padding, "out_shape": (xs[0], oh, ow, xs[3])}


def _pool(b, node, attrs, op: str, x: str, out_dtype, out_quant) -> None:
    _rank4(b, node, x)
    kernel = tuple(attrs.get("kernel_shape", ()))
    if len(kernel) != 2:
        raise b.error(node, f"kernel_shape must have 2 entries, got {kernel}")
    if len(node.output) > 1 and node.output[1]:
        raise b.error(node, "the Indices output of MaxPool is not supported")
    p = _pool_attrs(b, node, attrs, x, kernel)
    y = b.add_tensor(node.output[0], p.pop("out_shape"), out_dtype, out_quant)
    extra = {"count_include_pad": bool(attrs.get("count_include_pad", 0))} if op == "avg_pool2d" else {}
    b.emit(op, [x], [y], node, activation=None, **p, **extra)


def _global_mean(b, node, x: str, out_dtype, out_quant) -> None:
    _rank4(b, node, x)
    n, _, _, c = b.tensor(x).shape
    y = b.add_tensor(node.output[0], (n, 1, 1, c), out_dtype, out_quant)
    b.emit("mean", [x], [y], node, axes=(1, 2), keepdims=True)


def _binary_operand(b, node, name: str, other_rank: int) -> str:
    """IR operand of an elementwise op; a lower-rank constant facing a rank-4 tensor is re-laid out."""
    t = b.tensor(b.use(name, node))
    if other_rank == 4 and len(t.shape) < 4:
        if t.name in b.dq_const:          # DequantizeLinear of a constant: re-lay the integers, dequantize again
            q = b.tensors[b.dq_const[t.name]]
            if q.quant.per_channel:
                raise b.error(node, "a per-channel quantized operand broadcast against a rank-4 tensor")
            data4 = ir_array(q.data.reshape((1,) * (4 - q.data.ndim) + q.data.shape))
            q4 = b.add_constant(q.name, data4, q.quant)
            f4 = b.add_tensor(b.fresh(t.name), data4.shape, t.dtype)
            b.emit("dequantize", [q4], [f4], node)
            b.dq_const[f4] = q4
            return f4
        if t.is_constant:
            data = t.data   # rank < 4: IR layout == model layout
            data4 = ir_array(data.reshape((1,) * (4 - data.ndim) + data.shape))
            if t.quant is not None and t.quant.per_channel:
                raise b.error(node, "a per-channel quantized operand broadcast against a rank-4 tensor")
            return b.add_constant(name, data4, t.quant)
        if any(d not in (1, None) for d in t.shape) and len(t.shape) > 1:
            raise b.error(node, f"run-time operand {name!r} of rank {len(t.shape)} broadcast against a rank-4 "
                                "tensor is not supported")
        if len(t.shape) == 1 and t.shape[0] not in (1, None):
            raise b.error(node, f"run-time operand {name!r} of shape {t.shape} broadcast along W of NCHW "
                                "is not supported")
    return t.name


def _binary(b, node, op: str, a_name: str, b_name: str, out_dtype, out_quant) -> None:
    ra = len(b.tensor(b.use(a_name, node)).shape)
    rb = len(b.tensor(b.use(b_name, node)).shape)
    a = _binary_operand(b, node, a_name, rb)
    c = _binary_operand(b, node, b_name, ra)
    shape = _broadcast(b.tensor(a).shape, b.tensor(c).shape)
    y = b.add_tensor(node.output[0], shape, out_dtype, out_quant)
    b.emit(op, [a, c], [y], node, activation=None)


def _concat(b, node, attrs, inputs: list[str], out_dtype, out_quant) -> None:
    shapes = [b.tensor(x).shape for x in inputs]
    rank = len(shapes[0])
    if any(len(s) != rank for s in shapes):
        raise b.error(node, f"inputs of different ranks {shapes}")
    axis = ir_axis(int(attrs.get("axis", 1)), rank)
    dims = [s[axis] for s in shapes]
    shape = list(shapes[0])
    shape[axis] = None if None in dims else sum(dims)
    y = b.add_tensor(node.output[0], shape, out_dtype, out_quant)
    b.emit("concat", inputs, [y], node, axis=axis)


def _reshape_to(b, node, x: str, target_model_shape: tuple, out_name: str) -> None:
    """Reshape with the model's element order: transposes around rank-4 tensors when the order differs.

    The ``shape`` attribute holds -1 for the one dimension unknown at import (a dynamic batch).
    """
    xt = b.tensor(x)
    target = tuple(target_model_shape)
    if target.count(None) > 1:
        raise b.error(node, f"reshape to {target}: more than one dimension unknown at import")

    def spec(shape):
        return tuple(-1 if d is None else int(d) for d in shape)

    src = x
    if len(xt.shape) == 4 and not order_preserved(model_shape(xt.shape)):
        src = b.add_tensor(b.fresh(f"{x}_nchw"), model_shape(xt.shape), xt.dtype, xt.quant)
        b.emit("transpose", [x], [src], node, perm=TO_NCHW)
    if len(target) == 4 and not order_preserved(target):
        mid = b.add_tensor(b.fresh(f"{out_name}_nchw"), target, xt.dtype, xt.quant)
        b.emit("reshape", [src], [mid], node, shape=spec(target))
        b.add_tensor(out_name, ir_shape(target), xt.dtype, xt.quant)
        b.emit("transpose", [mid], [out_name], node, perm=TO_NHWC)
    else:
        b.add_tensor(out_name, ir_shape(target), xt.dtype, xt.quant)
        b.emit("reshape", [src], [out_name], node, shape=spec(ir_shape(target)))


def _resolve_shape(b, node, in_model_shape: tuple, spec, allowzero: bool) -> tuple:
    spec = [int(v) for v in spec]
    out = []
    for i, v in enumerate(spec):
        if v == 0 and not allowzero:
            if i >= len(in_model_shape):
                raise b.error(node, f"shape {spec}: 0 at position {i} beyond the input rank")
            out.append(in_model_shape[i])
        else:
            out.append(v)
    if out.count(-1) > 1:
        raise b.error(node, f"shape {spec} has more than one -1")
    if -1 in out:
        known = [d for d in out if d != -1]
        total = None if None in in_model_shape else math.prod(in_model_shape)
        if total is None or None in known:
            inferred = b.inferred.get(node.output[0], (None, None))[0]
            if inferred is None or None in inferred:
                out[out.index(-1)] = None
                return tuple(out)
            return tuple(inferred)
        rest = math.prod(known)
        if rest == 0 or total % rest:
            raise b.error(node, f"cannot reshape {in_model_shape} to {spec}")
        out[out.index(-1)] = total // rest
    if None not in in_model_shape and None not in out and math.prod(out) != math.prod(in_model_shape):
        raise b.error(node, f"cannot reshape {in_model_shape} to {spec}")
    return tuple(out)


def _weights_oc(b, node, name: str, transpose: bool, scale: float = 1.0) -> str:
    """IR weight tensor [O, K] for a fully_connected from a constant (or dequantized constant) matrix."""
    src = b.resolve(name)
    if src in b.dq_const:
        if scale != 1.0:
            raise b.error(node, "alpha != 1 with quantized weights is not supported")
        if not transpose:
            return b.use(src, node)
        q = b.tensors[b.dq_const[src]]
        quant = q.quant
        if quant.per_channel:
            quant = type(quant)(quant.scale, quant.zero_point, axis=1 - quant.axis)
        qt = b.add_constant(q.name + "_T", q.data.T, quant)
        ft = b.add_tensor(b.fresh(src + "_T"), b.tensors[qt].shape, np.float32)
        b.emit("dequantize", [qt], [ft], node)
        b.dq_const[ft] = qt
        return ft
    value = b.const(src)
    if value is None:
        raise b.error(node, "weights must be a constant (or a DequantizeLinear of a constant)")
    if value.ndim != 2:
        raise b.error(node, f"weights must be a matrix, got shape {value.shape}")
    w = value.T if transpose else value
    if scale != 1.0:
        w = (w.astype(np.float32) * np.float32(scale)).astype(value.dtype)
    return b.add_constant(src, np.ascontiguousarray(w))


def _fc(b, node, x: str, w: str, bias: str | None, out_dtype, out_quant, x_zero_point: str | None = None) -> None:
    xs = b.tensor(x).shape
    ws = b.tensor(w).shape
    if len(xs) != 2:
        raise b.error(node, f"input must be a matrix [N, K], got shape {model_shape(xs)}")
    if xs[1] is not None and xs[1] != ws[1]:
        raise b.error(node, f"input has K={xs[1]} but the weights have K={ws[1]}")
    y = b.add_tensor(node.output[0], (xs[0], ws[0]), out_dtype, out_quant)
    inputs = [x, w] + ([bias or "", x_zero_point] if x_zero_point else [bias] if bias else [])
    b.emit("fully_connected", inputs, [y], node, activation=None)


def _matmul(b, node, a: str, c: str, out_dtype, out_quant, a_zero_point: str | None = None) -> None:
    sa, sc = b.tensor(a).shape, b.tensor(c).shape
    if len(sa) < 2 or len(sc) < 2:
        raise b.error(node, "MatMul of 1-D operands is not supported")
    if 4 in (len(sa), len(sc)):
        raise b.error(node, "MatMul of rank-4 tensors is not supported")
    batch = _broadcast(sa[:-2], sc[:-2]) if (sa[:-2] or sc[:-2]) else ()
    y = b.add_tensor(node.output[0], batch + (sa[-2], sc[-1]), out_dtype, out_quant)
    b.emit("matmul", [a, c] + ([a_zero_point] if a_zero_point else []), [y], node)


def _float_dtype(b, name):
    """Float ops keep their input's float type."""
    return b.tensor(name).dtype


# ------------------------------------------------------------------------------------------------
# float ops
# ------------------------------------------------------------------------------------------------

@_op("Conv")
def _conv_op(b, node, attrs):
    x = b.use(node.input[0], node)
    w = b.use(node.input[1], node)
    bias = b.use(node.input[2], node) if len(node.input) > 2 and node.input[2] else None
    _conv(b, node, attrs, x, w, bias, _float_dtype(b, x), None)


@_op("Gemm")
def _gemm(b, node, attrs):
    x = b.use(node.input[0], node)
    if int(attrs.get("transA", 0)):
        xt = b.tensor(x)
        if len(xt.shape) != 2:
            raise b.error(node, f"A must be a matrix, got shape {xt.shape}")
        x_t = b.add_tensor(b.fresh(f"{x}_T"), xt.shape[::-1], xt.dtype, xt.quant)
        b.emit("transpose", [x], [x_t], node, perm=(1, 0))
        x = x_t
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_b = bool(int(attrs.get("transB", 0)))
    if not b.is_const(node.input[1]) and b.resolve(node.input[1]) not in b.dq_const:
        raise b.error(node, "Gemm with a run-time B is not supported")
    w = _weights_oc(b, node, node.input[1], transpose=not trans_b, scale=alpha)
    o = b.tensor(w).shape[0]
    bias = None
    if len(node.input) > 2 and node.input[2]:
        cname = b.resolve(node.input[2])
        if cname in b.dq_const:
            if beta != 1.0:
                raise b.error(node, "beta != 1 with a quantized bias is not supported")
            bias = b.use(cname, node)
        else:
            c = b.const(cname)
            if c is None:
                raise b.error(node, "C must be a constant")
            if c.size not in (1, o) or (c.ndim == 2 and c.shape[0] != 1):
                raise b.error(node, f"C of shape {c.shape} is not a per-output bias")
            cb = np.broadcast_to(c.reshape(-1), (o,)).astype(np.float32) * np.float32(beta)
            bias = b.add_constant(cname, cb.astype(c.dtype))
    _fc(b, node, x, w, bias, _float_dtype(b, x), None)


@_op("MatMul")
def _matmul_op(b, node, attrs):
    a = b.use(node.input[0], node)
    bname = b.resolve(node.input[1])
    const_b = b.is_const(bname) or bname in b.dq_const
    if const_b and len(b.tensor(a).shape) == 2 and len(b.tensor(b.use(bname, node)).shape) == 2:
        w = _weights_oc(b, node, bname, transpose=True)
        _fc(b, node, a, w, None, _float_dtype(b, a), None)
    else:
        _matmul(b, node, a, b.use(bname, node), _float_dtype(b, a), None)


@_op("Add", "Sub", "Mul")
def _binary_op(b, node, attrs):
    op = {"Add": "add", "Sub": "sub", "Mul": "mul"}[node.op_type]
    dtype = _float_dtype(b, b.use(node.input[0], node))
    _binary(b, node, op, node.input[0], node.input[1], dtype, None)


def _clip_bounds(b, node, attrs) -> tuple[float, float]:
    if node.op_type == "Relu":
        return (0.0, math.inf)
    if b.opset < 11:
        return (float(attrs.get("min", -math.inf)), float(attrs.get("max", math.inf)))
    lo = b.optional_const(node, 1)
    hi = b.optional_const(node, 2)
    return (-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi))


@_op("Relu", "Clip")
def _clip_op(b, node, attrs):
    x = b.use(node.input[0], node)
    t = b.tensor(x)
    lo, hi = _clip_bounds(b, node, attrs)
    if np.issubdtype(t.dtype, np.integer) and node.op_type == "Clip":
        if t.quant is None or t.quant.per_channel:
            raise b.error(node, "Clip of an integer tensor without per-tensor quant params")
        s, z = float(t.quant.scale), int(t.quant.zero_point)
        lo, hi = ((lo - z) * s if math.isfinite(lo) else lo), ((hi - z) * s if math.isfinite(hi) else hi)
    y = b.add_tensor(node.output[0], t.shape, t.dtype, t.quant)
    if node.op_type == "Relu":
        b.emit("relu", [x], [y], node)
    else:
        b.emit("clip", [x], [y], node, min=lo, max=hi)


@_op("Sigmoid", "Tanh", "HardSwish")
def _unary_op(b, node, attrs):
    op = {"Sigmoid": "logistic", "Tanh": "tanh", "HardSwish": "hard_swish"}[node.op_type]
    x = b.use(node.input[0], node)
    t = b.tensor(x)
    y = b.add_tensor(node.output[0], t.shape, t.dtype)
    b.emit(op, [x], [y], node)


@_op("LeakyRelu")
def _leaky_op(b, node, attrs):
    x = b.use(node.input[0], node)
    t = b.tensor(x)
    y = b.add_tensor(node.output[0], t.shape, t.dtype)
    b.emit("leaky_relu", [x], [y], node, alpha=float(attrs.get("alpha", 0.01)))


@_op("Softmax")
def _softmax_op(b, node, attrs):
    x = b.use(node.input[0], node)
    t = b.tensor(x)
    rank = len(t.shape)
    axis = int(attrs.get("axis", -1 if b.opset >= 13 else 1))
    if b.opset < 13 and axis % rank != rank - 1:
        raise b.error(node, f"Softmax-{b.opset} with axis {axis} (not the last) is not supported")
    y = b.add_tensor(node.output[0], t.shape, t.dtype)
    b.emit("softmax", [x], [y], node, axis=ir_axis(axis, rank), beta=1.0)


@_op("GlobalAveragePool")
def _gap_op(b, node, attrs):
    x = b.use(node.input[0], node)
    t = b.tensor(x)
    _global_mean(b, node, x, t.dtype, t.quant if np.issubdtype(t.dtype, np.integer) else None)


@_op("AveragePool")
def _avgpool_op(b, node, attrs):
    x = b.use(node.input[0], node)
    t = b.tensor(x)
    if np.issubdtype(t.dtype, np.integer):
        raise b.error(node, "AveragePool of an integer tensor is not supported (use QLinearAveragePool)")
    _pool(b, node, attrs, "avg_pool2d", x, t.dtype, None)


@_op("MaxPool")
def _maxpool_op(b, node, attrs):
    x = b.use(node.input[0], node)
    t = b.tensor(x)
    if int(attrs.get("storage_order", 0)):
        raise b.error(node, "storage_order=1 is not supported")
    _pool(b, node, attrs, "max_pool2d", x, t.dtype, t.quant)


@_op("Reshape")
def _reshape_op(b, node, attrs):
    x = b.use(node.input[0], node)
    spec = b.const(node.input[1])
    in_shape = model_shape(b.tensor(x).shape)
    if spec is None:
        inferred = b.inferred.get(node.output[0], (None, None))[0]
        if inferred is None:
            raise b.error(node, "the target shape is computed at run time and could not be inferred")
        target = tuple(inferred)
    else:
        target = _resolve_shape(b, node, in_shape, spec.reshape(-1), bool(int(attrs.get("allowzero", 0))))
    _reshape_to(b, node, x, target, node.output[0])


@_op("Flatten")
def _flatten_op(b, node, attrs):
    x = b.use(node.input[0], node)
    shape = model_shape(b.tensor(x).shape)
    axis = int(attrs.get("axis", 1))
    axis = axis + len(shape) if axis < 0 else axis
    head, tail = shape[:axis], shape[axis:]
    target = (None if None in head else math.prod(head), None if None in tail else math.prod(tail))
    _reshape_to(b, node, x, target, node.output[0])


@_op("Transpose")
def _transpose_op(b, node, attrs):
    x = b.use(node.input[0], node)
    t = b.tensor(x)
    rank = len(t.shape)
    perm = tuple(int(p) for p in attrs.get("perm", range(rank - 1, -1, -1)))
    if sorted(perm) != list(range(rank)):
        raise b.error(node, f"perm {perm} is not a permutation of {rank} axes")
    if rank == 4:   # IR axis i of the output is model axis TO_NHWC[i] = model input axis perm[TO_NHWC[i]]
        perm = tuple(TO_NCHW[perm[TO_NHWC[i]]] for i in range(4))
    if t.quant is not None and t.quant.per_channel:
        raise b.error(node, "Transpose of a per-channel quantized tensor is not supported")
    y = b.add_tensor(node.output[0], tuple(t.shape[p] for p in perm), t.dtype, t.quant)
    b.emit("transpose", [x], [y], node, perm=perm)


@_op("Squeeze", "Unsqueeze")
def _squeeze_op(b, node, attrs):
    x = b.use(node.input[0], node)
    shape = list(model_shape(b.tensor(x).shape))
    if "axes" in attrs:
        axes = [int(a) for a in attrs["axes"]]
    else:
        given = b.optional_const(node, 1)
        axes = None if given is None else [int(a) for a in given.reshape(-1)]
    if node.op_type == "Squeeze":
        if axes is None:
            if None in shape:
                raise b.error(node, "Squeeze without axes needs known dimensions")
            target = [d for d in shape if d != 1]
        else:
            drop = {a % len(shape) for a in axes}
            if any(shape[a] not in (1, None) for a in drop):
                raise b.error(node, f"cannot squeeze axes {sorted(drop)} of shape {tuple(shape)}")
            target = [d for i, d in enumerate(shape) if i not in drop]
    else:
        if axes is None:
            raise b.error(node, "Unsqueeze needs axes")
        rank = len(shape) + len(axes)
        target = shape
        for a in sorted(a % rank for a in axes):
            target.insert(a, 1)
    _reshape_to(b, node, x, tuple(target), node.output[0])


@_op("ReduceMean")
def _reduce_mean_op(b, node, attrs):
    x = b.use(node.input[0], node)
    t = b.tensor(x)
    rank = len(t.shape)
    if "axes" in attrs:
        axes = [int(a) for a in attrs["axes"]]
    else:
        given = b.optional_const(node, 1)
        axes = None if given is None or given.size == 0 else [int(a) for a in given.reshape(-1)]
    if axes is None:
        if int(attrs.get("noop_with_empty_axes", 0)):
            raise b.error(node, "ReduceMean with noop_with_empty_axes=1 and no axes is not supported")
        axes = list(range(rank))
    ir_axes = tuple(sorted({ir_axis(a, rank) for a in axes}))
    keepdims = bool(int(attrs.get("keepdims", 1)))
    if not keepdims and rank == 4:
        model_axes = {a % 4 for a in axes}
        if [m for m in TO_NHWC if m not in model_axes] != [m for m in range(4) if m not in model_axes]:
            raise b.error(node, f"ReduceMean over axes {sorted(model_axes)} without keepdims leaves a tensor "
                                "whose NCHW and NHWC orders differ (not supported)")
    if np.issubdtype(t.dtype, np.integer):
        raise b.error(node, "ReduceMean of an integer tensor is not supported")
    if keepdims:
        shape = tuple(1 if i in ir_axes else d for i, d in enumerate(t.shape))
    else:
        shape = tuple(d for i, d in enumerate(t.shape) if i not in ir_axes)
    y = b.add_tensor(node.output[0], shape, t.dtype)
    b.emit("mean", [x], [y], node, axes=ir_axes, keepdims=keepdims)


@_op("Concat")
def _concat_op(b, node, attrs):
    inputs = [b.use(n, node) for n in node.input]
    t = b.tensor(inputs[0])
    if np.issubdtype(t.dtype, np.integer):
        raise b.error(node, "Concat of integer tensors is not supported (use QLinearConcat or QDQ)")
    _concat(b, node, attrs, inputs, t.dtype, None)


@_op("Pad")
def _pad_op(b, node, attrs):
    x = b.use(node.input[0], node)
    t = b.tensor(x)
    rank = len(t.shape)
    mode = attrs.get("mode", "constant")
    if mode != "constant":
        raise b.error(node, f"Pad mode {mode!r} is not supported (only 'constant')")
    if b.opset < 11:
        pads = list(attrs.get("pads", []))
        value = float(attrs.get("value", 0.0))
    else:
        pads = [int(v) for v in b.require_const(node, 1, "pads").reshape(-1)]
        cv = b.optional_const(node, 2)
        value = 0.0 if cv is None or cv.size == 0 else float(cv.reshape(-1)[0])
        axes = b.optional_const(node, 3)
        if axes is not None:
            full = [0] * (2 * rank)
            k = len(axes)
            for i, ax in enumerate(int(a) % rank for a in axes.reshape(-1)):
                full[ax], full[rank + ax] = pads[i], pads[k + i]
            pads = full
    if len(pads) != 2 * rank:
        raise b.error(node, f"{len(pads)} pads for a rank-{rank} input")
    if any(p < 0 for p in pads):
        raise b.error(node, "negative pads (cropping) are not supported")
    per_axis = [(pads[i], pads[rank + i]) for i in range(rank)]
    if rank == 4:
        per_axis = [per_axis[i] for i in TO_NHWC]
    if np.issubdtype(t.dtype, np.integer):
        if t.quant is None or t.quant.per_channel:
            raise b.error(node, "Pad of an integer tensor without per-tensor quant params")
        value = (value - int(t.quant.zero_point)) * float(t.quant.scale)
    shape = tuple(None if d is None else d + lo + hi for d, (lo, hi) in zip(t.shape, per_axis))
    y = b.add_tensor(node.output[0], shape, t.dtype, t.quant)
    b.emit("pad", [x], [y], node, pads=tuple(per_axis), constant=value)


@_op("BatchNormalization")
def _batchnorm_op(b, node, attrs):
    from hwsim.graph.passes import fold_batchnorm

    if int(attrs.get("training_mode", 0)) or (len(node.output) > 1 and any(node.output[1:])):
        raise b.error(node, "training-mode BatchNormalization is not supported")
    params = [np.asarray(b.require_const(node, i, what), dtype=np.float64)
              for i, what in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var"))]
    gamma, beta, mean, var = params
    mult = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    shift = beta - mean * mult
    x = b.use(node.input[0], node)
    if b.consumer_count.get(node.input[0], 0) == 1 and fold_batchnorm(b, x, node.output[0], mult, shift, (gamma, beta)):
        return
    # not foldable: y = x * mult + shift, per channel (the last IR axis of a rank-4 tensor)
    t = b.tensor(x)
    if len(t.shape) not in (2, 4):
        raise b.error(node, f"BatchNormalization of a rank-{len(t.shape)} input is not supported")
    m = b.add_constant(node.input[1], mult.astype(np.float32))
    s = b.add_constant(node.input[2], shift.astype(np.float32))
    mid = b.add_tensor(b.fresh(node.output[0] + "_scaled"), t.shape, t.dtype)
    b.emit("mul", [x, m], [mid], node, activation=None)
    y = b.add_tensor(node.output[0], t.shape, t.dtype)
    b.emit("add", [mid, s], [y], node, activation=None)


@_op("Identity", "Dropout")
def _identity_op(b, node, attrs):
    if len(node.output) > 1 and any(node.output[1:]):
        raise b.error(node, "the mask output of Dropout is not supported")
    if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
        training = b.const(node.input[2])
        if training is None or bool(np.asarray(training).reshape(-1)[0]):
            raise b.error(node, "Dropout in training mode (random) is not supported")
    src = b.resolve(node.input[0])
    if node.output[0] in b.output_names:
        x = b.use(src, node)
        t = b.tensor(x)
        y = b.add_tensor(node.output[0], t.shape, t.dtype, t.quant)
        b.emit("reshape", [x], [y], node, shape=t.shape)
    else:
        b.alias[node.output[0]] = src


@_op("Constant")
def _constant_op(b, node, attrs):
    from onnx import numpy_helper

    if "value" in attrs:
        b.consts[node.output[0]] = numpy_helper.to_array(attrs["value"])
    elif "value_float" in attrs:
        b.consts[node.output[0]] = np.array(attrs["value_float"], dtype=np.float32)
    elif "value_floats" in attrs:
        b.consts[node.output[0]] = np.array(attrs["value_floats"], dtype=np.float32)
    elif "value_int" in attrs:
        b.consts[node.output[0]] = np.array(attrs["value_int"], dtype=np.int64)
    elif "value_ints" in attrs:
        b.consts[node.output[0]] = np.array(attrs["value_ints"], dtype=np.int64)
    else:
        raise b.error(node, f"Constant with attributes {sorted(attrs)} is not supported")


# the QuantizeLinear / DequantizeLinear and QOperator converters register themselves in _CONVERTERS
from hwsim.graph import onnx_qops  # noqa: E402,F401  (import for its registrations)

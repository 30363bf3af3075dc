"""Dynamic quantization: activation ranges computed per input at run time, as onnxruntime's path runs it.

onnxruntime's ``quantize_dynamic`` turns ``y = x @ W + b`` into::

    x_q, x_scale, x_zp = DynamicQuantizeLinear(x)          # uint8, parameters from this very input
    acc  = MatMulInteger(x_q, W_q, x_zp, W_zp)             # int32, exact
    y    = Cast(acc, float) * (x_scale * W_scale) + b      # float32, three separately rounded steps

hwsim's IR mirrors it one to one: ``dynamic_quantize`` -> ``fully_connected`` (int32 output, the
run-time zero point as its fourth input) -> ``cast`` -> ``mul`` -> ``add`` (SEMANTICS.md 3.7 for the
quantize itself).  :func:`dynamic_qparams` is the single place the run-time parameters are computed.

:func:`dynamic_quantize_graph` builds that structure from a float graph for any target; the
importer builds the same from an onnxruntime-quantized model file.
"""

from __future__ import annotations

import numpy as np

from hwsim.graph.ir import Graph, Node, QuantParams, Tensor
from hwsim.quant.params import QuantFormat, params_from_range

__all__ = ["dynamic_qparams", "dynamic_quantize_graph", "DYNAMIC_OPS"]

_F32 = np.float32
_U8_MIN, _U8_MAX = _F32(0), _F32(255)


def dynamic_qparams(x: np.ndarray) -> tuple[np.float32, int]:
    """The uint8 (scale, zero point) DynamicQuantizeLinear picks for ``x``, in onnxruntime's float32 order.

    ``lo = min(min(x), 0)``, ``hi = max(max(x), 0)`` (so 0 is exact);
    ``scale = fl32(fl32(hi - lo) / 255)``, or 1 when ``hi == lo`` (an all-zero input);
    ``zero_point = round_half_even(clamp(fl32(0 - fl32(lo / scale)), 0, 255))``
    (onnxruntime ``GetQuantizationParameter``, core/util/qmath.h).  ``x`` must be finite float32.
    """
    lo = min(_F32(x.min()), _F32(0))
    hi = max(_F32(x.max()), _F32(0))
    scale = _F32(1) if hi == lo else _F32(_F32(hi - lo) / _U8_MAX)
    initial = _F32(_U8_MIN - _F32(lo / scale))
    zero_point = int(np.rint(max(_U8_MIN, min(_U8_MAX, initial))))
    return scale, zero_point


def _weight_format(profile, op: str, weight_fmt: QuantFormat | None) -> QuantFormat:
    if weight_fmt is not None:
        if not isinstance(weight_fmt, QuantFormat):
            raise ValueError(f"weight_fmt: expected a QuantFormat, got {type(weight_fmt).__name__}")
        return weight_fmt
    f = profile.for_op(op).weights
    if f.bits > 16 or f.bits < 2:
        raise ValueError(f"target {profile.name}: {f.bits}-bit {op} weights cannot be quantized here (2..16 bits)")
    return QuantFormat(f.bits, f.signed, f.symmetric, narrow=f.signed and f.min > f.int_format.min)


def _quantize_weights(w: np.ndarray, fmt: QuantFormat, axis: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes, scales, zero points) of constant weights, per tensor or per slice along ``axis``.

    Scales come from :func:`params_from_range` over each slice's [min, max] (symmetric formats use
    max|w|, as onnxruntime's ``compute_scale_zp``); the codes are ``clip(rint(fl32(w / scale)) + zp)``
    with the float32 division onnxruntime's ``quantize_nparray`` does, so the codes equal its own.
    """
    w32 = np.asarray(w, dtype=_F32)
    if axis is None:
        p = params_from_range(float(w32.min()), float(w32.max()), fmt)
        shape = ()
    else:
        moved = np.moveaxis(w32, axis, 0).reshape(w32.shape[axis], -1)
        p = params_from_range(moved.min(axis=1), moved.max(axis=1), fmt)
        shape = [1] * w32.ndim
        shape[axis] = -1
    scale = p.scale.reshape(shape)
    zp = p.zero_point.reshape(shape).astype(_F32)
    q = np.clip(np.rint(w32 / scale) + zp, fmt.qmin, fmt.qmax).astype(fmt.dtype)
    return q, p.scale, p.zero_point


DYNAMIC_OPS = ("fully_connected", "matmul", "conv2d")


def _depthwise(node: Node, w_t: Tensor) -> bool:
    groups = int(node.attrs.get("groups", 1))
    return groups > 1 and w_t.data.shape[3] == 1


def dynamic_quantize_graph(float_graph: Graph, target, weight_fmt: QuantFormat | None = None,
                           per_channel: bool = False, *, ops=DYNAMIC_OPS) -> Graph:
    """Dynamic quantization of a float graph's fully_connected / matmul (and conv2d) layers, as
    onnxruntime's ``quantize_dynamic`` does it (module docstring).

    Each layer ``y = act(x @ W^T + b)`` with constant weights becomes::

        dynamic_quantize(x) -> x__q (uint8), x__q_scale, x__q_zero_point
        mul(x__q_scale, W__q_scale)                       -> y__scale      (float32 [] or [O])
        fully_connected(x__q, W__q, "", x__q_zero_point)  -> y__acc        (int32; the layer's node name)
        cast(y__acc) * y__scale [+ b]                     -> y             (float32, activation on the last op)

    A conv2d becomes the same chain around an integer conv2d (onnxruntime's ConvInteger); ``ops``
    chooses which of ``fully_connected``, ``matmul``, ``conv2d`` are quantized (all three by default,
    like ``quantize_dynamic``'s MatMul, Gemm and Conv).
    Weights are quantized once (``weight_fmt``, default the target's weight format for the op;
    per output channel when ``per_channel``, which like onnxruntime applies to fully_connected only:
    its dynamic ConvInteger weights are always per tensor); they keep unit scales in the IR, the real scales live in
    the ``mul`` (as in onnxruntime's model, where MatMulInteger sees only zero points).  Every other op
    stays float.  A ``matmul`` with a constant rank-2 second operand is quantized per tensor (onnxruntime's
    per-column variant of it is not supported here: ``per_channel`` raises for such a layer).

    Parameters
    ----------
    float_graph : Graph
        A float graph (no quantized tensors).
    target : str, path or TargetProfile
        Supplies the default weight format; the result runs on any target.
    weight_fmt : QuantFormat, optional
    per_channel : bool

    Returns
    -------
    Graph
        ``kind`` "dynamic", ``float_source`` the float graph.
    """
    from hwsim.targets import TargetProfile, load_target

    unknown = sorted(set(ops) - set(DYNAMIC_OPS))
    if unknown:
        raise ValueError(f"ops: {unknown[0]!r} cannot be quantized dynamically; expected some of {DYNAMIC_OPS}")
    if not isinstance(float_graph, Graph):
        raise ValueError(f"float_graph: expected a hwsim Graph, got {type(float_graph).__name__}")
    if any(t.quant is not None for t in float_graph.tensors.values()):
        raise ValueError("float_graph: already quantized; dynamic_quantize_graph takes a float graph")
    profile = target if isinstance(target, TargetProfile) else load_target(target)
    tensors = {name: Tensor(t.name, t.shape, t.dtype, None, t.data) for name, t in float_graph.tensors.items()}
    nodes: list[Node] = []
    quantized: dict[str, tuple[str, str, str]] = {}

    def add(name: str, shape, dtype, quant=None, data=None) -> str:
        if name in tensors:
            raise ValueError(f"float_graph: tensor name {name!r} is taken; cannot add the dynamic quantization")
        tensors[name] = Tensor(name, tuple(shape), np.dtype(dtype), quant, data)
        return name

    def dynamic_input(x: str, node: Node) -> tuple[str, str, str]:
        if x not in quantized:
            t = tensors[x]
            if np.dtype(t.dtype) != np.float32:
                raise ValueError(f"node {node.name!r}: input {x!r} is {t.dtype}; dynamic quantization needs float32")
            outs = (add(f"{x}__q", t.shape, np.uint8), add(f"{x}__q_scale", (), np.float32),
                    add(f"{x}__q_zero_point", (), np.uint8))
            nodes.append(Node("dynamic_quantize", [x], list(outs), name=f"{x}/dynamic_quantize",
                              source_op="DynamicQuantizeLinear"))
            quantized[x] = outs
        return quantized[x]

    for node in float_graph.nodes:
        w_name = node.inputs[1] if len(node.inputs) > 1 else ""
        w_t = tensors.get(w_name)
        weighted = node.op in ("fully_connected", "conv2d") or (
            node.op == "matmul" and w_t is not None and w_t.is_constant and w_t.data.ndim == 2)
        if node.op not in ops or not weighted or w_t is None or not w_t.is_constant:
            nodes.append(Node(node.op, list(node.inputs), list(node.outputs), dict(node.attrs), node.name,
                              node.source_op))
            continue
        out = node.outputs[0]
        y_t = tensors[out]
        xq, x_scale, x_zp = dynamic_input(node.inputs[0], node)
        if node.op == "fully_connected":
            axis = 0 if per_channel else None                  # IR weights [O, K]: one row per output
        elif node.op == "conv2d":
            axis = None       # onnxruntime quantizes ConvInteger weights per tensor even with per_channel
        elif per_channel:
            raise ValueError(f"node {node.name!r}: per-channel dynamic quantization of a matmul is not supported")
        else:
            axis = None
        op_key = "depthwise_conv2d" if node.op == "conv2d" and _depthwise(node, w_t) else node.op
        fmt = _weight_format(profile, op_key, weight_fmt)
        codes, scales, zps = _quantize_weights(w_t.data, fmt, axis)
        unit = np.ones(scales.shape, _F32)
        w_q = add(f"{w_name}__q", codes.shape, codes.dtype,
                  QuantParams(unit, zps, axis=axis if scales.size > 1 else None), codes)
        w_scale = add(f"{w_name}__q_scale", scales.shape, np.float32, data=np.asarray(scales, _F32))
        scale = add(f"{out}__scale", scales.shape, np.float32)
        nodes.append(Node("mul", [x_scale, w_scale], [scale], {"activation": None}, f"{node.name}/scales",
                          "Mul"))
        acc = add(f"{out}__acc", y_t.shape, np.int32)
        bias = node.inputs[2] if node.op != "matmul" and len(node.inputs) > 2 else ""
        nodes.append(Node(node.op, [xq, w_q, x_zp] if node.op == "matmul" else [xq, w_q, "", x_zp],
                          [acc], {k: v for k, v in node.attrs.items() if k != "activation"}, node.name,
                          node.source_op))
        acc_f = add(f"{out}__acc_f", y_t.shape, np.float32)
        nodes.append(Node("cast", [acc], [acc_f], {"dtype": np.dtype(np.float32)}, f"{node.name}/cast", "Cast"))
        activation = node.attrs.get("activation")
        scaled = add(f"{out}__unbiased", y_t.shape, np.float32) if bias else out
        nodes.append(Node("mul", [acc_f, scale], [scaled], {"activation": None if bias else activation},
                          f"{node.name}/rescale", "Mul"))
        if bias:
            nodes.append(Node("add", [scaled, bias], [out], {"activation": activation}, f"{node.name}/bias", "Add"))
    live = {i for n in nodes for i in n.inputs} | {o for n in nodes for o in n.outputs} | set(float_graph.inputs)
    tensors = {k: v for k, v in tensors.items() if k in live}
    return Graph(tensors, nodes, list(float_graph.inputs), list(float_graph.outputs),
                 model_layout=float_graph.model_layout, source=float_graph.source, kind="dynamic",
                 path=float_graph.path, float_source=float_graph)

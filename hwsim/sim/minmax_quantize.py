"""A simple MinMax post-training quantizer: float graph + calibration data -> quantized graph.

This is the small path ``hwsim run`` needs for a float model (the full
quantization front-end is its own issue).  For a target profile:

* **Activations** (every tensor an integer op reads or writes), per tensor:
  the range [min(0, lo), max(0, hi)] of the float reference over the
  calibration data; asymmetric formats take ``scale = (hi - lo) / (qmax - qmin)``
  and ``zp = qmin - round_half_even(lo / scale)`` (clamped), symmetric ones
  ``scale = max(|lo|, |hi|) / qmax`` and ``zp = 0``; the format is the target's
  ``operands.input`` (bits, signed, symmetric).
* **Weights**, symmetric, per output channel or per tensor as the target's
  ``operands.weights.granularity`` says: ``scale = max|w| / qmax`` with qmax
  of the target's weight range (127 for restricted int8), ``q = rne(w / scale)``.
* **Bias**: ``rne(b / (s_x * s_w[c]))``, saturated to the target's bias width
  (``operands.bias.bits``: 32 on the engines, 16 on npu-acc16).
* ``scale: power_of_two`` operands get their scale rounded up to a power of two.

Integer ops: conv2d, fully_connected, and add / mean when the target names an
``elementwise`` scheme for them; reshape / transpose / relu / clip / max_pool2d
keep their input's quantisation.  Anything else stays float, with a dequantize
before it and a quantize after it.  Graph inputs and outputs stay float.
"""

from __future__ import annotations

import math

import numpy as np

from hwsim.graph.ir import Graph, Node, QuantParams, Tensor
from hwsim.sim.float_ref import float_reference

__all__ = ["minmax_quantize"]

_F32 = np.float32
_PASS_THROUGH = {"reshape", "transpose", "relu", "clip", "max_pool2d"}
_WEIGHTED = {"conv2d", "fully_connected"}


def _pow2_up(scale: np.ndarray) -> np.ndarray:
    return np.array([2.0 ** math.ceil(math.log2(float(s))) for s in np.reshape(scale, -1)]).reshape(np.shape(scale))


def _activation_params(lo: float, hi: float, fmt) -> QuantParams:
    lo, hi = min(0.0, float(lo)), max(0.0, float(hi))
    qmin, qmax = fmt.min, fmt.max
    if fmt.symmetric:
        bound = max(abs(lo), abs(hi)) or 1.0
        scale = bound / (qmax if fmt.signed else qmax / 2.0)
        zp = 0 if fmt.signed else (qmax + 1) // 2
    else:
        scale = (hi - lo) / (qmax - qmin) if hi > lo else 1.0
        zp = None
    if fmt.scale.value == "power_of_two":
        scale = float(_pow2_up(np.array(scale)))
    scale = float(_F32(scale))
    if zp is None:
        zp = int(np.clip(qmin - np.rint(lo / scale), qmin, qmax))
    return QuantParams(np.array(scale, _F32), np.array(zp, np.int64))


def _np_dtype(fmt) -> np.dtype:
    if fmt.bits <= 8:
        return np.dtype(np.int8 if fmt.signed else np.uint8)
    if fmt.bits <= 16:
        return np.dtype(np.int16 if fmt.signed else np.uint16)
    return np.dtype(np.int32)


def _quantize_weights(w: np.ndarray, fmt) -> tuple[np.ndarray, QuantParams]:
    qmax = fmt.max
    per_channel = fmt.granularity.value == "per-channel"
    flat = np.abs(w.reshape(w.shape[0], -1)).max(axis=1) if per_channel else np.array(np.abs(w).max())
    scale = np.where(flat > 0, flat / qmax, 1.0).astype(np.float64)
    if fmt.scale.value == "power_of_two":
        scale = _pow2_up(scale)
    scale = scale.astype(_F32)
    shape = (-1,) + (1,) * (w.ndim - 1) if per_channel else ()
    q = np.clip(np.rint(w.astype(_F32) / scale.reshape(shape)), fmt.min, qmax).astype(_np_dtype(fmt))
    qp = QuantParams(scale, np.zeros(scale.shape, np.int64), 0 if per_channel and scale.size > 1 else None)
    return q, qp


def _ranges(graph: Graph, calibration: dict) -> dict:
    """Per-tensor (min, max) of the float reference over the calibration samples (batch first)."""
    n = None
    for name in graph.inputs:
        arr = np.asarray(calibration[name])
        n = arr.shape[0] if n is None else min(n, arr.shape[0])
    ranges: dict = {}
    for i in range(n):
        sample = {name: np.asarray(calibration[name])[i:i + 1] for name in graph.inputs}
        _, env = float_reference(graph, sample, trace=True)
        for name, arr in env.items():
            if graph.tensors[name].is_constant or arr.dtype.kind != "f":
                continue
            lo, hi = float(arr.min()), float(arr.max())
            old = ranges.get(name)
            ranges[name] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
    return ranges


def _integer_ops(profile) -> set:
    ops = set(_WEIGHTED) | set(_PASS_THROUGH)
    for op in ("add", "mean"):
        try:
            scheme = profile.elementwise_scheme(op)
        except ValueError:
            continue
        if scheme.startswith("ort_") or _tflite_available(scheme, op):
            ops.add(op)
    return ops


def _tflite_available(scheme: str, op: str) -> bool:
    try:
        from hwsim.sim import arith_tflite
    except ImportError:
        return False
    return hasattr(arith_tflite, f"{scheme}_{op}")


def minmax_quantize(graph: Graph, target, calibration: dict) -> Graph:
    """Quantize a float ``graph`` for ``target`` with MinMax ranges from ``calibration``.

    Parameters
    ----------
    graph : Graph
        A float graph (``graph.kind == "float"``).
    target : str, path or TargetProfile
    calibration : dict name -> ndarray
        One array per graph input, batch first, in the model's layout.

    Returns
    -------
    Graph
        A new quantized graph (float inputs and outputs) that :func:`hwsim.simulate` runs.
    """
    from hwsim.sim.executor import check_inputs
    from hwsim.targets import TargetProfile, load_target

    profile = target if isinstance(target, TargetProfile) else load_target(target)
    if any(t.quant is not None for t in graph.tensors.values()):
        raise ValueError("graph: already quantized; minmax_quantize takes a float graph")
    first = {name: np.asarray(calibration[name])[:1] if name in calibration else None for name in graph.inputs}
    for name, arr in first.items():
        if arr is None:
            raise ValueError(f"calibration: no array for input {name!r}")
    check_inputs(graph, {k: v for k, v in first.items()})
    ranges = _ranges(graph, calibration)
    act_fmt = profile.for_op("conv2d").input
    act_dtype = _np_dtype(act_fmt)
    integer_ops = _integer_ops(profile)

    tensors = {name: Tensor(t.name, t.shape, t.dtype, None, t.data) for name, t in graph.tensors.items()}
    nodes: list[Node] = []
    qname: dict = {}      # float tensor name -> its quantized twin
    fname: dict = {}      # quantized tensor name -> float tensor name (for float consumers)

    def act_quant(name: str) -> QuantParams:
        lo, hi = ranges.get(name, (0.0, 1.0))
        return _activation_params(lo, hi, act_fmt)

    def quantized(name: str) -> str:
        """The integer version of float tensor ``name`` (inserting a quantize node if needed)."""
        if name in qname:
            return qname[name]
        t = tensors[name]
        q = f"{name}__q"
        tensors[q] = Tensor(q, t.shape, act_dtype, act_quant(name))
        nodes.append(Node("quantize", [name], [q], name=f"{name}/quantize", source_op="QuantizeLinear"))
        qname[name] = q
        return q

    def floated(name: str) -> str:
        return name if name not in fname else fname[name]

    for node in graph.nodes:
        if node.op not in integer_ops:
            ins = [floated(i) if i else i for i in node.inputs]
            nodes.append(Node(node.op, ins, list(node.outputs), dict(node.attrs), node.name, node.source_op))
            continue
        out = node.outputs[0]
        y_t = tensors[out]
        ins = list(node.inputs)
        if node.op in _WEIGHTED:
            x_q = quantized(ins[0])
            w = graph.tensors[ins[1]].data
            depthwise = node.op == "conv2d" and node.attrs.get("groups", 1) > 1 and w.shape[3] == 1
            op_key = "depthwise_conv2d" if depthwise else node.op
            w_fmt = profile.for_op(op_key).weights
            wq, wqp = _quantize_weights(w, w_fmt)
            w_name = f"{ins[1]}__q"
            tensors[w_name] = Tensor(w_name, wq.shape, wq.dtype, wqp, wq)
            new_ins = [x_q, w_name]
            if len(ins) > 2 and ins[2]:
                sx = tensors[x_q].quant.scale.astype(np.float64)
                bscale = (sx * wqp.scale.astype(np.float64)).reshape(-1)
                b = graph.tensors[ins[2]].data.astype(np.float64)
                b_fmt = profile.for_op(op_key).bias.int_format
                bq = np.clip(np.rint(b / np.broadcast_to(bscale, b.shape)), max(b_fmt.min, -2**31),
                             min(b_fmt.max, 2**31 - 1)).astype(np.int32)
                b_name = f"{ins[2]}__q"
                tensors[b_name] = Tensor(b_name, bq.shape, np.dtype(np.int32),
                                         QuantParams(bscale.astype(_F32), np.zeros(bscale.shape, np.int64),
                                                     0 if bscale.size > 1 else None), bq)
                new_ins.append(b_name)
            yq = act_quant(out)
        elif node.op in _PASS_THROUGH:
            new_ins = [quantized(ins[0])]
            yq = tensors[new_ins[0]].quant
        else:
            new_ins = [quantized(i) for i in ins]
            yq = act_quant(out)
        q_out = f"{out}__q"
        tensors[q_out] = Tensor(q_out, y_t.shape, act_dtype, yq)
        qname[out] = q_out
        nodes.append(Node(node.op, new_ins, [q_out], dict(node.attrs), node.name, node.source_op))
        # float consumers and graph outputs read a dequantized copy under the original name
        fname[q_out] = out
        nodes.append(Node("dequantize", [q_out], [out], name=f"{out}/dequantize", source_op="DequantizeLinear"))

    # drop dequantize nodes nobody reads (their float tensor is neither consumed nor an output)
    used = {i for n in nodes for i in n.inputs} | set(graph.outputs)
    nodes = [n for n in nodes if not (n.op == "dequantize" and n.outputs[0] not in used)]
    live = {i for n in nodes for i in n.inputs} | {o for n in nodes for o in n.outputs} | set(graph.inputs)
    tensors = {k: v for k, v in tensors.items() if k in live}
    return Graph(tensors, nodes, list(graph.inputs), list(graph.outputs), model_layout=graph.model_layout,
                 source=graph.source, kind="minmax", path=graph.path, float_source=graph)

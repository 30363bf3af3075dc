"""Float graph -> quantized graph: the one place that rewrites a graph into integer ops.

Given the quantization parameters of every activation and a function that
quantizes each layer's weights, :func:`rewrite` builds the graph every quantizer
in hwsim returns (the contract of ``hwsim.quantize`` and ``minmax_quantize``):

* graph inputs and outputs stay float; a ``quantize`` node makes the integer
  copy ``<float tensor>__q`` of a float tensor an integer op reads;
* integer ops (conv2d, fully_connected, and add / mean when the target names an
  ``elementwise`` scheme for them) keep the float node's name and write
  ``<float output>__q``; reshape / transpose / relu / clip / max_pool2d keep
  their input's quantisation;
* a ``dequantize`` node gives float consumers and graph outputs the original
  float name; ops the target cannot run in integer stay float;
* weights become integer constants ``<name>__q``; the bias becomes int32 with
  scale ``s_x * s_w[c]`` saturated to the target's bias width, except for
  per-group weights, whose bias stays float32 (there is no single integer bias scale);
* ``graph.float_source`` is the float graph (``rewrite``'s ``graph`` argument).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from hwsim.graph.ir import Graph, Node, QuantParams, Tensor

__all__ = ["rewrite", "set_bias", "integer_ops", "weight_op_key", "PASS_THROUGH", "WEIGHTED"]

_F32 = np.float32
PASS_THROUGH = frozenset({"reshape", "transpose", "relu", "clip", "max_pool2d"})
WEIGHTED = frozenset({"conv2d", "fully_connected"})


def weight_op_key(graph: Graph, node: Node) -> str:
    """The target profile's op key of a weighted node: conv2d, depthwise_conv2d or fully_connected."""
    if node.op == "conv2d" and node.attrs.get("groups", 1) > 1 and graph.tensors[node.inputs[1]].shape[3] == 1:
        return "depthwise_conv2d"
    return node.op


def _tflite_available(scheme: str, op: str) -> bool:
    try:
        from hwsim.sim import arith_tflite
    except ImportError:
        return False
    return hasattr(arith_tflite, f"{scheme}_{op}")


def integer_ops(profile, elementwise: bool = True) -> set:
    """The IR ops the rewrite turns into integer ops on ``profile`` (add / mean only if ``elementwise``)."""
    ops = set(WEIGHTED) | set(PASS_THROUGH)
    if not elementwise:
        return ops
    for op in ("add", "mean"):
        try:
            scheme = profile.elementwise_scheme(op)
        except ValueError:
            continue
        if scheme.startswith("ort_") or _tflite_available(scheme, op):
            ops.add(op)
    return ops


def _quantize_bias(b: np.ndarray, scale: np.ndarray, bits: int) -> np.ndarray:
    lo, hi = max(-(2 ** (bits - 1)), -2 ** 31), min(2 ** (bits - 1) - 1, 2 ** 31 - 1)
    return np.clip(np.rint(b.astype(np.float64) / np.broadcast_to(scale, b.shape)), lo, hi).astype(np.int32)


def rewrite(graph: Graph, profile, act_params: Callable[[str], QuantParams], act_dtype: np.dtype,
            layer_weights: Callable[[Node, str], tuple], kind: str, elementwise: bool = True) -> Graph:
    """Quantize float ``graph`` for ``profile``.

    Parameters
    ----------
    graph : Graph
        A float graph.
    profile : TargetProfile
    act_params : callable tensor name -> QuantParams
        The quantisation of each float activation that becomes integer.
    act_dtype : numpy dtype
        The integer dtype of activations (uint8, int8, int16).
    layer_weights : callable (node, op key) -> (codes, QuantParams, bias_bits, WeightLookup or None)
        Quantizes one weighted node's weights (``op key`` is conv2d,
        depthwise_conv2d or fully_connected); ``bias_bits`` is the target's
        bias width for that layer.
    kind : str
        ``Graph.kind`` of the result ("ptq", "minmax").
    elementwise : bool
        Whether add / mean become integer ops where the target names a scheme (False keeps them float).
    """
    ops = integer_ops(profile, elementwise)
    tensors = {name: Tensor(t.name, t.shape, t.dtype, None, t.data) for name, t in graph.tensors.items()}
    nodes: list[Node] = []
    qname: dict = {}      # float tensor name -> its quantized twin
    fname: dict = {}      # quantized tensor name -> float tensor name (for float consumers)

    def quantized(name: str) -> str:
        """The integer version of float tensor ``name`` (inserting a quantize node if needed)."""
        if name in qname:
            return qname[name]
        t = tensors[name]
        q = f"{name}__q"
        tensors[q] = Tensor(q, t.shape, act_dtype, act_params(name))
        nodes.append(Node("quantize", [name], [q], name=f"{name}/quantize", source_op="QuantizeLinear"))
        qname[name] = q
        return q

    def floated(name: str) -> str:
        return fname.get(name, name)

    for node in graph.nodes:
        if node.op not in ops:
            ins = [floated(i) if i else i for i in node.inputs]
            nodes.append(Node(node.op, ins, list(node.outputs), dict(node.attrs), node.name, node.source_op))
            continue
        out = node.outputs[0]
        ins = list(node.inputs)
        if node.op in WEIGHTED:
            x_q = quantized(ins[0])
            codes, wqp, bias_bits, lookup = layer_weights(node, weight_op_key(graph, node))
            w_name = f"{ins[1]}__q"
            tensors[w_name] = Tensor(w_name, codes.shape, codes.dtype, wqp, codes, lookup)
            new_ins = [x_q, w_name]
            if len(ins) > 2 and ins[2]:
                b = graph.tensors[ins[2]].data
                if wqp.group_size is not None:          # per-group: the executor adds a float32 bias
                    new_ins.append(ins[2])
                else:
                    bscale = (tensors[x_q].quant.scale.astype(np.float64) * wqp.scale.astype(np.float64)).reshape(-1)
                    bq = _quantize_bias(b, bscale, bias_bits)
                    b_name = f"{ins[2]}__q"
                    tensors[b_name] = Tensor(b_name, bq.shape, np.dtype(np.int32),
                                             QuantParams(bscale.astype(_F32), np.zeros(bscale.shape, np.int64),
                                                         0 if bscale.size > 1 else None), bq)
                    new_ins.append(b_name)
            yq = act_params(out)
        elif node.op in PASS_THROUGH:
            new_ins = [quantized(ins[0])]
            yq = tensors[new_ins[0]].quant
        else:
            new_ins = [quantized(i) for i in ins]
            yq = act_params(out)
        q_out = f"{out}__q"
        tensors[q_out] = Tensor(q_out, graph.tensors[out].shape, act_dtype, yq)
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
                 source=graph.source, kind=kind, path=graph.path, float_source=graph)


def set_bias(q: Graph, node: Node, bias: np.ndarray, profile) -> None:
    """Give integer layer ``node`` of ``q`` the real bias ``bias`` [O] (in place; adds a bias if it has none).

    The bias is quantized as :func:`rewrite` does (int32 at scale ``s_x * s_w[c]``, saturated to the
    target's bias width; float32 for per-group weights).  Callers must
    :func:`hwsim.sim.executor.clear_cache` ``q`` afterwards.
    """
    x_t, w_t = q.tensors[node.inputs[0]], q.tensors[node.inputs[1]]
    bias = np.asarray(bias, dtype=np.float64)
    has = len(node.inputs) > 2 and bool(node.inputs[2])
    name = node.inputs[2] if has else f"{node.name}/bias__q"
    if w_t.quant.group_size is not None:
        q.tensors[name] = Tensor(name, bias.shape, np.dtype(_F32), None, bias.astype(_F32))
    else:
        bscale = (x_t.quant.scale.astype(np.float64) * w_t.quant.scale.astype(np.float64)).reshape(-1)
        bits = profile.for_op(weight_op_key(q, node), 16 if np.dtype(x_t.dtype).itemsize == 2 else None).bias.bits
        bq = _quantize_bias(bias, bscale, bits)
        q.tensors[name] = Tensor(name, bq.shape, np.dtype(np.int32),
                                 QuantParams(bscale.astype(_F32), np.zeros(bscale.shape, np.int64),
                                             0 if bscale.size > 1 else None), bq)
    if not has:
        node.inputs[2:] = [name]

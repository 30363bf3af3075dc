"""What the layer-wise PTQ passes (bias correction, AdaRound) read about one layer of a quantized graph.

For integer layer ``node`` of quantized graph ``q`` (from :func:`hwsim.quantize`):

* :func:`layer_inputs` yields, per calibration chunk, the layer's input as the
  float model computes it (``q.float_source``) and as the target computes it
  (:func:`hwsim.simulate` on ``q``, dequantized), both NHWC / [N, K];
* :func:`dequantized_weights` / :func:`dequantized_bias` give the real values
  the integer layer multiplies with;
* :func:`pre_activation` is a layer's output before its fused activation in
  float (the passes' objectives are expectations of it, not integer results).
"""

from __future__ import annotations

import numpy as np

from hwsim.graph.ir import Graph, Node

__all__ = ["layer_inputs", "dequantized_weights", "dequantized_bias", "pre_activation", "float_name",
           "weighted_layers", "mean_patch", "mean_output", "simulated_inputs"]


def float_name(name: str) -> str:
    """The float tensor an integer tensor ``<name>__q`` approximates."""
    return name[:-3] if name.endswith("__q") else name


def weighted_layers(q: Graph) -> list:
    """The integer conv2d / fully_connected nodes of ``q``, in graph order."""
    return [n for n in q.nodes if n.op in ("conv2d", "fully_connected") and q.tensors[n.inputs[1]].quant is not None]


def _dequantize(t) -> np.ndarray:
    qp = t.quant
    data = t.data.astype(np.float64)
    if qp.group_size is not None:
        o, g = qp.scale.shape
        flat = data.reshape(o, -1)
        cols = np.arange(flat.shape[1]) // qp.group_size
        s = qp.scale.astype(np.float64)[:, cols]
        z = qp.zero_point[:, cols]
        return (s * (flat - z)).reshape(data.shape)
    if qp.per_channel:
        shape = (-1,) + (1,) * (data.ndim - 1)
        return qp.scale.astype(np.float64).reshape(shape) * (data - qp.zero_point.reshape(shape))
    return float(qp.scale.reshape(-1)[0]) * (data - int(qp.zero_point.reshape(-1)[0]))


def dequantized_weights(q: Graph, node: Node) -> np.ndarray:
    return _dequantize(q.tensors[node.inputs[1]])


def dequantized_bias(q: Graph, node: Node, n_out: int) -> np.ndarray:
    if len(node.inputs) < 3 or not node.inputs[2]:
        return np.zeros(n_out)
    t = q.tensors[node.inputs[2]]
    if t.quant is None:
        return t.data.astype(np.float64)
    return t.quant.scale.astype(np.float64).reshape(-1) * t.data.astype(np.float64)


def pre_activation(node: Node, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The layer's output before its fused activation, float32 (conv2d NHWC, fully_connected [N, O])."""
    from hwsim.sim.float_ref import conv2d_f32

    x = np.asarray(x, np.float32)
    w = np.asarray(w, np.float32)
    if node.op == "fully_connected":
        return x.reshape(x.shape[0], -1) @ w.T + b.astype(np.float32)
    a = node.attrs
    return conv2d_f32(x, w, b.astype(np.float32), tuple(a.get("stride", (1, 1))), tuple(a.get("dilation", (1, 1))),
                      tuple(a.get("padding", (0, 0, 0, 0))), int(a.get("groups", 1)))


def _up_to(q: Graph, name: str) -> Graph:
    """The part of ``q`` that computes tensor ``name``, with ``name`` as its output (simulating it is
    much cheaper than a traced run of the whole graph)."""
    k = next(i for i, n in enumerate(q.nodes) if name in n.outputs)
    return Graph(q.tensors, q.nodes[:k + 1], list(q.inputs), [name], model_layout=q.model_layout,
                 source=q.source, kind=q.kind, path=q.path, float_source=q.float_source)


def _dequantized_input(q: Graph, node: Node, xq: np.ndarray) -> np.ndarray:
    t = q.tensors[node.inputs[0]]
    scale, zp = float(t.quant.scale.reshape(-1)[0]), int(t.quant.zero_point.reshape(-1)[0])
    return (scale * (xq.astype(np.float64) - zp)).astype(np.float32)


def simulated_inputs(q: Graph, node: Node, calib, target):
    """Yield the layer's input as the target computes it (dequantized, float32, IR layout), per calibration chunk."""
    import hwsim
    from hwsim.quant.calibration import chunks
    from hwsim.sim.executor import to_ir_layout

    x_name = node.inputs[0]
    if x_name in q.inputs:
        raise ValueError(f"node {node.name!r}: reads a graph input directly; expected a quantized input")
    sub = _up_to(q, x_name)
    for part in chunks(q.float_source, calib):
        yield _dequantized_input(q, node, to_ir_layout(q, hwsim.simulate(sub, target, part).outputs[x_name]))


def layer_inputs(q: Graph, node: Node, calib, target):
    """Yield (x_float, x_quant) per calibration chunk: the layer's input in the float model and on the target."""
    import hwsim
    from hwsim.quant.calibration import float_traces
    from hwsim.sim.executor import to_ir_layout

    x_name = node.inputs[0]
    sub = _up_to(q, x_name)
    for part, env in float_traces(q.float_source, calib):
        xq = to_ir_layout(q, hwsim.simulate(sub, target, part).outputs[x_name])
        yield env[float_name(x_name)], _dequantized_input(q, node, xq)


def mean_patch(node: Node, x: np.ndarray, w_shape: tuple) -> tuple[np.ndarray, int]:
    """(sum over samples and output positions of the layer's input patch, number of rows).

    conv2d: patch [KH, KW, C] (zero padding included); fully_connected: [K].  A layer's mean
    pre-activation is linear in it: :func:`mean_output`.
    """
    from hwsim.sim.float_ref import im2col

    if node.op == "fully_connected":
        flat = np.asarray(x, np.float64).reshape(x.shape[0], -1)
        return flat.sum(axis=0), flat.shape[0]
    a = node.attrs
    cols = im2col(np.asarray(x, np.float32), (w_shape[1], w_shape[2]), tuple(a.get("stride", (1, 1))),
                  tuple(a.get("dilation", (1, 1))), tuple(a.get("padding", (0, 0, 0, 0))))
    rows = cols.reshape(-1, *cols.shape[3:])
    return rows.sum(axis=0, dtype=np.float64), rows.shape[0]


def mean_output(node: Node, patch: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """E[W x + b] per output channel from the mean input patch (grouped convolutions included)."""
    w = np.asarray(w, np.float64)
    if node.op == "fully_connected":
        return w.reshape(w.shape[0], -1) @ patch + b
    groups = int(node.attrs.get("groups", 1))
    o, cg = w.shape[0], w.shape[3]
    og = o // groups
    out = np.empty(o)
    for g in range(groups):
        p = patch[..., g * cg:(g + 1) * cg].reshape(-1)
        out[g * og:(g + 1) * og] = w[g * og:(g + 1) * og].reshape(og, -1) @ p
    return out + b


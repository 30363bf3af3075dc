"""Cross-layer equalization (Nagel et al., "Data-Free Quantization", ICCV 2019; SEMANTICS.md section 5).

For two convolutions in a row, y = W2 f(W1 x + b1) + b2, with f positively
homogeneous (none, ReLU: f(x / s) = f(x) / s for s > 0), scaling output
channel i of the first layer by 1 / s_i and input channel i of the second by
s_i leaves y unchanged.  With r1_i = max |W1[i]| (output channel i of W1) and
r2_i = max |W2[:, i]| (input channel i of W2), s_i = sqrt(r1_i / r2_i) makes
both ranges sqrt(r1_i r2_i): per-tensor weight quantization then wastes fewer
levels on small channels.  Pairs are equalized one after the other and the
whole sweep repeats until no scale moves by more than ``tol`` (chains such as
expand -> depthwise -> project share a layer, so one sweep does not converge).

Pairs: conv2d (regular or depthwise) -> conv2d (regular or depthwise), the
first one's output read by the second only (and not a graph output), its fused
activation none, ReLU, or a clip [0, c] (ReLU6).  Depthwise layers take part
when their depth multiplier is 1 (output channel i reads input channel i).

**ReLU6 (clip at c).**  clip(z / s, 0, c) equals clip(z, 0, c) / s only where
the clip does not bind, so a clipped pair needs data: on the calibration set,
channel i of the first layer's output is left alone (s_i = 1) if it reaches c,
and otherwise may shrink freely but grow only while its largest value stays
below c (s_i >= max_i / c, cumulated over sweeps), both with a safety factor
(:data:`RELU6_MARGIN`: "reaches" means max_i * margin >= c).  The equalized
graph computes the same function as the original wherever the pre-activations
stay inside margin x the ranges seen on the calibration data -- exact on the
calibration data itself, approximate elsewhere (the float model changes:
measure it).  Without calibration data, clipped pairs are not equalized.  The
channels left alone pin each layer's per-tensor maximum; the free channels are
placed at the frozen maxima's ratio (:func:`_pair_scales`) rather than at equal
ranges, which could push them past the pinned maximum and coarsen the whole
tensor.  The batch-norm statistics recorded on a scaled layer
(``attrs["batchnorm"]``) are scaled with it.

On EfficientNet-Lite0 (W8A8 per-tensor, onnxruntime-x86, benchmarks/quant_quality.py)
this exact form gains almost nothing (7.16 -> 7.18 dB logits SQNR): 10-90% of a
layer's channels reach the clip on the calibration crops, and those are the
large-range channels that set the per-tensor scales.

**ReLU6 -> ReLU (``relu6="relu"``, the pass ``cle_relu``).**  Nagel et al. (and
Qualcomm AIMET) replace ReLU6 by ReLU before equalizing MobileNetV2, reporting
no float-accuracy loss for that model; every pair then equalizes freely.  This
*changes the float function* and is therefore an explicit option, never the
default: :func:`relu6_to_relu` replaces the clip of every layer that is the
first of a pair (only those; other ReLU6 layers keep their clip), and the
result is the graph the quantized layers approximate.  Measured on
EfficientNet-Lite0 (benchmarks/quant_quality.py evaluation crops), the float
ReLU model's logits are -0.8 dB SQNR from the original ReLU6 model's (top-1
agreement 26%): that network depends on its clips (up to 12% of a layer's
values reach 6 on the calibration crops), so the replacement is not cheap there.
"""

from __future__ import annotations

import math

import numpy as np

from hwsim.graph.ir import Graph, Node, Tensor

__all__ = ["equalize", "equalization_pairs", "relu6_to_relu", "Pair", "RELU6_MARGIN", "RELU6_MODES"]

#: ReLU6 pairs: channels are kept a factor 4 below the clip on the calibration data, because other
#: inputs go further (EfficientNet-lite0, 8 calibration images: with factor 1 the equalized float model
#: differs from the original by 16% of max|logit| on 4 other images, with factor 4 by 7%)
RELU6_MARGIN = 4.0
#: ``equalize(relu6=...)``: "keep" the clips (exact; clipped channels are limited by the data), or
#: replace them by ReLU on the pairs' first layers ("relu"; changes the float function)
RELU6_MODES = ("keep", "relu")


class Pair:
    """One equalizable pair: node ``first`` feeds node ``second`` through ``tensor``."""

    def __init__(self, first: Node, second: Node, clip: float | None) -> None:
        self.first, self.second, self.clip = first, second, clip
        self.tensor = first.outputs[0]

    def __repr__(self) -> str:
        return f"Pair({self.first.name!r} -> {self.second.name!r}, clip={self.clip})"


def _is_depthwise(graph: Graph, node: Node) -> bool:
    w = graph.tensors[node.inputs[1]]
    return node.attrs.get("groups", 1) > 1 and w.shape[3] == 1 and w.shape[0] == node.attrs["groups"]


def _usable(graph: Graph, node: Node) -> bool:
    return (node.op == "conv2d" and graph.tensors[node.inputs[1]].is_constant
            and (node.attrs.get("groups", 1) == 1 or _is_depthwise(graph, node)))


def _clip_of(node: Node):
    """(ok, clip): ok if the fused activation is positively homogeneous up to a clip at ``clip``."""
    act = node.attrs.get("activation")
    if act is None:
        return True, None
    lo, hi = float(act[0]), float(act[1])
    if lo != 0.0:
        return False, None
    return True, (None if math.isinf(hi) else hi)


def equalization_pairs(graph: Graph) -> list:
    """The pairs CLE can equalize in ``graph``, in graph order."""
    consumers = graph.consumers()
    pairs = []
    for node in graph.nodes:
        if not _usable(graph, node):
            continue
        out = node.outputs[0]
        users = consumers.get(out, [])
        if out in graph.outputs or len(users) != 1 or not _usable(graph, users[0]) or users[0].inputs[0] != out:
            continue
        ok, clip = _clip_of(node)
        if ok:
            pairs.append(Pair(node, users[0], clip))
    return pairs


def relu6_to_relu(graph: Graph) -> Graph:
    """A copy of ``graph`` whose pairs' first layers have ReLU instead of a clip [0, c] (changes the function).

    Only layers that are the first of an :func:`equalization_pairs` pair change; every other
    layer, and every tensor, is shared with ``graph``.
    """
    clipped = {p.first.name for p in equalization_pairs(graph) if p.clip is not None}
    nodes = [Node(n.op, list(n.inputs), list(n.outputs),
                  {**n.attrs, "activation": (0.0, math.inf)} if n.name in clipped else dict(n.attrs),
                  n.name, n.source_op) for n in graph.nodes]
    return Graph(dict(graph.tensors), nodes, list(graph.inputs), list(graph.outputs), model_layout=graph.model_layout,
                 source=graph.source, kind=graph.kind, path=graph.path, float_source=graph.float_source)


def _channel_maxima(graph: Graph, pairs: list, calib) -> dict:
    """Per-channel maximum (over the calibration data) of every clipped pair's intermediate tensor."""
    from hwsim.quant.calibration import float_traces

    wanted = {p.tensor for p in pairs if p.clip is not None}
    maxima: dict = {}
    if not wanted or calib is None:
        return maxima
    for _, env in float_traces(graph, calib):
        for name in wanted:
            m = env[name].reshape(-1, env[name].shape[-1]).max(axis=0).astype(np.float64)
            maxima[name] = m if name not in maxima else np.maximum(maxima[name], m)
    return maxima


def _out_ranges(w: np.ndarray) -> np.ndarray:
    return np.abs(w).reshape(w.shape[0], -1).max(axis=1)


def _in_ranges(w: np.ndarray, depthwise: bool) -> np.ndarray:
    if depthwise:                               # kernel i reads input channel i
        return _out_ranges(w)
    return np.abs(w).reshape(-1, w.shape[-1]).max(axis=0)


def equalize(graph: Graph, calib=None, *, relu6: str = "keep", max_iter: int = 100, tol: float = 1e-6,
             margin: float | None = None) -> Graph:
    """A copy of float ``graph`` with cross-layer equalized weights (module docstring).

    Parameters
    ----------
    graph : Graph
        A float graph.
    calib : hwsim.quant.calibration.CalibrationSet, optional
        Calibration data; needed to equalize pairs with a ReLU6 (clip) between them.
    relu6 : {"keep", "relu"}
        "keep" (default): the function is unchanged; a clipped pair is equalized only where the
        calibration data shows the clip does not bind.  "relu": first replace the clip of every
        pair's first layer by ReLU (:func:`relu6_to_relu`; DFQ's recipe for MobileNetV2), which
        changes the float function, then equalize every pair freely.
    max_iter : int
        Upper bound on the sweeps over all pairs.
    margin : float
        ReLU6 safety factor (default :data:`RELU6_MARGIN`): a channel whose calibration maximum
        times ``margin`` reaches the clip is not scaled, and a channel may grow only while its
        maximum times ``margin`` stays below the clip.
    tol : float
        Stop when no scale of a sweep differs from 1 by more than ``tol`` (relative).
    """
    if relu6 not in RELU6_MODES:
        raise ValueError(f"relu6: expected one of {', '.join(RELU6_MODES)}, got {relu6!r}")
    if relu6 == "relu":
        graph = relu6_to_relu(graph)
    margin = RELU6_MARGIN if margin is None else float(margin)
    pairs = equalization_pairs(graph)
    maxima = _channel_maxima(graph, pairs, calib)
    weights = {}
    biases = {}
    for p in pairs:
        for node in (p.first, p.second):
            weights.setdefault(node.inputs[1], graph.tensors[node.inputs[1]].data.astype(np.float64))
        if len(p.first.inputs) > 2 and p.first.inputs[2]:
            biases.setdefault(p.first.inputs[2], graph.tensors[p.first.inputs[2]].data.astype(np.float64))
    total = {p.first.name: np.ones(graph.tensors[p.tensor].shape[-1]) for p in pairs}
    for _ in range(max_iter):
        moved = 0.0
        for p in pairs:
            if p.clip is not None and p.tensor not in maxima:
                continue            # a clipped pair without data: the clip's meaning cannot be kept
            w1, w2 = weights[p.first.inputs[1]], weights[p.second.inputs[1]]
            r1 = _out_ranges(w1)
            r2 = _in_ranges(w2, _is_depthwise(graph, p.second))
            binds = np.zeros(len(r1), bool)
            if p.clip is not None:
                binds = maxima[p.tensor] * margin >= p.clip * (1 - 1e-6)
            s = _pair_scales(r1, r2, binds)
            if p.clip is not None:
                seen = maxima[p.tensor] / total[p.first.name]      # the channel maxima in today's scaling
                s = np.where(binds, 1.0, np.maximum(s, seen * margin / p.clip))
            _scale_pair(graph, p, s, weights, biases)
            total[p.first.name] = total[p.first.name] * s
            moved = max(moved, float(np.max(np.abs(s - 1.0))))
        if moved <= tol:
            break
    return _with_weights(graph, pairs, weights, biases, total)


def _pair_scales(r1: np.ndarray, r2: np.ndarray, frozen: np.ndarray) -> np.ndarray:
    """Scales s (W1 rows / s, W2 columns * s) for ranges r1, r2; ``frozen`` channels keep s = 1.

    With every channel free this is Nagel et al.'s s = sqrt(r1 / r2) (both ranges become
    sqrt(r1 r2)).  Frozen channels pin the per-tensor maxima at F1 = max r1, F2 = max r2 over
    them; the free channels are then placed at the same ratio, r1 / s : r2 * s = F1 : F2, so a
    free channel never grows past a frozen one when the product r1 r2 allows (equal ranges
    would push half of them above F1 or F2 and coarsen the whole tensor's scale for nothing:
    the per-channel precision product (r1' / R1)(r2' / R2) of a free channel only depends on
    R1 R2).
    """
    live = (r1 > 0) & (r2 > 0)
    pinned = frozen & live
    ratio = float(r1[pinned].max() / r2[pinned].max()) if pinned.any() else 1.0
    return np.where(live & ~frozen, np.sqrt(r1 / (np.where(r2 > 0, r2, 1.0) * ratio)), 1.0)


def _scale_pair(graph: Graph, p: Pair, s: np.ndarray, weights: dict, biases: dict) -> None:
    w1 = weights[p.first.inputs[1]]
    weights[p.first.inputs[1]] = w1 / s.reshape((-1,) + (1,) * (w1.ndim - 1))
    if len(p.first.inputs) > 2 and p.first.inputs[2]:
        biases[p.first.inputs[2]] = biases[p.first.inputs[2]] / s
    w2 = weights[p.second.inputs[1]]
    if _is_depthwise(graph, p.second):
        weights[p.second.inputs[1]] = w2 * s.reshape((-1,) + (1,) * (w2.ndim - 1))
    else:
        weights[p.second.inputs[1]] = w2 * s


def _with_weights(graph: Graph, pairs: list, weights: dict, biases: dict, total: dict) -> Graph:
    tensors = dict(graph.tensors)
    for name, data in list(weights.items()) + list(biases.items()):
        t = graph.tensors[name]
        tensors[name] = Tensor(t.name, t.shape, t.dtype, None, data.astype(t.data.dtype))
    scaled = {p.first.name: total[p.first.name] for p in pairs}
    nodes = []
    for node in graph.nodes:
        attrs = dict(node.attrs)
        if node.name in scaled and "batchnorm" in attrs:
            s = scaled[node.name]
            attrs["batchnorm"] = {k: (np.asarray(v, np.float64) / s).astype(np.float32) if k in ("gamma", "beta")
                                  else v for k, v in attrs["batchnorm"].items()}
        nodes.append(Node(node.op, list(node.inputs), list(node.outputs), attrs, node.name, node.source_op))
    return Graph(tensors, nodes, list(graph.inputs), list(graph.outputs), model_layout=graph.model_layout,
                 source=graph.source, kind=graph.kind, path=graph.path, float_source=graph.float_source)

"""Graph passes run by the importers: BN folding, QDQ fusion, activation fusion, dead-code removal.

:func:`fuse_qdq` reproduces what onnxruntime 1.32 does to a QDQ model at its
default optimisation level (CPU execution provider), because hwsim must compute
what the engine computes:

* ``ClipQuantFusion`` / ``ReluQuantFusion``: a Clip or Relu whose only consumer
  is a QuantizeLinear is removed when the quantized range already lies inside
  the clip range (so saturation does the clamp).  ORT tests this with the
  float32 bounds of :func:`q_domain`.  The removed clamp is kept as the fused
  ``activation`` of the producing op (it changes nothing, but says what the
  model meant).  A Clip that is not redundant stays, and so does its producer
  in float.
* The QDQ selectors: DQ inputs -> Conv / Gemm / MatMul / Add / Mul /
  GlobalAveragePool / AveragePool / Concat / Sigmoid / LeakyRelu / Softmax ->
  a single Q becomes one integer op (QLinearConv, QGemm, QLinearMatMul,
  QLinearAdd, ..., QLinearSoftmax); DQ -> Reshape / Flatten / Transpose /
  MaxPool -> Q with equal scale and zero point becomes the op on the integer
  tensor (the Q/DQ pair is dropped).
  A Gemm / MatMul with DQ inputs and no Q after it becomes an integer
  fully_connected with a float32 output (ORT's QGemm with float output /
  MatMulIntegerToFloat).
  Anything else keeps its DQ / float op / Q, as ORT runs it.
* On x86 (``int8_activations=False``) ORT first rewrites an int8 Q -> DQ pair
  to uint8 (+128, exact) when the Q's only consumer is one DQ read by one node
  (``QDQS8ToU8Transformer``; ORT gives every consumer its own DQ first), and
  its Conv / MatMul / Gemm selectors refuse int8 activations: so an int8
  tensor read by two nodes keeps the convolutions around it in float.  The
  other QLinear ops accept int8.
"""

from __future__ import annotations

import math

import numpy as np

from hwsim.graph.ir import Graph, Node, QuantParams, Tensor

__all__ = ["fuse_qdq", "fuse_activations", "remove_dead", "fold_batchnorm", "q_domain"]

_ACTIVATION_OPS = ("conv2d", "fully_connected", "add", "sub", "mul", "avg_pool2d", "max_pool2d")
_INT8 = (np.dtype(np.uint8), np.dtype(np.int8))
# integer op <- DQ inputs, float op, Q output (ORT's QLinear* replacements)
_QLINEAR_OPS = {"conv2d", "fully_connected", "matmul", "add", "mul", "mean", "avg_pool2d", "concat",
                "logistic", "leaky_relu", "softmax"}
# ops ORT runs on the integer tensor when the DQ and Q around them agree (the pair is dropped)
_DROP_QDQ_OPS = {"reshape", "transpose", "max_pool2d"}


def q_domain(scale: float, zero_point: int, dtype) -> tuple[float, float]:
    """Real interval that QuantizeLinear maps strictly inside the integer range, as onnxruntime computes it.

    Returns (upper bound of the values that saturate to qmin, lower bound of
    those that saturate to qmax), in float32 arithmetic with round-half-even
    ties accounted for (onnxruntime ``QDQ::QuantizeDomain``).
    """
    info = np.iinfo(dtype)
    f32 = np.float32
    lo_biased = int(info.min) - int(zero_point)
    lo = f32(lo_biased) + f32(0.5)
    if lo_biased % 2 == 1 and lo_biased > 0:      # C++ '%' keeps the sign: only positive odd values
        lo = np.nextafter(lo, f32(lo_biased))
    hi_biased = int(info.max) - int(zero_point)
    hi = f32(hi_biased) - f32(0.5)
    if hi_biased % 2 == 1 and hi_biased > 0:
        hi = np.nextafter(hi, f32(hi_biased))
    return float(f32(lo * f32(scale))), float(f32(hi * f32(scale)))


def _clip_redundant(node: Node, q: Tensor) -> bool:
    if q.quant is None or q.quant.per_channel or q.dtype not in _QRANGE_DTYPES:
        return False
    lo, hi = q_domain(float(q.quant.scale), int(q.quant.zero_point), q.dtype)
    if node.op == "relu":
        return lo >= 0.0
    clip_lo, clip_hi = node.attrs["min"], node.attrs["max"]
    return clip_lo <= lo and hi <= clip_hi


_QRANGE_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.uint16), np.dtype(np.int16))


def _bounds(node: Node) -> tuple[float, float]:
    return (0.0, math.inf) if node.op == "relu" else (node.attrs["min"], node.attrs["max"])


def fuse_qdq(graph: Graph, origin: dict[int, int] | None = None, int8_activations: bool = True) -> None:
    """Fuse DQ -> op -> [Clip/Relu] -> Q groups into integer ops, as onnxruntime does (module docstring).

    ``origin`` maps ``id(node)`` to the index of the model node it came from, so
    that the transposes an importer adds around a rank-4 reshape move with it.
    ``int8_activations=False`` applies onnxruntime's x86 rules for int8 activations.
    """
    if not any(n.op == "quantize" for n in graph.nodes):
        _fuse_float_output_linear(graph, int8_activations)
        return
    origin = origin or {}
    _remove_redundant_clips(graph)
    if not int8_activations:
        _int8_pairs_to_uint8(graph)
    producers = graph.producers()
    consumers = graph.consumers()
    replaced: dict[int, Node] = {}
    removed: set[int] = set()
    for q in graph.nodes:
        if q.op != "quantize":
            continue
        chain = _chain(graph, q, producers, consumers, origin)
        if not chain or any(id(n) in replaced for n in chain):
            continue
        fused = _fuse_group(graph, chain, q, producers, int8_activations)
        if fused is not None:
            replaced.update({id(old): new for old, new in zip(chain, fused)})
            removed.add(id(q))
    graph.nodes = [replaced.get(id(n), n) for n in graph.nodes if id(n) not in removed]
    _fuse_float_output_linear(graph, int8_activations)


def _fuse_float_output_linear(graph: Graph, int8_activations: bool) -> None:
    """DQ inputs -> Gemm / MatMul with a float output (no Q after it): ORT runs QGemm with a float output or
    MatMulIntegerToFloat, i.e. an integer accumulation scaled once to float32."""
    producers = graph.producers()
    for i, node in enumerate(graph.nodes):
        if node.op != "fully_connected" or node.source_op not in ("Gemm", "MatMul"):
            continue
        if graph.tensor(node.outputs[0]).dtype != np.float32:
            continue
        srcs = [(_dq_source(graph, name, producers) if name else "") for name in node.inputs]
        if any(s is None for s in srcs):
            continue
        x, w = graph.tensor(srcs[0]), graph.tensor(srcs[1])
        bias = graph.tensor(srcs[2]) if len(srcs) > 2 and srcs[2] else None
        if x.dtype not in _INT8 or w.dtype not in _INT8 or not w.is_constant or x.quant.per_channel:
            continue
        if x.dtype == np.int8 and (w.dtype != np.int8 or not int8_activations):
            continue
        if w.quant.per_channel and w.quant.axis != 0:
            continue
        if bias is not None and (bias.dtype != np.int32 or not bias.is_constant):
            continue
        graph.nodes[i] = Node(node.op, srcs, list(node.outputs), dict(node.attrs), name=node.name,
                              source_op=node.source_op)


def _single_use(graph: Graph, name: str, consumers: dict) -> bool:
    return name not in graph.outputs and len(consumers.get(name, [])) == 1


def _chain(graph: Graph, q: Node, producers: dict, consumers: dict, origin: dict) -> list[Node]:
    """The IR nodes of one model op ending at quantize ``q`` (several only for a reshape with its transposes)."""
    op = producers.get(q.inputs[0])
    if op is None or not _single_use(graph, q.inputs[0], consumers):
        return []
    chain = [op]
    while chain[0].op in _DROP_QDQ_OPS and origin.get(id(chain[0])) is not None:
        prev = producers.get(chain[0].inputs[0])
        if prev is None or origin.get(id(prev)) != origin.get(id(chain[0])) or \
                not _single_use(graph, chain[0].inputs[0], consumers):
            break
        chain.insert(0, prev)
    return chain


def _remove_redundant_clips(graph: Graph) -> None:
    producers = graph.producers()
    consumers = graph.consumers()
    keep = []
    for node in graph.nodes:
        if node.op in ("relu", "clip") and node.outputs[0] not in graph.outputs:
            users = consumers.get(node.outputs[0], [])
            if len(users) == 1 and users[0].op == "quantize" and \
                    _clip_redundant(node, graph.tensor(users[0].outputs[0])):
                src = node.inputs[0]
                users[0].inputs[0] = src
                consumers.setdefault(src, []).append(users[0])
                consumers[src] = [c for c in consumers[src] if c is not node]
                p = producers.get(src)
                if p is not None and p.op in _ACTIVATION_OPS and p.attrs.get("activation") is None \
                        and len(consumers[src]) == 1:
                    p.attrs["activation"] = _bounds(node)
                continue
        keep.append(node)
    graph.nodes = keep


def _dq_source(graph: Graph, name: str, producers: dict) -> str | None:
    """The integer tensor behind float tensor ``name`` if it is the output of a dequantize node."""
    p = producers.get(name)
    if p is None or p.op != "dequantize":
        return None
    return p.inputs[0]


def _int8_pairs_to_uint8(graph: Graph) -> None:
    """ORT x86 ``QDQS8ToU8Transformer``: int8 Q -> single DQ -> single reader becomes uint8, zero point + 128."""
    consumers = graph.consumers()
    for node in graph.nodes:
        if node.op != "quantize":
            continue
        t = graph.tensor(node.outputs[0])
        if t.dtype != np.int8 or t.quant.per_channel or t.name in graph.outputs:
            continue
        users = consumers.get(t.name, [])
        if len(users) != 1 or users[0].op != "dequantize":
            continue
        if len(consumers.get(users[0].outputs[0], [])) > 1:     # a graph output is not an edge
            continue
        t.dtype = np.dtype(np.uint8)
        t.quant = QuantParams(t.quant.scale, t.quant.zero_point + 128)


def _fuse_group(graph: Graph, chain: list[Node], q: Node, producers: dict,
                int8_activations: bool = True) -> list[Node] | None:
    """Integer replacements for the nodes of ``chain`` (DQ inputs, output to ``q``), or None if ORT would not fuse."""
    op = chain[0]
    if any(n.op not in _QLINEAR_OPS and n.op not in _DROP_QDQ_OPS for n in chain):
        return None
    if len(chain) > 1 and any(n.op not in _DROP_QDQ_OPS for n in chain):
        return None
    if op.op == "mean" and op.source_op != "GlobalAveragePool":
        return None
    y = graph.tensor(q.outputs[0])
    srcs = [(_dq_source(graph, name, producers) if name else "") for name in op.inputs]
    if any(s is None for s in srcs):
        return None
    tensors = [graph.tensor(s) if s else None for s in srcs]
    if any(t is not None and t.quant.per_channel and not t.is_constant for t in tensors):
        return None                      # the QLinear ops take per-tensor activations
    x = tensors[0]
    if op.op in _DROP_QDQ_OPS:
        if x.dtype != y.dtype or not _same_quant(x, y) or x.quant.per_channel:
            return None
    elif op.op in ("conv2d", "fully_connected"):
        w = tensors[1]
        bias = tensors[2] if len(tensors) > 2 else None
        if x.dtype not in _INT8 or y.dtype != x.dtype or w.dtype not in _INT8 or not w.is_constant:
            return None
        if x.dtype == np.int8 and (w.dtype != np.int8 or not int8_activations):
            return None
        if bias is not None and (bias.dtype != np.int32 or not bias.is_constant):
            return None
        if w.quant.per_channel and w.quant.axis != 0:
            return None
    else:
        if any(t.dtype != y.dtype for t in tensors if t is not None) or y.dtype not in _INT8:
            return None
        if op.op == "matmul" and y.dtype == np.int8 and not int8_activations:
            return None
    fused = []
    for i, node in enumerate(chain):
        inputs = srcs if i == 0 else list(node.inputs)
        if i < len(chain) - 1:              # an intermediate of a reshape chain now holds the integers
            mid = graph.tensor(node.outputs[0])
            mid.dtype, mid.quant = x.dtype, x.quant
            outputs = list(node.outputs)
        else:
            outputs = [q.outputs[0]]
        fused.append(Node(node.op, inputs, outputs, dict(node.attrs), name=node.name, source_op=node.source_op))
    return fused


def _same_quant(a: Tensor, b: Tensor) -> bool:
    return (a.quant is not None and b.quant is not None and a.quant.axis == b.quant.axis
            and np.array_equal(a.quant.scale, b.quant.scale)
            and np.array_equal(a.quant.zero_point, b.quant.zero_point))


def fuse_activations(graph: Graph) -> None:
    """Fold a Relu / Clip into the float op before it (its ``activation``), when nothing else reads that op."""
    producers = graph.producers()
    consumers = graph.consumers()
    keep = []
    for node in graph.nodes:
        if node.op in ("relu", "clip"):
            src = node.inputs[0]
            p = producers.get(src)
            if (p is not None and p.op in _ACTIVATION_OPS and p.attrs.get("activation") is None
                    and src not in graph.outputs and len(consumers.get(src, [])) == 1
                    and not np.issubdtype(graph.tensor(src).dtype, np.integer)):
                p.attrs["activation"] = _bounds(node)
                p.outputs[0] = node.outputs[0]
                producers[node.outputs[0]] = p
                del graph.tensors[src]
                continue
        keep.append(node)
    graph.nodes = keep


def remove_dead(graph: Graph) -> None:
    """Drop nodes whose outputs nobody reads and tensors no node or graph boundary uses."""
    needed = set(graph.outputs)
    keep = []
    for node in reversed(graph.nodes):
        if any(o in needed for o in node.outputs):
            keep.append(node)
            needed.update(i for i in node.inputs if i)
    graph.nodes = keep[::-1]
    used = needed | set(graph.inputs) | {o for n in graph.nodes for o in n.outputs}
    graph.tensors = {k: v for k, v in graph.tensors.items() if k in used}


def fold_batchnorm(b, x: str, out: str, mult: np.ndarray, shift: np.ndarray,
                   stats: tuple[np.ndarray, np.ndarray] | None = None) -> bool:
    """Fold y = x * mult + shift (per output channel) into the float conv2d / fully_connected producing ``x``.

    ``b`` is the importer's builder; the producer's output is renamed ``out``.
    Returns False (nothing changed) when the producer is not a float op with constant weights.
    Folding is done in float64 and rounded once to float32.

    ``stats`` = (gamma, beta), the batch norm's own scale and shift: they are kept on the folded node as
    ``attrs["batchnorm"] = {"gamma": float32 [O], "beta": float32 [O]}`` (output channel order), because
    the batch norm's output -- the folded op's pre-activation output -- is distributed about as
    N(beta, gamma^2) per channel, which data-free quantization reads (:mod:`hwsim.quant.zero_shot`).
    """
    producer = next((n for n in reversed(b.nodes) if x in n.outputs), None)
    if producer is None or producer.op not in ("conv2d", "fully_connected") or producer.attrs.get("activation"):
        return False
    w = b.tensors[producer.inputs[1]]
    bias = b.tensors[producer.inputs[2]] if len(producer.inputs) > 2 and producer.inputs[2] else None
    if not w.is_constant or w.quant is not None or np.issubdtype(w.dtype, np.integer):
        return False
    if bias is not None and not bias.is_constant:
        return False
    o = w.shape[0]
    if mult.shape != (o,) or shift.shape != (o,):
        return False
    new_w = (w.data.astype(np.float64) * mult.reshape((o,) + (1,) * (w.data.ndim - 1))).astype(w.dtype)
    old_b = np.zeros(o) if bias is None else bias.data.astype(np.float64)
    new_b = (old_b * mult + shift).astype(w.dtype)
    producer.inputs[1] = b.add_constant(w.name + "_bn", new_w)
    bias_name = b.add_constant((bias.name if bias is not None else w.name) + "_bias_bn", new_b)
    producer.inputs[2:] = [bias_name]
    t = b.tensors.pop(x)
    b.tensors[out] = Tensor(out, t.shape, t.dtype)
    producer.outputs[0] = out
    if stats is not None:
        gamma, beta = (np.asarray(v, dtype=np.float32).reshape(o) for v in stats)
        producer.attrs["batchnorm"] = {"gamma": gamma, "beta": beta}
    return True

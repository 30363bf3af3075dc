"""Test helper: turn a MinMax-quantized graph's conv / fully_connected weights into per-group ones.

(The PTQ front-end does this properly; the executor tests only need a realistic per-group graph.)
"""

from __future__ import annotations

import numpy as np

from hwsim.graph.ir import Graph, Tensor
from hwsim.quant.params import QuantFormat
from hwsim.quant.quantizers import to_ir_weights, weight_params


def regroup(q: Graph, fmt: QuantFormat, group_size: int) -> Graph:
    """A copy of ``q`` whose non-depthwise conv2d / fully_connected weights are per-group (from the float
    weights of ``q.float_source``) with float32 biases."""
    src = q.float_source
    float_nodes = {n.name: n for n in src.nodes}       # integer ops keep the float graph's node names
    tensors = dict(q.tensors)
    for node in q.nodes:
        if node.op not in ("conv2d", "fully_connected") or node.attrs.get("groups", 1) != 1:
            continue
        f_node = float_nodes[node.name]
        w_name = node.inputs[1]
        wf = src.tensors[f_node.inputs[1]].data
        codes, qp, _ = to_ir_weights(wf, weight_params(wf, fmt, f"per-group:{group_size}"), name=w_name)
        tensors[w_name] = Tensor(w_name, codes.shape, codes.dtype, qp, codes)
        # (a graph quantized for a per-group target already has the float32 bias: nothing to do)
        if len(node.inputs) > 2 and node.inputs[2] and node.inputs[2].endswith("__q"):
            b_name = node.inputs[2]
            bf = np.asarray(src.tensors[f_node.inputs[2]].data, np.float32)
            tensors[b_name] = Tensor(b_name, bf.shape, np.dtype(np.float32), None, bf)
    return Graph(tensors, list(q.nodes), list(q.inputs), list(q.outputs), model_layout=q.model_layout,
                 source=q.source, kind="ptq", path=q.path, float_source=src)

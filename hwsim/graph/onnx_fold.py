"""Import-time evaluation of ONNX shape arithmetic (Shape -> Gather -> Unsqueeze -> Concat -> Reshape).

Exporters such as ``torch.onnx.export`` compute reshape targets at run time
from ``Shape``; with the model's static shapes those subgraphs are constants,
which is how onnxruntime's constant folding treats them too.  A node is folded
only when every input is a constant (``Shape``: when its input's shape is fully
known), so nothing that depends on data is ever precomputed.
"""

from __future__ import annotations

import numpy as np

from hwsim.graph.layout import model_shape

__all__ = ["try_fold", "FOLDABLE_OPS"]

FOLDABLE_OPS = frozenset({"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Slice", "Add", "Sub",
                          "Mul", "Div", "Reshape", "Flatten", "Identity", "ConstantOfShape", "Range", "Transpose"})


def _inputs(b, node) -> list | None:
    values = []
    for name in node.input:
        if not name:
            values.append(None)
            continue
        v = b.const(name)
        if v is None:
            return None
        values.append(np.asarray(v))
    return values


def _axes(attrs, values, index: int):
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    if len(values) > index and values[index] is not None:
        return [int(a) for a in values[index].reshape(-1)]
    return None


def try_fold(b, node, attrs) -> bool:
    """Evaluate ``node`` now if it is shape arithmetic on constants; store its output as a constant."""
    op = node.op_type
    if op not in FOLDABLE_OPS or node.domain not in ("", "ai.onnx") or len(node.output) != 1:
        return False
    if node.output[0] in b.output_names:      # a graph output stays a computed tensor
        return False
    if op == "Shape":
        name = b.resolve(node.input[0])
        if name in b.consts:
            shape = tuple(b.consts[name].shape)
        elif name in b.tensors:
            shape = model_shape(b.tensors[name].shape)
        else:
            return False
        if None in shape:
            return False
        start, end = int(attrs.get("start", 0)), attrs.get("end")
        out = np.array(shape, np.int64)[start: None if end is None else int(end)]
        b.consts[node.output[0]] = out
        return True
    values = _inputs(b, node)
    if values is None or (values and values[0] is None):
        return False
    x = values[0]
    if op in ("Add", "Sub", "Mul", "Div", "Concat", "Gather", "Range") and not all(
            v is None or np.issubdtype(v.dtype, np.integer) for v in values):
        return False               # float arithmetic on constants stays in the graph (the engine does it in float)
    if op == "Gather":
        out = np.take(x, values[1], axis=int(attrs.get("axis", 0)))
    elif op == "Unsqueeze":
        out = x
        for a in sorted(a % (x.ndim + len(_axes(attrs, values, 1))) for a in _axes(attrs, values, 1)):
            out = np.expand_dims(out, a)
    elif op == "Squeeze":
        axes = _axes(attrs, values, 1)
        out = np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(a % x.ndim for a in axes))
    elif op == "Concat":
        out = np.concatenate(values, axis=int(attrs.get("axis", 0)))
    elif op == "Cast":
        from onnx import helper

        out = x.astype(helper.tensor_dtype_to_np_dtype(int(attrs["to"])))
    elif op == "Slice":
        starts, ends = values[1].reshape(-1), values[2].reshape(-1)
        axes = values[3].reshape(-1) if len(values) > 3 and values[3] is not None else range(len(starts))
        steps = values[4].reshape(-1) if len(values) > 4 and values[4] is not None else [1] * len(starts)
        index = [slice(None)] * x.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            index[int(a)] = slice(int(s), int(e), int(st))
        out = x[tuple(index)]
    elif op in ("Add", "Sub", "Mul", "Div"):
        a, c = values
        out = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}[op](a, c) if op != "Div" else \
            (np.trunc(a / c).astype(np.result_type(a, c)))
    elif op == "Reshape":
        if not np.issubdtype(x.dtype, np.integer):
            return False
        spec = [int(d) if d != 0 else x.shape[i] for i, d in enumerate(values[1].reshape(-1))]
        out = x.reshape(spec)
    elif op == "Flatten":
        if not np.issubdtype(x.dtype, np.integer):
            return False
        axis = int(attrs.get("axis", 1)) % max(x.ndim, 1)
        out = x.reshape(int(np.prod(x.shape[:axis])), -1)
    elif op == "Transpose":
        if not np.issubdtype(x.dtype, np.integer):
            return False
        out = np.transpose(x, attrs.get("perm"))
    elif op == "Identity":
        out = x
    elif op == "ConstantOfShape":
        from onnx import numpy_helper

        fill = numpy_helper.to_array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
        out = np.full(tuple(int(d) for d in x.reshape(-1)), fill.reshape(-1)[0], dtype=fill.dtype)
    elif op == "Range":
        out = np.arange(x.reshape(()), values[1].reshape(()), values[2].reshape(()), dtype=x.dtype)
    else:   # pragma: no cover - FOLDABLE_OPS and the branches above list the same ops
        return False
    b.consts[node.output[0]] = np.asarray(out)
    return True

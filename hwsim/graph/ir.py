"""hwsim's graph IR: what every importer produces and the executors consume.

Conventions (the contract between importers, executors and reports):

* **Layout.**  Rank-4 activations are NHWC inside the IR, whatever the model
  file uses.  An importer of an NCHW model (ONNX) transposes constant weights
  once and records ``Graph.model_layout = "NCHW"``; the executor transposes the
  graph inputs on entry and the outputs on exit, so users see the model's own
  layout.  Ops whose meaning depends on the layout (``axis`` of concat /
  softmax / mean, reshape of rank-4 tensors, pads) are rewritten by the
  importer to NHWC, inserting an explicit ``transpose`` node where a reshape
  needs the model's element order.
* **Weights.**  ``conv2d``: [O, KH, KW, I/groups]; ``fully_connected``: [O, K]
  (one output channel per row).  Bias: [O].
* **Quantisation.**  A quantized tensor has integer ``dtype`` (uint8, int8,
  int16, int32) and ``quant``: real = scale * (q - zero_point), per tensor
  (axis None) or per channel along ``axis`` (in the IR's layout), or per
  group: scale [O, G] with ``axis`` 0 and ``group_size`` N, one scale per
  output channel and group of N consecutive elements of the flattened
  reduction axes (conv2d: (KH, KW, I) in that order; see
  :mod:`hwsim.quant.quantizers`).  A float tensor has ``quant`` None.
* **Non-uniform weights.**  A constant weight tensor may carry ``lookup``
  (:class:`WeightLookup`): an integer levels table and per-weight indices;
  ``data`` holds the executed codes ``table[indices]``.  Only targets that
  declare a lookup stage (``operands.weights.lookup``) run such weights.
* **Fused activations** are a clamp of the output in the real domain
  (``Node.attrs["activation"]`` = None or (lo, hi), either bound may be
  +-inf); an integer op applies it as output saturation.
* Nodes are in topological order; every tensor name is produced once.
* ``Node.source_op`` keeps the model's own op type (``QLinearConv``,
  ``CONV_2D``, ...) and ``Node.name`` its node name, for messages and reports.

Canonical op names and attributes (all integer unless said):

======================  =========================================================
op                      inputs -> outputs; attrs
======================  =========================================================
conv2d                  x, w, [bias] -> y; stride (h, w), dilation (h, w),
                        padding (top, left, bottom, right), groups, activation
fully_connected         x [N, K], w [O, K], [bias], [x_zero_point] -> y [N, O];
                        activation.  ``x_zero_point`` (optional) is a run-time
                        scalar (a dynamic_quantize output) that replaces the
                        static zero point of x (x then has ``quant`` None)
matmul                  a [.., M, K], b [.., K, N] (both run-time), [a_zero_point]
                        -> y; a_zero_point as fully_connected's x_zero_point
add, sub, mul           a, b (numpy broadcasting) -> y; activation
mean                    x -> y; axes (tuple), keepdims (bool)
avg_pool2d, max_pool2d  x -> y; kernel (h, w), stride, padding, activation,
                        count_include_pad (bool)
reshape                 x -> y; shape (tuple, fully resolved)
transpose               x -> y; perm
concat                  *xs -> y; axis
pad                     x -> y; pads ((before, after) per axis), constant (real)
softmax                 x -> y; axis, beta
logistic, tanh,         x -> y
hard_swish, relu
leaky_relu              x -> y; alpha
clip                    x -> y; min, max (real)
quantize                x (float) -> y (int)
dequantize              x (int) -> y (float)
requantize              x (int) -> y (int, other scale / zero point)
dynamic_quantize        x (float) -> y (uint8), scale (float32 []), zero_point
                        (uint8 []): ONNX DynamicQuantizeLinear, parameters
                        computed from each input at run time
cast                    x -> y; dtype (the output's numpy dtype)
======================  =========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["QuantParams", "WeightLookup", "Tensor", "Node", "Graph", "CANONICAL_OPS"]

CANONICAL_OPS = frozenset({
    "conv2d", "fully_connected", "matmul", "add", "sub", "mul", "mean", "avg_pool2d", "max_pool2d",
    "reshape", "transpose", "concat", "pad", "softmax", "logistic", "tanh", "hard_swish", "relu",
    "leaky_relu", "clip", "quantize", "dequantize", "requantize", "dynamic_quantize", "cast",
})


@dataclass(frozen=True)
class QuantParams:
    """real = scale * (q - zero_point); per tensor (axis None), per channel along ``axis``, or per group.

    Per group (``group_size`` N): scale and zero_point [O, G] with ``axis`` 0;
    element k of the flattened reduction axes of output channel o uses column
    k // N (the last group may be short).
    """

    scale: np.ndarray        # float32, shape [] or [C], or [O, G] per group
    zero_point: np.ndarray   # int64, same shape as scale
    axis: int | None = None
    group_size: int | None = None

    def __post_init__(self) -> None:
        scale = np.asarray(self.scale, dtype=np.float32)
        zp = np.asarray(self.zero_point, dtype=np.int64)
        if zp.shape != scale.shape and zp.size != 1:
            raise ValueError(f"QuantParams: zero_point shape {zp.shape} does not match scale shape {scale.shape}")
        if self.group_size is not None:
            if isinstance(self.group_size, bool) or not isinstance(self.group_size, (int, np.integer)) \
                    or self.group_size < 1:
                raise ValueError(f"QuantParams: group_size must be a positive integer, got {self.group_size!r}")
            if scale.ndim != 2 or self.axis != 0:
                raise ValueError(f"QuantParams: per-group scales need shape [O, G] and axis 0, got shape "
                                 f"{scale.shape} and axis {self.axis}")
        elif scale.ndim > 1:
            raise ValueError(f"QuantParams: scale must be a scalar or 1-D, got shape {scale.shape}")
        if scale.ndim == 1 and scale.size > 1 and self.axis is None:
            raise ValueError("QuantParams: per-channel scales need an axis")
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise ValueError("QuantParams: scales must be positive and finite")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", np.broadcast_to(zp, scale.shape).copy() if zp.size == 1 else zp)

    @property
    def per_channel(self) -> bool:
        return self.scale.ndim == 1 and self.scale.size > 1

    @property
    def per_group(self) -> bool:
        return self.group_size is not None


@dataclass(frozen=True)
class WeightLookup:
    """Non-uniform weights as a lookup stage runs them: ``codes = table[indices]``.

    ``table`` holds the integer levels ([L] per tensor, or [C, L] per channel along
    ``axis``); ``indices`` (uint8 / uint16) has the weight's shape; ``index_bits``
    is the width the lookup stage needs (ceil(log2 L), at least 1).
    """

    table: np.ndarray
    indices: np.ndarray
    index_bits: int
    axis: int | None = None

    def codes(self) -> np.ndarray:
        """``table[indices]`` (per channel: each channel's own table)."""
        if self.table.ndim == 1:
            return self.table[self.indices]
        moved = np.moveaxis(self.indices, self.axis, 0)
        flat = np.take_along_axis(self.table, moved.reshape(moved.shape[0], -1).astype(np.int64), axis=1)
        return np.moveaxis(flat.reshape(moved.shape), 0, self.axis)


@dataclass
class Tensor:
    """A value in the graph: a model input, an intermediate, or a constant (``data``)."""

    name: str
    shape: tuple                      # ints; None for an unknown (batch) dimension
    dtype: np.dtype
    quant: QuantParams | None = None
    data: np.ndarray | None = None    # constants only
    lookup: WeightLookup | None = None  # non-uniform weights: data == lookup.codes()

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass
class Node:
    op: str                           # one of CANONICAL_OPS
    inputs: list[str]                 # tensor names; "" = an omitted optional input
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    name: str = ""                    # the model's node name
    source_op: str = ""               # the model's op type

    def __post_init__(self) -> None:
        if self.op not in CANONICAL_OPS:
            raise ValueError(f"Node {self.name!r}: unknown IR op {self.op!r}")


@dataclass
class Graph:
    tensors: dict[str, Tensor]
    nodes: list[Node]
    inputs: list[str]
    outputs: list[str]
    model_layout: str = "NHWC"        # "NCHW" for ONNX models: the user-facing layout of rank-4 tensors
    source: str = ""                  # "onnx" or "tflite"
    kind: str = ""                    # "float", "qdq", "qoperator", "tflite"
    path: str = ""                    # the model file, for messages
    #: the float graph this one was quantized from (set by the quantizers), so reports can compare each
    #: layer with the float model rather than with the dequantised quantized model
    float_source: "Graph | None" = field(default=None, repr=False, compare=False)

    def tensor(self, name: str) -> Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"graph has no tensor named {name!r}") from None

    def producers(self) -> dict[str, Node]:
        return {out: node for node in self.nodes for out in node.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        result: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    result.setdefault(name, []).append(node)
        return result

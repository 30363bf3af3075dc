"""ONNX model file -> hwsim Graph IR (float, QDQ and QOperator models).

:func:`load_onnx` reads the file with the ``onnx`` package, runs
``onnx.shape_inference``, converts node by node (:mod:`hwsim.graph.onnx_ops`)
into IR ops in NHWC layout, then runs the graph passes
(:mod:`hwsim.graph.passes`): QDQ groups fused the way onnxruntime fuses them
at its default optimisation level, Clip/Relu fused into the preceding float
op, dead tensors removed.
"""

from __future__ import annotations

import os

import numpy as np

from hwsim.graph.errors import ModelError
from hwsim.graph.ir import Graph, Node, QuantParams, Tensor
from hwsim.graph.layout import ir_array, ir_axis, ir_shape

__all__ = ["load_onnx", "OnnxBuilder"]


QDQ_FUSION = ("onnxruntime", "onnxruntime-x86", "none")


def load_onnx(path: str | os.PathLike, qdq_fusion: str = "onnxruntime") -> Graph:
    """Read an ONNX model file into the IR.

    Parameters
    ----------
    path : str or PathLike
        A float (opset 13+), QDQ or QOperator ONNX model.
    qdq_fusion : {"onnxruntime", "onnxruntime-x86", "none"}
        How QDQ groups become integer ops: as onnxruntime 1.32 fuses them when
        int8 activations are allowed (aarch64; identical to x86 for uint8
        activations); with onnxruntime's x86 rules for int8 activations (int8
        tensors read by two nodes keep the convolutions around them in float);
        or not at all (DQ -> float op -> Q, as onnxruntime with ORT_DISABLE_ALL).

    Returns
    -------
    Graph
        ``model_layout`` is "NCHW"; ``kind`` is "float", "qdq" or "qoperator".

    Raises
    ------
    ModelError
        The file is missing, truncated or not an ONNX model, or holds an op
        (or an op variant) hwsim does not support; the message names the file,
        and the node's type and name where there is one.
    """
    import onnx
    from google.protobuf.message import DecodeError

    path = os.fspath(path)
    if qdq_fusion not in QDQ_FUSION:
        raise ValueError(f"qdq_fusion must be one of {QDQ_FUSION}, got {qdq_fusion!r}")
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file")
    try:
        model = onnx.load(path)
    except (DecodeError, ValueError, OSError, RuntimeError) as exc:
        raise ModelError(f"{path}: not a readable ONNX model (truncated or corrupt file?): {exc}") from None
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise ModelError(f"{path}: not a readable ONNX model (no graph or no nodes; truncated or corrupt file?)")
    # onnx's checker is stricter than onnxruntime (it rejects e.g. outputs without a shape), so its
    # verdict only explains a conversion failure; it never rejects a model on its own
    try:
        onnx.checker.check_model(model)
        problem = ""
    except (onnx.checker.ValidationError, ValueError) as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
    try:
        return convert_model(model, path, qdq_fusion)
    except ModelError as exc:
        if problem and "unsupported ONNX op" not in str(exc):
            raise ModelError(f"{exc} (the ONNX checker also reports: {problem})") from None
        raise


def convert_model(model, path: str = "<memory>", qdq_fusion: str = "onnxruntime") -> Graph:
    """Convert an in-memory ``onnx.ModelProto`` (see :func:`load_onnx`)."""
    from hwsim.graph import onnx_ops, passes

    builder = OnnxBuilder(model, path)
    try:
        for index, node in enumerate(model.graph.node):
            builder.current = index
            onnx_ops.convert_node(builder, node)
        graph = builder.finish()
    except ModelError:
        raise
    except (KeyError, IndexError, ValueError, TypeError) as exc:   # a malformed graph, never a crash
        raise ModelError(f"{path}: cannot convert the model: {exc}") from None
    if qdq_fusion != "none":
        passes.fuse_qdq(graph, builder.origin, int8_activations=qdq_fusion != "onnxruntime-x86")
    passes.fuse_activations(graph)
    passes.remove_dead(graph)
    graph.kind = onnx_ops.model_kind(model)
    return graph


def _np_dtype(elem_type: int) -> np.dtype:
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))


class OnnxBuilder:
    """State of one conversion: the ONNX constants, the IR tensors and nodes built so far."""

    def __init__(self, model, path: str) -> None:
        from onnx import numpy_helper, shape_inference

        self.path = path
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        if self.opset and self.opset < 7:
            raise ModelError(f"{path}: ONNX opset {self.opset} is too old (hwsim reads opset 13+ models)")
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.consts: dict[str, np.ndarray] = {}          # ONNX layout, by ONNX name
        self.alias: dict[str, str] = {}                  # Identity / Dropout outputs
        self.dq_const: dict[str, str] = {}               # float tensor -> its quantized constant
        self._counter = 0
        self.current = -1                                # index of the ONNX node being converted
        self.origin: dict[int, int] = {}                 # id(IR node) -> index of its ONNX node
        graph = model.graph
        for init in graph.initializer:
            self.consts[init.name] = numpy_helper.to_array(init)
        try:
            inferred = shape_inference.infer_shapes(model, strict_mode=False).graph
        except Exception:   # noqa: BLE001 -- inference is a help, not a requirement
            inferred = graph
        self.inferred: dict[str, tuple[tuple, np.dtype]] = {}
        for vi in list(inferred.value_info) + list(inferred.input) + list(inferred.output):
            if not vi.type.HasField("tensor_type"):
                continue
            tt = vi.type.tensor_type
            shape = None
            if tt.HasField("shape"):
                shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
            self.inferred[vi.name] = (shape, _np_dtype(tt.elem_type) if tt.elem_type else None)
        self.consumer_count: dict[str, int] = {}
        for node in graph.node:
            for name in node.input:
                if name:
                    self.consumer_count[name] = self.consumer_count.get(name, 0) + 1
        self.output_names = [o.name for o in graph.output]
        for o in self.output_names:
            self.consumer_count[o] = self.consumer_count.get(o, 0) + 1
        self.input_names = []
        for vi in graph.input:
            if vi.name in self.consts:
                continue
            shape, dtype = self.inferred.get(vi.name, (None, None))
            if shape is None or dtype is None:
                raise ModelError(f"{path}: graph input {vi.name!r} has no tensor type/shape")
            self.input_names.append(vi.name)
            self.tensors[vi.name] = Tensor(vi.name, ir_shape(shape), dtype)

    # ---- messages -------------------------------------------------------------------------------
    def error(self, node, message: str) -> ModelError:
        return ModelError(f"{self.path}: node {node.name!r} ({node.op_type}): {message}")

    # ---- names and constants --------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        while True:
            self._counter += 1
            name = f"{base}__hw{self._counter}"
            if name not in self.tensors and name not in self.consts:
                return name

    def resolve(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def const(self, name: str) -> np.ndarray | None:
        """The value of a constant input (ONNX layout), or None if it is computed at run time."""
        if not name:
            return None
        return self.consts.get(self.resolve(name))

    def require_const(self, node, index: int, what: str) -> np.ndarray:
        name = node.input[index] if index < len(node.input) else ""
        value = self.const(name)
        if value is None:
            raise self.error(node, f"{what} (input {index}) must be a constant initializer")
        return value

    def optional_const(self, node, index: int) -> np.ndarray | None:
        if index >= len(node.input) or not node.input[index]:
            return None
        value = self.const(node.input[index])
        if value is None:
            raise self.error(node, f"input {index} must be a constant initializer")
        return value

    def is_const(self, name: str) -> bool:
        return self.const(name) is not None

    # ---- IR tensors ------------------------------------------------------------------------------
    def use(self, name: str, node) -> str:
        """The IR tensor for ONNX tensor ``name``; constants become IR constants on first use."""
        name = self.resolve(name)
        if name in self.tensors:
            return name
        if name in self.consts:
            data = ir_array(self.consts[name])
            self.tensors[name] = Tensor(name, tuple(data.shape), data.dtype, data=data)
            return name
        raise self.error(node, f"input {name!r} is produced by no earlier node, initializer or graph input")

    def tensor(self, name: str) -> Tensor:
        return self.tensors[self.resolve(name)]

    def add_tensor(self, name: str, shape, dtype, quant: QuantParams | None = None,
                   data: np.ndarray | None = None) -> str:
        self.tensors[name] = Tensor(name, tuple(shape), np.dtype(dtype), quant, data)
        return name

    def add_constant(self, base: str, data: np.ndarray, quant: QuantParams | None = None) -> str:
        """A new IR constant (already in IR layout)."""
        data = np.ascontiguousarray(data)
        return self.add_tensor(self.fresh(base), data.shape, data.dtype, quant, data)

    def emit(self, op: str, inputs: list[str], outputs: list[str], node, **attrs) -> Node:
        name = node.name or f"{node.op_type}_{self.current}"
        ir_node = Node(op, list(inputs), list(outputs), attrs, name=name, source_op=node.op_type)
        self.nodes.append(ir_node)
        self.origin[id(ir_node)] = self.current
        return ir_node

    # ---- quantisation parameters --------------------------------------------------------------------
    def quant_params(self, node, scale_index: int, zp_index: int | None, rank: int, axis: int = 1,
                     default_zp_dtype=np.uint8) -> tuple[QuantParams, np.dtype]:
        """QuantParams (IR axis) and integer dtype from a node's constant scale / zero point inputs."""
        scale = np.asarray(self.require_const(node, scale_index, "scale"), dtype=np.float32)
        zp = self.optional_const(node, zp_index) if zp_index is not None else None
        dtype = np.dtype(zp.dtype) if zp is not None else np.dtype(default_zp_dtype)
        if zp is None:
            zp = np.zeros(scale.shape, dtype=np.int64)
        if scale.size == 1:
            try:
                return QuantParams(scale.reshape(()), np.asarray(zp).reshape(()).astype(np.int64)), dtype
            except ValueError as exc:
                raise self.error(node, str(exc)) from None
        if scale.ndim != 1:
            raise self.error(node, f"blocked quantisation (scale shape {scale.shape}) is not supported")
        try:
            return QuantParams(scale, np.asarray(zp).astype(np.int64), axis=ir_axis(axis, rank)), dtype
        except ValueError as exc:
            raise self.error(node, str(exc)) from None

    def set_quant(self, name: str, quant: QuantParams, node) -> str:
        """Attach ``quant`` to integer tensor ``name``; returns the tensor to use.

        A graph input gets the quant of its first consumer; a constant used
        with two different quant params is copied; a computed tensor must
        already carry the same parameters.
        """
        t = self.tensors[name]
        if t.quant is None:
            t.quant = quant
            return name
        if _same_quant(t.quant, quant):
            return name
        if t.is_constant:
            return self.add_constant(name, t.data, quant)
        raise self.error(node, f"tensor {name!r} is read with scale/zero point {_fmt(quant)} "
                               f"but was produced with {_fmt(t.quant)}")

    def finish(self) -> Graph:
        outputs = []
        for name in self.output_names:
            real = self.resolve(name)
            if real not in self.tensors:
                raise ModelError(f"{self.path}: graph output {name!r} is produced by no node")
            outputs.append(real)
        return Graph(self.tensors, self.nodes, list(self.input_names), outputs, model_layout="NCHW",
                     source="onnx", path=self.path)


def _same_quant(a: QuantParams, b: QuantParams) -> bool:
    return (a.axis == b.axis and a.scale.shape == b.scale.shape and np.array_equal(a.scale, b.scale)
            and np.array_equal(a.zero_point, b.zero_point))


def _fmt(q: QuantParams) -> str:
    if q.per_channel:
        return f"(per-channel axis {q.axis}, {q.scale.size} scales)"
    return f"({float(q.scale)!r}, {int(q.zero_point)})"

"""``hwsim.save_model``: a quantized graph as a QDQ ONNX model that onnxruntime loads and runs.

QDQ is how onnxruntime's own quantizer writes a quantized model: every op is a
float ONNX op, and integer tensors live between QuantizeLinear and
DequantizeLinear nodes.  An integer IR op (conv2d, fully_connected, add, ...)
becomes

    DequantizeLinear(each integer input) -> the float op -> [Relu | Clip] -> QuantizeLinear

where the Relu / Clip is the op's fused ``activation`` (the way onnxruntime's
quantizer leaves it).  onnxruntime's QDQ fusion folds each such group back into
one integer kernel (QLinearConv, QGemm, QLinearAdd, ...) and drops the Relu /
Clip when the output's quantized range already lies inside it; hwsim's importer
reproduces exactly that (:func:`hwsim.graph.passes.fuse_qdq`).  A fused
activation that is *not* redundant (its clamp cuts into the quantized range)
would keep onnxruntime's op in float, so it is written as a second step,
op -> QuantizeLinear -> DequantizeLinear -> Relu/Clip -> QuantizeLinear, which
both engines run as the integer op followed by an exact clamp.

Layout: the IR is NHWC inside; the exported model uses the graph's own
``model_layout`` at its inputs and outputs (NCHW for ONNX models) and NCHW
around Conv and the pools, as ONNX requires.  Every rank-4 tensor is written in
one of two layouts ("nchw": the IR tensor transposed by (0, 3, 1, 2); "plain":
the IR's own element order, what a Reshape reads), and a Transpose is inserted
only where a consumer needs the other one; transposes the importer added to
keep a reshape's element order cancel out and are not written.  Weights are
written OIHW ([O, K] with ``transB=1`` for Gemm); per-channel scales keep their
channel axis; an int32 bias is dequantized with its own scale (s_x * s_w).

Opset: 13, the first with per-axis QuantizeLinear / DequantizeLinear; 14 when
the graph has a hard_swish (HardSwish-14); 21 when it holds 16-bit tensors
(QuantizeLinear-21 is the first to produce int16 / uint16).

Refused with a ValueError (nothing is written): float graphs (nothing to
export), per-group weights (hwsim groups the flattened (KH, KW, I) reduction
axes, which ONNX's blocked DequantizeLinear cannot express, and onnxruntime
runs a blocked DequantizeLinear -> Conv in float anyway), non-uniform (lookup /
codebook) weights, integer tensors other than 8 and 16 bits (int32 only as a
constant: a conv / fully-connected bias), run-time tensors quantized per channel, and
integer tensors without scale and zero point.
"""

from __future__ import annotations

import math
import os
import pathlib
import tempfile

import numpy as np

from hwsim.graph.ir import Graph, Node, Tensor
from hwsim.graph.layout import TO_NCHW, TO_NHWC, order_preserved
from hwsim.graph.passes import q_domain

__all__ = ["save_model", "to_onnx", "EXPORTED_OPS"]

_NCHW, _PLAIN = "nchw", "plain"
_EIGHT_BIT = (np.dtype(np.uint8), np.dtype(np.int8))
_SIXTEEN_BIT = (np.dtype(np.uint16), np.dtype(np.int16))
_ACTIVATION_OPS = frozenset({"conv2d", "fully_connected", "add", "sub", "mul", "avg_pool2d", "max_pool2d"})
_WEIGHTED = frozenset({"conv2d", "fully_connected"})
_ELEMENTWISE = {"add": "Add", "sub": "Sub", "mul": "Mul"}
_UNARY = {"logistic": "Sigmoid", "tanh": "Tanh", "hard_swish": "HardSwish", "relu": "Relu"}
#: IR ops with a QDQ spelling (anything else, e.g. dynamic quantization's ops, is refused up front)
EXPORTED_OPS = frozenset({"quantize", "dequantize", "requantize", "transpose", "conv2d", "fully_connected", "matmul",
                          "mean", "avg_pool2d", "max_pool2d", "reshape", "concat", "pad", "softmax", "leaky_relu",
                          "clip"}) | frozenset(_ELEMENTWISE) | frozenset(_UNARY)


def save_model(graph: Graph, path: str | os.PathLike, *, overwrite: bool = False) -> pathlib.Path:
    """Write a quantized ``graph`` as a QDQ ONNX model that onnxruntime loads and runs.

    Parameters
    ----------
    graph : Graph
        A quantized graph: what :func:`hwsim.quantize` or
        :func:`hwsim.sim.minmax_quantize.minmax_quantize` return, or a QDQ /
        QOperator ONNX or int8 TFLite model read by :func:`hwsim.load_model`.
    path : str or PathLike
        The ``.onnx`` file to write.
    overwrite : bool
        Replace ``path`` if it exists (default: refuse).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        The graph is float, or holds something QDQ ONNX cannot express or
        onnxruntime cannot run (see the module docstring); the message names
        the tensor or node.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    OSError
        ``path`` is a directory, its directory does not exist or is not writable.

    Notes
    -----
    For a target whose arithmetic onnxruntime implements (``onnxruntime-x86``),
    onnxruntime's output on the written model equals
    ``hwsim.simulate(hwsim.load_model(path), "onnxruntime-x86", x)`` bit for bit.
    The file is written to a temporary name in the same directory first and
    then renamed, so a failed write never leaves half a model behind.
    """
    path = pathlib.Path(os.fspath(path))
    model = to_onnx(graph)          # every check before anything touches the disk
    _write(model.SerializeToString(), path, overwrite)
    return path


def to_onnx(graph: Graph):
    """The QDQ ``onnx.ModelProto`` of a quantized ``graph`` (what :func:`save_model` writes)."""
    _check_exportable(graph)
    return _Exporter(graph).build()


# ------------------------------------------------------------------------------------------------
# checks
# ------------------------------------------------------------------------------------------------

def _where(graph: Graph) -> str:
    return f"graph of {graph.path}: " if graph.path else ""


def _check_exportable(graph: Graph) -> None:
    where = _where(graph)
    if not any(t.quant is not None for t in graph.tensors.values()):
        raise ValueError(f"{where}the graph is float (kind {graph.kind or 'float'!r}): there is nothing to export as "
                         "QDQ ONNX; quantize it first (hwsim.quantize, or minmax_quantize)")
    for node in graph.nodes:
        if node.op not in EXPORTED_OPS:
            hint = (" (dynamic quantization: onnxruntime runs it as DynamicQuantizeLinear + MatMulInteger, a "
                    "QOperator graph, not QDQ)") if node.op in ("dynamic_quantize", "cast") else ""
            raise ValueError(f"{where}node {node.name!r}: IR op {node.op!r} has no QDQ ONNX form{hint}; "
                             f"exported ops: {', '.join(sorted(EXPORTED_OPS))}")
    for t in graph.tensors.values():
        if getattr(t, "lookup", None) is not None:
            raise ValueError(f"{where}tensor {t.name!r} holds non-uniform (codebook / lookup) weights: ONNX "
                             "DequantizeLinear is affine and cannot express them; export a uniform quantization")
        dtype = np.dtype(t.dtype)
        if dtype.kind not in "iu":
            continue
        q = t.quant
        if q is None:
            raise ValueError(f"{where}integer tensor {t.name!r} ({dtype}) has no scale / zero point; "
                             "QDQ ONNX needs both for every integer tensor")
        if getattr(q, "group_size", None) is not None:
            raise ValueError(f"{where}tensor {t.name!r} is quantized per group (group size {q.group_size}): "
                             "hwsim groups the flattened (KH, KW, I) reduction axes, which ONNX's blocked "
                             "DequantizeLinear (one axis of the OIHW weight) cannot express, and onnxruntime runs a "
                             "blocked DequantizeLinear -> Conv / Gemm in float; use per-channel or per-tensor weights")
        if dtype == np.int32:
            # DequantizeLinear reads int32 (a bias), but no QuantizeLinear produces it
            if not t.is_constant:
                raise ValueError(f"{where}tensor {t.name!r} is int32: QDQ ONNX holds 8-bit and 16-bit integer "
                                 "tensors; int32 only as a constant (a conv / fully-connected bias)")
        elif dtype not in _EIGHT_BIT and dtype not in _SIXTEEN_BIT:
            hint = " (a 16x8 TFLite model's int64 bias: ONNX DequantizeLinear takes no int64)" \
                if dtype == np.int64 else ""
            raise ValueError(f"{where}tensor {t.name!r} is {dtype}: QDQ ONNX holds 8-bit and 16-bit integer tensors "
                             f"(int32 only as a conv / fully-connected bias){hint}")
        if q.per_channel and not t.is_constant:
            raise ValueError(f"{where}run-time tensor {t.name!r} is quantized per channel: onnxruntime's integer "
                             "ops take per-tensor activations; only constant weights may be per channel")


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------

def _write(data: bytes, path: pathlib.Path, overwrite: bool) -> None:
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory; give the name of the .onnx file to write")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: file exists; pass overwrite=True to replace it")
    parent = path.parent
    if not parent.exists():
        raise FileNotFoundError(f"{path}: cannot write the model: directory {parent} does not exist")
    if not parent.is_dir():
        raise NotADirectoryError(f"{path}: cannot write the model: {parent} is not a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise type(exc)(f"{path}: cannot write the model: directory {parent} is not writable "
                        f"({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)                 # mkstemp makes 0600; a model file is for others to read too
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise type(exc)(f"{path}: cannot write the model ({exc.strerror or exc})") from None


# ------------------------------------------------------------------------------------------------
# the exporter
# ------------------------------------------------------------------------------------------------

def _compose(a: tuple, b: tuple) -> tuple:
    """The single perm equal to transposing by ``a`` and then by ``b``."""
    return tuple(a[i] for i in b)


def _inverse(p: tuple) -> tuple:
    return tuple(int(i) for i in np.argsort(p))


class _Exporter:
    """One export: IR nodes in order -> ONNX nodes and initializers."""

    def __init__(self, graph: Graph) -> None:
        self.g = graph
        self.nodes: list = []
        self.inits: dict = {}
        self.used = set(graph.tensors)        # ONNX tensor names taken (IR names are reserved for themselves)
        self.node_names: set = set()
        self.where: dict = {}                 # (IR name, layout) -> ONNX name (integer tensors stay integer)
        self.layout: dict = {}                # IR name -> the layout it was first produced in
        self.dq: dict = {}                    # (IR name, layout) -> ONNX name of its dequantized float value
        self.qparams: dict = {}               # IR name -> (scale initializer, zero point initializer)
        self.opset = self._opset()
        for name in graph.inputs:
            self.where[(name, self._default(name))] = name
            self.layout[name] = self._default(name)

    # ---- bookkeeping -------------------------------------------------------------------------------------
    def _opset(self) -> int:
        if any(np.dtype(t.dtype) in _SIXTEEN_BIT for t in self.g.tensors.values()):
            return 21
        if any(n.op == "hard_swish" for n in self.g.nodes):
            return 14
        return 13

    def _rank(self, name: str) -> int:
        return len(self.g.tensor(name).shape)

    def _default(self, name: str) -> str:
        return _NCHW if self._rank(name) == 4 and self.g.model_layout == "NCHW" else _PLAIN

    def _current(self, name: str) -> str:
        """The layout ``name`` exists in (its first one); constants and non-rank-4 tensors: the default."""
        if self._rank(name) != 4:
            return _PLAIN
        return self.layout.get(name, self._default(name))

    def _fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def _home(self, name: str, layout: str) -> str:
        """ONNX name for IR tensor ``name`` in ``layout``: the IR name itself in its default layout."""
        if layout == self._default(name) and (name, layout) not in self.where:
            return name
        return self._fresh(f"{name}__{layout}")

    def _node(self, op_type: str, inputs: list, outputs: list, name: str, **attrs) -> None:
        from onnx import helper

        base, i = name or op_type, 0
        while name in self.node_names or not name:
            i += 1
            name = f"{base}_{i}"
        self.node_names.add(name)
        # trailing omitted optional inputs are dropped; inner ones stay as ""
        while inputs and inputs[-1] == "":
            inputs = inputs[:-1]
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name=name, **attrs))

    def _init(self, base: str, value: np.ndarray, exact_name: bool = False) -> str:
        from onnx import numpy_helper

        name = base if exact_name else self._fresh(base)
        self.inits[name] = numpy_helper.from_array(np.array(value, order="C"), name)   # keeps 0-d scalars 0-d
        return name

    # ---- layouts -------------------------------------------------------------------------------------------
    def _constant_data(self, t: Tensor, layout: str) -> np.ndarray:
        data = np.asarray(t.data)
        if layout == "nchw4":                  # a lower-rank constant broadcast against a rank-4 NHWC tensor
            data = data.reshape((1,) * (4 - data.ndim) + data.shape).transpose(TO_NCHW)
        elif layout == _NCHW and data.ndim == 4:
            data = data.transpose(TO_NCHW)
        return data

    def _axis(self, t: Tensor, layout: str) -> int | None:
        """The ONNX axis of ``t``'s per-channel quantisation in ``layout`` (None per tensor)."""
        q = t.quant
        if q is None or not q.per_channel:
            return None
        axis = q.axis % len(t.shape)
        if layout == "nchw4":
            return TO_NHWC[axis + 4 - len(t.shape)]
        if layout == _NCHW and len(t.shape) == 4:
            return TO_NHWC[axis]
        return axis

    def need(self, name: str, layout: str) -> str:
        """The ONNX name of IR tensor ``name`` (integer tensors stay integer) in ``layout``."""
        t = self.g.tensor(name)
        if len(t.shape) != 4 and layout != "nchw4":
            layout = _PLAIN
        key = (name, layout)
        if key in self.where:
            return self.where[key]
        if t.is_constant:
            onnx_name = self._home(name, layout) if layout != "nchw4" else self._fresh(f"{name}__nchw")
            self._init(onnx_name, self._constant_data(t, layout), exact_name=True)
            self.where[key] = onnx_name
            return onnx_name
        other = _PLAIN if layout == _NCHW else _NCHW
        if (name, other) not in self.where:
            raise ValueError(f"{_where(self.g)}tensor {name!r} is read before any node produces it "
                             "(the graph's nodes are not in topological order)")
        perm = TO_NCHW if layout == _NCHW else TO_NHWC
        out = self._home(name, layout)
        self._node("Transpose", [self.where[(name, other)]], [out], f"{name}/to_{layout}", perm=list(perm))
        self.where[key] = out
        return out

    def _produced(self, name: str, layout: str) -> str:
        """Register that IR tensor ``name`` is produced in ``layout``; its ONNX name."""
        if self._rank(name) != 4:
            layout = _PLAIN
        out = self._home(name, layout)
        self.where[(name, layout)] = out
        self.layout.setdefault(name, layout)
        return out

    # ---- quantisation --------------------------------------------------------------------------------------
    def _scale_zp(self, name: str) -> tuple[str, str]:
        if name not in self.qparams:
            t = self.g.tensor(name)
            q = t.quant
            scale = np.asarray(q.scale, dtype=np.float32).reshape(-1 if q.per_channel else ())
            zp = np.asarray(q.zero_point, dtype=np.int64).reshape(scale.shape).astype(np.dtype(t.dtype))
            self.qparams[name] = (self._init(f"{name}_scale", scale), self._init(f"{name}_zero_point", zp))
        return self.qparams[name]

    def _axis_attr(self, t: Tensor, layout: str) -> dict:
        axis = self._axis(t, layout)
        return {} if axis is None else {"axis": int(axis)}

    def deq(self, name: str, layout: str, out: str | None = None, node_name: str = "") -> str:
        """The dequantized (float) ONNX value of integer IR tensor ``name`` in ``layout``."""
        t = self.g.tensor(name)
        if len(t.shape) != 4 and layout != "nchw4":
            layout = _PLAIN
        key = (name, layout)
        if key in self.dq and out is None:
            return self.dq[key]
        src = self.need(name, layout)
        scale, zp = self._scale_zp(name)
        out = out or self._fresh(f"{src}_DequantizeLinear_Output")
        self._node("DequantizeLinear", [src, scale, zp], [out], node_name or f"{src}_DequantizeLinear",
                   **self._axis_attr(t, layout))
        self.dq.setdefault(key, out)
        return out

    def quant(self, src: str, name: str, layout: str, node_name: str, out: str | None = None) -> str:
        """QuantizeLinear of float ONNX value ``src`` to IR tensor ``name``'s parameters."""
        t = self.g.tensor(name)
        scale, zp = self._scale_zp(name)
        out = out or self._produced(name, layout)
        self._node("QuantizeLinear", [src, scale, zp], [out], node_name, **self._axis_attr(t, layout))
        return out

    def _is_int(self, name: str) -> bool:
        return bool(name) and np.dtype(self.g.tensor(name).dtype).kind in "iu"

    # ---- the graph -----------------------------------------------------------------------------------------
    def build(self):
        from onnx import helper

        import hwsim

        for node in self.g.nodes:
            self._emit(node)
        outputs = []
        for name in self.g.outputs:
            got = self.need(name, self._default(name))
            if got != name:                    # an alias (a transpose that cancelled out): name it
                self._node("Identity", [got], [name], f"{name}/output")
            outputs.append(self._value_info(name))
        inputs = [self._value_info(name) for name in self.g.inputs]
        graph = helper.make_graph(self.nodes, "hwsim_qdq", inputs, outputs, list(self.inits.values()))
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="hwsim",
                                  producer_version=hwsim.__version__,
                                  ir_version=helper.find_min_ir_version_for(opsets))
        model.doc_string = (f"QDQ model written by hwsim {hwsim.__version__} from a {self.g.kind or 'quantized'} "
                            f"graph{' (' + self.g.path + ')' if self.g.path else ''}")
        return model

    def _value_info(self, name: str):
        from onnx import helper

        t = self.g.tensor(name)
        shape = tuple(t.shape)
        if self._default(name) == _NCHW:
            shape = tuple(shape[i] for i in TO_NCHW)
        dims = [d if d is not None else "N" for d in shape]
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype)), dims)

    def _emit(self, node: Node) -> None:
        op = node.op
        if op == "quantize":
            x, y = node.inputs[0], node.outputs[0]
            layout = self._current(x)
            self.quant(self.need(x, layout), y, layout, node.name)
        elif op == "dequantize":
            x, y = node.inputs[0], node.outputs[0]
            layout = self._current(x)
            out = self._produced(y, layout)
            self.deq(x, layout, out=out, node_name=node.name)
        elif op == "requantize":
            x, y = node.inputs[0], node.outputs[0]
            layout = self._current(x)
            self.quant(self.deq(x, layout), y, layout, node.name)
        elif op == "transpose":
            self._transpose(node)
        else:
            self._generic(node)

    # ---- layout plan of one op -----------------------------------------------------------------------------
    def _plan(self, node: Node) -> tuple[list, str]:
        """(layout of each input, layout of the output) for a generic op."""
        op = node.op
        ins = node.inputs
        y = node.outputs[0]
        if op in ("conv2d", "avg_pool2d", "max_pool2d"):
            return [_NCHW, _NCHW, _PLAIN][:len(ins)], _NCHW
        if op in ("fully_connected", "matmul", "reshape"):
            return [_PLAIN] * len(ins), _PLAIN
        if self._rank(y) != 4:
            if op == "mean" and self._rank(ins[0]) == 4:
                layout = self._current(ins[0])
                axes = {a % 4 for a in node.attrs["axes"]}
                model_axes = {TO_NHWC[a] for a in axes}
                same_order = [m for m in TO_NHWC if m not in model_axes] == \
                    [m for m in range(4) if m not in model_axes]
                return [layout if same_order else _PLAIN], _PLAIN
            return [_PLAIN] * len(ins), _PLAIN
        first = next((i for i in ins if i and self._rank(i) == 4 and not self.g.tensor(i).is_constant), None)
        layout = self._current(first) if first is not None else self._default(y)
        if op == "mean" and set(a % 4 for a in node.attrs["axes"]) == {1, 2}:
            layout = _NCHW                     # GlobalAveragePool
        in_layouts = []
        for name in ins:
            if name and self._rank(name) < 4 and layout == _NCHW:
                t = self.g.tensor(name)
                if t.is_constant:
                    in_layouts.append("nchw4")
                    continue
                if any(d not in (1, None) for d in t.shape):
                    raise ValueError(f"{_where(self.g)}node {node.name!r} ({op}): run-time operand {name!r} of "
                                     f"shape {t.shape} broadcast against a rank-4 tensor cannot be written in NCHW")
            in_layouts.append(layout)
        return in_layouts, layout

    def _model_axis(self, axis: int, rank: int, layout: str) -> int:
        axis %= rank
        return TO_NHWC[axis] if rank == 4 and layout == _NCHW else axis

    # ---- ops -------------------------------------------------------------------------------------------------
    def _generic(self, node: Node) -> None:
        in_layouts, out_layout = self._plan(node)
        if node.op == "reshape" and self._rank(node.inputs[0]) == 4 and self._current(node.inputs[0]) == _NCHW \
                and order_preserved(tuple(self.g.tensor(node.inputs[0]).shape[i] for i in TO_NCHW)):
            in_layouts = [_NCHW]                # C == 1 or H * W == 1: both layouts hold the same element order
        args = []
        for name, layout in zip(node.inputs, in_layouts):
            if not name:
                args.append("")
            elif self._is_int(name):
                args.append(self.deq(name, layout))
            else:
                args.append(self.need(name, layout))
        y = node.outputs[0]
        act = node.attrs.get("activation") if node.op in _ACTIVATION_OPS else None
        if not self._is_int(y):
            if act is None:
                self._float_op(node, args, self._produced(y, out_layout), in_layouts[0] if in_layouts else out_layout)
            else:
                pre = self._fresh(f"{y}__preact")
                self._float_op(node, args, pre, in_layouts[0])
                self._activation(node, act, pre, self._produced(y, out_layout))
            return
        pre = self._fresh(f"{y}__float")
        self._float_op(node, args, pre, in_layouts[0] if in_layouts else out_layout)
        if act is None:
            self.quant(pre, y, out_layout, f"{node.name}_QuantizeLinear")
        elif self._redundant(act, self.g.tensor(y)):
            post = self._fresh(f"{y}__act")
            self._activation(node, act, pre, post)
            self.quant(post, y, out_layout, f"{node.name}_QuantizeLinear")
        else:
            # the clamp cuts into the quantized range: onnxruntime would keep the op in float if the
            # Relu / Clip sat between it and its QuantizeLinear, so quantize first and clamp exactly after
            raw = self._fresh(f"{y}__noact")
            self.quant(pre, y, out_layout, f"{node.name}_QuantizeLinear", out=raw)
            scale, zp = self._scale_zp(y)
            raw_f = self._fresh(f"{raw}_DequantizeLinear_Output")
            self._node("DequantizeLinear", [raw, scale, zp], [raw_f], f"{raw}_DequantizeLinear")
            post = self._fresh(f"{y}__act")
            self._activation(node, act, raw_f, post)
            self.quant(post, y, out_layout, f"{node.name}_activation_QuantizeLinear")

    @staticmethod
    def _redundant(act: tuple, y: Tensor) -> bool:
        """onnxruntime drops the Relu / Clip before a QuantizeLinear whose range lies inside it."""
        lo, hi = q_domain(float(y.quant.scale), int(y.quant.zero_point), y.dtype)
        return float(act[0]) <= lo and hi <= float(act[1])

    def _activation(self, node: Node, act: tuple, src: str, out: str) -> None:
        lo, hi = float(act[0]), float(act[1])
        if lo == 0.0 and hi == math.inf:
            self._node("Relu", [src], [out], f"{node.name}_Relu")
            return
        self._clip(src, out, lo, hi, f"{node.name}_Clip")

    def _clip(self, src: str, out: str, lo: float, hi: float, name: str) -> None:
        lo_name = self._init(f"{name}_min", np.array(lo, np.float32)) if math.isfinite(lo) else ""
        hi_name = self._init(f"{name}_max", np.array(hi, np.float32)) if math.isfinite(hi) else ""
        self._node("Clip", [src, lo_name, hi_name], [out], name)

    def _transpose(self, node: Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        perm = tuple(int(p) for p in node.attrs["perm"])
        in_layout = self._current(x)
        x_t, y_t = self.g.tensor(x), self.g.tensor(y)
        same_values = (not self._is_int(x) and not self._is_int(y)) or (
            self._is_int(x) and self._is_int(y) and x_t.dtype == y_t.dtype
            and np.array_equal(x_t.quant.scale, y_t.quant.scale)
            and np.array_equal(x_t.quant.zero_point, y_t.quant.zero_point))
        p_in = TO_NCHW if len(perm) == 4 and in_layout == _NCHW else tuple(range(len(perm)))
        candidates = [_NCHW, _PLAIN] if len(perm) == 4 else [_PLAIN]
        if len(perm) == 4 and self._default(y) == _PLAIN:
            candidates.reverse()
        for out_layout in candidates:
            p_out = TO_NCHW if out_layout == _NCHW else tuple(range(len(perm)))
            total = _compose(_compose(_inverse(p_in), perm), p_out)
            if total == tuple(range(len(perm))) and same_values:
                # the importer's transpose around a reshape (or any that cancels out): write nothing
                self.where[(y, out_layout)] = self.need(x, in_layout)
                self.layout.setdefault(y, out_layout)
                if self._is_int(y):
                    self.qparams.setdefault(y, self._scale_zp(x))
                    if (x, in_layout) in self.dq:
                        self.dq.setdefault((y, out_layout), self.dq[(x, in_layout)])
                return
        out_layout = candidates[0]
        p_out = TO_NCHW if out_layout == _NCHW else tuple(range(len(perm)))
        total = list(_compose(_compose(_inverse(p_in), perm), p_out))
        if self._is_int(y):
            pre = self._fresh(f"{y}__float")
            self._node("Transpose", [self.deq(x, in_layout)], [pre], node.name, perm=total)
            self.quant(pre, y, out_layout, f"{node.name}_QuantizeLinear")
        else:
            self._node("Transpose", [self.need(x, in_layout)], [self._produced(y, out_layout)], node.name,
                       perm=total)

    def _float_op(self, node: Node, args: list, out: str, layout: str) -> None:
        """The float ONNX op(s) computing IR ``node`` from ONNX values ``args`` into ``out``."""
        op, a, g = node.op, node.attrs, self.g
        name = node.name
        if op == "conv2d":
            _, kh, kw, _ = g.tensor(node.inputs[1]).shape
            self._node("Conv", args, [out], name, kernel_shape=[int(kh), int(kw)],
                       strides=[int(s) for s in a.get("stride", (1, 1))],
                       dilations=[int(d) for d in a.get("dilation", (1, 1))],
                       pads=[int(p) for p in a.get("padding", (0, 0, 0, 0))], group=int(a.get("groups", 1)))
        elif op == "fully_connected":
            self._node("Gemm", args, [out], name, transB=1)
        elif op == "matmul":
            self._node("MatMul", args, [out], name)
        elif op in _ELEMENTWISE:
            self._node(_ELEMENTWISE[op], args, [out], name)
        elif op == "mean":
            self._mean(node, args, out, layout)
        elif op in ("avg_pool2d", "max_pool2d"):
            extra = {"count_include_pad": int(bool(a.get("count_include_pad", False)))} if op == "avg_pool2d" else {}
            self._node("AveragePool" if op == "avg_pool2d" else "MaxPool", args, [out], name,
                       kernel_shape=[int(k) for k in a["kernel"]], strides=[int(s) for s in a.get("stride", (1, 1))],
                       pads=[int(p) for p in a.get("padding", (0, 0, 0, 0))], **extra)
        elif op == "reshape":
            shape = self._init(f"{name}_shape", np.array([int(d) for d in a["shape"]], dtype=np.int64))
            self._node("Reshape", [args[0], shape], [out], name)
        elif op == "concat":
            rank = self._rank(node.inputs[0])
            self._node("Concat", args, [out], name, axis=self._model_axis(int(a["axis"]), rank, layout))
        elif op == "pad":
            self._pad(node, args, out, layout)
        elif op == "softmax":
            rank = self._rank(node.inputs[0])
            src = args[0]
            beta = float(a.get("beta", 1.0))
            if beta != 1.0:
                src = self._fresh(f"{out}__scaled")
                self._node("Mul", [args[0], self._init(f"{name}_beta", np.array(beta, np.float32))], [src],
                           f"{name}_beta")
            self._node("Softmax", [src], [out], name, axis=self._model_axis(int(a.get("axis", -1)), rank, layout))
        elif op in _UNARY:
            self._node(_UNARY[op], args, [out], name)
        elif op == "leaky_relu":
            self._node("LeakyRelu", args, [out], name, alpha=float(a.get("alpha", 0.01)))
        elif op == "clip":
            self._clip(args[0], out, float(a.get("min", -math.inf)), float(a.get("max", math.inf)), name)
        else:
            raise ValueError(f"{_where(self.g)}node {name!r}: IR op {op!r} has no ONNX export")

    def _mean(self, node: Node, args: list, out: str, layout: str) -> None:
        rank = self._rank(node.inputs[0])
        axes = sorted({self._model_axis(int(ax), rank, layout) for ax in node.attrs["axes"]})
        keepdims = bool(node.attrs.get("keepdims", True))
        if rank == 4 and layout == _NCHW and axes == [2, 3] and keepdims:
            # onnxruntime fuses only GlobalAveragePool (QLinearGlobalAveragePool), not ReduceMean
            self._node("GlobalAveragePool", args, [out], node.name)
        elif self.opset >= 18:
            axes_name = self._init(f"{node.name}_axes", np.array(axes, dtype=np.int64))
            self._node("ReduceMean", [args[0], axes_name], [out], node.name, keepdims=int(keepdims))
        else:
            self._node("ReduceMean", args, [out], node.name, axes=axes, keepdims=int(keepdims))

    def _pad(self, node: Node, args: list, out: str, layout: str) -> None:
        per_axis = [tuple(int(v) for v in p) for p in node.attrs["pads"]]
        rank = len(per_axis)
        if rank == 4 and layout == _NCHW:
            per_axis = [per_axis[i] for i in TO_NCHW]      # ONNX axis i is IR axis TO_NCHW[i]
        pads = [p[0] for p in per_axis] + [p[1] for p in per_axis]
        pads_name = self._init(f"{node.name}_pads", np.array(pads, dtype=np.int64))
        value = self._init(f"{node.name}_value", np.array(float(node.attrs.get("constant", 0.0)), np.float32))
        self._node("Pad", [args[0], pads_name, value], [out], node.name, mode="constant")

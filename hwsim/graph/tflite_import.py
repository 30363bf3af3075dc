"""TFLite flatbuffer (.tflite) -> hwsim graph IR.

The file is read with the flatbuffer schema classes of the ``tflite`` package (generated from TFLite's
``schema.fbs``); nothing here parses bytes by hand.  Import happens in two steps so that a damaged file and
an unsupported model give different, clear errors:

1. :func:`_decode` copies everything needed out of the flatbuffer into plain records
   (:class:`_RawTensor`, :class:`_RawOp`).  Any exception raised while walking the flatbuffer means the
   file is corrupt or truncated, and becomes a :class:`~hwsim.graph.errors.ModelError` naming the file.
2. :class:`_Converter` turns the records into IR nodes, one TFLite operator at a time.

TFLite is NHWC already, so rank-4 tensors keep their layout.  Weights: CONV_2D [O, KH, KW, I] as is;
DEPTHWISE_CONV_2D [1, KH, KW, C*M] becomes a grouped ``conv2d`` (groups = C) with weights [C*M, KH, KW, 1]
and its per-channel quantisation axis moved from 3 to 0; FULLY_CONNECTED [O, K] as is.  SAME / VALID
padding is resolved to explicit (top, left, bottom, right) the way TFLite does (the odd pixel goes to the
bottom / right).  Nodes carry only the attributes ir.py lists (executors pass them on as keyword
arguments), plus ``pot_scale_int16`` on int16 ADD / SUB, which selects TFLite's arithmetic there.
FULLY_CONNECTED's implicit flattening of a rank > 2 input and its ``keep_num_dims`` output
become explicit ``reshape`` nodes (named ``<output>/flatten`` and ``<output>/keep_num_dims``).  QUANTIZE of
an integer tensor (e.g. uint8 -> int8 at a model's edge) becomes ``requantize``; PAD pads with real 0 (the
zero point), PADV2 with its constant.  Fused activations become a real-domain clamp ``attrs["activation"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tflite  # the flatbuffer schema classes generated from TFLite's schema.fbs (PyPI package "tflite")

from hwsim.graph.errors import ModelError
from hwsim.graph.ir import Graph, Node, QuantParams, Tensor

__all__ = ["load_tflite", "SUPPORTED_OPS"]

#: TFLite builtin ops this importer understands, with the IR op each becomes.
SUPPORTED_OPS = {
    "CONV_2D": "conv2d",
    "DEPTHWISE_CONV_2D": "conv2d",
    "FULLY_CONNECTED": "fully_connected",
    "ADD": "add",
    "SUB": "sub",
    "MUL": "mul",
    "MEAN": "mean",
    "AVERAGE_POOL_2D": "avg_pool2d",
    "MAX_POOL_2D": "max_pool2d",
    "RESHAPE": "reshape",
    "SOFTMAX": "softmax",
    "LOGISTIC": "logistic",
    "TANH": "tanh",
    "HARD_SWISH": "hard_swish",
    "CONCATENATION": "concat",
    "PAD": "pad",
    "PADV2": "pad",
    "QUANTIZE": "quantize",          # "requantize" when the input is already an integer tensor
    "DEQUANTIZE": "dequantize",
}

# Builtin options read per op: (options class in the ``tflite`` package = its BuiltinOptions tag, getters).
_OPTIONS = {
    "CONV_2D": ("Conv2DOptions", ("Padding", "StrideW", "StrideH", "FusedActivationFunction",
                                  "DilationWFactor", "DilationHFactor")),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", ("Padding", "StrideW", "StrideH", "DepthMultiplier",
                                                     "FusedActivationFunction", "DilationWFactor",
                                                     "DilationHFactor")),
    "FULLY_CONNECTED": ("FullyConnectedOptions", ("FusedActivationFunction", "WeightsFormat", "KeepNumDims",
                                                  "AsymmetricQuantizeInputs")),
    "ADD": ("AddOptions", ("FusedActivationFunction", "PotScaleInt16")),
    "SUB": ("SubOptions", ("FusedActivationFunction", "PotScaleInt16")),
    "MUL": ("MulOptions", ("FusedActivationFunction",)),
    "MEAN": ("ReducerOptions", ("KeepDims",)),
    "AVERAGE_POOL_2D": ("Pool2DOptions", ("Padding", "StrideW", "StrideH", "FilterWidth", "FilterHeight",
                                          "FusedActivationFunction")),
    "MAX_POOL_2D": ("Pool2DOptions", ("Padding", "StrideW", "StrideH", "FilterWidth", "FilterHeight",
                                      "FusedActivationFunction")),
    "SOFTMAX": ("SoftmaxOptions", ("Beta",)),
    "CONCATENATION": ("ConcatenationOptions", ("Axis", "FusedActivationFunction")),
}
# Ops whose options TFLite itself cannot run without (the others have usable defaults).
_OPTIONS_REQUIRED = {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"}

# tflite.TensorType -> numpy dtype (types hwsim can hold; others are reported by name).
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
           9: np.int8, 10: np.float64, 15: np.uint32, 16: np.uint16}
_TYPE_NAMES = {5: "STRING", 8: "COMPLEX64", 11: "COMPLEX128", 12: "UINT64", 13: "RESOURCE", 14: "VARIANT",
               17: "INT4", 18: "BFLOAT16"}

# tflite.ActivationFunctionType -> (name, real-domain clamp); TANH and SIGN_BIT are not clamps.
_ACTIVATIONS = {0: ("NONE", None), 1: ("RELU", (0.0, float("inf"))), 2: ("RELU_N1_TO_1", (-1.0, 1.0)),
                3: ("RELU6", (0.0, 6.0))}
_ACTIVATION_NAMES = {4: "TANH", 5: "SIGN_BIT"}
_SAME, _VALID = 0, 1


# --------------------------------------------------------------------------------------------------------
# Step 1: flatbuffer -> plain records
# --------------------------------------------------------------------------------------------------------

@dataclass
class _RawTensor:
    index: int
    name: str
    shape: tuple
    signature: tuple | None      # shape_signature: -1 marks a dynamic dimension
    type_code: int
    data: bytes | None           # constant payload
    scale: np.ndarray | None
    zero_point: np.ndarray | None
    quantized_dimension: int
    sparse: bool                 # block-sparse payload (TFLite's sparsity parameters)


@dataclass
class _RawOp:
    index: int
    opcode: str                  # builtin name, "CUSTOM:<code>" or "BUILTIN_<n>"
    inputs: list                 # tensor indices, -1 = omitted optional input
    outputs: list
    options: dict | None         # getter name -> value; None when the op has no options table


def _opcode_name(code) -> str:
    number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if number == 32:  # CUSTOM
        custom = code.CustomCode()
        return f"CUSTOM:{custom.decode('utf-8', 'replace') if custom else '?'}"
    return tflite.BUILTIN_OPCODE2NAME.get(number, f"BUILTIN_{number}")


def _read_options(op, index: int, opcode: str):
    if opcode not in _OPTIONS:
        return None
    class_name, getters = _OPTIONS[opcode]
    table = op.BuiltinOptions()
    if table is None:
        return None
    expected_tag = getattr(tflite.BuiltinOptions, class_name)
    if op.BuiltinOptionsType() != expected_tag:
        raise ValueError(f"operator #{index} {opcode}: options table of type "
                         f"{op.BuiltinOptionsType()}, expected {class_name} ({expected_tag})")
    options = getattr(tflite, class_name)()
    options.Init(table.Bytes, table.Pos)
    return {name: getattr(options, name)() for name in getters}


def _buffer_bytes(model, data: bytes, buffer_index: int) -> bytes | None:
    if buffer_index <= 0:                     # buffer 0 is TFLite's "no data" sentinel
        return None
    if buffer_index >= model.BuffersLength():
        raise ValueError(f"buffer index {buffer_index} out of range ({model.BuffersLength()} buffers)")
    buf = model.Buffers(buffer_index)
    if buf.DataLength() > 0:
        return buf.DataAsNumpy().tobytes()
    offset, size = buf.Offset(), buf.Size()
    if offset > 1 and size > 0:               # large models keep payloads after the flatbuffer
        if offset + size > len(data):
            raise ValueError(f"buffer {buffer_index} extends past the end of the file")
        return data[offset:offset + size]
    return None


def _decode(data: bytes):
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() < 1:
        raise ValueError("the model has no subgraph")
    graph = model.Subgraphs(0)
    n_tensors = graph.TensorsLength()
    if n_tensors > len(data) // 4 or graph.OperatorsLength() > len(data) // 4:
        raise ValueError("tensor / operator counts exceed what the file can hold")
    codes = [_opcode_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]

    tensors = []
    for i in range(n_tensors):
        t = graph.Tensors(i)
        shape = () if t.ShapeIsNone() else tuple(int(d) for d in t.ShapeAsNumpy())
        signature = None if t.ShapeSignatureIsNone() else tuple(int(d) for d in t.ShapeSignatureAsNumpy())
        if any(d < 0 for d in shape):
            raise ValueError(f"tensor {i} has a negative dimension in its shape {shape}")
        quant = t.Quantization()
        scale = zero_point = None
        dim = 0
        if quant is not None and not quant.ScaleIsNone() and quant.ScaleLength() > 0:
            scale = np.array(quant.ScaleAsNumpy(), dtype=np.float32)
            zero_point = (np.zeros(scale.shape, np.int64) if quant.ZeroPointIsNone()
                          else np.array(quant.ZeroPointAsNumpy(), dtype=np.int64))
            dim = int(quant.QuantizedDimension())
        name = t.Name().decode("utf-8", "replace") if t.Name() else ""
        tensors.append(_RawTensor(i, name, shape, signature, int(t.Type()),
                                  _buffer_bytes(model, data, t.Buffer()), scale, zero_point, dim,
                                  t.Sparsity() is not None))

    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if op.OpcodeIndex() >= len(codes):
            raise ValueError(f"operator #{i} uses opcode index {op.OpcodeIndex()} of {len(codes)}")
        opcode = codes[op.OpcodeIndex()]
        inputs = [] if op.InputsIsNone() else [int(v) for v in op.InputsAsNumpy()]
        outputs = [] if op.OutputsIsNone() else [int(v) for v in op.OutputsAsNumpy()]
        for v in inputs + outputs:
            if v < -1 or v >= n_tensors:
                raise ValueError(f"operator #{i} refers to tensor {v} of {n_tensors}")
        ops.append(_RawOp(i, opcode, inputs, outputs, _read_options(op, i, opcode)))

    graph_inputs = [] if graph.InputsIsNone() else [int(v) for v in graph.InputsAsNumpy()]
    graph_outputs = [] if graph.OutputsIsNone() else [int(v) for v in graph.OutputsAsNumpy()]
    for v in graph_inputs + graph_outputs:
        if not 0 <= v < n_tensors:
            raise ValueError(f"graph input/output refers to tensor {v} of {n_tensors}")
    return tensors, ops, graph_inputs, graph_outputs


# --------------------------------------------------------------------------------------------------------
# Step 2: records -> IR
# --------------------------------------------------------------------------------------------------------

def _same_padding(in_size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int, int]:
    """TFLite SAME padding: out = ceil(in / stride); the odd padding pixel goes after (bottom / right)."""
    effective = (kernel - 1) * dilation + 1
    out = (in_size + stride - 1) // stride
    total = max((out - 1) * stride + effective - in_size, 0)
    return total // 2, total - total // 2, out


def _valid_out(in_size: int, kernel: int, stride: int, dilation: int) -> int:
    effective = (kernel - 1) * dilation + 1
    return (in_size - effective) // stride + 1


class _Converter:
    def __init__(self, path: Path, raw_tensors, raw_ops, graph_inputs, graph_outputs):
        self.path = path
        self.raw = raw_tensors
        self.ops = raw_ops
        self.graph_inputs = graph_inputs
        self.graph_outputs = graph_outputs
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.names = self._unique_names()
        self._taken = set(self.names)

    # -- names and tensors ---------------------------------------------------------------------------------

    def _unique_names(self) -> list[str]:
        """TFLite does not require unique (or any) tensor names; the IR does."""
        seen: dict[str, int] = {}
        for t in self.raw:
            seen[t.name] = seen.get(t.name, 0) + 1
        names = []
        for t in self.raw:
            if not t.name:
                names.append(f"tensor_{t.index}")
            elif seen[t.name] > 1:
                names.append(f"{t.name}#{t.index}")
            else:
                names.append(t.name)
        return names

    def _error(self, op: _RawOp | None, message: str) -> ModelError:
        where = "" if op is None else f"operator #{op.index} {op.opcode} ({self._node_name(op)!r}): "
        return ModelError(f"{self.path}: {where}{message}")

    def _node_name(self, op: _RawOp) -> str:
        outs = [i for i in op.outputs if i >= 0]
        return self.names[outs[0]] if outs else f"op_{op.index}"

    def _dtype(self, raw: _RawTensor, op: _RawOp | None):
        if raw.type_code not in _DTYPES:
            type_name = _TYPE_NAMES.get(raw.type_code, str(raw.type_code))
            raise self._error(op, f"tensor {raw.name!r} has type {type_name}, which hwsim does not support")
        return np.dtype(_DTYPES[raw.type_code])

    def _quant(self, raw: _RawTensor, op: _RawOp | None, axis_map=None) -> QuantParams | None:
        if raw.scale is None:
            return None
        rank = len(raw.shape)
        per_channel = raw.scale.size > 1
        axis = None
        if per_channel:
            axis = raw.quantized_dimension
            if not 0 <= axis < max(rank, 1) or raw.shape[axis] != raw.scale.size:
                raise self._error(op, f"tensor {raw.name!r}: {raw.scale.size} scales along quantized dimension "
                                      f"{axis} of shape {raw.shape}")
            if axis_map is not None:
                axis = axis_map[axis]
        zero_point = raw.zero_point
        if zero_point.size not in (1, raw.scale.size):
            raise self._error(op, f"tensor {raw.name!r}: {zero_point.size} zero points for "
                                  f"{raw.scale.size} scales")
        try:
            return QuantParams(scale=raw.scale if per_channel else raw.scale.reshape(()),
                               zero_point=zero_point if per_channel else zero_point.reshape(-1)[:1].reshape(()),
                               axis=axis)
        except ValueError as exc:
            raise self._error(op, f"tensor {raw.name!r}: {exc}") from None

    def _constant(self, raw: _RawTensor, op: _RawOp | None) -> np.ndarray | None:
        if raw.data is None:
            return None
        if raw.sparse:
            raise self._error(op, f"tensor {raw.name!r} is stored sparse, which hwsim does not support")
        dtype = self._dtype(raw, op)
        count = int(np.prod(raw.shape, dtype=np.int64))
        if len(raw.data) != count * dtype.itemsize:
            raise self._error(op, f"constant tensor {raw.name!r} holds {len(raw.data)} bytes, its shape "
                                  f"{raw.shape} x {dtype} needs {count * dtype.itemsize}")
        return np.frombuffer(raw.data, dtype=dtype).reshape(raw.shape).copy()

    def _shape(self, raw: _RawTensor) -> tuple:
        """The static shape, with None where shape_signature marks a dynamic dimension (the batch)."""
        if raw.signature is None or len(raw.signature) != len(raw.shape):
            return raw.shape
        return tuple(None if s < 0 else d for d, s in zip(raw.shape, raw.signature))

    def _tensor(self, index: int, op: _RawOp | None = None) -> str:
        """Register TFLite tensor ``index`` in the IR (as is) and return its IR name."""
        name = self.names[index]
        if name not in self.tensors:
            raw = self.raw[index]
            self.tensors[name] = Tensor(name=name, shape=self._shape(raw), dtype=self._dtype(raw, op),
                                        quant=self._quant(raw, op), data=self._constant(raw, op))
        return name

    def _new_tensor(self, name: str, shape, dtype, quant=None, data=None) -> str:
        while name in self.tensors or name in self._taken:
            name += "'"
        self._taken.add(name)
        self.tensors[name] = Tensor(name=name, shape=tuple(shape), dtype=np.dtype(dtype), quant=quant, data=data)
        return name

    def _emit(self, op: _RawOp, ir_op: str, inputs, outputs, name_suffix: str = "", **attrs) -> None:
        """Append an IR node for TFLite operator ``op`` (helper nodes get a ``name_suffix``)."""
        self.nodes.append(Node(op=ir_op, inputs=list(inputs), outputs=list(outputs), attrs=attrs,
                               name=self._node_name(op) + name_suffix, source_op=op.opcode))

    # -- helpers shared by ops -----------------------------------------------------------------------------

    def _inputs(self, op: _RawOp, count: int, optional: int = 0) -> list:
        """The op's first ``count`` inputs (the last ``optional`` of them may be omitted: -1)."""
        if not count - optional <= len(op.inputs):
            raise self._error(op, f"expected {count} inputs, the model gives {len(op.inputs)}")
        padded = op.inputs[:count] + [-1] * (count - len(op.inputs[:count]))
        for i, v in enumerate(padded[:count - optional]):
            if v < 0:
                raise self._error(op, f"input {i} is missing")
        return padded

    def _output(self, op: _RawOp) -> int:
        if len(op.outputs) != 1 or op.outputs[0] < 0:
            raise self._error(op, f"expected 1 output, the model gives {len(op.outputs)}")
        return op.outputs[0]

    def _options(self, op: _RawOp) -> dict:
        if op.options is None:
            if op.opcode in _OPTIONS_REQUIRED:
                raise self._error(op, "builtin options are missing")
            return {}
        return op.options

    def _activation(self, op: _RawOp, options: dict) -> dict:
        code = options.get("FusedActivationFunction", 0)
        if code not in _ACTIVATIONS:
            name = _ACTIVATION_NAMES.get(code, str(code))
            raise self._error(op, f"fused activation {name} is not supported (supported: "
                                  f"{', '.join(n for n, _ in _ACTIVATIONS.values())})")
        return {"activation": _ACTIVATIONS[code][1]}

    def _check_not_hybrid(self, op: _RawOp, x: _RawTensor, w: _RawTensor) -> None:
        if x.type_code == 0 and w.type_code != 0:
            raise self._error(op, "hybrid (dynamic-range) quantisation -- float input, integer weights -- "
                                  "is not supported; convert with full-integer quantisation")

    def _constant_input(self, op: _RawOp, index: int, what: str) -> np.ndarray:
        value = self._constant(self.raw[index], op)
        if value is None:
            raise self._error(op, f"{what} (tensor {self.raw[index].name!r}) must be a constant")
        return value

    def _spatial(self, op: _RawOp, x: _RawTensor, y: _RawTensor, kernel, options, dilation=(1, 1)):
        """Explicit (top, left, bottom, right) padding for SAME / VALID, checked against the output shape."""
        if len(x.shape) != 4 or len(y.shape) != 4:
            raise self._error(op, f"expected rank-4 NHWC input and output, got {x.shape} and {y.shape}")
        stride = (options["StrideH"], options["StrideW"])
        if min(stride) < 1 or min(dilation) < 1 or min(kernel) < 1:
            raise self._error(op, f"stride {stride}, dilation {dilation} and kernel {kernel} must be >= 1")
        pads, out = [], []
        for axis in (0, 1):
            if options["Padding"] == _SAME:
                before, after, size = _same_padding(x.shape[1 + axis], kernel[axis], stride[axis], dilation[axis])
            elif options["Padding"] == _VALID:
                before, after = 0, 0
                size = _valid_out(x.shape[1 + axis], kernel[axis], stride[axis], dilation[axis])
            else:
                raise self._error(op, f"unknown padding type {options['Padding']}")
            pads.append((before, after))
            out.append(size)
        if tuple(out) != tuple(y.shape[1:3]):
            raise self._error(op, f"output spatial size {y.shape[1:3]} does not match {tuple(out)} computed "
                                  f"from input {x.shape[1:3]}, kernel {kernel}, stride {stride}")
        return {"stride": stride, "padding": (pads[0][0], pads[1][0], pads[0][1], pads[1][1])}

    # -- per-op conversion ---------------------------------------------------------------------------------

    def convert(self) -> Graph:
        for op in self.ops:
            if op.opcode not in SUPPORTED_OPS:
                raise self._error(op, f"op {op.opcode} is not supported; supported TFLite ops: "
                                      f"{', '.join(SUPPORTED_OPS)}")
            try:
                getattr(self, "_op_" + op.opcode.lower())(op)
            except ModelError:
                raise
            except (IndexError, KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
                # Decodable but inconsistent (a damaged or hand-made file): still a clear error, never a crash.
                raise self._error(op, f"malformed operator ({type(exc).__name__}: {exc})") from None
        inputs = [self._tensor(i) for i in self.graph_inputs]
        outputs = [self._tensor(i) for i in self.graph_outputs]
        used = set(inputs) | set(outputs) | {n for node in self.nodes for n in node.inputs + node.outputs}
        tensors = {name: t for name, t in self.tensors.items() if name in used}
        return Graph(tensors=tensors, nodes=self.nodes, inputs=inputs, outputs=outputs, model_layout="NHWC",
                     source="tflite", kind="tflite", path=str(self.path))

    def _op_conv_2d(self, op: _RawOp) -> None:
        xi, wi, bi = self._inputs(op, 3, optional=1)
        yi = self._output(op)
        options = self._options(op)
        x, w, y = self.raw[xi], self.raw[wi], self.raw[yi]
        self._check_not_hybrid(op, x, w)
        if len(w.shape) != 4:
            raise self._error(op, f"filter {w.name!r} must be [O, KH, KW, I], got shape {w.shape}")
        in_channels, filter_in = x.shape[3] if len(x.shape) == 4 else 0, w.shape[3]
        if filter_in < 1 or in_channels % filter_in:
            raise self._error(op, f"input channels {in_channels} are not a multiple of filter depth {filter_in}")
        dilation = (options["DilationHFactor"], options["DilationWFactor"])
        attrs = self._spatial(op, x, y, (w.shape[1], w.shape[2]), options, dilation)
        inputs = [self._tensor(xi, op), self._tensor(wi, op), self._tensor(bi, op) if bi >= 0 else ""]
        self._emit(op, "conv2d", inputs, [self._tensor(yi, op)], **attrs, dilation=dilation,
                   groups=in_channels // filter_in, **self._activation(op, options))

    def _op_depthwise_conv_2d(self, op: _RawOp) -> None:
        xi, wi, bi = self._inputs(op, 3, optional=1)
        yi = self._output(op)
        options = self._options(op)
        x, w, y = self.raw[xi], self.raw[wi], self.raw[yi]
        self._check_not_hybrid(op, x, w)
        if len(w.shape) != 4 or w.shape[0] != 1 or len(x.shape) != 4:
            raise self._error(op, f"filter {w.name!r} must be [1, KH, KW, C*M] and the input NHWC, "
                                  f"got {w.shape} and {x.shape}")
        channels, out_channels = x.shape[3], w.shape[3]
        if channels < 1 or out_channels % channels:
            raise self._error(op, f"filter channels {out_channels} are not a multiple of input channels {channels}")
        dilation = (options["DilationHFactor"], options["DilationWFactor"])
        attrs = self._spatial(op, x, y, (w.shape[1], w.shape[2]), options, dilation)
        # [1, KH, KW, C*M] -> [C*M, KH, KW, 1]: output channel o = c*M + m reads input channel c = o // M,
        # which is exactly a grouped convolution with groups = C.
        x_name = self._tensor(xi, op)
        data = self._constant(w, op)
        if data is None:
            raise self._error(op, f"filter {w.name!r} must be a constant")
        weights = self._new_tensor(self.names[wi] + "/ohwi", (out_channels, w.shape[1], w.shape[2], 1),
                                   data.dtype, quant=self._quant(w, op, axis_map={0: 3, 1: 1, 2: 2, 3: 0}),
                                   data=np.ascontiguousarray(data.transpose(3, 1, 2, 0)))
        inputs = [x_name, weights, self._tensor(bi, op) if bi >= 0 else ""]
        self._emit(op, "conv2d", inputs, [self._tensor(yi, op)], **attrs, dilation=dilation, groups=channels,
                   **self._activation(op, options))

    def _op_fully_connected(self, op: _RawOp) -> None:
        xi, wi, bi = self._inputs(op, 3, optional=1)
        yi = self._output(op)
        options = self._options(op)
        x, w, y = self.raw[xi], self.raw[wi], self.raw[yi]
        if options.get("WeightsFormat", 0) != 0:
            raise self._error(op, "shuffled weights (weights_format != DEFAULT) are not supported")
        if len(w.shape) != 2:
            raise self._error(op, f"weights {w.name!r} must be [O, K], got shape {w.shape}")
        self._check_not_hybrid(op, x, w)
        out_features, depth = w.shape
        size = int(np.prod(x.shape, dtype=np.int64))
        if depth < 1 or size % depth:
            raise self._error(op, f"input shape {x.shape} does not flatten to rows of {depth}")
        x_name = self._tensor(xi, op)
        rows = size // depth
        if tuple(x.shape) != (rows, depth):            # TFLite flattens the input to [size / K, K]
            flat = self._new_tensor(f"{x_name}/flattened", (rows, depth), self.tensors[x_name].dtype,
                                    quant=self.tensors[x_name].quant)
            self._emit(op, "reshape", [x_name], [flat], name_suffix="/flatten", shape=(rows, depth))
            x_name = flat
        y_name = self._tensor(yi, op)
        out_name = y_name
        if tuple(y.shape) != (rows, out_features):     # keep_num_dims: [.., O] instead of [rows, O]
            if int(np.prod(y.shape, dtype=np.int64)) != rows * out_features:
                raise self._error(op, f"output shape {y.shape} does not hold {rows} x {out_features} values")
            out_name = self._new_tensor(f"{y_name}/2d", (rows, out_features), self.tensors[y_name].dtype,
                                        quant=self.tensors[y_name].quant)
        inputs = [x_name, self._tensor(wi, op), self._tensor(bi, op) if bi >= 0 else ""]
        self._emit(op, "fully_connected", inputs, [out_name], **self._activation(op, options))
        if out_name != y_name:
            self._emit(op, "reshape", [out_name], [y_name], name_suffix="/keep_num_dims", shape=tuple(y.shape))

    def _binary(self, op: _RawOp, ir_op: str) -> None:
        ai, bi = self._inputs(op, 2)
        yi = self._output(op)
        options = self._options(op)
        attrs = self._activation(op, options)
        if "PotScaleInt16" in options and self.raw[ai].type_code == 7:   # int16 ADD/SUB pick their path by it
            attrs["pot_scale_int16"] = bool(options["PotScaleInt16"])
        self._emit(op, ir_op, [self._tensor(ai, op), self._tensor(bi, op)], [self._tensor(yi, op)], **attrs)

    def _op_add(self, op: _RawOp) -> None:
        self._binary(op, "add")

    def _op_sub(self, op: _RawOp) -> None:
        self._binary(op, "sub")

    def _op_mul(self, op: _RawOp) -> None:
        self._binary(op, "mul")

    def _op_mean(self, op: _RawOp) -> None:
        xi, ai = self._inputs(op, 2)
        yi = self._output(op)
        rank = len(self.raw[xi].shape)
        axes = [int(a) for a in self._constant_input(op, ai, "the axes").reshape(-1)]
        if any(not -rank <= a < rank for a in axes):
            raise self._error(op, f"axes {axes} out of range for rank {rank}")
        normalized = sorted({a % rank for a in axes})
        self._emit(op, "mean", [self._tensor(xi, op)], [self._tensor(yi, op)], axes=tuple(normalized),
                   keepdims=bool(self._options(op).get("KeepDims", False)))

    def _pool(self, op: _RawOp, ir_op: str) -> None:
        (xi,) = self._inputs(op, 1)
        yi = self._output(op)
        options = self._options(op)
        kernel = (options["FilterHeight"], options["FilterWidth"])
        attrs = self._spatial(op, self.raw[xi], self.raw[yi], kernel, options)
        # TFLite averages over the window's in-bounds elements only (padding is not counted).
        self._emit(op, ir_op, [self._tensor(xi, op)], [self._tensor(yi, op)], kernel=kernel, **attrs,
                   count_include_pad=False, **self._activation(op, options))

    def _op_average_pool_2d(self, op: _RawOp) -> None:
        self._pool(op, "avg_pool2d")

    def _op_max_pool_2d(self, op: _RawOp) -> None:
        self._pool(op, "max_pool2d")

    def _op_reshape(self, op: _RawOp) -> None:
        xi = self._inputs(op, 1)[0]                    # the optional shape input is resolved already
        yi = self._output(op)
        x, y = self.raw[xi], self.raw[yi]
        if int(np.prod(x.shape, dtype=np.int64)) != int(np.prod(y.shape, dtype=np.int64)):
            raise self._error(op, f"cannot reshape {x.shape} to {y.shape}")
        self._emit(op, "reshape", [self._tensor(xi, op)], [self._tensor(yi, op)], shape=tuple(y.shape))

    def _op_softmax(self, op: _RawOp) -> None:
        (xi,) = self._inputs(op, 1)
        yi = self._output(op)
        rank = len(self.raw[xi].shape)
        self._emit(op, "softmax", [self._tensor(xi, op)], [self._tensor(yi, op)], axis=rank - 1,
                   beta=float(self._options(op).get("Beta", 1.0)))

    def _unary(self, op: _RawOp, ir_op: str) -> None:
        (xi,) = self._inputs(op, 1)
        self._emit(op, ir_op, [self._tensor(xi, op)], [self._tensor(self._output(op), op)])

    def _op_logistic(self, op: _RawOp) -> None:
        self._unary(op, "logistic")

    def _op_tanh(self, op: _RawOp) -> None:
        self._unary(op, "tanh")

    def _op_hard_swish(self, op: _RawOp) -> None:
        self._unary(op, "hard_swish")

    def _op_concatenation(self, op: _RawOp) -> None:
        if not op.inputs or any(i < 0 for i in op.inputs):
            raise self._error(op, "needs at least one input and no omitted inputs")
        yi = self._output(op)
        options = self._options(op)
        rank = len(self.raw[yi].shape)
        axis = int(options.get("Axis", 0))
        if not -rank <= axis < rank:
            raise self._error(op, f"axis {axis} out of range for rank {rank}")
        if self._activation(op, options)["activation"] is not None:
            raise self._error(op, "a fused activation on CONCATENATION is not supported")
        self._emit(op, "concat", [self._tensor(i, op) for i in op.inputs], [self._tensor(yi, op)], axis=axis % rank)

    def _pad(self, op: _RawOp, constant: float) -> None:
        xi, pi = op.inputs[0], op.inputs[1]
        yi = self._output(op)
        rank = len(self.raw[xi].shape)
        paddings = self._constant_input(op, pi, "the paddings")
        if paddings.shape != (rank, 2) or np.any(paddings < 0):
            raise self._error(op, f"paddings must be non-negative [{rank}, 2], got {paddings.tolist()}")
        pads = tuple((int(a), int(b)) for a, b in paddings)
        self._emit(op, "pad", [self._tensor(xi, op)], [self._tensor(yi, op)], pads=pads, constant=constant)

    def _op_pad(self, op: _RawOp) -> None:
        self._inputs(op, 2)
        self._pad(op, 0.0)                             # TFLite pads with the zero point: real 0

    def _op_padv2(self, op: _RawOp) -> None:
        _, _, ci = self._inputs(op, 3, optional=1)
        constant = 0.0
        if ci >= 0:
            raw = self.raw[ci]
            value = self._constant_input(op, ci, "the pad value").reshape(-1)
            if value.size != 1:
                raise self._error(op, "the pad value must be a scalar")
            quant = self._quant(raw, op)
            constant = float(value[0]) if quant is None else \
                float(quant.scale) * float(int(value[0]) - int(quant.zero_point))
        self._pad(op, constant)

    def _op_quantize(self, op: _RawOp) -> None:
        (xi,) = self._inputs(op, 1)
        yi = self._output(op)
        x_dtype = self._dtype(self.raw[xi], op)
        ir_op = "requantize" if np.issubdtype(x_dtype, np.integer) else "quantize"
        if self.raw[yi].scale is None:
            raise self._error(op, f"output {self.raw[yi].name!r} has no quantisation parameters")
        self._emit(op, ir_op, [self._tensor(xi, op)], [self._tensor(yi, op)])

    def _op_dequantize(self, op: _RawOp) -> None:
        (xi,) = self._inputs(op, 1)
        x = self.raw[xi]
        if not np.issubdtype(self._dtype(x, op), np.integer) or x.scale is None:
            raise self._error(op, f"only integer inputs with quantisation parameters are supported, "
                                  f"{x.name!r} is {_TYPE_NAMES.get(x.type_code, self._dtype(x, op))}")
        self._unary(op, "dequantize")


# --------------------------------------------------------------------------------------------------------

def load_tflite(path) -> Graph:
    """Read a ``.tflite`` model (int8, 16x8 or float) into hwsim's graph IR.

    Parameters
    ----------
    path : str or os.PathLike
        The model file.

    Returns
    -------
    Graph
        NHWC, ``source="tflite"``, ``kind="tflite"``; tensor names are the model's (made unique where the
        file repeats or omits them), node names are the name of each op's first output tensor.

    Raises
    ------
    ModelError
        The file cannot be read, is not a TFLite flatbuffer, is corrupt or truncated, or uses an op or
        option outside :data:`SUPPORTED_OPS` (the message names the op, its index and output, and the
        supported list).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file ({exc.strerror or exc})") from None
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TFLite model (no 'TFL3' flatbuffer identifier; "
                         f"{len(data)} bytes)")
    try:
        raw = _decode(data)
    except Exception as exc:  # a damaged flatbuffer surfaces as whatever the bad offset triggers
        raise ModelError(f"{path}: corrupt or truncated TFLite file ({type(exc).__name__}: {exc})") from None
    return _Converter(path, *raw).convert()

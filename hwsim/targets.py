"""Target profiles: how one chip computes, stage by stage.

A target profile is a YAML file.  hwsim never guesses: every stage that can
change a result (operand ranges, product grouping, accumulator widths and
overflow, requantisation scheme and rounding, output overflow, float -> int
rounding) is stated in the profile, or inherited from the profile it names as
its ``base``.  The built-in profiles live in ``targets/*.yaml`` (shipped as the
package ``hwsim.targets_data``).

Schema, version 1
-----------------
::

    schema_version: 1                  # required in every file
    name: my-npu                       # required in every file: [a-z0-9][a-z0-9._-]*
    summary: one line                  # required in every file
    reference:                         # optional, never inherited: what it is bit-exact to
      engine: ai-edge-litert, BUILTIN_REF resolver    # required
      version: "2.3.0"                                # optional
      notes: SEMANTICS.md 10.2                        # optional
    base: tflite-reference             # optional: a built-in name, or a path relative to this file
    operands:                          # input, weights, bias, output; each:
      input: {bits: 8, signed: true, symmetric: false, range: full,
              granularity: per-tensor, scale: any}
        # bits        input/weights 2..16, output 2..32, bias 8..64
        # range       full | restricted (restricted drops the most negative value: [-127, 127])
        # granularity per-tensor | per-channel | per-group:N
        # scale       any | power_of_two
      weights: {..., lookup: {index_bits: 4}}
        # lookup      optional, weights only: a dequantise-to-int stage that turns
        #             index_bits-wide indices into weight codes through a table
        #             (non-uniform weights: hwsim.quant.nonuniform); absent = no lookup stage
    mac:
      group: 1                         # 1, 2 or 4 products summed exactly as a group
      group_accumulator: {bits: 64, overflow: wrap}    # optional; default {64, wrap} = exact
      accumulator: {bits: 32, overflow: wrap}          # bits 8..64; wrap | saturate
      input_zero_point: in_mac         # in_mac | folded_into_bias
      bias: last                       # first (preloaded) | last (added after the reduction)
    requantize:
      scheme: double_rounding          # a hwsim.types.RequantScheme value
      rounding: half_away              # a hwsim.types.Rounding value (see below)
      tail: {multiple: 8, scheme: double_rounding, rounding: half_away}
        # optional (null = none): channels c >= multiple * floor(C / multiple) use this
        # scheme instead (LiteRT's optimised depthwise kernels, SEMANTICS.md 10.2/10.3)
    output: {overflow: saturate}       # wrap | saturate, to operands.output
    quantize: {rounding: half_away}    # float -> int rounding of Quantize (TFLite half_away, ONNX half_even)
    calibration: {method: minmax}      # minmax | percentile | entropy | mse | aciq | histogram
    elementwise:                       # optional: the arithmetic of the non-GEMM integer ops (hwsim.sim)
      add: ort_fma_f32                 # add, sub: ort_fma_f32 | ort_neon_fixed | tflite_fixed_point
                                       #           | xnnpack_fixed_point
      mul: ort_f32                     # ort_f32 | tflite_fixed_point | xnnpack_f32
      mean: ort_f32                    # mean / global average pool: ort_f32 | tflite_fixed_point | xnnpack_f32
      avg_pool2d: ort_f32              # ort_f32 | tflite_rounded
      softmax: tflite_reference        # tflite_reference | tflite_lut_f32 | tflite_lut_u16
      logistic: ort_lut_f32            # logistic, tanh: tflite_reference | tflite_lut_f32 | tflite_fixed_point
                                       #                 | ort_lut_f32
      hard_swish: tflite_reference     # tflite_reference
      leaky_relu: ort_lut_f32          # ort_lut_f32 | tflite_reference
      concat: ort_lut_f32              # ort_lut_f32 | tflite_reference (requantising inputs)
      engine: litert_ref               # litert_ref | litert_opt | tflm: variant for arith_tflite functions
        # every key optional; an op whose key is missing is refused when simulated
    ops:                               # optional per-op overrides of operands / mac / requantize
      fully_connected: {requantize: {scheme: float64_round, rounding: half_away}}
      int16_activations: {...}         # the 16x8 variant, applied on top of the op's own override
      # an op may also carry its own 16x8 override, applied last (LiteRT's 16x8 FULLY_CONNECTED):
      # fully_connected: {requantize: {...}, int16_activations: {requantize: {...}}}

Op keys are ``conv2d``, ``depthwise_conv2d``, ``fully_connected``, ``matmul``.
``profile.for_op(op, activation_bits)`` merges, key by key: the top-level
``operands``/``mac``/``requantize``, then ``ops.<op>``, then (for 16-bit
activations only) ``ops.int16_activations`` and then ``ops.<op>.int16_activations``
(if given), which must make the input 16 bits wide.  Every combination is built
and checked when the profile is loaded.

Inheritance: the file named by ``base`` is resolved first (recursively; a
cycle is an error); then this file's sections are deep-merged over it (a
mapping merges key by key, anything else replaces).  ``schema_version``,
``name``, ``summary`` and ``reference`` are never inherited: a profile that
changes its base no longer computes what the base's reference computes.

Rounding per scheme: the fixed-point schemes have one rounding that is part of
what they reproduce, and the profile must state it (``double_rounding``:
``half_away`` -- the final RoundingDivideByPOT; ``single_rounding``,
``srdhm_half_up``, ``neon_single``, ``int64_reduced``: ``half_up``).
``float32``, ``float64_round`` and ``shift_only`` take any rounding.
``shift_only`` needs power-of-two scales on input, weights and output.

Every error is a :class:`TargetError` that names the file, the line, the key
path and what was expected.
"""

from __future__ import annotations

import enum
import functools
import importlib.resources
import json
import os
import pathlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import yaml

from hwsim.types import AccumSpec, IntFormat, Overflow, RequantScheme, RequantSpec, Rounding, ZeroPointPlacement

__all__ = [
    "SCHEMA_VERSION",
    "ELEMENTWISE_SCHEMES",
    "ELEMENTWISE_ENGINES",
    "OP_TYPES",
    "INT16_VARIANT",
    "TargetError",
    "Granularity",
    "ValueRange",
    "ScaleConstraint",
    "CalibrationMethod",
    "OperandFormat",
    "Reference",
    "RequantTail",
    "OpSemantics",
    "TargetProfile",
    "load_target",
    "list_targets",
]

SCHEMA_VERSION = 1
OP_TYPES = ("conv2d", "depthwise_conv2d", "fully_connected", "matmul")
INT16_VARIANT = "int16_activations"
_NOT_INHERITED = ("schema_version", "name", "summary", "reference", "base")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class TargetError(ValueError):
    """A target profile that cannot be read: names file, line, key path and what was expected."""


# --------------------------------------------------------------------------------------------------
# Typed results
# --------------------------------------------------------------------------------------------------


class Granularity(str, enum.Enum):
    """How many scales (and zero points) a tensor has."""

    PER_TENSOR = "per-tensor"    #: one for the whole tensor
    PER_CHANNEL = "per-channel"  #: one per output channel (weights) or channel (activations)
    PER_GROUP = "per-group"      #: one per block of ``group_size`` consecutive elements along k


class ValueRange(str, enum.Enum):
    """Which integer codes a signed operand may use."""

    FULL = "full"              #: [-2**(bits-1), 2**(bits-1) - 1]
    RESTRICTED = "restricted"  #: [-(2**(bits-1) - 1), 2**(bits-1) - 1]: TFLite weights, no -128


class ScaleConstraint(str, enum.Enum):
    """What values a quantisation scale may take."""

    ANY = "any"                    #: any positive float
    POWER_OF_TWO = "power_of_two"  #: 2**e, so requantisation can be a shift


class CalibrationMethod(str, enum.Enum):
    """How activation ranges are chosen from calibration data (SEMANTICS.md section 4)."""

    MINMAX = "minmax"
    PERCENTILE = "percentile"
    ENTROPY = "entropy"
    MSE = "mse"
    ACIQ = "aciq"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class OperandFormat:
    """The integer format of one operand (input, weights, bias or output) and how it is quantized."""

    bits: int
    signed: bool
    symmetric: bool
    value_range: ValueRange
    granularity: Granularity
    group_size: int | None  #: elements per scale for ``per-group``, else None
    scale: ScaleConstraint
    #: weights only: the index width of the target's lookup (dequantise-to-int) stage; None = no lookup stage
    lookup_index_bits: int | None = None

    @property
    def int_format(self) -> IntFormat:
        """The storage format (``bits``, ``signed``), ignoring the restricted range."""
        return IntFormat(self.bits, self.signed)

    @property
    def min(self) -> int:
        """Smallest code the operand may hold (restricted range drops the most negative value)."""
        lo = self.int_format.min
        return lo + 1 if self.value_range is ValueRange.RESTRICTED else lo

    @property
    def max(self) -> int:
        return self.int_format.max


@dataclass(frozen=True)
class Reference:
    """What a profile claims to be bit-exact to."""

    engine: str
    version: str | None = None
    notes: str | None = None

    def __str__(self) -> str:
        return self.engine + (f" {self.version}" if self.version else "")


@dataclass(frozen=True)
class RequantTail:
    """Channels from ``multiple * floor(C / multiple)`` on requantise with ``requant`` instead.

    LiteRT's optimised NEON depthwise kernels handle channels in blocks of 8 and
    leave the remainder to a scalar loop with a different rounding.
    """

    multiple: int
    requant: RequantSpec

    def first_channel(self, n_channels: int) -> int:
        """Index of the first channel that the tail scheme handles (== n_channels if none)."""
        return self.multiple * (n_channels // self.multiple)


@dataclass(frozen=True)
class OpSemantics:
    """Everything that decides the integer result of one op type on a target."""

    op: str
    activation_bits: int
    input: OperandFormat
    weights: OperandFormat
    bias: OperandFormat
    output: OperandFormat
    accum: AccumSpec
    requant: RequantSpec
    requant_tail: RequantTail | None
    output_overflow: Overflow
    quantize_rounding: Rounding

    def requant_for_channel(self, channel: int, n_channels: int) -> RequantSpec:
        """The requantisation of output channel ``channel`` out of ``n_channels``."""
        if not 0 <= channel < n_channels:
            raise ValueError(f"channel must be in [0, {n_channels}), got {channel}")
        if self.requant_tail is not None and channel >= self.requant_tail.first_channel(n_channels):
            return self.requant_tail.requant
        return self.requant

    def describe(self) -> dict:
        """These semantics as plain data, in the profile's own vocabulary (for ``hwsim targets show --op``)."""
        def operand(f: OperandFormat) -> dict:
            gran = f.granularity.value + (f":{f.group_size}" if f.group_size is not None else "")
            out = {"bits": f.bits, "signed": f.signed, "symmetric": f.symmetric, "range": f.value_range.value,
                   "granularity": gran, "scale": f.scale.value}
            if f.lookup_index_bits is not None:
                out["lookup"] = {"index_bits": f.lookup_index_bits}
            return out

        a = self.accum
        requantize = {"scheme": self.requant.scheme.value, "rounding": self.requant.rounding.value}
        if self.requant_tail is not None:
            requantize["tail"] = {"multiple": self.requant_tail.multiple,
                                  "scheme": self.requant_tail.requant.scheme.value,
                                  "rounding": self.requant_tail.requant.rounding.value}
        return {
            "op": self.op,
            "activation_bits": self.activation_bits,
            "operands": {role: operand(getattr(self, role)) for role in ("input", "weights", "bias", "output")},
            "mac": {
                "group": a.group,
                "group_accumulator": {"bits": a.group_bits, "overflow": a.group_overflow.value},
                "accumulator": {"bits": a.acc_bits, "overflow": a.acc_overflow.value},
                "input_zero_point": a.input_zero_point.value,
                "bias": "first" if a.bias_first else "last",
            },
            "requantize": requantize,
            "output": {"overflow": self.output_overflow.value},
            "quantize": {"rounding": self.quantize_rounding.value},
        }


# --------------------------------------------------------------------------------------------------
# Schema description (one loader per schema_version; there is one version so far)
# --------------------------------------------------------------------------------------------------

_Locate = Callable[[tuple], str]


class _Spec:
    expected: str = ""

    def check(self, value: Any, path: tuple, where: _Locate, complete: bool) -> None:
        raise NotImplementedError


def _fail(where: _Locate, path: tuple, problem: str) -> TargetError:
    """``where(path)`` gives "file:line: key.path" of the offending entry."""
    return TargetError(f"{where(path)}: {problem}")


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path) if path else "(document)"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


class _Str(_Spec):
    expected = "a non-empty string"

    def check(self, value, path, where, complete):
        if not isinstance(value, str) or not value.strip():
            raise _fail(where, path, f"got {_type_name(value)} {value!r}; expected a non-empty string")


class _Int(_Spec):
    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self.expected = f"an integer in [{lo}, {hi}]"

    def check(self, value, path, where, complete):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, path, f"got {_type_name(value)} {value!r}; expected {self.expected}")
        if not self.lo <= value <= self.hi:
            raise _fail(where, path, f"{value} is out of range; expected {self.expected}")


class _Choice(_Spec):
    """One of a fixed set of values (strings or ints)."""

    def __init__(self, values) -> None:
        self.values = tuple(values)
        self.expected = "one of: " + ", ".join(str(v) for v in self.values)

    def check(self, value, path, where, complete):
        if isinstance(value, bool) or value not in self.values:
            raise _fail(where, path, f"unknown value {value!r}; expected {self.expected}")


class _Bool(_Spec):
    expected = "true or false"

    def check(self, value, path, where, complete):
        if not isinstance(value, bool):
            raise _fail(where, path, f"got {_type_name(value)} {value!r}; expected true or false")


_GRANULARITY_RE = re.compile(r"^per-group:([0-9]+)$")


class _GranularitySpec(_Spec):
    expected = "per-tensor, per-channel or per-group:N with N a positive integer"

    def check(self, value, path, where, complete):
        if value in ("per-tensor", "per-channel"):
            return
        m = _GRANULARITY_RE.match(value) if isinstance(value, str) else None
        if m is None or int(m.group(1)) < 1:
            raise _fail(where, path, f"unknown value {value!r}; expected {self.expected}")


class _Map(_Spec):
    def __init__(self, fields: Mapping[str, _Spec], required=(), nullable: bool = False) -> None:
        self.fields = dict(fields)
        self.required = tuple(required)
        self.nullable = nullable
        self.expected = "a mapping with keys " + ", ".join(self.fields)

    def check(self, value, path, where, complete):
        if value is None and self.nullable:
            return
        if not isinstance(value, dict):
            raise _fail(where, path, f"got {_type_name(value)} {value!r}; expected {self.expected}")
        for key, item in value.items():
            if key not in self.fields:
                allowed = ", ".join(sorted(self.fields))
                raise _fail(where, path + (key,), f"unknown key; expected one of: {allowed}")
            self.fields[key].check(item, path + (key,), where, complete)
        if complete:
            for key in self.required:
                if key not in value:
                    raise _fail(where, path + (key,),
                                f"missing; expected {self.fields[key].expected}")


_OVERFLOW = _Choice(v.value for v in Overflow)
_SCHEME = _Choice(v.value for v in RequantScheme)
_ROUNDING = _Choice(v.value for v in Rounding)


def _req(full: bool, *keys: str) -> tuple:
    """Required keys of a full section; an override (``full=False``) requires nothing."""
    return keys if full else ()


def _operand(bits_lo: int, bits_hi: int, full: bool, lookup: bool = False) -> _Map:
    fields = {
        "bits": _Int(bits_lo, bits_hi),
        "signed": _Bool(),
        "symmetric": _Bool(),
        "range": _Choice(v.value for v in ValueRange),
        "granularity": _GranularitySpec(),
        "scale": _Choice(v.value for v in ScaleConstraint),
    }
    if lookup:  # weights only: an optional table stage from indices to codes (non-uniform weights)
        fields["lookup"] = _Map({"index_bits": _Int(1, 16)}, required=("index_bits",), nullable=True)
    return _Map(fields, required=_req(full, "bits", "signed", "symmetric", "range", "granularity", "scale"))


def _operands(full: bool) -> _Map:
    return _Map(
        {"input": _operand(2, 16, full), "weights": _operand(2, 16, full, lookup=True), "bias": _operand(8, 64, full),
         "output": _operand(2, 32, full)},
        required=_req(full, "input", "weights", "bias", "output"),
    )


def _mac(full: bool) -> _Map:
    return _Map(
        {
            "group": _Choice((1, 2, 4)),
            "group_accumulator": _Map({"bits": _Int(2, 64), "overflow": _OVERFLOW},
                                      required=_req(full, "bits", "overflow")),
            "accumulator": _Map({"bits": _Int(8, 64), "overflow": _OVERFLOW}, required=_req(full, "bits", "overflow")),
            "input_zero_point": _Choice(v.value for v in ZeroPointPlacement),
            "bias": _Choice(("first", "last")),
        },
        required=_req(full, "group", "accumulator", "input_zero_point", "bias"),
    )


def _requantize(full: bool) -> _Map:
    tail = _Map({"multiple": _Int(2, 1024), "scheme": _SCHEME, "rounding": _ROUNDING},
                required=_req(full, "multiple", "scheme", "rounding"), nullable=True)
    return _Map({"scheme": _SCHEME, "rounding": _ROUNDING, "tail": tail}, required=_req(full, "scheme", "rounding"))


#: The arithmetic each elementwise (non-GEMM) integer op may use; names shared with hwsim/sim/arith_*.py.
ELEMENTWISE_SCHEMES = {
    "add": ("ort_fma_f32", "ort_neon_fixed", "tflite_fixed_point", "xnnpack_fixed_point"),
    "sub": ("ort_fma_f32", "ort_neon_fixed", "tflite_fixed_point", "xnnpack_fixed_point"),
    "mul": ("ort_f32", "tflite_fixed_point", "xnnpack_f32"),
    "mean": ("ort_f32", "tflite_fixed_point", "xnnpack_f32"),
    "avg_pool2d": ("ort_f32", "tflite_rounded"),
    "softmax": ("tflite_reference", "tflite_lut_f32", "tflite_lut_u16"),
    "logistic": ("tflite_reference", "tflite_lut_f32", "tflite_fixed_point", "ort_lut_f32"),
    "tanh": ("tflite_reference", "tflite_lut_f32", "tflite_fixed_point", "ort_lut_f32"),
    "hard_swish": ("tflite_reference",),
    "leaky_relu": ("ort_lut_f32", "tflite_reference"),
    "concat": ("ort_lut_f32", "tflite_reference"),     # inputs whose quantisation differs from the output's
}
#: ``elementwise.engine``: the engine variant handed to scheme functions that take one (hwsim.sim.arith_tflite).
ELEMENTWISE_ENGINES = ("litert_ref", "litert_opt", "tflm")

_OPERANDS, _MAC, _REQUANTIZE = _operands(True), _mac(True), _requantize(True)
_OVERRIDE = _Map({"operands": _operands(False), "mac": _mac(False), "requantize": _requantize(False)})
#: ``ops.<op>``: an override, plus optionally that op's own 16x8 override (applied after ``ops.int16_activations``)
_OP_OVERRIDE = _Map({**_OVERRIDE.fields, INT16_VARIANT: _OVERRIDE})
_PROFILE = _Map(
    {
        "schema_version": _Choice((SCHEMA_VERSION,)),
        "name": _Str(),
        "summary": _Str(),
        "reference": _Map({"engine": _Str(), "version": _Str(), "notes": _Str()}, required=("engine",)),
        "base": _Str(),
        "operands": _OPERANDS,
        "mac": _MAC,
        "requantize": _REQUANTIZE,
        "output": _Map({"overflow": _OVERFLOW}, required=("overflow",)),
        "quantize": _Map({"rounding": _ROUNDING}, required=("rounding",)),
        "calibration": _Map({"method": _Choice(v.value for v in CalibrationMethod)}, required=("method",)),
        "ops": _Map({**{op: _OP_OVERRIDE for op in OP_TYPES}, INT16_VARIANT: _OVERRIDE}),
        "elementwise": _Map({**{op: _Choice(names) for op, names in ELEMENTWISE_SCHEMES.items()},
                             "engine": _Choice(ELEMENTWISE_ENGINES)}),
    },
    required=("schema_version", "name", "summary", "operands", "mac", "requantize", "output", "quantize",
              "calibration"),
)

#: The rounding each fixed-point scheme performs (its last stage); the profile must state it.
_SCHEME_ROUNDING = {
    RequantScheme.DOUBLE_ROUNDING: Rounding.HALF_AWAY,
    RequantScheme.SINGLE_ROUNDING: Rounding.HALF_UP,
    RequantScheme.SRDHM_HALF_UP: Rounding.HALF_UP,
    RequantScheme.NEON_SINGLE: Rounding.HALF_UP,
    RequantScheme.INT64_REDUCED: Rounding.HALF_UP,
}
_EXACT_GROUP = {"bits": 64, "overflow": "wrap"}


# --------------------------------------------------------------------------------------------------
# Reading one YAML file (with line numbers)
# --------------------------------------------------------------------------------------------------


@dataclass
class _Doc:
    label: str                       # what error messages call the file
    data: dict
    lines: dict                      # key path -> 1-based line of the key
    directory: pathlib.Path | None   # where relative bases are looked up

    def where(self, path: tuple) -> str:
        return f"{self.label}:{self._line(path)}"

    def _line(self, path: tuple) -> int:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1


def _parse(text: str, label: str, directory: pathlib.Path | None) -> _Doc:
    """safe_load ``text``, keeping the line of every key; duplicate and non-string keys are errors."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise TargetError(f"{label}:1: (document): the file is empty; expected a mapping (a target profile)")
        if not isinstance(node, yaml.MappingNode):
            raise TargetError(f"{label}:{node.start_mark.line + 1}: (document): got a "
                              f"{_node_kind(node)}; expected a mapping (a target profile)")
        _check_keys(node, (), label, set())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = "; ".join(p for p in (exc.context, exc.problem) if p)
        kind = "unsupported YAML" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise TargetError(f"{label}:{line}: {kind}: {problem}") from None
    except yaml.YAMLError as exc:  # e.g. a reader error (bad bytes): no mark
        raise TargetError(f"{label}:1: YAML error: {exc}") from None
    finally:
        loader.dispose()
    lines: dict = {}
    _record_lines(node, (), lines, set())
    return _Doc(label, data, lines, directory)


def _node_kind(node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return f"scalar {node.value!r}"


def _check_keys(node, path: tuple, label: str, visited: set) -> None:
    """Keys must be strings and unique.  Each collection node is visited once: aliases may
    share nodes (and even form cycles), which must neither recurse forever nor blow up."""
    if not isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) or id(node) in visited:
        return
    visited.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_keys(item, path + (i,), label, visited)
        return
    seen: dict = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        if not (isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:str"):
            shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a collection"
            raise TargetError(f"{label}:{line}: {_dotted(path)}: key {shown!r} is not a string; "
                              f"expected a key name")
        key = key_node.value
        if key in seen:
            raise TargetError(f"{label}:{line}: {_dotted(path + (key,))}: duplicate key "
                              f"(first on line {seen[key]}); expected each key once")
        seen[key] = line
        _check_keys(value_node, path + (key,), label, visited)


def _record_lines(node, path: tuple, out: dict, visited: set) -> None:
    """Line of every key; a node shared through an alias is walked once (messages about keys
    below its second use point at the nearest key above them)."""
    if isinstance(node, yaml.MappingNode) and id(node) not in visited:
        visited.add(id(node))
        for key_node, value_node in node.value:
            key = path + (key_node.value,)
            out.setdefault(key, key_node.start_mark.line + 1)
            _record_lines(value_node, key, out, visited)


# --------------------------------------------------------------------------------------------------
# Finding files
# --------------------------------------------------------------------------------------------------


def _builtin_dir():
    return importlib.resources.files("hwsim.targets_data")


def list_targets() -> list[str]:
    """Names of the built-in target profiles, sorted."""
    return sorted(p.name[: -len(".yaml")] for p in _builtin_dir().iterdir() if p.name.endswith(".yaml"))


def _is_path(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or "/" in name or os.sep in name


def _read_builtin(name: str, where: str | None) -> tuple[str, _Doc]:
    if name not in list_targets():
        msg = f"unknown built-in target {name!r}; expected one of: {', '.join(list_targets())} or a .yaml path"
        raise TargetError(f"{where}: base: {msg}" if where else msg)
    resource = _builtin_dir() / f"{name}.yaml"
    directory = pathlib.Path(str(resource)).parent if isinstance(resource, pathlib.Path) else None
    label = str(resource) if isinstance(resource, pathlib.Path) else f"{name}.yaml (built-in)"
    return f"builtin:{name}", _parse(resource.read_text(encoding="utf-8"), label, directory)


def _display(path: pathlib.Path) -> str:
    """A base file's name in messages: relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(pathlib.Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _read_path(path: pathlib.Path, where: str | None, label: str | None = None) -> tuple[str, _Doc]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"{path}: no such file; expected a target profile (.yaml) or a built-in name"
        raise TargetError(f"{where}: base: {msg}" if where else msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read ({exc}); expected a UTF-8 YAML file"
        raise TargetError(f"{where}: base: {msg}" if where else msg) from None
    return str(path.resolve()), _parse(text, label or str(path), path.resolve().parent)


# --------------------------------------------------------------------------------------------------
# Resolving bases
# --------------------------------------------------------------------------------------------------


@dataclass
class _Resolved:
    data: dict
    origin: dict = field(default_factory=dict)  # key path -> "file:line"
    chain: tuple = ()                           # labels of the files merged, base first


def _check_header(doc: _Doc) -> None:
    data = doc.data
    if "schema_version" not in data:
        raise TargetError(f"{doc.label}:1: schema_version: missing; expected schema_version: {SCHEMA_VERSION} "
                          f"in every target profile file")
    version = data["schema_version"]
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise TargetError(f"{doc.where(('schema_version',))}: schema_version: unsupported version {version!r}; "
                          f"this hwsim reads schema_version {SCHEMA_VERSION}")
    _PROFILE.check(data, (), lambda path: f"{doc.where(path)}: {_dotted(path)}", complete=False)
    for key in ("name", "summary"):
        if key not in data:
            raise TargetError(f"{doc.label}:1: {key}: missing; expected a non-empty string")
    if not _NAME_RE.match(data["name"]):
        raise TargetError(f"{doc.where(('name',))}: name: {data['name']!r} is not a valid name; "
                          f"expected lower-case letters, digits, '.', '_' or '-', starting with a letter or digit")


def _resolve(key: str, doc: _Doc, stack: tuple) -> _Resolved:
    _check_header(doc)
    stack = stack + ((key, doc.label),)
    own_origin = {path: f"{doc.label}:{line}" for path, line in doc.lines.items()}
    if "base" not in doc.data:
        return _Resolved(dict(doc.data), own_origin, (doc.label,))
    base_name = doc.data["base"]
    where = doc.where(("base",))
    if _is_path(base_name):
        base_path = pathlib.Path(base_name)
        if not base_path.is_absolute():
            if doc.directory is None:
                raise TargetError(f"{where}: base: {base_name!r}: a built-in profile can only name built-in bases")
            base_path = doc.directory / base_path
        base_key, base_doc = _read_path(base_path, where, _display(base_path))
    else:
        base_key, base_doc = _read_builtin(base_name, where)
    keys = [k for k, _ in stack]
    if base_key in keys:
        cycle = [label for _, label in stack[keys.index(base_key):]] + [base_doc.label]
        raise TargetError(f"{where}: base: cycle of bases: {' -> '.join(cycle)}; expected a chain that ends "
                          f"in a profile without base")
    base = _resolve(base_key, base_doc, stack)
    data = {k: v for k, v in base.data.items() if k not in _NOT_INHERITED}
    origin = {p: o for p, o in base.origin.items() if p[0] not in _NOT_INHERITED}
    _merge(data, origin, doc.data, own_origin, ())
    return _Resolved(data, origin, base.chain + (doc.label,))


def _merge(data: dict, origin: dict, over: dict, over_origin: dict, path: tuple) -> None:
    """Deep-merge ``over`` into ``data`` (mappings key by key, anything else replaces)."""
    for key, value in over.items():
        sub = path + (key,)
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = dict(data[key])
            origin[sub] = over_origin.get(sub, origin.get(sub))
            _merge(data[key], origin, value, over_origin, sub)
        else:
            data[key] = _copy(value)
            for p in [p for p in origin if p[: len(sub)] == sub]:
                del origin[p]
            origin.update({p: o for p, o in over_origin.items() if p[: len(sub)] == sub})


def _copy(value):
    return json.loads(json.dumps(value)) if isinstance(value, (dict, list)) else value


def _merged(sections: list[dict]) -> dict:
    out: dict = {}
    scratch: dict = {}
    for section in sections:
        _merge(out, scratch, section, {}, ())
    return out


# --------------------------------------------------------------------------------------------------
# Building the typed profile
# --------------------------------------------------------------------------------------------------


def _operand_format(d: dict) -> OperandFormat:
    gran = d["granularity"]
    group_size = None
    if gran.startswith("per-group:"):
        group_size = int(gran.split(":", 1)[1])
        gran = "per-group"
    return OperandFormat(
        bits=d["bits"], signed=d["signed"], symmetric=d["symmetric"], value_range=ValueRange(d["range"]),
        granularity=Granularity(gran), group_size=group_size, scale=ScaleConstraint(d["scale"]),
        lookup_index_bits=(d.get("lookup") or {}).get("index_bits"),
    )


def _accum(mac: dict) -> AccumSpec:
    group_acc = mac.get("group_accumulator") or _EXACT_GROUP
    return AccumSpec(
        group=mac["group"],
        group_bits=group_acc["bits"],
        group_overflow=Overflow(group_acc["overflow"]),
        acc_bits=mac["accumulator"]["bits"],
        acc_overflow=Overflow(mac["accumulator"]["overflow"]),
        input_zero_point=ZeroPointPlacement(mac["input_zero_point"]),
        bias_first=mac["bias"] == "first",
    )


def _variant_layers(op: str, int16: bool) -> list[tuple]:
    """Key-path prefixes that supply an op variant's sections, most specific first."""
    layers = [("ops", op, INT16_VARIANT), ("ops", INT16_VARIANT)] if int16 else []
    return layers + [("ops", op), ()]


def _build_op(res: _Resolved, op: str, int16: bool) -> OpSemantics:
    layers = _variant_layers(op, int16)
    label = f" (for {op}" + (" with 16-bit activations)" if int16 else ")")

    def source(subpath: tuple) -> tuple[str, tuple]:
        """(file:line, full key path) of the profile entry that decides ``subpath`` for this variant."""
        for prefix in layers:
            if prefix + subpath in res.origin:
                return res.origin[prefix + subpath], prefix + subpath
        for n in range(len(subpath) - 1, 0, -1):  # a missing key: the innermost section that exists
            for prefix in layers:
                if prefix + subpath[:n] in res.origin:
                    return res.origin[prefix + subpath[:n]], prefix + subpath
        return f"{res.chain[-1]}:1", subpath

    def where(subpath: tuple) -> str:
        location, full = source(subpath)
        return f"{location}: {_dotted(full)}{label}"

    def fail(subpath: tuple, problem: str) -> TargetError:
        return TargetError(f"{where(subpath)}: {problem}")

    sections = {}
    for name in ("operands", "mac", "requantize"):
        ops = res.data.get("ops", {})
        parts = [res.data.get(name, {}), ops.get(op, {}).get(name, {})]
        if int16:
            parts += [ops.get(INT16_VARIANT, {}).get(name, {}), ops.get(op, {}).get(INT16_VARIANT, {}).get(name, {})]
        sections[name] = _merged(parts)
    operands, mac, req = sections["operands"], sections["mac"], sections["requantize"]
    for name, spec in (("operands", _OPERANDS), ("mac", _MAC), ("requantize", _REQUANTIZE)):
        spec.check(sections[name], (name,), where, complete=True)

    fmts = {}
    for role in ("input", "weights", "bias", "output"):
        d = operands[role]
        if d["range"] == "restricted" and not d["signed"]:
            raise fail(("operands", role, "range"), "restricted range needs a signed operand; expected range: full "
                       "for an unsigned one")
        fmts[role] = _operand_format(d)
    if not fmts["bias"].signed:
        raise fail(("operands", "bias", "signed"), "an unsigned bias; expected signed: true")

    def requant_spec(d: dict, subpath: tuple) -> RequantSpec:
        scheme, rounding = RequantScheme(d["scheme"]), Rounding(d["rounding"])
        fixed = _SCHEME_ROUNDING.get(scheme)
        if fixed is not None and rounding is not fixed:
            raise fail(subpath + ("rounding",), f"scheme {scheme.value} rounds {fixed.value}, got {rounding.value}; "
                       f"expected rounding: {fixed.value} (or a scheme that rounds {rounding.value})")
        if scheme is RequantScheme.SHIFT_ONLY:
            for role in ("input", "weights", "output"):
                if fmts[role].scale is not ScaleConstraint.POWER_OF_TWO:
                    raise fail(subpath + ("scheme",), f"shift_only needs power-of-two scales, but "
                               f"operands.{role}.scale is {fmts[role].scale.value}; expected scale: power_of_two")
        return RequantSpec(scheme=scheme, rounding=rounding)

    requant = requant_spec(req, ("requantize",))
    tail = None
    if req.get("tail"):
        t = req["tail"]
        tail = RequantTail(multiple=t["multiple"], requant=requant_spec(t, ("requantize", "tail")))
    try:
        accum = _accum(mac)
    except ValueError as exc:  # AccumSpec's own checks; the schema makes these unreachable
        raise fail(("mac",), f"{exc}") from None
    return OpSemantics(
        op=op,
        activation_bits=fmts["input"].bits,
        input=fmts["input"],
        weights=fmts["weights"],
        bias=fmts["bias"],
        output=fmts["output"],
        accum=accum,
        requant=requant,
        requant_tail=tail,
        output_overflow=Overflow(res.data["output"]["overflow"]),
        quantize_rounding=Rounding(res.data["quantize"]["rounding"]),
    )


def _describe(res: _Resolved) -> dict:
    """The resolved profile as a canonical dict (a valid profile file without ``base``)."""
    data = _copy(res.data)
    out: dict = {k: data[k] for k in ("schema_version", "name", "summary", "reference") if k in data}
    for key in ("operands", "mac", "requantize", "output", "quantize", "calibration"):
        out[key] = data[key]
    out["mac"].setdefault("group_accumulator", dict(_EXACT_GROUP))
    if data.get("ops"):
        out["ops"] = {k: data["ops"][k] for k in OP_TYPES + (INT16_VARIANT,) if k in data["ops"]}
    if data.get("elementwise"):
        out["elementwise"] = {k: data["elementwise"][k] for k in (*ELEMENTWISE_SCHEMES, "engine")
                              if k in data["elementwise"]}
    return out


@dataclass(frozen=True)
class TargetProfile:
    """A loaded, validated target profile (see the module docstring for the schema).

    Two profiles compare equal when they compute the same: same name, summary,
    reference, calibration and per-op semantics (where they were read from
    does not matter).
    """

    name: str
    summary: str
    reference: Reference | None
    calibration: CalibrationMethod
    quantize_rounding: Rounding
    semantics: tuple  #: ((op, activation_bits), OpSemantics) pairs, sorted
    source: str = field(compare=False)  #: the file it was read from
    elementwise: tuple = ()  #: (op, scheme name) pairs of the ``elementwise`` section, in ELEMENTWISE_SCHEMES order
    elementwise_engine: str | None = None  #: ``elementwise.engine`` (arith_tflite's engine variant), or None
    bases: tuple = field(compare=False, default=())  #: files merged below it, outermost base first
    _resolved_json: str = field(compare=False, repr=False, default="{}")

    @property
    def op_types(self) -> tuple:
        return OP_TYPES

    @property
    def activation_bits(self) -> tuple:
        """The activation widths this profile describes (8, and 16 if it has int16_activations)."""
        return tuple(sorted({bits for (_, bits), _ in self.semantics}))

    def for_op(self, op: str, activation_bits: int | None = None) -> OpSemantics:
        """The semantics of op type ``op`` with ``activation_bits``-bit activations (None: the default)."""
        if op not in OP_TYPES:
            raise TargetError(f"target {self.name}: unknown op type {op!r}; expected one of: {', '.join(OP_TYPES)}")
        table = dict(self.semantics)
        if activation_bits is None:
            activation_bits = self.activation_bits[0]
        if (op, activation_bits) not in table:
            raise TargetError(f"target {self.name}: no {activation_bits}-bit activations for {op}; expected "
                              f"activation_bits in {list(self.activation_bits)}")
        return table[(op, activation_bits)]

    def elementwise_scheme(self, op: str) -> str:
        """The ``elementwise`` scheme this profile gives ``op`` (``add``, ``mean``, ...).

        Raises
        ------
        TargetError
            The profile states no scheme for ``op``.
        """
        if op not in ELEMENTWISE_SCHEMES:
            raise TargetError(f"target {self.name}: unknown elementwise op {op!r}; expected one of: "
                              f"{', '.join(ELEMENTWISE_SCHEMES)}")
        table = dict(self.elementwise)
        if op not in table:
            raise TargetError(f"target {self.name}: no elementwise.{op} scheme in {self.source}; add e.g. "
                              f"'elementwise: {{{op}: {ELEMENTWISE_SCHEMES[op][0]}}}'")
        return table[op]

    def describe(self) -> dict:
        """The fully resolved profile (bases merged) as plain data: a valid profile file."""
        return json.loads(self._resolved_json)

    def to_yaml(self) -> str:
        """:meth:`describe` as YAML; loading it back gives an equal profile."""
        return to_yaml(self.describe())


def to_yaml(data: dict) -> str:
    """Profile-shaped data as YAML, leaf mappings on one line as in the built-in files."""
    return yaml.dump(data, Dumper=_ProfileDumper, sort_keys=False, allow_unicode=True, width=120)


class _ProfileDumper(yaml.SafeDumper):
    """Writes leaf mappings (operand formats, accumulators) on one line, as the built-in files do."""

    def represent_dict(self, data):
        leaf = all(not isinstance(v, (dict, list)) and not (isinstance(v, str) and len(v) > 40)
                   for v in data.values())
        return self.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=leaf)


_ProfileDumper.add_representer(dict, _ProfileDumper.represent_dict)


def _profile(res: _Resolved, source: str) -> TargetProfile:
    _PROFILE.check(res.data, (), lambda path: f"{_where_origin(res, path)}: {_dotted(path)}", complete=True)
    if "group_accumulator" not in res.data["mac"]:
        res.data["mac"]["group_accumulator"] = dict(_EXACT_GROUP)
    table: dict = {}
    table_bits: dict = {}
    for op in OP_TYPES:
        sem = _build_op(res, op, int16=False)
        table[(op, sem.activation_bits)] = sem
        table_bits[op] = sem.activation_bits
    for op in OP_TYPES:
        if INT16_VARIANT in res.data.get("ops", {}).get(op, {}) and INT16_VARIANT not in res.data["ops"]:
            raise TargetError(f"{_where_origin(res, ('ops', op, INT16_VARIANT))}: ops.{op}.{INT16_VARIANT}: "
                              f"a 16x8 override of {op} in a profile without 16-bit activations; expected "
                              f"ops.{INT16_VARIANT} as well")
    if INT16_VARIANT in res.data.get("ops", {}):
        for op in OP_TYPES:
            default_bits = table_bits[op]
            sem = _build_op(res, op, int16=True)
            if sem.activation_bits != 16 or default_bits == 16:
                raise TargetError(f"{_where_origin(res, ('ops', INT16_VARIANT))}: ops.{INT16_VARIANT}: gives {op} "
                                  f"{sem.activation_bits}-bit activations over {default_bits}-bit ones; expected "
                                  f"operands.input.bits: 16 here, and a narrower input by default")
            table[(op, 16)] = sem
    ref = res.data.get("reference")
    return TargetProfile(
        name=res.data["name"],
        summary=res.data["summary"],
        reference=Reference(ref["engine"], ref.get("version"), ref.get("notes")) if ref else None,
        calibration=CalibrationMethod(res.data["calibration"]["method"]),
        quantize_rounding=Rounding(res.data["quantize"]["rounding"]),
        semantics=tuple(sorted(table.items(), key=lambda kv: (OP_TYPES.index(kv[0][0]), kv[0][1]))),
        source=source,
        bases=res.chain[:-1],
        elementwise=tuple((op, res.data["elementwise"][op]) for op in ELEMENTWISE_SCHEMES
                          if op in res.data.get("elementwise", {})),
        elementwise_engine=res.data.get("elementwise", {}).get("engine"),
        _resolved_json=json.dumps(_describe(res)),
    )


def _where_origin(res: _Resolved, path: tuple) -> str:
    probe = path
    while probe:
        if res.origin.get(probe):
            return res.origin[probe]
        probe = probe[:-1]
    return f"{res.chain[-1]}:1"


def load_target(name_or_path: str | os.PathLike) -> TargetProfile:
    """Load a built-in profile by name, or a profile file by path, with its bases.

    Parameters
    ----------
    name_or_path
        A built-in name (see :func:`list_targets`), or a path to a YAML file
        (anything ending in ``.yaml``/``.yml`` or containing a ``/``).

    Raises
    ------
    TargetError
        The file cannot be read or is not a valid profile; the message names the
        file, the line, the key path and what was expected.

    Examples
    --------
    >>> load_target("tflm").for_op("fully_connected").requant.scheme.value
    'double_rounding'
    """
    if isinstance(name_or_path, os.PathLike) or _is_path(str(name_or_path)):
        key, doc = _read_path(pathlib.Path(name_or_path), None)
    else:
        name = str(name_or_path)
        if name not in list_targets() and pathlib.Path(name).is_file():
            key, doc = _read_path(pathlib.Path(name), None)
        else:
            return _load_builtin(name)
    res = _resolve(key, doc, ())
    return _profile(res, doc.label)


@functools.lru_cache(maxsize=None)
def _load_builtin(name: str) -> TargetProfile:
    # Built-in profiles ship with the package and never change while it runs, and a
    # TargetProfile is frozen: parse each once (simulate(g, "name", ...) per image
    # would otherwise re-read the YAML on every call).  User files are re-read.
    key, doc = _read_builtin(name, None)
    return _profile(_resolve(key, doc, ()), doc.label)

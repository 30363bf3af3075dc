"""``hwsim.quantize``: post-training quantization of a float graph for one target.

The pipeline, in order:

1. **Options.**  The target profile supplies every default: the weight and
   activation formats of each op (``for_op(op).weights / .input``), the weight
   granularity and the calibration method (``profile.calibration``).
   ``bits="W4A8"`` (weights, then activations), ``granularity=`` and per-layer
   ``overrides`` ask for something else; a request the target cannot run is a
   ValueError naming the target and what it supports.  A profile that gives an
   op its own weight format (e.g. cpu-w4a8-blocked's int8 depthwise) keeps it
   for that op when the request fits the target's default format.
2. **Cross-layer equalization** (``ptq=("cle",)``, :mod:`hwsim.quant.cle`) on a
   copy of the float graph.  The equalized float graph (same function) is the
   quantized graph's ``float_source``: its layer outputs are the ones the
   quantized layers approximate.  ``ptq=("cle_relu",)`` first replaces the
   ReLU6 of the equalized pairs by ReLU (Nagel et al.'s MobileNetV2 recipe): a
   different float function, which is then the ``float_source``.
3. **Activation ranges**: one observer (:mod:`hwsim.quant.observers`) per float
   activation, fed the float reference on every calibration chunk; without
   calibration data (``calibration=None``, zero-shot), the ranges come from the
   batch-norm statistics (:func:`hwsim.quant.zero_shot.ranges_from_batchnorm`),
   the graph inputs' from ``input_ranges``, and tensors the statistics do not
   determine (a classifier's logits) from interval arithmetic over the weights.
4. **Weights** per layer (:func:`hwsim.quant.quantizers.weight_params`, MinMax),
   bias in int32 at ``s_x * s_w``; the graph rewrite is :mod:`hwsim.quant.rewrite`.
5. **Bias correction** (``"bias_correction"``, :mod:`hwsim.quant.bias_correction`) then
   **AdaRound** (``"adaround"``, :mod:`hwsim.quant.adaround`), both on the calibration data.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import numpy as np

from hwsim.graph.ir import Graph, QuantParams
from hwsim.quant.params import QuantFormat, params_from_range

__all__ = ["quantize", "PTQ_PASSES", "ACTIVATION_METHODS", "parse_bits", "LayerFormat"]

#: The PTQ passes, in the order they run whatever order they are given in.
#: ``cle_relu`` is ``cle`` after replacing the pairs' ReLU6 by ReLU (changes the float function).
PTQ_PASSES = ("cle", "cle_relu", "bias_correction", "adaround")
#: Activation calibration methods ``hwsim.quantize`` accepts (the target-profile / CLI names).
ACTIVATION_METHODS = ("minmax", "moving_average", "percentile", "entropy", "entropy_mxnet", "mse", "aciq",
                      "histogram")
#: weight methods that place weights on a codebook (hwsim.quant.nonuniform); they need a target whose
#: weights have a lookup stage, and use 2^index_bits levels (binary code: index_bits bases)
NONUNIFORM_WEIGHT_METHODS = ("kmeans", "log", "binary")

_BITS_RE = re.compile(r"^W([0-9]+)A([0-9]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class LayerFormat:
    """How one weighted layer is quantized: weight code format, granularity, bias width."""

    weights: QuantFormat
    granularity: str
    bias_bits: int


def quant_format(operand) -> QuantFormat:
    """A target profile's :class:`~hwsim.targets.OperandFormat` as the quantizers' :class:`QuantFormat`."""
    return QuantFormat(bits=operand.bits, signed=operand.signed, symmetric=operand.symmetric,
                       narrow=operand.value_range.value == "restricted",
                       power_of_two=operand.scale.value == "power_of_two")


def _granularity_name(operand) -> str:
    g = operand.granularity.value
    return f"{g}:{operand.group_size}" if operand.group_size is not None else g


def parse_bits(bits) -> tuple[int | None, int | None]:
    """``"W4A8"`` -> (4, 8); None -> (None, None) (the target's own widths)."""
    if bits is None:
        return None, None
    m = _BITS_RE.match(bits) if isinstance(bits, str) else None
    if m is None:
        raise ValueError(f"bits: expected W<weight bits>A<activation bits> such as W8A8, W4A8 or W8A16, got {bits!r}")
    return int(m.group(1)), int(m.group(2))


def _supported_bits(profile) -> str:
    combos = []
    for a in profile.activation_bits:
        w = sorted({profile.for_op(op, a).weights.bits for op in ("conv2d", "fully_connected")})
        combos += [f"W{b}A{a}" for b in w]
    return ", ".join(combos)


def _granularity_fits(requested: str, operand) -> bool:
    """Whether weights quantized at ``requested`` run on a target whose weights are ``operand``."""
    from hwsim.quant.quantizers import parse_granularity

    kind, n = parse_granularity(requested)
    have = operand.granularity.value
    if have == "per-group":
        return kind == "per-group" and n == operand.group_size
    if have == "per-channel":
        return kind in ("per-tensor", "per-channel", "per-channel-group")
    return kind == "per-tensor"


def _layer_format(profile, op_key: str, a_bits: int, w_bits, granularity, what: str) -> LayerFormat:
    """The format of one layer of op type ``op_key``, or a ValueError naming the target and what it runs."""
    own = profile.for_op(op_key, a_bits)
    base = profile.for_op("conv2d" if op_key == "depthwise_conv2d" else op_key, a_bits)
    gran = granularity or _granularity_name(own.weights)
    fits_own = (w_bits in (None, own.weights.bits)) and _granularity_fits(gran, own.weights)
    if fits_own:
        return LayerFormat(quant_format(own.weights), gran, own.bias.bits)
    base_gran = granularity or _granularity_name(base.weights)
    fits_default = (w_bits in (None, base.weights.bits)) and _granularity_fits(base_gran, base.weights)
    if op_key != base.op and fits_default:
        # the profile gives this op its own weight format (cpu-w4a8-blocked: int8 depthwise): keep it
        return LayerFormat(quant_format(own.weights), _granularity_name(own.weights), own.bias.bits)
    if w_bits not in (None, own.weights.bits):
        raise ValueError(f"{what}: target {profile.name} runs {own.weights.bits}-bit weights for {op_key}, not "
                         f"{w_bits}-bit; it supports bits {_supported_bits(profile)}")
    raise ValueError(f"{what}: target {profile.name} runs {op_key} weights {_granularity_name(own.weights)}, so "
                     f"granularity {gran!r} cannot run there; it supports "
                     f"{_granularity_choices(own.weights)}")


def _granularity_choices(operand) -> str:
    have = operand.granularity.value
    if have == "per-group":
        return f"per-group:{operand.group_size}"
    if have == "per-channel":
        return "per-tensor, per-channel, per-channel-group:N"
    return "per-tensor"


def _activation_bits(profile, a_bits) -> int:
    if a_bits is None:
        return profile.activation_bits[0]
    if a_bits not in profile.activation_bits:
        raise ValueError(f"bits: target {profile.name} has no {a_bits}-bit activations; it supports bits "
                         f"{_supported_bits(profile)}")
    return a_bits


def _near(name: str, names) -> str:
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.4)
    return ", ".join(repr(c) for c in close) if close else "(none close)"


def _layer_formats(graph: Graph, profile, a_bits: int, w_bits, granularity, overrides) -> dict:
    """node name -> LayerFormat for every weighted node, with the per-layer overrides applied."""
    from hwsim.quant.rewrite import WEIGHTED, weight_op_key

    weighted = {n.name: n for n in graph.nodes if n.op in WEIGHTED}
    if overrides is not None and not isinstance(overrides, dict):
        raise ValueError(f"overrides: expected a dict node name -> {{'bits': ..., 'granularity': ...}}, got "
                         f"{type(overrides).__name__}")
    overrides = dict(overrides or {})
    all_names = [n.name for n in graph.nodes]
    for name, spec in overrides.items():
        if name not in weighted:
            if name in all_names:
                op = next(n.op for n in graph.nodes if n.name == name)
                raise ValueError(f"overrides: node {name!r} is a {op} node without weights; overrides apply to "
                                 f"conv2d / fully_connected nodes")
            raise ValueError(f"overrides: the graph has no node named {name!r}; near names: "
                             f"{_near(name, weighted)}")
        if not isinstance(spec, dict) or set(spec) - {"bits", "granularity"}:
            raise ValueError(f"overrides[{name!r}]: expected a dict with keys 'bits' and/or 'granularity', "
                             f"got {spec!r}")
    formats = {}
    for name, node in weighted.items():
        spec = overrides.get(name, {})
        wb, gran, what = w_bits, granularity, "bits/granularity"
        if "bits" in spec:
            wb, ab = parse_bits(spec["bits"])
            if ab != a_bits:
                raise ValueError(f"overrides[{name!r}]: activation width A{ab} differs from the graph's A{a_bits}; "
                                 f"per-layer overrides change the weights only")
            what = f"overrides[{name!r}]"
        if "granularity" in spec:
            gran, what = spec["granularity"], f"overrides[{name!r}]"
        formats[name] = _layer_format(profile, weight_op_key(graph, node), a_bits, wb, gran, what)
    return formats


def _parse_passes(ptq) -> tuple:
    if isinstance(ptq, str):
        ptq = [p.strip() for p in ptq.split(",") if p.strip()]
    names = list(ptq or ())
    for p in names:
        if p not in PTQ_PASSES:
            raise ValueError(f"ptq: unknown pass {p!r}; expected any of: {', '.join(PTQ_PASSES)}")
    if "cle" in names and "cle_relu" in names:
        raise ValueError("ptq: 'cle' and 'cle_relu' are two forms of the same pass; give one")
    return tuple(p for p in PTQ_PASSES if p in names)


def _observed_params(graph: Graph, calib, method: str, fmt: QuantFormat, progress) -> dict:
    """Float tensor name -> QuantParams from one observer per activation over the calibration data."""
    from hwsim.quant.calibration import float_traces
    from hwsim.quant.observers import make_observer

    observers: dict = {}
    with _Progress(progress, "calibrating") as bar:
        for _, env in float_traces(graph, calib):
            for name, arr in env.items():
                t = graph.tensors.get(name)
                if t is None or t.is_constant or arr.dtype.kind != "f":
                    continue
                if name not in observers:
                    observers[name] = make_observer(method, fmt)
                observers[name].observe(arr)
            bar.advance()
    out = {}
    for name, obs in observers.items():
        p = obs.qparams()
        out[name] = QuantParams(p.scale, p.zero_point)
    return out


def _zero_shot_params(graph: Graph, fmt: QuantFormat, input_ranges) -> dict:
    from hwsim.quant.zero_shot import ranges_from_batchnorm

    if not any("batchnorm" in n.attrs for n in graph.nodes):
        raise ValueError("calibration: None asks for zero-shot quantization, which takes activation ranges from "
                         "batch-norm statistics, but this graph has none (no BatchNormalization was folded); "
                         "give calibration data")
    ranges = dict(ranges_from_batchnorm(graph))
    for name in graph.inputs:
        if input_ranges is None or name not in input_ranges:
            raise ValueError(f"calibration: zero-shot quantization needs the range of input {name!r}: pass "
                             f"input_ranges={{{name!r}: (lo, hi)}} (e.g. (0, 1) for images scaled to [0, 1])")
        lo, hi = input_ranges[name]
        ranges[name] = (float(lo), float(hi))
    _interval_fill(graph, ranges)
    return {name: _qp(params_from_range(lo, hi, fmt)) for name, (lo, hi) in ranges.items()}


def _interval_fill(graph: Graph, ranges: dict) -> None:
    """Ranges of tensors the batch-norm statistics leave open, by interval arithmetic (a data-free bound)."""
    for node in graph.nodes:
        out = node.outputs[0] if node.outputs else None
        if out is None or out in ranges or any(i and i not in ranges and not graph.tensors[i].is_constant
                                               for i in node.inputs):
            continue
        if node.op in ("conv2d", "fully_connected"):
            lo_x, hi_x = ranges[node.inputs[0]]
            w = graph.tensors[node.inputs[1]].data.astype(np.float64).reshape(graph.tensors[node.inputs[1]].shape[0], -1)
            lo = np.minimum(w * lo_x, w * hi_x).sum(axis=1)
            hi = np.maximum(w * lo_x, w * hi_x).sum(axis=1)
            if len(node.inputs) > 2 and node.inputs[2]:
                b = graph.tensors[node.inputs[2]].data.astype(np.float64)
                lo, hi = lo + b, hi + b
            lo, hi = float(lo.min()), float(hi.max())
        elif node.op in ("add", "sub"):
            (a0, a1), (b0, b1) = ranges[node.inputs[0]], ranges[node.inputs[1]]
            lo, hi = (a0 + b0, a1 + b1) if node.op == "add" else (a0 - b1, a1 - b0)
        elif node.op in ("reshape", "transpose", "mean", "max_pool2d", "avg_pool2d"):
            lo, hi = ranges[node.inputs[0]]
        else:
            continue
        act = node.attrs.get("activation")
        if act is not None:
            lo, hi = max(lo, act[0]), min(hi, act[1])
        ranges[out] = (lo, hi)


def _qp(p) -> QuantParams:
    return QuantParams(p.scale, p.zero_point)


class _Progress:
    """A rich progress bar on stderr when ``enabled`` (a spinner-like count: the number of chunks is unknown)."""

    def __init__(self, enabled: bool, what: str, total: int | None = None) -> None:
        self.enabled, self.what, self.total = bool(enabled), what, total

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._p.__enter__()
            self._task = self._p.add_task(self.what, total=self.total)
        return self

    def advance(self, n: int = 1) -> None:
        if self.enabled:
            self._p.advance(self._task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self._p.__exit__(*exc)
        return False


def quantize(graph: Graph, target, calibration=None, *, method: str | None = None, granularity: str | None = None,
             bits: str | None = None, ptq=(), overrides: dict | None = None, dynamic: bool = False,
             progress: bool = False, input_ranges: dict | None = None, weight_method: str = "minmax",
             kind: str = "ptq") -> Graph:
    """Quantize float ``graph`` for ``target`` (post-training quantization).

    Parameters
    ----------
    graph : Graph
        A float graph (:func:`hwsim.load_model` of a float model).
    target : str, path or TargetProfile
        Supplies the defaults: formats, weight granularity, calibration method.
    calibration : dict or iterable of dicts, optional
        Input name -> array (batch first, the model's layout), or an iterable of
        such dicts read batch by batch.  None: zero-shot (ranges from the
        batch-norm statistics; needs ``input_ranges``).
    method : str, optional
        Activation calibration: minmax, moving_average, percentile, entropy,
        entropy_mxnet, mse, aciq or histogram (default: the target's).
    granularity : str, optional
        Weights: per-tensor, per-channel, per-group:N or per-channel-group:N
        (default: the target's, per op).
    bits : str, optional
        "W8A8", "W4A8", "W8A16", ...: weight then activation width (default: the target's).
    ptq : str or sequence of str
        Passes among ``cle`` (or ``cle_relu``: ReLU6 -> ReLU on the equalized pairs first, a
        different float function), ``bias_correction``, ``adaround`` (run in that order).
    overrides : dict, optional
        Node name -> {"bits": "W4A8", "granularity": "per-channel"} for single layers
        (weights only: the activation width is the graph's).
    dynamic : bool
        Dynamic quantization (activation ranges at run time) of the conv / fully-connected /
        matmul layers, as onnxruntime's ``quantize_dynamic``
        (:func:`hwsim.quant.dynamic.dynamic_quantize_graph`; weights per tensor unless
        ``granularity="per-channel"``; no calibration data, no passes).
    progress : bool
        A rich progress bar on stderr for calibration and the PTQ passes.
    input_ranges : dict, optional
        Zero-shot only: graph input name -> (lo, hi).
    weight_method : str
        Weight scales: ``minmax`` (default) or ``mse`` (clip search per scale group,
        :func:`hwsim.quant.quantizers.weight_params`); or non-uniform levels
        (:mod:`hwsim.quant.nonuniform`): ``kmeans`` (2^index_bits centroids), ``log``
        (0 and +-2^-k) or ``binary`` (index_bits bases +-alpha_i), per tensor or per
        channel, for a target whose weights have a lookup stage
        (``operands.weights.lookup: {index_bits: N}``); other targets are refused.
    kind : str
        ``Graph.kind`` of the result.

    Returns
    -------
    Graph
        The quantized graph (``kind`` "ptq"; ``float_source`` the float graph it
        approximates: ``graph``, or its equalized copy after ``cle`` / ``cle_relu``), which
        :func:`hwsim.simulate` runs on ``target``.

    Raises
    ------
    ValueError
        Bad calibration data, an option the target cannot run, an unknown method,
        pass or node name.
    """
    from hwsim.targets import TargetProfile, load_target

    profile = target if isinstance(target, TargetProfile) else load_target(target)
    if not isinstance(graph, Graph):
        raise ValueError(f"graph: expected a hwsim Graph (hwsim.load_model), got {type(graph).__name__}")
    if any(t.quant is not None for t in graph.tensors.values()) or graph.kind not in ("float", ""):
        raise ValueError(f"graph: already quantized (kind {graph.kind!r}); quantize takes a float graph")
    passes = _parse_passes(ptq)
    method = method or profile.calibration.value
    if method not in ACTIVATION_METHODS:
        raise ValueError(f"method: unknown calibration method {method!r}; expected one of: "
                         f"{', '.join(ACTIVATION_METHODS)}")
    from hwsim.quant.quantizers import WEIGHT_METHODS

    if weight_method not in WEIGHT_METHODS + NONUNIFORM_WEIGHT_METHODS:
        raise ValueError(f"weight_method: expected one of {', '.join(WEIGHT_METHODS + NONUNIFORM_WEIGHT_METHODS)}, "
                         f"got {weight_method!r}")
    if weight_method in NONUNIFORM_WEIGHT_METHODS and "adaround" in passes:
        raise ValueError(f"ptq: adaround learns the rounding of uniform weights; weight_method {weight_method!r} "
                         "places weights on a codebook")
    w_bits, a_bits = parse_bits(bits)
    a_bits = _activation_bits(profile, a_bits)
    formats = _layer_formats(graph, profile, a_bits, w_bits, granularity, overrides)
    if dynamic:
        from hwsim.quant.dynamic import dynamic_quantize_graph

        if passes or calibration is not None:
            raise ValueError("dynamic: dynamic quantization computes activation ranges at run time; it takes no "
                             "calibration data and no ptq passes")
        # per tensor unless asked, as onnxruntime's quantize_dynamic (per_channel=False by default)
        return dynamic_quantize_graph(graph, profile, per_channel=granularity == "per-channel")

    from hwsim.quant.calibration import CalibrationSet

    calib = CalibrationSet(graph, calibration) if calibration is not None else None
    if calib is None and passes:
        raise ValueError(f"ptq: {', '.join(passes)} need(s) calibration data; calibration is None")
    act_fmt = quant_format(profile.for_op("conv2d", a_bits).input)

    float_graph = graph
    if "cle" in passes or "cle_relu" in passes:
        from hwsim.quant.cle import equalize

        float_graph = equalize(graph, calib, relu6="relu" if "cle_relu" in passes else "keep")
    if calib is None:
        params = _zero_shot_params(float_graph, act_fmt, input_ranges)
    else:
        params = _observed_params(float_graph, calib, method, act_fmt, progress)

    def act_params(name: str) -> QuantParams:
        if name not in params:
            raise ValueError(f"calibration: no range for tensor {name!r} (not computed on the calibration data "
                             f"or derivable from batch-norm statistics)")
        return params[name]

    q = _rewrite(float_graph, profile, act_params, act_fmt, formats, kind, weight_method)
    if "bias_correction" in passes:
        from hwsim.quant.bias_correction import correct_biases

        correct_biases(q, profile, calib, progress=progress)
    if "adaround" in passes:
        from hwsim.quant.adaround import adaround_graph

        adaround_graph(q, profile, calib, progress=progress)
    return q


def _codebook(w, weight_method: str, index_bits: int, granularity: str, name: str):
    """The non-uniform codebook of ``w`` with at most 2^index_bits levels (per channel or per tensor)."""
    from hwsim.quant import nonuniform

    axis = 0 if granularity == "per-channel" else None
    if weight_method == "kmeans":
        return nonuniform.kmeans_quantize(w, n_levels=min(1 << index_bits, w.size), axis=axis, name=name)
    if weight_method == "log":
        return nonuniform.log_quantize(w, bits=index_bits, axis=axis, name=name)
    return nonuniform.binary_code_quantize(w, n_bases=index_bits, axis=axis, name=name)


def _rewrite(float_graph: Graph, profile, act_params, act_fmt: QuantFormat, formats: dict, kind: str,
             weight_method: str) -> Graph:
    from hwsim.quant.quantizers import to_ir_weights, weight_params
    from hwsim.quant.rewrite import rewrite

    def layer_weights(node, op_key):
        lf = formats[node.name]
        w = float_graph.tensors[node.inputs[1]].data
        if weight_method in NONUNIFORM_WEIGHT_METHODS:
            index_bits = profile.for_op(op_key).weights.lookup_index_bits
            if index_bits is None:
                raise ValueError(f"weight_method {weight_method!r}: target {profile.name} has no weight lookup stage "
                                 f"for {op_key} (operands.weights.lookup), so the non-uniform weights of "
                                 f"{node.name!r} cannot run on it")
            if lf.granularity not in ("per-tensor", "per-channel"):
                raise ValueError(f"weight_method {weight_method!r}: codebooks are per tensor or per channel, "
                                 f"not {lf.granularity} (layer {node.name!r})")
            book = _codebook(w, weight_method, index_bits, lf.granularity, node.inputs[1])
            codes, qp, lookup = to_ir_weights(w, book, lf.weights, name=node.inputs[1])
            return codes, qp, lf.bias_bits, lookup
        p = weight_params(w, lf.weights, lf.granularity, axis=0, name=node.inputs[1], method=weight_method)
        codes, qp, _ = to_ir_weights(w, p, name=node.inputs[1])
        return codes, qp, lf.bias_bits, None

    # 16-bit activations: add / mean stay float (the elementwise schemes are 8-bit)
    return rewrite(float_graph, profile, act_params, act_fmt.dtype, layer_weights, kind,
                   elementwise=act_fmt.bits <= 8)

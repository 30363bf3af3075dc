"""Cross-target diff: why does target B disagree with target A, layer by layer.

:func:`diff_targets` runs one quantized graph on two target profiles with ``simulate(trace=True)`` and, for every
integer layer (by node name, in graph order), counts the output elements that differ and by how many LSB.  A layer
whose inputs already differ passes differences on even when it computes the same; to tell "propagated" from
"introduced here", B's layer is re-run on A's own input tensors (the executor's per-op preparation on that one node,
so the integers come from the C kernels): whatever still differs is introduced by this layer, and
:func:`hwsim.report.causes.explain_layer` names the pipeline stage responsible, by counterfactual.

A float graph with ``calibration`` is quantized once per target (with ``hwsim.quantize`` when it exists, else the
MinMax quantizer).  Then the two graphs may carry different quantisation parameters: a layer whose scales, zero
points or quantized weights differ is reported with the cause ``quant_params`` (its values are compared in real
units, expressed in A's output LSB), and no counterfactual is run for it.

JSON schema ``hwsim.diff/1`` (:meth:`TargetDiff.to_dict`)::

    {"schema": "hwsim.diff/1", "hwsim_version": str,
     "target_a": str, "target_b": str,            # profile names
     "identical_pipelines": bool,                  # the profiles compute the same (every stage equal)
     "pipeline_differences": [str],                # "<key path>: <A> vs <B>" over the resolved profiles
     "per_target_quantization": bool,              # a float model quantized once per target
     "first_divergence": str | null,               # the first layer (node name) whose outputs differ
     "summary": str,                               # the one-paragraph explanation
     "notes": [str],                               # layers that could not be matched or re-run
     "layers": [{"name": str, "op": str, "source_op": str, "output": str,  # output tensor name
                 "elements": int, "differ": int,  # output elements, and how many differ (B vs A)
                 "max_lsb": int | float,           # largest |B - A| in output LSB (float: params differ)
                 "histogram": {bin: int},          # |B - A| in LSB, bins "1", "2", "3-4", "5-8", ... ">256"
                 "status": "same" | "introduced" | "propagated" | "introduced+propagated" | "params_differ",
                 "introduced": int | null,         # elements B differs on when fed A's inputs (null: not run)
                 "inputs_differ": bool, "params_note": str | null,
                 "causes": [{"kind": str, "stage": str, "a": str, "b": str, "elements": int, "max_lsb": int,
                             "explanation": str,
                             "example": {"index": [int], "a": int, "b": int, "acc_a": int, "acc_b": int,
                                         "why": str} | null}]}],
     "outputs": [{"name": str, "elements": int, "differ": int, "max_abs": float,
                  "top1_agree": int | null, "rows": int | null}]}

Indices are in hwsim's IR layout (NHWC for rank-4 tensors); codes are the stored integers (zero point included);
LSB differences are of ``q - zero_point``, so an int8 and a uint8 copy of one tensor compare correctly.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from dataclasses import dataclass, field

import numpy as np

from hwsim.graph.ir import Graph
from hwsim.report.causes import Cause, explain_layer
from hwsim.report.diff_stages import NodeRun, normalised, run_node
from hwsim.targets import TargetProfile, load_target

__all__ = ["SCHEMA", "diff_targets", "TargetDiff", "LayerDiff", "OutputDiff", "Cause", "HISTOGRAM_BINS"]

SCHEMA = "hwsim.diff/1"
#: |diff| histogram bins in LSB: (label, lowest, highest)
HISTOGRAM_BINS = (("1", 1, 1), ("2", 2, 2), ("3-4", 3, 4), ("5-8", 5, 8), ("9-16", 9, 16), ("17-32", 17, 32),
                  ("33-64", 33, 64), ("65-128", 65, 128), ("129-256", 129, 256), (">256", 257, math.inf))


@dataclass
class LayerDiff:
    """One integer layer: how B's output differs from A's, and why (see the module docstring's schema)."""

    name: str
    op: str
    source_op: str
    output: str
    elements: int
    differ: int
    max_lsb: float
    histogram: dict
    status: str
    introduced: int | None
    inputs_differ: bool
    params_note: str | None = None
    causes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["causes"] = [c.to_dict() for c in self.causes]
        return d


@dataclass
class OutputDiff:
    """One model output: elements that differ, the largest |B - A|, and (for [N, C] outputs) top-1 agreement."""

    name: str
    elements: int
    differ: int
    max_abs: float
    top1_agree: int | None = None
    rows: int | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TargetDiff:
    """What :func:`diff_targets` returns; :meth:`summary` says it in one paragraph, :meth:`to_json` as data."""

    target_a: str
    target_b: str
    identical_pipelines: bool
    pipeline_differences: list
    per_target_quantization: bool
    layers: list
    outputs: list
    notes: list = field(default_factory=list)

    @property
    def first_divergence(self) -> LayerDiff | None:
        """The first layer (graph order) whose outputs differ, or None."""
        return next((layer for layer in self.layers if layer.differ), None)

    def summary(self) -> str:
        """One paragraph: where the targets first part, by how much, and why."""
        a, b = self.target_a, self.target_b
        if self.identical_pipelines:
            head = f"{a} and {b} have identical pipelines (every stage of every op is the same)"
            return head + (", and every layer agrees bit for bit." if self.first_divergence is None else
                           "; yet some layers differ -- please report this.")
        first = self.first_divergence
        if first is None:
            diffs = "; ".join(self.pipeline_differences[:4]) + ("; ..." if len(self.pipeline_differences) > 4 else "")
            return (f"{a} and {b} compute identical bits on these inputs in all {len(self.layers)} integer layers, "
                    f"although their pipelines differ ({diffs}): no input reached a case where the difference shows.")
        text = (f"The targets first part at layer {first.name!r} ({first.source_op or first.op}): {first.differ} of "
                f"{first.elements} outputs differ by {_lsb_text(first.max_lsb)}")
        if first.causes:
            main = max(first.causes, key=lambda c: c.elements)
            text += f" because {main.explanation}"
            if main.kind != "quant_params" and len(first.causes) > 1:
                text += f" (and {len(first.causes) - 1} further cause{'s' if len(first.causes) > 2 else ''})"
        text += "."
        if first.status == "params_differ":
            text += (" To see only how the two targets compute, quantize the model once (hwsim quantize MODEL -t "
                     f"{a} --calib CAL.npz -o Q.onnx) and diff Q.onnx.")
        introduced = [layer for layer in self.layers if layer.status in ("introduced", "introduced+propagated",
                                                                         "params_differ")]
        propagated = [layer for layer in self.layers if layer.status == "propagated"]
        if len(introduced) > 1:
            text += f" {len(introduced)} layers introduce differences of their own"
            kinds = sorted({c.kind for layer in introduced for c in layer.causes})
            text += f" ({', '.join(kinds)})" if kinds else ""
            text += f" and {len(propagated)} only pass on differences in their inputs." if propagated else "."
        elif propagated:
            text += (f" Every later difference is propagated: {len(propagated)} downstream layer"
                     f"{'s differ' if len(propagated) > 1 else ' differs'} only because its inputs do.")
        for out in self.outputs:
            text += f" Model output {out.name!r}: {out.differ} of {out.elements} values differ"
            if out.differ:
                text += f" (max |diff| {out.max_abs:.4g})"
            if out.top1_agree is not None:
                text += f", top-1 agrees on {out.top1_agree} of {out.rows} rows"
            text += "."
        return text

    def to_dict(self) -> dict:
        from hwsim import __version__

        first = self.first_divergence
        return {
            "schema": SCHEMA,
            "hwsim_version": __version__,
            "target_a": self.target_a,
            "target_b": self.target_b,
            "identical_pipelines": self.identical_pipelines,
            "pipeline_differences": list(self.pipeline_differences),
            "per_target_quantization": self.per_target_quantization,
            "first_divergence": None if first is None else first.name,
            "summary": self.summary(),
            "notes": list(self.notes),
            "layers": [layer.to_dict() for layer in self.layers],
            "outputs": [out.to_dict() for out in self.outputs],
        }

    def to_json(self, path=None) -> str:
        """The diff as JSON (schema ``hwsim.diff/1``); also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=1, default=_json_default)
        if path is not None:
            pathlib.Path(path).write_text(text + "\n", encoding="utf-8")
        return text


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _lsb_text(lsb) -> str:
    if isinstance(lsb, float) and not float(lsb).is_integer():
        return f"up to {lsb:.3g} LSB"
    lsb = int(lsb)
    return "1 LSB" if lsb == 1 else f"up to {lsb} LSB"


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def diff_targets(graph, target_a, target_b, inputs: dict, *, calibration=None, n_threads: int = 1,
                 progress: bool = False) -> TargetDiff:
    """Run ``graph`` on two targets and explain, layer by layer, where and why their results differ.

    Parameters
    ----------
    graph : Graph, or a pair (graph for A, graph for B)
        A quantized graph, or a float graph with ``calibration``.  A pair is for a model imported once per
        target (e.g. a QDQ model, whose fusion depends on the engine); layers are matched by node name.
    target_a, target_b : str, path or TargetProfile
        The reference target (usually "my PC") and the one compared with it (the device).
    inputs : dict name -> ndarray
        One array per model input, model layout (as for :func:`hwsim.simulate`).
    calibration : dict or iterable of dicts, optional
        Needed for a float graph: it is quantized once per target.
    n_threads : int
        Kernel threads; the result never depends on it.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    TargetDiff

    Raises
    ------
    ValueError
        (TargetError, SimulationError, ...) an unknown target, a float graph without calibration, bad inputs.
    """
    pa = target_a if isinstance(target_a, TargetProfile) else load_target(target_a)
    pb = target_b if isinstance(target_b, TargetProfile) else load_target(target_b)
    if isinstance(graph, tuple):
        if len(graph) != 2 or not all(isinstance(g, Graph) for g in graph):
            raise ValueError("graph: expected a Graph or a pair (graph for target A, graph for target B)")
        ga, gb = graph
    elif isinstance(graph, Graph):
        ga = gb = graph
    else:
        raise ValueError(f"graph: expected a hwsim Graph (see hwsim.load_model), got {type(graph).__name__}")
    identical = same_pipeline(pa, pb)
    per_target = False
    if ga.kind == "float" or gb.kind == "float":
        if calibration is None:
            raise ValueError("graph: a float model; give calibration data so it can be quantized for each target")
        per_target = True
        qa = _quantize(ga, pa, calibration)
        qb = qa if gb is ga and identical else _quantize(gb, pb, calibration)
        ga, gb = qa, qb
    from hwsim.sim import simulate

    res_a = simulate(ga, pa, inputs, trace=True, n_threads=n_threads)
    res_b = simulate(gb, pb, inputs, trace=True, n_threads=n_threads)
    keys_a, keys_b = layer_keys(ga), layer_keys(gb)
    nodes_b = {keys_b[id(n)]: n for n in gb.nodes}
    layers, notes = [], []
    candidates = [n for n in ga.nodes if _is_integer_layer(ga, n)]
    with _progress(progress, len(candidates), f"diff {pa.name} vs {pb.name}") as advance:
        for node in candidates:
            key = keys_a[id(node)]
            node_b = nodes_b.get(key)
            if node_b is None or not _is_integer_layer(gb, node_b):
                notes.append(f"layer {key!r}: an integer layer on {pa.name} but not on {pb.name} "
                             "(the model was imported differently for the two engines); not compared")
            else:
                layers.append(_layer_diff(ga, gb, node, node_b, key, pa, pb, res_a, res_b, n_threads, notes))
            advance()
    outputs = [_output_diff(name, res_a.outputs[name], res_b.outputs[name]) for name in ga.outputs
               if name in res_b.outputs]
    return TargetDiff(pa.name, pb.name, identical, profile_differences(pa, pb), per_target, layers, outputs, notes)


def _quantize(graph: Graph, profile: TargetProfile, calibration) -> Graph:
    from hwsim.quant.quantize import quantize

    return quantize(graph, profile, calibration)


class _progress:
    """A rich progress bar on stderr (or nothing); ``with _progress(on, n, text) as advance: advance()``."""

    def __init__(self, on: bool, total: int, text: str) -> None:
        self.on, self.total, self.text = on, total, text

    def __enter__(self):
        if not self.on:
            return lambda: None
        from rich.console import Console
        from rich.progress import Progress

        self.bar = Progress(console=Console(stderr=True), transient=True)
        self.bar.__enter__()
        task = self.bar.add_task(self.text, total=self.total)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc):
        if self.on:
            self.bar.__exit__(*exc)
        return False


# --------------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------------


def same_pipeline(pa: TargetProfile, pb: TargetProfile) -> bool:
    """True when two profiles compute the same for every op (names, summaries and calibration aside)."""
    return (pa.semantics == pb.semantics and pa.elementwise == pb.elementwise
            and pa.elementwise_engine == pb.elementwise_engine and pa.quantize_rounding == pb.quantize_rounding)


_NOT_COMPUTED = ("schema_version", "name", "summary", "reference", "calibration")


def profile_differences(pa: TargetProfile, pb: TargetProfile) -> list[str]:
    """``"<key path>: <A> vs <B>"`` for every computing entry where the resolved profiles differ."""
    fa = _flatten({k: v for k, v in pa.describe().items() if k not in _NOT_COMPUTED})
    fb = _flatten({k: v for k, v in pb.describe().items() if k not in _NOT_COMPUTED})
    return [f"{k}: {fa.get(k, '-')} vs {fb.get(k, '-')}" for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# --------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------


def layer_keys(graph: Graph) -> dict:
    """id(node) -> the name a layer is reported and matched under: its node name; a name several nodes share
    (an importer may give a transpose and a reshape one name) gets ``[op]``, and ``#k`` if still not unique."""
    names = [n.name or n.outputs[0] for n in graph.nodes]
    counts = {name: names.count(name) for name in set(names)}
    keys, seen = {}, {}
    for node, name in zip(graph.nodes, names):
        key = name if counts[name] == 1 else f"{name}[{node.op}]"
        seen[key] = seen.get(key, 0) + 1
        keys[id(node)] = key if seen[key] == 1 else f"{key}#{seen[key]}"
    return keys


def _is_integer_layer(graph: Graph, node) -> bool:
    """A node that writes an integer tensor (integer ops, quantize, integer data movement)."""
    return bool(node.outputs) and np.dtype(graph.tensor(node.outputs[0]).dtype).kind in "iu"


def _canonical_zero_point(t) -> tuple:
    zp = np.asarray(t.quant.zero_point, dtype=np.int64).reshape(-1)
    dt = np.dtype(t.dtype)
    offset = np.iinfo(dt).min if dt.kind in "iu" and dt.itemsize <= 2 else 0   # int8 zp -3 == uint8 zp 125
    return tuple(int(z) - int(offset) for z in zp)


def _describe_quant(t) -> str:
    if t.quant is None:
        return "not quantized"
    scale = np.asarray(t.quant.scale).reshape(-1)
    zp = np.asarray(t.quant.zero_point).reshape(-1)
    s = f"{float(scale[0]):.6g}" if scale.size == 1 else f"{scale.size} scales from {float(scale.min()):.4g}"
    return f"{np.dtype(t.dtype)} scale {s}, zero point {int(zp[0])}"


def _params_note(ga: Graph, node_a, gb: Graph, node_b) -> str | None:
    """What differs in the two graphs' quantisation of this layer, or None when it is the same."""
    if node_a.op != node_b.op or len(node_a.inputs) != len(node_b.inputs):
        return f"the layer is {node_a.op} on A and {node_b.op} on B"
    roles = ("input", "weights", "bias") if node_a.op in ("conv2d", "fully_connected") else \
        tuple(f"input {i}" for i in range(len(node_a.inputs)))
    pairs = list(zip(roles, node_a.inputs, node_b.inputs)) + [("output", node_a.outputs[0], node_b.outputs[0])]
    for role, name_a, name_b in pairs:
        if not name_a and not name_b:
            continue
        if not name_a or not name_b:
            return f"{role}: present on one target only"
        ta, tb = ga.tensor(name_a), gb.tensor(name_b)
        qa, qb = ta.quant, tb.quant
        if (qa is None) != (qb is None) or (qa is not None and (
                not np.array_equal(np.asarray(qa.scale), np.asarray(qb.scale))
                or _canonical_zero_point(ta) != _canonical_zero_point(tb)
                or np.dtype(ta.dtype).itemsize != np.dtype(tb.dtype).itemsize)):
            return f"{role} {name_a!r}: {_describe_quant(ta)} on A, {_describe_quant(tb)} on B"
        if ta.is_constant and tb.is_constant and np.dtype(ta.dtype).kind in "iu" and not np.array_equal(
                normalised(ta.data, ta), normalised(tb.data, tb)):
            n = int(np.count_nonzero(normalised(ta.data, ta) != normalised(tb.data, tb)))
            return f"{role} {name_a!r}: {n} quantized values differ"
    return None


def _as_dtype(arr: np.ndarray, ta, tb) -> np.ndarray:
    """A's tensor in B's graph's dtype (exact: an int8 <-> uint8 copy moves by 128 with its zero point)."""
    from hwsim.sim.ops.common import flip8

    want = np.dtype(tb.dtype)
    if arr.dtype == want:
        return arr
    if want.kind == "f":
        return arr.astype(want)
    if arr.dtype.itemsize == want.itemsize == 1:
        return flip8(arr)
    raise ValueError(f"tensor {ta.name!r}: {arr.dtype} on A, {want} on B")


def _compare(va, ta, vb, tb, exact: bool):
    """(difference B - A in A's output LSB, exact integers?).  Exact when both share quantisation."""
    if exact or ta.quant is None or tb.quant is None:
        return normalised(vb, tb) - normalised(va, ta), True
    sa = float(np.asarray(ta.quant.scale).reshape(-1)[0])
    sb = float(np.asarray(tb.quant.scale).reshape(-1)[0])
    real = sb * normalised(vb, tb).astype(np.float64) - sa * normalised(va, ta).astype(np.float64)
    return real / sa, False


def _histogram(diff: np.ndarray) -> dict:
    mag = np.abs(np.rint(diff[diff != 0])).astype(np.int64)
    mag = np.maximum(mag, 1)        # a non-zero real difference below half an LSB still counts in "1"
    hist = {}
    for label, lo, hi in HISTOGRAM_BINS:
        n = int(np.count_nonzero((mag >= lo) & (mag <= hi)))
        if n:
            hist[label] = n
    return hist


def _inputs_differ(ga, gb, node_a, node_b, res_a, res_b) -> bool:
    for name_a, name_b in zip(node_a.inputs, node_b.inputs):
        if not name_a or ga.tensor(name_a).is_constant:
            continue
        xa, xb = res_a.tensors[name_a], res_b.tensors[name_b]
        ta, tb = ga.tensor(name_a), gb.tensor(name_b)
        if xa.dtype.kind == "f" or xb.dtype.kind == "f":
            if not np.array_equal(xa, xb):
                return True
        elif not np.array_equal(normalised(xa, ta), normalised(xb, tb)):
            return True
    return False


def _layer_diff(ga, gb, node_a, node_b, key, pa, pb, res_a, res_b, n_threads, notes) -> LayerDiff:
    out_a, out_b = node_a.outputs[0], node_b.outputs[0]
    ya, yb = ga.tensor(out_a), gb.tensor(out_b)
    va, vb = res_a.tensors[out_a], res_b.tensors[out_b]
    params_note = _params_note(ga, node_a, gb, node_b)
    diff, exact = _compare(va, ya, vb, yb, params_note is None)
    differ = int(np.count_nonzero(diff))
    max_lsb = (int(np.abs(diff).max()) if exact else float(np.abs(diff).max())) if differ else 0
    inputs_differ = _inputs_differ(ga, gb, node_a, node_b, res_a, res_b)
    base = dict(name=key, op=node_a.op, source_op=node_a.source_op, output=out_a, elements=int(diff.size),
                differ=differ, max_lsb=max_lsb, histogram=_histogram(diff), inputs_differ=inputs_differ,
                params_note=params_note)
    if params_note is not None:
        causes = [_params_cause(params_note, diff, va, vb, ya, yb, pa, pb)] if differ else []
        return LayerDiff(**base, status="params_differ" if differ else "same", introduced=None, causes=causes)
    a_inputs = {n: res_a.tensors[n] for n in node_a.inputs if n and not ga.tensor(n).is_constant}
    try:
        b_inputs = {nb: _as_dtype(res_a.tensors[na], ga.tensor(na), gb.tensor(nb))
                    for na, nb in zip(node_a.inputs, node_b.inputs) if na and not ga.tensor(na).is_constant}
        b_run = run_node(gb, node_b, pb, b_inputs, n_threads)
    except ValueError as exc:
        notes.append(f"layer {key!r}: could not re-run {pb.name}'s layer on {pa.name}'s inputs ({exc})")
        status = "propagated" if differ and inputs_differ else ("introduced" if differ else "same")
        return LayerDiff(**base, status=status, introduced=None)
    b_on_a = normalised(b_run.output, yb)
    introduced = int(np.count_nonzero(b_on_a != normalised(va, ya)))
    causes = []
    if introduced:
        a_run = NodeRun(va, (res_a.accumulators or {}).get(out_a), (res_a.counters or {}).get(node_a.name or out_a, {}))
        causes = explain_layer(ga, node_a, pa, pb, a_inputs, a_run, b_on_a, n_threads)
        status = "introduced+propagated" if inputs_differ and differ else "introduced"
    else:
        status = "propagated" if differ else "same"
    return LayerDiff(**base, status=status, introduced=introduced, causes=causes)


def _params_cause(note: str, diff, va, vb, ya, yb, pa: TargetProfile, pb: TargetProfile) -> Cause:
    mask = diff != 0
    idx = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(mask)[0]), mask.shape))
    sa = float(np.asarray(ya.quant.scale).reshape(-1)[0]) if ya.quant is not None else 1.0
    sb = float(np.asarray(yb.quant.scale).reshape(-1)[0]) if yb.quant is not None else 1.0
    qa, qb = int(va[idx]), int(vb[idx])
    za, zb = qa - int(normalised(va, ya)[idx]), qb - int(normalised(vb, yb)[idx])
    why = (f"A: {sa:.6g} * ({qa} - {za}) = {sa * (qa - za):.6g}; B: {sb:.6g} * ({qb} - {zb}) = {sb * (qb - zb):.6g}")
    method = ""
    if pa.calibration != pb.calibration:
        method = f"; A calibrates with {pa.calibration.value}, B with {pb.calibration.value}"
    return Cause("quant_params", "quant_params", "", "", int(np.count_nonzero(mask)),
                 int(math.ceil(float(np.abs(diff).max()))),
                 f"the model was quantized separately for each target and this layer's quantisation differs ({note}"
                 f"{method})", {"index": list(idx), "a": qa, "b": qb, "why": why})


def _output_diff(name: str, oa: np.ndarray, ob: np.ndarray) -> OutputDiff:
    fa, fb = np.asarray(oa, dtype=np.float64), np.asarray(ob, dtype=np.float64)
    differ = int(np.count_nonzero(fa != fb))
    max_abs = float(np.abs(fa - fb).max()) if fa.size else 0.0
    top1 = rows = None
    if fa.ndim == 2 and fa.shape[1] > 1:
        rows = int(fa.shape[0])
        top1 = int(np.count_nonzero(fa.argmax(axis=1) == fb.argmax(axis=1)))
    return OutputDiff(name, int(fa.size), differ, max_abs, top1, rows)

"""``simulate(graph, target, inputs)``: run a quantized graph exactly as a target computes it.

Integer ops go through the C kernels (:mod:`hwsim.kernels`) with the specs
:func:`hwsim.layer_specs` derives from the target; elementwise ops use the
arithmetic the target's ``elementwise`` section names; ops whose output is
float run in float32 (:mod:`hwsim.sim.float_ref`).

Preparation -- checking that the target can express every parameter, deriving
kernel specs, packing weights -- happens once per (graph, target) and is
cached (keyed by the graph object, dropped when the graph is garbage
collected), so repeated calls only run kernels.  A graph that is changed after
a call needs :func:`clear_cache`.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass, field

import numpy as np

from hwsim.graph.ir import Graph
from hwsim.sim.ops import PREPARE
from hwsim.sim.ops.common import PrepareContext, RunContext, SimulationError

__all__ = ["simulate", "SimResult", "SimulationError", "clear_cache", "prepare", "check_inputs",
           "to_ir_layout", "from_ir_layout", "SUPPORTED_OPS"]

SUPPORTED_OPS = tuple(sorted(PREPARE))

_NCHW_TO_NHWC = (0, 2, 3, 1)
_NHWC_TO_NCHW = (0, 3, 1, 2)


@dataclass
class SimResult:
    """What :func:`simulate` returns.

    Attributes
    ----------
    outputs : dict name -> ndarray
        The model's outputs in model order, in the model's layout and dtype.
    tensors : dict name -> ndarray, or None
        With ``trace``: every tensor the run produced or read (inputs,
        intermediates, outputs), in the IR layout (NHWC for rank-4).
    accumulators : dict output tensor name -> int64 ndarray, or None
        With ``trace``: the final accumulators of every integer conv / fully_connected.
    counters : dict node name -> dict, or None
        With ``trace``: per integer layer, the narrowings that changed a value
        (``group_events``, ``acc_events``), saturated or wrapped outputs
        (``out_events``) and the largest ``|acc|`` (``max_abs_acc``).
    deviations : list of str
        Nodes whose result hwsim cannot promise bit for bit (float ops whose
        summation order or math library is the engine's own), one message each.
        Empty when every op is emulated exactly.
    """

    outputs: dict
    tensors: dict | None = None
    accumulators: dict | None = None
    counters: dict | None = None
    deviations: list = field(default_factory=list)


@dataclass
class Plan:
    """A graph prepared for one target: (node, run function) per node, in order."""

    steps: list
    deviations: list = field(default_factory=list)


#: Float ops whose result depends on the engine's summation order or math library
#: (MLAS SGEMM, its exp/tanh kernels): hwsim runs them in numpy float32, so after the
#: next quantize they may differ from the engine by a few LSB.
_FLOAT_OPS_NOT_EXACT = frozenset({"conv2d", "fully_connected", "matmul", "mean", "avg_pool2d", "softmax",
                                  "logistic", "tanh", "hard_swish"})


def _float_deviations(graph: Graph) -> list:
    notes = []
    for node in graph.nodes:
        if node.op not in _FLOAT_OPS_NOT_EXACT or not node.inputs or not node.inputs[0]:
            continue
        if np.dtype(graph.tensor(node.inputs[0]).dtype).kind == "f":
            notes.append(f"node {node.name!r} ({node.source_op or node.op}) runs in float32 here; the engine's own "
                         "summation order / math library may differ, so results after it are not guaranteed bit for bit")
    return notes


#: id(graph) -> (weak reference to the graph, {target key: Plan}); entries leave with their graph
_PLANS: dict = {}


def _target_key(profile) -> str:
    # the resolved profile as canonical JSON (built once when the profile was loaded)
    resolved = getattr(profile, "_resolved_json", None) or json.dumps(profile.describe(), sort_keys=True)
    return profile.name + "\n" + resolved


def clear_cache(graph: Graph) -> None:
    """Forget the prepared plans of ``graph`` (call after changing it)."""
    entry = _PLANS.get(id(graph))
    if entry is not None and entry[0]() is graph:
        entry[1].clear()


def _plans_of(graph: Graph) -> dict:
    entry = _PLANS.get(id(graph))
    if entry is None or entry[0]() is not graph:
        key = id(graph)
        entry = (weakref.ref(graph, lambda _ref, key=key: _PLANS.pop(key, None)), {})
        _PLANS[key] = entry
    return entry[1]


def prepare(graph: Graph, target) -> Plan:
    """Prepare ``graph`` for ``target`` (cached on the graph; see the module docstring)."""
    from hwsim.targets import TargetProfile, load_target

    if not isinstance(graph, Graph):
        raise ValueError(f"graph: expected a hwsim.graph.ir.Graph (see hwsim.load_model), got {type(graph).__name__}")
    profile = target if isinstance(target, TargetProfile) else load_target(target)
    plans = _plans_of(graph)
    key = _target_key(profile)
    if key in plans:
        return plans[key]
    ctx = PrepareContext(graph, profile)
    steps = []
    for node in graph.nodes:
        fn = PREPARE.get(node.op)
        if fn is None:
            raise SimulationError(f"node {node.name!r}: unsupported op {node.source_op or node.op!r}; supported: "
                                  f"{', '.join(SUPPORTED_OPS)}")
        steps.append((node, fn(node, ctx)))
    plan = Plan(steps, _float_deviations(graph) if graph.kind != "float" else [])
    plans[key] = plan
    return plan


def _model_shape(graph: Graph, shape: tuple) -> tuple:
    if graph.model_layout == "NCHW" and len(shape) == 4:
        return tuple(shape[i] for i in _NHWC_TO_NCHW)
    return tuple(shape)


def to_ir_layout(graph: Graph, x: np.ndarray) -> np.ndarray:
    """A model-layout array as the IR holds it (NCHW -> NHWC for rank 4 when the model is NCHW)."""
    if graph.model_layout == "NCHW" and x.ndim == 4:
        return np.ascontiguousarray(x.transpose(_NCHW_TO_NHWC))
    return np.ascontiguousarray(x)


def from_ir_layout(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_ir_layout`."""
    if graph.model_layout == "NCHW" and x.ndim == 4:
        return np.ascontiguousarray(x.transpose(_NHWC_TO_NCHW))
    return x


def _describe(shape, dtype) -> str:
    dims = ", ".join("N" if d is None else str(d) for d in shape)
    return f"shape [{dims}] and dtype {np.dtype(dtype)}"


def check_inputs(graph: Graph, inputs) -> dict:
    """Validate ``inputs`` (dict name -> array, model layout) against the graph's inputs.

    Float inputs may come in any float dtype and are converted to float32;
    integer inputs must have the model's dtype exactly.  Raises
    :class:`SimulationError` naming the tensor and the expected shape and dtype.
    """
    if not isinstance(inputs, dict):
        raise SimulationError(f"inputs: expected a dict tensor name -> array, got {type(inputs).__name__}")
    unknown = sorted(set(inputs) - set(graph.inputs))
    if unknown:
        raise SimulationError(f"inputs: the model has no input named {unknown[0]!r}; its inputs are "
                              f"{', '.join(graph.inputs)}")
    out = {}
    for name in graph.inputs:
        t = graph.tensor(name)
        want = _model_shape(graph, t.shape)
        expected = _describe(want, t.dtype)
        if name not in inputs:
            raise SimulationError(f"input {name!r} is missing; expected {expected}")
        arr = inputs[name]
        if not isinstance(arr, np.ndarray):
            arr = np.asarray(arr)
        dt = np.dtype(t.dtype)
        if dt.kind == "f":
            if arr.dtype.kind != "f":
                raise SimulationError(f"input {name!r}: got dtype {arr.dtype}; expected {expected}")
            arr = arr.astype(np.float32, copy=False)
        elif arr.dtype != dt:
            raise SimulationError(f"input {name!r}: got dtype {arr.dtype}; expected {expected}")
        if arr.ndim != len(want) or any(w is not None and w != s for w, s in zip(want, arr.shape)):
            raise SimulationError(f"input {name!r}: got shape {list(arr.shape)}; expected {expected}")
        out[name] = arr
    return out


def simulate(graph: Graph, target, inputs: dict, trace: bool = False, n_threads: int = 1) -> SimResult:
    """Run ``graph`` on ``target``, bit for bit as the target's engine computes it.

    Parameters
    ----------
    graph : hwsim.graph.ir.Graph
        A quantized graph (QDQ / QOperator ONNX or int8 TFLite, from
        :func:`hwsim.load_model`).  Float ops in it run in float32.
    target : str, path or TargetProfile
    inputs : dict name -> ndarray
        One array per model input, in the model's layout (NCHW for ONNX) and dtype.
    trace : bool
        Also return every tensor, the raw accumulators and the per-layer counters.
    n_threads : int
        Threads for the C kernels; the result never depends on it.

    Returns
    -------
    SimResult

    Raises
    ------
    SimulationError (a ValueError)
        Unsupported op, parameters the target cannot express (named tensor), or
        a missing / misshaped input (named, with the expected shape and dtype).
    """
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
        raise ValueError(f"n_threads: expected an integer >= 1, got {n_threads!r}")
    plan = prepare(graph, target)
    env = {name: to_ir_layout(graph, arr) for name, arr in check_inputs(graph, inputs).items()}
    rctx = RunContext(n_threads=int(n_threads), trace=bool(trace))
    for node, run in plan.steps:
        try:
            run(env, rctx)
        except SimulationError:
            raise
        except ValueError as exc:
            raise SimulationError(f"node {node.name!r} ({node.source_op or node.op}): {exc}") from exc
    outputs = {name: from_ir_layout(graph, env[name]) for name in graph.outputs}
    if not trace:
        return SimResult(outputs, deviations=list(plan.deviations))
    return SimResult(outputs, tensors=env, accumulators=rctx.accumulators, counters=rctx.counters,
                     deviations=list(plan.deviations))



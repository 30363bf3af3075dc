"""The pipeline stages of one layer on a target profile, profiles with one stage swapped, and one-node runs.

A target computes an integer layer in stages: for a GEMM / convolution the product group (with the input's
signedness), the accumulator, where the input zero point enters, where the bias enters, the requantisation and
the output overflow, plus the quantize rounding that places a fused activation's bounds; for a non-GEMM integer op
its ``elementwise`` scheme; for a quantize node the float -> int rounding.  :class:`Stage` reads one of them from a
profile and builds a copy of a profile with another profile's value swapped in (a *hybrid*, used by
:mod:`hwsim.report.causes` for counterfactual runs).  :func:`run_node` runs one node through the executor's own
per-op preparation, so every integer it returns comes from the C kernels, exactly as :func:`hwsim.simulate`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from hwsim.graph.ir import Graph, Node
from hwsim.sim.ops import PREPARE
from hwsim.sim.ops.common import PrepareContext, RunContext
from hwsim.targets import ELEMENTWISE_SCHEMES, TargetProfile

__all__ = ["GEMM_OPS", "NodeRun", "Stage", "op_key", "stages_for", "pipeline_differences", "run_node", "normalised"]

#: IR ops that run through the GEMM / convolution kernels
GEMM_OPS = frozenset({"conv2d", "fully_connected", "matmul"})
#: IR ops whose arithmetic the profile's ``elementwise`` section names (the key is the op name)
_ELEMENTWISE_OPS = frozenset(ELEMENTWISE_SCHEMES)


@dataclass
class NodeRun:
    """One node re-run on given inputs: its output, and (GEMM layers) accumulators and counters."""

    output: np.ndarray
    accumulators: np.ndarray | None = None
    counters: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """A stage of one layer's pipeline: ``get(profile)`` reads it, ``put(profile, value)`` swaps it in."""

    name: str
    get: Callable
    put: Callable
    show: Callable


def _replace_semantics(profile: TargetProfile, key: tuple, **changes) -> TargetProfile:
    table = [(k, dataclasses.replace(s, **changes) if k == key else s) for k, s in profile.semantics]
    return dataclasses.replace(profile, semantics=tuple(table))


def _replace_accum(profile: TargetProfile, key: tuple, **changes) -> TargetProfile:
    sem = dict(profile.semantics)[key]
    return _replace_semantics(profile, key, accum=dataclasses.replace(sem.accum, **changes))


def _sem(profile: TargetProfile, key: tuple):
    return dict(profile.semantics)[key]


def _gemm_stages(key: tuple) -> list[Stage]:
    def group_get(p):
        s = _sem(p, key)
        return (s.input.signed, s.input.bits, s.accum.group, s.accum.group_bits, s.accum.group_overflow)

    def group_put(p, v):
        signed, _, group, bits, overflow = v
        sem = _sem(p, key)
        p = _replace_semantics(p, key, input=dataclasses.replace(sem.input, signed=signed))
        return _replace_accum(p, key, group=group, group_bits=bits, group_overflow=overflow)

    def group_show(v):
        signed, in_bits, group, bits, overflow = v
        what = {1: "one product at a time", 2: "pairs of products", 4: "groups of 4 products"}[group]
        register = "" if bits == 64 else f" in a {bits}-bit {overflow.value} register"   # 64: the exact default
        return f"{'s' if signed else 'u'}{in_bits} input, {what}{register}"

    def requant_get(p):
        s = _sem(p, key)
        tail = None if s.requant_tail is None else (s.requant_tail.multiple, s.requant_tail.requant)
        return (s.requant, tail)

    def requant_put(p, v):
        requant, tail = v
        sem = _sem(p, key)
        tail_obj = None
        if tail is not None:
            tail_obj = dataclasses.replace(sem.requant_tail, multiple=tail[0], requant=tail[1]) \
                if sem.requant_tail is not None else _tail(tail)
        return _replace_semantics(p, key, requant=requant, requant_tail=tail_obj)

    def requant_show(v):
        requant, tail = v
        text = f"{requant.scheme.value} ({requant.rounding.value})"
        if tail is not None:
            text += f", channels past a multiple of {tail[0]}: {tail[1].scheme.value} ({tail[1].rounding.value})"
        return text

    return [
        Stage("product_group", group_get, group_put, group_show),
        Stage("accumulator", lambda p: (_sem(p, key).accum.acc_bits, _sem(p, key).accum.acc_overflow),
              lambda p, v: _replace_accum(p, key, acc_bits=v[0], acc_overflow=v[1]),
              lambda v: f"{v[0]}-bit {v[1].value}"),
        Stage("zero_point_placement", lambda p: _sem(p, key).accum.input_zero_point,
              lambda p, v: _replace_accum(p, key, input_zero_point=v), lambda v: v.value),
        Stage("bias_placement", lambda p: _sem(p, key).accum.bias_first,
              lambda p, v: _replace_accum(p, key, bias_first=v), lambda v: "bias first" if v else "bias last"),
        Stage("requantize", requant_get, requant_put, requant_show),
        Stage("output_overflow", lambda p: _sem(p, key).output_overflow,
              lambda p, v: _replace_semantics(p, key, output_overflow=v), lambda v: v.value),
    ]


def _tail(tail: tuple):
    from hwsim.targets import RequantTail

    return RequantTail(multiple=tail[0], requant=tail[1])


def _with_quantize_rounding(p: TargetProfile, rounding) -> TargetProfile:
    table = tuple((k, dataclasses.replace(s, quantize_rounding=rounding)) for k, s in p.semantics)
    return dataclasses.replace(p, quantize_rounding=rounding, semantics=table)


_CLAMP_STAGE = Stage("activation_clamp", lambda p: p.quantize_rounding, _with_quantize_rounding,
                     lambda v: f"bounds rounded {v.value}")


def _quantize_stage() -> Stage:
    return Stage("quantize",
                 lambda p: (p.quantize_rounding, p.elementwise_engine),
                 lambda p, v: dataclasses.replace(_with_quantize_rounding(p, v[0]), elementwise_engine=v[1]),
                 lambda v: f"{v[0].value}" + (f" ({v[1]} kernel)" if v[1] else ""))


def _elementwise_stage(op: str) -> Stage:
    def get(p):
        return (dict(p.elementwise).get(op), p.elementwise_engine)

    def put(p, v):
        table = dict(p.elementwise)
        if v[0] is None:
            table.pop(op, None)
        else:
            table[op] = v[0]
        ordered = tuple((k, table[k]) for k in ELEMENTWISE_SCHEMES if k in table)
        return dataclasses.replace(p, elementwise=ordered, elementwise_engine=v[1])

    return Stage("elementwise", get, put, lambda v: f"{op}: {v[0]}" + (f" ({v[1]})" if v[1] else ""))


def op_key(graph: Graph, node: Node, profile: TargetProfile) -> tuple | None:
    """The (op type, activation bits) whose semantics a GEMM node uses on ``profile`` (as the executor picks it)."""
    if node.op not in GEMM_OPS:
        return None
    x = graph.tensor(node.inputs[0])
    if np.dtype(x.dtype).kind not in "iu":
        return None
    op = node.op
    if op == "conv2d":
        w = graph.tensor(node.inputs[1]).data
        groups = int(node.attrs.get("groups", 1))
        if w is not None and groups > 1 and w.shape[3] == 1:      # as hwsim.sim.ops.linear decides
            op = "depthwise_conv2d"
    bits = 16 if np.dtype(x.dtype).itemsize == 2 else profile.activation_bits[0]
    return (op, bits)


def stages_for(graph: Graph, node: Node, profile: TargetProfile) -> list[Stage]:
    """The stages of ``node``'s pipeline that a target profile decides."""
    key = op_key(graph, node, profile)
    if key is not None:
        return _gemm_stages(key) + [_CLAMP_STAGE]
    if node.op in ("quantize", "requantize"):
        return [_quantize_stage()]
    if node.op in _ELEMENTWISE_OPS:
        return [_elementwise_stage(node.op), _CLAMP_STAGE]
    return []


def pipeline_differences(graph: Graph, node: Node, pa: TargetProfile, pb: TargetProfile) -> list[tuple]:
    """(stage, A's value, B's value) for every stage of ``node`` where the two profiles differ."""
    out = []
    for stage in stages_for(graph, node, pa):
        try:
            va, vb = stage.get(pa), stage.get(pb)
        except KeyError:      # B has no semantics for this op variant: reported when it runs
            continue
        if va != vb:
            out.append((stage, va, vb))
    return out


# --------------------------------------------------------------------------------------------------
# Running one node
# --------------------------------------------------------------------------------------------------


def run_node(graph: Graph, node: Node, profile: TargetProfile, inputs: dict, n_threads: int = 1) -> NodeRun:
    """Run ``node`` of ``graph`` alone on ``profile`` with the given input tensors (IR layout).

    Uses the executor's own per-op preparation and run functions, with tracing on, so
    integer results come from the C kernels exactly as in :func:`hwsim.simulate`.
    """
    run = PREPARE[node.op](node, PrepareContext(graph, profile))
    rctx = RunContext(n_threads=n_threads, trace=True)
    env = dict(inputs)
    run(env, rctx)
    out_name = node.outputs[0]
    return NodeRun(env[out_name], rctx.accumulators.get(out_name), rctx.counters.get(node.name or out_name, {}))


def normalised(arr: np.ndarray, tensor) -> np.ndarray:
    """Integer codes as ``q - zero_point`` (int64): comparable across int8 / uint8 storage of one tensor."""
    zp = 0 if tensor.quant is None else int(np.asarray(tensor.quant.zero_point).reshape(-1)[0])
    return np.asarray(arr).astype(np.int64) - zp



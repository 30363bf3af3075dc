"""Why two targets disagree on one layer: the pipeline stages, counterfactual runs and the cause of each difference.

A target computes an integer layer as a pipeline of stages (product group, accumulator, zero-point placement,
bias placement, requantisation, output overflow; for non-GEMM ops the ``elementwise`` scheme; for quantize nodes
the float -> int rounding).  Given a layer where target B, fed exactly target A's input tensors, gives other
values than A, :func:`explain_layer` finds which stage is responsible by counterfactual: it starts from A's
pipeline and swaps in one of B's stages at a time, re-running the layer through the executor's own per-op
preparation (so every integer result comes from the C kernels).  The stage whose swap brings the result closest
to B's is taken as a cause, the swap is kept, and the search repeats until A's modified pipeline gives B's
values (or no stage helps: the rest is reported as ``unexplained``).  Each cause is then refined from the
arithmetic itself -- a rounding difference is checked to sit exactly on a .5 tie of the exactly rescaled
accumulator (Python ints / fractions), a product-group difference is called int16 pair saturation when the
group stage really clipped, and so on -- and carries one worked example element a user can check by hand.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np

from hwsim.graph.ir import Graph, Node
from hwsim.oracle import primitives as P
from hwsim.oracle.requantize import to_float32, to_float64
from hwsim.sim.ops import PREPARE
from hwsim.sim.ops.common import PrepareContext, RunContext
from hwsim.targets import ELEMENTWISE_SCHEMES, TargetProfile
from hwsim.types import Overflow, RequantScheme

__all__ = ["Cause", "NodeRun", "Stage", "stages_for", "pipeline_differences", "run_node", "explain_layer",
           "GEMM_OPS", "normalised"]

#: IR ops that run through the GEMM / convolution kernels
GEMM_OPS = frozenset({"conv2d", "fully_connected", "matmul"})
#: IR ops whose arithmetic the profile's ``elementwise`` section names (the key is the op name)
_ELEMENTWISE_OPS = frozenset(ELEMENTWISE_SCHEMES)
_FLOAT_SCHEMES = frozenset({RequantScheme.FLOAT32, RequantScheme.FLOAT64_ROUND})
_DOUBLE = frozenset({RequantScheme.DOUBLE_ROUNDING, RequantScheme.SRDHM_HALF_UP})
#: fixed-point schemes that round the exact value once (shift_only: acc / 2^n rounded once)
_SINGLE = frozenset({RequantScheme.SINGLE_ROUNDING, RequantScheme.NEON_SINGLE, RequantScheme.SHIFT_ONLY})


@dataclass
class Cause:
    """One reason why B's values differ from A's on a layer.

    Attributes
    ----------
    kind : str
        ``tie_rounding``, ``rounding_rule``, ``double_vs_single_rounding``, ``float_vs_fixed_requant``,
        ``requant_scheme``, ``pair_saturation``, ``pair_wrap``, ``product_grouping``, ``accumulator_overflow``,
        ``zero_point_placement``, ``bias_placement``, ``output_overflow``, ``activation_clamp``,
        ``quantize_rounding``, ``elementwise_scheme``, ``quant_params`` or ``unexplained``.
    stage : str
        The pipeline stage whose swap explains it (``requantize``, ``product_group``, ...; ``quant_params`` /
        ``unexplained`` for those kinds).
    a, b : str
        That stage on target A and on target B, in the profile's vocabulary.
    elements : int
        Output elements this cause accounts for.
    max_lsb : int
        The largest difference (output LSB) among them.
    explanation : str
        One sentence saying why.
    example : dict or None
        One worked element: ``index`` (IR layout, NHWC for rank 4), ``acc_a`` / ``acc_b`` (the accumulators
        entering requantisation, GEMM layers only), ``a`` / ``b`` (the two output codes) and ``why``.
    """

    kind: str
    stage: str
    a: str
    b: str
    elements: int
    max_lsb: int
    explanation: str
    example: dict | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class NodeRun:
    """One node re-run on given inputs: its output, and (GEMM layers) accumulators and counters."""

    output: np.ndarray
    accumulators: np.ndarray | None = None
    counters: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# Stages: read one stage of a profile, and build a profile with another profile's stage swapped in
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Explaining a layer
# --------------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    graph: Graph
    node: Node
    pa: TargetProfile
    pb: TargetProfile
    inputs: dict          # A's input tensors of the node (IR layout, graph's dtypes)
    a: NodeRun            # A's own run of the node on them
    b_values: np.ndarray  # B's values on them, normalised (q - zp)
    n_threads: int


def explain_layer(graph: Graph, node: Node, pa: TargetProfile, pb: TargetProfile, inputs: dict, a_run: NodeRun,
                  b_values: np.ndarray, n_threads: int = 1) -> list[Cause]:
    """The causes of ``B(inputs) != A(inputs)`` on ``node``, by counterfactual (see the module docstring).

    ``a_run`` is A's own run on ``inputs``; ``b_values`` B's output on the same inputs, normalised with
    :func:`normalised`.
    """
    layer = _Layer(graph, node, pa, pb, inputs, a_run, b_values, n_threads)
    y_t = graph.tensor(node.outputs[0])
    current_profile, current = pa, a_run
    current_values = normalised(a_run.output, y_t)
    differs = current_values != b_values
    remaining = pipeline_differences(graph, node, pa, pb)
    causes: list[Cause] = []
    while differs.any() and remaining:
        best = None
        for entry in remaining:
            stage, _, vb = entry
            try:
                trial = stage.put(current_profile, vb)
                run = run_node(graph, node, trial, inputs, n_threads)
            except ValueError:          # the hybrid cannot run this layer: not this stage alone
                continue
            values = normalised(run.output, y_t)
            left = int(np.count_nonzero(values != b_values))
            if best is None or left < best[0]:
                best = (left, entry, trial, run, values)
        if best is None or best[0] >= int(np.count_nonzero(differs)):
            break
        left, entry, trial, run, values = best
        fixed = differs & (values == b_values)
        causes += _classify(layer, entry, fixed, current_profile, current, current_values, trial, run, values)
        remaining.remove(entry)
        current_profile, current, current_values = trial, run, values
        differs = current_values != b_values
    if differs.any():
        n = int(np.count_nonzero(differs))
        lsb = int(np.abs(current_values - b_values)[differs].max())
        idx = _first(differs)
        causes.append(Cause(
            "unexplained", "unexplained", "", "", n, lsb,
            "no single stage of the two profiles accounts for these elements" if remaining or causes else
            "the two profiles agree on every stage hwsim models for this op, yet the results differ",
            {"index": list(idx), "a": int(current.output[idx]), "b": int(b_values[idx] + _zp(y_t)),
             "why": "no swapped stage reproduces B's value"}))
    return causes


def _zp(t) -> int:
    return 0 if t.quant is None else int(np.asarray(t.quant.zero_point).reshape(-1)[0])


def _first(mask: np.ndarray) -> tuple:
    return tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(mask)[0]), mask.shape))


def _classify(layer: _Layer, entry: tuple, fixed: np.ndarray, before_profile, before: NodeRun, before_values,
              after_profile, after: NodeRun, after_values) -> list[Cause]:
    """The cause(s) behind the elements ``fixed`` by swapping in ``entry``'s stage: one per kind (a
    requantisation swap may fix double-rounding cases and exact ties at once: two causes)."""
    stage, va, vb = entry
    if stage.name == "requantize":
        parts = _split_requant(layer, va, vb, fixed, before_profile, before, after_profile)
    else:
        idx = _first(fixed)
        parts = [(fixed, *_refine(layer, stage.name, va, vb, fixed, idx, before, after))]
    causes = []
    for mask, kind, explanation, why in parts:
        idx = _first(mask)
        example = {"index": list(idx), "a": int(before.output[idx]), "b": int(after.output[idx])}
        if before.accumulators is not None and after.accumulators is not None:
            example["acc_a"] = int(before.accumulators[idx])
            example["acc_b"] = int(after.accumulators[idx])
        example["why"] = why(idx) if callable(why) else why
        lsb = int(np.abs(before_values - after_values)[mask].max())
        causes.append(Cause(kind, stage.name, stage.show(va), stage.show(vb), int(np.count_nonzero(mask)), lsb,
                            explanation, example))
    return causes


def _refine(layer, stage: str, va, vb, fixed, idx, run_a: NodeRun, run_b: NodeRun):
    """(kind, one-sentence explanation, worked-example text) for a non-requantisation stage."""
    if stage == "product_group":
        ev_a, ev_b = int(run_a.counters.get("group_events", 0)), int(run_b.counters.get("group_events", 0))
        side, value, events = ("B", vb, ev_b) if ev_b or not ev_a else ("A", va, ev_a)
        signed, in_bits, group, bits, overflow = value
        if events and bits < 32:
            kind = "pair_saturation" if overflow is Overflow.SATURATE else "pair_wrap"
            verb = "saturated" if overflow is Overflow.SATURATE else "wrapped"
            ex = ""
            if idx is not None and run_a.accumulators is not None and run_b.accumulators is not None:
                exact, narrow = (run_a, run_b) if side == "B" else (run_b, run_a)
                ex = (f"with exact groups the accumulator is {exact.accumulators[idx]}; with {bits}-bit "
                      f"{overflow.value} groups of {group} products it is {narrow.accumulators[idx]}")
            hint = ""
            if group == 2 and bits == 16:
                hint = " (as x86 VPMADDUBSW does)" if overflow is Overflow.SATURATE else " (as ARM SMLAL int16 pairs do)"
            return (kind, f"{side} sums {'s' if signed else 'u'}{in_bits} x s8 products in groups of {group} in a "
                          f"{bits}-bit {overflow.value} register{hint} and {events} group sums {verb}", ex)
        return ("product_grouping", "the two targets group the products differently", _acc_text(run_a, run_b, idx))
    if stage == "accumulator":
        ev_a, ev_b = int(run_a.counters.get("acc_events", 0)), int(run_b.counters.get("acc_events", 0))
        side, value, events = ("B", vb, ev_b) if ev_b or not ev_a else ("A", va, ev_a)
        verb = "saturated" if value[1] is Overflow.SATURATE else "wrapped"
        return ("accumulator_overflow",
                f"A accumulates in {va[0]}-bit {va[1].value}, B in {vb[0]}-bit {vb[1].value}, and {side}'s "
                f"{value[0]}-bit accumulator {verb} {events} times", _acc_text(run_a, run_b, idx))
    if stage == "zero_point_placement":
        return ("zero_point_placement",
                f"A handles the input zero point {va.value}, B {vb.value}; this changes the result only because a "
                "narrowing stage (product group or accumulator) overflows differently", _acc_text(run_a, run_b, idx))
    if stage == "bias_placement":
        return ("bias_placement", f"A adds the bias {'first' if va else 'last'}, B {'first' if vb else 'last'}; "
                                  "a narrow accumulator then overflows at a different point",
                _acc_text(run_a, run_b, idx))
    if stage == "output_overflow":
        return ("output_overflow", f"out-of-range outputs {va.value} on A and {vb.value} on B", "")
    if stage == "activation_clamp":
        return ("activation_clamp", f"the fused activation bounds are rounded {va.value} on A and {vb.value} on B", "")
    if stage == "quantize":
        return _refine_quantize(layer, va, vb, fixed, idx, run_a, run_b)
    if stage == "elementwise":
        return ("elementwise_scheme", f"{layer.node.op} is computed with {va[0]} on A and {vb[0]} on B", "")
    return (stage, f"the {stage} stage differs", "")


def _acc_text(run_a: NodeRun, run_b: NodeRun, idx) -> str:
    if idx is None or run_a.accumulators is None or run_b.accumulators is None:
        return ""
    return f"accumulator {run_a.accumulators[idx]} on A's pipeline, {run_b.accumulators[idx]} with B's stage"


# ---- requantisation -------------------------------------------------------------------------------


def _layer_requant(layer: _Layer, profile: TargetProfile):
    """The requantisation (RequantParams or SplitRequant) ``profile`` uses for the layer, as the executor derives it."""
    from hwsim.sim.ops.linear import _specs

    g, node = layer.graph, layer.node
    x_t, w_t, y_t = (g.tensor(node.inputs[0]), g.tensor(node.inputs[1]), g.tensor(node.outputs[0]))
    n_out = None if node.op == "matmul" else int(w_t.data.shape[0])
    spec, _, _, _ = _specs(node, PrepareContext(g, profile), op_key(g, node, profile)[0], x_t, w_t, y_t, n_out)
    return spec.requant


def _channel_params(requant, channel: int) -> tuple:
    """(RequantParams, index into its per-channel tuples) for output channel ``channel``."""
    from hwsim.layer_specs import SplitRequant

    if isinstance(requant, SplitRequant):
        if channel >= requant.first_tail_channel:
            return requant.tail, channel - requant.first_tail_channel
        return requant.head, channel
    return requant, channel


def _pick(values: tuple, c: int):
    return values[c if len(values) > 1 else 0]


def rescaled(acc: int, p, c: int) -> Fraction:
    """The exact value requantisation ``p`` computes for ``acc`` before any integer rounding (before the zero
    point): the float product for the float schemes, ``acc * M * 2^(shift - 31)`` for the fixed-point ones."""
    s = p.scheme
    if s is RequantScheme.FLOAT32:
        return to_float32(to_float32(acc) * Fraction(_pick(p.scale, c)))
    if s is RequantScheme.FLOAT64_ROUND:
        return to_float64(Fraction(acc) * Fraction(_pick(p.scale, c)))
    shift = _pick(p.shift, c)
    if s is RequantScheme.SHIFT_ONLY:
        return Fraction(acc) * Fraction(2) ** shift
    m = _pick(p.multiplier, c)
    if s is RequantScheme.INT64_REDUCED:     # the 16x8 kernels' 15-bit multiplier (SEMANTICS 1.7)
        return Fraction(P.wrap_signed(acc, 48) * _reduced(m)) * Fraction(2) ** (shift - 15)
    x = P.wrap_signed(acc, 32)
    if s is RequantScheme.NEON_SINGLE:       # SSHL by shift - rs first (it wraps for shift >= 0; SEMANTICS 2.3)
        rs = min(shift, -1)
        return Fraction(P.sshl(x, shift - rs) * m) * Fraction(2) ** (rs - 31)
    if s in _DOUBLE:                         # the int32 pre-shift for shift > 0 wraps (SEMANTICS 1.6)
        rs = max(-shift, 0)
        return Fraction(P.wrap_signed(x << max(shift, 0), 32) * m) * Fraction(2) ** (-31 - rs)
    return Fraction(x * m) * Fraction(2) ** (shift - 31)


def _reduced(m: int) -> int:
    """The int64 MultiplyByQuantizedMultiplier overload's multiplier: Q31 ``m`` rounded to 15 bits."""
    return (m + (1 << 15)) >> 16 if m < 0x7FFF0000 else 0x7FFF


def final_value(acc: int, p, c: int) -> Fraction:
    """The value the *last* rounding of ``p`` rounds: for double rounding (SRDHM, then a rounding shift) the
    high product already rounded by SRDHM, divided by 2^rs; else :func:`rescaled`."""
    if p.scheme in _DOUBLE:
        shift = _pick(p.shift, c)
        u = P.srdhm(P.wrap_signed(P.wrap_signed(acc, 32) << max(shift, 0), 32), _pick(p.multiplier, c))
        return Fraction(u, 1 << max(-shift, 0))
    return rescaled(acc, p, c)


def _is_tie(r: Fraction) -> bool:
    return r - (r.numerator // r.denominator) == Fraction(1, 2)


def _dec(r: Fraction) -> str:
    text = f"{float(r):.9f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _describe_requant(p, acc: int, c: int) -> str:
    """How ``p`` turns ``acc`` into its integer, with the exact intermediate values."""
    s = p.scheme
    r = rescaled(acc, p, c)
    if s is RequantScheme.FLOAT32:
        return f"fl32(fl32({acc}) * {float(_pick(p.scale, c))!r}) = {_dec(r)}, rounded {p.rounding.value}"
    if s is RequantScheme.FLOAT64_ROUND:
        return f"(double){acc} * {float(_pick(p.scale, c))!r} = {_dec(r)}, rounded {p.rounding.value}"
    if s is RequantScheme.SHIFT_ONLY:
        return f"{acc} * 2^{_pick(p.shift, c)} = {_dec(r)}, rounded {p.rounding.value}"
    shift = _pick(p.shift, c)
    if s is RequantScheme.INT64_REDUCED:
        return (f"{acc} * {_reduced(_pick(p.multiplier, c))} / 2^{15 - shift} = {_dec(r)} (the 15-bit multiplier of "
                "the int64 overload), rounded once half up")
    text = f"{acc} * {_pick(p.multiplier, c)} / 2^{31 - shift} = {_dec(r)}"
    if s in _DOUBLE:
        rs = max(-shift, 0)
        u = final_value(acc, p, c) * (1 << rs)
        stage2 = "half away from zero" if s is RequantScheme.DOUBLE_ROUNDING else "half up"
        return text + (f"; SRDHM first rounds the high product to {u} (= {_dec(final_value(acc, p, c))} after the "
                       f"shift by {rs}), which is then rounded {stage2}")
    if s in _SINGLE:
        return text + ", rounded once half up"
    return text + f" ({s.value})"


def _split_requant(layer: _Layer, va, vb, fixed, pa, run_a: NodeRun, pb) -> list:
    """Split the elements a requantisation swap fixes by what really parts them, each checked exactly on its
    accumulator (Python ints / fractions); (mask, kind, explanation, why) per non-empty group:

    * ``tie_rounding``: both pipelines round the same value, an exact .5 tie, by different rules;
    * ``double_vs_single_rounding``: one side rounds twice and its first rounding (SRDHM) lands exactly on a .5
      tie that the exact value ``acc * M / 2^(31 - shift)`` is not on (and, between a double- and a
      single-rounding fixed-point scheme, every other difference too);
    * otherwise the kind named by the two schemes (``float_vs_fixed_requant``, ``requant_scheme``, ...).
    """
    ra, rb = va[0], vb[0]
    generic = _scheme_kind(va, vb)
    if run_a.accumulators is None:
        return [(fixed, *generic, "")]
    zp = _zp(layer.graph.tensor(layer.node.outputs[0]))
    spec_a, spec_b = _layer_requant(layer, pa), _layer_requant(layer, pb)
    double_side = None
    if (ra.scheme in _DOUBLE) != (rb.scheme in _DOUBLE):
        double_side = "A" if ra.scheme in _DOUBLE else "B"
    tie, double = np.zeros_like(fixed), np.zeros_like(fixed)
    for flat in np.flatnonzero(fixed):
        idx = np.unravel_index(flat, fixed.shape)
        acc, c = int(run_a.accumulators[idx]), int(idx[-1])
        pa_c, pb_c = _channel_params(spec_a, c), _channel_params(spec_b, c)
        fa, fb = final_value(acc, *pa_c), final_value(acc, *pb_c)
        if fa == fb and _is_tie(fa):
            tie[idx] = True
        elif double_side is not None:
            params, cc = pa_c if double_side == "A" else pb_c
            double[idx] = _is_tie(final_value(acc, params, cc)) and not _is_tie(rescaled(acc, params, cc))

    def why(idx):
        acc, c = int(run_a.accumulators[idx]), int(idx[-1])
        return (f"accumulator {acc}: A computes {_describe_requant(*_with_acc(spec_a, acc, c))} -> "
                f"{int(run_a.output[idx]) - zp}; B computes {_describe_requant(*_with_acc(spec_b, acc, c))} -> "
                f"{int(layer.b_values[idx])} (values before the output zero point {zp})")

    rest = fixed & ~tie & ~double
    if generic[0] == "double_vs_single_rounding":
        double, rest = double | rest, np.zeros_like(fixed)
    parts = []
    if tie.any():
        parts.append((tie, "tie_rounding", f"the rescaled accumulator sits exactly on a .5 tie and A rounds ties "
                                           f"{_final_rule(ra)} while B rounds them {_final_rule(rb)}", why))
    if double.any():
        d_side = double_side or ("A" if ra.scheme in _DOUBLE else "B")
        d, o = (ra, rb) if d_side == "A" else (rb, ra)
        o_side = "B" if d_side == "A" else "A"
        parts.append((double, "double_vs_single_rounding",
                      f"{d_side} requantises with {d.scheme.value}, which rounds twice: SRDHM rounds the high product "
                      f"first, onto a .5 tie the exact value is not on, and the final shift then rounds it "
                      f"{_final_rule(d)}; {o_side} ({o.scheme.value}) rounds the exact value once", why))
    if rest.any():
        parts.append((rest, *generic, why))
    return parts


def _with_acc(spec, acc: int, c: int) -> tuple:
    params, cc = _channel_params(spec, c)
    return params, acc, cc


def _scheme_kind(va, vb) -> tuple:
    """(kind, explanation) of a requantisation difference that is not an exact tie."""
    ra, rb = va[0], vb[0]
    sa, sb = ra.scheme, rb.scheme
    if sa == sb and va[1] == vb[1]:
        return ("rounding_rule", f"A rounds {_final_rule(ra)} and B {_final_rule(rb)}")
    if (sa in _FLOAT_SCHEMES) != (sb in _FLOAT_SCHEMES):
        def what(s):
            return {RequantScheme.FLOAT32: "a float32 scale", RequantScheme.FLOAT64_ROUND: "a double scale",
                    RequantScheme.SHIFT_ONLY: "a power-of-two shift",
                    RequantScheme.INT64_REDUCED: "a 15-bit fixed-point multiplier"}.get(s, "a Q31 fixed-point multiplier")
        return ("float_vs_fixed_requant", f"A requantises with {what(sa)} ({sa.value}) and B with {what(sb)} "
                                          f"({sb.value}); the two rescaled values fall on different sides of a .5 "
                                          "rounding boundary")
    if (sa in _DOUBLE and sb in _SINGLE) or (sa in _SINGLE and sb in _DOUBLE):
        def rounds(s):
            return "two roundings" if s in _DOUBLE else "one rounding"
        return ("double_vs_single_rounding", f"A requantises with {sa.value} ({rounds(sa)}) and B with {sb.value} "
                                             f"({rounds(sb)}): the first of two roundings pushes a value just off a "
                                             ".5 boundary onto it, and the second rounds it the other way")
    return ("requant_scheme", f"A requantises with {_scheme_text(va)} and B with {_scheme_text(vb)}")


def _scheme_text(v) -> str:
    text = f"{v[0].scheme.value} ({v[0].rounding.value})"
    if v[1] is not None:
        text += f", tail from a multiple of {v[1][0]}: {v[1][1].scheme.value}"
    return text


def _final_rule(requant) -> str:
    """The tie rule of the last rounding of a requantisation spec, in words."""
    if requant.scheme in (RequantScheme.SRDHM_HALF_UP, *_SINGLE - {RequantScheme.SHIFT_ONLY}):
        return "half up (toward +inf)"
    return {"half_away": "half away from zero", "half_even": "half to even", "half_up": "half up (toward +inf)",
            "half_down": "half down (toward -inf)", "half_zero": "half toward zero"}.get(
        requant.rounding.value, requant.rounding.value)


# ---- quantize ------------------------------------------------------------------------------------


def _refine_quantize(layer: _Layer, va, vb, fixed, idx, run_a: NodeRun, run_b: NodeRun):
    x = np.asarray(layer.inputs[layer.node.inputs[0]], dtype=np.float32)
    qp = layer.graph.tensor(layer.node.outputs[0]).quant
    scale = np.float32(np.asarray(qp.scale).reshape(-1)[0])
    ratio = (x / scale).astype(np.float32)          # ONNX QuantizeLinear's float32 division
    n = int(np.count_nonzero(fixed))
    ties = int(np.count_nonzero(fixed & (ratio - np.floor(ratio) == np.float32(0.5))))
    why = (f"x = {float(x[idx])!r}, x / scale = {float(ratio[idx])!r}: A ({va[0].value}) gives {run_a.output[idx]}, "
           f"B ({vb[0].value}) gives {run_b.output[idx]}")
    kind = "quantize_rounding"
    text = f"float -> int quantize rounds {va[0].value} on A and {vb[0].value} on B"
    if va[1] != vb[1]:
        text += f" (A: {va[1] or 'plain'} kernel, B: {vb[1] or 'plain'} kernel)"
    return kind, text + f"; {ties} of the {n} inputs sit on a .5 tie of x / scale", why

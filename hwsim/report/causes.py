"""Why two targets disagree on one layer: the cause of each difference, found by counterfactual.

A target computes an integer layer as a pipeline of stages (:mod:`hwsim.report.diff_stages`).  Given a layer
where target B, fed exactly target A's input tensors, gives other values than A, :func:`explain_layer` finds which
stage is responsible: it starts from A's pipeline and swaps in one of B's stages at a time, re-running the layer
through the executor's own per-op preparation (so every integer result comes from the C kernels).  The stage whose
swap brings the result closest to B's is taken as a cause, the swap is kept, and the search repeats until A's
modified pipeline gives B's values (or no stage helps: the rest is reported as ``unexplained``).  Each cause is
then refined from the arithmetic itself (:mod:`hwsim.report.diff_requant`) -- a rounding difference is checked to
sit exactly on a .5 tie of the exactly rescaled accumulator, a double-rounding case to have its first rounding land
on a tie the exact value is not on, a product-group difference is called int16 pair saturation when the group stage
really clipped, and so on -- and carries one worked example element a user can check by hand.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from hwsim.graph.ir import Graph, Node
from hwsim.report.diff_requant import (DOUBLE_ROUNDING, FLOAT_SCHEMES, SINGLE_ROUNDING, channel_params,
                                       describe_requant, final_rule, final_value, is_tie, rescaled)
from hwsim.report.diff_stages import NodeRun, normalised, op_key, pipeline_differences, run_node
from hwsim.sim.ops.common import PrepareContext
from hwsim.targets import TargetProfile
from hwsim.types import Overflow, RequantScheme

__all__ = ["Cause", "explain_layer"]


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
    if (ra.scheme in DOUBLE_ROUNDING) != (rb.scheme in DOUBLE_ROUNDING):
        double_side = "A" if ra.scheme in DOUBLE_ROUNDING else "B"
    tie, double = np.zeros_like(fixed), np.zeros_like(fixed)
    for flat in np.flatnonzero(fixed):
        idx = np.unravel_index(flat, fixed.shape)
        acc, c = int(run_a.accumulators[idx]), int(idx[-1])
        pa_c, pb_c = channel_params(spec_a, c), channel_params(spec_b, c)
        fa, fb = final_value(acc, *pa_c), final_value(acc, *pb_c)
        if fa == fb and is_tie(fa):
            tie[idx] = True
        elif double_side is not None:
            params, cc = pa_c if double_side == "A" else pb_c
            double[idx] = is_tie(final_value(acc, params, cc)) and not is_tie(rescaled(acc, params, cc))

    def why(idx):
        acc, c = int(run_a.accumulators[idx]), int(idx[-1])
        return (f"accumulator {acc}: A computes {describe_requant(*_with_acc(spec_a, acc, c))} -> "
                f"{int(run_a.output[idx]) - zp}; B computes {describe_requant(*_with_acc(spec_b, acc, c))} -> "
                f"{int(layer.b_values[idx])} (values before the output zero point {zp})")

    rest = fixed & ~tie & ~double
    if generic[0] == "double_vs_single_rounding":
        double, rest = double | rest, np.zeros_like(fixed)
    parts = []
    if tie.any():
        parts.append((tie, "tie_rounding", f"the rescaled accumulator sits exactly on a .5 tie and A rounds ties "
                                           f"{final_rule(ra)} while B rounds them {final_rule(rb)}", why))
    if double.any():
        d_side = double_side or ("A" if ra.scheme in DOUBLE_ROUNDING else "B")
        d, o = (ra, rb) if d_side == "A" else (rb, ra)
        o_side = "B" if d_side == "A" else "A"
        parts.append((double, "double_vs_single_rounding",
                      f"{d_side} requantises with {d.scheme.value}, which rounds twice: SRDHM rounds the high product "
                      f"first, onto a .5 tie the exact value is not on, and the final shift then rounds it "
                      f"{final_rule(d)}; {o_side} ({o.scheme.value}) rounds once", why))
    if rest.any():
        parts.append((rest, *generic, why))
    return parts


def _with_acc(spec, acc: int, c: int) -> tuple:
    params, cc = channel_params(spec, c)
    return params, acc, cc


def _scheme_kind(va, vb) -> tuple:
    """(kind, explanation) of a requantisation difference that is not an exact tie."""
    ra, rb = va[0], vb[0]
    sa, sb = ra.scheme, rb.scheme
    if sa == sb and va[1] == vb[1]:
        return ("rounding_rule", f"A rounds {final_rule(ra)} and B {final_rule(rb)}")
    if (sa in FLOAT_SCHEMES) != (sb in FLOAT_SCHEMES):
        def what(s):
            return {RequantScheme.FLOAT32: "a float32 scale", RequantScheme.FLOAT64_ROUND: "a double scale",
                    RequantScheme.SHIFT_ONLY: "a power-of-two shift",
                    RequantScheme.INT64_REDUCED: "a 15-bit fixed-point multiplier"}.get(s, "a Q31 fixed-point multiplier")
        return ("float_vs_fixed_requant", f"A requantises with {what(sa)} ({sa.value}) and B with {what(sb)} "
                                          f"({sb.value}); the two rescaled values fall on different sides of a .5 "
                                          "rounding boundary")
    if (sa in DOUBLE_ROUNDING and sb in SINGLE_ROUNDING) or (sa in SINGLE_ROUNDING and sb in DOUBLE_ROUNDING):
        def rounds(s):
            return "two roundings" if s in DOUBLE_ROUNDING else "one rounding"
        return ("double_vs_single_rounding", f"A requantises with {sa.value} ({rounds(sa)}) and B with {sb.value} "
                                             f"({rounds(sb)}): the first of two roundings pushes a value just off a "
                                             ".5 boundary onto it, and the second rounds it the other way")
    return ("requant_scheme", f"A requantises with {_scheme_text(va)} and B with {_scheme_text(vb)}")


def _scheme_text(v) -> str:
    text = f"{v[0].scheme.value} ({v[0].rounding.value})"
    if v[1] is not None:
        text += f", tail from a multiple of {v[1][0]}: {v[1][1].scheme.value}"
    return text


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

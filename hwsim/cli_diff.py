"""``hwsim diff MODEL -t A -t B -i IN.npz [--calib CAL.npz] [--json F] [--force] [-q] [--threads N]``.

Runs the model on two targets and explains, layer by layer, where and why they disagree
(:func:`hwsim.report.diff.diff_targets`): a table (layer, op, elements that differ, max LSB, introduced here or
propagated, cause), a worked example of the first difference and a one-paragraph summary.  ``--json`` writes the
whole diff (schema ``hwsim.diff/1``).  Exit 0 whether or not the targets differ (it is a report); 2 on bad input.
A float model is quantized once per target on ``--calib``; a QDQ model is imported per target when the two
engines fuse QDQ groups differently (onnxruntime x86 vs the rest).
"""

from __future__ import annotations

import sys

from hwsim.cli import UsageError


def register(sub) -> None:
    p = sub.add_parser("diff", help="why two targets disagree: per-layer differences and their causes",
                       description="Run MODEL on targets A and B and explain, layer by layer, where their results "
                                   "part and why (rounding, requantisation, saturation, zero points, ...).")
    p.add_argument("model", metavar="MODEL", help="an ONNX (float, QDQ, QOperator) or TFLite model file")
    p.add_argument("-t", "--target", action="append", required=True, metavar="TARGET",
                   help="a built-in target name or a profile file; give exactly two: -t A -t B (A is the reference)")
    p.add_argument("-i", "--inputs", required=True, metavar="IN.npz", help="inputs keyed by the model's input names")
    p.add_argument("--calib", metavar="CAL.npz", help="calibration inputs (needed for a float model)")
    p.add_argument("--json", metavar="F", help="write the diff as JSON (schema hwsim.diff/1)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no table; the summary only")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="kernel threads (results do not depend on it)")
    p.set_defaults(func=_diff)


def _load(args):
    """(graph for A, graph for B, profile A, profile B, inputs, calibration) from the command line."""
    from hwsim.cli_io import load_model, load_targets, match_inputs, qdq_fusion, read_calibration, read_npz

    if len(args.target) != 2:
        raise UsageError(f"-t/--target: give exactly two targets (-t A -t B), got {len(args.target)}")
    profiles = load_targets(args.target)
    graphs = {}
    for profile in profiles:
        fusion = qdq_fusion(profile)
        if fusion not in graphs:
            graphs[fusion] = load_model(args.model, fusion)
    ga, gb = (graphs[qdq_fusion(p)] for p in profiles)
    inputs = match_inputs(ga, read_npz(args.inputs, "input"), args.inputs)
    calib = read_calibration(ga, args.calib, args.model, "for each target")
    return ga, gb, profiles[0], profiles[1], inputs, calib


def _diff(args) -> int:
    from hwsim.report.diff import diff_targets
    from hwsim.sim import SimulationError

    from hwsim.cli_io import check_output_file

    json_path = check_output_file(args.json, "--json", args.force)
    if args.threads < 1:
        raise UsageError(f"--threads: expected an integer >= 1, got {args.threads}")
    ga, gb, pa, pb, inputs, calib = _load(args)
    try:
        result = diff_targets(ga if ga is gb else (ga, gb), pa, pb, inputs, calibration=calib,
                              n_threads=args.threads, progress=not args.quiet)
    except (SimulationError, ValueError) as exc:
        raise UsageError(f"{args.model}: {exc}") from None
    if json_path is not None:
        try:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            result.to_json(json_path)
        except OSError as exc:
            raise UsageError(f"{json_path}: cannot write the JSON report ({exc.strerror or exc})") from None
    if not args.quiet:
        _print_table(result)
    print(result.summary())
    if json_path is not None and not args.quiet:
        print(f"{json_path}: diff written (schema hwsim.diff/1)")
    return 0


def _cause_text(layer) -> str:
    if not layer.causes:
        return {"propagated": "inputs differ", "same": ""}.get(layer.status, "")
    return ", ".join(f"{c.kind} ({c.elements})" for c in layer.causes)


def _print_table(result) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=sys.stdout, highlight=False)
    if not console.is_terminal:     # a pipe or a file: rich's default 80 columns would fold every row
        console.width = 140
    table = Table(title=escape(f"hwsim diff: A = {result.target_a}, B = {result.target_b}"))
    for col, justify in (("layer", "left"), ("op", "left"), ("# diff", "right"), ("max LSB", "right"),
                         ("where", "left"), ("cause", "left")):
        table.add_column(col, justify=justify)
    for layer in result.layers:
        lsb = f"{layer.max_lsb:.3g}" if isinstance(layer.max_lsb, float) else str(layer.max_lsb)
        where = {"same": "", "params_differ": "quant params",
                 "introduced+propagated": "introduced + inputs"}.get(layer.status, layer.status)
        style = "bold" if layer.status not in ("same", "propagated") else None
        table.add_row(escape(layer.name), escape(layer.source_op or layer.op), f"{layer.differ}/{layer.elements}",
                      lsb, where, escape(_cause_text(layer)), style=style)
    console.print(table)
    for out in result.outputs:
        line = f"output {out.name}: {out.differ}/{out.elements} values differ"
        if out.differ:
            line += f", max |diff| {out.max_abs:.4g}"
        if out.top1_agree is not None:
            line += f", top-1 agrees on {out.top1_agree}/{out.rows}"
        console.print(line, markup=False)
    first = result.first_divergence
    if first is not None and first.causes:
        cause = max(first.causes, key=lambda c: c.elements)
        ex = cause.example or {}
        if ex:
            console.print(f"example ({first.name}, output index {tuple(ex.get('index', ()))} in NHWC): "
                          f"A {ex.get('a')}, B {ex.get('b')}; {ex.get('why', '')}", markup=False)
    for note in result.notes:
        console.print(f"note: {note}", markup=False)

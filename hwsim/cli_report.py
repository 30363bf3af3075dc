"""``hwsim report MODEL -t TARGET [-t TARGET ...] -i IN.npz [--calib CAL.npz] [--labels LABELS.npz]
[--json F] [--html F] [--force] [-q] [--threads N]``.

Compares the model on each target with its float reference (:func:`hwsim.compare`)
and prints the tables; ``--json`` / ``--html`` also write the report.  A float
model is quantized for each target on ``--calib``.  ``--labels`` is an npz of
integer class labels keyed by output name (a single-output model takes one
array under any key).  Output files are checked before any work is done: an
existing file is kept unless ``--force``, and an unwritable path is exit 2.
"""

from __future__ import annotations


from hwsim.cli import UsageError
from hwsim.cli_io import (check_output_file, load_model, load_targets, match_inputs, qdq_fusion,
                          read_calibration, read_npz)


def register(sub) -> None:
    p = sub.add_parser("report", help="per-layer error, overflow and headroom of a model on one or more targets",
                       description="Compare MODEL on each TARGET with its float reference: per-layer and per-output "
                                   "error, wrap/saturation events, accumulator headroom; tables, JSON and HTML.")
    p.add_argument("model", metavar="MODEL", help="an ONNX (float, QDQ, QOperator) or TFLite model file")
    p.add_argument("-t", "--target", required=True, action="append", dest="targets", metavar="TARGET",
                   help="a built-in target name or a profile file; repeat for several targets side by side")
    p.add_argument("-i", "--inputs", required=True, metavar="IN.npz", help="inputs keyed by the model's input names")
    p.add_argument("--calib", metavar="CAL.npz", help="calibration inputs (needed for a float model)")
    p.add_argument("--labels", metavar="LABELS.npz", help="integer class labels keyed by output name (accuracy)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON (schema hwsim.report/1)")
    p.add_argument("--html", metavar="FILE", help="also write the report as a self-contained HTML page")
    p.add_argument("--force", action="store_true", help="overwrite existing --json / --html files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no tables")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="kernel threads (results do not depend on it)")
    p.set_defaults(func=_report)


def _labels(graph, path: str | None) -> dict | None:
    if path is None:
        return None
    arrays = read_npz(path, "labels")
    outputs = list(graph.outputs)
    if len(outputs) == 1 and outputs[0] not in arrays and len(arrays) == 1:
        return {outputs[0]: next(iter(arrays.values()))}
    unknown = sorted(set(arrays) - set(outputs))
    if unknown:
        raise UsageError(f"{path}: array {unknown[0]!r} is not a model output (the model's outputs: "
                         f"{', '.join(outputs)})")
    return arrays


def _load_targets(names: list[str]) -> list:
    profiles = load_targets(names)
    seen = set()
    for p in profiles:
        if p.name in seen:
            raise UsageError(f"-t {p.name}: given twice")
        seen.add(p.name)
    return profiles


def _merge(reports: list, order: list[str]):
    """One report from several (one per QDQ fusion mode), targets in the order given."""
    from hwsim.report import Report

    targets = {}
    for rep in reports:
        targets.update(rep.targets)
    first = reports[0]
    return Report(model=first.model, n_samples=first.n_samples, targets={t: targets[t] for t in order},
                  float_scores=first.float_scores)


def _report(args) -> int:
    import hwsim

    json_path = check_output_file(args.json, "--json", args.force)
    html_path = check_output_file(args.html, "--html", args.force)
    if json_path is not None and html_path is not None and json_path.resolve() == html_path.resolve():
        raise UsageError(f"--json and --html name the same file {json_path}")
    if args.threads < 1:
        raise UsageError(f"--threads: expected an integer >= 1, got {args.threads}")
    profiles = _load_targets(args.targets)

    # a QDQ model is fused the way each target's engine fuses it (see hwsim run); one graph per fusion mode
    by_fusion: dict = {}
    for p in profiles:
        by_fusion.setdefault(qdq_fusion(p), []).append(p)
    graphs = {}
    for fusion in by_fusion:
        graphs[fusion] = load_model(args.model, fusion)
        if graphs[fusion].kind == "float":   # fusion does not matter for a float model: one graph for all
            by_fusion = {fusion: profiles}
            break
    first = graphs[next(iter(by_fusion))]
    inputs = match_inputs(first, read_npz(args.inputs, "input"), args.inputs)
    calib = read_calibration(first, args.calib, args.model, "for each target")
    labels = _labels(first, args.labels)

    reports = []
    for fusion, group in by_fusion.items():
        try:
            reports.append(hwsim.compare(graphs[fusion], group, inputs, calibration=calib, labels=labels,
                                         n_threads=args.threads, progress=not args.quiet))
        except ValueError as exc:          # SimulationError, TargetError and bad labels are ValueErrors
            where = args.labels if labels is not None and str(exc).startswith("labels") else args.model
            raise UsageError(f"{where}: {exc}") from None
    report = _merge(reports, [p.name for p in profiles])

    if not args.quiet:
        report.render()
    for path, write in ((json_path, report.to_json), (html_path, report.to_html)):
        if path is None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        if not args.quiet:
            print(f"wrote {path}")
    return 0

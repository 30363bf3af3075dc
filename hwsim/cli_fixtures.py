"""``hwsim fixtures record|check|export``: golden vectors for RTL and firmware test benches.

* ``record MODEL -t TARGET -i IN.npz -o DIR [--calib CAL.npz] [--force] [-q]``
* ``check DIR [--model PATH] [-q]``: exit 0 when every hash and every re-computed array
  matches, 1 at the first mismatch (hash, model, target or value: layer, file, flat
  index, expected, actual), 2 on bad usage (no fixture directory, model file missing).
* ``export DIR --format hex|mem|c [-o OUTDIR] [--force] [-q]``

See :mod:`hwsim.fixtures`.  Exit 2 on bad input with a message naming the file;
an existing ``-o`` directory is kept unless ``--force``, and ``--force`` only ever
replaces a directory hwsim wrote (a fixture directory / an export).
"""

from __future__ import annotations

import sys

from hwsim.cli import UsageError


def register(sub) -> None:
    p = sub.add_parser("fixtures", help="golden vectors per layer for RTL / firmware: record, check, export",
                       description="Record, check and export golden fixtures (per-layer integer vectors).")
    fx = p.add_subparsers(dest="fixtures_command", metavar="ACTION")
    fx.required = True

    r = fx.add_parser("record", help="run MODEL on TARGET once and write every integer layer's vectors to DIR",
                      description="Write per-layer integer inputs, weights, bias, requantisation parameters, raw "
                                  "accumulators and outputs (.npy) plus manifest.json (hashes of everything).")
    r.add_argument("model", metavar="MODEL", help="an ONNX (float, QDQ, QOperator) or TFLite model file")
    r.add_argument("-t", "--target", required=True, metavar="TARGET", help="a built-in target name or a profile file")
    r.add_argument("-i", "--inputs", required=True, metavar="IN.npz", help="inputs keyed by the model's input names")
    r.add_argument("-o", "--output", required=True, metavar="DIR", help="the fixture directory to create")
    r.add_argument("--calib", metavar="CAL.npz", help="calibration inputs (needed for a float model; stored in DIR)")
    r.add_argument("--force", action="store_true", help="replace DIR if it is an earlier fixture directory")
    r.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    r.set_defaults(func=_record)

    c = fx.add_parser("check", help="verify hashes, re-run and compare every recorded array (exit 1 on a mismatch)",
                      description="Verify every file's sha256, then re-run the recorded model on the recorded target "
                                  "and inputs and compare every array bit for bit.")
    c.add_argument("directory", metavar="DIR", help="a fixture directory")
    c.add_argument("--model", metavar="PATH", help="the recorded model file's new place (its sha256 must match)")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    c.set_defaults(func=_check)

    e = fx.add_parser("export", help="write the vectors as $readmemh hex, .mem or C headers",
                      description="hex: one two's-complement value per line; mem: the same with comment lines and "
                                  "an @address line (one flat word-addressed image); c: one header per layer.")
    e.add_argument("directory", metavar="DIR", help="a fixture directory")
    e.add_argument("--format", required=True, choices=("hex", "mem", "c"), help="output format")
    e.add_argument("-o", "--output", metavar="OUTDIR", help="where to write (default DIR/<format>)")
    e.add_argument("--force", action="store_true", help="replace OUTDIR if it is an earlier hwsim export")
    e.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    e.set_defaults(func=_export)


def _fail(exc) -> int:
    print(f"hwsim: fixtures check failed: {exc}", file=sys.stderr)
    return 1


def _record(args) -> int:
    import pathlib

    from hwsim.cli_io import load_model, load_targets, match_inputs, qdq_fusion, read_calibration, read_npz
    from hwsim.fixtures import FixtureError, record
    from hwsim.fixtures.record import _check_destination
    from hwsim.sim import SimulationError

    out = pathlib.Path(args.output)
    try:
        _check_destination(out, args.force)          # before any work: nothing is touched on refusal
    except FixtureError as exc:
        raise UsageError(str(exc)) from None
    (target,) = load_targets([args.target])
    fusion = qdq_fusion(target)
    graph = load_model(args.model, fusion)
    inputs = match_inputs(graph, read_npz(args.inputs, "input"), args.inputs)
    calib = read_calibration(graph, args.calib, args.model, f"for {target.name}")
    try:
        manifest = record(graph, target, inputs, out, model_path=args.model, overwrite=args.force,
                          calibration=calib, qdq_fusion=fusion, progress=not args.quiet)
    except FixtureError as exc:
        raise UsageError(str(exc)) from None
    except (SimulationError, ValueError) as exc:
        raise UsageError(f"{args.model}: {exc}") from None
    if not args.quiet:
        _print_layers(manifest, out, target.name)
    return 0


def _print_layers(manifest, out, target_name: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{out}: fixtures of {len(manifest.layers)} layers on {target_name}")
    for col in ("#", "layer", "op", "requantisation", "files"):
        table.add_column(col, justify="right" if col in ("#", "files") else "left")
    for layer in manifest.layers:
        req = layer["params"].get("requantize")
        scheme = ", ".join(f"{s['scheme']}/{s['rounding']}" for s in req["stages"]) if req else \
            (layer["params"].get("scheme") or "-")
        table.add_row(str(layer["index"]), layer["name"], layer["params"].get("target_op", layer["op"]), scheme,
                      str(len(layer["files"])))
    Console().print(table)
    print(f"{out}: {len(manifest.files)} files, manifest.json with sha256 of each")


def _check(args) -> int:
    from hwsim.fixtures import FixtureError, FixtureMismatch, check
    from hwsim.sim import SimulationError

    try:
        summary = check(args.directory, model_path=args.model, progress=not args.quiet)
    except FixtureMismatch as exc:
        return _fail(exc)
    except FixtureError as exc:
        raise UsageError(str(exc)) from None
    except SimulationError as exc:
        raise UsageError(f"{args.directory}: the recorded model no longer runs: {exc}") from None
    if not args.quiet:
        print(summary)
    return 0


def _export(args) -> int:
    from hwsim.fixtures import FixtureError, FixtureMismatch, export

    try:
        written = export(args.directory, args.format, args.output, overwrite=args.force, progress=not args.quiet)
    except FixtureMismatch as exc:
        return _fail(exc)
    except FixtureError as exc:
        raise UsageError(str(exc)) from None
    if not args.quiet:
        print(f"{written[-1].parent}: {len(written) - 1} {args.format} files (index in {written[-1].name})")
    return 0

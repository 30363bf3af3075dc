"""``hwsim demo``: the main job on the bundled model, offline, in seconds.

The bundled model (:mod:`hwsim.demo`) is a small CNN trained on the 8x8
handwritten digits.  The demo quantizes it for every built-in target profile
(each with its own defaults: formats, granularity, calibration method) on 256
training digits, runs the 540 held-out digits through each target bit for bit,
and prints the side-by-side report: accuracy, logits SQNR against the float
model, overflow and saturation counts, headroom.  It writes the same report as
one self-contained HTML file.

Then it sweeps the accumulator width of ``npu-acc16`` (12 to 24 bits,
saturating; profiles derived with ``base: npu-acc16``) and shows where the
accuracy falls off the cliff.

The HTML goes to ``hwsim-demo.html`` in the current directory unless ``--html``
says otherwise; an existing file is replaced only if an earlier ``hwsim demo``
wrote it (or with ``--force``).
"""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile

from hwsim.cli import UsageError

#: calibration digits taken from the training split (the held-out split is only evaluated)
N_CALIBRATION = 256
DEFAULT_HTML = "hwsim-demo.html"
#: the architect's question: how narrow may npu-acc16's saturating accumulator get?
SWEEP_BASE = "npu-acc16"
SWEEP_BITS = (12, 13, 14, 15, 16, 18, 20, 24)


def register(sub) -> None:
    p = sub.add_parser("demo", help="quantize the bundled digits CNN for every built-in target and compare them",
                       description="The main job on the bundled model: every built-in target, report table + HTML.")
    p.add_argument("-t", "--target", action="append", metavar="TARGET",
                   help="only these targets (repeatable; default: every built-in profile)")
    p.add_argument("--html", default=DEFAULT_HTML, metavar="FILE", help=f"HTML report path (default {DEFAULT_HTML})")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.add_argument("--force", action="store_true", help="overwrite existing report files")
    p.add_argument("--no-sweep", action="store_true", help=f"skip the accumulator-width sweep of {SWEEP_BASE}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no tables; only the summary line")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="kernel threads (results do not depend on it)")
    p.set_defaults(func=_demo)


def _written_by_demo(path: pathlib.Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "hwsim demo" in f.read(4096)
    except OSError:
        return False


def _demo(args) -> int:
    import hwsim
    from hwsim import demo
    from hwsim.targets import TargetError

    from hwsim.cli_io import check_output_file

    html = check_output_file(args.html, "--html", args.force, replaceable=_written_by_demo)
    json_path = check_output_file(args.json, "--json", args.force)
    if args.threads < 1:
        raise UsageError(f"--threads: expected an integer >= 1, got {args.threads}")
    targets = args.target or hwsim.list_targets()
    try:
        profiles = [hwsim.load_target(t) for t in targets]
    except TargetError as exc:
        raise UsageError(str(exc)) from None

    graph = hwsim.load_model(demo.model_path())
    data = demo.load_digits()
    calibration = {"image": data["x_train"][:N_CALIBRATION]}
    inputs = {"image": data["x_test"]}
    report = hwsim.compare(graph, profiles, inputs, calibration=calibration, labels={"logits": data["y_test"]},
                           n_threads=args.threads, progress=not args.quiet)
    report.model = (f"hwsim demo: digits CNN ({len(data['y_test'])} held-out digits, "
                    f"{N_CALIBRATION} calibration digits)")
    sweep = None if args.no_sweep else _accumulator_sweep(graph, inputs, calibration, data["y_test"], args)
    if not args.quiet:
        report.render()
    if sweep is not None:
        if not args.quiet:
            _print_sweep(sweep)
        report.sections.append((f"Accumulator width sweep: {SWEEP_BASE} with a narrower or wider accumulator",
                                _sweep_html(sweep)))
    report.to_html(html)
    if json_path is not None:
        doc = report.to_dict()
        if sweep is not None:
            doc["accumulator_sweep"] = {"base": SWEEP_BASE, "overflow": "saturate", "rows": sweep}
        json_path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    print(f"hwsim demo: report written to {html}" + (f" and {json_path}" if json_path else ""), file=sys.stderr)
    return 0


def _sweep_profile(directory: pathlib.Path, bits: int) -> pathlib.Path:
    path = directory / f"{SWEEP_BASE}-acc{bits}.yaml"
    path.write_text(f"schema_version: 1\nname: {SWEEP_BASE}.acc{bits}\nbase: {SWEEP_BASE}\n"
                    f"summary: {SWEEP_BASE} with a {bits}-bit saturating accumulator\n"
                    f"mac:\n  accumulator: {{bits: {bits}, overflow: saturate}}\n", encoding="utf-8")
    return path


def _accumulator_sweep(graph, inputs, calibration, labels, args) -> list[dict]:
    """One row per accumulator width: accuracy, SQNR and MAC overflow events of the logits."""
    import hwsim

    with tempfile.TemporaryDirectory(prefix="hwsim-demo-") as tmp:
        profiles = [hwsim.load_target(_sweep_profile(pathlib.Path(tmp), bits)) for bits in SWEEP_BITS]
        sweep = hwsim.compare(graph, profiles, inputs, calibration=calibration, labels={"logits": labels},
                              n_threads=args.threads, progress=not args.quiet)
    rows = []
    for bits, result in zip(SWEEP_BITS, sweep.targets.values()):
        out = result.output("logits")
        overflowing = [layer.name for layer in result.layers
                       if layer.accumulator is not None and layer.accumulator.mac_events]
        rows.append({"accumulator_bits": bits, "accuracy": out.accuracy, "top1_agreement": out.top1_agreement,
                     "sqnr_db": out.metrics.sqnr_db, "mac_events": result.mac_events,
                     "overflowing_layers": overflowing})
    return rows


def _print_sweep(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    from hwsim.report.render_terminal import fmt_db, fmt_share

    table = Table(title=f"accumulator width sweep: {SWEEP_BASE} with an N-bit saturating accumulator",
                  title_justify="left")
    for col in ("bits", "accuracy", "top-1 agree", "SQNR dB", "MAC overflows", "layers that overflow"):
        table.add_column(col, justify="left" if col.startswith("layers") else "right")
    for r in rows:
        style = "bold" if r["accumulator_bits"] == 16 else None
        table.add_row(str(r["accumulator_bits"]), fmt_share(r["accuracy"]), fmt_share(r["top1_agreement"]),
                      fmt_db(r["sqnr_db"]), f"{r['mac_events']:,}", ", ".join(r["overflowing_layers"]) or "-",
                      style=style)
    Console().print(table)


def _sweep_html(rows: list[dict]) -> str:
    from html import escape

    from hwsim.report import svg
    from hwsim.report.render_terminal import fmt_db, fmt_share

    labels = [f"{r['accumulator_bits']} bits" for r in rows]
    chart = svg.line_chart([("logits SQNR (dB)", [r["sqnr_db"] for r in rows]),
                            ("accuracy (%)", [100.0 * r["accuracy"] for r in rows])], labels,
                           y_label="dB / %", min_width=640)
    head = "".join(f"<th>{c}</th>" for c in ("accumulator", "accuracy", "top-1 agreement", "SQNR (dB)",
                                              "MAC overflow events", "layers that overflow"))
    body = "".join(
        f"<tr><td>{r['accumulator_bits']} bits</td><td>{fmt_share(r['accuracy'])}</td>"
        f"<td>{fmt_share(r['top1_agreement'])}</td><td>{fmt_db(r['sqnr_db'])}</td><td>{r['mac_events']:,}</td>"
        f"<td>{escape(', '.join(r['overflowing_layers'])) or '-'}</td></tr>" for r in rows)
    return (f"<p class=\"lead\">The same quantized model with {SWEEP_BASE}'s accumulator made narrower or wider "
            "(saturating; everything else unchanged). Where the accuracy falls is the narrowest accumulator this "
            f"model tolerates.</p><div class=\"scroll\">{chart}</div>"
            f"<div class=\"scroll\"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")

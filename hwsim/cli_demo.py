"""``hwsim demo``: the main job on the bundled model, offline, in seconds.

The bundled model (:mod:`hwsim.demo`) is a small CNN trained on the 8x8
handwritten digits.  The demo quantizes it for every built-in target profile
(each with its own defaults: formats, granularity, calibration method) on 256
training digits, runs the 540 held-out digits through each target bit for bit,
and prints the side-by-side report: accuracy, logits SQNR against the float
model, overflow and saturation counts, headroom.  It writes the same report as
one self-contained HTML file.

The HTML goes to ``hwsim-demo.html`` in the current directory unless ``--html``
says otherwise; an existing file is replaced only if an earlier ``hwsim demo``
wrote it (or with ``--force``).
"""

from __future__ import annotations

import pathlib
import sys

from hwsim.cli import UsageError

#: calibration digits taken from the training split (the held-out split is only evaluated)
N_CALIBRATION = 256
DEFAULT_HTML = "hwsim-demo.html"


def register(sub) -> None:
    p = sub.add_parser("demo", help="quantize the bundled digits CNN for every built-in target and compare them",
                       description="The main job on the bundled model: every built-in target, report table + HTML.")
    p.add_argument("-t", "--target", action="append", metavar="TARGET",
                   help="only these targets (repeatable; default: every built-in profile)")
    p.add_argument("--html", default=DEFAULT_HTML, metavar="FILE", help=f"HTML report path (default {DEFAULT_HTML})")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.add_argument("--force", action="store_true", help="overwrite existing report files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no tables; only the summary line")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="kernel threads (results do not depend on it)")
    p.set_defaults(func=_demo)


def _written_by_demo(path: pathlib.Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "hwsim demo" in f.read(4096)
    except OSError:
        return False


def _check_output(path: pathlib.Path | None, force: bool, what: str) -> None:
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give a file name for the {what} report")
    if path.exists() and not force and not (what == "HTML" and _written_by_demo(path)):
        raise UsageError(f"{path}: already exists; use --force to overwrite it")
    parent = path.parent if str(path.parent) else pathlib.Path(".")
    if not parent.is_dir():
        raise UsageError(f"{path}: the directory {parent} does not exist")


def _demo(args) -> int:
    import hwsim
    from hwsim import demo
    from hwsim.targets import TargetError

    html = pathlib.Path(args.html)
    json_path = pathlib.Path(args.json) if args.json else None
    _check_output(html, args.force, "HTML")
    _check_output(json_path, args.force, "JSON")
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
    if not args.quiet:
        report.render()
    report.to_html(html)
    if json_path is not None:
        report.to_json(json_path)
    print(f"hwsim demo: report written to {html}" + (f" and {json_path}" if json_path else ""), file=sys.stderr)
    return 0

"""``hwsim run MODEL -t TARGET -i IN.npz -o OUT.npz [--calib CAL.npz] [--force] [--threads N]``.

Runs a model on a target profile with :func:`hwsim.simulate` and writes the
outputs to an npz keyed by the model's output names.  Inputs: an npz keyed by
the model's input names (batch first, model layout); a single-input model also
takes an npz holding exactly one array under any key.  A float model is first
quantized for the target with :func:`hwsim.quantize` (the profile's defaults) on
``--calib``.  Exit status 2 (with a message naming the file, tensor, expected
shape and dtype) on bad input; an existing ``-o`` file is kept unless ``--force``.
"""

from __future__ import annotations

import sys

import numpy as np

from hwsim.cli import UsageError
from hwsim.cli_io import (check_output_file, load_model, load_targets, match_inputs, qdq_fusion,
                          read_calibration, read_npz)


def register(sub) -> None:
    p = sub.add_parser("run", help="run a model on a target, bit for bit; inputs and outputs as npz",
                       description="Simulate MODEL on TARGET: integer ops exactly as the target computes them.")
    p.add_argument("model", metavar="MODEL", help="an ONNX (float, QDQ, QOperator) or TFLite model file")
    p.add_argument("-t", "--target", required=True, metavar="TARGET", help="a built-in target name or a profile file")
    p.add_argument("-i", "--inputs", required=True, metavar="IN.npz", help="inputs keyed by the model's input names")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="where to write the outputs")
    p.add_argument("--calib", metavar="CAL.npz", help="calibration inputs (needed for a float model)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="kernel threads (results do not depend on it)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import hwsim
    from hwsim.sim import SimulationError

    out_path = check_output_file(args.output, "-o", args.force)
    if args.threads < 1:
        raise UsageError(f"--threads: expected an integer >= 1, got {args.threads}")
    (target,) = load_targets([args.target])
    graph = load_model(args.model, qdq_fusion(target))
    inputs = match_inputs(graph, read_npz(args.inputs, "input"), args.inputs)
    calib = read_calibration(graph, args.calib, args.model, f"for {target.name}")
    try:
        if calib is not None:
            graph = hwsim.quantize(graph, target, calib)
        result = hwsim.simulate(graph, target, inputs, n_threads=args.threads)
    except (SimulationError, ValueError) as exc:
        if isinstance(exc, UsageError):
            raise
        raise UsageError(f"{args.model}: {exc}") from None
    for note in result.deviations:
        print(f"hwsim: note: {note}", file=sys.stderr)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out_path, **result.outputs)
    except OSError as exc:
        raise UsageError(f"{out_path}: cannot write the outputs ({exc.strerror or exc})") from None
    shapes = ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in result.outputs.items())
    print(f"{out_path}: {shapes} ({target.name})")
    return 0

"""``hwsim quantize MODEL -t TARGET --calib CAL.npz -o OUT.onnx [--method M] [--granularity G] [--bits WxAy]
[--ptq cle,bias_correction,adaround] [--force] [-q]``.

Post-training quantization of a float model for a target (:func:`hwsim.quantize`),
written as a QDQ ONNX model (:func:`hwsim.save_model`).  Prints a short summary:
layers quantized, method, granularity, bits, passes, and the SQNR of each model
output on the calibration data (the quantized model as :func:`hwsim.simulate`
runs it on the target vs the float model).  Exit status 2, with a message naming
the file, input or option, on bad input; an existing OUT is kept unless ``--force``.
"""

from __future__ import annotations

import sys

import numpy as np

from hwsim.cli import UsageError
from hwsim.cli_io import check_output_file, load_model, load_targets, read_calibration


def register(sub) -> None:
    from hwsim.quant.quantize import ACTIVATION_METHODS, PTQ_PASSES

    p = sub.add_parser("quantize", help="post-training quantization of a float model for a target (QDQ ONNX out)",
                       description="Quantize a float MODEL for TARGET on calibration data and write a QDQ ONNX model.")
    p.add_argument("model", metavar="MODEL", help="a float ONNX model")
    p.add_argument("-t", "--target", required=True, metavar="TARGET", help="a built-in target name or a profile file")
    p.add_argument("--calib", required=True, metavar="CAL.npz", help="calibration inputs keyed by the model's input names")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="where to write the QDQ ONNX model")
    p.add_argument("--method", choices=ACTIVATION_METHODS, help="activation calibration (default: the target's)")
    p.add_argument("--granularity", metavar="G",
                   help="weights: per-tensor | per-channel | per-group:N | per-channel-group:N (default: the target's)")
    p.add_argument("--bits", metavar="WxAy", help="weight and activation widths, e.g. W8A8, W4A8, W8A16")
    p.add_argument("--ptq", default="", metavar="PASSES", help=f"comma-separated passes: {','.join(PTQ_PASSES)}")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    p.set_defaults(func=_quantize)


def _sqnr_on(graph, q, target, calib: dict) -> dict:
    """Output name -> SQNR (dB) of the simulated quantized model vs the float model on ``calib``."""
    import hwsim
    from hwsim.quant.calibration import CalibrationSet, float_traces

    sig = {name: 0.0 for name in graph.outputs}
    err = dict(sig)
    for part, _ in float_traces(graph, CalibrationSet(graph, calib)):
        ref = hwsim.float_reference(graph, part)
        got = hwsim.simulate(q, target, part).outputs
        for name in graph.outputs:
            r = ref[name].astype(np.float64)
            sig[name] += float(np.sum(r * r))
            err[name] += float(np.sum((got[name].astype(np.float64) - r) ** 2))
    return {n: (float("inf") if err[n] == 0 else 10 * np.log10(sig[n] / err[n]) if sig[n] > 0 else float("-inf"))
            for n in graph.outputs}


def _quantize(args) -> int:
    import hwsim

    out_path = check_output_file(args.output, "-o", args.force)
    (target,) = load_targets([args.target])
    graph = load_model(args.model)
    if graph.kind != "float":
        raise UsageError(f"{args.model}: already a quantized model ({graph.kind}); hwsim quantize takes a float model")
    calib = read_calibration(graph, args.calib, args.model, f"for {target.name}")
    try:
        q = hwsim.quantize(graph, target, calib, method=args.method, granularity=args.granularity, bits=args.bits,
                           ptq=args.ptq, progress=not args.quiet)
    except ValueError as exc:
        msg = str(exc)
        where = args.calib if msg.startswith("calibration") else args.model
        raise UsageError(f"{where}: {msg}") from None
    try:
        hwsim.save_model(q, out_path, overwrite=args.force)
    except (ValueError, FileExistsError) as exc:
        raise UsageError(f"{out_path}: cannot write the quantized model: {exc}") from None
    if not args.quiet:
        _summary(graph, q, target, calib, args, out_path)
    return 0


def _summary(graph, q, target, calib, args, out_path) -> None:
    from rich.console import Console
    from rich.table import Table

    from hwsim.quant.layer_data import weighted_layers
    from hwsim.quant.rewrite import weight_op_key

    weighted = [n for n in graph.nodes if n.op in ("conv2d", "fully_connected")]
    layers = weighted_layers(q)
    grans = sorted({_granularity(q.tensors[n.inputs[1]].quant) for n in layers})
    abits = sorted({8 * np.dtype(q.tensors[n.inputs[0]].dtype).itemsize for n in layers})
    # the weight widths the target runs these layers at (hwsim.quantize refuses any other)
    wbits = sorted({target.for_op(weight_op_key(q, n), 16 if a == 16 else None).weights.bits
                    for n in layers for a in abits})
    table = Table(title=f"{out_path} ({target.name})", show_header=False)
    table.add_row("layers quantized", f"{len(layers)} of {len(weighted)} conv / fully-connected")
    table.add_row("method", args.method or f"{target.calibration.value} (the target's)")
    table.add_row("granularity", ", ".join(grans))
    table.add_row("bits", ", ".join(f"W{w}" for w in wbits) + " " + ", ".join(f"A{a}" for a in abits))
    table.add_row("ptq passes", args.ptq or "none")
    for name, db in _sqnr_on(graph, q, target, calib).items():
        table.add_row(f"SQNR {name}", f"{db:.2f} dB (calibration data, simulated vs float)")
    Console(file=sys.stdout).print(table)


def _granularity(qp) -> str:
    if qp.group_size is not None:
        return f"per-group:{qp.group_size}"
    return "per-channel" if qp.per_channel else "per-tensor"

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

import os
import pathlib
import sys
import zipfile

import numpy as np

from hwsim.cli import UsageError


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


def _read_npz(path: str, what: str) -> dict:
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such {what} file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UsageError(f"{path}: not a readable .npz file ({exc})") from None


def _match_inputs(graph, arrays: dict, path: str) -> dict:
    """Map npz arrays to model inputs: by name; one unnamed array for a single-input model."""
    names = list(graph.inputs)
    if len(names) == 1 and names[0] not in arrays and len(arrays) == 1:
        return {names[0]: next(iter(arrays.values()))}
    missing = [n for n in names if n not in arrays]
    if missing:
        from hwsim.sim.executor import _describe, _model_shape

        t = graph.tensor(missing[0])
        expected = _describe(_model_shape(graph, t.shape), t.dtype)
        raise UsageError(f"{path}: no array named {missing[0]!r}; expected {expected} (the model's inputs: "
                         f"{', '.join(names)}; the file holds: {', '.join(arrays) or 'nothing'})")
    extra = sorted(set(arrays) - set(names))
    if extra:
        raise UsageError(f"{path}: array {extra[0]!r} is not a model input (the model's inputs: {', '.join(names)})")
    return {n: arrays[n] for n in names}


def _qdq_fusion(target) -> str:
    """How the engine fuses a QDQ model: onnxruntime on x86 rewrites s8 activations to u8 and keeps
    int8 groups around shared tensors in float (SEMANTICS.md 10.1); every other target fuses every
    DQ -> op -> Q group into integer, as onnxruntime does on aarch64."""
    names = [target.name] + [pathlib.Path(b).stem for b in target.bases]
    return "onnxruntime-x86" if "onnxruntime-x86" in names else "onnxruntime-arm64"


def _run(args) -> int:
    import hwsim
    from hwsim.graph.errors import ModelError
    from hwsim.sim import SimulationError
    from hwsim.targets import TargetError

    out_path = pathlib.Path(args.output)
    if out_path.exists() and not args.force:
        raise UsageError(f"{out_path}: already exists; use --force to overwrite it")
    if args.threads < 1:
        raise UsageError(f"--threads: expected an integer >= 1, got {args.threads}")
    try:
        target = hwsim.load_target(args.target)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    try:
        graph = hwsim.load_model(args.model, qdq_fusion=_qdq_fusion(target))
    except ModelError as exc:
        raise UsageError(str(exc)) from None
    inputs = _match_inputs(graph, _read_npz(args.inputs, "input"), args.inputs)
    try:
        if graph.kind == "float":
            if not args.calib:
                raise UsageError(f"{args.model}: a float model; give --calib CAL.npz to quantize it for {target.name}")
            calib = _match_inputs(graph, _read_npz(args.calib, "calibration"), args.calib)
            graph = hwsim.quantize(graph, target, calib)
        result = hwsim.simulate(graph, target, inputs, n_threads=args.threads)
    except (SimulationError, ValueError) as exc:
        if isinstance(exc, UsageError):
            raise
        raise UsageError(f"{args.model}: {exc}") from None
    for note in result.deviations:
        print(f"hwsim: note: {note}", file=sys.stderr)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out_path, **result.outputs)
    shapes = ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in result.outputs.items())
    print(f"{out_path}: {shapes} ({target.name})")
    return 0

"""What every model command reads from the command line: targets, the model, npz inputs and calibration.

Each helper turns a bad file, name or key into a :class:`~hwsim.cli.UsageError`
(exit status 2) whose message names the file, tensor or target and what was
expected.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import zipfile

import numpy as np

from hwsim.cli import UsageError

__all__ = ["read_npz", "match_inputs", "qdq_fusion", "load_targets", "load_model", "read_calibration",
           "check_output_file"]


def check_output_file(path_text: str | None, flag: str, force: bool, *, replaceable=None) -> pathlib.Path | None:
    """Refuse, before any work, an output file the user did not allow us to overwrite or that cannot be written.

    ``replaceable(path) -> bool`` may allow replacing an existing file without ``--force``
    (e.g. a report an earlier run of the same command wrote).  Missing parent
    directories are fine if they can be created.
    """
    if path_text is None:
        return None
    path = pathlib.Path(path_text)
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory; expected a file name")
    if path.exists() and not force and not (replaceable is not None and replaceable(path)):
        raise UsageError(f"{flag} {path}: already exists; use --force to overwrite it")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {path}: not writable")
    ancestor = path.parent if str(path.parent) else pathlib.Path(".")
    while not ancestor.exists():          # the directories that would be created must sit in a writable one
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{flag} {path}: cannot create it, {ancestor} is not a directory")
    try:   # a real attempt: permission bits do not tell root about read-only file systems or /proc
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write in directory {ancestor} ({exc.strerror})") from None
    return path


def read_npz(path: str, what: str) -> dict:
    """The arrays of an npz file (``what`` names its role in messages: input, calibration, labels)."""
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such {what} file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UsageError(f"{path}: not a readable .npz file ({exc})") from None


def match_inputs(graph, arrays: dict, path: str) -> dict:
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


def qdq_fusion(target) -> str:
    """How the engine fuses a QDQ model: onnxruntime on x86 rewrites s8 activations to u8 and keeps
    int8 groups around shared tensors in float (SEMANTICS.md 10.1); every other target fuses every
    DQ -> op -> Q group into integer, as onnxruntime does on aarch64."""
    names = [target.name] + [pathlib.Path(b).stem for b in target.bases]
    return "onnxruntime-x86" if "onnxruntime-x86" in names else "onnxruntime-arm64"


def load_targets(names: list[str]) -> list:
    """The profiles named on the command line (built-in names or files)."""
    import hwsim
    from hwsim.targets import TargetError

    profiles = []
    for name in names:
        try:
            profiles.append(hwsim.load_target(name))
        except TargetError as exc:
            raise UsageError(str(exc)) from None
    return profiles


def load_model(path: str, fusion: str | None = None):
    """The model as a graph, QDQ groups fused as ``fusion`` says (None: hwsim's default)."""
    import hwsim
    from hwsim.graph.errors import ModelError

    try:
        return hwsim.load_model(path, qdq_fusion=fusion) if fusion else hwsim.load_model(path)
    except ModelError as exc:
        raise UsageError(str(exc)) from None


def read_calibration(graph, calib_path: str | None, model_path: str, purpose: str) -> dict | None:
    """Calibration inputs for a float model (required); a quantized model takes none (refused if given).

    ``purpose`` finishes the sentence "give --calib CAL.npz to quantize it ..." (e.g. "for tflm").
    Non-numeric extras in the npz (e.g. image names) are ignored.
    """
    if graph.kind != "float":
        if calib_path:
            raise UsageError(f"--calib: {model_path} is already quantized ({graph.kind}); --calib is for a float model")
        return None
    if not calib_path:
        raise UsageError(f"{model_path}: a float model; give --calib CAL.npz to quantize it {purpose}")
    arrays = read_npz(calib_path, "calibration")
    arrays = {k: v for k, v in arrays.items() if k in graph.inputs or v.dtype.kind in "fiub"}
    return match_inputs(graph, arrays, calib_path)

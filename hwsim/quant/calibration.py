"""Calibration data: checking it and streaming the float model over it.

``calibration`` is what :func:`hwsim.quantize` accepts: one dict input name ->
array (batch first, the model's layout), or an iterable of such dicts (batches,
read one at a time and never concatenated).  :class:`CalibrationSet` checks
every batch as it is read (names, shapes, dtypes, NaN/Inf) and can be read
again when the passes need several sweeps (a list can; a one-shot iterator
such as a generator cannot, which is an error only if a second sweep is asked
for).  :func:`float_traces` runs the float reference over the batches in small
chunks and yields every activation it computed.
"""

from __future__ import annotations

import collections.abc

import numpy as np

from hwsim.graph.ir import Graph

__all__ = ["CalibrationSet", "float_traces", "chunks", "check_batch"]

#: samples per float_reference call: bounds the memory of a traced run (EfficientNet: ~30 MB per sample; its batch is fixed at 1 anyway)
CHUNK = 16


class CalibrationSet:
    """Validated, re-readable calibration batches for ``graph``.

    Parameters
    ----------
    graph : Graph
        The float graph (its inputs name and shape the expected arrays).
    calibration : dict or iterable of dicts
        name -> array, batch first, in the model's layout.

    Raises
    ------
    ValueError
        Not a dict or an iterable of dicts (checked here); a bad batch is
        reported when it is read, naming the batch, the input and what was expected.
    """

    def __init__(self, graph: Graph, calibration) -> None:
        self.graph = graph
        if isinstance(calibration, dict):
            self._source = [calibration]
        elif isinstance(calibration, (str, bytes)) or not isinstance(calibration, collections.abc.Iterable):
            raise ValueError(f"calibration: expected a dict input name -> array or an iterable of such dicts, "
                             f"got {type(calibration).__name__}")
        else:
            self._source = calibration
        self._one_shot = isinstance(calibration, collections.abc.Iterator)
        self._sweeps = 0

    def batches(self):
        """Yield checked batches (dict name -> float32 array in the model's layout)."""
        if self._one_shot and self._sweeps > 0:
            raise ValueError("calibration: a one-shot iterator (e.g. a generator) can be read only once, and these "
                             "passes read the calibration data several times; pass a list of batches instead")
        self._sweeps += 1
        count = 0
        for i, batch in enumerate(self._source):
            yield check_batch(self.graph, batch, i)
            count += 1
        if count == 0:
            raise ValueError("calibration: the calibration set is empty; expected at least one batch with at "
                             "least one sample")


def check_batch(graph: Graph, batch, index: int = 0) -> dict:
    """One batch checked against ``graph``'s inputs; float32 arrays in the model's layout."""
    from hwsim.sim.executor import _describe, _model_shape

    where = f"calibration batch {index}" if index else "calibration"
    if not isinstance(batch, dict):
        raise ValueError(f"{where}: expected a dict input name -> array, got {type(batch).__name__}")
    extra = sorted(set(batch) - set(graph.inputs))
    if extra:
        raise ValueError(f"{where}: {extra[0]!r} is not a model input (the model's inputs: "
                         f"{', '.join(graph.inputs)})")
    out, n = {}, None
    for name in graph.inputs:
        t = graph.tensor(name)
        want = _model_shape(graph, t.shape)
        expected = _describe(want, t.dtype)
        if name not in batch:
            raise ValueError(f"{where}: no array for input {name!r}; expected {expected}")
        arr = np.asarray(batch[name])
        if arr.dtype.kind != "f":
            raise ValueError(f"{where}: input {name!r} has dtype {arr.dtype}; expected {expected}")
        # any batch size: the batch is split into the model's own batch size when it is fixed
        if arr.ndim != len(want) or any(w is not None and w != s for w, s in zip(want[1:], arr.shape[1:])):
            raise ValueError(f"{where}: input {name!r} has shape {list(arr.shape)}; expected {expected}")
        if arr.shape[0] == 0:
            raise ValueError(f"{where}: input {name!r} holds no samples (batch size 0); expected at least one")
        if n is not None and arr.shape[0] != n:
            raise ValueError(f"{where}: input {name!r} has {arr.shape[0]} samples, the other inputs {n}; expected "
                             f"the same batch size for every input")
        n = arr.shape[0]
        arr = arr.astype(np.float32, copy=False)
        bad = ~np.isfinite(arr)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{where}: input {name!r} holds {int(bad.sum())} NaN/Inf value(s) (first at index "
                             f"{list(first)}); expected finite numbers")
        out[name] = arr
    return out


def chunks(graph: Graph, calib: CalibrationSet, chunk: int = CHUNK):
    """Yield the calibration inputs in chunks of at most ``chunk`` samples (the model's batch if fixed)."""
    fixed = {graph.tensor(name).shape[0] for name in graph.inputs} - {None}
    if fixed:
        chunk = min(fixed)          # a model with a fixed batch size runs that many samples at a time
    for batch in calib.batches():
        n = next(iter(batch.values())).shape[0]
        for start in range(0, n, chunk):
            yield {k: v[start:start + chunk] for k, v in batch.items()}


def float_traces(graph: Graph, calib: CalibrationSet, chunk: int = CHUNK):
    """Yield ``(inputs, env)`` per chunk of at most ``chunk`` samples: the float reference's every tensor.

    ``env`` maps tensor names to float arrays in the IR layout (NHWC), batch first.
    """
    from hwsim.sim.float_ref import float_reference

    for part in chunks(graph, calib, chunk):
        _, env = float_reference(graph, part, trace=True)
        yield part, env

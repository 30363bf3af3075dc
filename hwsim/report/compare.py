"""``hwsim.compare``: run a model on targets and measure, layer by layer, how far each is from float.

For each target the quantized graph runs through :func:`hwsim.simulate` with
``trace=True`` (the integer results come from the C kernels) and the float
model through :func:`hwsim.float_reference` with ``trace=True``.  Layers are
paired by the contract of the quantizers: an integer op keeps the float node's
name and writes ``<float tensor>__q``.  A quantized graph without
``float_source`` (an imported QDQ or TFLite model) is compared with its own
dequantised float run, tensor by tensor under the same names.
"""

from __future__ import annotations

import numpy as np

from hwsim.graph.ir import Graph
from hwsim.report import metrics as M
from hwsim.report.accum import accumulator_bound, observed_headroom_bits
from hwsim.report.result import AccumulatorStats, LayerResult, OutputResult, Report, TargetResult

__all__ = ["compare"]

#: ops that only move values (their error is their input's) and the float-producing dequantize
_NOT_A_LAYER = frozenset({"reshape", "transpose", "dequantize"})
_MAC_OPS = frozenset({"conv2d", "fully_connected"})
_MAX_ERRORS = 200_000


def _profiles(target_or_targets) -> list:
    from hwsim.targets import TargetProfile, load_target

    items = [target_or_targets] if isinstance(target_or_targets, (str, TargetProfile)) or hasattr(
        target_or_targets, "__fspath__") else list(target_or_targets)
    if not items:
        raise ValueError("targets: expected a target (name, profile file or TargetProfile) or a non-empty list")
    profiles = [t if isinstance(t, TargetProfile) else load_target(t) for t in items]
    names = [p.name for p in profiles]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"targets: {dup[0]!r} is given twice")
    return profiles


def _is_float_graph(graph: Graph) -> bool:
    return not any(t.quant is not None for t in graph.tensors.values())


def _single_input(graph: Graph, arrays, what: str = "inputs"):
    """A bare array stands for the only input of a single-input model."""
    if not isinstance(arrays, np.ndarray):
        return arrays
    if len(graph.inputs) != 1:
        raise ValueError(f"{what}: the model has {len(graph.inputs)} inputs ({', '.join(graph.inputs)}); pass a dict "
                         "name -> array")
    return {graph.inputs[0]: arrays}


def _check_labels(graph: Graph, labels, n: int) -> dict:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise ValueError(f"labels: expected a dict output name -> int class labels, got {type(labels).__name__}")
    out = {}
    for name, y in labels.items():
        if name not in graph.outputs:
            raise ValueError(f"labels: the model has no output named {name!r}; its outputs are "
                             f"{', '.join(graph.outputs)}")
        y = np.asarray(y)
        if y.dtype.kind not in "iu" or y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"labels[{name!r}]: expected {n} integer class labels (shape [{n}]), got dtype "
                             f"{y.dtype} shape {list(y.shape)}")
        shape = graph.tensor(name).shape
        classes = shape[-1] if len(shape) == 2 else None
        if classes is None or classes < 2:
            raise ValueError(f"labels[{name!r}]: output {name!r} is not a classifier output [N, C>=2] "
                             f"(shape {list(shape)})")
        if y.size and (int(y.min()) < 0 or int(y.max()) >= classes):
            bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
            raise ValueError(f"labels[{name!r}]: label {bad} is outside the {classes} classes [0, {classes - 1}]")
        out[name] = y.astype(np.int64)
    return out


def _quantize(graph: Graph, profile, calibration) -> Graph:
    from hwsim.quant.quantize import quantize

    return quantize(graph, profile, calibration)


def _real(q: np.ndarray, quant) -> np.ndarray:
    """scale * (q - zero_point), per channel along ``quant.axis`` when it has several scales.

    Rounded to float32 like the float reference's own values (a max-pool or a
    requantisation-free copy then compares as exact, not as 150 dB), returned as float64.
    """
    scale, zp = _broadcast_params(quant, q.ndim)
    return ((q.astype(np.float64) - zp) * scale).astype(np.float32).astype(np.float64)


def _broadcast_params(quant, ndim: int):
    scale = np.asarray(quant.scale, dtype=np.float64)
    zp = np.asarray(quant.zero_point, dtype=np.float64)
    if quant.per_channel:
        shape = [1] * ndim
        shape[quant.axis % ndim] = scale.size
        return scale.reshape(shape), zp.reshape(shape)
    return scale.reshape(()), zp.reshape(())


def _code_range(dtype, bits: int | None = None) -> tuple[int, int]:
    info = np.iinfo(dtype)
    if bits is None or bits >= info.bits:
        return int(info.min), int(info.max)
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if info.min < 0 else (0, (1 << bits) - 1)


def _op_semantics(node, graph: Graph, profile):
    """(op key, OpSemantics) of a conv / fully_connected node, as the executor picks them."""
    x_t, w_t = graph.tensor(node.inputs[0]), graph.tensor(node.inputs[1])
    bits = 16 if np.dtype(x_t.dtype).itemsize == 2 else None
    op = node.op
    if op == "conv2d":
        groups = int(node.attrs.get("groups", 1))
        if groups > 1 and w_t.data is not None and w_t.data.shape[3] == 1:   # depthwise, as the executor decides
            op = "depthwise_conv2d"
    return op, profile.for_op(op, activation_bits=bits)


def _accumulator_stats(node, graph: Graph, profile, counters: dict | None) -> AccumulatorStats | None:
    from hwsim.sim.ops.common import rebias_needed

    if node.op not in _MAC_OPS or counters is None:
        return None
    c = counters.get(node.name or node.outputs[0])
    x_t, w_t = graph.tensor(node.inputs[0]), graph.tensor(node.inputs[1])
    if c is None or not w_t.is_constant or x_t.quant is None or w_t.quant is None:
        return None
    _, sem = _op_semantics(node, graph, profile)
    acc = sem.accum
    x_dtype = np.dtype(x_t.dtype)
    zx = int(np.asarray(x_t.quant.zero_point).reshape(-1)[0])
    x_range = _code_range(x_dtype)
    if rebias_needed(x_dtype, sem.input):      # the engine re-biases s8 <-> u8 by 128 on entry (exact)
        shift = 128 if x_dtype == np.int8 else -128
        x_range, zx = (x_range[0] + shift, x_range[1] + shift), zx + shift
    bias = None
    if len(node.inputs) > 2 and node.inputs[2]:
        bias = graph.tensor(node.inputs[2]).data
        if bias is not None and np.asarray(bias).dtype.kind == "f":
            bias = None       # a float bias (per-group layers) is added after the accumulators
    bound = accumulator_bound(w_t.data, w_t.quant.zero_point, bias, x_range, zx, acc,
                              group_size=getattr(w_t.quant, "group_size", None))
    return AccumulatorStats(
        bits=acc.acc_bits, overflow=acc.acc_overflow.value, group=acc.group, group_bits=acc.group_bits,
        group_overflow=acc.group_overflow.value, input_zero_point=acc.input_zero_point.value,
        group_events=int(c["group_events"]), acc_events=int(c["acc_events"]), out_events=int(c["out_events"]),
        max_abs_acc=int(c["max_abs_acc"]), headroom_bits=observed_headroom_bits(c["max_abs_acc"], acc.acc_bits),
        worst_case_abs_acc=bound.worst_case_abs_acc, min_safe_bits=bound.min_safe_bits,
        group_can_overflow=bound.group_can_overflow, k=bound.k)


def _integer_metrics(ref: np.ndarray, q: np.ndarray, quant, rails: tuple[int, int]):
    """(ErrorMetrics with rails and clip shares, lsb, per-channel clip share) of an integer tensor."""
    approx = _real(q, quant)
    scale, zp = _broadcast_params(quant, q.ndim)
    m = M.error_metrics(ref, approx, lsb=scale)
    qmin, qmax = rails
    per_channel = M.channel_clip_share(ref, scale, zp, qmin, qmax) if q.ndim >= 2 else None
    # every channel holds the same number of values, so the tensor's share is the channels' mean
    clip = float(per_channel.mean()) if per_channel is not None else M.clip_share(ref, scale, zp, qmin, qmax)
    m = M.ErrorMetrics(**{**m.to_dict(), "rails_share": M.rails_share(q, qmin, qmax), "clip_share": clip})
    lsb = float(np.asarray(quant.scale).reshape(-1)[0]) if not quant.per_channel else None
    return m, lsb, per_channel


def _rails(node, graph: Graph, profile, tensor) -> tuple[int, int]:
    """qmin / qmax of a layer's output: the target's output width for MAC layers, else the dtype's."""
    bits = None
    if node.op in _MAC_OPS and graph.tensor(node.inputs[0]).quant is not None:
        bits = _op_semantics(node, graph, profile)[1].output.bits
    return _code_range(np.dtype(tensor.dtype), bits)


def _is_integer_output(t) -> bool:
    return t.quant is not None and np.dtype(t.dtype).kind in "iu"


def _is_float_mac(node, graph: Graph) -> bool:
    """A conv / fully_connected with an integer input and a float output (integer MACs, float epilogue)."""
    if node.op not in _MAC_OPS:
        return False
    x_t, y_t = graph.tensor(node.inputs[0]), graph.tensor(node.outputs[0])
    return x_t.quant is not None and np.dtype(x_t.dtype).kind in "iu" and np.dtype(y_t.dtype).kind == "f"


def _float_name(q_graph: Graph, name: str, node, ref_env: dict, float_nodes: dict) -> str | None:
    """The float-graph tensor that integer tensor ``name`` approximates."""
    if q_graph.float_source is None:
        return name if name in ref_env else None
    candidates = [name[:-3]] if name.endswith("__q") else []
    fnode = float_nodes.get(node.name)
    if fnode is not None:
        candidates.append(fnode.outputs[0])
    candidates.append(name)       # a float output may keep the float tensor's own name
    return next((c for c in candidates if c in ref_env), None)


def _layers(q: Graph, profile, sim, ref_env: dict) -> list[LayerResult]:
    fg = q.float_source
    float_nodes = {}
    if fg is not None:
        for n in fg.nodes:
            float_nodes.setdefault(n.name, n)
    layers, seen = [], {}
    for node in q.nodes:
        if node.op in _NOT_A_LAYER or not node.outputs:
            continue
        out = node.outputs[0]
        t = q.tensor(out)
        if out not in sim.tensors or not (_is_integer_output(t) or _is_float_mac(node, q)):
            continue
        fname = _float_name(q, out, node, ref_env, float_nodes)
        if fname is None:
            continue
        qv, ref = sim.tensors[out], np.asarray(ref_env[fname], dtype=np.float64)
        if qv.shape != ref.shape:
            continue
        if t.quant is not None:
            m, lsb, per_channel = _integer_metrics(ref, qv, t.quant, _rails(node, q, profile, t))
        else:                     # an integer layer with a float output (a per-group layer's float combine)
            m, lsb, per_channel = M.error_metrics(ref, qv), None, None
        name = node.name or out
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:        # node names need not be unique in a model; rows and JSON keys must be
            name = f"{name} #{seen[name]}"
        layers.append(LayerResult(name=name, op=node.op, tensor=out, shape=tuple(qv.shape), lsb=lsb,
                                  metrics=m, accumulator=_accumulator_stats(node, q, profile, sim.counters),
                                  channel_clip_share=per_channel))
    return layers


def _classifier(shape) -> bool:
    return len(shape) == 2 and shape[1] >= 2


def _outputs(q: Graph, sim, ref_outs: dict, ref_env: dict, labels: dict) -> list[OutputResult]:
    producers = q.producers()
    results = []
    for name in q.outputs:
        ref = np.asarray(ref_outs[name], dtype=np.float64)
        got = sim.outputs[name]
        t = q.tensor(name)
        int_name, quant = None, None
        if t.quant is not None and got.dtype.kind in "iu":            # an integer model output (TFLite int8)
            int_name, quant = name, t.quant
            approx = _real(got, quant)
        else:
            approx = np.asarray(got, dtype=np.float64)
            p = producers.get(name)
            if p is not None and p.op == "dequantize" and q.tensor(p.inputs[0]).quant is not None:
                int_name, quant = p.inputs[0], q.tensor(p.inputs[0]).quant
        m = M.error_metrics(ref, approx)
        lsb = None
        if quant is not None and not quant.per_channel:
            lsb = float(np.asarray(quant.scale).reshape(-1)[0])
            qv = sim.tensors[int_name]
            ref_ir = np.asarray(ref_env[name], dtype=np.float64)
            scale, zp = _broadcast_params(quant, qv.ndim)
            rails = _code_range(qv.dtype)
            m = M.ErrorMetrics(**{**m.to_dict(), "max_error_lsb": m.max_abs_error / lsb,
                                  "rails_share": M.rails_share(qv, *rails),
                                  "clip_share": M.clip_share(ref_ir, scale, zp, *rails)})
        res = OutputResult(name=name, shape=tuple(got.shape), lsb=lsb, metrics=m)
        if _classifier(got.shape):
            res.top1_agreement = M.topk_agreement(ref, approx, 1)
            res.top5_agreement = M.topk_agreement(ref, approx, 5) if got.shape[1] > 5 else None
            if name in labels:
                res.accuracy = M.accuracy(approx, labels[name], 1)
                res.top5_accuracy = M.accuracy(approx, labels[name], 5) if got.shape[1] > 5 else None
        err = (approx - ref).reshape(-1)
        step = max(1, -(-err.size // _MAX_ERRORS))
        res.errors = err[::step].astype(np.float32)
        results.append(res)
    return results


def _float_scores(ref_outs: dict, labels: dict) -> dict:
    scores = {}
    for name, y in labels.items():
        ref = ref_outs[name]
        scores[name] = {"accuracy": M.accuracy(ref, y, 1),
                        "top5_accuracy": M.accuracy(ref, y, 5) if ref.shape[1] > 5 else None}
    return scores


def _chunks(graph: Graph, inputs: dict) -> list[dict]:
    """The inputs in batches the model accepts: a model with a fixed batch size (EfficientNet's 1) runs
    N samples as N / batch calls; a model with a free batch dimension runs them at once."""
    sizes = {graph.tensor(name).shape[0] if graph.tensor(name).shape else None for name in graph.inputs}
    first = next(iter(inputs.values()), None)
    if len(sizes) != 1 or None in sizes or first is None or np.ndim(first) == 0:
        return [inputs]
    fixed, n = int(next(iter(sizes))), int(np.shape(first)[0])
    if fixed < 1 or n == fixed or n % fixed:
        return [inputs]      # check_inputs names the mismatch
    return [{k: np.asarray(v)[i:i + fixed] for k, v in inputs.items()} for i in range(0, n, fixed)]


def _concat_env(graph: Graph, envs: list[dict]) -> dict:
    """Per-call traces joined along the batch axis (constants, which have no batch axis, taken once)."""
    if len(envs) == 1:
        return envs[0]
    out = {}
    for name, first in envs[0].items():
        t = graph.tensors.get(name)
        if (t is not None and t.is_constant) or np.ndim(first) == 0:
            out[name] = first
        else:
            out[name] = np.concatenate([e[name] for e in envs], axis=0)
    return out


def _float_run(g: Graph, chunks: list[dict]):
    from hwsim.sim import float_reference

    runs = [float_reference(g, c, trace=True) for c in chunks]
    outs = {k: np.concatenate([r[0][k] for r in runs], axis=0) if len(runs) > 1 else runs[0][0][k]
            for k in runs[0][0]}
    return outs, _concat_env(g, [r[1] for r in runs])


def _sim_run(q: Graph, profile, chunks: list[dict], n_threads: int):
    """simulate(trace=True) over the batches; counters summed (events) and maxed (max_abs_acc)."""
    from hwsim.sim import SimResult, simulate

    runs = [simulate(q, profile, c, trace=True, n_threads=n_threads) for c in chunks]
    if len(runs) == 1:
        return runs[0]
    counters: dict = {}
    for r in runs:
        for layer, c in (r.counters or {}).items():
            acc = counters.setdefault(layer, {"group_events": 0, "acc_events": 0, "out_events": 0, "max_abs_acc": 0})
            for key in ("group_events", "acc_events", "out_events"):
                acc[key] += int(c[key])
            acc["max_abs_acc"] = max(acc["max_abs_acc"], int(c["max_abs_acc"]))
    outputs = {k: np.concatenate([r.outputs[k] for r in runs], axis=0) for k in runs[0].outputs}
    return SimResult(outputs, tensors=_concat_env(q, [r.tensors for r in runs]),
                     accumulators=_concat_env(q, [r.accumulators for r in runs]), counters=counters,
                     deviations=list(runs[0].deviations))


class _Progress:
    """A rich progress bar on stderr (transient), or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("[bold]report[/] {task.description:<32}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True),
                                 transient=True)
            self._task = self._bar.add_task("", total=total)

    def __enter__(self):
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def step(self, description: str, advance: int = 0) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=description, advance=advance)


def compare(graph: Graph, target_or_targets, inputs: dict, *, calibration=None, labels=None, n_threads: int = 1,
            progress: bool = False) -> Report:
    """Run ``graph`` on one or more targets and compare every layer and output with the float model.

    Parameters
    ----------
    graph : Graph
        A quantized graph (compared with ``graph.float_source`` when set, else
        with its own dequantised float run), or a float graph together with
        ``calibration`` (then quantized for each target: :func:`hwsim.quantize`
        where it exists, else the MinMax quantizer).
    target_or_targets : str, path, TargetProfile, or a list of them
        Several targets give one report with their results side by side.
    inputs : dict name -> ndarray
        The evaluation inputs, batch first, in the model's layout (a single-input
        model also takes the bare array).  A model with a fixed batch size b
        takes any multiple of b samples, run b at a time.
    calibration : dict name -> ndarray, or an iterable of such dicts
        Calibration data for a float graph (must be None for a quantized one);
        a bare array for a single-input model.
    labels : dict output name -> int ndarray [N]
        Class labels of classifier outputs, for accuracy.
    n_threads : int
        Kernel threads (the results never depend on it).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    Report
        ``report.targets[name]`` holds per-layer and per-output results; see
        :mod:`hwsim.report.result` for every field and the JSON schema.

    Raises
    ------
    ValueError (SimulationError, TargetError)
        Bad graph, targets, inputs, calibration or labels; the message names which.
    """
    from hwsim.sim.executor import check_inputs

    if not isinstance(graph, Graph):
        raise ValueError(f"graph: expected a hwsim Graph (see hwsim.load_model), got {type(graph).__name__}")
    inputs = _single_input(graph, inputs)
    if isinstance(calibration, np.ndarray):
        calibration = _single_input(graph, calibration, "calibration")
    profiles = _profiles(target_or_targets)
    is_float = _is_float_graph(graph)
    if is_float and calibration is None:
        raise ValueError("calibration: the graph is a float model; give calibration data to quantize it for "
                         "each target (or pass a quantized graph)")
    if not is_float and calibration is not None:
        raise ValueError("calibration: the graph is already quantized; calibration data is only for a float graph")
    chunks = [check_inputs(graph, c) for c in _chunks(graph, inputs)]
    n = sum(int(next(iter(c.values())).shape[0]) for c in chunks) if chunks and chunks[0] else 0
    if n < 1:
        raise ValueError("inputs: expected at least one sample (batch size >= 1)")
    labels = _check_labels(graph, labels, n)

    references: dict = {}        # id(float graph) -> (outputs, env): one float run per distinct graph

    def reference(g: Graph):
        key = id(g)
        if key not in references:
            references[key] = _float_run(g, chunks)
        return references[key]

    results: dict = {}
    float_scores: dict = {}
    with _Progress(progress, len(profiles)) as bar:
        for profile in profiles:
            q = graph
            if is_float:
                bar.step(f"{profile.name}: quantize")
                q = _quantize(graph, profile, calibration)
            bar.step(f"{profile.name}: float reference")
            ref_outs, ref_env = reference(q.float_source if q.float_source is not None else q)
            bar.step(f"{profile.name}: simulate")
            sim = _sim_run(q, profile, chunks, n_threads)
            bar.step(f"{profile.name}: metrics")
            if labels and not float_scores:
                float_scores = _float_scores(ref_outs, labels)
            results[profile.name] = TargetResult(
                name=profile.name, summary=profile.summary,
                reference=str(profile.reference) if profile.reference is not None else None,
                graph_kind=q.kind, layers=_layers(q, profile, sim, ref_env),
                outputs=_outputs(q, sim, ref_outs, ref_env, labels), deviations=list(sim.deviations))
            bar.step(f"{profile.name}: done", advance=1)
    return Report(model=graph.path, n_samples=n, targets=results, float_scores=float_scores)

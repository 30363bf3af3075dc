"""Zero-shot quantization, level 1: activation ranges and bias correction from batch-norm statistics.

No data and no fine-tuning (Nagel et al., "Data-Free Quantization Through Weight
Equalization and Bias Correction", ICCV 2019; SEMANTICS.md section 5).  A batch
norm's output is ``gamma * x_hat + beta`` with ``x_hat`` normalised over the
training data, so per channel it is distributed about as N(beta, gamma^2).  The
ONNX importer folds every foldable batch norm into the conv / fully connected
layer before it and keeps gamma and beta on that node
(``node.attrs["batchnorm"] = {"gamma": [O], "beta": [O]}``,
:func:`hwsim.graph.passes.fold_batchnorm`): the layer's pre-activation output is
that Gaussian, and its fused activation (ReLU, ReLU6) clamps it.

From there this module derives

* :func:`ranges_from_batchnorm` -- a per-tensor real range for every activation
  whose distribution the statistics determine (the calibration ``hwsim.quantize``
  uses when it has no calibration data);
* :func:`expected_clipped_normal` / :func:`expected_input_from_batchnorm` --
  E[clip(z, lo, hi)] for z ~ N(beta, gamma^2), e.g. E[ReLU(z)] =
  sigma phi(beta / sigma) + beta Phi(beta / sigma) with sigma = |gamma|;
* :func:`bias_correction_data_free` -- b - eps E[x] per output channel, with
  eps = W_quant - W the weights' quantization error;
  :func:`correct_biases_from_batchnorm` applies it to every layer of a quantized
  graph whose input the statistics describe.

A gamma can be negative (the batch norm flips the channel's sign); the spread is
|gamma| everywhere here.
"""

from __future__ import annotations

import math

import numpy as np

from hwsim.graph.ir import Graph, Node, Tensor

__all__ = ["DEFAULT_N_SIGMA", "ranges_from_batchnorm", "expected_clipped_normal",
           "expected_input_from_batchnorm", "bias_correction_data_free", "correct_biases_from_batchnorm"]

#: beta +- 4 |gamma|.  For an 8-bit quantizer 3.92 sigma is ACIQ's MSE-optimal clip of a Gaussian
#: (SEMANTICS.md 4.7): a wider range costs more rounding error on every value than the clipping of the
#: 6e-5 of values beyond 4 sigma saves.  Real pre-activations have heavier tails than a Gaussian, and a
#: tensor's range is the union over its channels, so 4 (not 3) errs towards covering the data.
DEFAULT_N_SIGMA = 4.0

# ops whose output values all lie in the range of their (first) input
_SAME_RANGE = {"reshape", "transpose", "max_pool2d", "avg_pool2d", "mean"}
_WEIGHTED = {"conv2d", "fully_connected"}


def _clamp_range(lo: float, hi: float, activation) -> tuple[float, float]:
    if activation is None:
        return lo, hi
    a_lo, a_hi = float(activation[0]), float(activation[1])
    return min(max(lo, a_lo), a_hi), min(max(hi, a_lo), a_hi)


def _hard_swish(x: float) -> float:
    return x * min(max(x + 3.0, 0.0), 6.0) / 6.0


def _node_range(node: Node, ranges: dict, n_sigma: float) -> tuple[float, float] | None:
    """The real range of ``node``'s first output, or None when the statistics do not determine it."""
    a = node.attrs
    ins = [ranges.get(i) if i else None for i in node.inputs]
    if node.op in _WEIGHTED:
        bn = a.get("batchnorm")
        if bn is None:
            return None
        beta = np.asarray(bn["beta"], dtype=np.float64)
        sigma = np.abs(np.asarray(bn["gamma"], dtype=np.float64))
        lo, hi = float(np.min(beta - n_sigma * sigma)), float(np.max(beta + n_sigma * sigma))
        return _clamp_range(lo, hi, a.get("activation"))
    if node.op in ("add", "sub"):
        if ins[0] is None or len(ins) < 2 or ins[1] is None:
            return None
        (lo0, hi0), (lo1, hi1) = ins[0], ins[1]
        lo, hi = (lo0 + lo1, hi0 + hi1) if node.op == "add" else (lo0 - hi1, hi0 - lo1)
        return _clamp_range(lo, hi, a.get("activation"))
    if node.op in ("softmax", "logistic"):
        if node.op == "logistic" and ins[0] is not None:
            return tuple(1.0 / (1.0 + math.exp(-v)) for v in ins[0])
        return 0.0, 1.0
    if node.op == "tanh":
        return (math.tanh(ins[0][0]), math.tanh(ins[0][1])) if ins[0] is not None else (-1.0, 1.0)
    if ins[0] is None:
        return None
    lo, hi = ins[0]
    if node.op in _SAME_RANGE:
        return _clamp_range(lo, hi, a.get("activation"))
    if node.op == "relu":
        return max(lo, 0.0), max(hi, 0.0)
    if node.op == "clip":
        return _clamp_range(lo, hi, (a["min"], a["max"]))
    if node.op == "leaky_relu":
        alpha = float(a["alpha"])
        vals = [v if v >= 0 else alpha * v for v in (lo, hi)]     # monotonic for alpha >= 0
        return min(vals), max(vals)
    if node.op == "hard_swish":
        vals = [_hard_swish(lo), _hard_swish(hi)] + ([_hard_swish(-1.5)] if lo < -1.5 < hi else [])
        return min(vals), max(vals)
    if node.op == "pad":
        c = float(a.get("constant", 0.0))
        return min(lo, c), max(hi, c)
    if node.op == "concat":
        if any(r is None for r in ins):
            return None
        return min(r[0] for r in ins), max(r[1] for r in ins)
    return None


def ranges_from_batchnorm(graph: Graph, n_sigma: float = DEFAULT_N_SIGMA, *,
                          input_ranges: dict | None = None) -> dict[str, tuple[float, float]]:
    """Real ranges of a float graph's activations from its batch-norm statistics alone (no data).

    Parameters
    ----------
    graph : Graph
        A float graph as :func:`hwsim.load_model` imports it (batch norms folded, their statistics in
        ``node.attrs["batchnorm"]``).
    n_sigma : float
        Half-width of each channel's range in standard deviations: beta +- n_sigma |gamma|
        (default :data:`DEFAULT_N_SIGMA` = 4, why: see there).
    input_ranges : dict, optional
        Graph input name -> (lo, hi) the caller knows without data (e.g. pixels in [0, 1]); they are
        returned as given and propagate through the ops below like any other range.

    Returns
    -------
    dict
        Float tensor name -> (lo, hi), per tensor (lo <= hi, Python floats), in graph order:

        * the output of a batch-norm-folded conv2d / fully_connected: the union over channels of
          [beta - n_sigma |gamma|, beta + n_sigma |gamma|], then clamped by its fused activation
          (ReLU -> [0, inf), ReLU6 -> [0, 6]);
        * add / sub: the sum / difference of the operands' ranges (a bound: the extremes need not
          coincide), then the fused activation;
        * reshape, transpose, max / average pooling, mean: the input's range; relu, clip, leaky_relu,
          hard_swish, pad, concat: the input range mapped through the function;
        * logistic, softmax, tanh: their output range even without an input range.

        A tensor the statistics do not determine -- graph inputs, layers with no batch norm after
        them (a classifier's logits) and everything computed from them -- is absent: the caller
        decides (e.g. calibrate it on data or fail).

    Examples
    --------
    A conv folded with gamma = [1, -2], beta = [0.5, 1] and a ReLU gives
    [max(0, min(0.5 - 4, 1 - 8)), max(0.5 + 4, 1 + 8)] = [0, 9].
    """
    if not n_sigma > 0:
        raise ValueError(f"n_sigma: expected a positive number, got {n_sigma!r}")
    ranges: dict[str, tuple[float, float]] = {}
    for name, bounds in (input_ranges or {}).items():
        if name not in graph.inputs:
            raise ValueError(f"input_ranges: {name!r} is not a graph input (inputs: {', '.join(graph.inputs)})")
        try:
            lo, hi = (float(v) for v in bounds)
        except (TypeError, ValueError):
            raise ValueError(f"input_ranges[{name!r}]: expected (lo, hi), got {bounds!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"input_ranges[{name!r}]: expected finite lo <= hi, got ({lo}, {hi})")
        ranges[name] = (lo, hi)
    for node in graph.nodes:
        if not node.outputs or graph.tensor(node.outputs[0]).dtype.kind != "f":
            continue
        r = _node_range(node, ranges, float(n_sigma))
        if r is not None:
            ranges[node.outputs[0]] = (float(r[0]), float(r[1]))
    return ranges


def _norm_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    # erfc keeps precision in the far left tail, where 1 + erf(x) cancels
    return 0.5 * np.vectorize(math.erfc, otypes=[np.float64])(-np.asarray(x, dtype=np.float64) / math.sqrt(2.0))


def expected_clipped_normal(mean, std, lo: float = -math.inf, hi: float = math.inf) -> np.ndarray:
    """E[clip(z, lo, hi)] for z ~ N(mean, std^2), elementwise (float64).

    .. math::

        E = lo\\,\\Phi(a) + \\mu(\\Phi(b) - \\Phi(a)) + \\sigma(\\phi(a) - \\phi(b)) + hi\\,(1 - \\Phi(b)),
        \\quad a = (lo - \\mu)/\\sigma,\\ b = (hi - \\mu)/\\sigma

    With lo = 0, hi = inf this is E[ReLU(z)] = sigma phi(mu/sigma) + mu Phi(mu/sigma); with hi = 6,
    ReLU6.  A term whose bound is infinite is dropped (its probability is 0).

    .. note:: std = 0 gives clip(mean, lo, hi); a negative std is taken as |std| (a batch norm's gamma
       may be negative).
    """
    mu = np.asarray(mean, dtype=np.float64)
    sigma = np.abs(np.asarray(std, dtype=np.float64))
    mu, sigma = np.broadcast_arrays(mu, sigma)
    if lo > hi:
        raise ValueError(f"expected_clipped_normal: lo {lo} > hi {hi}")
    safe = np.where(sigma > 0, sigma, 1.0)
    result = mu.copy()
    if math.isfinite(lo):
        a = (lo - mu) / safe
        cdf_a = _norm_cdf(a)
        result = result + (lo - mu) * cdf_a + safe * _norm_pdf(a)
    if math.isfinite(hi):
        b = (hi - mu) / safe
        cdf_b = _norm_cdf(b)
        result = result + (hi - mu) * (1.0 - cdf_b) - safe * _norm_pdf(b)
    # (derivation: E[clip] = mu + E[(lo - z)+] - E[(z - hi)+], each a Gaussian partial expectation)
    return np.where(sigma > 0, result, np.clip(mu, lo, hi))


def expected_input_from_batchnorm(graph: Graph, tensor: str) -> np.ndarray | None:
    """E[x] of float tensor ``tensor`` under the batch-norm model, or None when it cannot be derived.

    The tensor must be the output of a batch-norm-folded conv2d / fully_connected (through its fused
    activation: E[clip(z, act_lo, act_hi)], z ~ N(beta, gamma^2) per channel), or reached from one by
    reshape / transpose (the per-channel expectation is broadcast over the spatial positions and then
    moved as the values are, so a fully connected layer after a flatten gets one E[x] per input feature).

    Returns
    -------
    ndarray or None
        float64 with the tensor's shape without the batch axis (NHWC for rank-4 tensors in the IR).
        For a conv input, ``.reshape(-1, C).mean(axis=0)`` is the per-channel E[x].
    """
    producers = graph.producers()
    chain: list[Node] = []
    name = tensor
    while True:
        node = producers.get(name)
        if node is None:
            return None
        if node.op in _WEIGHTED:
            break
        if node.op not in ("reshape", "transpose"):
            return None
        chain.append(node)
        name = node.inputs[0]
    bn = node.attrs.get("batchnorm")
    if bn is None:
        return None
    lo, hi = node.attrs.get("activation") or (-math.inf, math.inf)
    per_channel = expected_clipped_normal(bn["beta"], bn["gamma"], float(lo), float(hi))
    shape = graph.tensor(name).shape[1:]
    if any(d is None for d in shape):
        return None
    value = np.broadcast_to(per_channel, shape).reshape((1,) + tuple(shape))
    for step in reversed(chain):
        if step.op == "transpose":
            value = np.transpose(value, step.attrs["perm"])
        else:
            value = value.reshape((1,) + tuple(step.attrs["shape"])[1:])
    return np.ascontiguousarray(value[0])


def bias_correction_data_free(w_float: np.ndarray, w_quant_deq: np.ndarray, bias, expected_input) -> np.ndarray:
    """Bias corrected for the weights' quantization error: b - eps E[x] per output channel (float32).

    Parameters
    ----------
    w_float, w_quant_deq : ndarray
        The float weights and the dequantized quantized weights, IR layout: fully_connected [O, K],
        conv2d [O, KH, KW, I / groups].
    bias : ndarray [O] or None
        The float bias (None = zeros).
    expected_input : ndarray
        E[x]: fully_connected [K]; conv2d one value per input channel [I] (or a map [..., I] whose
        positions are averaged).  Groups are I / (I / groups); output channel o reads input channels
        of group o // (O / groups).

    Returns
    -------
    ndarray
        float32 [O]: ``b - sum_k eps[o, k] E[x_k]`` with eps = w_quant_deq - w_float; for a conv the sum
        runs over the kernel taps and the input channels of the output channel's group.

    Notes
    -----
    E[W~ x + b~] = W x's mean + eps E[x] + b~, so this b~ makes the layer's mean output equal the float
    layer's (Nagel et al. 2019).  Padding is ignored (every tap is taken to see E[x]).
    """
    w = np.asarray(w_float, dtype=np.float64)
    wq = np.asarray(w_quant_deq, dtype=np.float64)
    if w.shape != wq.shape:
        raise ValueError(f"w_quant_deq: shape {wq.shape} differs from w_float's {w.shape}")
    if w.ndim not in (2, 4):
        raise ValueError(f"w_float: expected [O, K] or [O, KH, KW, I/groups] weights, got shape {w.shape}")
    o = w.shape[0]
    b = np.zeros(o) if bias is None else np.asarray(bias, dtype=np.float64)
    if b.shape != (o,):
        raise ValueError(f"bias: expected shape ({o},), got {b.shape}")
    eps = wq - w
    ex = np.asarray(expected_input, dtype=np.float64)
    if not np.all(np.isfinite(ex)):
        raise ValueError("expected_input: NaN or Inf")
    if w.ndim == 2:
        ex = ex.reshape(-1)
        if ex.shape != (w.shape[1],):
            raise ValueError(f"expected_input: expected {w.shape[1]} values (one per input feature), got {ex.size}")
        shift = eps @ ex
    else:
        cg = w.shape[3]
        ex = ex.reshape(-1, ex.shape[-1]).mean(axis=0) if ex.ndim > 1 else ex
        if ex.size % cg or o % (ex.size // cg):
            raise ValueError(f"expected_input: {ex.size} input channels do not fit weights of shape {w.shape}")
        groups = ex.size // cg
        og = o // groups
        # per output channel: its group's input channels, summed over the kernel taps
        ex_per_out = ex.reshape(groups, cg)[np.arange(o) // og]          # [O, I/groups]
        shift = np.einsum("ohwi,oi->o", eps, ex_per_out)
    return (b - shift).astype(np.float32)


def correct_biases_from_batchnorm(graph: Graph) -> Graph:
    """A copy of quantized ``graph`` with data-free bias correction on every layer it applies to.

    For each integer conv2d / fully_connected of ``graph`` (matched by node name with the float graph
    it was quantized from, ``graph.float_source``) whose float input :func:`expected_input_from_batchnorm`
    describes, and which has an int32 bias: the float bias is corrected for the quantized weights'
    error (:func:`bias_correction_data_free`) and re-quantized with the bias tensor's own scale
    (round half to even, saturated to int32).  Other layers are left as they are.

    Parameters
    ----------
    graph : Graph
        A quantized graph with the package's structure (``minmax_quantize`` / ``hwsim.quantize``):
        integer weights ``quant`` per tensor or per output channel, ``float_source`` set.

    Returns
    -------
    Graph
        A new graph sharing the unchanged tensors; ``float_source`` and ``kind`` are kept.
    """
    from hwsim.sim.float_ref import dequantize_constant

    source = graph.float_source
    if source is None:
        raise ValueError("graph: no float_source; data-free bias correction needs the float graph it "
                         "was quantized from (quantize it with hwsim.quantize or minmax_quantize)")
    float_nodes = {n.name: n for n in source.nodes if n.op in _WEIGHTED and n.name}
    tensors = dict(graph.tensors)
    for node in graph.nodes:
        fnode = float_nodes.get(node.name)
        if node.op not in _WEIGHTED or fnode is None or len(node.inputs) < 3 or not node.inputs[2]:
            continue
        w_t, b_t = graph.tensor(node.inputs[1]), graph.tensor(node.inputs[2])
        if w_t.quant is None or b_t.quant is None or not b_t.is_constant or b_t.dtype != np.int32:
            continue
        expected = expected_input_from_batchnorm(source, fnode.inputs[0])
        if expected is None:
            continue
        w_float = source.tensor(fnode.inputs[1]).data
        b_float = source.tensor(fnode.inputs[2]).data if len(fnode.inputs) > 2 and fnode.inputs[2] else None
        if w_float is None or w_float.shape != w_t.data.shape:
            continue
        corrected = bias_correction_data_free(w_float, dequantize_constant(w_t), b_float, expected)
        b_scale = np.broadcast_to(np.asarray(b_t.quant.scale, dtype=np.float64), corrected.shape)
        info = np.iinfo(np.int32)
        bq = np.clip(np.rint(corrected.astype(np.float64) / b_scale), info.min, info.max).astype(np.int32)
        tensors[b_t.name] = Tensor(b_t.name, b_t.shape, b_t.dtype, b_t.quant, bq)
    return Graph(tensors, list(graph.nodes), list(graph.inputs), list(graph.outputs),
                 model_layout=graph.model_layout, source=graph.source, kind=graph.kind, path=graph.path,
                 float_source=source)

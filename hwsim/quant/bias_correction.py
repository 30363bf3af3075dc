"""Empirical bias correction (Nagel et al., ICCV 2019; SEMANTICS.md section 5), layer by layer.

Quantization shifts the mean of a layer's output: the weights' rounding error
eps gives E[y~] - E[y] = eps E[x], and the quantized inputs carry the error of
every layer before.  For each integer conv2d / fully_connected layer in graph
order, on the calibration data:

    delta[c] = E[y_float[c]] - E[y_quant[c]]        (mean over samples and positions)

where y is the layer's output *before* its fused activation: y_float = W x + b
from the float model (``q.float_source``), y_quant = W~ x~ + b~ with x~ the
layer's input as :func:`hwsim.simulate` computes it on the target (dequantized)
and W~, b~ the dequantized weights and bias.  Both are linear in the input, so
the means come from the mean input patch (:func:`hwsim.quant.layer_data.mean_patch`).
The bias becomes b~ + delta, re-quantized at its scale s_x s_w[c] (the
correction is exact up to half a bias step).  The next layer is measured after
this one is corrected, so corrections do not double count.  The float means
take one pass over the data; each layer then takes one simulated pass.
"""

from __future__ import annotations

import numpy as np

from hwsim.graph.ir import Graph

__all__ = ["correct_biases", "mean_error"]


def _float_layer(q: Graph, node):
    from hwsim.quant.layer_data import float_name

    f = q.float_source
    fnode = next(n for n in f.nodes if n.outputs[0] == float_name(node.outputs[0]))
    w = f.tensors[fnode.inputs[1]].data
    b = f.tensors[fnode.inputs[2]].data if len(fnode.inputs) > 2 and fnode.inputs[2] else np.zeros(w.shape[0])
    return fnode, w, np.asarray(b, np.float64)


def _float_means(q: Graph, layers: list, calib) -> dict:
    """node name -> E[W x + b] of the float layer, all layers in one pass over the calibration data."""
    from hwsim.quant.calibration import float_traces
    from hwsim.quant.layer_data import float_name, mean_output, mean_patch

    sums, counts = {}, {}
    for _, env in float_traces(q.float_source, calib):
        for node in layers:
            fnode, w, _ = _float_layer(q, node)
            s, n = mean_patch(fnode, env[float_name(node.inputs[0])], w.shape)
            sums[node.name] = sums.get(node.name, 0.0) + s
            counts[node.name] = counts.get(node.name, 0) + n
    out = {}
    for node in layers:
        fnode, w, b = _float_layer(q, node)
        out[node.name] = mean_output(fnode, sums[node.name] / counts[node.name], w, b)
    return out


def _quant_mean(q: Graph, node, calib, profile) -> np.ndarray:
    from hwsim.quant.layer_data import dequantized_bias, dequantized_weights, mean_output, mean_patch, simulated_inputs

    w_q = dequantized_weights(q, node)
    total, count = 0.0, 0
    for x_q in simulated_inputs(q, node, calib, profile):
        s, n = mean_patch(node, x_q, w_q.shape)
        total, count = total + s, count + n
    return mean_output(node, total / count, w_q, dequantized_bias(q, node, w_q.shape[0]))


def mean_error(q: Graph, node, calib, profile) -> np.ndarray:
    """Per output channel, E[y_float - y_quant] of ``node``'s pre-activation over the calibration data."""
    return _float_means(q, [node], calib)[node.name] - _quant_mean(q, node, calib, profile)


def correct_biases(q: Graph, profile, calib, *, progress: bool = False) -> dict:
    """Correct the bias of every integer conv2d / fully_connected layer of ``q`` in place.

    Returns
    -------
    dict
        node name -> the per-channel correction added to the real bias (float64 [O]).
    """
    from hwsim.quant.layer_data import dequantized_bias, weighted_layers
    from hwsim.quant.quantize import _Progress
    from hwsim.quant.rewrite import set_bias
    from hwsim.sim.executor import clear_cache

    layers = weighted_layers(q)
    applied = {}
    with _Progress(progress, "bias correction", total=len(layers) + 1) as bar:
        float_means = _float_means(q, layers, calib)
        bar.advance()
        for node in layers:
            delta = float_means[node.name] - _quant_mean(q, node, calib, profile)
            set_bias(q, node, dequantized_bias(q, node, delta.shape[0]) + delta, profile)
            clear_cache(q)
            applied[node.name] = delta
            bar.advance()
    return applied

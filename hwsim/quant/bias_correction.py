"""Empirical bias correction (Nagel et al., ICCV 2019; SEMANTICS.md section 5), layer by layer.

Quantization shifts the mean of a layer's output: the weights' rounding error
eps gives E[y~] - E[y] = eps E[x], and the quantized inputs carry the error of
every layer before.  For each integer conv2d / fully_connected layer in graph
order, on the calibration data:

    delta[c] = E[y_float[c]] - E[y_quant[c]]        (mean over samples and positions)

where y is the layer's output *before* its fused activation: y_float from the
float model (``q.float_source``), y_quant = W~ x~ + b~ with x~ the layer's input
as :func:`hwsim.simulate` computes it on the target (dequantized) and W~, b~ the
dequantized weights and bias.  The bias becomes b~ + delta, re-quantized at its
scale s_x s_w[c] (the correction is exact up to half a bias step).  The next
layer is measured after this one is corrected, so corrections do not double count.
"""

from __future__ import annotations

import numpy as np

from hwsim.graph.ir import Graph

__all__ = ["correct_biases", "mean_error"]


def mean_error(q: Graph, node, calib, profile) -> np.ndarray:
    """Per output channel, E[y_float - y_quant] of ``node``'s pre-activation over the calibration data."""
    from hwsim.quant.layer_data import (dequantized_bias, dequantized_weights, float_name, layer_inputs,
                                        pre_activation)

    f = q.float_source
    # the float layer that writes the float twin of this layer's output
    fnode = next(n for n in f.nodes if n.outputs[0] == float_name(node.outputs[0]))
    w_f = f.tensors[fnode.inputs[1]].data
    b_f = f.tensors[fnode.inputs[2]].data if len(fnode.inputs) > 2 and fnode.inputs[2] else np.zeros(w_f.shape[0])
    w_q = dequantized_weights(q, node)
    b_q = dequantized_bias(q, node, w_q.shape[0])
    total, count = np.zeros(w_q.shape[0]), 0

    for x_f, x_q in layer_inputs(q, node, calib, profile):
        diff = (pre_activation(fnode, x_f, w_f, b_f).astype(np.float64)
                - pre_activation(node, x_q, w_q, b_q).astype(np.float64))
        diff = diff.reshape(-1, diff.shape[-1])
        total += diff.sum(axis=0)
        count += diff.shape[0]
    return total / count


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
    with _Progress(progress, "bias correction", total=len(layers)) as bar:
        for node in layers:
            delta = mean_error(q, node, calib, profile)
            n_out = delta.shape[0]
            set_bias(q, node, dequantized_bias(q, node, n_out) + delta, profile)
            clear_cache(q)
            applied[node.name] = delta
            bar.advance()
    return applied

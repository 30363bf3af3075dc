"""Empirical bias correction: the per-channel mean error of a layer's pre-activation becomes zero."""

from __future__ import annotations

import numpy as np

import hwsim
import hwsim.demo
from hwsim.graph.ir import Graph, Node, Tensor
from hwsim.quant.bias_correction import correct_biases, mean_error
from hwsim.quant.calibration import CalibrationSet
from hwsim.quant.layer_data import weighted_layers


def _fc_graph():
    # row 0: max |w| = 1.27 -> scale 0.01 (restricted int8), 0.004 rounds to 0: error +0.004 on input 1
    # row 1: max |w| = 0.635 -> scale 0.005, both weights exact
    w = np.array([[1.27, 0.004], [0.635, -0.3]], np.float32)
    b = np.array([0.1, -0.2], np.float32)
    f32 = np.dtype(np.float32)
    t = {"x": Tensor("x", (None, 2), f32), "w": Tensor("w", w.shape, f32, data=w), "b": Tensor("b", (2,), f32, data=b),
         "y": Tensor("y", (None, 2), f32)}
    return Graph(t, [Node("fully_connected", ["x", "w", "b"], ["y"], {"activation": None}, name="fc")], ["x"], ["y"],
                 kind="float")


def test_hand_checkable_layer():
    g = _fc_graph()
    # inputs on the u8 grid of [0, 2.55] (scale 0.01): x~ = x, so only the weights' rounding biases y;
    # E[x1] = 1.0, so E[y0_float - y0_quant] = 0.004 * 1.0 (+ the bias rounding), E[y1 error] = bias rounding only
    k = np.array([[0, 100], [255, 100], [30, 50], [60, 150]], np.float32)
    x = k * np.float32(0.01)
    target = hwsim.load_target("onnxruntime-x86")
    q = hwsim.quantize(g, target, {"x": x})
    assert float(q.tensors["x__q"].quant.scale) == float(np.float32(0.01))
    node = weighted_layers(q)[0]
    calib = CalibrationSet(g, {"x": x})
    bias_step = (q.tensors["x__q"].quant.scale.astype(np.float64) * q.tensors["w__q"].quant.scale).reshape(-1)
    before = mean_error(q, node, calib, target)
    np.testing.assert_allclose(before, [0.004, 0.0], atol=0.5 * bias_step.max() + 1e-7)
    applied = correct_biases(q, target, calib)
    np.testing.assert_allclose(applied["fc"], before)
    after = mean_error(q, node, calib, target)
    assert np.all(np.abs(after) <= 0.5 * bias_step + 1e-7)
    assert abs(after[0]) < abs(before[0]) / 10


def test_every_layer_of_the_digits_model_ends_with_zero_mean_error():
    g = hwsim.load_model(hwsim.demo.model_path())
    data = hwsim.demo.load_digits()
    cal = {"image": data["x_train"][:16]}
    target = hwsim.load_target("onnxruntime-x86")
    plain = hwsim.quantize(g, target, cal, granularity="per-tensor")
    q = hwsim.quantize(g, target, cal, granularity="per-tensor", ptq="bias_correction")
    calib = CalibrationSet(g, cal)
    for node_plain, node in zip(weighted_layers(plain), weighted_layers(q)):
        step = (q.tensors[node.inputs[0]].quant.scale * q.tensors[node.inputs[1]].quant.scale).astype(np.float64)
        after = np.abs(mean_error(q, node, calib, target))
        before = np.abs(mean_error(plain, node_plain, calib, target))
        # each layer was corrected after the ones before it, so its mean error stays within half a bias step
        assert np.all(after <= 0.5 * np.broadcast_to(step, after.shape) + 1e-6), node.name
        assert after.max() <= before.max(), node.name
    x = data["x_test"][:100]
    ref = hwsim.float_reference(g, {"image": x})["logits"]
    y = hwsim.simulate(q, target, {"image": x}).outputs["logits"]
    y0 = hwsim.simulate(plain, target, {"image": x}).outputs["logits"]
    # on other images the mean logit error shrinks too
    assert np.abs((y - ref).mean(axis=0)).mean() < np.abs((y0 - ref).mean(axis=0)).mean()

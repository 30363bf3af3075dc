"""Zero-shot level 1: batch-norm statistics on folded nodes, ranges, E[ReLU(z)], data-free bias correction."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import hwsim
from hwsim.demo import load_digits, model_path
from hwsim.quant.zero_shot import (DEFAULT_N_SIGMA, bias_correction_data_free, correct_biases_from_batchnorm,
                                   expected_clipped_normal, expected_input_from_batchnorm, ranges_from_batchnorm)
from hwsim.sim.float_ref import conv2d_f32, float_reference
from hwsim.sim.minmax_quantize import minmax_quantize


# ---------------------------------------------------------------- E[clip(z)] for a Gaussian

def test_expected_relu_hand_values():
    # mu = 0, sigma = 1: E[ReLU(z)] = phi(0) = 1/sqrt(2 pi) = 0.3989422804
    assert math.isclose(float(expected_clipped_normal(0.0, 1.0, 0.0)), 1 / math.sqrt(2 * math.pi), rel_tol=1e-12)
    # no clamp: the mean; sigma = 0: the clamped mean; a negative gamma counts as its magnitude
    np.testing.assert_allclose(expected_clipped_normal([1.5, -2.0], [3.0, 0.5]), [1.5, -2.0])
    np.testing.assert_array_equal(expected_clipped_normal([-1.0, 2.0, 9.0], 0.0, 0.0, 6.0), [0.0, 2.0, 6.0])
    np.testing.assert_allclose(expected_clipped_normal(0.3, -2.0, 0.0), expected_clipped_normal(0.3, 2.0, 0.0))
    # far in the tails: mu = -40 sigma gives ~0 (not a negative number from cancellation); mu = +40 sigma gives mu
    assert 0.0 <= float(expected_clipped_normal(-40.0, 1.0, 0.0)) < 1e-300
    assert math.isclose(float(expected_clipped_normal(40.0, 1.0, 0.0)), 40.0, rel_tol=1e-15)


CASES = [(0.2, 1.0, 0.0, math.inf), (-1.3, 0.7, 0.0, math.inf), (2.5, 1.8, 0.0, 6.0), (5.5, 2.0, 0.0, 6.0),
         (0.0, 3.0, -1.0, 2.0), (1.0, -0.4, 0.0, math.inf)]


@pytest.mark.parametrize("mu,gamma,lo,hi", CASES)
def test_expected_clipped_normal_matches_monte_carlo(mu, gamma, lo, hi):
    # 2e6 samples: the standard error of the sample mean is std(clip(z)) / sqrt(2e6) <= |gamma| / 1414;
    # 5 standard errors (a false alarm once in ~3.5 million seeds; the seed is fixed anyway)
    rng = np.random.default_rng(7)
    x = np.clip(rng.normal(mu, abs(gamma), 2_000_000), lo, hi)
    se = x.std() / math.sqrt(x.size)
    assert abs(float(expected_clipped_normal(mu, gamma, lo, hi)) - x.mean()) < 5 * se


@pytest.mark.parametrize("mu,gamma,lo,hi", CASES)
def test_expected_clipped_normal_matches_numerical_integration(mu, gamma, lo, hi):
    # integral of clip(z) * N(z; mu, sigma) over mu +- 12 sigma (the mass outside is 4e-33), trapezoid rule on
    # 400001 points: error ~ (h^2 / 12) * max|f''| ~ 1e-10 * sigma (the kinks of clip add O(h^2) too)
    sigma = abs(gamma)
    z = np.linspace(mu - 12 * sigma, mu + 12 * sigma, 400_001)
    pdf = np.exp(-0.5 * ((z - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    ref = np.trapezoid(np.clip(z, lo, hi) * pdf, z)
    assert abs(float(expected_clipped_normal(mu, gamma, lo, hi)) - ref) < 1e-8


# ---------------------------------------------------------------- the folding pass records the statistics

def _conv_bn_model(path, gamma, beta, act="Relu", mean=None, var=None):
    """x [1, 2, 5, 5] -> Conv 3x3 (3 out) -> BatchNormalization -> act -> Add(itself) -> Flatten -> y."""
    rng = np.random.default_rng(0)
    o = len(gamma)
    mean = np.zeros(o) if mean is None else mean
    var = np.ones(o) if var is None else var
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in (
        (rng.standard_normal((o, 2, 3, 3)), "w"), (np.asarray(gamma), "g"), (np.asarray(beta), "be"),
        (np.asarray(mean), "m"), (np.asarray(var), "v"))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["bn"])]
    if act == "Relu":
        nodes.append(helper.make_node("Relu", ["bn"], ["a"]))
    elif act == "Relu6":
        inits += [numpy_helper.from_array(np.float32(0), "lo6"), numpy_helper.from_array(np.float32(6), "hi6")]
        nodes.append(helper.make_node("Clip", ["bn", "lo6", "hi6"], ["a"]))
    else:
        nodes.append(helper.make_node("Identity", ["bn"], ["a"]))
    nodes += [helper.make_node("Add", ["a", "a"], ["s"]), helper.make_node("Flatten", ["s"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, o * 25])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)
    return hwsim.load_model(str(path))


def test_folded_conv_keeps_gamma_and_beta(tmp_path):
    gamma, beta = [1.0, -2.0, 0.5], [0.5, 1.0, -3.0]
    # mean / var change the folded weights but not the output's distribution: stored are gamma and beta
    g = _conv_bn_model(tmp_path / "m.onnx", gamma, beta, mean=np.array([3.0, -1.0, 0.2]),
                       var=np.array([4.0, 0.25, 1.0]))
    conv = next(n for n in g.nodes if n.op == "conv2d")
    bn = conv.attrs["batchnorm"]
    assert bn["gamma"].dtype == np.float32 and bn["beta"].dtype == np.float32
    np.testing.assert_array_equal(bn["gamma"], gamma)
    np.testing.assert_array_equal(bn["beta"], beta)
    assert not any("batchnorm" in n.attrs for n in g.nodes if n is not conv)


def test_ranges_hand_computed(tmp_path):
    g = _conv_bn_model(tmp_path / "m.onnx", [1.0, -2.0, 0.5], [0.5, 1.0, -3.0])
    r = ranges_from_batchnorm(g, n_sigma=4.0)
    # beta -+ 4|gamma|: [-3.5, 4.5], [-7, 9], [-5, -1]: union [-7, 9], ReLU -> [0, 9]; Add(a, a) -> [0, 18]
    conv_out = next(n for n in g.nodes if n.op == "conv2d").outputs[0]
    assert r[conv_out] == (0.0, 9.0)
    add_out = next(n for n in g.nodes if n.op == "add").outputs[0]
    assert r[add_out] == (0.0, 18.0)
    assert r["y"] == (0.0, 18.0)                            # flatten (transpose + reshape) passes it on
    assert "x" not in r                                     # a graph input has no statistics
    r3 = ranges_from_batchnorm(g, n_sigma=3.0)
    assert r3[conv_out] == (0.0, 7.0)                       # max(0.5 + 3, 1 + 6, -3 + 1.5)


def test_ranges_from_given_input_ranges(tmp_path):
    # a graph input range the caller knows propagates through ops that need no statistics: the digits'
    # image in [0, 1] itself; the logits stay absent (no batch norm after the classifier)
    g = hwsim.load_model(model_path())
    r = ranges_from_batchnorm(g, input_ranges={"image": (0, 1)})
    assert r["image"] == (0.0, 1.0) and "logits" not in r
    with pytest.raises(ValueError, match="'img' is not a graph input"):
        ranges_from_batchnorm(g, input_ranges={"img": (0, 1)})
    with pytest.raises(ValueError, match=r"input_ranges\['image'\]: expected finite lo <= hi"):
        ranges_from_batchnorm(g, input_ranges={"image": (1, 0)})
    # x in [-1, 3] -> Relu [0, 3] -> Add(r, r) [0, 6] -> MaxPool [0, 6] -> Flatten [0, 6]
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "r"], ["s"]),
             helper.make_node("MaxPool", ["s"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "p.onnx")
    g2 = hwsim.load_model(str(tmp_path / "p.onnx"))
    r2 = ranges_from_batchnorm(g2, input_ranges={"x": (-1.0, 3.0)})
    assert r2["x"] == (-1.0, 3.0) and r2["r"] == (0.0, 3.0) and r2["s"] == (0.0, 6.0) and r2["y"] == (0.0, 6.0)
    assert ranges_from_batchnorm(g2) == {}              # no statistics, no input range: nothing is derived


def test_ranges_without_and_with_relu6(tmp_path):
    g = _conv_bn_model(tmp_path / "a.onnx", [1.0, -2.0, 0.5], [0.5, 1.0, -3.0], act="none")
    conv_out = next(n for n in g.nodes if n.op == "conv2d").outputs[0]
    assert ranges_from_batchnorm(g)[conv_out] == (-7.0, 9.0)
    g6 = _conv_bn_model(tmp_path / "b.onnx", [1.0, -2.0, 0.5], [0.5, 1.0, -3.0], act="Relu6")
    conv_out = next(n for n in g6.nodes if n.op == "conv2d").outputs[0]
    assert ranges_from_batchnorm(g6)[conv_out] == (0.0, 6.0)
    with pytest.raises(ValueError, match="n_sigma"):
        ranges_from_batchnorm(g6, n_sigma=0)


@pytest.fixture(scope="module")
def digits():
    g = hwsim.load_model(model_path())
    x = load_digits()["x_train"]
    _, env = float_reference(g, {"image": x}, trace=True)
    return g, env


def test_digits_ranges_cover_the_observed_activations(digits):
    g, env = digits
    r = ranges_from_batchnorm(g)
    assert DEFAULT_N_SIGMA == 4.0
    # every batch-norm-folded layer's output and what follows it up to the classifier; not the input or logits
    derived = {n.outputs[0] for n in g.nodes if "batchnorm" in n.attrs}
    assert derived and derived <= set(r)
    assert {"residual.relu", "features"} <= set(r)
    assert "image" not in r and "logits" not in r
    for name, (lo, hi) in r.items():
        a = env[name]
        covered = np.mean((a >= lo) & (a <= hi))
        assert covered >= 0.99, (name, covered)
        # the range is neither a wild over-estimate nor far inside the data: within 2x of the observed extremes
        assert 0.5 * a.max() <= hi <= 2.0 * a.max(), (name, hi, a.max())
        assert lo <= 0.0 and lo >= 2.0 * a.min() - 1e-6, (name, lo, a.min())


def test_expected_input_follows_the_flatten(digits):
    g, env = digits
    conv4 = next(n for n in g.nodes if n.name == "conv4/conv")
    bn = conv4.attrs["batchnorm"]
    per_channel = expected_clipped_normal(bn["beta"], bn["gamma"], 0.0, math.inf)     # ReLU fused in conv4
    e = expected_input_from_batchnorm(g, "features")
    # the FC reads NCHW-flattened features: 64 channels x 16 positions, channel-major
    assert e.shape == (1024,)
    np.testing.assert_allclose(e.reshape(64, 16), np.repeat(per_channel[:, None], 16, axis=1), rtol=1e-12)
    conv_map = expected_input_from_batchnorm(g, "conv4.relu")
    assert conv_map.shape == (4, 4, 64)
    assert expected_input_from_batchnorm(g, "image") is None
    assert expected_input_from_batchnorm(g, "residual.relu") is None      # an add, not a batch norm
    # the BN model describes the data: each channel's observed mean over the training digits is within 15%
    # of the prediction (measured: at most 11%; the pre-activations are only roughly Gaussian)
    observed = env["conv2_dw.relu"].reshape(-1, 16).mean(axis=0)
    predicted = expected_input_from_batchnorm(g, "conv2_dw.relu").reshape(-1, 16).mean(axis=0)
    np.testing.assert_allclose(observed, predicted, rtol=0.15)


# ---------------------------------------------------------------- data-free bias correction

def test_bias_correction_hand_values():
    # FC: eps = [[0.5, 0], [0, -1]], E[x] = [2, 3] -> shift [1, -3]; b = [1, 1] -> [0, 4]
    w = np.array([[1.0, 2.0], [3.0, 4.0]])
    wq = np.array([[1.5, 2.0], [3.0, 3.0]])
    np.testing.assert_array_equal(bias_correction_data_free(w, wq, [1.0, 1.0], [2.0, 3.0]), [0.0, 4.0])
    # depthwise conv (2 groups of 1 channel, 1x2 kernel): eps[0] = [0.1, 0.2] on channel 0 (E 10),
    # eps[1] = [-0.5, 0] on channel 1 (E 4): shift [3, -2]; no bias -> [-3, 2]
    w = np.zeros((2, 1, 2, 1))
    wq = np.array([0.1, 0.2, -0.5, 0.0]).reshape(2, 1, 2, 1)
    np.testing.assert_allclose(bias_correction_data_free(w, wq, None, np.array([10.0, 4.0])), [-3.0, 2.0],
                               rtol=1e-6)


def test_bias_correction_errors():
    with pytest.raises(ValueError, match="w_quant_deq"):
        bias_correction_data_free(np.zeros((2, 3)), np.zeros((3, 2)), None, np.zeros(3))
    with pytest.raises(ValueError, match="expected_input"):
        bias_correction_data_free(np.zeros((2, 3)), np.zeros((2, 3)), None, np.zeros(4))
    with pytest.raises(ValueError, match="bias"):
        bias_correction_data_free(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="expected_input"):
        bias_correction_data_free(np.zeros((4, 3, 3, 3)), np.zeros((4, 3, 3, 3)), None, np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        bias_correction_data_free(np.zeros((2, 3)), np.zeros((2, 3)), None, np.array([0.0, np.nan, 1.0]))


def test_bias_correction_reduces_mean_output_error_of_a_quantized_conv():
    # inputs drawn from the BN model: x = ReLU(z), z ~ N(beta_c, gamma_c^2) per channel; a 3x3 conv
    # 8 -> 6 channels, no padding, weights 3-bit per tensor (a coarse grid, so the rounding error does not
    # average out per channel).  The mean output error per channel, E[y~ - y], is what the correction removes.
    rng = np.random.default_rng(11)
    c_in, c_out = 8, 6
    gamma = rng.uniform(0.5, 1.5, c_in) * rng.choice([-1, 1], c_in)
    beta = rng.uniform(-0.5, 1.0, c_in)
    x = np.maximum(rng.normal(beta, np.abs(gamma), (64, 10, 10, c_in)), 0).astype(np.float32)
    w = (rng.standard_normal((c_out, 3, 3, c_in)) * 0.3).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    s = np.abs(w).max() / 3                                         # int3 restricted: codes -3..3
    wq = (np.clip(np.rint(w / s), -3, 3) * s).astype(np.float32)
    corrected = bias_correction_data_free(w, wq, bias, expected_clipped_normal(beta, gamma, 0.0))

    def conv(weights, b):
        return conv2d_f32(x, weights, b, (1, 1), (1, 1), (0, 0, 0, 0), 1).astype(np.float64)

    y = conv(w, bias)
    err_before = np.abs((conv(wq, bias) - y).reshape(-1, c_out).mean(axis=0))
    err_after = np.abs((conv(wq, corrected) - y).reshape(-1, c_out).mean(axis=0))
    # the correction removes the bias up to the sampling error of E[x] (64 * 64 positions per channel)
    assert err_after.mean() < 0.1 * err_before.mean(), (err_before, err_after)
    assert np.all(err_after < err_before)


W4_PROFILE = """\
schema_version: 1
name: tflite-w4-per-tensor
base: tflite-reference
summary: the LiteRT reference datapath with 4-bit per-tensor weights (coarse enough for bias correction to show)
operands:
  weights: {bits: 4, signed: true, symmetric: true, range: restricted, granularity: per-tensor, scale: any}
"""


def test_correct_biases_on_the_quantized_digits_model(tmp_path, digits):
    # end to end through the C kernels: MinMax-quantize the digits model with 4-bit per-tensor weights,
    # correct the biases data-free, and simulate both on the held-out digits.  The layers whose input is a
    # BN-folded conv's output (conv2_dw, conv3_pw, fc) get new biases; conv1 (reads the image) and conv4
    # (reads the residual add) keep theirs.  The corrected model is closer to the float model.
    g, _ = digits
    profile = tmp_path / "w4.yaml"
    profile.write_text(W4_PROFILE)
    target = hwsim.load_target(str(profile))
    data = load_digits()
    q = minmax_quantize(g, target, {"image": data["x_train"][:200]})
    fixed = correct_biases_from_batchnorm(q)
    assert fixed.float_source is g and fixed.kind == q.kind
    changed = {n.name for n in q.nodes if n.op in ("conv2d", "fully_connected")
               and not np.array_equal(q.tensor(n.inputs[2]).data, fixed.tensor(n.inputs[2]).data)}
    assert changed == {"conv2_dw/conv", "conv3_pw/conv", "fc"}

    x = data["x_test"]
    ref, env = float_reference(g, {"image": x}, trace=True)

    def errors(graph):
        r = hwsim.simulate(graph, target, {"image": x}, trace=True)
        node = next(n for n in graph.nodes if n.name == "conv3_pw/conv")
        qp = graph.tensor(node.outputs[0]).quant
        deq = (r.tensors[node.outputs[0]].astype(np.float64) - qp.zero_point) * qp.scale
        layer_bias = np.abs((deq - env["conv3_pw.bn"]).reshape(-1, 16).mean(axis=0)).mean()
        return layer_bias, float(np.mean((r.outputs["logits"] - ref["logits"]) ** 2))

    bias_before, mse_before = errors(q)
    bias_after, mse_after = errors(fixed)
    # measured: conv3_pw mean |bias| 0.069 -> 0.049, logits MSE 4.8 -> 4.1
    assert bias_after < 0.8 * bias_before
    assert mse_after < 0.9 * mse_before


def test_correct_biases_needs_the_float_graph(digits):
    g, _ = digits
    with pytest.raises(ValueError, match="float_source"):
        correct_biases_from_batchnorm(g)

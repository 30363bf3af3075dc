"""Cross-layer equalization: the float function is unchanged and the paired ranges are equal."""

from __future__ import annotations

import numpy as np
import pytest

import hwsim
import hwsim.demo
from hwsim.graph.ir import Graph, Node, Tensor
from hwsim.quant.calibration import CalibrationSet
from hwsim.quant.cle import equalization_pairs, equalize


def _conv(name, x, w, y, act, groups=1, bias=None):
    ins = [x, w] + ([bias] if bias else [])
    return Node("conv2d", ins, [y], dict(stride=(1, 1), dilation=(1, 1), padding=(1, 1, 1, 1), groups=groups,
                                         activation=act), name=name)


def _two_convs(act, rng, depthwise_second=False):
    """x [N, 6, 6, 3] -> conv 3x3 (4 channels, wildly different ranges) -> act -> conv (3x3 depthwise or 1x1)."""
    w1 = rng.normal(0, 1, (4, 3, 3, 3)).astype(np.float32) * np.array([20, 0.05, 1, 3], np.float32)[:, None, None, None]
    b1 = rng.normal(0, 1, 4).astype(np.float32)
    w2 = (rng.normal(0, 1, (4, 3, 3, 1)) if depthwise_second else rng.normal(0, 1, (5, 3, 3, 4))).astype(np.float32)
    f32 = np.dtype(np.float32)
    t = {"x": Tensor("x", (None, 6, 6, 3), f32), "w1": Tensor("w1", w1.shape, f32, data=w1),
         "b1": Tensor("b1", (4,), f32, data=b1), "w2": Tensor("w2", w2.shape, f32, data=w2),
         "h": Tensor("h", (None, 6, 6, 4), f32), "y": Tensor("y", (None, 6, 6, w2.shape[0]), f32)}
    nodes = [_conv("c1", "x", "w1", "h", act, bias="b1"), _conv("c2", "h", "w2", "y", None, 4 if depthwise_second else 1)]
    return Graph(t, nodes, ["x"], ["y"], kind="float")


def _ranges(g):
    w1, w2 = g.tensors["w1"].data, g.tensors["w2"].data
    r1 = np.abs(w1).reshape(4, -1).max(axis=1)
    r2 = np.abs(w2).reshape(4, -1).max(axis=1) if w2.shape[3] == 1 else np.abs(w2).reshape(-1, 4).max(axis=0)
    return r1, r2


@pytest.mark.parametrize("act", [None, (0.0, np.inf)])
@pytest.mark.parametrize("depthwise_second", [False, True])
def test_equalized_graph_computes_the_same_and_ranges_meet(act, depthwise_second):
    rng = np.random.default_rng(1)
    g = _two_convs(act, rng, depthwise_second)
    r1, r2 = _ranges(g)
    e = equalize(g)
    x = rng.normal(0, 1, (3, 6, 6, 3)).astype(np.float32)
    a, b = hwsim.float_reference(g, {"x": x})["y"], hwsim.float_reference(e, {"x": x})["y"]
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(a))
    n1, n2 = _ranges(e)
    # one pair: after equalization both ranges are sqrt(r1 r2) (Nagel et al., eq. for s_i)
    np.testing.assert_allclose(n1, np.sqrt(r1 * r2), rtol=1e-5)
    np.testing.assert_allclose(n2, np.sqrt(r1 * r2), rtol=1e-5)
    assert g.tensors["w1"].data is not e.tensors["w1"].data       # the input graph is not modified
    np.testing.assert_array_equal(_ranges(g)[0], r1)


def test_relu6_pair_needs_data_and_freezes_channels_that_reach_the_clip():
    rng = np.random.default_rng(2)
    g = _two_convs((0.0, 6.0), rng)
    assert equalization_pairs(g)[0].clip == 6.0
    e = equalize(g)                                   # no data: a clipped pair is left alone
    np.testing.assert_array_equal(e.tensors["w1"].data, g.tensors["w1"].data)
    x = rng.normal(0, 1, (8, 6, 6, 3)).astype(np.float32)
    e = equalize(g, CalibrationSet(g, {"x": x}), margin=1.0)
    h = hwsim.float_reference(g, {"x": x}, trace=True)[1]["h"]
    reaches = h.reshape(-1, 4).max(axis=0) >= 6.0
    assert reaches[0] and not reaches.all()           # channel 0 (x20 weights) hits the clip, some do not
    np.testing.assert_array_equal(e.tensors["w1"].data[reaches], g.tensors["w1"].data[reaches])
    assert not np.array_equal(e.tensors["w1"].data[~reaches], g.tensors["w1"].data[~reaches])
    # exact on the calibration data (the clip binds nowhere it did not before)
    a, b = hwsim.float_reference(g, {"x": x})["y"], hwsim.float_reference(e, {"x": x})["y"]
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(a))


def test_cle_on_the_digits_model_keeps_the_function_and_helps_per_tensor_weights():
    g = hwsim.load_model(hwsim.demo.model_path())
    data = hwsim.demo.load_digits()
    cal = {"image": data["x_train"][:16]}
    x = data["x_test"][:100]
    e = equalize(g, CalibrationSet(g, cal))
    a, b = hwsim.float_reference(g, {"image": x})["logits"], hwsim.float_reference(e, {"image": x})["logits"]
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(a))
    q = hwsim.quantize(g, "onnxruntime-x86", cal, granularity="per-tensor", ptq="cle")
    assert q.float_source is not g and [n.name for n in q.float_source.nodes] == [n.name for n in g.nodes]
    y = hwsim.simulate(q, "onnxruntime-x86", {"image": x}).outputs["logits"]
    assert np.mean(y.argmax(1) == a.argmax(1)) > 0.97


def test_cle_improves_per_tensor_quantization_of_an_unbalanced_pair():
    rng = np.random.default_rng(3)
    g = _two_convs((0.0, np.inf), rng)
    # the second layer undoes the first one's channel gains, so every channel matters equally in y
    g.tensors["w2"].data = (g.tensors["w2"].data / np.array([20, 0.05, 1, 3], np.float32)).astype(np.float32)
    x = rng.normal(0, 1, (16, 6, 6, 3)).astype(np.float32)
    ref = hwsim.float_reference(g, {"x": x})["y"]

    def sqnr(ptq):
        q = hwsim.quantize(g, "onnxruntime-x86", {"x": x}, granularity="per-tensor", ptq=ptq)
        y = hwsim.simulate(q, "onnxruntime-x86", {"x": x}).outputs["y"]
        return 10 * np.log10(np.sum(ref ** 2) / np.sum((y - ref) ** 2))

    # channel ranges 20 : 0.05 share one weight scale without CLE; with it they are balanced
    with_cle, without = sqnr("cle"), sqnr(())
    assert with_cle > without + 5, (with_cle, without)

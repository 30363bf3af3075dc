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


def _pointwise_pair(w1, w2, act):
    """x [N, 2, 2, 2] -> 1x1 conv w1 (bias 0) -> act -> 1x1 conv w2: a hand-checkable pair."""
    f32 = np.dtype(np.float32)
    w1 = np.asarray(w1, np.float32).reshape(2, 1, 1, 2)
    w2 = np.asarray(w2, np.float32).reshape(-1, 1, 1, 2)
    t = {"x": Tensor("x", (None, 2, 2, 2), f32), "w1": Tensor("w1", w1.shape, f32, data=w1),
         "w2": Tensor("w2", w2.shape, f32, data=w2), "h": Tensor("h", (None, 2, 2, 2), f32),
         "y": Tensor("y", (None, 2, 2, w2.shape[0]), f32)}
    pw = dict(stride=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0), groups=1)
    nodes = [Node("conv2d", ["x", "w1"], ["h"], dict(pw, activation=act), name="c1"),
             Node("conv2d", ["h", "w2"], ["y"], dict(pw, activation=None), name="c2")]
    return Graph(t, nodes, ["x"], ["y"], kind="float")


def test_two_channel_pair_by_hand():
    # W1 rows (output channels) have ranges r1 = (4, 1); W2 columns (input channels) r2 = (1, 4).
    # s = sqrt(r1 / r2) = (2, 0.5): W1 rows / s -> (2, 2) ranges, W2 columns * s -> (2, 2) = sqrt(r1 r2).
    g = _pointwise_pair([[4.0, -2.0], [1.0, 0.5]], [[1.0, -4.0], [0.5, 2.0]], (0.0, np.inf))
    e = equalize(g)
    np.testing.assert_allclose(e.tensors["w1"].data.reshape(2, 2), [[2.0, -1.0], [2.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(e.tensors["w2"].data.reshape(2, 2), [[2.0, -2.0], [1.0, 1.0]], rtol=1e-6)


def test_pairs_are_not_formed_across_a_residual_add():
    rng = np.random.default_rng(4)
    f32 = np.dtype(np.float32)
    w = {k: rng.normal(0, 1, (2, 1, 1, 2)).astype(np.float32) * np.array([10, 0.1], np.float32)[:, None, None, None]
         for k in ("w1", "w2", "w3")}
    t = {k: Tensor(k, v.shape, f32, data=v) for k, v in w.items()}
    t.update({k: Tensor(k, (None, 2, 2, 2), f32) for k in ("x", "h", "s", "y")})
    pw = dict(stride=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0), groups=1, activation=None)
    # c1 -> h feeds both c2 and the add (h + x): scaling h's channels would change the add
    nodes = [Node("conv2d", ["x", "w1"], ["h"], dict(pw), name="c1"),
             Node("add", ["h", "x"], ["s"], dict(activation=None), name="add"),
             Node("conv2d", ["h", "w2"], ["y2"], dict(pw), name="c2"),
             Node("conv2d", ["s", "w3"], ["y"], dict(pw), name="c3")]
    t["y2"] = Tensor("y2", (None, 2, 2, 2), f32)
    g = Graph(t, nodes, ["x"], ["y", "y2"], kind="float")
    assert equalization_pairs(g) == []
    e = equalize(g)
    for k in w:
        np.testing.assert_array_equal(e.tensors[k].data, w[k])


def test_relu6_to_relu_is_an_explicit_option_that_changes_the_function():
    from hwsim.quant.cle import RELU6_MODES, relu6_to_relu

    assert RELU6_MODES == ("keep", "relu")
    assert "ReLU6" in equalize.__doc__ and "cle_relu" in hwsim.quantize.__doc__
    # ranges as in the hand-checked pair; the clip at 6 binds for x = (10, 0): h0 = 40 -> 6
    g = _pointwise_pair([[4.0, -2.0], [1.0, 0.5]], [[1.0, -4.0], [0.5, 2.0]], (0.0, 6.0))
    kept = equalize(g)                                          # default: keep, no data -> clipped pair untouched
    np.testing.assert_array_equal(kept.tensors["w1"].data, g.tensors["w1"].data)
    assert kept.nodes[0].attrs["activation"] == (0.0, 6.0)
    e = equalize(g, relu6="relu")
    assert e.nodes[0].attrs["activation"] == (0.0, np.inf) and e.nodes[1].attrs["activation"] is None
    np.testing.assert_allclose(e.tensors["w1"].data.reshape(2, 2), [[2.0, -1.0], [2.0, 1.0]], rtol=1e-6)
    x = np.zeros((1, 2, 2, 2), np.float32)
    x[..., 0] = 10.0
    # original: h = clip((40, 10), 0, 6) = (6, 6); y = W2 h = (1*6 - 4*6, 0.5*6 + 2*6) = (-18, 15)
    np.testing.assert_allclose(hwsim.float_reference(g, {"x": x})["y"][0, 0, 0], [-18.0, 15.0], rtol=1e-6)
    # ReLU: h = (40, 10); y = (40 - 40, 20 + 20) = (0, 40) -- the equalized ReLU graph computes the same
    np.testing.assert_allclose(hwsim.float_reference(e, {"x": x})["y"][0, 0, 0], [0.0, 40.0], atol=1e-5)
    np.testing.assert_allclose(hwsim.float_reference(relu6_to_relu(g), {"x": x})["y"][0, 0, 0], [0.0, 40.0],
                               atol=1e-5)
    with pytest.raises(ValueError, match="relu6"):
        equalize(g, relu6="clip")


def test_quantize_cle_relu_pass_and_its_float_source():
    rng = np.random.default_rng(5)
    g = _two_convs((0.0, 6.0), rng)
    x = rng.normal(0, 1, (8, 6, 6, 3)).astype(np.float32)
    q = hwsim.quantize(g, "onnxruntime-x86", {"x": x}, granularity="per-tensor", ptq="cle_relu")
    src = {n.name: n.attrs.get("activation") for n in q.float_source.nodes}
    assert src == {"c1": (0.0, np.inf), "c2": None}             # the quantized layers approximate the ReLU graph
    assert g.nodes[0].attrs["activation"] == (0.0, 6.0)          # the input graph keeps its ReLU6
    r1, r2 = _ranges(g)
    w1 = q.float_source.tensors["w1"].data
    np.testing.assert_allclose(np.abs(w1).reshape(4, -1).max(axis=1), np.sqrt(r1 * r2), rtol=1e-5)
    with pytest.raises(ValueError, match="cle_relu"):
        hwsim.quantize(g, "onnxruntime-x86", {"x": x}, ptq="cle,cle_relu")


def test_free_channels_are_placed_inside_the_frozen_maxima():
    from hwsim.quant.cle import _pair_scales

    # channel 0 frozen with (r1, r2) = (4, 1): the maxima ratio is 4.  Free channel 1, (1, 1): s = sqrt(1 / (1 * 4))
    # = 0.5 -> (2, 0.5), inside (4, 1); equal ranges would give (1, 1) and set W2's maximum to 1 all the same, but a
    # free channel (16, 1) at equal ranges (4, 4) would quadruple W2's maximum; at ratio 4: s = 2 -> (8, 2).
    r1, r2 = np.array([4.0, 1.0, 16.0]), np.array([1.0, 1.0, 1.0])
    np.testing.assert_allclose(_pair_scales(r1, r2, np.array([True, False, False])), [1.0, 0.5, 2.0])
    # nothing frozen: Nagel et al.'s s = sqrt(r1 / r2); dead channels (a zero range) keep s = 1
    np.testing.assert_allclose(_pair_scales(np.array([4.0, 0.0]), np.array([1.0, 3.0]), np.zeros(2, bool)), [2.0, 1.0])

"""hwsim.sim.minmax_quantize: hand-worked parameters and the shape of the quantized graph."""

from __future__ import annotations

import numpy as np
import pytest

import hwsim
from hwsim.graph.ir import Graph, Node, Tensor
from hwsim.sim.minmax_quantize import _activation_params, _quantize_weights, minmax_quantize


def test_asymmetric_uint8_activation_params_by_hand():
    fmt = hwsim.load_target("onnxruntime-x86").for_op("conv2d").input          # u8, asymmetric, full range
    qp = _activation_params(-1.0, 3.0, fmt)
    # scale = 4 / 255; zp = 0 - rne(-1 / (4/255)) = rne(63.75) = 64
    assert float(qp.scale) == float(np.float32(4 / 255)) and int(qp.zero_point) == 64
    qp = _activation_params(0.5, 2.0, fmt)            # the range always holds 0: [0, 2]
    assert float(qp.scale) == float(np.float32(2 / 255)) and int(qp.zero_point) == 0


def test_power_of_two_scales_round_up():
    fmt = hwsim.load_target("npu-acc16").for_op("conv2d").input
    assert fmt.scale.value == "power_of_two"
    qp = _activation_params(-1.0, 3.0, fmt)
    s = float(qp.scale)
    assert s >= 4 / (fmt.max - fmt.min) and np.log2(s) == int(np.log2(s))


def test_weights_symmetric_per_channel_restricted():
    fmt = hwsim.load_target("tflite-reference").for_op("conv2d").weights   # int8 [-127, 127], per channel
    w = np.zeros((2, 1, 1, 2), np.float32)
    w[0, 0, 0] = [0.5, -1.27]          # max |w| 1.27 -> scale 0.01 -> q = [50, -127]
    w[1, 0, 0] = [0.3, 0.15]           # max 0.3 -> scale 0.3/127 -> q = [127, rne(63.5) = 64]
    q, qp = _quantize_weights(w, fmt)
    assert q.dtype == np.int8 and qp.axis == 0
    np.testing.assert_array_equal(q.reshape(2, 2), [[50, -127], [127, 64]])


def test_quantized_graph_runs_integer_ops_and_keeps_float_io():
    rng = np.random.default_rng(0)
    t = {
        "x": Tensor("x", (1, 4, 4, 2), np.dtype(np.float32)),
        "w": Tensor("w", (3, 1, 1, 2), np.dtype(np.float32), data=rng.normal(0, 1, (3, 1, 1, 2)).astype(np.float32)),
        "c": Tensor("c", (1, 4, 4, 3), np.dtype(np.float32)),
        "m": Tensor("m", (1, 1, 1, 3), np.dtype(np.float32)),
        "s": Tensor("s", (1, 1, 1, 3), np.dtype(np.float32)),
    }
    nodes = [Node("conv2d", ["x", "w"], ["c"], dict(stride=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0), groups=1,
                                                   activation=(0.0, 6.0)), name="conv"),
             Node("mean", ["c"], ["m"], dict(axes=(1, 2), keepdims=True), name="mean"),
             Node("softmax", ["m"], ["s"], dict(axis=-1, beta=1.0), name="sm")]
    g = Graph(t, nodes, ["x"], ["s"])
    cal = {"x": rng.normal(0, 1, (4, 4, 4, 2)).astype(np.float32)}
    q = minmax_quantize(g, "onnxruntime-x86", cal)
    ops = [n.op for n in q.nodes]
    assert ops == ["quantize", "conv2d", "mean", "dequantize", "softmax"]   # softmax has no ort scheme: float
    assert q.tensors[q.nodes[1].outputs[0]].dtype == np.uint8
    x = rng.normal(0, 1, (1, 4, 4, 2)).astype(np.float32)
    y = hwsim.simulate(q, "onnxruntime-x86", {"x": x}).outputs["s"]
    ref = hwsim.float_reference(g, {"x": x})["s"]
    assert y.dtype == np.float32 and np.max(np.abs(y - ref)) < 0.05


def test_quantized_input_graph_is_refused():
    from tests.sim import small_graph

    _, g = small_graph.make(np.random.default_rng(0))
    with pytest.raises(ValueError, match="already quantized"):
        minmax_quantize(g, "onnxruntime-x86", {"x": np.zeros((1, 3, 8, 8), np.float32)})

"""simulate() on a hand-built IR graph against the same network as an onnxruntime QOperator model."""

from __future__ import annotations

import numpy as np
import pytest

import hwsim
from hwsim.sim import SimulationError, float_reference, simulate
from hwsim.sim.executor import prepare

from . import small_graph


def _inputs(rng, n=6):
    return [rng.normal(0, 1.0, (1, 3, 8, 8)).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("pow2", [False, True], ids=["random-scales", "pow2-scales"])
@pytest.mark.parametrize("seed", range(6))
def test_small_cnn_matches_onnxruntime(seed, pow2):
    rng = np.random.default_rng(seed)
    sess, graph = small_graph.make(rng, pow2=pow2)
    for x in _inputs(rng):
        (want,) = sess.run(None, {"x": x})
        got = simulate(graph, "onnxruntime-x86", {"x": x}).outputs["y"]
        assert got.dtype == np.float32 and got.shape == (1, 10)
        np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))


def test_relu6_clamps_at_the_quantized_bounds():
    # relu6 on conv1: the real clamp [0, 6] in c1's quantisation is [zp, zp + rne(fl32(6 / s))] (onnxruntime
    # rounds like QuantizeLinear), intersected with uint8; everything else is unchanged.
    _, graph = small_graph.make(np.random.default_rng(5))
    _, graph_act = small_graph.make(np.random.default_rng(5), activation=(0.0, 6.0))
    c1 = graph.tensors["c1"]
    s, zp = np.float32(c1.quant.scale), int(c1.quant.zero_point)
    hi = min(255, zp + int(np.rint(np.float32(6.0) / s)))
    x = _inputs(np.random.default_rng(9), 1)[0]
    a = simulate(graph, "onnxruntime-x86", {"x": x}, trace=True).tensors["c1"]
    b = simulate(graph_act, "onnxruntime-x86", {"x": x}, trace=True).tensors["c1"]
    assert np.any(a > hi) or np.any(a < zp)          # the clamp really bites on this input
    np.testing.assert_array_equal(np.clip(a, zp, hi), b)


def test_trace_records_tensors_accumulators_counters():
    rng = np.random.default_rng(1)
    _, graph = small_graph.make(rng)
    x = _inputs(rng, 1)[0]
    r = simulate(graph, "onnxruntime-x86", {"x": x}, trace=True)
    assert set(r.tensors) >= {"x", "xq", "c1", "c2", "c3", "ad", "gp", "fl", "oq", "y"}
    assert r.accumulators["c1"].shape == (1, 8, 8, 8) and r.accumulators["c1"].dtype == np.int64
    assert set(r.counters) == {"conv1", "dw", "pw", "fc"}
    # the float32 requantisation of the accumulators gives the traced output (M = fl32(fl32(sx*sw)/sy))
    c1 = graph.tensors["c1"]
    sx = np.float32(graph.tensors["xq"].quant.scale)
    m = (sx * graph.tensors["w1"].quant.scale).astype(np.float32) / np.float32(c1.quant.scale)
    v = np.clip(r.accumulators["c1"].astype(np.float32) * m.astype(np.float32), -int(c1.quant.zero_point),
                255 - int(c1.quant.zero_point))
    np.testing.assert_array_equal(np.rint(v).astype(np.int64) + int(c1.quant.zero_point), r.tensors["c1"])
    np.testing.assert_array_equal(r.outputs["y"], simulate(graph, "onnxruntime-x86", {"x": x}).outputs["y"])


def test_threads_do_not_change_bits_and_plan_is_cached():
    rng = np.random.default_rng(2)
    _, graph = small_graph.make(rng)
    x = _inputs(rng, 1)[0]
    one = simulate(graph, "onnxruntime-x86", {"x": x}).outputs["y"]
    two = simulate(graph, hwsim.load_target("onnxruntime-x86"), {"x": x}, n_threads=2).outputs["y"]
    np.testing.assert_array_equal(one, two)
    assert prepare(graph, "onnxruntime-x86") is prepare(graph, "onnxruntime-x86")


def test_weights_outside_the_targets_range_are_refused_by_name():
    rng = np.random.default_rng(3)
    _, graph = small_graph.make(rng)
    graph.tensors["w2"].data[0, 0, 0, 0] = -128
    with pytest.raises(SimulationError, match=r"'w2' hold -128, outside the range \[-127, 127\]"):
        simulate(graph, "onnxruntime-x86", {"x": _inputs(rng, 1)[0]})


def test_non_power_of_two_scales_on_a_shift_only_target_are_refused_by_name():
    rng = np.random.default_rng(4)
    _, graph = small_graph.make(rng)
    with pytest.raises(SimulationError, match=r"node 'conv1'.*input 'xq' has scale .* needs power-of-two input"):
        prepare(graph, "npu-acc16")
    _, graph = small_graph.make(rng, pow2=True)       # every scale a power of two: the weights are next
    with pytest.raises(SimulationError, match=r"node 'conv1'.*'w1' have 8 per-channel scales.*one weight scale"):
        prepare(graph, "npu-acc16")


def test_bias_beyond_the_targets_bias_width_is_refused():
    rng = np.random.default_rng(4)
    _, graph = small_graph.make(rng, pow2=True)
    for name in ("w1", "w2"):                          # per tensor, so that npu-acc16 reaches the bias check
        t = graph.tensors[name]
        t.quant = type(t.quant)(t.quant.scale[:1].copy(), t.quant.zero_point[:1].copy())
    graph.tensors["b1"].data[3] = 40000                # int16 bias on npu-acc16
    with pytest.raises(SimulationError, match=r"bias 'b1' holds 40000, outside the 16-bit bias range"):
        prepare(graph, "npu-acc16")


@pytest.mark.parametrize("bad, match", [
    ({}, r"input 'x' is missing; expected shape \[1, 3, 8, 8\] and dtype float32"),
    ({"x": np.zeros((1, 8, 8, 3), np.float32)}, r"input 'x': got shape \[1, 8, 8, 3\]; expected shape \[1, 3, 8, 8\]"),
    ({"x": np.zeros((1, 3, 8, 8), np.int32)}, r"input 'x': got dtype int32; expected .* float32"),
    ({"x": np.zeros((1, 3, 8, 8), np.float32), "z": np.zeros(1)}, r"no input named 'z'"),
])
def test_bad_inputs_name_the_tensor(bad, match):
    _, graph = small_graph.make(np.random.default_rng(0))
    with pytest.raises(SimulationError, match=match):
        simulate(graph, "onnxruntime-x86", bad)


def test_missing_elementwise_scheme_is_named(tmp_path):
    from hwsim.targets import to_yaml

    data = hwsim.load_target("onnxruntime-x86").describe()
    del data["elementwise"]
    (tmp_path / "bare.yaml").write_text(to_yaml(data))
    _, graph = small_graph.make(np.random.default_rng(0))
    with pytest.raises(SimulationError, match=r"node 'add' \(add\): target onnxruntime-x86: no elementwise.add scheme"):
        prepare(graph, tmp_path / "bare.yaml")


def _float_twin(graph):
    """The dequantised network as a float ONNX model (Conv, Add, GlobalAveragePool, Flatten, Gemm)."""
    from onnx import helper

    from hwsim.sim.float_ref import dequantize_constant

    from . import ort_models as om

    def w(name):   # IR [O, KH, KW, I] -> ONNX OIHW
        return np.ascontiguousarray(dequantize_constant(graph.tensors[name]).transpose(0, 3, 1, 2))

    inits = [om.const("w1", w("w1")), om.const("b1", dequantize_constant(graph.tensors["b1"])),
             om.const("w2", w("w2")), om.const("b2", dequantize_constant(graph.tensors["b2"])),
             om.const("w3", w("w3")), om.const("wf", dequantize_constant(graph.tensors["wf"]))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["c1", "w2", "b2"], ["c2"], group=8, strides=[2, 2], pads=[0, 0, 1, 1]),
             helper.make_node("Conv", ["c1", "w3"], ["c3"], strides=[2, 2]),
             helper.make_node("Add", ["c2", "c3"], ["ad"]),
             helper.make_node("GlobalAveragePool", ["ad"], ["gp"]),
             helper.make_node("Flatten", ["gp"], ["fl"]),
             helper.make_node("Gemm", ["fl", "wf"], ["y"], transB=1)]
    return om.session(nodes, [("x", np.float32, [1, 3, 8, 8])], [("y", np.float32)], inits)


def test_float_reference_of_the_dequantised_graph_matches_onnxruntime_float():
    rng = np.random.default_rng(6)
    _, graph = small_graph.make(rng)
    sess = _float_twin(graph)
    for x in _inputs(rng, 3):
        # the float twin has no QuantizeLinear: feed both the same (already representable) values
        xq = simulate(graph, "onnxruntime-x86", {"x": x}, trace=True).tensors["xq"]
        s, zp = np.float32(graph.tensors["xq"].quant.scale), int(graph.tensors["xq"].quant.zero_point)
        x_deq = np.ascontiguousarray(((xq.astype(np.float32) - zp) * s).transpose(0, 3, 1, 2))
        (want,) = sess.run(None, {"x": x_deq})
        got = float_reference(graph, {"x": x_deq})["y"]
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_plan_cache_leaves_the_graph_copyable_and_follows_clear_cache():
    import copy
    import gc

    from hwsim.sim import clear_cache
    from hwsim.sim.executor import _PLANS

    _, graph = small_graph.make(np.random.default_rng(7))
    x = _inputs(np.random.default_rng(8), 1)[0]
    first = simulate(graph, "onnxruntime-x86", {"x": x}).outputs["y"]
    twin = copy.deepcopy(graph)                       # no cffi objects hang on the graph
    np.testing.assert_array_equal(simulate(twin, "onnxruntime-x86", {"x": x}).outputs["y"], first)
    plan = prepare(graph, "onnxruntime-x86")
    graph.tensors["b1"].data[:] = 0                   # changed: the old plan still holds the old bias
    clear_cache(graph)
    assert prepare(graph, "onnxruntime-x86") is not plan
    key = id(twin)
    del twin
    gc.collect()
    assert key not in _PLANS


def test_float_ops_in_a_quantized_graph_are_reported_as_deviations():
    """A conv left in float (as onnxruntime x86 leaves some in s8s8 QDQ models) is named in
    SimResult.deviations; a fully integer graph has none."""
    import onnx
    from onnx import TensorProto, helper

    from hwsim.graph.onnx_import import convert_model

    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("Conv", ["xd", "w"], ["y"], pads=[1, 1, 1, 1], name="float_conv"),
    ]
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [0.05]), helper.make_tensor("z", TensorProto.UINT8, [], [128]),
             helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.flatten().tolist())]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 5, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    g = convert_model(model, "float_conv.onnx", "onnxruntime-x86")
    r = hwsim.simulate(g, "onnxruntime-x86", {"x": rng.normal(size=(1, 3, 5, 5)).astype(np.float32)})
    assert len(r.deviations) == 1 and "float_conv" in r.deviations[0]

"""hwsim.quantize: every method and granularity simulates; formats follow the target; options and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import hwsim
import hwsim.demo
from hwsim.graph.ir import Graph, Node, Tensor
from hwsim.sim.minmax_quantize import minmax_quantize


@pytest.fixture(scope="module")
def digits():
    g = hwsim.load_model(hwsim.demo.model_path())
    data = hwsim.demo.load_digits()
    cal = {"image": data["x_train"][:24]}
    x = data["x_test"][:120]
    ref = hwsim.float_reference(g, {"image": x})["logits"]
    return g, cal, x, ref


def _sqnr(y, ref):
    return 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((y.astype(np.float64) - ref) ** 2))


def _weights(q):
    return {n.name: q.tensors[n.inputs[1]] for n in q.nodes if n.op in ("conv2d", "fully_connected")}


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy", "mse", "aciq", "histogram"])
@pytest.mark.parametrize("granularity", ["per-tensor", "per-channel"])
def test_each_method_and_granularity_simulates_close_to_float(digits, method, granularity):
    g, cal, x, ref = digits
    q = hwsim.quantize(g, "onnxruntime-x86", cal, method=method, granularity=granularity)
    assert q.kind == "ptq" and q.float_source is g
    y = hwsim.simulate(q, "onnxruntime-x86", {"image": x}).outputs["logits"]
    # 8-bit weights and activations on a 5-layer CNN: far above noise (~0 dB), and the float top-1 kept
    assert _sqnr(y, ref) > 25
    assert np.mean(y.argmax(1) == ref.argmax(1)) > 0.97
    for name, w in _weights(q).items():
        assert w.dtype == np.int8 and w.name.endswith("__q")
        assert (w.quant.scale.ndim == 0) == (granularity == "per-tensor"), name


def test_graph_structure_follows_the_contract(digits):
    g, cal, _, _ = digits
    q = hwsim.quantize(g, "tflite-reference", cal)
    float_names = {n.name for n in g.nodes}
    integer = [n for n in q.nodes if n.op in ("conv2d", "fully_connected", "add")]
    assert {n.name for n in integer} <= float_names and len(integer) == 6
    for n in integer:
        assert n.outputs[0].endswith("__q") and q.tensors[n.outputs[0]].dtype == np.int8
    assert q.inputs == g.inputs and q.outputs == g.outputs
    assert q.tensors["logits"].dtype == np.float32       # graph outputs stay float, via a dequantize node


def test_activation_params_by_hand():
    # one 1x1 conv; calibration input in [-1, 3] -> u8 asymmetric scale 4/255, zero point rne(63.75) = 64
    t = {"x": Tensor("x", (None, 2, 2, 1), np.dtype(np.float32)),
         "w": Tensor("w", (1, 1, 1, 1), np.dtype(np.float32), data=np.array([[[[0.5]]]], np.float32)),
         "y": Tensor("y", (None, 2, 2, 1), np.dtype(np.float32))}
    g = Graph(t, [Node("conv2d", ["x", "w"], ["y"], dict(stride=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0),
                                                        groups=1, activation=None), name="c")],
              ["x"], ["y"], kind="float")
    x = np.array([-1.0, 0.0, 1.0, 3.0], np.float32).reshape(1, 2, 2, 1)
    q = hwsim.quantize(g, "onnxruntime-x86", {"x": x})
    xq = q.tensors["x__q"].quant
    assert float(xq.scale) == float(np.float32(4 / 255)) and int(xq.zero_point) == 64
    yq = q.tensors["y__q"].quant          # y = 0.5 x in [-0.5, 1.5]: scale 2/255, zp rne(63.75) = 64
    assert float(yq.scale) == float(np.float32(2 / 255)) and int(yq.zero_point) == 64
    w = q.tensors["w__q"]                 # symmetric restricted: scale 0.5/127, code 127
    assert int(w.data.reshape(-1)[0]) == 127 and np.isclose(float(w.quant.scale.reshape(-1)[0]), 0.5 / 127)


def test_minmax_quantize_is_quantize_with_minmax(digits):
    g, cal, _, _ = digits
    a = minmax_quantize(g, "arm-neon-sdot", cal)
    b = hwsim.quantize(g, "arm-neon-sdot", cal, method="minmax")
    assert a.kind == "minmax" and b.kind == "ptq"
    for name, t in a.tensors.items():
        if t.quant is not None:
            np.testing.assert_array_equal(t.quant.scale, b.tensors[name].quant.scale)
        if t.data is not None:
            np.testing.assert_array_equal(t.data, b.tensors[name].data)


def test_streamed_batches_equal_one_dict(digits):
    g, cal, _, _ = digits
    whole = hwsim.quantize(g, "onnxruntime-x86", cal, method="minmax")
    # a generator, read once; split as the float reference runs the dict (chunks of 16), so that the
    # float sums (BLAS blocking depends on the batch) and hence the ranges are the same bits
    batches = ({"image": cal["image"][i:i + 16]} for i in (0, 16))
    streamed = hwsim.quantize(g, "onnxruntime-x86", batches, method="minmax")
    for name, t in whole.tensors.items():
        if t.quant is not None:
            np.testing.assert_array_equal(t.quant.scale, streamed.tensors[name].quant.scale)


def test_w4a8_per_group_on_the_blocked_target_keeps_top1(digits):
    g, cal, x, ref = digits
    q = hwsim.quantize(g, "cpu-w4a8-blocked", cal, bits="W4A8", granularity="per-group:32")
    w = _weights(q)
    assert w["fc"].quant.group_size == 32 and w["fc"].quant.scale.shape == (10, 32)     # K = 1024 = 32 groups
    assert int(np.abs(w["fc"].data).max()) <= 8
    assert w["conv2_dw/conv"].quant.group_size is None          # the profile's own int8 depthwise format
    y = hwsim.simulate(q, "cpu-w4a8-blocked", {"image": x}).outputs["logits"]
    assert np.mean(y.argmax(1) == ref.argmax(1)) >= 0.9


def test_w8a16_gives_int16_activations(digits):
    g, cal, x, ref = digits
    q = hwsim.quantize(g, "tflite-reference", cal, bits="W8A16")
    assert q.tensors["image__q"].dtype == np.int16 and int(q.tensors["image__q"].quant.zero_point) == 0
    y = hwsim.simulate(q, "tflite-reference", {"image": x}).outputs["logits"]
    assert _sqnr(y, ref) > 25


def test_overrides_change_one_layer(digits):
    g, cal, _, _ = digits
    q = hwsim.quantize(g, "onnxruntime-x86", cal, overrides={"fc": {"granularity": "per-tensor"}})
    w = _weights(q)
    assert w["fc"].quant.scale.ndim == 0 and w["conv1/conv"].quant.scale.shape == (16,)


@pytest.mark.parametrize("kwargs, match", [
    (dict(bits="W4A8"), r"onnxruntime-x86 runs 8-bit weights.*W8A8"),
    (dict(bits="W8A16"), r"onnxruntime-x86 has no 16-bit activations.*W8A8"),
    (dict(granularity="per-group:32"), r"onnxruntime-x86 runs conv2d weights per-channel.*per-group:32"),
    (dict(bits="8bit"), r"bits: expected W<weight bits>A<activation bits>"),
    (dict(method="kl"), r"method: unknown calibration method 'kl'.*minmax"),
    (dict(ptq="cle,bias-correction"), r"ptq: unknown pass 'bias-correction'.*bias_correction"),
    (dict(overrides={"fcc": {"granularity": "per-tensor"}}), r"no node named 'fcc'; near names: 'fc'"),
    (dict(overrides={"residual/add": {"bits": "W8A8"}}), r"'residual/add' is a add node without weights"),
    (dict(overrides={"fc": {"bits": "W8A16"}}), r"activation width A16 differs"),
])
def test_options_the_target_cannot_run_are_refused(digits, kwargs, match):
    g, cal, _, _ = digits
    with pytest.raises(ValueError, match=match):
        hwsim.quantize(g, "onnxruntime-x86", cal, **kwargs)


def test_per_channel_on_a_per_tensor_target_is_refused(digits):
    g, cal, _, _ = digits
    with pytest.raises(ValueError, match=r"npu-acc16 runs conv2d weights per-tensor.*supports per-tensor"):
        hwsim.quantize(g, "npu-acc16", cal, granularity="per-channel")


@pytest.mark.parametrize("calibration, match", [
    ({"img": np.zeros((2, 1, 8, 8), np.float32)}, r"'img' is not a model input"),
    ({}, r"no array for input 'image'; expected shape \[N, 1, 8, 8\]"),
    ({"image": np.zeros((2, 1, 8, 7), np.float32)}, r"input 'image' has shape \[2, 1, 8, 7\]; expected"),
    ({"image": np.zeros((2, 1, 8, 8), np.int32)}, r"input 'image' has dtype int32; expected"),
    ({"image": np.zeros((0, 1, 8, 8), np.float32)}, r"holds no samples"),
    ([], r"the calibration set is empty"),
    ("cal.npz", r"expected a dict input name -> array or an iterable"),
])
def test_bad_calibration_names_the_problem(digits, calibration, match):
    g = digits[0]
    with pytest.raises(ValueError, match=match):
        hwsim.quantize(g, "onnxruntime-x86", calibration)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_calibration_is_refused(digits, bad):
    g, cal, _, _ = digits
    x = cal["image"][:3].copy()
    x[1, 0, 2, 5] = bad
    with pytest.raises(ValueError, match=r"input 'image' holds 1 NaN/Inf value\(s\) \(first at index \[1, 0, 2, 5\]\)"):
        hwsim.quantize(g, "onnxruntime-x86", {"image": x})


def test_a_generator_cannot_feed_passes_that_read_twice(digits):
    g, cal, _, _ = digits
    with pytest.raises(ValueError, match="one-shot iterator"):
        hwsim.quantize(g, "onnxruntime-x86", iter([cal]), ptq="bias_correction")


def test_quantized_graph_is_refused(digits):
    g, cal, _, _ = digits
    q = hwsim.quantize(g, "onnxruntime-x86", cal)
    with pytest.raises(ValueError, match="already quantized"):
        hwsim.quantize(q, "onnxruntime-x86", cal)


def test_zero_shot_from_batchnorm_statistics(digits):
    g, _, x, ref = digits
    with pytest.raises(ValueError, match=r"needs the range of input 'image'"):
        hwsim.quantize(g, "onnxruntime-x86")
    q = hwsim.quantize(g, "onnxruntime-x86", input_ranges={"image": (0.0, 1.0)})
    y = hwsim.simulate(q, "onnxruntime-x86", {"image": x}).outputs["logits"]
    # no data at all: ranges from beta +- 4 |gamma| are wider than the data's, so less precise, but the
    # model still works (the float top-1 on most images)
    assert _sqnr(y, ref) > 10 and np.mean(y.argmax(1) == ref.argmax(1)) > 0.9


def test_zero_shot_needs_batchnorm_statistics():
    t = {"x": Tensor("x", (None, 4), np.dtype(np.float32)),
         "w": Tensor("w", (2, 4), np.dtype(np.float32), data=np.ones((2, 4), np.float32)),
         "y": Tensor("y", (None, 2), np.dtype(np.float32))}
    g = Graph(t, [Node("fully_connected", ["x", "w"], ["y"], {}, name="fc")], ["x"], ["y"], kind="float")
    with pytest.raises(ValueError, match="batch-norm statistics, but this graph has none"):
        hwsim.quantize(g, "onnxruntime-x86", input_ranges={"x": (0, 1)})


def test_dynamic_quantization_runs_and_takes_no_calibration(digits):
    g, cal, x, ref = digits
    q = hwsim.quantize(g, "onnxruntime-x86", dynamic=True)
    assert q.kind == "dynamic" and any(n.op == "dynamic_quantize" for n in q.nodes)
    y = hwsim.simulate(q, "onnxruntime-x86", {"image": x}).outputs["logits"]
    assert _sqnr(y, ref) > 20
    with pytest.raises(ValueError, match="takes no calibration data"):
        hwsim.quantize(g, "onnxruntime-x86", cal, dynamic=True)

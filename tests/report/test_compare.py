"""hwsim.compare on graphs worked out by hand, and on the digits model on two targets."""

from __future__ import annotations

import json
import math

import numpy as np
import onnxruntime as ort
import pytest

import hwsim
from hwsim.report import Report
from hwsim.sim.minmax_quantize import minmax_quantize

from .tiny import fc_graph

# x = 127/128 in every column (code 127); w = 127 (real 127/128)
X_FULL = {"x": np.full((3, 4), 127 / 128, np.float32)}


def test_narrow_accumulator_saturates_and_reports_the_safe_width():
    rep = hwsim.compare(fc_graph(127), ["npu-acc16", "tflite-reference"], X_FULL)
    assert list(rep.targets) == ["npu-acc16", "tflite-reference"]
    npu = rep.targets["npu-acc16"].layer("fc").accumulator
    ref = rep.targets["tflite-reference"].layer("fc").accumulator
    # acc = 4 * 127 * 127 = 64516 > 32767: the 16-bit accumulator saturates on every sample, twice (the partial
    # sums 48387 and 32767 + 16129 are narrowed), so 3 samples give 6 events
    assert npu.acc_events == 6 and npu.max_abs_acc == 32767 and npu.headroom_bits == 0
    assert ref.acc_events == 0 and ref.max_abs_acc == 64516
    # 64516 < 2^16: 16 magnitude bits + sign = 17 safe bits, more than npu-acc16's 16
    assert npu.worst_case_abs_acc == ref.worst_case_abs_acc == 4 * 128 * 127
    assert npu.min_safe_bits == ref.min_safe_bits == 17
    assert ref.headroom_bits == 32 - 17
    assert (npu.bits, npu.overflow, ref.bits, ref.overflow) == (16, "saturate", 32, "wrap")
    # float: 4 * (127/128)^2 = 3.93804931640625
    # tflite-reference: round(64516 / 2^10) = 63 -> 63/16 = 3.9375; npu-acc16: round(32767 / 2^10) = 32 -> 2.0
    f = 4 * (127 / 128) ** 2
    out_ref = rep.targets["tflite-reference"].output("y")
    out_npu = rep.targets["npu-acc16"].output("y")
    assert out_ref.metrics.max_abs_error == pytest.approx(f - 3.9375, abs=1e-7)
    assert out_npu.metrics.max_abs_error == pytest.approx(f - 2.0, abs=1e-6)
    assert out_npu.metrics.mean_error == pytest.approx(2.0 - f, abs=1e-6)
    assert out_npu.metrics.max_error_lsb == pytest.approx((f - 2.0) * 16, abs=1e-4)
    assert out_npu.metrics.sqnr_db == pytest.approx(10 * math.log10(f * f / (f - 2.0) ** 2), abs=1e-4)
    assert out_ref.lsb == 1 / 16
    # the layer's own output: the same numbers, compared in the integer domain
    layer = rep.targets["npu-acc16"].layer("fc")
    assert layer.metrics.max_error_lsb == pytest.approx((f - 2.0) * 16, abs=1e-4)
    assert rep.targets["npu-acc16"].mac_events == npu.acc_events


def test_fixed_batch_model_runs_sample_by_sample_with_the_same_report():
    x = {"x": np.array([[127 / 128] * 4, [0.5] * 4, [1.0, 1.0, 0.75, 0.75]], np.float32)}
    targets = ["npu-acc16", "tflite-reference"]
    free = hwsim.compare(fc_graph(127), targets, x)
    fixed = hwsim.compare(fc_graph(127, batch=1), targets, x)
    assert fixed.n_samples == 3
    assert fixed.to_json() == free.to_json()
    # events summed over the three calls.  Sample 0, codes 127 x 4: partial sums 16129, 32258, then 48387 and
    # 32767 + 16129 saturate -> 2 events.  Sample 1, codes 64: 4 * 64 * 127 = 32512 fits -> 0.  Sample 2, codes
    # 127, 127, 96, 96: 16129, 32258, then 44450 and 32767 + 12192 saturate -> 2 events.
    one = hwsim.compare(fc_graph(127, batch=1), "npu-acc16", {"x": x["x"][:1]})
    assert one.targets["npu-acc16"].layer("fc").accumulator.acc_events == 2
    assert fixed.targets["npu-acc16"].layer("fc").accumulator.acc_events == 4
    with pytest.raises(ValueError, match=r"input 'x': got shape \[2, 4\]; expected shape \[3, 4\]"):
        hwsim.compare(fc_graph(127, batch=3), "tflm", {"x": x["x"][:2]})


def test_exact_target_gives_infinite_sqnr():
    # x = 0.5 (code 64), w = 0.5 (code 64): acc = 4 * 64 * 64 = 16384, 16384 / 2^10 = 16 -> 1.0 = 4 * 0.25
    rep = hwsim.compare(fc_graph(64), "tflite-reference", {"x": np.full((2, 4), 0.5, np.float32)})
    t = rep.targets["tflite-reference"]
    for m in (t.output("y").metrics, t.layer("fc").metrics, t.layer("x/quantize").metrics):
        assert m.sqnr_db == math.inf and m.max_abs_error == 0.0 and m.cosine == 1.0 and m.mse == 0.0
    d = json.loads(rep.to_json())
    assert d["schema"] == "hwsim.report/1"
    assert d["targets"][0]["outputs"][0]["metrics"]["sqnr_db"] == "inf"
    assert d["targets"][0]["layers"][1]["accumulator"]["max_abs_acc"] == 16384


def test_rails_and_clipping_of_a_saturated_output():
    # float y = 4 * (127/128)^2 = 3.938 for sample 0, 0 for sample 1
    x = {"x": np.array([[127 / 128] * 4, [0.0] * 4], np.float32)}
    rep = hwsim.compare(fc_graph(127, out_exponent=-5), "tflite-reference", x)
    m = rep.targets["tflite-reference"].layer("fc").metrics
    # y scale 2^-5: 3.938 * 32 = 126.02 -> 126, inside int8: no rails, no clipping
    assert (m.rails_share, m.clip_share) == (0.0, 0.0)
    rep = hwsim.compare(fc_graph(127, out_exponent=-6), "tflite-reference", x)
    m = rep.targets["tflite-reference"].layer("fc").metrics
    # y scale 2^-6: 3.938 * 64 = 252 > 127.5: clamped to 127 (a rail), and beyond it in float
    assert (m.rails_share, m.clip_share) == (0.5, 0.5)
    np.testing.assert_array_equal(rep.targets["tflite-reference"].layer("fc").channel_clip_share, [0.5])
    assert rep.targets["tflite-reference"].layer("fc").accumulator.out_events == 1


@pytest.fixture(scope="module")
def digits():
    from hwsim.demo import load_digits, model_path

    d = load_digits()
    g = hwsim.load_model(str(model_path()))
    sess = ort.InferenceSession(str(model_path()), providers=["CPUExecutionProvider"])
    x = d["x_test"][:200]
    return {"graph": g, "x": x, "y": d["y_test"][:200], "calib": {"image": d["x_train"][:64]},
            "ort_logits": sess.run(None, {"image": x})[0]}


def test_digits_on_two_targets(digits):
    rep = hwsim.compare(digits["graph"], ["tflm", "x86-avx2"], {"image": digits["x"]},
                        calibration=digits["calib"], labels={"logits": digits["y"]})
    assert isinstance(rep, Report) and rep.n_samples == 200
    names = ["image/quantize", "conv1/conv", "conv2_dw/conv", "conv3_pw/conv", "residual/add", "conv4/conv", "fc"]
    for t in ("tflm", "x86-avx2"):
        assert [l.name for l in rep.targets[t].layers] == names
        has_acc = [l.accumulator is not None for l in rep.targets[t].layers]
        assert has_acc == [False, True, True, True, False, True, True]
    # the float model's accuracy, independently from onnxruntime (argmax may flip on a float-rounding tie)
    ort_acc = float(np.mean(digits["ort_logits"].argmax(1) == digits["y"]))
    assert abs(rep.float_scores["logits"]["accuracy"] - ort_acc) <= 1 / 200
    # tflm's 32-bit accumulator never overflows; x86-avx2's int16 pairs saturate in the first conv
    # (raw u8 input up to 255 times weights up to 127, two at a time, passes 32767)
    assert rep.targets["tflm"].mac_events == 0
    conv1 = rep.targets["x86-avx2"].layer("conv1/conv").accumulator
    assert conv1.group_events > 0 and conv1.group_can_overflow and conv1.group_bits == 16
    assert rep.targets["x86-avx2"].layer("conv1/conv").metrics.sqnr_db < \
        rep.targets["tflm"].layer("conv1/conv").metrics.sqnr_db - 10
    for t in rep.targets.values():
        out = t.output("logits")
        assert out.top1_agreement > 0.95 and out.top5_agreement > 0.99 and out.accuracy > 0.9


@pytest.mark.parametrize("target", ["tflm", "x86-avx2"])
def test_digits_output_metrics_match_an_independent_computation(digits, target):
    q = minmax_quantize(digits["graph"], target, digits["calib"])
    rep = hwsim.compare(q, target, {"image": digits["x"]}, labels={"logits": digits["y"]})
    out = rep.targets[target].output("logits")
    sim = hwsim.simulate(q, target, {"image": digits["x"]}).outputs["logits"].astype(np.float64)
    f = digits["ort_logits"].astype(np.float64)
    # float reference from onnxruntime instead of hwsim's: equal up to float32 rounding
    assert out.metrics.sqnr_db == pytest.approx(10 * np.log10(np.sum(f * f) / np.sum((sim - f) ** 2)), abs=0.05)
    assert out.metrics.max_abs_error == pytest.approx(np.max(np.abs(sim - f)), abs=1e-3)
    assert out.accuracy == float(np.mean(sim.argmax(1) == digits["y"]))
    assert abs(out.top1_agreement - float(np.mean(sim.argmax(1) == f.argmax(1)))) <= 1 / 200
    assert rep.targets[target].graph_kind == "minmax"


def test_threads_do_not_change_the_report(digits):
    args = (digits["graph"], ["x86-avx2"], {"image": digits["x"][:40]})
    one = hwsim.compare(*args, calibration=digits["calib"], n_threads=1).to_json()
    two = hwsim.compare(*args, calibration=digits["calib"], n_threads=2).to_json()
    assert one == two


def test_a_single_input_model_takes_bare_arrays(digits):
    x, cal = digits["x"][:20], digits["calib"]["image"]
    a = hwsim.compare(digits["graph"], "tflm", x, calibration=cal)
    b = hwsim.compare(digits["graph"], "tflm", {"image": x}, calibration={"image": cal})
    assert a.to_json() == b.to_json()


def test_calibration_as_an_iterable_of_batches(digits):
    calib = digits["calib"]["image"]
    batches = [{"image": calib[:32]}, {"image": calib[32:]}]
    a = hwsim.compare(digits["graph"], "tflm", {"image": digits["x"][:20]}, calibration=batches)
    b = hwsim.compare(digits["graph"], "tflm", {"image": digits["x"][:20]}, calibration=digits["calib"])
    assert a.to_json() == b.to_json()


@pytest.mark.parametrize("kwargs, message", [
    (dict(graph="float"), "calibration: the graph is a float model"),
    (dict(calibration={"x": np.zeros((1, 4), np.float32)}), "calibration: the graph is already quantized"),
    (dict(targets=["tflm", "tflm"]), "'tflm' is given twice"),
    (dict(targets=[]), "non-empty list"),
    (dict(targets="no-such-chip"), "unknown built-in target 'no-such-chip'"),
    (dict(inputs={"z": np.zeros((1, 4), np.float32)}), "no input named 'z'"),
    (dict(inputs={"x": np.zeros((1, 5), np.float32)}), "input 'x': got shape [1, 5]"),
    (dict(labels={"nope": np.zeros(3, np.int64)}), "labels: the model has no output named 'nope'"),
    (dict(labels={"y": np.zeros(3, np.int64)}), "is not a classifier output"),
])
def test_bad_arguments_name_the_problem(kwargs, message, digits):
    graph = digits["graph"] if kwargs.pop("graph", None) == "float" else fc_graph(64)
    inputs = kwargs.pop("inputs", X_FULL if graph is not digits["graph"] else {"image": digits["x"][:2]})
    targets = kwargs.pop("targets", "tflite-reference")
    with pytest.raises(ValueError) as exc:
        hwsim.compare(graph, targets, inputs, **kwargs)
    assert message in str(exc.value)


def test_bad_labels_for_a_classifier(digits):
    args = (digits["graph"], "tflm", {"image": digits["x"][:4]})
    with pytest.raises(ValueError, match=r"expected 4 integer class labels \(shape \[4\]\)"):
        hwsim.compare(*args, calibration=digits["calib"], labels={"logits": np.zeros(5, np.int64)})
    with pytest.raises(ValueError, match=r"label 10 is outside the 10 classes \[0, 9\]"):
        hwsim.compare(*args, calibration=digits["calib"], labels={"logits": np.array([0, 1, 10, 2])})


def test_repeated_node_names_get_numbered_rows():
    # the fully_connected node named like the quantize node before it
    rep = hwsim.compare(fc_graph(64, layer_name="x/quantize"), "tflite-reference", {"x": np.full((1, 4), 0.5,
                                                                                                   np.float32)})
    layers = rep.targets["tflite-reference"].layers
    assert [(l.name, l.op) for l in layers] == [("x/quantize", "quantize"), ("x/quantize #2", "fully_connected")]


def test_int8_tflite_model_with_integer_inputs_and_outputs():
    import pathlib

    # avg pool 3x3 / max pool 2x2 of one int8 input, all tensors with the same scale (tests/data/tflite)
    g = hwsim.load_model(str(pathlib.Path(__file__).parents[1] / "data" / "tflite" / "pools.tflite"))
    x = np.random.default_rng(0).integers(-128, 128, (3, 9, 9, 5)).astype(np.int8)
    t = hwsim.compare(g, "tflite-reference", {g.inputs[0]: x}).targets["tflite-reference"]
    avg, mx = t.output(g.outputs[0]), t.output(g.outputs[1])
    # max pool picks one of its codes: exact.  Avg pool rounds the mean of codes once: |error| <= 1/2 LSB
    # (plus float32 noise in the reference)
    assert mx.metrics.sqnr_db == math.inf and mx.metrics.max_abs_error == 0.0
    assert 0.4 < avg.metrics.max_error_lsb <= 0.5 + 1e-4
    assert avg.lsb == pytest.approx(float(g.tensor(g.outputs[0]).quant.scale))
    assert [l.op for l in t.layers] == ["avg_pool2d", "max_pool2d"]


def _per_group_ir() -> bool:
    from hwsim.graph.ir import QuantParams

    return "group_size" in QuantParams.__dataclass_fields__ and "cpu-w4a8-blocked" in hwsim.list_targets()


@pytest.mark.skipif(not _per_group_ir(), reason="needs per-group weights in the IR and the cpu-w4a8-blocked target "
                                                "(issue 4's quantizers)")
def test_per_group_layer_with_a_float_output():
    from hwsim.graph.ir import Graph, Node, QuantParams, Tensor

    # x [N, 64] -> u8 (scale 2^-6, zp 128) -> fully_connected with int4 codes in groups of 32 (scale 2^-3)
    # -> float32 y.  Channel 0: w = 7 everywhere; channel 1: -8 in group 0, 1 in group 1.
    w = np.array([[7] * 64, [-8] * 32 + [1] * 32], np.int8)
    wq = QuantParams(np.full((2, 2), 2.0 ** -3, np.float32), np.zeros((2, 2), np.int64), axis=0, group_size=32)
    tensors = {
        "x": Tensor("x", (None, 64), np.dtype(np.float32)),
        "x__q": Tensor("x__q", (None, 64), np.dtype(np.uint8),
                       QuantParams(np.array(2.0 ** -6, np.float32), np.array(128, np.int64))),
        "w__q": Tensor("w__q", (2, 64), np.dtype(np.int8), wq, w),
        "y": Tensor("y", (None, 2), np.dtype(np.float32)),
    }
    nodes = [Node("quantize", ["x"], ["x__q"], name="x/quantize"),
             Node("fully_connected", ["x__q", "w__q"], ["y"], {"activation": None}, name="fc")]
    g = Graph(tensors, nodes, ["x"], ["y"], kind="qdq")
    # codes 0..255 -> x = (q - 128) / 64, exactly representable; every product and sum is a small dyadic
    # number, so the float32 group combine equals the float model exactly
    codes = np.random.default_rng(0).integers(0, 256, (5, 64))
    rep = hwsim.compare(g, "cpu-w4a8-blocked", {"x": ((codes - 128) / 64).astype(np.float32)})
    layer = rep.targets["cpu-w4a8-blocked"].layer("fc")
    assert layer.metrics.sqnr_db == math.inf and layer.lsb is None and layer.metrics.rails_share is None
    # one accumulator per (channel, group) of 32 products, |x - zx| <= 128:
    # channel 0: 32 * 7 * 128 = 28672; channel 1, group 0: 32 * 8 * 128 = 32768 -> 16 magnitude bits + sign
    acc = layer.accumulator
    assert (acc.k, acc.worst_case_abs_acc, acc.min_safe_bits, acc.acc_events) == (32, 32768, 17, 0)

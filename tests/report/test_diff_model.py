"""hwsim.report.diff on the bundled digits CNN: per-target quantization, the JSON schema, and agreement with
plain ``hwsim.simulate`` runs of the two targets."""

from __future__ import annotations

import json

import numpy as np
import pytest

import hwsim
from hwsim.demo import load_digits, model_path
from hwsim.report.diff import SCHEMA, diff_targets
from hwsim.sim.minmax_quantize import minmax_quantize


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    graph = hwsim.load_model(model_path())
    return graph, {"image": data["x_train"][:48]}, {"image": data["x_test"][:12]}


def _real(res, graph, name):
    t = graph.tensor(name)
    scale = float(np.asarray(t.quant.scale).reshape(-1)[0])
    zp = int(np.asarray(t.quant.zero_point).reshape(-1)[0])
    return scale * (res.tensors[name].astype(np.float64) - zp), scale


def test_graphs_quantized_differently_report_quant_params(digits):
    # tflite-reference (any scale, asymmetric) vs npu-acc16 (power-of-two, symmetric): the two quantized
    # graphs differ from the first quantize node on; each layer is compared in real units (A's LSB)
    graph, calib, inputs = digits
    qa, qb = minmax_quantize(graph, "tflite-reference", calib), minmax_quantize(graph, "npu-acc16", calib)
    result = diff_targets((qa, qb), "tflite-reference", "npu-acc16", inputs)
    ra = hwsim.simulate(qa, "tflite-reference", inputs, trace=True)
    rb = hwsim.simulate(qb, "npu-acc16", inputs, trace=True)
    first = result.layers[0]
    assert (first.name, first.status) == ("image/quantize", "params_differ")
    real_a, s_a = _real(ra, qa, "image__q")
    real_b, _ = _real(rb, qb, "image__q")
    assert first.differ == int(np.count_nonzero(real_a != real_b))
    assert first.max_lsb == pytest.approx(np.abs(real_b - real_a).max() / s_a)
    (cause,) = first.causes
    assert cause.kind == "quant_params" and "image__q" in cause.explanation
    assert result.first_divergence is first and not result.per_target_quantization


def test_float_model_is_quantized_per_target(digits):
    graph, calib, inputs = digits
    result = diff_targets(graph, "tflite-reference", "npu-acc16", inputs, calibration=calib)
    assert result.per_target_quantization
    assert result.layers[0].status == "params_differ"      # power-of-two symmetric vs free asymmetric scales


def test_diff_agrees_with_two_simulate_runs_and_json_schema(digits, tmp_path):
    graph, calib, inputs = digits
    q = minmax_quantize(graph, "tflite-reference", calib)
    result = diff_targets(q, "tflite-reference", "arm-neon-sdot", inputs)
    ra = hwsim.simulate(q, "tflite-reference", inputs, trace=True)
    rb = hwsim.simulate(q, "arm-neon-sdot", inputs, trace=True)
    integer_nodes = [n for n in q.nodes if np.dtype(q.tensor(n.outputs[0]).dtype).kind in "iu"]
    assert [l.output for l in result.layers] == [n.outputs[0] for n in integer_nodes]
    for layer in result.layers:
        a, b = ra.tensors[layer.output].astype(np.int64), rb.tensors[layer.output].astype(np.int64)
        assert layer.differ == int(np.count_nonzero(a != b)), layer.name
        assert layer.max_lsb == (int(np.abs(a - b).max()) if layer.differ else 0)
        assert sum(layer.histogram.values()) == layer.differ
        if layer.introduced:
            assert sum(c.elements for c in layer.causes) == layer.introduced
    expected_first = next(l for l in result.layers if l.differ)
    assert result.first_divergence is expected_first
    (out,) = result.outputs
    la, lb = ra.outputs["logits"], rb.outputs["logits"]
    assert (out.differ, out.top1_agree, out.rows) == (int(np.count_nonzero(la != lb)),
                                                      int(np.count_nonzero(la.argmax(1) == lb.argmax(1))), 12)

    path = tmp_path / "d.json"
    text = result.to_json(path)
    data = json.loads(path.read_text())
    assert data == json.loads(text)
    assert data["schema"] == SCHEMA == "hwsim.diff/1"
    assert data["first_divergence"] == expected_first.name
    assert set(data) == {"schema", "hwsim_version", "target_a", "target_b", "identical_pipelines",
                         "pipeline_differences", "per_target_quantization", "first_divergence", "summary", "notes",
                         "layers", "outputs"}
    layer = data["layers"][[l["name"] for l in data["layers"]].index(expected_first.name)]
    assert set(layer) >= {"name", "op", "source_op", "output", "elements", "differ", "max_lsb", "histogram",
                          "status", "introduced", "inputs_differ", "params_note", "causes"}
    cause = layer["causes"][0]
    assert set(cause) == {"kind", "stage", "a", "b", "elements", "max_lsb", "explanation", "example"}
    assert set(cause["example"]) >= {"index", "a", "b", "why"}


def test_calibration_may_come_in_batches(digits):
    # both targets calibrate with MinMax, which does not depend on how the samples are batched
    graph, calib, inputs = digits
    whole = diff_targets(graph, "tflite-reference", "arm-neon-sdot", inputs, calibration=calib).to_dict()
    batches = [{"image": calib["image"][:20]}, {"image": calib["image"][20:]}]
    assert diff_targets(graph, "tflite-reference", "arm-neon-sdot", inputs, calibration=batches).to_dict() == whole


def test_float_model_without_calibration_is_refused(digits):
    graph, _, inputs = digits
    with pytest.raises(ValueError, match="give calibration"):
        diff_targets(graph, "tflite-reference", "arm-neon-sdot", inputs)

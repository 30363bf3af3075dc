"""EfficientNet-Lite0 through the ONNX importer: float (checked numerically), QDQ and QOperator."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from float_eval import run_float

from hwsim.graph.load import load_model

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

INTEGER_OPS = {"conv2d", "add", "mean", "reshape", "fully_connected"}


def _counts(graph):
    return Counter(n.op for n in graph.nodes)


def test_float_model_structure(efficientnet_models):
    g = load_model(efficientnet_models["float"])
    assert g.kind == "float" and g.source == "onnx" and g.model_layout == "NCHW"
    assert _counts(g) == {"conv2d": 49, "add": 9, "mean": 1, "reshape": 1, "fully_connected": 1}
    # the 33 Clip(0, 6) of the model are fused into the convolutions before them
    acts = Counter(n.attrs["activation"] for n in g.nodes if n.op == "conv2d")
    assert acts == {(0.0, 6.0): 33, None: 16}
    assert g.inputs == ["input"] and g.outputs == ["logits"]
    assert g.tensor("input").shape == (1, 224, 224, 3)          # NHWC inside
    assert g.tensor("logits").shape == (1, 1000)
    stem = g.nodes[0]
    assert g.tensor(stem.inputs[1]).shape == (32, 3, 3, 3)       # [O, KH, KW, I]
    assert stem.attrs["stride"] == (2, 2) and stem.attrs["padding"] == (0, 0, 1, 1)
    depthwise = g.nodes[1]
    assert depthwise.attrs["groups"] == 32 and g.tensor(depthwise.inputs[1]).shape == (32, 3, 3, 1)
    gap = next(n for n in g.nodes if n.op == "mean")
    assert gap.attrs == {"axes": (1, 2), "keepdims": True}
    assert all(t.dtype == np.float32 and t.quant is None for t in g.tensors.values())


def test_float_model_matches_onnxruntime(efficientnet_models, efficientnet_eval_inputs):
    """The float IR run by a naive numpy evaluator == onnxruntime to 1e-4 (layout, padding, BN, fusion)."""
    g = load_model(efficientnet_models["float"])
    sess = ort.InferenceSession(str(efficientnet_models["float"]), providers=["CPUExecutionProvider"])
    for x in efficientnet_eval_inputs:
        x = x[None]
        ours = run_float(g, {"input": x})["logits"]
        ref = sess.run(None, {"input": x})[0]
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)
        assert ours.argmax() == ref.argmax()


def _check_integer_graph(g, per_channel: bool):
    counts = _counts(g)
    assert counts == {"conv2d": 49, "add": 9, "mean": 1, "reshape": 1, "fully_connected": 1,
                      "quantize": 1, "dequantize": 1}
    # only the model boundary is float: quantize the input, dequantize the logits
    assert g.nodes[0].op == "quantize" and g.nodes[0].inputs == ["input"]
    assert g.nodes[-1].op == "dequantize" and g.nodes[-1].outputs == ["logits"]
    for node in g.nodes[1:-1]:
        assert node.op in INTEGER_OPS, node
        for name in node.inputs + node.outputs:
            t = g.tensor(name)
            assert np.issubdtype(t.dtype, np.integer) and t.quant is not None, (node.name, name)
    for node in g.nodes:
        if node.op in ("conv2d", "fully_connected"):
            x, w, b = (g.tensor(n) for n in node.inputs)
            y = g.tensor(node.outputs[0])
            assert x.dtype == np.uint8 and y.dtype == np.uint8 and w.dtype == np.int8 and b.dtype == np.int32
            assert w.is_constant and b.is_constant and not x.quant.per_channel
            assert w.quant.per_channel == per_channel
            if per_channel:
                assert w.quant.axis == 0 and w.quant.scale.shape == (w.shape[0],)
            # the quantizer writes bias scale = x scale * w scale; it is not stored, only the int32 data
            assert b.shape == (w.shape[0],)
    stem = next(n for n in g.nodes if n.op == "conv2d")
    assert g.tensor(stem.inputs[1]).shape == (32, 3, 3, 3)
    assert g.tensor("input").dtype == np.float32 and g.tensor("logits").dtype == np.float32


def test_qdq_model_is_fully_integer(efficientnet_models):
    g = load_model(efficientnet_models["qdq"])
    assert g.kind == "qdq"
    _check_integer_graph(g, per_channel=True)
    # the quantizer removed the Clip(0, 6)s: the conv outputs are uint8 with zero point 0 (ReLU6 by saturation)
    convs = [n for n in g.nodes if n.op == "conv2d"]
    assert sum(int(g.tensor(n.outputs[0]).quant.zero_point) == 0 for n in convs) >= 33


def test_qoperator_model(efficientnet_models):
    g = load_model(efficientnet_models["qoperator"])
    assert g.kind == "qoperator"
    _check_integer_graph(g, per_channel=False)
    sources = Counter(n.source_op for n in g.nodes)
    assert sources["QLinearConv"] == 49 and sources["QLinearAdd"] == 9 and sources["QGemm"] == 1
    assert sources["QLinearGlobalAveragePool"] == 1


def test_qdq_fusion_agrees_with_onnxruntime(efficientnet_models, tmp_path):
    """onnxruntime's own optimised graph of the QDQ model has the integer ops the importer produced."""
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    opts.log_severity_level = 3
    ort.InferenceSession(str(efficientnet_models["qdq"]), opts, providers=["CPUExecutionProvider"])
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)
    assert ops["QLinearConv"] == 49 and ops["QLinearAdd"] == 9
    assert ops["QLinearGlobalAveragePool"] == 1 and ops["QGemm"] == 1
    assert ops["DequantizeLinear"] == 1 and ops["QuantizeLinear"] == 1


def _int_or_float(graph):
    return Counter((n.op, "int" if g_dtype(graph, n).kind in "iu" else "float") for n in graph.nodes)


def g_dtype(graph, node):
    return graph.tensor(node.outputs[0]).dtype


def test_qdq_s8s8_x86_rules_match_onnxruntime(efficientnet_qdq_s8s8, tmp_path):
    """s8s8 QDQ: onnxruntime on x86 leaves convolutions next to int8 tensors with two readers in float;
    qdq_fusion="onnxruntime-x86" reproduces its op split, the default fuses everything (as on aarch64)."""
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    opts.log_severity_level = 3
    ort.InferenceSession(str(efficientnet_qdq_s8s8), opts, providers=["CPUExecutionProvider"])
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)
    x86 = _int_or_float(load_model(efficientnet_qdq_s8s8, qdq_fusion="onnxruntime-x86"))
    assert x86[("conv2d", "int")] == ops["QLinearConv"] and x86[("conv2d", "float")] == ops["Conv"]
    assert x86[("add", "int")] == ops["QLinearAdd"] and x86[("add", "float")] == ops["Add"]
    assert x86[("mean", "int")] == ops["QLinearGlobalAveragePool"] == 1
    assert x86[("fully_connected", "int")] == ops["QGemm"] == 1
    assert ops["Conv"] > 0                       # the rule matters for this model
    full = _int_or_float(load_model(efficientnet_qdq_s8s8))
    assert full[("conv2d", "int")] == 49 and full[("add", "int")] == 9 and full[("dequantize", "float")] == 1

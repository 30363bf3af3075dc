"""load_tflite on the committed models: ops, attributes, shapes, quantisation parameters and constants.

Expected structure comes from tflite_cases.EXPECTED (hand-written); tensor metadata and constant data are
compared with what LiteRT's own flatbuffer reader reports for the same file (an independent parser).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from tflite_cases import EXPECTED, MODELS, POW2, litert_interpreter, model_path

from hwsim.graph.ir import CANONICAL_OPS, Graph
from hwsim.graph.tflite_import import SUPPORTED_OPS, load_tflite

litert = pytest.importorskip("ai_edge_litert")


# The attributes hwsim/graph/ir.py documents per op (plus pot_scale_int16 on int16 ADD/SUB).
IR_ATTRS = {
    "conv2d": {"stride", "dilation", "padding", "groups", "activation"},
    "fully_connected": {"activation"},
    "add": {"activation", "pot_scale_int16"}, "sub": {"activation", "pot_scale_int16"}, "mul": {"activation"},
    "mean": {"axes", "keepdims"},
    "avg_pool2d": {"kernel", "stride", "padding", "activation", "count_include_pad"},
    "max_pool2d": {"kernel", "stride", "padding", "activation", "count_include_pad"},
    "reshape": {"shape"}, "concat": {"axis"}, "pad": {"pads", "constant"},
    "softmax": {"axis", "beta"}, "logistic": set(), "tanh": set(), "hard_swish": set(),
    "quantize": set(), "dequantize": set(), "requantize": set(),
}


def assert_ir_invariants(graph: Graph) -> None:
    """Topological order, every tensor produced once, every referenced tensor present."""
    available = set(graph.inputs) | {n for n, t in graph.tensors.items() if t.is_constant}
    produced = set()
    for node in graph.nodes:
        assert node.op in CANONICAL_OPS
        for name in node.inputs:
            assert name == "" or name in available, f"{node.name}: input {name!r} used before it is produced"
        for name in node.outputs:
            assert name in graph.tensors and name not in produced and name not in available
            produced.add(name)
            available.add(name)
    for name in graph.outputs:
        assert name in available


@pytest.mark.parametrize("name", MODELS)
def test_structure(name):
    nodes, inputs, outputs = EXPECTED[name]
    graph = load_tflite(model_path(name))
    assert (graph.source, graph.kind, graph.model_layout) == ("tflite", "tflite", "NHWC")
    assert graph.path == str(model_path(name))
    assert_ir_invariants(graph)
    assert [(n.source_op, n.op) for n in graph.nodes] == [(s, o) for s, o, _ in nodes]
    for node, (_, _, attrs) in zip(graph.nodes, nodes):
        for key, value in attrs.items():
            if key == "w_shape":
                assert graph.tensor(node.inputs[1]).shape == value, node.name
                assert graph.tensor(node.inputs[1]).data.shape == value, node.name
            elif key == "n_inputs":
                assert len(node.inputs) == value
            else:
                assert node.attrs[key] == value, (node.name, key)
        assert set(node.attrs) <= IR_ATTRS[node.op], (node.name, set(node.attrs) - IR_ATTRS[node.op])
        if name != "fc_rank3":                 # its helper nodes' names: test_fully_connected_keep_num_dims...
            assert node.name == node.outputs[0]
    assert [(graph.tensor(n).shape, graph.tensor(n).dtype.name) for n in graph.inputs] == inputs
    assert [(graph.tensor(n).shape, graph.tensor(n).dtype.name) for n in graph.outputs] == outputs


@pytest.mark.parametrize("name", MODELS)
def test_tensors_match_litert(name):
    """Shapes, dtypes, scales, zero points, per-channel axes and constant data == LiteRT's view of the file."""
    graph = load_tflite(model_path(name))
    interpreter = litert_interpreter(model_path(name))
    details = {d["name"]: d for d in interpreter.get_tensor_details()}
    by_source = {}
    for node in graph.nodes:
        if node.source_op == "DEPTHWISE_CONV_2D":
            by_source[node.inputs[1]] = "depthwise"
    checked = 0
    for tname, tensor in graph.tensors.items():
        depthwise = by_source.get(tname) == "depthwise"
        source = tname.rsplit("/ohwi", 1)[0] if depthwise else tname
        if source not in details:
            continue                       # an importer-made intermediate (e.g. FC flattening)
        d = details[source]
        qp = d["quantization_parameters"]
        lite_shape = tuple(None if s < 0 else int(v) for v, s in zip(d["shape"], d["shape_signature"]))
        lite_data = interpreter.get_tensor(d["index"]) if tensor.is_constant else None
        lite_axis = int(qp["quantized_dimension"])
        if depthwise:                      # [1, KH, KW, C*M] -> [C*M, KH, KW, 1], quantised axis 3 -> 0
            lite_shape = (lite_shape[3], lite_shape[1], lite_shape[2], 1)
            lite_data = lite_data.transpose(3, 1, 2, 0)
            lite_axis = {3: 0}.get(lite_axis, lite_axis)
        assert tensor.shape == lite_shape, tname
        assert tensor.dtype == np.dtype(d["dtype"]), tname
        if tensor.is_constant:
            np.testing.assert_array_equal(tensor.data, lite_data, err_msg=tname)
            assert tensor.data.dtype == lite_data.dtype
        if len(qp["scales"]) == 0:
            assert tensor.quant is None, tname
        else:
            np.testing.assert_array_equal(np.atleast_1d(tensor.quant.scale), qp["scales"].astype(np.float32))
            np.testing.assert_array_equal(np.atleast_1d(tensor.quant.zero_point), qp["zero_points"])
            assert tensor.quant.axis == (lite_axis if len(qp["scales"]) > 1 else None), tname
        checked += 1
    assert checked >= len(graph.inputs) + len(graph.outputs)


@pytest.mark.parametrize("name", MODELS)
def test_quantized_weights_are_per_channel_on_ir_axis_0(name):
    graph = load_tflite(model_path(name))
    for node in graph.nodes:
        if node.op in ("conv2d", "fully_connected"):
            w = graph.tensor(node.inputs[1])
            assert w.quant.per_channel and w.quant.axis == 0 and w.quant.scale.shape == (w.shape[0],)
            bias = graph.tensor(node.inputs[2])
            assert bias.shape == (w.shape[0],) and bias.quant.axis == 0
            assert bias.dtype == (np.int64 if graph.tensor(node.inputs[0]).dtype == np.int16 else np.int32)


@pytest.mark.parametrize("name", [n + "_pow2" for n in POW2])
def test_pow2_variants_have_power_of_two_scales(name):
    graph = load_tflite(model_path(name))
    for tensor in graph.tensors.values():
        if tensor.quant is not None:
            for s in np.atleast_1d(tensor.quant.scale).astype(np.float64):
                mantissa, _ = math.frexp(s)
                assert mantissa == 0.5, (tensor.name, s)


def test_depthwise_weights_keep_channel_order():
    """IR weight [o, kh, kw, 0] is TFLite's [0, kh, kw, o]; output channel o reads input channel o // M."""
    graph = load_tflite(model_path("depthwise"))
    node = graph.nodes[0]
    w = graph.tensor(node.inputs[1])
    interpreter = litert_interpreter(model_path("depthwise"))
    lite = {d["name"]: d for d in interpreter.get_tensor_details()}
    original = interpreter.get_tensor(lite["depthwise"]["index"])
    assert original.shape == (1, 3, 3, 24)
    for o in (0, 1, 5, 23):
        np.testing.assert_array_equal(w.data[o, :, :, 0], original[0, :, :, o])
    assert node.attrs["groups"] == 12 and w.shape[0] // node.attrs["groups"] == 2


def test_float_io_quantize_and_dequantize():
    graph = load_tflite(model_path("float_io"))
    q, conv, dq = graph.nodes
    assert graph.tensor(q.inputs[0]).dtype == np.float32 and graph.tensor(q.inputs[0]).quant is None
    assert graph.tensor(q.outputs[0]).dtype == np.int8 and graph.tensor(q.outputs[0]).quant is not None
    assert conv.inputs[0] == q.outputs[0] and dq.inputs[0] == conv.outputs[0]
    assert graph.tensor(dq.outputs[0]).dtype == np.float32


def test_fully_connected_keep_num_dims_becomes_reshape_fc_reshape():
    """FULLY_CONNECTED [1, 4, 12] -> [1, 4, 6]: TFLite's implicit flatten and keep_num_dims made explicit."""
    graph = load_tflite(model_path("fc_rank3"))
    flatten, fc, unflatten = graph.nodes
    assert flatten.inputs == ["input"] and graph.tensor(flatten.outputs[0]).shape == (4, 12)
    assert fc.inputs[0] == flatten.outputs[0] and graph.tensor(fc.outputs[0]).shape == (4, 6)
    assert unflatten.inputs == fc.outputs and unflatten.outputs == ["Identity"]
    assert [n.name for n in graph.nodes] == ["Identity/flatten", "Identity", "Identity/keep_num_dims"]
    for helper in (flatten.outputs[0], fc.outputs[0]):     # helpers carry the quantisation of what they reshape
        assert graph.tensor(helper).quant is not None
    assert graph.tensor(flatten.outputs[0]).quant == graph.tensor("input").quant


def test_supported_ops_table_covers_the_issue_list():
    issue_ops = ("CONV_2D DEPTHWISE_CONV_2D FULLY_CONNECTED ADD SUB MUL MEAN AVERAGE_POOL_2D MAX_POOL_2D RESHAPE "
                 "SOFTMAX LOGISTIC TANH HARD_SWISH CONCATENATION PAD QUANTIZE DEQUANTIZE").split()
    assert set(issue_ops) <= set(SUPPORTED_OPS)
    assert set(SUPPORTED_OPS.values()) <= CANONICAL_OPS

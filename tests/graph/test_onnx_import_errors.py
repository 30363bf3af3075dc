"""Bad input to the ONNX importer: every failure is a ModelError naming the file (and node), never a crash."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from onnx import helper
from onnx_models import init, model, save

import hwsim
from hwsim.graph.errors import ModelError
from hwsim.graph.load import load_model
from hwsim.graph.onnx_ops import supported_ops

n = helper.make_node


def _conv_model():
    w = np.ones((2, 3, 1, 1), np.float32)
    return model([n("Conv", ["x", "w"], ["y"], name="the_conv")], {"x": (1, 3, 4, 4)}, ["y"], [init("w", w)])


def test_unsupported_op_names_type_node_and_supported_list(tmp_path):
    m = model([n("Einsum", ["x", "x"], ["y"], equation="ij,ij->ij", name="my_einsum")], {"x": (2, 2)}, ["y"])
    path = save(m, tmp_path)
    with pytest.raises(ModelError) as err:
        load_model(path)
    msg = str(err.value)
    assert "Einsum" in msg and "'my_einsum'" in msg and str(path) in msg
    assert "supported ops:" in msg and "Conv" in msg and "com.microsoft.QLinearAdd" in msg
    assert isinstance(err.value, ValueError)


def test_supported_list_covers_the_brief():
    ops = set(supported_ops())
    for op in ("Conv", "Gemm", "MatMul", "Add", "Mul", "Clip", "Relu", "GlobalAveragePool", "AveragePool",
               "MaxPool", "Reshape", "Flatten", "Concat", "Pad", "Softmax", "Sigmoid", "Tanh", "HardSwish",
               "LeakyRelu", "BatchNormalization", "QuantizeLinear", "DequantizeLinear", "QLinearConv",
               "QLinearMatMul", "MatMulInteger", "ConvInteger", "com.microsoft.QGemm", "com.microsoft.QLinearAdd",
               "com.microsoft.QLinearGlobalAveragePool", "com.microsoft.QLinearConcat",
               "com.microsoft.QLinearAveragePool", "com.microsoft.QLinearSigmoid", "com.microsoft.QLinearLeakyRelu"):
        assert op in ops, op


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated_file(tmp_path, fraction):
    data = _conv_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelError, match="cut.onnx"):
        load_model(path)


def test_not_a_model(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is a text file, not a protobuf\n" * 20)
    with pytest.raises(ModelError, match="notes.onnx"):
        load_model(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.onnx"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 4096).astype(np.uint8).tobytes())
    with pytest.raises(ModelError, match="noise.onnx"):
        load_model(path)


def test_empty_and_missing_file(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match="empty.onnx"):
        load_model(tmp_path / "empty.onnx")
    with pytest.raises(ModelError, match="no such model file"):
        load_model(tmp_path / "absent.onnx")


def test_garbage_tflite_is_a_model_error(tmp_path):
    path = tmp_path / "bad.tflite"
    path.write_bytes(b"\x00\x01\x02\x03TFL3" + b"\x00" * 10)
    with pytest.raises(ModelError):
        load_model(path)


def test_shape_of_a_dynamic_tensor_is_unsupported(tmp_path):
    m = model([n("Shape", ["x"], ["s"], name="dyn_shape"), n("Reshape", ["x", "s"], ["y"])],
              {"x": ("N", 3)}, ["y"])
    with pytest.raises(ModelError, match=r"unsupported ONNX op Shape \(node 'dyn_shape'\) \(hwsim evaluates"):
        load_model(save(m, tmp_path))


def test_dynamic_batch_dimension(tmp_path):
    w = np.ones((2, 3, 1, 1), np.float32)
    m = model([n("Conv", ["x", "w"], ["c"]), n("GlobalAveragePool", ["c"], ["g"]), n("Flatten", ["g"], ["y"])],
              {"x": ("N", 3, 4, 4)}, ["y"], [init("w", w)])
    g = load_model(save(m, tmp_path))
    assert g.tensor("x").shape == (None, 4, 4, 3)
    assert g.tensor("y").shape == (None, 2)
    assert g.nodes[-1].op == "reshape" and g.nodes[-1].attrs["shape"] == (-1, 2)


def test_unsupported_variants_are_model_errors(tmp_path):
    cases = [
        model([n("Pad", ["x", "p"], ["y"], mode="reflect")], {"x": (1, 2, 3, 3)}, ["y"],
              [init("p", np.zeros(8, np.int64))]),
        model([n("Conv", ["x", "w"], ["y"])], {"x": (1, 2, 5)}, ["y"], [init("w", np.ones((1, 2, 3), np.float32))]),
        model([n("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], ceil_mode=1)], {"x": (1, 2, 5, 5)}, ["y"]),
        model([n("Gemm", ["x", "z"], ["y"])], {"x": (2, 3), "z": (3, 4)}, ["y"]),
    ]
    for i, m in enumerate(cases):
        with pytest.raises(ModelError, match=r"node '.*' \("):
            load_model(save(m, tmp_path, f"v{i}.onnx"))


def test_mismatched_quant_params_on_one_tensor(tmp_path):
    m = model([n("QuantizeLinear", ["x", "s1", "z"], ["q"]), n("DequantizeLinear", ["q", "s2", "z"], ["y"])],
              {"x": (4,)}, ["y"], [init("s1", np.float32(0.1)), init("s2", np.float32(0.2)), init("z", np.uint8(0))])
    with pytest.raises(ModelError, match="scale/zero point"):
        load_model(save(m, tmp_path))


def test_public_entry_point(tmp_path):
    g = hwsim.load_model(save(_conv_model(), tmp_path))
    assert [node.op for node in g.nodes] == ["conv2d"] and g.nodes[0].name == "the_conv"
    assert hwsim.ModelError is ModelError


def test_tflite_files_go_to_the_tflite_importer(tmp_path):
    tflite_import = pytest.importorskip("hwsim.graph.tflite_import")
    src = pathlib.Path(__file__).resolve().parents[1] / "data" / "tflite" / "small_cnn.tflite"
    if not src.exists():
        pytest.skip("no committed .tflite test models in this checkout")
    assert load_model(src).source == "tflite"
    renamed = tmp_path / "model.bin"            # dispatch by content (the TFL3 identifier), not only by name
    renamed.write_bytes(src.read_bytes())
    g = load_model(renamed)
    assert g.source == "tflite" and [n.op for n in g.nodes] == [n.op for n in tflite_import.load_tflite(src).nodes]

"""Bad input to load_tflite: always a ModelError naming the file (and the op), never another exception."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from tflite_cases import MODELS, model_path

from hwsim.graph.errors import ModelError
from hwsim.graph.tflite_import import SUPPORTED_OPS, load_tflite


def test_model_error_is_a_value_error():
    assert issubclass(ModelError, ValueError)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.tflite"
    with pytest.raises(ModelError, match="nope.tflite: cannot read"):
        load_tflite(path)


def test_directory(tmp_path):
    with pytest.raises(ModelError, match="cannot read"):
        load_tflite(tmp_path)


@pytest.mark.parametrize("content", [b"", b"TFL3", b"\x00" * 7, b"\x1c\x00\x00\x00ONNX" + b"\x00" * 64,
                                     bytes(range(256))], ids=["empty", "short", "zeros", "wrong_id", "noise"])
def test_not_a_tflite_file(tmp_path, content):
    path = tmp_path / "bad.tflite"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=r"bad.tflite: not a TFLite model"):
        load_tflite(path)


@pytest.mark.parametrize("name", ["small_cnn", "depthwise", "conv16x8", "concat_pad"])
def test_truncated_file(tmp_path, name):
    data = model_path(name).read_bytes()
    path = tmp_path / f"{name}_cut.tflite"
    for cut in sorted({8, 12, 16, 32, 64, 100, len(data) // 2, len(data) - 64, len(data) - 1}
                      | set(range(8, len(data), max(1, len(data) // 40)))):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelError, match=f"{name}_cut.tflite"):
            load_tflite(path)


def test_corrupted_bytes_never_crash(tmp_path):
    """Seeded random byte damage: import either succeeds or raises ModelError; no other exception escapes."""
    rng = np.random.default_rng(20261127)
    path = tmp_path / "damaged.tflite"
    outcomes = {"ok": 0, "error": 0}
    for name in ("small_cnn", "depthwise", "concat_pad", "reshape_fc", "float_io"):
        data = model_path(name).read_bytes()
        for _ in range(60):
            damaged = bytearray(data)
            for pos in rng.integers(8, len(data), size=int(rng.integers(1, 6))):
                damaged[pos] = int(rng.integers(0, 256))
            path.write_bytes(bytes(damaged))
            try:
                load_tflite(path)
                outcomes["ok"] += 1
            except ModelError as exc:
                assert "damaged.tflite" in str(exc)
                outcomes["error"] += 1
    assert outcomes["error"] > 0


def test_unsupported_op_names_op_index_tensor_and_supported_list():
    with pytest.raises(ModelError) as info:
        load_tflite(model_path("unsupported_resize"))
    message = str(info.value)
    assert "unsupported_resize.tflite" in message
    assert "operator #0 RESIZE_BILINEAR" in message
    assert "'Identity'" in message                     # the op's output tensor: its name in this model
    for op in SUPPORTED_OPS:
        assert op in message


def _patch_fused_activation(data: bytes, op_index: int, value: int) -> bytes:
    """Overwrite operator ``op_index``'s Conv2DOptions.fused_activation_function (must be stored, i.e. != NONE)."""
    import tflite

    buf = bytearray(data)
    graph = tflite.Model.GetRootAsModel(buf, 0).Subgraphs(0)
    table = graph.Operators(op_index).BuiltinOptions()
    options = tflite.Conv2DOptions()
    options.Init(table.Bytes, table.Pos)
    field = options._tab.Offset(10)                     # schema field 3 (fused_activation_function)
    assert field != 0 and options.FusedActivationFunction() == 3     # RELU6 in conv_relu6's first op
    struct.pack_into("<b", buf, options._tab.Pos + field, value)
    return bytes(buf)


@pytest.mark.parametrize("code, label", [(4, "TANH"), (5, "SIGN_BIT"), (77, "77")])
def test_unsupported_fused_activation(tmp_path, code, label):
    path = tmp_path / "act.tflite"
    path.write_bytes(_patch_fused_activation(model_path("conv_relu6").read_bytes(), 0, code))
    with pytest.raises(ModelError, match=rf"act.tflite: operator #0 CONV_2D .*fused activation {label} "
                                         r"is not supported"):
        load_tflite(path)


def test_patched_activation_still_imports_when_supported(tmp_path):
    """The patching helper itself works: RELU6 -> RELU imports with the RELU clamp."""
    path = tmp_path / "relu.tflite"
    path.write_bytes(_patch_fused_activation(model_path("conv_relu6").read_bytes(), 0, 1))
    node = load_tflite(path).nodes[0]
    assert node.attrs["activation"] == (0.0, float("inf"))


@pytest.mark.parametrize("name", MODELS)
def test_committed_models_import(name):
    load_tflite(model_path(name))


def test_hybrid_model_is_refused():
    """Dynamic-range quantisation (float activations, int8 weights) is not an integer model hwsim emulates."""
    with pytest.raises(ModelError, match=r"unsupported_hybrid.tflite: operator #0 FULLY_CONNECTED .*hybrid"):
        load_tflite(model_path("unsupported_hybrid"))

"""quantize_tensor / dequantize_tensor against onnx's reference QuantizeLinear / DequantizeLinear (opset 21):
per tensor, per axis and blocked (``block_size``, a short last block included) -- an independent implementation
of the same convention (q = sat(rne(x / scale) + zero_point), r = (q - zero_point) * scale)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from hwsim.quant.params import QuantFormat
from hwsim.quant.quantizers import dequantize_tensor, quantize_tensor, weight_params

F32 = np.float32
_ONNX_TYPE = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8,
              np.dtype(np.int16): TensorProto.INT16, np.dtype(np.uint16): TensorProto.UINT16}


def _onnx(op: str, x, scale, zp, out_type, **attrs):
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT if op == "QuantizeLinear" else _ONNX_TYPE[x.dtype],
                                         list(x.shape)),
           helper.make_tensor_value_info("s", TensorProto.FLOAT, list(scale.shape)),
           helper.make_tensor_value_info("z", _ONNX_TYPE[zp.dtype], list(zp.shape))]
    out = [helper.make_tensor_value_info("y", out_type, list(x.shape))]
    graph = helper.make_graph([helper.make_node(op, ["x", "s", "z"], ["y"], **attrs)], "g", ins, out)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    return ReferenceEvaluator(model).run(None, {"x": x, "s": scale, "z": zp})[0]


@settings(max_examples=60)
@given(seed=st.integers(0, 2**31 - 1), bits=st.integers(2, 16), signed=st.booleans(), symmetric=st.booleans(),
       narrow=st.booleans(), gran=st.sampled_from(["per-tensor", "per-channel", "per-group:4", "per-group:7"]),
       conv=st.booleans())
def test_quantize_and_dequantize_equal_onnx_reference(seed, bits, signed, symmetric, narrow, gran, conv):
    rng = np.random.default_rng(seed)
    shape = (3, 2, 2, 5) if conv else (3, 10)
    w = (rng.standard_t(4, size=shape) * rng.uniform(0.01, 10)).astype(F32)
    fmt = QuantFormat(bits, signed=signed, symmetric=symmetric, narrow=narrow and signed)
    p = weight_params(w, fmt, gran)
    q = quantize_tensor(w, p)
    # onnx works on the [O, K] view (a conv's reduction axis is the flattened (KH, KW, I))
    w2 = w.reshape(3, -1)
    if gran == "per-tensor":
        scale, zp, attrs = p.scale, p.zero_point, {}
    elif gran == "per-channel":
        scale, zp, attrs = p.scale, p.zero_point, {"axis": 0}
    else:
        scale, zp, attrs = p.scale, p.zero_point, {"axis": 1, "block_size": p.group_size}
    store = fmt.dtype                       # int8 / uint8 / int16 / uint16
    ref = _onnx("QuantizeLinear", w2, np.asarray(scale, F32), np.asarray(zp).astype(store), _ONNX_TYPE[store],
                **attrs)
    # onnx saturates to the storage type; narrower formats (bits < 8, restricted range) then clamp
    ref = np.clip(ref.astype(np.int64), fmt.qmin, fmt.qmax)
    np.testing.assert_array_equal(q.reshape(3, -1).astype(np.int64), ref)
    deq = _onnx("DequantizeLinear", q.reshape(3, -1), np.asarray(scale, F32), np.asarray(zp).astype(store),
                TensorProto.FLOAT, **attrs)
    np.testing.assert_array_equal(dequantize_tensor(q, p).reshape(3, -1), deq)

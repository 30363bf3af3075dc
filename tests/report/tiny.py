"""A hand-built quantized graph small enough to work out on paper: x [N, 4] -> quantize -> one
fully_connected layer (no bias) -> dequantize.

Every scale is a power of two so that npu-acc16 (power-of-two scales, 16-bit saturating accumulator)
and tflite-reference (32-bit accumulator) both run it unchanged:
x: int8, scale 2^-7, zero point 0; w: int8 [1, 4], scale 2^-7; y: int8, scale 2^-4, zero point 0.
The accumulator is sum_k x_k * w_k and the requantisation multiplies it by 2^-14 / 2^-4 = 2^-10.
"""

from __future__ import annotations

import numpy as np

from hwsim.graph.ir import Graph, Node, QuantParams, Tensor


def _qp(exponent: int) -> QuantParams:
    return QuantParams(np.array(2.0 ** exponent, np.float32), np.array(0, np.int64))


def fc_graph(weight_code: int, layer_name: str = "fc", out_exponent: int = -4, batch: int | None = None) -> Graph:
    """x -> quantize -> fully_connected(w = weight_code everywhere, [1, 4]) -> dequantize -> y
    (y's scale 2^out_exponent; ``batch``: a fixed batch size, None for a free one)."""
    w = np.full((1, 4), weight_code, np.int8)
    tensors = {
        "x": Tensor("x", (batch, 4), np.dtype(np.float32)),
        "x__q": Tensor("x__q", (batch, 4), np.dtype(np.int8), _qp(-7)),
        "w__q": Tensor("w__q", (1, 4), np.dtype(np.int8), _qp(-7), w),
        "y__q": Tensor("y__q", (batch, 1), np.dtype(np.int8), _qp(out_exponent)),
        "y": Tensor("y", (batch, 1), np.dtype(np.float32)),
    }
    nodes = [
        Node("quantize", ["x"], ["x__q"], name="x/quantize", source_op="QuantizeLinear"),
        Node("fully_connected", ["x__q", "w__q"], ["y__q"], {"activation": None}, name=layer_name,
             source_op="Gemm"),
        Node("dequantize", ["y__q"], ["y"], name="y/dequantize", source_op="DequantizeLinear"),
    ]
    return Graph(tensors, nodes, ["x"], ["y"], model_layout="NHWC", source="onnx", kind="qdq")

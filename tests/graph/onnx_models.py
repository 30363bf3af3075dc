"""Builders of small ONNX models for the importer tests (onnx.helper only)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def init(name: str, value) -> "TensorProto":
    return numpy_helper.from_array(np.asarray(value), name)


def model(nodes, inputs: dict[str, tuple], outputs: list[str], inits=(), opset: int = 17, ms: bool = False,
          in_type=TensorProto.FLOAT, out_type=TensorProto.FLOAT):
    """A model from nodes; ``inputs`` maps name -> shape (``in_type``); outputs are ``out_type``, shape unset."""
    graph = helper.make_graph(
        list(nodes), "test",
        [helper.make_tensor_value_info(n, in_type, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, out_type, None) for n in outputs],
        list(inits))
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    m = helper.make_model(graph, opset_imports=opsets)
    m.ir_version = 8
    return m


def save(m, tmp_path, name: str = "m.onnx"):
    path = tmp_path / name
    path.write_bytes(m.SerializeToString())
    return path

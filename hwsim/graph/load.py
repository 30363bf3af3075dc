"""``hwsim.load_model``: read a model file, whatever its format, into the graph IR."""

from __future__ import annotations

import os

from hwsim.graph.errors import ModelError
from hwsim.graph.ir import Graph

__all__ = ["load_model"]

_TFLITE_MAGIC = b"TFL3"   # flatbuffer file identifier, bytes 4..8 of a .tflite file


def load_model(path: str | os.PathLike, qdq_fusion: str = "onnxruntime") -> Graph:
    """Read an ONNX (float, QDQ, QOperator) or TFLite model file.

    The format is taken from the file's content (the TFLite flatbuffer
    identifier), then from its extension; anything else is read as ONNX.

    Parameters
    ----------
    path : str or PathLike
        The model file.
    qdq_fusion : {"onnxruntime", "onnxruntime-x86", "none"}
        ONNX QDQ models only: see :func:`hwsim.graph.onnx_import.load_onnx`.

    Returns
    -------
    Graph
        The model in hwsim's IR (NHWC inside; ``Graph.model_layout`` says the
        model's own layout).

    Raises
    ------
    ModelError
        Missing, truncated or corrupt file, or an unsupported op (the message
        names the file, the op type and node, and lists the supported ops).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the file: {exc}") from None
    if head[4:8] == _TFLITE_MAGIC or path.lower().endswith(".tflite"):
        try:
            from hwsim.graph.tflite_import import load_tflite
        except ImportError:
            raise ModelError(f"{path}: a TFLite model, but this hwsim has no TFLite importer") from None
        return load_tflite(path)
    from hwsim.graph.onnx_import import load_onnx

    return load_onnx(path, qdq_fusion=qdq_fusion)

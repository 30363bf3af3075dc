"""The bundled demo: a small CNN trained on the 8x8 handwritten digits (see DIGITS-LICENSE.txt).

``model_path()`` is the float ONNX model, ``load_digits()`` the data with its
fixed split; ``tools/train_digits_cnn.py`` made both.
"""

from __future__ import annotations

import pathlib

import numpy as np

__all__ = ["model_path", "load_digits"]

_HERE = pathlib.Path(__file__).resolve().parent


def model_path() -> pathlib.Path:
    """The float ONNX model: input ``image`` float32 [N, 1, 8, 8] = pixel / 16, output ``logits`` [N, 10]."""
    return _HERE / "digits_cnn.onnx"


def load_digits() -> dict:
    """The digits as model inputs: ``x_train``, ``x_test`` float32 [N, 1, 8, 8]; ``y_train``, ``y_test`` int64."""
    with np.load(_HERE / "digits.npz", allow_pickle=False) as d:
        images, labels = d["images"], d["labels"]
        train, test = d["train_index"], d["test_index"]
    x = images.astype(np.float32)[:, None] / np.float32(16.0)
    y = labels.astype(np.int64)
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}
